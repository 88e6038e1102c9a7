//! The Open Inference Protocol (v2, "KServe v2") subset that KServe clients use:
//! `GET /v2`, `/v2/health/live`, `/v2/health/ready`, `/v2/models/{name}`,
//! `/v2/models/{name}/ready` and `POST /v2/models/{name}/infer`.
//!
//! An inference request carries one tensor per listing field, all of shape `[n]`: `bed`,
//! `bath`, `acre_lot`, `house_size` (FP64, required) and `brokered_by`, `status`, `city`,
//! `state`, `zip_code`, `prev_sold_date` (BYTES or numbers, optional). Row `i` of every tensor
//! is listing `i`; the answer is one FP64 tensor `predicted_price` of shape `[n]`. A shape may
//! also be `[n, 1]`; its dimensions must be non-negative and their product, computed without
//! wrapping, must be the number of values in `data`.

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
    Predictor,
    error::ApiError,
    prediction_id::PredictionId,
    request::{MAX_BATCH_BODY, Problem, RequestValue, UncheckedListing, today},
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
            post(infer).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)),
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
    let ready = predictor.slot().current().is_some();
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

/// [`ApiError::NotFound`] unless `name` is the served model's name.
fn served_model(predictor: &Predictor, name: &str) -> Result<(), ApiError> {
    let served = &predictor.config().model_name;
    if name == served {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "unknown model {name:?}; this server serves {served:?}"
        )))
    }
}

async fn model_ready(
    State(predictor): State<Predictor>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    served_model(&predictor, &name)?;
    Ok(readiness(&predictor))
}

async fn model_metadata(
    State(predictor): State<Predictor>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    served_model(&predictor, &name)?;
    let model = predictor.slot().current();
    let tensor =
        |name: &str, datatype: &str| json!({ "name": name, "datatype": datatype, "shape": [-1] });
    let mut inputs: Vec<Value> = NUMERIC.iter().map(|n| tensor(n, "FP64")).collect();
    inputs.extend(OPTIONAL.iter().map(|n| tensor(n, "BYTES")));
    Ok(Json(json!({
        "name": name,
        "versions": model.as_ref().map(|m| vec![m.version().to_owned()]).unwrap_or_default(),
        "platform": "appraise",
        "inputs": inputs,
        "outputs": [tensor("predicted_price", "FP64")],
    })))
}

#[derive(Deserialize)]
struct InferRequest {
    id: Option<String>,
    inputs: Vec<Tensor>,
}

#[derive(Deserialize)]
struct Tensor {
    name: String,
    /// Kept as JSON: each dimension is checked by [`shape_size`], so a dimension beyond
    /// `i64` names the field like any other bad shape.
    shape: Vec<Value>,
    #[allow(dead_code)]
    datatype: Option<String>,
    data: Vec<Value>,
}

fn request_value(value: &Value) -> RequestValue<'_> {
    match value {
        Value::Null => RequestValue::Null,
        Value::Bool(b) => RequestValue::Bool(*b),
        Value::Number(n) => RequestValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => RequestValue::Text(Cow::Borrowed(s)),
        Value::Array(_) => RequestValue::Array,
        Value::Object(_) => RequestValue::Object,
    }
}

/// How many values a tensor of `shape` holds, or why the shape is not one: every dimension
/// must be a non-negative integer, and their product must not overflow (a product that wraps
/// could otherwise claim any count, e.g. `[3, -6148914691236517205]` one value).
fn shape_size(shape: &[Value]) -> Result<usize, String> {
    if shape.len() > 2 {
        return Err(format!(
            "has {} dimensions; an input is [n] or [n, 1]",
            shape.len()
        ));
    }
    let overflow = || {
        format!(
            "{} overflows: the product of its dimensions is too large",
            Value::from(shape.to_vec())
        )
    };
    let mut size: usize = 1;
    for dimension in shape {
        let value = match (dimension.as_u64(), dimension.as_i64()) {
            (Some(value), _) => value,
            (None, Some(negative)) => {
                return Err(format!(
                    "dimension {negative} is negative; dimensions are non-negative integers"
                ));
            }
            (None, None) => {
                return Err(format!(
                    "dimension {dimension} is not an integer; dimensions are non-negative integers"
                ));
            }
        };
        let value = usize::try_from(value).map_err(|_| overflow())?;
        size = size.checked_mul(value).ok_or_else(overflow)?;
    }
    Ok(size)
}

