//! The ingest stage's settings, read once at start from the environment.

use std::time::Duration;

use appraise_core::config::{self, ConfigError};

/// Where the batch API is and how patiently to talk to it.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Base URL of the batch API, e.g. `http://127.0.0.1:8000` or `https://…` (no trailing
    /// slash).
    pub base_url: String,
    /// CA certificates trusted for an https batch API besides the system's (`SOURCE_CA_BUNDLE`,
    /// a PEM file), for an API whose certificate a private CA signed.
    pub extra_roots: Vec<reqwest::Certificate>,
    pub group_number: u32,
    /// The course API's optional `day` parameter, e.g. `Tuesday`.
    pub day: Option<String>,
    /// Limit for one whole request, body included.
    pub timeout: Duration,
    /// Further attempts after a failed one (5xx, connection error, timeout, unreadable body).
    pub retries: u32,
    /// Wait before the first retry; doubled for each next one.
    pub backoff: Duration,
}

impl SourceConfig {
    /// `builder` trusting [`SourceConfig::extra_roots`] as well as the system's roots.
    pub fn trust(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        self.extra_roots
            .iter()
            .cloned()
            .fold(builder, reqwest::ClientBuilder::add_root_certificate)
    }
}

/// The certificates of the PEM file that variable `name` names; none when it is unset.
fn extra_roots_from_env(name: &str) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let Some(path) = config::maybe::<String>(name)? else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(&path).map_err(|error| {
        ConfigError::invalid(name, &path, format!("cannot read the CA bundle: {error}"))
    })?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
        ConfigError::invalid(name, &path, format!("not a PEM CA bundle: {error}"))
    })?;
    if certificates.is_empty() {
        return Err(ConfigError::invalid(
            name,
            &path,
            "the file holds no PEM certificate",
        ));
    }
    Ok(certificates)
}

/// How many records of a batch are kept, and how they are chosen.
#[derive(Debug, Clone, Copy)]
pub struct SamplingConfig {
    /// Records kept from the first batch ever stored (the seed kept 145,000).
    pub first_batch: usize,
    /// Records kept from every later batch (the seed kept 10,000).
    pub later_batches: usize,
    /// The sample of batch `b` is a pure function of (seed, b).
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub source: SourceConfig,
    pub sampling: SamplingConfig,
}

impl IngestConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let base_url: String = config::required("SOURCE_URL", "the batch API's base URL")?;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::invalid(
                "SOURCE_URL",
                &base_url,
                "must start with http:// or https://",
            ));
        }
        Ok(IngestConfig {
            source: SourceConfig {
                base_url: base_url.trim_end_matches('/').to_owned(),
                extra_roots: extra_roots_from_env("SOURCE_CA_BUNDLE")?,
                group_number: config::optional("SOURCE_GROUP", 9)?,
                day: config::maybe("SOURCE_DAY")?,
                timeout: config::seconds("SOURCE_TIMEOUT_SECS", Duration::from_secs(120))?,
                retries: config::optional("SOURCE_RETRIES", 4)?,
                backoff: config::seconds("SOURCE_BACKOFF_SECS", Duration::from_millis(500))?,
            },
            sampling: SamplingConfig {
                first_batch: config::optional("INGEST_FIRST_SAMPLE", 145_000)?,
                later_batches: config::optional("INGEST_LATER_SAMPLE", 10_000)?,
                seed: config::optional("INGEST_SAMPLE_SEED", 42)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, value: &str) {
        // SAFETY: variable names unique to this test, so parallel tests cannot interfere.
        unsafe { std::env::set_var(name, value) };
    }

    #[test]
    fn a_ca_bundle_is_read_at_start_or_refused_naming_the_variable() {
        assert!(
            extra_roots_from_env("APPRAISE_TEST_CA_UNSET")
                .unwrap()
                .is_empty()
        );

        set("APPRAISE_TEST_CA_MISSING", "/no/such/ca.pem");
        let error = extra_roots_from_env("APPRAISE_TEST_CA_MISSING")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("APPRAISE_TEST_CA_MISSING") && error.contains("cannot read"),
            "{error}"
        );

        let dir = std::env::temp_dir().join(format!("appraise-ca-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        set("APPRAISE_TEST_CA_EMPTY", not_pem.to_str().unwrap());
        let error = extra_roots_from_env("APPRAISE_TEST_CA_EMPTY")
            .unwrap_err()
            .to_string();
        assert!(error.contains("APPRAISE_TEST_CA_EMPTY"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
