//! The predictor: serves the production model over HTTP.
//!
//! - `POST /predict` prices one listing (the seed's body, see [`request`]) and answers
//!   `{predicted_price, model_version, model_rmse}`; `POST /predict/batch` prices
//!   `{"listings": [...]}` at once.
//! - `GET /health` (liveness) and `GET /ready` (503 until a model is loaded).
//! - `POST /reload_model` (bearer token) re-reads the production pointer; so do `production/`
//!   object events on `POST /`, and a poll every few seconds ([`model_slot`]).
//! - `GET /metrics`: `predictions_total{model_version}`, `prediction_latency_seconds`,
//!   `prediction_errors_total{reason}`, `model_rmse`, the inference log's counters, and the
//!   process's own (memory, CPU).
//! - The Open Inference Protocol v2 subset KServe clients use ([`oip`]).
//! - `GET /openapi.json` describes all of it; `GET /` is the web page (prediction form, model
//!   history, RMSE chart, drift reports), fed by `GET /api/models` and `GET /api/drift`.
//!
//! Every prediction is logged to PostgreSQL off the request path ([`inference_log`]). Bad input
//! gets a 4xx naming each field and the reason; the server never answers 5xx for it.
//!
//! # On AWS Lambda
//!
//! The same routes are served through a function URL ([`lambda_router`]). Lambda runs one
//! request at a time per execution environment and freezes it between requests, so the two
//! background tasks of the server would stall, and the log could sit unwritten in a frozen
//! buffer until the environment is recycled and it is lost. Both are done inside the request
//! instead, which is simple and needs no Lambda extension:
//!
//! - the pointer poll is lazy: a request first re-reads `production/current.json` when
//!   `PREDICT_POLL_SECONDS` have passed since the last read ([`Predictor::poll_if_due`]; one
//!   small GET every few seconds of traffic, and the model itself is fetched only when the
//!   version changed). The model is loaded during the function's init, before the first request.
//!   No `production/` notification is routed to the predictor on Lambda: it would reach one
//!   environment out of many, and the lazy poll already covers all of them;
//! - the inference log is written before the answer leaves ([`inference_log::InferenceLog::flush`],
//!   one `COPY` of that request's rows): a few milliseconds per request, and nothing is lost
//!   when Lambda freezes or recycles the environment.

pub mod config;
pub mod history;
pub mod inference_log;
pub mod model_slot;
pub mod oip;
pub mod request;
#[cfg(feature = "testing")]
pub mod testing;

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use appraise_core::{
    db::DbPool,
    events::Trigger,
    objects::ObjectStore,
    runtime::{self, StageError, StageResult},
};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde::Serialize;
use serde_json::json;

use crate::{
    config::PredictConfig,
    inference_log::{Entry, InferenceLog},
    model_slot::{LoadedModel, ModelSlot},
    request::{Listing, Problem},
};

/// The web page: one self-contained file, no external assets.
const PAGE: &str = include_str!("page.html");
/// The OpenAPI 3 description of every endpoint.
const OPENAPI: &str = include_str!("openapi.json");

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
    /// When the production pointer was last read by [`Predictor::poll_if_due`].
    last_poll: Mutex<Option<Instant>>,
    latency: metrics::Histogram,
    invalid: metrics::Counter,
    not_ready: metrics::Counter,
}

/// `{predicted_price, model_version, model_rmse}`.
#[derive(Debug, Serialize)]
pub struct Prediction<'a> {
    pub predicted_price: f64,
    pub model_version: &'a str,
    pub model_rmse: f64,
}

impl Predictor {
    /// Builds the state and starts the inference-log writer; call [`Predictor::watch`] to
    /// load the model and keep it current.
    pub fn new(config: PredictConfig, db: DbPool, objects: ObjectStore) -> Predictor {
        let log = InferenceLog::start(db.clone(), config.log_buffer);
        Predictor::with_log(config, db, objects, log)
    }

    /// Builds the state for Lambda: no background task; serve it with [`lambda_router`],
    /// which polls and writes the log inside each request.
    pub fn for_lambda(config: PredictConfig, db: DbPool, objects: ObjectStore) -> Predictor {
        let log = InferenceLog::on_demand(db.clone(), config.log_buffer);
        Predictor::with_log(config, db, objects, log)
    }

