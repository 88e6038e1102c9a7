//! The connection string, parsed at the boundary: libpq's TLS settings taken out and typed,
//! the rest handed to tokio-postgres.
//!
//! tokio-postgres knows `sslmode` only as disable/prefer/require and refuses parameters it does
//! not know (`sslrootcert`), so both are read here, from a `postgres://` URL's query or a
//! `key=value` string, with libpq's names and meanings:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default) | if the server offers it | not checked (chain checked if a CA bundle is given) |
//! | `require` | always | not checked (chain checked if a CA bundle is given, as libpq does) |
//! | `verify-ca` | always | chains to the CA bundle |
//! | `verify-full` | always | chains to the CA bundle and names the host connected to |
//!
//! `sslrootcert` is a PEM file of CA certificates (e.g. the RDS bundle) or `system` (the
//! system's trusted roots). When the string does not say, `DATABASE_SSLMODE` and
//! `DATABASE_CA_BUNDLE` give the defaults, as libpq's `PGSSLMODE` and `PGSSLROOTCERT` do.
//! `verify-ca` and `verify-full` without a CA bundle are refused at start, as libpq refuses them.
//!
//! One difference from libpq: under `prefer`, a failed handshake (e.g. a certificate the given
//! CA bundle does not vouch for) is an error, not a fallback to an unencrypted session.

use std::{fmt, path::PathBuf, str::FromStr, sync::Arc};

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};

use super::tls::{MakeRustls, Verification, client_config};
use crate::config::{self, ConfigError};

/// The variable the connection string comes from, named in every error about it.
const FIELD: &str = "DATABASE_URL";

/// libpq's `sslmode`, less `allow` (plain first, TLS if refused), which nobody should want.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            _ => Err("must be one of disable, prefer, require, verify-ca, verify-full".to_owned()),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// Where the trusted CA certificates come from, and the setting that named them (for errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCertificates {
    /// A PEM file of CA certificates.
    File { path: PathBuf, named_by: String },
    /// The system's trusted roots (`sslrootcert=system`).
    System { named_by: String },
}

impl RootCertificates {
    fn parse(value: &str, named_by: &str) -> RootCertificates {
        if value == "system" {
            RootCertificates::System {
                named_by: named_by.to_owned(),
            }
        } else {
            RootCertificates::File {
                path: PathBuf::from(value),
                named_by: named_by.to_owned(),
            }
        }
    }

    /// Reads the certificates; a missing, unreadable or empty file is an error naming the
    /// setting and the path.
    pub fn load(&self) -> Result<RootCertStore, ConfigError> {
        let mut roots = RootCertStore::empty();
        match self {
            RootCertificates::File { path, named_by } => {
                let invalid =
                    |reason: String| ConfigError::invalid(named_by, path.display(), reason);
                let pem = std::fs::read(path)
                    .map_err(|error| invalid(format!("cannot read the CA bundle: {error}")))?;
                let certificates = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| invalid(format!("not a PEM CA bundle: {error}")))?;
                if certificates.is_empty() {
                    return Err(invalid("the file holds no PEM certificate".to_owned()));
                }
                for certificate in certificates {
                    roots
                        .add(certificate)
                        .map_err(|error| invalid(format!("a certificate is unusable: {error}")))?;
                }
            }
            RootCertificates::System { named_by } => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(ConfigError::invalid(
                        named_by,
                        "system",
                        "no trusted root certificate found on this system",
                    ));
                }
            }
        }
        Ok(roots)
    }
}

/// What the environment says when the connection string does not: `DATABASE_SSLMODE` and
/// `DATABASE_CA_BUNDLE`.
#[derive(Debug, Clone, Default)]
pub struct TlsDefaults {
    pub ssl_mode: Option<SslMode>,
    pub root_certificates: Option<RootCertificates>,
}

impl TlsDefaults {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(TlsDefaults {
            ssl_mode: config::maybe("DATABASE_SSLMODE")?,
            root_certificates: config::maybe::<String>("DATABASE_CA_BUNDLE")?
                .map(|value| RootCertificates::parse(&value, "DATABASE_CA_BUNDLE")),
        })
    }
}

/// A connection string, parsed: tokio-postgres's settings and the TLS ones.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub postgres: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    pub root_certificates: Option<RootCertificates>,
}

