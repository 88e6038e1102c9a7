//! The production model the predictor serves, swapped atomically.
//!
//! [`ModelSlot`] holds at most one [`LoadedModel`] behind an `ArcSwapOption`: a request takes
//! the current `Arc` once and is answered entirely by that model, so a swap in the middle of
//! traffic answers each request with the old model or the new one, never with neither.
//! [`ModelSlot::refresh`] reads `production/current.json` and loads the artifact it names
//! when its version differs from the one served; it runs at start, on `production/` object
//! events, on `POST /reload_model`, and every few seconds (each replica notices a promotion by
//! itself, since one object event reaches only one of many replicas).

use std::sync::Arc;

use anyhow::Context;
use appraise_core::{
    keys,
    model::{ModelArtifact, ProductionPointer},
    objects::ObjectStore,
};
use arc_swap::ArcSwapOption;
use serde::Serialize;

/// A model ready to answer, with what the responses and metrics report about it.
pub struct LoadedModel {
    pub pointer: ProductionPointer,
    pub artifact: ModelArtifact,
    pub loaded_at: time::OffsetDateTime,
    /// The version, shared cheaply with every inference-log entry.
    pub log_version: Arc<str>,
    /// `predictions_total{model_version=…}`, registered once per version.
    pub predictions: metrics::Counter,
}

impl LoadedModel {
    pub fn version(&self) -> &str {
        &self.pointer.version
    }

    pub fn rmse(&self) -> f64 {
        self.pointer.test.rmse
    }
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Refresh {
    /// No production pointer yet (nothing promoted).
    NoModel,
    Unchanged {
        model_version: String,
    },
    Loaded {
        model_version: String,
        previous_version: Option<String>,
    },
}

pub struct ModelSlot {
    current: ArcSwapOption<LoadedModel>,
    /// One refresh at a time, so two triggers at once load a new model once.
    refreshing: tokio::sync::Mutex<()>,
}

impl Default for ModelSlot {
    fn default() -> Self {
        ModelSlot {
            current: ArcSwapOption::empty(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }
}

impl ModelSlot {
    /// The model serving now, if any.
    pub fn current(&self) -> Option<Arc<LoadedModel>> {
        self.current.load_full()
    }

    /// Loads the production model if it is not the one served.
    pub async fn refresh(&self, objects: &ObjectStore) -> anyhow::Result<Refresh> {
        let _one_at_a_time = self.refreshing.lock().await;
        let Some(bytes) = objects.get(keys::PRODUCTION_POINTER).await? else {
            return Ok(Refresh::NoModel);
        };
        let pointer: ProductionPointer = serde_json::from_slice(&bytes)
            .with_context(|| format!("reading {}", keys::PRODUCTION_POINTER))?;
        let previous = self.current();
        if let Some(current) = &previous
            && current.version() == pointer.version
        {
            return Ok(Refresh::Unchanged {
                model_version: pointer.version,
            });
        }
        let started = std::time::Instant::now();
        let body = objects
            .get(&pointer.artifact_key)
            .await?
            .with_context(|| format!("the artifact {} is missing", pointer.artifact_key))?;
        let fetched = started.elapsed();
        let artifact_bytes = body.len();
        // Parsing a large forest takes milliseconds: off the request threads.
        let artifact = tokio::task::spawn_blocking(move || ModelArtifact::from_json(&body))
            .await
            .context("the artifact parsing task failed")?
            .with_context(|| format!("reading the artifact {}", pointer.artifact_key))?;
        anyhow::ensure!(
            artifact.version == pointer.version,
            "the artifact {} holds version {}, the pointer names {}",
            pointer.artifact_key,
            artifact.version,
            pointer.version
        );
        let model_version = pointer.version.clone();
        let predictions =
            metrics::counter!("predictions_total", "model_version" => model_version.clone());
        metrics::gauge!("model_rmse").set(pointer.test.rmse);
        self.current.store(Some(Arc::new(LoadedModel {
            log_version: Arc::from(model_version.as_str()),
            pointer,
            artifact,
            loaded_at: time::OffsetDateTime::now_utc(),
            predictions,
        })));
        let previous_version = previous.map(|p| p.version().to_owned());
        tracing::info!(
            %model_version,
            ?previous_version,
            artifact_bytes,
            fetch_ms = fetched.as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "model loaded"
        );
        Ok(Refresh::Loaded {
            model_version,
            previous_version,
        })
    }
}
