//! Secrets read once at start: from the variable itself, or from AWS Secrets Manager or SSM
//! Parameter Store.
//!
//! For a secret variable `NAME` (`DATABASE_URL`, `PREDICT_RELOAD_TOKEN`):
//! - `NAME` set: its value, as before;
//! - else `NAME_SECRET_ID` set: that Secrets Manager secret's `SecretString` (an ARN or a name);
//! - else `NAME_SSM_PARAMETER` set: that SSM parameter's value, decrypted (a SecureString);
//! - else: unset. Setting both `_SECRET_ID` and `_SSM_PARAMETER` is refused.
//!
//! The two calls (`secretsmanager.GetSecretValue`, `AmazonSSM.GetParameter`) are JSON POSTs
//! signed with SigV4 by `aws-sigv4` and sent with reqwest, rather than through the SDK crates:
//! `aws-sdk-ssm` alone costs minutes of cold build for one call (README, "Dependencies").
//! Region, credentials and endpoint come from the variables the SDK reads: `AWS_REGION` (or
//! `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`
//! (Lambda sets them for the function's role), and `AWS_ENDPOINT_URL_SECRETS_MANAGER` /
//! `AWS_ENDPOINT_URL_SSM` / `AWS_ENDPOINT_URL` (local servers, tests).
//!
//! Errors name the variable and say why: not found, access denied, endpoint unreachable, or
//! the service's own error code and message. A secret's value never appears in logs or errors.

use std::{fmt, time::Duration, time::SystemTime};

use serde_json::{Value, json};

use crate::config::{self, ConfigError};

/// Where a secret's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The variable itself.
    Environment,
    /// A Secrets Manager secret (its id as configured).
    SecretsManager(String),
    /// An SSM parameter (its name).
    SsmParameter(String),
}

/// A secret's value and where it came from. `Debug` does not show the value.
#[derive(Clone)]
pub struct Secret {
    /// The variable named in errors about this value (`NAME`, `NAME_SECRET_ID`, …).
    pub variable: String,
    pub source: SecretSource,
    value: String,
}

impl Secret {
    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn into_value(self) -> String {
        self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("variable", &self.variable)
            .field("source", &self.source)
            .field("value", &"(not shown)")
            .finish()
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{variable}={id:?}: not found ({code}: {message})")]
    NotFound {
        variable: String,
        id: String,
        code: String,
        message: String,
    },
    #[error("{variable}={id:?}: access denied ({code}: {message})")]
    AccessDenied {
        variable: String,
        id: String,
        code: String,
        message: String,
    },
    #[error("{variable}={id:?}: the endpoint {endpoint} is unreachable: {reason}")]
    Unreachable {
        variable: String,
        id: String,
        endpoint: String,
        reason: String,
    },
    #[error("{variable}={id:?}: {reason}")]
    Failed {
        variable: String,
        id: String,
        reason: String,
    },
}

/// Reads secret variable `name` as the module docs say; `None` when none of its forms is set.
pub async fn optional(name: &str) -> Result<Option<Secret>, SecretError> {
    if let Some(value) = config::maybe_secret::<String>(name)? {
        return Ok(Some(Secret {
            variable: name.to_owned(),
            source: SecretSource::Environment,
            value,
        }));
    }
    let secret_id_variable = format!("{name}_SECRET_ID");
    let parameter_variable = format!("{name}_SSM_PARAMETER");
    let secret_id: Option<String> = config::maybe(&secret_id_variable)?;
    let parameter: Option<String> = config::maybe(&parameter_variable)?;
    let (service, variable, id) = match (secret_id, parameter) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                &secret_id_variable,
                "(set)",
                format!("set either {secret_id_variable} or {parameter_variable}, not both"),
            )
            .into());
        }
        (Some(id), None) => (Service::SecretsManager, secret_id_variable, id),
        (None, Some(id)) => (Service::Ssm, parameter_variable, id),
        (None, None) => return Ok(None),
    };
    let client = AwsClient::from_env(service)?;
    let value = client.fetch(&variable, &id).await?;
    let source = match service {
        Service::SecretsManager => SecretSource::SecretsManager(id),
        Service::Ssm => SecretSource::SsmParameter(id),
    };
    tracing::info!(variable, ?source, "secret read");
    Ok(Some(Secret {
        variable,
        source,
        value,
    }))
}

