//! The predictor's state, shared by every request: the configuration, the model slot and how
//! it is kept current, the inference log, the MLflow mirror (when there is one), and the
//! metrics a request records.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use appraise_core::{
    db::DbPool,
    events::Trigger,
    objects::ObjectStore,
    runtime::{StageError, StageResult},
};
use appraise_mlflow::Mirror;
use serde_json::json;

use crate::{
    config::PredictConfig,
    error::ApiError,
    explanation::Explained,
    inference_log::{Entry, InferenceLog},
    input_drift::InputDrift,
    model_slot::{LoadedModel, ModelSlot, Refresh},
    prediction_id::{PredictionId, PredictionIds},
    request::{ListingInput, Problem},
};

/// The predictor's state, shared by every request. Cheap to clone.
#[derive(Clone)]
pub struct Predictor {
    inner: Arc<Inner>,
}

struct Inner {
    config: PredictConfig,
    slot: ModelSlot,
    objects: ObjectStore,
    db: DbPool,
    log: InferenceLog,
    /// Where rollbacks are mirrored (`MLFLOW_TRACKING_URI` set), see [`crate::rollback`].
    mirror: Option<Mirror>,
    ids: PredictionIds,
    /// The served-input drift test's reference sample and last report.
    input_drift: InputDrift,
    /// When the production pointer was last read by [`Predictor::poll_if_due`].
    last_poll: Mutex<Option<Instant>>,
    latency: metrics::Histogram,
    explanation_latency: metrics::Histogram,
    invalid: metrics::Counter,
    not_ready: metrics::Counter,
}

impl Predictor {
    /// Builds the state and starts the inference-log writer; call [`Predictor::watch`] to
    /// load the model and keep it current. Rollbacks are mirrored through `mirror`, if any.
    pub fn new(
        config: PredictConfig,
        db: DbPool,
        objects: ObjectStore,
        mirror: Option<Mirror>,
    ) -> Predictor {
        let log = InferenceLog::start(db.clone(), config.log_buffer);
        Predictor::with_log(config, db, objects, log, mirror)
    }

    /// Builds the state for Lambda: no background task; serve it with
    /// [`lambda_router`](crate::lambda_router), which polls and writes the log inside each
    /// request.
    pub fn for_lambda(
        config: PredictConfig,
        db: DbPool,
        objects: ObjectStore,
        mirror: Option<Mirror>,
    ) -> Predictor {
        let log = InferenceLog::on_demand(db.clone(), config.log_buffer);
        Predictor::with_log(config, db, objects, log, mirror)
    }

    fn with_log(
        config: PredictConfig,
        db: DbPool,
        objects: ObjectStore,
        log: InferenceLog,
        mirror: Option<Mirror>,
    ) -> Predictor {
        Predictor {
            inner: Arc::new(Inner {
                config,
                slot: ModelSlot::default(),
                objects,
                db,
                log,
                mirror,
                ids: PredictionIds::default(),
                input_drift: InputDrift::default(),
                last_poll: Mutex::new(None),
                latency: metrics::histogram!("prediction_latency_seconds"),
                explanation_latency: metrics::histogram!("explanation_latency_seconds"),
                invalid: metrics::counter!("prediction_errors_total", "reason" => "invalid_input"),
                not_ready: metrics::counter!("prediction_errors_total", "reason" => "no_model"),
            }),
        }
    }

    pub fn slot(&self) -> &ModelSlot {
        &self.inner.slot
    }

    pub(crate) fn config(&self) -> &PredictConfig {
        &self.inner.config
    }

    pub(crate) fn db(&self) -> &DbPool {
        &self.inner.db
    }

    pub(crate) fn objects(&self) -> &ObjectStore {
        &self.inner.objects
    }

    pub(crate) fn input_drift(&self) -> &InputDrift {
        &self.inner.input_drift
    }

    pub(crate) fn mirror(&self) -> Option<&Mirror> {
        self.inner.mirror.as_ref()
    }

    /// Loads the production model now, then re-reads the pointer every poll interval.
    pub fn watch(&self) {
        let predictor = self.clone();
        tokio::spawn(async move {
            let interval = predictor.inner.config.poll_interval;
            loop {
                if let Err(error) = predictor.refresh().await {
                    tracing::warn!(error = format!("{error:#}"), "could not refresh the model");
                }
                if interval.is_zero() {
                    break;
                }
                tokio::time::sleep(interval).await;
            }
        });
    }

