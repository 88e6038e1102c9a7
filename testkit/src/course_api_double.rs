//! A test double of the course's batch API, written from its contract (DESIGN.md §5) and the
//! seed's sample response, independently of appraise's own `source`, so that ingest's tests
//! check ingest against the contract rather than against our reading of it.
//!
//! What it does, as the course API does:
//! - `GET /data?group_number=N[&day=D]` answers `{"group_number", "day", "batch_number",
//!   "data": [...]}` and moves the cursor on every call, whether or not the answer arrives;
//! - the first batch after a start or a restart is numbered [`Plan::first_batch_number`] (the
//!   course API's is 0), then one more per batch;
//! - after the last batch: HTTP 400 `{"detail": "Ya se recolectó toda la información minima
//!   necesaria"}`;
//! - `GET /restart_data_generation?group_number=N` rewinds the cursor and answers `{"ok": true}`;
//! - `GET /health`.
//!
//! And what the real network does to it, once per planted [`Fault`]: a 500 before or after the
//! cursor moves, a body cut short, a `batch_number` that is not a whole number, a restart that
//! answers 503. Records are the dataset's own rows, from `data/realtor-sample.csv`, written as
//! the API writes them: every number a JSON float, ids and zip codes included.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Map, Value, json};

/// The course API's `detail` once every batch was served.
pub const END_OF_DATA: &str = "Ya se recolectó toda la información minima necesaria";

/// What the double serves.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The number of the first batch after a start or a restart.
    pub first_batch_number: i64,
    /// Send batch numbers as floats (`0.0`) rather than integers (`0`).
    pub float_batch_numbers: bool,
    /// The records of each batch, in serving order.
    pub batches: Vec<Vec<Value>>,
}

impl Plan {
    /// `sizes.len()` batches of consecutive rows of the real sample, numbered from `first`.
    pub fn from_sample(first_batch_number: i64, sizes: &[usize]) -> Plan {
        let mut records = sample_records().into_iter();
        let batches = sizes
            .iter()
            .map(|&size| records.by_ref().take(size).collect::<Vec<_>>())
            .collect();
        Plan {
            first_batch_number,
            float_batch_numbers: false,
            batches,
        }
    }
}

/// Something that goes wrong with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500; the cursor stays where it is.
    Error500BeforeCursorMoves,
    /// The cursor moves past the batch, then HTTP 500.
    Error500AfterCursorMoves,
    /// The cursor moves past the batch and half of its body is sent, with a 200.
    BodyCutShort,
    /// The cursor moves past the batch, whose `batch_number` is sent as `N.5`.
    NonIntegerBatchNumber,
}

#[derive(Default)]
struct Cursor {
    /// Index into `Plan::batches` of the next batch to serve.
    position: usize,
    /// Faults planted per position, each met once.
    faults: HashMap<usize, Vec<Fault>>,
    /// Restart calls still to refuse with a 503.
    failing_restarts: usize,
    data_calls: usize,
    restart_calls: usize,
}

struct Double {
    plan: Plan,
    cursor: Mutex<Cursor>,
}

/// A running double on 127.0.0.1; stops when the test's runtime ends.
#[derive(Clone)]
pub struct CourseApi {
    url: String,
    double: Arc<Double>,
}