impl ConnectionSettings {
    /// Parses a `postgres://` URL or a libpq `key=value` string. Errors name `DATABASE_URL`
    /// and the parameter, never the whole string (it may hold a password).
    pub fn parse(connection_string: &str, defaults: &TlsDefaults) -> Result<Self, ConfigError> {
        let is_url = connection_string.starts_with("postgres://")
            || connection_string.starts_with("postgresql://");
        let (rest, tls) = if is_url {
            take_tls_from_url(connection_string)?
        } else {
            take_tls_from_key_values(connection_string)?
        };
        let mut postgres: tokio_postgres::Config = rest.parse().map_err(|error| {
            ConfigError::invalid(
                FIELD,
                "(not shown: it may hold a password)",
                format!("not a valid PostgreSQL connection string: {error}"),
            )
        })?;
        let ssl_mode = match tls.ssl_mode {
            Some(value) => value.parse().map_err(|reason| {
                ConfigError::invalid(FIELD, format!("sslmode={value}"), reason)
            })?,
            None => defaults.ssl_mode.unwrap_or(SslMode::Prefer),
        };
        let root_certificates = match tls.root_cert {
            Some(value) => Some(RootCertificates::parse(&value, "sslrootcert")),
            None => defaults.root_certificates.clone(),
        };
        if matches!(ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull)
            && root_certificates.is_none()
        {
            return Err(ConfigError::invalid(
                FIELD,
                format!("sslmode={ssl_mode}"),
                "needs the CA certificates to check the server against: add \
                 sslrootcert=/path/to/bundle.pem (or sslrootcert=system) or set DATABASE_CA_BUNDLE",
            ));
        }
        postgres.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        Ok(ConnectionSettings {
            postgres,
            ssl_mode,
            root_certificates,
        })
    }

    /// What the server's certificate must prove, with the CA bundle read (from disk, once).
    pub fn verification(&self) -> Result<Verification, ConfigError> {
        let roots = match &self.root_certificates {
            None => return Ok(Verification::None),
            Some(roots) => Arc::new(roots.load()?),
        };
        Ok(match self.ssl_mode {
            SslMode::VerifyFull => Verification::ChainAndName(roots),
            // libpq checks the chain whenever it has a CA file, whatever the mode.
            _ => Verification::Chain(roots),
        })
    }

    /// The TLS connector for these settings (unused when `sslmode=disable`).
    pub fn tls_connector(&self) -> Result<MakeRustls, ConfigError> {
        let config = client_config(&self.verification()?).map_err(|error| {
            ConfigError::invalid(FIELD, format!("sslmode={}", self.ssl_mode), error)
        })?;
        Ok(MakeRustls::new(config))
    }
}

/// The TLS parameters found in a connection string.
#[derive(Default)]
struct TlsParameters {
    ssl_mode: Option<String>,
    root_cert: Option<String>,
}

impl TlsParameters {
    /// Takes `key` if it is one of ours; `Ok(false)` for a parameter to hand on.
    fn take(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "sslmode" => self.ssl_mode = Some(value.to_owned()),
            "sslrootcert" => self.root_cert = Some(value.to_owned()),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(ConfigError::invalid(
                    FIELD,
                    key,
                    "client certificates and CRLs are not supported",
                ));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Splits the URL's query, keeps our parameters and hands the others on, as they were written.
fn take_tls_from_url(url: &str) -> Result<(String, TlsParameters), ConfigError> {
    let mut tls = TlsParameters::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), tls));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str| {
            percent_decode_str(text)
                .decode_utf8()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| ConfigError::invalid(FIELD, text, "percent-encodes invalid UTF-8"))
        };
        if !tls.take(&decode(key)?, &decode(value)?)? {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, tls))
}

/// Reads libpq's `key = value` pairs (values unquoted or in single quotes, `\` escaping), keeps
/// our parameters and writes the others back, quoted.
fn take_tls_from_key_values(text: &str) -> Result<(String, TlsParameters), ConfigError> {
    let mut tls = TlsParameters::default();
    let mut kept = Vec::new();
    for (key, value) in key_values(text)? {
        if !tls.take(&key, &value)? {
            let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{escaped}'"));
        }
    }
    Ok((kept.join(" "), tls))
}

