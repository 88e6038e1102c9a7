//! A small client of MLflow's REST API (2.0 paths, as MLflow 2.x and 3.x serve them): the
//! calls the mirror needs and nothing else.
//!
//! Every call returns an [`MlflowError`] that says which endpoint failed and how: unreachable,
//! or the server's `error_code` and message. Callers that create things look them up first
//! (experiments by name, runs by tag, model versions by run), so a retried call never makes a
//! second one.
//!
//! Artifacts go through the tracking server's artifact proxy (`mlflow-artifacts`), the default
//! since MLflow 2.0 (`mlflow server --serve-artifacts`): a run's `artifact_uri` is then
//! `mlflow-artifacts:/<experiment>/<run>/artifacts`, uploaded to with `PUT
//! /api/2.0/mlflow-artifacts/artifacts/<experiment>/<run>/artifacts/<path>`.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

/// A failed MLflow call.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    /// No answer: the server is down, unreachable, or too slow.
    #[error("MLflow {endpoint}: no answer from the server: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// An answer other than success.
    #[error("MLflow {endpoint}: HTTP {status} {error_code}: {message}")]
    Refused {
        endpoint: String,
        status: u16,
        /// MLflow's `error_code` (e.g. `RESOURCE_DOES_NOT_EXIST`), or empty.
        error_code: String,
        message: String,
    },
    /// A success whose body is not what the API documents.
    #[error("MLflow {endpoint}: unexpected answer: {reason}")]
    Unexpected { endpoint: String, reason: String },
}

impl MlflowError {
    /// Whether the server answered with this `error_code`.
    pub fn is(&self, code: &str) -> bool {
        matches!(self, MlflowError::Refused { error_code, .. } if error_code == code)
    }
}

/// How to reach the server: its base URL and, optionally, credentials, read the way MLflow's
/// own clients read them (`MLFLOW_TRACKING_TOKEN`, or `MLFLOW_TRACKING_USERNAME` and
/// `MLFLOW_TRACKING_PASSWORD`).
#[derive(Clone, Debug)]
pub struct Connection {
    /// `http://host:port`, without a trailing slash.
    pub base_url: String,
    pub credentials: Option<Credentials>,
    /// How long one call may take, connection included.
    pub timeout: Duration,
}

#[derive(Clone)]
pub enum Credentials {
    Bearer(String),
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Bearer(_) => f.write_str("Bearer(…)"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, …)"),
        }
    }
}

/// An MLflow tracking server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MlflowClient {
    http: reqwest::Client,
    connection: Connection,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Experiment {
    pub experiment_id: String,
    #[serde(default)]
    pub artifact_location: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    pub info: RunInfo,
    #[serde(default)]
    pub data: RunData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub status: String,
    pub artifact_uri: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunData {
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A tag or a parameter: both are a key and a string value in MLflow's API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl ToString) -> Tag {
        Tag {
            key: key.into(),
            value: value.to_string(),
        }
    }
}

