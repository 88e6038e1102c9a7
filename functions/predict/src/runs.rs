//! The pipeline's runs, for the operator: `GET /runs` answers each batch's state in each stage
//! (ingest, process, train, promote), newest batch first, as the stages recorded it in
//! `ops.stage_runs` (see [`appraise_core::runs`]); the page draws it as a grid.
//!
//! `?limit=N` (1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) bounds the number of batches.
//!
//! `POST /runs/{stage}/{batch}` (bearer token `PREDICT_RELOAD_TOKEN`, like `/reload_model`)
//! asks process, train or promote to redo a batch whose last attempt failed: the object that
//! announced the work is written again ([`runs::rerun`]), and its event reaches the stage as
//! every event does, on the harness, Knative and Lambda alike. 202: asked; the stage's row
//! says how it went. `POST /runs/ingest` (same token) fires an ingest now: it writes
//! `triggers/ingest/<id>.json`, whose event ingest takes as a schedule firing.

use appraise_core::{
    keys,
    runs::{self, BatchRuns, Rerun, RerunError, Stage},
};
use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};

use crate::{Predictor, error::ApiError, request::Problem, routes::require_operator_token};

/// Batches answered when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 50;
/// The most batches one answer holds.
pub const MAX_LIMIT: i64 = 1000;

/// The routes of this module.
pub fn routes() -> Router<Predictor> {
    Router::new()
        .route("/runs", get(get_runs))
        .route("/runs/ingest", post(request_ingest))
        .route("/runs/{stage}/{batch}", post(rerun))
}

/// `GET /runs`'s answer.
#[derive(Debug, Serialize)]
pub struct Runs {
    /// The newest batches first, each with its four stages in pipeline order.
    pub batches: Vec<BatchRuns>,
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    limit: Option<i64>,
}

async fn get_runs(
    State(predictor): State<Predictor>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<Runs>, ApiError> {
    let invalid_limit = || {
        ApiError::Invalid(vec![Problem::new(
            "limit",
            format!("must be a whole number from 1 to {MAX_LIMIT}"),
        )])
    };
    let Query(query) = query.map_err(|_| invalid_limit())?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid_limit());
    }
    let unavailable = |error: anyhow::Error| {
        ApiError::Unavailable(format!("the runs are unavailable: {error:#}"))
    };
    let client = predictor
        .db()
        .get()
        .await
        .map_err(|error| unavailable(error.into()))?;
    let batches = runs::recent(&**client, limit).await.map_err(unavailable)?;
    Ok(Json(Runs { batches }))
}

async fn rerun(
    State(predictor): State<Predictor>,
    headers: HeaderMap,
    Path((stage, batch)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Rerun>), ApiError> {
    require_operator_token(&predictor, &headers, "re-running a stage")?;
    let mut problems = Vec::new();
    let stage = stage
        .parse::<Stage>()
        .map_err(|reason| problems.push(Problem::new("stage", reason)))
        .ok();
    let batch = batch
        .parse::<i32>()
        .ok()
        .filter(|batch| *batch >= 0)
        .or_else(|| {
            problems.push(Problem::new(
                "batch",
                format!("{batch:?} is not a batch number (a whole number, 0 or more)"),
            ));
            None
        });
    let (Some(stage), Some(batch)) = (stage, batch) else {
        return Err(ApiError::Invalid(problems));
    };
    match runs::rerun(predictor.db(), predictor.objects(), stage, batch).await {
        Ok(rerun) => Ok((StatusCode::ACCEPTED, Json(rerun))),
        Err(RerunError::Unavailable(error)) => Err(ApiError::Unavailable(format!(
            "the re-run could not be asked: {error:#}"
        ))),
        Err(error @ RerunError::NotByBatch) => Err(ApiError::Invalid(vec![Problem::new(
            "stage",
            error.to_string(),
        )])),
        Err(error @ RerunError::NotFailed { .. }) => Err(ApiError::Conflict(error.to_string())),
        Err(error @ RerunError::NoAnnouncement { .. }) => {
            Err(ApiError::NotFound(error.to_string()))
        }
    }
}

/// `POST /runs/ingest`'s answer.
#[derive(Debug, Serialize)]
pub struct IngestRequested {
    /// The request object written, whose event fires ingest (and the firing's id).
    pub requested: String,
}

async fn request_ingest(
    State(predictor): State<Predictor>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<IngestRequested>), ApiError> {
    require_operator_token(&predictor, &headers, "firing an ingest by hand")?;
    let now = time::OffsetDateTime::now_utc();
    let key = keys::ingest_request(&now.unix_timestamp_nanos().to_string());
    let body = serde_json::json!({
        "requested_at": now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    });
    predictor
        .objects()
        .put(
            &key,
            bytes::Bytes::from(body.to_string()),
            "application/json",
        )
        .await
        .map_err(|error| {
            ApiError::Unavailable(format!(
                "the ingest request could not be written: {error:#}"
            ))
        })?;
    tracing::info!(key, "ingest requested by hand");
    Ok((
        StatusCode::ACCEPTED,
        Json(IngestRequested { requested: key }),
    ))
}