fn key_values(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let malformed =
        |reason: &str| ConfigError::invalid(FIELD, "(not shown: it may hold a password)", reason);
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(malformed(&format!(
                "a key=value connection string has `{key}` without `=`"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return Err(malformed(&format!(
                            "the value of `{key}` has no closing quote"
                        )));
                    }
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// The parts of an RDS secret's JSON `SecretString` (what RDS writes for a managed master user,
/// `username` and `password`, and for its rotation templates, also `host`, `port`, `dbname`).
#[derive(Debug, serde::Deserialize)]
struct RdsSecret {
    username: String,
    password: String,
    host: Option<String>,
    port: Option<serde_json::Value>,
    dbname: Option<String>,
}

/// A `postgres://` URL built from an RDS secret's JSON, with `DATABASE_HOST`, `DATABASE_PORT`
/// and `DATABASE_NAME` filling what the JSON leaves out (a managed master user's secret holds
/// only the user and password). `variable` names where the JSON came from, for errors.
pub fn url_from_rds_secret(json: &str, variable: &str) -> Result<String, ConfigError> {
    let invalid =
        |reason: String| ConfigError::invalid(variable, "(the secret's value, not shown)", reason);
    let secret: RdsSecret = serde_json::from_str(json).map_err(|error| {
        invalid(format!(
            "the secret is JSON but not an RDS secret (username, password, host, port, dbname): {error}"
        ))
    })?;
    let host = match (secret.host, config::maybe::<String>("DATABASE_HOST")?) {
        (Some(host), _) | (None, Some(host)) => host,
        (None, None) => {
            return Err(invalid(
                "the secret has no `host`: set DATABASE_HOST (and DATABASE_PORT, DATABASE_NAME)"
                    .to_owned(),
            ));
        }
    };
    let port: u16 = match secret.port {
        // RDS writes the port as a number; some hand-made secrets write it as a string.
        Some(serde_json::Value::Number(number)) => number
            .as_u64()
            .and_then(|port| u16::try_from(port).ok())
            .ok_or_else(|| invalid(format!("`port` {number} is not a TCP port")))?,
        Some(serde_json::Value::String(text)) => text
            .parse()
            .map_err(|_| invalid(format!("`port` {text:?} is not a TCP port")))?,
        Some(other) => return Err(invalid(format!("`port` {other} is not a TCP port"))),
        None => config::optional("DATABASE_PORT", 5432)?,
    };
    let dbname = match secret.dbname {
        Some(dbname) => dbname,
        None => config::optional("DATABASE_NAME", "postgres".to_owned())?,
    };
    let encode = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(format!(
        "postgres://{}:{}@{host}:{port}/{}",
        encode(&secret.username),
        encode(&secret.password),
        encode(&dbname)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConnectionSettings, ConfigError> {
        ConnectionSettings::parse(text, &TlsDefaults::default())
    }

    #[test]
    fn a_url_keeps_its_other_parameters_and_loses_the_tls_ones() {
        let settings = parse(
            "postgres://u:p%40ss@db.example:6543/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fopt%2Frds.pem",
        )
        .unwrap();
        assert_eq!(settings.ssl_mode, SslMode::VerifyFull);
        assert_eq!(
            settings.root_certificates,
            Some(RootCertificates::File {
                path: "/opt/rds.pem".into(),
                named_by: "sslrootcert".into()
            })
        );
        assert_eq!(settings.postgres.get_application_name(), Some("x"));
        assert_eq!(settings.postgres.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(settings.postgres.get_ports(), [6543]);
        assert_eq!(
            settings.postgres.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
    }

    #[test]
    fn a_key_value_string_keeps_quoted_values() {
        let settings = parse(
            "host=db.example user=u password='it\\'s a \\\\ pass' sslmode = require dbname=app",
        )
        .unwrap();
        assert_eq!(settings.ssl_mode, SslMode::Require);
        assert_eq!(
            settings.postgres.get_password(),
            Some(&b"it's a \\ pass"[..])
        );
        assert_eq!(settings.postgres.get_dbname(), Some("app"));
    }

    #[test]
    fn the_default_is_prefer_and_the_environment_defaults_apply_when_the_string_is_silent() {
        assert_eq!(
            parse("postgres://u@h/db").unwrap().ssl_mode,
            SslMode::Prefer
        );
        let defaults = TlsDefaults {
            ssl_mode: Some(SslMode::VerifyFull),
            root_certificates: Some(RootCertificates::System {
                named_by: "DATABASE_CA_BUNDLE".to_owned(),
            }),
        };
        let settings = ConnectionSettings::parse("postgres://u@h/db", &defaults).unwrap();
        assert_eq!(settings.ssl_mode, SslMode::VerifyFull);
        let settings =
            ConnectionSettings::parse("postgres://u@h/db?sslmode=disable", &defaults).unwrap();
        assert_eq!(settings.ssl_mode, SslMode::Disable, "the string wins");
    }

    #[test]
    fn bad_settings_are_refused_naming_the_field_and_the_reason() {
        let error = parse("postgres://u:secret@h/db?sslmode=verify-fool")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("DATABASE_URL") && error.contains("verify-fool"),
            "{error}"
        );
        assert!(error.contains("verify-full"), "{error}");
        assert!(
            !error.contains("secret"),
            "the password stays out of errors: {error}"
        );

        let error = parse("postgres://u@h/db?sslmode=verify-full")
            .unwrap_err()
            .to_string();
        assert!(error.contains("sslrootcert"), "{error}");

        let error = parse("host=h sslcert=/c.pem").unwrap_err().to_string();
        assert!(
            error.contains("sslcert") && error.contains("not supported"),
            "{error}"
        );

        let error = parse("postgres://u:secret@h/db?nonsense=1")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("DATABASE_URL") && !error.contains("secret"),
            "{error}"
        );

        let settings =
            parse("postgres://u@h/db?sslmode=verify-ca&sslrootcert=/no/such.pem").unwrap();
        let error = settings.verification().unwrap_err().to_string();
        assert!(
            error.contains("sslrootcert") && error.contains("/no/such.pem"),
            "{error}"
        );
    }

    #[test]
    fn an_rds_secret_becomes_a_url_with_its_parts_encoded() {
        let url = url_from_rds_secret(
            r#"{"username":"app","password":"p@ss/w:rd","engine":"postgres","host":"db.x.rds.amazonaws.com","port":5432,"dbname":"appraise"}"#,
            "DATABASE_URL_SECRET_ID",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://app:p%40ss%2Fw%3Ard@db.x.rds.amazonaws.com:5432/appraise"
        );
        let config: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"p@ss/w:rd"[..]));

        let error = url_from_rds_secret(r#"{"username":"app"}"#, "DATABASE_URL_SECRET_ID")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("DATABASE_URL_SECRET_ID") && error.contains("password"),
            "{error}"
        );
    }
}