/// One value of a metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    /// Milliseconds since the epoch. The mirror passes a fixed time per training, so logging
    /// the same metric again is recognised as the same entry, not a second point.
    pub timestamp: i64,
    pub step: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl MlflowClient {
    pub fn new(connection: Connection) -> anyhow::Result<MlflowClient> {
        let http = reqwest::Client::builder()
            .timeout(connection.timeout)
            .connect_timeout(connection.timeout.min(Duration::from_secs(5)))
            .build()?;
        Ok(MlflowClient { http, connection })
    }

    pub fn base_url(&self) -> &str {
        &self.connection.base_url
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.connection.base_url));
        match &self.connection.credentials {
            None => request,
            Some(Credentials::Bearer(token)) => request.bearer_auth(token),
            Some(Credentials::Basic { username, password }) => request.header(
                reqwest::header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{password}"))
                ),
            ),
        }
    }

    /// Sends a request and reads a JSON answer, or the error MLflow explains.
    async fn send<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        request: RequestBuilder,
    ) -> Result<T, MlflowError> {
        let response = request
            .send()
            .await
            .map_err(|error| MlflowError::Unreachable {
                endpoint: endpoint.to_owned(),
                reason: error_chain(&error),
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| MlflowError::Unreachable {
                endpoint: endpoint.to_owned(),
                reason: error_chain(&error),
            })?;
        if !status.is_success() {
            return Err(refusal(endpoint, status, &body));
        }
        let body: &[u8] = if body.is_empty() { b"{}" } else { &body };
        serde_json::from_slice(body).map_err(|error| MlflowError::Unexpected {
            endpoint: endpoint.to_owned(),
            reason: error.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
    ) -> Result<T, MlflowError> {
        let request = self
            .request(Method::GET, &format!("/api/2.0/mlflow/{endpoint}"))
            .query(query);
        self.send(endpoint, request).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: Value,
    ) -> Result<T, MlflowError> {
        let request = self
            .request(Method::POST, &format!("/api/2.0/mlflow/{endpoint}"))
            .json(&body);
        self.send(endpoint, request).await
    }

    /// The experiment called `name`, if there is one.
    pub async fn experiment_by_name(&self, name: &str) -> Result<Option<Experiment>, MlflowError> {
        #[derive(Deserialize)]
        struct Answer {
            experiment: Experiment,
        }
        match self
            .get::<Answer>("experiments/get-by-name", &[("experiment_name", name)])
            .await
        {
            Ok(answer) => Ok(Some(answer.experiment)),
            Err(error) if error.is("RESOURCE_DOES_NOT_EXIST") => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The experiment called `name`, created when missing (by this call or a concurrent one).
    pub async fn ensure_experiment(&self, name: &str) -> Result<Experiment, MlflowError> {
        if let Some(experiment) = self.experiment_by_name(name).await? {
            return Ok(experiment);
        }
        match self
            .post::<Value>("experiments/create", json!({ "name": name }))
            .await
        {
            Ok(_) => {}
            Err(error) if error.is("RESOURCE_ALREADY_EXISTS") => {}
            Err(error) => return Err(error),
        }
        self.experiment_by_name(name)
            .await?
            .ok_or_else(|| MlflowError::Unexpected {
                endpoint: "experiments/get-by-name".into(),
                reason: format!("experiment {name:?} is missing right after it was created"),
            })
    }

    /// The active runs of `experiment_id` whose tag `key` is `value`.
    pub async fn runs_tagged(
        &self,
        experiment_id: &str,
        key: &str,
        value: &str,
    ) -> Result<Vec<Run>, MlflowError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            runs: Vec<Run>,
        }
        let answer: Answer = self
            .post(
                "runs/search",
                json!({
                    "experiment_ids": [experiment_id],
                    "filter": format!("tags.`{key}` = '{}'", quote(value)),
                    "max_results": 10,
                }),
            )
            .await?;
        Ok(answer.runs)
    }

    /// Creates a run (a nested one when `tags` holds `mlflow.parentRunId`).
    pub async fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        start_time_ms: i64,
        tags: &[Tag],
    ) -> Result<Run, MlflowError> {
        #[derive(Deserialize)]
        struct Answer {
            run: Run,
        }
        let answer: Answer = self
            .post(
                "runs/create",
                json!({
                    "experiment_id": experiment_id,
                    "run_name": run_name,
                    "start_time": start_time_ms,
                    "tags": tags,
                }),
            )
            .await?;
        Ok(answer.run)
    }

    /// Logs metrics, parameters and tags to a run, in requests within MLflow's limits (1000
    /// metrics, 100 parameters, 100 tags each). A parameter logged again with the same value
    /// and a metric logged again with the same timestamp, step and value change nothing.
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[Tag],
        tags: &[Tag],
    ) -> Result<(), MlflowError> {
        let mut metrics = metrics.chunks(1000);
        let mut params = params.chunks(100);
        let mut tags = tags.chunks(100);
        loop {
            let (m, p, t) = (metrics.next(), params.next(), tags.next());
            if m.is_none() && p.is_none() && t.is_none() {
                return Ok(());
            }
            self.post::<Value>(
                "runs/log-batch",
                json!({
                    "run_id": run_id,
                    "metrics": m.unwrap_or_default(),
                    "params": p.unwrap_or_default(),
                    "tags": t.unwrap_or_default(),
                }),
            )
            .await?;
        }
    }

    /// Marks a run `FINISHED`.
    pub async fn finish_run(&self, run_id: &str, end_time_ms: i64) -> Result<(), MlflowError> {
        self.post::<Value>(
            "runs/update",
            json!({ "run_id": run_id, "status": "FINISHED", "end_time": end_time_ms }),
        )
        .await?;
        Ok(())
    }

    /// Uploads `body` as the artifact `path` of the run whose artifact URI is `artifact_uri`,
    /// through the server's artifact proxy; an upload again replaces it.
    pub async fn upload_artifact(
        &self,
        artifact_uri: &str,
        path: &str,
        body: Bytes,
    ) -> Result<(), MlflowError> {
        let endpoint = "mlflow-artifacts/artifacts";
        let location = proxied_location(artifact_uri).ok_or_else(|| MlflowError::Unexpected {
            endpoint: endpoint.into(),
            reason: format!(
                "the run's artifact URI {artifact_uri:?} is not served by the tracking server \
                 (mlflow-artifacts:/…); start the server with --serve-artifacts (the default) \
                 and no --default-artifact-root"
            ),
        })?;
        let request = self
            .request(
                Method::PUT,
                &format!("/api/2.0/mlflow-artifacts/artifacts/{location}/{path}"),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send::<Value>(endpoint, request).await?;
        Ok(())
    }

    /// Creates the registered model `name` unless it exists.
    pub async fn ensure_registered_model(&self, name: &str) -> Result<(), MlflowError> {
        match self
            .post::<Value>("registered-models/create", json!({ "name": name }))
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.is("RESOURCE_ALREADY_EXISTS") => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The versions of registered model `name` made from run `run_id`.
    pub async fn versions_of_run(
        &self,
        name: &str,
        run_id: &str,
    ) -> Result<Vec<ModelVersion>, MlflowError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            model_versions: Vec<ModelVersion>,
        }
        let filter = format!("name = '{}' and run_id = '{}'", quote(name), quote(run_id));
        let answer: Answer = self
            .get("model-versions/search", &[("filter", filter.as_str())])
            .await?;
        Ok(answer.model_versions)
    }

    /// Registers a new version of model `name` whose files are at `source`, made by `run_id`.
    pub async fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: &str,
        tags: &[Tag],
    ) -> Result<ModelVersion, MlflowError> {
        #[derive(Deserialize)]
        struct Answer {
            model_version: ModelVersion,
        }
        let answer: Answer = self
            .post(
                "model-versions/create",
                json!({ "name": name, "source": source, "run_id": run_id, "tags": tags }),
            )
            .await?;
        Ok(answer.model_version)
    }

    pub async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        tag: &Tag,
    ) -> Result<(), MlflowError> {
        self.post::<Value>(
            "model-versions/set-tag",
            json!({ "name": name, "version": version, "key": tag.key, "value": tag.value }),
        )
        .await?;
        Ok(())
    }

    /// Points alias `alias` of model `name` at `version` (moving it from any other version).
    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
    ) -> Result<(), MlflowError> {
        self.post::<Value>(
            "registered-models/alias",
            json!({ "name": name, "alias": alias, "version": version }),
        )
        .await?;
        Ok(())
    }
}

