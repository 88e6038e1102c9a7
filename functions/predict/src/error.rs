//! Every error the predictor answers with, as one type that renders itself.
//!
//! A handler returns `Result<_, ApiError>`; the status and the JSON body of each case are
//! decided here, once. Every body has an `"error"` string; the cases about the request's
//! content also name each [`Problem`] (`"problems": [{"field", "reason"}]`), so a client can
//! point at the field. Bad input is always a 4xx: the predictor never answers 5xx for it.

use appraise_core::runtime;
use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::request::Problem;

/// Why a request was not answered.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 422: the input is not a listing (or an inference request) the model can price; every
    /// problem found, not just the first.
    Invalid(Vec<Problem>),
    /// 413: the body is over the route's limit; says what each route accepts.
    TooLarge(String),
    /// 503: no model is loaded yet (nothing has been promoted to production).
    NotReady,
    /// 401 with `WWW-Authenticate: Bearer`: the bearer token is missing or wrong.
    Unauthorized,
    /// 403: the request is understood but refused, e.g. reloading by hand while disabled.
    Forbidden(String),
    /// 404: what the request names does not exist here (e.g. another model's name).
    NotFound(String),
    /// 409: the request is fine but the served state cannot answer it, e.g. explaining with a
    /// model saved before explanations were possible.
    Conflict(String),
    /// 503: something the answer depends on (the bucket, the database) failed; a retry may
    /// succeed.
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Invalid(problems) => {
                problems_response(StatusCode::UNPROCESSABLE_ENTITY, "invalid input", problems)
            }
            ApiError::TooLarge(reason) => problems_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
                vec![Problem::new("body", reason)],
            ),
            ApiError::NotReady => runtime::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "no model is loaded yet: nothing has been promoted to production",
            ),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({ "error": "a valid bearer token is required (Authorization: Bearer …)" })),
            )
                .into_response(),
            ApiError::Forbidden(message) => {
                runtime::error_response(StatusCode::FORBIDDEN, &message)
            }
            ApiError::NotFound(message) => runtime::error_response(StatusCode::NOT_FOUND, &message),
            ApiError::Conflict(message) => runtime::error_response(StatusCode::CONFLICT, &message),
            ApiError::Unavailable(message) => {
                runtime::error_response(StatusCode::SERVICE_UNAVAILABLE, &message)
            }
        }
    }
}

/// `{"error", "problems": [{"field", "reason"}]}`, the error being `what` followed by every
/// problem.
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn render(error: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, challenge, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn each_case_renders_its_status_and_body() {
        let (status, _, body) = render(ApiError::Invalid(vec![
            Problem::new("bed", "is required"),
            Problem::new("bath", "must not be negative, got -1"),
        ]))
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            json!({
                "error": "invalid input: bed: is required; bath: must not be negative, got -1",
                "problems": [
                    {"field": "bed", "reason": "is required"},
                    {"field": "bath", "reason": "must not be negative, got -1"},
                ],
            })
        );

        let (status, _, body) = render(ApiError::TooLarge("is over 64 KiB".into())).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            body,
            json!({
                "error": "request body too large: body: is over 64 KiB",
                "problems": [{"field": "body", "reason": "is over 64 KiB"}],
            })
        );

        let (status, challenge, body) = render(ApiError::Unauthorized).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.as_deref(), Some("Bearer"));
        assert_eq!(
            body,
            json!({ "error": "a valid bearer token is required (Authorization: Bearer …)" })
        );

        for (error, expected) in [
            (ApiError::NotReady, StatusCode::SERVICE_UNAVAILABLE),
            (ApiError::Forbidden("no".into()), StatusCode::FORBIDDEN),
            (ApiError::NotFound("no".into()), StatusCode::NOT_FOUND),
            (ApiError::Conflict("no".into()), StatusCode::CONFLICT),
            (
                ApiError::Unavailable("no".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ] {
            let (status, challenge, body) = render(error).await;
            assert_eq!(status, expected);
            assert_eq!(challenge, None);
            assert!(body["error"].is_string(), "{body}");
            assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        }
    }
}
