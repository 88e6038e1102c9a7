//! The Open Inference Protocol (v2, "KServe v2") subset that KServe clients use:
//! `GET /v2`, `/v2/health/live`, `/v2/health/ready`, `/v2/models/{name}`,
//! `/v2/models/{name}/ready` and `POST /v2/models/{name}/infer`.
//!
//! An inference request carries one tensor per listing field, all of shape `[n]`: `bed`,
//! `bath`, `acre_lot`, `house_size` (FP64, required) and `brokered_by`, `status`, `city`,
//! `state`, `zip_code`, `prev_sold_date` (BYTES or numbers, optional). Row `i` of every tensor
//! is listing `i`; the answer is one FP64 tensor `predicted_price` of shape `[n]`.

use std::{borrow::Cow, time::Instant};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    Predictor, invalid_response,
    request::{Problem, RawListing, Scalar},
    today,
};

const NUMERIC: [&str; 4] = ["bed", "bath", "acre_lot", "house_size"];
const OPTIONAL: [&str; 6] = [
    "brokered_by",
    "status",
    "city",
    "state",
    "zip_code",
    "prev_sold_date",
];

pub fn routes() -> Router<Predictor> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route(
            "/v2/health/live",
            get(|| async { Json(json!({ "live": true })) }),
        )
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/infer",
            post(infer).layer(DefaultBodyLimit::max(16 * 1024 * 1024)),
        )
}

async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "appraise",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [],
    }))
}

fn readiness(predictor: &Predictor) -> Response {
    let ready = predictor.inner.slot.current().is_some();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready }))).into_response()
}

async fn server_ready(State(predictor): State<Predictor>) -> Response {
    readiness(&predictor)
}

/// 404 unless `name` is the served model's name.
fn unknown_model(predictor: &Predictor, name: &str) -> Option<Response> {
    let served = &predictor.inner.config.model_name;
    (name != served).then(|| {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("unknown model {name:?}; this server serves {served:?}") })),
        )
            .into_response()
    })
}

async fn model_ready(State(predictor): State<Predictor>, Path(name): Path<String>) -> Response {
    unknown_model(&predictor, &name).unwrap_or_else(|| readiness(&predictor))
}

async fn model_metadata(State(predictor): State<Predictor>, Path(name): Path<String>) -> Response {
    if let Some(response) = unknown_model(&predictor, &name) {
        return response;
    }
    let model = predictor.inner.slot.current();
    let tensor =
        |name: &str, datatype: &str| json!({ "name": name, "datatype": datatype, "shape": [-1] });
    let mut inputs: Vec<Value> = NUMERIC.iter().map(|n| tensor(n, "FP64")).collect();
    inputs.extend(OPTIONAL.iter().map(|n| tensor(n, "BYTES")));
    Json(json!({
        "name": name,
        "versions": model.as_ref().map(|m| vec![m.version().to_owned()]).unwrap_or_default(),
        "platform": "appraise",
        "inputs": inputs,
        "outputs": [tensor("predicted_price", "FP64")],
    }))
    .into_response()
}

#[derive(Deserialize)]
struct InferRequest {
    id: Option<String>,
    inputs: Vec<Tensor>,
}

#[derive(Deserialize)]
struct Tensor {
    name: String,
    shape: Vec<i64>,
    #[allow(dead_code)]
    datatype: Option<String>,
    data: Vec<Value>,
}

fn scalar(value: &Value) -> Scalar<'_> {
    match value {
        Value::Null => Scalar::Null,
        Value::Bool(_) => Scalar::Bool,
        Value::Number(n) => Scalar::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Scalar::Text(Cow::Borrowed(s)),
        Value::Array(_) => Scalar::Array,
        Value::Object(_) => Scalar::Object,
    }
}

/// Turns the request's tensors into one raw listing per row, checking shapes.
fn rows(request: &InferRequest) -> Result<Vec<RawListing<'_>>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut rows: Option<usize> = None;
    for tensor in &request.inputs {
        let field = format!("inputs[{}]", tensor.name);
        if !NUMERIC.contains(&tensor.name.as_str()) && !OPTIONAL.contains(&tensor.name.as_str()) {
            problems.push(Problem::new(field, "is not an input of this model"));
            continue;
        }
        let n = tensor.data.len();
        if tensor.shape.iter().product::<i64>() != n as i64 || tensor.shape.len() > 2 {
            problems.push(Problem::new(
                field,
                format!("shape {:?} does not hold its {n} values", tensor.shape),
            ));
            continue;
        }
        match rows {
            Some(expected) if expected != n => problems.push(Problem::new(
                field,
                format!("has {n} rows; the other inputs have {expected}"),
            )),
            _ => rows = Some(n),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let n = rows.unwrap_or(0);
    let mut listings: Vec<RawListing<'_>> = (0..n).map(|_| RawListing::default()).collect();
    for tensor in &request.inputs {
        for (listing, value) in listings.iter_mut().zip(&tensor.data) {
            let value = Some(scalar(value));
            match tensor.name.as_str() {
                "bed" => listing.bed = value,
                "bath" => listing.bath = value,
                "acre_lot" => listing.acre_lot = value,
                "house_size" => listing.house_size = value,
                "brokered_by" => listing.brokered_by = value,
                "status" => listing.status = value,
                "city" => listing.city = value,
                "state" => listing.state = value,
                "zip_code" => listing.zip_code = value,
                "prev_sold_date" => listing.prev_sold_date = value,
                _ => unreachable!("names were checked above"),
            }
        }
    }
    Ok(listings)
}

async fn infer(
    State(predictor): State<Predictor>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    if let Some(response) = unknown_model(&predictor, &name) {
        return response;
    }
    let request: InferRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return predictor.invalid(vec![Problem::new(
                "body",
                format!("is not an inference request: {error}"),
            )]);
        }
    };
    let raw = match rows(&request) {
        Ok(raw) if raw.is_empty() => {
            return predictor.invalid(vec![Problem::new("inputs", "hold no rows")]);
        }
        Ok(raw) if raw.len() > predictor.inner.config.max_batch => {
            return predictor.invalid(vec![Problem::new(
                "inputs",
                format!(
                    "hold {} rows; at most {}",
                    raw.len(),
                    predictor.inner.config.max_batch
                ),
            )]);
        }
        Ok(raw) => raw,
        Err(problems) => return predictor.invalid(problems),
    };
    let today = today();
    let mut listings = Vec::with_capacity(raw.len());
    let mut problems = Vec::new();
    for (i, row) in raw.iter().enumerate() {
        match row.validate(&format!("row[{i}]."), today) {
            Ok(listing) => listings.push(listing),
            Err(found) => problems.extend(found),
        }
    }
    if !problems.is_empty() {
        return invalid_response(problems);
    }
    let Some(model) = predictor.inner.slot.current() else {
        return predictor.not_ready();
    };
    let prices = predictor.price(&model, &listings, today);
    let response = Json(json!({
        "model_name": name,
        "model_version": model.version(),
        "id": request.id,
        "outputs": [{
            "name": "predicted_price",
            "datatype": "FP64",
            "shape": [prices.len()],
            "data": prices,
        }],
    }))
    .into_response();
    for (listing, price) in listings.into_iter().zip(prices) {
        predictor.log(&model, listing, price, started);
    }
    response
}
