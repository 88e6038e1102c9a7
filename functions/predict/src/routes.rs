//! The predictor's HTTP routes and their handlers (the Open Inference Protocol's are in
//! [`crate::oip`]). Each handler parses its input, asks the [`Predictor`] state, and
//! answers JSON or an [`ApiError`].

use std::time::Instant;

use appraise_core::runtime;
use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde::Serialize;
use serde_json::json;

use crate::{
    Predictor,
    error::ApiError,
    explanation::{self, PriceExplanation},
    history::{self, DriftReports, Models},
    input_drift, lineage,
    model_slot::Refresh,
    oip,
    prediction_id::PredictionId,
    request::{self, Problem},
    rollback, runs,
};

/// The web page: one self-contained file, no external assets.
const PAGE: &str = include_str!("page.html");
/// The OpenAPI 3 description of every endpoint.
const OPENAPI: &str = include_str!("openapi.json");

/// Largest single-listing body accepted.
const MAX_PREDICT_BODY: usize = 64 * 1024;
/// Largest event body accepted on `POST /` (axum's default, stated).
const MAX_EVENT_BODY: usize = 2 * 1024 * 1024;

/// `{predicted_price, model_version, model_rmse, prediction_id}`.
#[derive(Debug, Serialize)]
pub struct Prediction<'a> {
    pub predicted_price: f64,
    pub model_version: &'a str,
    pub model_rmse: f64,
    /// Where the inference log and `GET /lineage/prediction/{id}` find this prediction.
    pub prediction_id: PredictionId,
}

/// What `POST /explain` answers: the price, the base value and each input field's
/// contribution ([`explanation`]).
#[derive(Debug, Serialize)]
pub struct ExplainedPrediction<'a> {
    pub predicted_price: f64,
    pub model_version: &'a str,
    pub model_rmse: f64,
    pub prediction_id: PredictionId,
    #[serde(flatten)]
    pub explanation: PriceExplanation,
}

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
            "/explain",
            post(explain).layer(DefaultBodyLimit::max(MAX_PREDICT_BODY)),
        )
        .route(
            "/predict/batch",
            post(predict_batch).layer(DefaultBodyLimit::max(request::MAX_BATCH_BODY)),
        )
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/reload_model", post(reload_model))
        .route("/models/{version}/promote", post(promote_model))
        .route("/api/models", get(api_models))
        .route("/api/drift", get(api_drift))
        .route("/lineage/model/{version}", get(lineage_model))
        .route("/lineage/prediction/{id}", get(lineage_prediction))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .merge(oip::routes())
        .merge(runs::routes())
        .merge(input_drift::routes())
        .layer(axum::middleware::map_response(json_payload_too_large))
        .with_state(predictor)
}

/// [`router`] for Lambda: each request first polls the production pointer when due, and the
/// inference log is written before the answer leaves (see the crate docs).
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
    predictor.flush_log().await;
    response
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
    ApiError::TooLarge(format!(
        "is larger than this endpoint accepts (POST /predict: {} KiB; /predict/batch and \
         /v2/models/{{name}}/infer: {} MiB; events on POST /: {} MiB)",
        MAX_PREDICT_BODY / 1024,
        request::MAX_BATCH_BODY / (1024 * 1024),
        MAX_EVENT_BODY / (1024 * 1024),
    ))
    .into_response()
}

async fn predict(State(predictor): State<Predictor>, body: Bytes) -> Result<Response, ApiError> {
    let started = Instant::now();
    let today = request::today();
    let listing =
        request::parse_listing(&body, today).map_err(|problems| predictor.invalid(problems))?;
    let model = predictor.model()?;
    let price = model.artifact.predict(&listing.features(today));
    let prediction_id = predictor.new_prediction_id();
    let response = Json(Prediction {
        predicted_price: price,
        model_version: model.version(),
        model_rmse: model.rmse(),
        prediction_id,
    })
    .into_response();
    predictor.log(&model, prediction_id, listing, price, started);
    Ok(response)
}

/// `POST /explain`: the `/predict` body, answered with the price taken apart. Logged as a
/// prediction; its time goes to `explanation_latency_seconds`.
async fn explain(State(predictor): State<Predictor>, body: Bytes) -> Result<Response, ApiError> {
    let started = Instant::now();
    let today = request::today();
    let listing =
        request::parse_listing(&body, today).map_err(|problems| predictor.invalid(problems))?;
    let model = predictor.model()?;
    let explanation::Explained {
        mut listings,
        prices,
        mut explanations,
    } = predictor.explain(&model, vec![listing], today).await?;
    let (listing, price, explanation) = (listings.remove(0), prices[0], explanations.remove(0));
    let prediction_id = predictor.new_prediction_id();
    let response = Json(ExplainedPrediction {
        predicted_price: price,
        model_version: model.version(),
        model_rmse: model.rmse(),
        prediction_id,
        explanation,
    })
    .into_response();
    predictor.log_explained(&model, prediction_id, listing, price, started);
    Ok(response)
}

async fn predict_batch(
    State(predictor): State<Predictor>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let today = request::today();
    let request::Batch {
        listings,
        explain: explained,
    } = request::parse_batch(
        &body,
        today,
        predictor.config().max_batch,
        predictor.config().max_explain_batch,
    )
    .map_err(|problems| predictor.invalid(problems))?;
    let model = predictor.model()?;
    let (listings, prices, explanations) = if explained {
        let explained = predictor.explain(&model, listings, today).await?;
        (
            explained.listings,
            explained.prices,
            Some(explained.explanations),
        )
    } else {
        let prices = predictor.price(&model, &listings, today);
        (listings, prices, None)
    };
    let prediction_ids: Vec<PredictionId> = prices
        .iter()
        .map(|_| predictor.new_prediction_id())
        .collect();
    let mut answer = json!({
        "predictions": prices,
        "model_version": model.version(),
        "model_rmse": model.rmse(),
        "prediction_ids": prediction_ids,
    });
    if let Some(explanations) = explanations {
        answer["explanations"] = json!(explanations);
    }
    let response = Json(answer).into_response();
    for ((listing, price), id) in listings.into_iter().zip(prices).zip(prediction_ids) {
        if explained {
            predictor.log_explained(&model, id, listing, price, started);
        } else {
            predictor.log(&model, id, listing, price, started);
        }
    }
    Ok(response)
}