    fn with_log(
        config: PredictConfig,
        db: DbPool,
        objects: ObjectStore,
        log: InferenceLog,
    ) -> Predictor {
        Predictor {
            inner: Arc::new(Inner {
                config,
                slot: ModelSlot::default(),
                objects,
                db,
                log,
                last_poll: Mutex::new(None),
                latency: metrics::histogram!("prediction_latency_seconds"),
                invalid: metrics::counter!("prediction_errors_total", "reason" => "invalid_input"),
                not_ready: metrics::counter!("prediction_errors_total", "reason" => "no_model"),
            }),
        }
    }

    pub fn slot(&self) -> &ModelSlot {
        &self.inner.slot
    }

    /// Loads the production model now, then re-reads the pointer every poll interval.
    pub fn watch(&self) {
        let predictor = self.clone();
        tokio::spawn(async move {
            let interval = predictor.inner.config.poll_interval;
            loop {
                if let Err(error) = predictor.inner.slot.refresh(&predictor.inner.objects).await {
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
        if due && let Err(error) = self.inner.slot.refresh(&self.inner.objects).await {
            tracing::warn!(error = format!("{error:#}"), "could not refresh the model");
        }
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
            .inner
            .slot
            .refresh(&self.inner.objects)
            .await
            .map_err(|e| StageError::Unavailable(format!("{e:#}")))?;
        Ok(serde_json::to_value(refresh).expect("a refresh report serializes"))
    }

    /// Prices validated listings with one model (the same one for all of them).
    fn price(&self, model: &LoadedModel, listings: &[Listing], today: time::Date) -> Vec<f64> {
        listings
            .iter()
            .map(|listing| model.artifact.predict(&listing.features(today)))
            .collect()
    }

    fn log(&self, model: &LoadedModel, listing: Listing, price: f64, started: Instant) {
        let elapsed = started.elapsed();
        self.inner.latency.record(elapsed.as_secs_f64());
        model.predictions.increment(1);
        self.inner.log.record(Entry {
            predicted_at: time::OffsetDateTime::now_utc(),
            model_version: model.log_version.clone(),
            listing,
            predicted_price: price,
            latency_us: elapsed.as_micros().min(u128::from(u32::MAX)) as u32,
        });
    }

    fn invalid(&self, problems: Vec<Problem>) -> Response {
        self.inner.invalid.increment(1);
        invalid_response(problems)
    }

    fn not_ready(&self) -> Response {
        self.inner.not_ready.increment(1);
        runtime::error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "no model is loaded yet: nothing has been promoted to production",
        )
    }
}

/// 422 with `{"error", "problems": [{"field", "reason"}]}`.
pub fn invalid_response(problems: Vec<Problem>) -> Response {
    problems_response(StatusCode::UNPROCESSABLE_ENTITY, "invalid input", problems)
}

/// The predictor's error body for bad input: `{"error", "problems": [{"field", "reason"}]}`,
/// the error being `what` followed by every problem.
fn problems_response(status: StatusCode, what: &str, problems: Vec<Problem>) -> Response {
    let summary = problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.reason))
        .collect::<Vec<_>>()
        .join("; ");
    (
        status,
        Json(json!({ "error": format!("{what}: {summary}"), "problems": problems })),
    )
        .into_response()
}

/// Gives every 413 the predictor's JSON error body. A body over a route's [`DefaultBodyLimit`]
/// is refused by axum's extractor (`Bytes`) with a plain-text 413 before any handler runs; this
/// one layer over the whole router renders all of them, whatever the route or extractor.
async fn json_payload_too_large(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    problems_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body too large",
        vec![Problem::new(
            "body",
            format!(
                "is larger than this endpoint accepts (POST /predict: {} KiB; /predict/batch and \
                 /v2/models/{{name}}/infer: {} MiB; events on POST /: {} MiB)",
                MAX_PREDICT_BODY / 1024,
                MAX_BATCH_BODY / (1024 * 1024),
                MAX_EVENT_BODY / (1024 * 1024),
            ),
        )],
    )
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// Largest single-listing body accepted.
const MAX_PREDICT_BODY: usize = 64 * 1024;
/// Largest batch body accepted, also for an inference request ([`oip`]).
const MAX_BATCH_BODY: usize = 16 * 1024 * 1024;
/// Largest event body accepted on `POST /` (axum's default, stated).
const MAX_EVENT_BODY: usize = 2 * 1024 * 1024;

/// Every route of the predictor (the runtime adds `/healthz` and `/metrics`).
pub fn router(predictor: Predictor) -> Router {
    let events = {
        let predictor = predictor.clone();
        runtime::event_endpoint(move |trigger| {
            let predictor = predictor.clone();
            async move { predictor.on_event(trigger).await }
        })
    };
    Router::new()
        .route(
            "/",
            events
                .get(|| async { Html(PAGE) })
                .layer(DefaultBodyLimit::max(MAX_EVENT_BODY)),
        )
        .route(
            "/predict",
            post(predict).layer(DefaultBodyLimit::max(MAX_PREDICT_BODY)),
        )
        .route(
            "/predict/batch",
            post(predict_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)),
        )
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/reload_model", post(reload_model))
        .route("/api/models", get(api_models))
        .route("/api/drift", get(api_drift))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .merge(oip::routes())
        .layer(axum::middleware::map_response(json_payload_too_large))
        .with_state(predictor)
}

