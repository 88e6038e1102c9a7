//! The HTTP API: the course's batch API contract (DESIGN.md §5), served from a [`Dataset`].
//!
//! - `GET /data?group_number=N[&day=D]` returns the next batch of the `(N, D)` cursor:
//!   `{"group_number": N, "day": D or null, "batch_number": K, "data": [...]}`, streamed in
//!   chunks (see [`crate::batch_body`]). Batch numbers start at 0, as the course API's do (its
//!   first answer after a start or restart is `"batch_number": 0`); every successful call
//!   advances the cursor, whether or not the client reads the whole body (the course API has no
//!   acknowledgement either). After the last batch: HTTP 400
//!   `{"detail": "Ya se recolectó toda la información minima necesaria"}`, and the cursor stays
//!   there until restarted.
//! - `GET /restart_data_generation?group_number=N[&day=D]` puts that cursor back before batch 0
//!   and answers `{"ok": true}`.
//! - `GET /health` answers `{"status": "ok", "dataset": {...}}`, where `dataset` says what is
//!   served (see [`crate::dataset::DatasetSummary`]): `{"kind": "generated", "batches",
//!   "rows"}`, or for a CSV file `{"kind": "csv", "batches", "rows", "dropped_ragged_rows",
//!   "missing_optional_columns": [...], "unparsed_values": {"column": count}}`. The local
//!   harness reads it to show what loading a CSV dropped.
//!
//! Each `(group_number, day)` pair has its own cursor; a request without `day` and one with
//! `day=Tuesday` do not share one. Every group sees the same sequence of batches. A missing or
//! malformed `group_number` is answered like FastAPI does: HTTP 422 with
//! `{"detail": [{"type", "loc": ["query", "group_number"], "msg", "input"}]}`.
//!
//! Cursors live in memory: restarting the process restarts every sequence, as with the course
//! API. Their number is not capped, so the service belongs on a trusted network.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex, PoisonError},
};

use axum::{
    Json, Router,
    body::Body,
    extract::{Query, State, rejection::QueryRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use crate::{batch_body::BatchChunks, dataset::Dataset};

/// The course API's answer once every batch has been served.
pub const EXHAUSTED_DETAIL: &str = "Ya se recolectó toda la información minima necesaria";

/// The longest `day` accepted, so a cursor key stays small.
pub const MAX_DAY_CHARS: usize = 64;

/// What the handlers share: the dataset and every cursor.
#[derive(Clone)]
pub struct SourceState {
    dataset: Arc<Dataset>,
    cursors: Arc<Mutex<HashMap<CursorKey, u64>>>,
}

impl SourceState {
    /// Fresh state: every cursor before batch 0.
    pub fn new(dataset: Dataset) -> SourceState {
        SourceState {
            dataset: Arc::new(dataset),
            cursors: Arc::default(),
        }
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// Takes the next batch number of a cursor (0 for a fresh one) and advances it, or says the
    /// batches are gone. A cursor holds the number of the batch it serves next.
    fn take_next_batch(&self, key: &CursorKey) -> Result<u64, ApiError> {
        // A poisoned lock only means another request panicked mid-update of a plain integer;
        // the map is still consistent, so keep serving.
        let mut cursors = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
        let next = cursors.get(key).copied().unwrap_or(0);
        if next >= self.dataset.batch_count() {
            return Err(ApiError::Exhausted);
        }
        cursors.insert(key.clone(), next + 1);
        Ok(next)
    }

    fn restart(&self, key: &CursorKey) {
        let mut cursors = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
        cursors.remove(key);
    }
}

/// The API's routes over `state`.
pub fn router(state: SourceState) -> Router {
    Router::new()
        .route("/data", get(next_batch))
        .route("/restart_data_generation", get(restart_data_generation))
        .route("/health", get(health))
        .with_state(state)
}

/// One cursor: a group, and optionally a day.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CursorKey {
    group_number: i64,
    day: Option<String>,
}

impl CursorKey {
    /// Reads `group_number` (required, an integer) and `day` (optional, at most
    /// [`MAX_DAY_CHARS`] characters) from a query string's pairs, reporting every problem at
    /// once like FastAPI. The first occurrence of a repeated parameter wins.
    fn from_query(pairs: &[(String, String)]) -> Result<CursorKey, ApiError> {
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let mut problems = Vec::new();
        let group_number = match value("group_number") {
            None => {
                problems.push(FieldProblem::missing("group_number"));
                None
            }
            Some(text) => {
                match text.trim().parse::<i64>() {
                    Ok(number) => Some(number),
                    Err(_) => {
                        problems.push(FieldProblem {
                        kind: "int_parsing",
                        field: "group_number",
                        message: "Input should be a valid integer, unable to parse string as an integer".to_owned(),
                        input: Value::from(text),
                    });
                        None
                    }
                }
            }
        };
        let day = value("day").map(str::to_owned);
        if let Some(day) = &day
            && day.chars().count() > MAX_DAY_CHARS
        {
            problems.push(FieldProblem {
                kind: "string_too_long",
                field: "day",
                message: format!("String should have at most {MAX_DAY_CHARS} characters"),
                input: Value::from(day.as_str()),
            });
        }
        match group_number {
            Some(group_number) if problems.is_empty() => Ok(CursorKey { group_number, day }),
            _ => Err(ApiError::InvalidQuery(problems)),
        }
    }
}

/// What went wrong with a request, rendered as the course API (a FastAPI app) renders it.
#[derive(Debug)]
enum ApiError {
    /// HTTP 422: the query string's parameters are missing or malformed.
    InvalidQuery(Vec<FieldProblem>),
    /// HTTP 400: every batch of this cursor has been served.
    Exhausted,
}

/// One entry of a 422 body's `detail` list.
#[derive(Debug)]
struct FieldProblem {
    /// FastAPI's (pydantic's) error type, e.g. `missing` or `int_parsing`.
    kind: &'static str,
    field: &'static str,
    message: String,
    input: Value,
}

impl FieldProblem {
    fn missing(field: &'static str) -> FieldProblem {
        FieldProblem {
            kind: "missing",
            field,
            message: "Field required".to_owned(),
            input: Value::Null,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::InvalidQuery(problems) => {
                let detail: Vec<Value> = problems
                    .into_iter()
                    .map(|problem| {
                        json!({
                            "type": problem.kind,
                            "loc": ["query", problem.field],
                            "msg": problem.message,
                            "input": problem.input,
                        })
                    })
                    .collect();
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(json!({ "detail": detail })),
                )
                    .into_response()
            }
            ApiError::Exhausted => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "detail": EXHAUSTED_DETAIL })),
            )
                .into_response(),
        }
    }
}