/// Like [`optional`], but unset is an error saying which variables would do.
pub async fn required(name: &str, hint: &str) -> Result<Secret, SecretError> {
    optional(name).await?.ok_or_else(|| {
        ConfigError::Missing {
            name: name.to_owned(),
            hint: format!(" ({hint}; or set {name}_SECRET_ID or {name}_SSM_PARAMETER)"),
        }
        .into()
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    SecretsManager,
    Ssm,
}

impl Service {
    /// SigV4's service name, which is also the endpoint's first label.
    fn signing_name(self) -> &'static str {
        match self {
            Service::SecretsManager => "secretsmanager",
            Service::Ssm => "ssm",
        }
    }

    fn endpoint_variable(self) -> &'static str {
        match self {
            Service::SecretsManager => "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            Service::Ssm => "AWS_ENDPOINT_URL_SSM",
        }
    }
}

/// One signed JSON API of one service, configured from the environment.
struct AwsClient {
    service: Service,
    endpoint: String,
    region: String,
    credentials: aws_credential_types::Credentials,
    http: reqwest::Client,
}

impl AwsClient {
    fn from_env(service: Service) -> Result<Self, ConfigError> {
        let region: String = match config::maybe("AWS_REGION")? {
            Some(region) => region,
            None => config::required(
                "AWS_DEFAULT_REGION",
                "the AWS region of the secrets; or set AWS_REGION",
            )?,
        };
        let endpoint = match config::maybe::<String>(service.endpoint_variable())? {
            Some(endpoint) => endpoint,
            None => config::maybe::<String>("AWS_ENDPOINT_URL")?.unwrap_or_else(|| {
                format!("https://{}.{region}.amazonaws.com", service.signing_name())
            }),
        };
        let credentials = aws_credential_types::Credentials::new(
            config::required::<String>("AWS_ACCESS_KEY_ID", "the AWS access key reading secrets")?,
            config::required_secret::<String>(
                "AWS_SECRET_ACCESS_KEY",
                "the AWS secret key reading secrets",
            )?,
            config::maybe_secret("AWS_SESSION_TOKEN")?,
            None,
            "environment",
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| ConfigError::invalid(service.endpoint_variable(), &endpoint, error))?;
        Ok(AwsClient {
            service,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region,
            credentials,
            http,
        })
    }

    /// The secret's string (Secrets Manager) or the parameter's decrypted value (SSM).
    async fn fetch(&self, variable: &str, id: &str) -> Result<String, SecretError> {
        let (target, body, path): (&str, Value, &[&str]) = match self.service {
            Service::SecretsManager => (
                "secretsmanager.GetSecretValue",
                json!({ "SecretId": id }),
                &["SecretString"],
            ),
            Service::Ssm => (
                "AmazonSSM.GetParameter",
                json!({ "Name": id, "WithDecryption": true }),
                &["Parameter", "Value"],
            ),
        };
        let failed = |reason: String| SecretError::Failed {
            variable: variable.to_owned(),
            id: id.to_owned(),
            reason,
        };
        let answer = self.call(variable, id, target, &body).await?;
        let value = path
            .iter()
            .try_fold(&answer, |value, key| value.get(key))
            .and_then(Value::as_str);
        match value {
            Some(value) => Ok(value.to_owned()),
            None if self.service == Service::SecretsManager => Err(failed(
                "the secret has no SecretString (a binary secret cannot be used)".to_owned(),
            )),
            None => Err(failed("the answer has no Parameter.Value".to_owned())),
        }
    }