    /// Re-reads the production pointer if it was never read, or if the poll interval has
    /// passed since it last was (with a zero interval: only the first time). A failure is
    /// logged and the current model keeps serving; the next poll tries again.
    pub async fn poll_if_due(&self) {
        let interval = self.inner.config.poll_interval;
        let due = {
            let mut last = self
                .inner
                .last_poll
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let due = match *last {
                None => true,
                Some(at) => !interval.is_zero() && at.elapsed() >= interval,
            };
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due && let Err(error) = self.refresh().await {
            tracing::warn!(error = format!("{error:#}"), "could not refresh the model");
        }
    }

    /// Re-reads the production pointer and loads the model it names if it is not the one
    /// served.
    pub(crate) async fn refresh(&self) -> anyhow::Result<Refresh> {
        self.inner.slot.refresh(&self.inner.objects).await
    }

    /// What `POST /` does with an event: a `production/` object (or a schedule tick)
    /// re-reads the pointer; anything else is ignored.
    pub async fn on_event(&self, trigger: Trigger) -> StageResult {
        if let Trigger::ObjectCreated(object) = &trigger
            && !object.key.starts_with("production/")
        {
            return Ok(json!({"outcome": "ignored", "key": object.key}));
        }
        let refresh = self
            .refresh()
            .await
            .map_err(|e| StageError::Unavailable(format!("{e:#}")))?;
        Ok(serde_json::to_value(refresh).expect("a refresh report serializes"))
    }

    /// The model serving now; without one, [`ApiError::NotReady`], counted as
    /// `prediction_errors_total{reason="no_model"}`.
    pub(crate) fn model(&self) -> Result<Arc<LoadedModel>, ApiError> {
        self.inner.slot.current().ok_or_else(|| {
            self.inner.not_ready.increment(1);
            ApiError::NotReady
        })
    }

    /// [`ApiError::Invalid`], counted as `prediction_errors_total{reason="invalid_input"}`.
    pub(crate) fn invalid(&self, problems: Vec<Problem>) -> ApiError {
        self.inner.invalid.increment(1);
        ApiError::Invalid(problems)
    }

    /// Prices validated listings with one model (the same one for all of them).
    pub(crate) fn price(
        &self,
        model: &LoadedModel,
        listings: &[ListingInput],
        today: time::Date,
    ) -> Vec<f64> {
        listings
            .iter()
            .map(|listing| model.artifact.predict(&listing.features(today)))
            .collect()
    }

    /// Prices and explains validated listings with one model, on a blocking thread (an
    /// explanation costs up to milliseconds per row; see [`crate::explanation`]).
    pub(crate) async fn explain(
        &self,
        model: &Arc<LoadedModel>,
        listings: Vec<ListingInput>,
        today: time::Date,
    ) -> Result<Explained, ApiError> {
        let model = Arc::clone(model);
        tokio::task::spawn_blocking(move || {
            crate::explanation::explain_all(&model.artifact, listings, today)
        })
        .await
        .map_err(|error| ApiError::Unavailable(format!("the explanation failed: {error}")))?
    }

    /// A new prediction id ([`crate::prediction_id`]).
    pub(crate) fn new_prediction_id(&self) -> PredictionId {
        self.inner.ids.next()
    }

    /// Records one answered prediction: its latency (`prediction_latency_seconds`), the
    /// model's count, the inference log.
    pub(crate) fn log(
        &self,
        model: &LoadedModel,
        prediction_id: PredictionId,
        listing: ListingInput,
        price: f64,
        started: Instant,
    ) {
        self.record(
            &self.inner.latency,
            model,
            prediction_id,
            listing,
            price,
            started,
        );
    }

    /// [`Predictor::log`] for a prediction answered with its explanation, whose latency goes
    /// to `explanation_latency_seconds` (an explanation costs far more than a price).
    pub(crate) fn log_explained(
        &self,
        model: &LoadedModel,
        prediction_id: PredictionId,
        listing: ListingInput,
        price: f64,
        started: Instant,
    ) {
        let latency = &self.inner.explanation_latency;
        self.record(latency, model, prediction_id, listing, price, started);
    }

    fn record(
        &self,
        latency: &metrics::Histogram,
        model: &LoadedModel,
        prediction_id: PredictionId,
        listing: ListingInput,
        price: f64,
        started: Instant,
    ) {
        let elapsed = started.elapsed();
        latency.record(elapsed.as_secs_f64());
        model.predictions.increment(1);
        self.inner.log.record(Entry {
            prediction_id,
            predicted_at: time::OffsetDateTime::now_utc(),
            model_version: model.log_version.clone(),
            listing,
            predicted_price: price,
            latency_us: elapsed.as_micros().min(u128::from(u32::MAX)) as u32,
        });
    }

    /// Writes the inference log's buffered rows now (Lambda, before the answer leaves).
    pub(crate) async fn flush_log(&self) {
        self.inner.log.flush().await;
    }
}