/// `<experiment>/<run>/artifacts` from `mlflow-artifacts:/<experiment>/<run>/artifacts` (or
/// the `mlflow-artifacts://host/…` form); `None` for any other scheme.
fn proxied_location(artifact_uri: &str) -> Option<String> {
    let rest = artifact_uri.strip_prefix("mlflow-artifacts:")?;
    let path = match rest.strip_prefix("//") {
        // `//host[:port]/path`: the path after the authority.
        Some(with_authority) => with_authority.split_once('/').map_or("", |(_, p)| p),
        None => rest.trim_start_matches('/'),
    };
    Some(path.trim_end_matches('/').to_owned())
}

/// A value inside a single-quoted search-filter string.
fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

fn refusal(endpoint: &str, status: StatusCode, body: &[u8]) -> MlflowError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v[name].as_str())
            .map(str::to_owned)
    };
    MlflowError::Refused {
        endpoint: endpoint.to_owned(),
        status: status.as_u16(),
        error_code: field("error_code").unwrap_or_default(),
        message: field("message")
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()),
    }
}

/// An error with its causes, which reqwest keeps in its source chain. reqwest's texts name the
/// URL; they carry no credentials because the tracking URI may not hold any (refused at start
/// by `MlflowSettings`), and credentials travel only in the `Authorization` header.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_artifact_uris_become_paths_and_others_are_refused() {
        assert_eq!(
            proxied_location("mlflow-artifacts:/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(
            proxied_location("mlflow-artifacts://mlflow:5000/1/abc/artifacts/").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(proxied_location("s3://bucket/1/abc/artifacts"), None);
        assert_eq!(proxied_location("/var/mlruns/1/abc/artifacts"), None);
    }

    #[test]
    fn filter_values_escape_quotes() {
        assert_eq!(quote("it's"), "it\\'s");
    }
}
