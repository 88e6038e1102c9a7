//! The predictor's settings, read once at start from the environment.

use std::time::Duration;

use appraise_core::{config, drift::DriftConfig, secrets};

use crate::input_drift::InputDriftConfig;

#[derive(Debug, Clone)]
pub struct PredictConfig {
    /// The operator's bearer token, which `POST /reload_model` and the `POST /runs/…` actions
    /// require; they are refused when it is unset.
    /// A secret: `PREDICT_RELOAD_TOKEN`, or `_SECRET_ID` / `_SSM_PARAMETER` ([`secrets`]);
    /// kept as a [`secrets::Secret`], whose `Debug` does not show it, until it is compared.
    pub reload_token: Option<secrets::Secret>,
    /// How often each replica reads `production/current.json` to notice a promotion by itself;
    /// zero turns polling off (events and `/reload_model` still reload).
    pub poll_interval: Duration,
    /// Predictions that may wait for the inference-log writer before new ones are dropped.
    pub log_buffer: usize,
    /// Listings per batch request, at most.
    pub max_batch: usize,
    /// Listings per batch request with `"explain": true`, at most (an explanation costs
    /// milliseconds per row for a forest; see the README).
    pub max_explain_batch: usize,
    /// The model's name in the Open Inference Protocol (`/v2/models/{name}`).
    pub model_name: String,
    /// How often the pipeline gauges are read from PostgreSQL ([`crate::pipeline_gauges`]);
    /// zero turns them off (they stay at 0).
    pub pipeline_gauges_interval: Duration,
    /// The test of served inputs for drift ([`crate::input_drift`]).
    pub input_drift: InputDriftConfig,
    /// How often it runs in the background (`PREDICT_INPUT_DRIFT_SECONDS`; zero: only on
    /// `GET /drift/predictions`).
    pub input_drift_interval: Duration,
}

impl Default for PredictConfig {
    fn default() -> Self {
        PredictConfig {
            reload_token: None,
            poll_interval: Duration::from_secs(5),
            log_buffer: 100_000,
            max_batch: 10_000,
            max_explain_batch: 500,
            model_name: "appraise".to_owned(),
            pipeline_gauges_interval: Duration::from_secs(30),
            input_drift: InputDriftConfig::default(),
            input_drift_interval: Duration::from_secs(300),
        }
    }
}

impl PredictConfig {
    /// Reads the settings, fetching the reload token from Secrets Manager or SSM if so set.
    pub async fn from_env() -> Result<Self, secrets::SecretError> {
        let defaults = PredictConfig::default();
        let reload_token = secrets::optional("PREDICT_RELOAD_TOKEN").await?;
        Ok(PredictConfig {
            reload_token: reload_token.filter(|token| !token.value().is_empty()),
            poll_interval: config::seconds("PREDICT_POLL_SECONDS", defaults.poll_interval)?,
            log_buffer: config::optional("PREDICT_LOG_BUFFER", defaults.log_buffer)?,
            max_batch: config::optional("PREDICT_MAX_BATCH", defaults.max_batch)?,
            max_explain_batch: config::optional(
                "PREDICT_MAX_EXPLAIN_BATCH",
                defaults.max_explain_batch,
            )?,
            model_name: config::optional("PREDICT_MODEL_NAME", defaults.model_name)?,
            pipeline_gauges_interval: config::seconds(
                "PREDICT_PIPELINE_GAUGES_SECONDS",
                defaults.pipeline_gauges_interval,
            )?,
            input_drift: InputDriftConfig {
                sample: config::optional("PREDICT_DRIFT_SAMPLE", defaults.input_drift.sample)?,
                reuse: config::seconds(
                    "PREDICT_INPUT_DRIFT_REUSE_SECONDS",
                    defaults.input_drift.reuse,
                )?,
                drift: DriftConfig::from_env()?,
            },
            input_drift_interval: config::seconds(
                "PREDICT_INPUT_DRIFT_SECONDS",
                defaults.input_drift_interval,
            )?,
        })
    }
}