    async fn call(
        &self,
        variable: &str,
        id: &str,
        target: &str,
        body: &Value,
    ) -> Result<Value, SecretError> {
        let failed = |reason: String| SecretError::Failed {
            variable: variable.to_owned(),
            id: id.to_owned(),
            reason,
        };
        let url = format!("{}/", self.endpoint);
        let body = serde_json::to_vec(body).map_err(|error| failed(error.to_string()))?;
        let mut request = http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", target)
            .body(body)
            .map_err(|error| {
                failed(format!(
                    "the endpoint {url} does not make a request: {error}"
                ))
            })?;
        self.sign(&mut request)
            .map_err(|error| failed(format!("signing the request failed: {error}")))?;
        let request = reqwest::Request::try_from(request).map_err(|error| {
            failed(format!(
                "the endpoint {url} does not make a request: {error}"
            ))
        })?;
        let response = self.http.execute(request).await.map_err(|error| {
            SecretError::Unreachable {
                variable: variable.to_owned(),
                id: id.to_owned(),
                endpoint: self.endpoint.clone(),
                // With its causes: reqwest's own message omits the one that matters.
                reason: format!("{:#}", anyhow::Error::new(error)),
            }
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| SecretError::Unreachable {
                variable: variable.to_owned(),
                id: id.to_owned(),
                endpoint: self.endpoint.clone(),
                // With its causes: reqwest's own message omits the one that matters.
                reason: format!("{:#}", anyhow::Error::new(error)),
            })?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        // AWS JSON errors: `__type` is the code (possibly `namespace#Code`), then a message.
        let code = answer
            .get("__type")
            .and_then(Value::as_str)
            .map(|code| code.rsplit('#').next().unwrap_or(code).to_owned())
            .unwrap_or_else(|| format!("HTTP {status}"));
        let message = ["message", "Message"]
            .iter()
            .find_map(|key| answer.get(key).and_then(Value::as_str))
            .map_or_else(|| text.chars().take(200).collect(), str::to_owned);
        Err(classify(variable, id, code, message))
    }

    /// Adds SigV4's headers for this service and region.
    fn sign(&self, request: &mut http::Request<Vec<u8>>) -> Result<(), String> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let identity = self.credentials.clone().into();
        let parameters = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service.signing_name())
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|error| error.to_string())?
            .into();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let uri = request.uri().to_string();
        let signable = SignableRequest::new(
            request.method().as_str(),
            &uri,
            headers.into_iter(),
            SignableBody::Bytes(request.body()),
        )
        .map_err(|error| error.to_string())?;
        let (instructions, _signature) = sign(signable, &parameters)
            .map_err(|error| error.to_string())?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

/// The error an AWS JSON error `code` (`__type`, namespace removed) stands for.
fn classify(variable: &str, id: &str, code: String, message: String) -> SecretError {
    let (variable, id) = (variable.to_owned(), id.to_owned());
    match code.as_str() {
        "ResourceNotFoundException" | "ParameterNotFound" | "ParameterVersionNotFound" => {
            SecretError::NotFound {
                variable,
                id,
                code,
                message,
            }
        }
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "InvalidClientTokenId"
        | "KMSAccessDeniedException"
        | "DecryptionFailure" => SecretError::AccessDenied {
            variable,
            id,
            code,
            message,
        },
        _ => SecretError::Failed {
            variable,
            id,
            reason: format!("{code}: {message}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_error_codes_become_errors_that_say_why() {
        let error_for =
            |code: &str| classify("NAME_SECRET_ID", "the-id", code.to_owned(), "m".to_owned());
        assert!(matches!(
            error_for("ResourceNotFoundException"),
            SecretError::NotFound { .. }
        ));
        assert!(matches!(
            error_for("ParameterNotFound"),
            SecretError::NotFound { .. }
        ));
        for denied in [
            "AccessDeniedException",
            "UnrecognizedClientException",
            "ExpiredTokenException",
        ] {
            let error = error_for(denied);
            assert!(
                matches!(error, SecretError::AccessDenied { .. }),
                "{denied}"
            );
            let text = error.to_string();
            assert!(
                text.contains("NAME_SECRET_ID") && text.contains("access denied"),
                "{text}"
            );
        }
        let text = error_for("ThrottlingException").to_string();
        assert!(text.contains("ThrottlingException: m"), "{text}");
    }
}