/// [`router`] for Lambda: each request first polls the production pointer when due, and the
/// inference log is written before the answer leaves (see the module docs).
pub fn lambda_router(predictor: Predictor) -> Router {
    router(predictor.clone()).layer(axum::middleware::from_fn_with_state(
        predictor,
        within_invocation,
    ))
}

async fn within_invocation(
    State(predictor): State<Predictor>,
    request: Request,
    next: Next,
) -> Response {
    predictor.poll_if_due().await;
    let response = next.run(request).await;
    predictor.inner.log.flush().await;
    response
}

async fn predict(State(predictor): State<Predictor>, body: Bytes) -> Response {
    let started = Instant::now();
    let today = today();
    let listing = match request::parse_listing(&body, today) {
        Ok(listing) => listing,
        Err(problems) => return predictor.invalid(problems),
    };
    let Some(model) = predictor.inner.slot.current() else {
        return predictor.not_ready();
    };
    let price = model.artifact.predict(&listing.features(today));
    let response = Json(Prediction {
        predicted_price: price,
        model_version: model.version(),
        model_rmse: model.rmse(),
    })
    .into_response();
    predictor.log(&model, listing, price, started);
    response
}

async fn predict_batch(State(predictor): State<Predictor>, body: Bytes) -> Response {
    let started = Instant::now();
    let today = today();
    let listings = match request::parse_batch(&body, today, predictor.inner.config.max_batch) {
        Ok(listings) => listings,
        Err(problems) => return predictor.invalid(problems),
    };
    let Some(model) = predictor.inner.slot.current() else {
        return predictor.not_ready();
    };
    let prices = predictor.price(&model, &listings, today);
    let response = Json(json!({
        "predictions": prices,
        "model_version": model.version(),
        "model_rmse": model.rmse(),
    }))
    .into_response();
    for (listing, price) in listings.into_iter().zip(prices) {
        predictor.log(&model, listing, price, started);
    }
    response
}

async fn health(State(predictor): State<Predictor>) -> Response {
    let model = predictor.inner.slot.current();
    Json(json!({
        "status": "ok",
        "model_loaded": model.is_some(),
        "model_version": model.as_ref().map(|m| m.version()),
    }))
    .into_response()
}

async fn ready(State(predictor): State<Predictor>) -> Response {
    match predictor.inner.slot.current() {
        Some(model) => Json(json!({
            "ready": true,
            "model_version": model.version(),
            "algorithm": model.pointer.algorithm,
            "model_rmse": model.rmse(),
            "promoted_at": model.pointer.promoted_at,
        }))
        .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "error": "no model is loaded yet" })),
        )
            .into_response(),
    }
}

async fn reload_model(State(predictor): State<Predictor>, headers: HeaderMap) -> Response {
    let Some(expected) = predictor.inner.config.reload_token.as_deref() else {
        return runtime::error_response(
            StatusCode::FORBIDDEN,
            "reloading by hand is disabled: set PREDICT_RELOAD_TOKEN to enable it",
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes())) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "error": "a valid bearer token is required (Authorization: Bearer …)" })),
        )
            .into_response();
    }
    match predictor.inner.slot.refresh(&predictor.inner.objects).await {
        Ok(refresh) => Json(refresh).into_response(),
        Err(error) => runtime::error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("could not reload the model: {error:#}"),
        ),
    }
}

/// Compares secrets without an early exit that would reveal how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn api_models(State(predictor): State<Predictor>) -> Response {
    match history::models(&predictor.inner.db).await {
        Ok(models) => Json(models).into_response(),
        Err(error) => runtime::error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the model history is unavailable: {error:#}"),
        ),
    }
}

async fn api_drift(State(predictor): State<Predictor>) -> Response {
    match history::drift_reports(&predictor.inner.db, 100).await {
        Ok(reports) => Json(reports).into_response(),
        Err(error) => runtime::error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the drift reports are unavailable: {error:#}"),
        ),
    }
}