impl CourseApi {
    pub async fn start(plan: Plan) -> CourseApi {
        let (router, double) = CourseApi::router(plan);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("a bound address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        CourseApi { url, double }
    }

    /// The same double over HTTPS, presenting `certificate` (see [`crate::tls`]).
    pub async fn start_https(
        plan: Plan,
        certificate: &crate::tls::ServerCertificate,
    ) -> anyhow::Result<CourseApi> {
        let (router, double) = CourseApi::router(plan);
        let url = crate::tls::serve_https(router, certificate).await?;
        Ok(CourseApi { url, double })
    }

    fn router(plan: Plan) -> (Router, Arc<Double>) {
        let double = Arc::new(Double {
            plan,
            cursor: Mutex::default(),
        });
        let router = Router::new()
            .route("/data", get(data))
            .route("/restart_data_generation", get(restart))
            .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
            .with_state(double.clone());
        (router, double)
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The next call made while the cursor is at batch index `position` (0 = the first
    /// batch; `batches.len()` = past the end) meets `fault`.
    pub fn plant(&self, position: usize, fault: Fault) {
        self.cursor()
            .faults
            .entry(position)
            .or_default()
            .push(fault);
    }

    /// The next `count` restart calls answer 503.
    pub fn fail_restarts(&self, count: usize) {
        self.cursor().failing_restarts += count;
    }

    /// Every batch the double can serve: its number and records.
    pub fn batches(&self) -> Vec<(i64, Vec<Value>)> {
        let plan = &self.double.plan;
        (plan.first_batch_number..)
            .zip(plan.batches.iter().cloned())
            .collect()
    }

    /// Calls made to `/data` and to `/restart_data_generation`.
    pub fn calls(&self) -> (usize, usize) {
        let cursor = self.cursor();
        (cursor.data_calls, cursor.restart_calls)
    }

    fn cursor(&self) -> std::sync::MutexGuard<'_, Cursor> {
        self.double
            .cursor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// `group_number` from the query string, or `None` when it is missing or not an integer.
fn group_number(query: &HashMap<String, String>) -> Option<i64> {
    query.get("group_number").and_then(|text| text.parse().ok())
}

/// FastAPI's answer to a missing or malformed `group_number`.
fn bad_group_number() -> Response {
    let problem = json!({"type": "int_parsing", "loc": ["query", "group_number"],
                         "msg": "Input should be a valid integer"});
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "detail": [problem] })),
    )
        .into_response()
}

async fn data(
    State(double): State<Arc<Double>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(group) = group_number(&query) else {
        return bad_group_number();
    };
    let plan = &double.plan;
    let (position, fault) = {
        let mut cursor = double.cursor.lock().unwrap_or_else(PoisonError::into_inner);
        cursor.data_calls += 1;
        let position = cursor.position;
        let fault = cursor
            .faults
            .get_mut(&position)
            .and_then(|faults| (!faults.is_empty()).then(|| faults.remove(0)));
        if position < plan.batches.len() && fault != Some(Fault::Error500BeforeCursorMoves) {
            cursor.position += 1;
        }
        (position, fault)
    };
    if fault == Some(Fault::Error500BeforeCursorMoves) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
    }
    let Some(records) = plan.batches.get(position) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "detail": END_OF_DATA })),
        )
            .into_response();
    };
    if fault == Some(Fault::Error500AfterCursorMoves) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
    }
    let number = plan.first_batch_number + position as i64;
    let batch_number = match fault {
        Some(Fault::NonIntegerBatchNumber) => json!(number as f64 + 0.5),
        _ if plan.float_batch_numbers => json!(number as f64),
        _ => json!(number),
    };
    let body = json!({
        "group_number": group,
        "day": query.get("day"),
        "batch_number": batch_number,
        "data": records,
    })
    .to_string();
    let body = match fault {
        Some(Fault::BodyCutShort) => body[..body.len() / 2].to_owned(),
        _ => body,
    };
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn restart(
    State(double): State<Arc<Double>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if group_number(&query).is_none() {
        return bad_group_number();
    }
    let mut cursor = double.cursor.lock().unwrap_or_else(PoisonError::into_inner);
    cursor.restart_calls += 1;
    if cursor.failing_restarts > 0 {
        cursor.failing_restarts -= 1;
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    cursor.position = 0;
    Json(json!({"ok": true})).into_response()
}

/// The rows of `data/realtor-sample.csv` as the API sends them: numbers (ids and zip codes
/// included) as JSON floats, `status`, `city`, `state` and `prev_sold_date` as strings, empty
/// fields as null. (The sample has no quoted fields, so a plain split reads it.)
pub fn sample_records() -> Vec<Value> {
    const SAMPLE: &str = include_str!("../../data/realtor-sample.csv");
    let mut lines = SAMPLE.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    lines
        .map(|line| {
            let record: Map<String, Value> = header
                .iter()
                .zip(line.split(','))
                .map(|(&name, text)| {
                    let value = match name {
                        _ if text.is_empty() => Value::Null,
                        "status" | "city" | "state" | "prev_sold_date" => json!(text),
                        _ => json!(text.parse::<f64>().expect("a number in the sample")),
                    };
                    (name.to_owned(), value)
                })
                .collect();
            Value::Object(record)
        })
        .collect()
}
