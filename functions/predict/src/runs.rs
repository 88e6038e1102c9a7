//! The pipeline's runs, for the operator: `GET /runs` answers each batch's state in each stage
//! (ingest, process, train, promote), newest batch first, as the stages recorded it in
//! `ops.stage_runs` (see [`appraise_core::runs`]); the page draws it as a grid.
//!
//! `?limit=N` (1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) bounds the number of batches.

use appraise_core::runs::{self, BatchRuns};
use axum::{
    Json, Router,
    extract::{Query, State, rejection::QueryRejection},
    routing::get,
};
use serde::{Deserialize, Serialize};

use crate::{Predictor, error::ApiError, request::Problem};

/// Batches answered when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 50;
/// The most batches one answer holds.
pub const MAX_LIMIT: i64 = 1000;

/// The routes of this module.
pub fn routes() -> Router<Predictor> {
    Router::new().route("/runs", get(get_runs))
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