/// A query string that is not even `key=value` pairs, reported like a bad field.
fn unreadable_query(rejection: QueryRejection) -> ApiError {
    ApiError::InvalidQuery(vec![FieldProblem {
        kind: "query_parsing",
        field: "query",
        message: rejection.body_text(),
        input: Value::Null,
    }])
}

type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// `GET /data`: the next batch of the caller's cursor, streamed.
async fn next_batch(
    State(state): State<SourceState>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(unreadable_query)?;
    let key = CursorKey::from_query(&pairs)?;
    let batch_number = match state.take_next_batch(&key) {
        Ok(batch_number) => batch_number,
        Err(error) => {
            tracing::info!(group_number = key.group_number, day = ?key.day, "every batch served");
            return Err(error);
        }
    };
    let rows = state.dataset.batch_rows(batch_number).unwrap_or(0);
    tracing::info!(
        group_number = key.group_number,
        day = ?key.day,
        batch_number,
        rows,
        "serving batch"
    );
    let chunks = BatchChunks::new(
        state.dataset.clone(),
        key.group_number,
        key.day.as_deref(),
        batch_number,
    );
    let body = Body::from_stream(futures_util::stream::iter(chunks.map(Ok::<_, Infallible>)));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /restart_data_generation`: the caller's cursor goes back before batch 0.
async fn restart_data_generation(
    State(state): State<SourceState>,
    query: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let Query(pairs) = query.map_err(unreadable_query)?;
    let key = CursorKey::from_query(&pairs)?;
    state.restart(&key);
    tracing::info!(group_number = key.group_number, day = ?key.day, "cursor restarted");
    Ok(Json(json!({ "ok": true })))
}

/// `GET /health`: alive, and what is served.
async fn health(State(state): State<SourceState>) -> Json<Value> {
    Json(json!({ "status": "ok", "dataset": state.dataset.summary() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn query_parsing_reports_every_problem() {
        let key =
            CursorKey::from_query(&pairs(&[("group_number", " 3 "), ("day", "Tuesday")])).unwrap();
        assert_eq!(key.group_number, 3);
        assert_eq!(key.day.as_deref(), Some("Tuesday"));
        assert_eq!(
            CursorKey::from_query(&pairs(&[("group_number", "-2")]))
                .unwrap()
                .group_number,
            -2,
            "FastAPI's int accepts negatives"
        );
        let long_day = "x".repeat(MAX_DAY_CHARS + 1);
        match CursorKey::from_query(&pairs(&[("group_number", "1.5"), ("day", &long_day)])) {
            Err(ApiError::InvalidQuery(problems)) => {
                let kinds: Vec<_> = problems.iter().map(|p| (p.kind, p.field)).collect();
                assert_eq!(
                    kinds,
                    [("int_parsing", "group_number"), ("string_too_long", "day")]
                );
            }
            other => panic!("expected a 422, got {other:?}"),
        }
        assert!(matches!(
            CursorKey::from_query(&pairs(&[("day", "Monday")])),
            Err(ApiError::InvalidQuery(problems)) if problems[0].kind == "missing"
        ));
    }
}