async fn health(State(predictor): State<Predictor>) -> Response {
    let model = predictor.slot().current();
    Json(json!({
        "status": "ok",
        "model_loaded": model.is_some(),
        "model_version": model.as_ref().map(|m| m.version()),
    }))
    .into_response()
}

/// Readiness, not an error: `{"ready": false, ...}` with 503 until a model is loaded.
async fn ready(State(predictor): State<Predictor>) -> Response {
    match predictor.slot().current() {
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

/// The check of every operator action (`POST /reload_model`, `POST /models/{version}/promote`
/// (the rollback), and [`runs`]' `POST /runs/{stage}/{batch}` (re-runs) and `POST /runs/ingest`):
/// the bearer token must be `PREDICT_RELOAD_TOKEN`; without one configured, `action` is
/// refused.
pub(crate) fn require_operator_token(
    predictor: &Predictor,
    headers: &HeaderMap,
    action: &str,
) -> Result<(), ApiError> {
    let Some(expected) = predictor.config().reload_token.as_ref() else {
        return Err(ApiError::Forbidden(format!(
            "{action} is disabled: set PREDICT_RELOAD_TOKEN to enable it"
        )));
    };
    if !appraise_core::auth::bearer_token_matches(headers, expected.value()) {
        return Err(ApiError::Unauthorized);
    }
    Ok(())
}

async fn reload_model(
    State(predictor): State<Predictor>,
    headers: HeaderMap,
) -> Result<Json<Refresh>, ApiError> {
    require_operator_token(&predictor, &headers, "reloading by hand")?;
    let refresh = predictor
        .refresh()
        .await
        .map_err(|error| ApiError::Unavailable(format!("could not reload the model: {error:#}")))?;
    Ok(Json(refresh))
}

async fn api_models(State(predictor): State<Predictor>) -> Result<Json<Models>, ApiError> {
    let models = history::models(predictor.db()).await.map_err(|error| {
        ApiError::Unavailable(format!("the model history is unavailable: {error:#}"))
    })?;
    Ok(Json(models))
}

async fn api_drift(State(predictor): State<Predictor>) -> Result<Json<DriftReports>, ApiError> {
    let reports = history::drift_reports(predictor.db(), 100)
        .await
        .map_err(|error| {
            ApiError::Unavailable(format!("the drift reports are unavailable: {error:#}"))
        })?;
    Ok(Json(reports))
}

/// `GET /lineage/model/{version}`: the version's training, batches, drift report and promotion
/// decisions ([`lineage::model`]).
async fn lineage_model(
    State(predictor): State<Predictor>,
    Path(version): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    lineage::model(predictor.db(), &version)
        .await
        .map_err(|error| ApiError::Unavailable(format!("the lineage is unavailable: {error:#}")))?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("there is no model version {version:?}")))
}

/// `GET /lineage/prediction/{id}`: the logged prediction and its model's lineage
/// ([`lineage::prediction`]).
async fn lineage_prediction(
    State(predictor): State<Predictor>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(prediction_id) = PredictionId::parse(&id) else {
        return Err(ApiError::Invalid(vec![Problem::new(
            "prediction_id",
            format!("must be a prediction id as answers give it (a UUID), got {id:?}"),
        )]));
    };
    lineage::prediction(predictor.db(), prediction_id)
        .await
        .map_err(|error| ApiError::Unavailable(format!("the lineage is unavailable: {error:#}")))?
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no prediction {prediction_id} in the inference log (it is written a few \
                 milliseconds after the answer)"
            ))
        })
}

/// `POST /models/{version}/promote` (bearer token): puts a model that was in production before
/// back in production ([`rollback`]), then loads it here at once.
async fn promote_model(
    State(predictor): State<Predictor>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<rollback::RolledBack>, ApiError> {
    require_operator_token(&predictor, &headers, "promoting by hand")?;
    let reason = request::parse_rollback_reason(&body).map_err(ApiError::Invalid)?;
    let reason = reason.as_deref().unwrap_or(rollback::DEFAULT_REASON);
    let outcome = rollback::rollback(
        predictor.db(),
        predictor.objects(),
        &version,
        reason,
        predictor.mirror().is_some(),
    )
    .await
    .map_err(|error| ApiError::Unavailable(format!("the rollback failed: {error}")))?;
    match outcome {
        rollback::Outcome::RolledBack(done) => {
            if let Err(error) = predictor.refresh().await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "rolled back; this replica will load the model at its next poll"
                );
            }
            if let Some(mirror) = predictor.mirror() {
                mirror.drain_after_commit().await;
            }
            Ok(Json(done))
        }
        rollback::Outcome::UnknownVersion => Err(ApiError::NotFound(format!(
            "there is no model version {version:?}"
        ))),
        rollback::Outcome::NeverInProduction => Err(ApiError::Conflict(format!(
            "{version} was never in production: only a model that was can be put back"
        ))),
        rollback::Outcome::AlreadyInProduction => Err(ApiError::Conflict(format!(
            "{version} is already in production"
        ))),
    }
}