/// Turns the request's tensors into one unchecked listing per row, checking shapes.
fn rows(request: &InferRequest) -> Result<Vec<UncheckedListing<'_>>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut rows: Option<usize> = None;
    for tensor in &request.inputs {
        let field = format!("inputs[{}]", tensor.name);
        if !NUMERIC.contains(&tensor.name.as_str()) && !OPTIONAL.contains(&tensor.name.as_str()) {
            problems.push(Problem::new(field, "is not an input of this model"));
            continue;
        }
        let n = tensor.data.len();
        match shape_size(&tensor.shape) {
            Ok(size) if size == n => {}
            Ok(size) => {
                problems.push(Problem::new(
                    format!("{field}.shape"),
                    format!(
                        "{} holds {size} values, but data has {n}",
                        Value::from(tensor.shape.clone())
                    ),
                ));
                continue;
            }
            Err(reason) => {
                problems.push(Problem::new(format!("{field}.shape"), reason));
                continue;
            }
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
    let mut listings: Vec<UncheckedListing<'_>> =
        (0..n).map(|_| UncheckedListing::default()).collect();
    for tensor in &request.inputs {
        for (listing, value) in listings.iter_mut().zip(&tensor.data) {
            let value = Some(request_value(value));
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
) -> Result<Response, ApiError> {
    let started = Instant::now();
    served_model(&predictor, &name)?;
    let request: InferRequest = serde_json::from_slice(&body).map_err(|error| {
        predictor.invalid(vec![Problem::new(
            "body",
            format!("is not an inference request: {error}"),
        )])
    })?;
    let max_batch = predictor.config().max_batch;
    let raw = match rows(&request) {
        Ok(raw) if raw.is_empty() => {
            return Err(predictor.invalid(vec![Problem::new("inputs", "hold no rows")]));
        }
        Ok(raw) if raw.len() > max_batch => {
            return Err(predictor.invalid(vec![Problem::new(
                "inputs",
                format!("hold {} rows; at most {max_batch}", raw.len()),
            )]));
        }
        Ok(raw) => raw,
        Err(problems) => return Err(predictor.invalid(problems)),
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
        return Err(ApiError::Invalid(problems));
    }
    let model = predictor.model()?;
    let prices = predictor.price(&model, &listings, today);
    let prediction_ids: Vec<PredictionId> = prices
        .iter()
        .map(|_| predictor.new_prediction_id())
        .collect();
    let response = Json(json!({
        "model_name": name,
        "model_version": model.version(),
        "id": request.id,
        "parameters": {"prediction_ids": prediction_ids},
        "outputs": [{
            "name": "predicted_price",
            "datatype": "FP64",
            "shape": [prices.len()],
            "data": prices,
        }],
    }))
    .into_response();
    for ((listing, price), id) in listings.into_iter().zip(prices).zip(prediction_ids) {
        predictor.log(&model, id, listing, price, started);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_counts_its_values_without_wrapping() {
        let size = |shape: Value| shape_size(shape.as_array().unwrap());
        assert_eq!(size(json!([3])), Ok(3));
        assert_eq!(size(json!([3, 1])), Ok(3));
        assert_eq!(size(json!([0, 7])), Ok(0));
        assert_eq!(size(json!([])), Ok(1));
        // 3 × -6148914691236517205 and i64::MAX² are both 1 modulo 2⁶⁴.
        let negative = size(json!([3, -6_148_914_691_236_517_205_i64])).unwrap_err();
        assert!(negative.contains("negative"), "{negative}");
        let wrapped = size(json!([i64::MAX, i64::MAX])).unwrap_err();
        assert!(wrapped.contains("overflows"), "{wrapped}");
        assert!(
            size(json!([u64::MAX, 2]))
                .unwrap_err()
                .contains("overflows")
        );
        assert!(size(json!([2.0])).unwrap_err().contains("not an integer"));
        assert!(size(json!(["2"])).unwrap_err().contains("not an integer"));
        assert!(size(json!([1, 1, 1])).unwrap_err().contains("3 dimensions"));
    }
}
