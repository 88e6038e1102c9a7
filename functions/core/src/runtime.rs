//! Where a function meets its platform.
//!
//! [`serve`] runs an event function: on the AWS Lambda runtime API when
//! `AWS_LAMBDA_RUNTIME_API` is set, otherwise as an HTTP server on `$PORT` (default 8080) that
//! takes every event shape of [`crate::events`] on `POST /` (Knative, the local harness).
//! [`serve_http`] runs an HTTP API (the batch source, the predictor) the same way: on Lambda
//! through `lambda_http`, which turns function URL and API Gateway HTTP API (payload format 2.0)
//! invocations into requests for the very same axum `Router`. Both add `GET /healthz` and
//! `GET /metrics` and, as HTTP servers, shut down gracefully on SIGTERM or Ctrl-C, finishing the
//! requests in flight, as Knative's scale-down expects.
//!
//! Lambda freezes the process between invocations, so nothing may be left for later there:
//! each invocation writes its metrics as CloudWatch EMF lines ([`telemetry::flush_emf`]) before
//! it answers, and an HTTP API that keeps background work (the predictor) must finish it inside
//! the request on Lambda too (see [`on_lambda`](crate::platform::on_lambda())).
//!
//! The stage behind it is a plain async function from a [`Trigger`] to a JSON report; it never
//! learns which platform it runs on. It runs within the invocation's deadline
//! ([`crate::deadline`]: Lambda's, or `STAGE_DEADLINE_SECS` over HTTP, less a margin).
//!
//! A stage answers each trigger with a report, a [`StageError::Rejected`] (final: the event can
//! never succeed) or a [`StageError::Unavailable`] (a later delivery may succeed). Over HTTP
//! that is 200, 400 (Knative does not retry) or 503 (it retries). On Lambda a rejection is
//! acknowledged, not returned as an error, since Lambda retries every error of an asynchronous
//! invocation and then sends it to the failure queue; an unavailable trigger fails the
//! invocation with the `errorType` `appraise.Unavailable` (see `serve_lambda`). A delivery
//! with several triggers (an S3 notification may carry several records) runs every trigger
//! until one is unavailable: with one rejected and one done, it answers 400 over HTTP (the
//! first rejection's reason) and, on Lambda, a response listing the report of the one and the
//! rejection of the other; with any unavailable, 503 / an error, and the platform delivers it
//! all again.

use std::{future::Future, net::SocketAddr, sync::OnceLock, time::Instant};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};

use crate::{
    config,
    deadline::{self, DeadlinePolicy},
    events::{self, Trigger},
    platform::on_lambda,
    telemetry,
};

/// How a stage failed, which decides whether the platform should deliver the event again.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The event can never succeed (it names something that does not exist, or is malformed):
    /// HTTP 400, so Knative does not retry it.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Something the stage depends on failed (database, bucket, batch API); a later delivery may
    /// succeed: HTTP 503, so the platform retries.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<anyhow::Error> for StageError {
    fn from(error: anyhow::Error) -> Self {
        StageError::Unavailable(format!("{error:#}"))
    }
}

/// What a stage returns for one trigger: a JSON report of what it did.
pub type StageResult = Result<Value, StageError>;

/// The object event given to a stage that runs on object events; a schedule tick is rejected
/// as `"<runs_on>, not on a schedule"` (e.g. `runs_on` = "train runs on clean/ object events").
pub fn object_event(trigger: Trigger, runs_on: &str) -> Result<events::ObjectCreated, StageError> {
    match trigger {
        Trigger::ObjectCreated(object) => Ok(object),
        Trigger::Schedule(_) => Err(StageError::Rejected(format!(
            "{runs_on}, not on a schedule"
        ))),
    }
}

/// A stage's report as the runtime returns it.
pub fn report(report: &impl serde::Serialize) -> StageResult {
    Ok(serde_json::to_value(report).expect("a report serializes"))
}

/// Runs an event function until the platform stops it.
pub async fn serve<H, F>(service: &'static str, handler: H) -> anyhow::Result<()>
where
    H: Fn(Trigger) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = StageResult> + Send + 'static,
{
    telemetry::init(service);
    read_deadline_policy()?;
    if on_lambda() {
        tracing::info!(service, "serving on the Lambda runtime API");
        // Boxed: the runtime's future is deeply nested, and a binary's `main` should not need a
        // raised recursion limit to hold it.
        return Box::pin(serve_lambda(handler)).await;
    }
    register_stage_counters();
    let router = Router::new()
        .route("/", post(http_event::<H, F>))
        .with_state(handler);
    Box::pin(serve_http(service, router)).await
}

static DEADLINE_POLICY: OnceLock<DeadlinePolicy> = OnceLock::new();

/// Reads `STAGE_DEADLINE_SECS` and `STAGE_DEADLINE_MARGIN_SECS` once, at start, so a bad value
/// stops the function with an error naming the variable.
fn read_deadline_policy() -> anyhow::Result<()> {
    let policy = DeadlinePolicy::from_env()?;
    let _ = DEADLINE_POLICY.set(policy);
    Ok(())
}

/// The deadline settings read at start (the defaults when the runtime was not started).
fn deadline_policy() -> DeadlinePolicy {
    DEADLINE_POLICY.get().copied().unwrap_or_default()
}

/// Exports `stage_invocations_total{outcome="unavailable"}` at 0 from the start: the alert
/// AppraiseStageUnavailable is an `increase()`, which misses the first failure of a series that
/// only appears at 1.
fn register_stage_counters() {
    for trigger in ["schedule", "object_created"] {
        metrics::counter!("stage_invocations_total", "trigger" => trigger, "outcome" => "unavailable")
            .increment(0);
    }
}

/// `POST /` taking every event shape, for an HTTP API that also reacts to events (the
/// predictor reloads on `production/` objects). Chain other methods of `/` onto it.
pub fn event_endpoint<H, F, S>(handler: H) -> axum::routing::MethodRouter<S>
where
    H: Fn(Trigger) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = StageResult> + Send + 'static,
    S: Clone + Send + Sync + 'static,
{
    register_stage_counters();
    post(http_event::<H, F>).with_state(handler)
}

/// Runs an HTTP API on `$PORT` with `/healthz` and `/metrics` added, until SIGTERM or Ctrl-C;
/// on Lambda, answers the runtime API's HTTP invocations with the same routes instead.
pub async fn serve_http(service: &'static str, router: Router) -> anyhow::Result<()> {
    telemetry::init(service);
    read_deadline_policy()?;
    if on_lambda() {
        tracing::info!(
            service,
            "serving HTTP invocations on the Lambda runtime API"
        );
        return Box::pin(serve_lambda_http(router)).await;
    }
    let port: u16 = config::optional("PORT", 8080)?;
    let host: std::net::IpAddr = config::optional("HOST", [0, 0, 0, 0].into())?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(host, port))
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {host}:{port}: {error}"))?;
    tracing::info!(service, address = %listener.local_addr()?, "listening");
    tokio::spawn(telemetry::upkeep_forever());
    // Answers are small and written whole: never hold one back waiting for an ACK (Nagle).
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, with_operational_routes(router))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!(service, "stopped");
    Ok(())
}

/// Adds `GET /healthz` and `GET /metrics` to a router.
pub fn with_operational_routes(router: Router) -> Router {
    router.route("/healthz", get(|| async { "ok" })).route(
        "/metrics",
        get(|| async {
            (
                [("content-type", "text/plain; version=0.0.4")],
                telemetry::render_metrics(),
            )
        }),
    )
}

/// Resolves on SIGTERM (Knative, systemd) or Ctrl-C, or, when `APPRAISE_EXIT_ON_STDIN_EOF=1`
/// (the local harness), when stdin closes: the harness holds the other end of that pipe, so a
/// function never outlives it.
pub async fn shutdown_signal() {
    let stdin_closed = async {
        if std::env::var("APPRAISE_EXIT_ON_STDIN_EOF").is_ok_and(|v| v == "1") {
            let mut stdin = tokio::io::stdin();
            let mut buffer = [0u8; 64];
            while tokio::io::AsyncReadExt::read(&mut stdin, &mut buffer)
                .await
                .is_ok_and(|n| n > 0)
            {}
        } else {
            std::future::pending::<()>().await;
        }
    };
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
        () = stdin_closed => {},
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}

/// What one delivery came to when no trigger of it was unavailable: one result per trigger, in
/// order (a stage's report, or `{"outcome": "rejected", "reason": …}`), and the reason of the
/// first rejection, if any.
struct Delivered {
    results: Vec<Value>,
    first_rejection: Option<String>,
}

impl Delivered {
    /// A delivery that is rejected as a whole (its event did not parse).
    fn rejected(reason: String) -> Self {
        Delivered {
            results: vec![rejection(&reason)],
            first_rejection: Some(reason),
        }
    }

    fn report(self) -> Value {
        json!({ "results": self.results })
    }
}

/// The result entry of a rejected trigger.
fn rejection(reason: &str) -> Value {
    json!({ "outcome": "rejected", "reason": reason })
}

/// Runs the handler over every trigger of one delivery, each within `deadline`. A rejected
/// trigger is logged, counted and noted, and the next one runs (a rejection is final, and must
/// not cost the others their turn). The first unavailable trigger fails the delivery: the
/// platform then delivers all of it again, which is safe because every stage is idempotent.
async fn run_triggers<H, F>(
    handler: &H,
    triggers: Vec<Trigger>,
    deadline: Option<Instant>,
) -> Result<Delivered, StageError>
where
    H: Fn(Trigger) -> F,
    F: Future<Output = StageResult>,
{
    let mut delivered = Delivered {
        results: Vec::with_capacity(triggers.len()),
        first_rejection: None,
    };
    for trigger in triggers {
        let started = Instant::now();
        let kind = match &trigger {
            Trigger::Schedule(_) => "schedule",
            Trigger::ObjectCreated(_) => "object_created",
        };
        let result = deadline::within(deadline, handler(trigger)).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(StageError::Rejected(_)) => "rejected",
            Err(StageError::Unavailable(_)) => "unavailable",
        };
        metrics::counter!("stage_invocations_total", "trigger" => kind, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("stage_duration_seconds", "trigger" => kind)
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(report) => delivered.results.push(report),
            Err(StageError::Rejected(reason)) => {
                tracing::error!(reason, trigger = kind, "stage rejected the event for good");
                delivered.results.push(rejection(&reason));
                delivered.first_rejection.get_or_insert(reason);
            }
            Err(error) => {
                tracing::error!(%error, trigger = kind, "stage failed; the event will be retried");
                return Err(error);
            }
        }
    }
    Ok(delivered)
}

/// Counts and logs an event that did not parse, and makes it the delivery's rejection.
fn unparsed(error: impl std::fmt::Display) -> Delivered {
    metrics::counter!("stage_invocations_total", "trigger" => "unparsed", "outcome" => "rejected")
        .increment(1);
    let reason = format!("bad event: {error}");
    tracing::error!(reason, "stage rejected the event for good");
    Delivered::rejected(reason)
}

async fn http_event<H, F>(State(handler): State<H>, headers: HeaderMap, body: Bytes) -> Response
where
    H: Fn(Trigger) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = StageResult> + Send + 'static,
{
    let deadline = deadline_policy().for_http(Instant::now());
    let delivered = match events::from_http(&headers, &body) {
        Ok(triggers) => run_triggers(&handler, triggers, deadline).await,
        Err(error) => Ok(unparsed(error)),
    };
    match delivered {
        Ok(Delivered {
            first_rejection: Some(reason),
            ..
        }) => error_response(StatusCode::BAD_REQUEST, &reason),
        Ok(delivered) => Json(delivered.report()).into_response(),
        Err(StageError::Rejected(reason)) => error_response(StatusCode::BAD_REQUEST, &reason),
        Err(StageError::Unavailable(reason)) => {
            error_response(StatusCode::SERVICE_UNAVAILABLE, &reason)
        }
    }
}

/// A JSON error body `{"error": "..."}` with the given status.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The error a Lambda invocation reports: its `errorType` names the failure
/// ([`UNAVAILABLE_ERROR_TYPE`]) rather than a Rust type, so CloudWatch, the failure queue's
/// messages and alarms can tell it apart from the runtime's own errors (`Runtime.*`).
impl From<StageError> for lambda_runtime::Diagnostic {
    fn from(error: StageError) -> Self {
        let error_type = match &error {
            StageError::Rejected(_) => REJECTED_ERROR_TYPE,
            StageError::Unavailable(_) => UNAVAILABLE_ERROR_TYPE,
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// The `errorType` of a Lambda invocation that failed because something the stage depends on
/// is unavailable (Lambda retries it, then sends it to the failure queue).
pub const UNAVAILABLE_ERROR_TYPE: &str = "appraise.Unavailable";
/// The `errorType` a rejection would carry; on Lambda rejections are acknowledged instead (see
/// `serve_lambda`), so it appears only where a [`StageError`] is reported as an error.
pub const REJECTED_ERROR_TYPE: &str = "appraise.Rejected";

/// Serves the Lambda runtime API. Each invocation runs within its deadline (see
/// [`deadline`]); its answer:
///
/// - every trigger done: a response `{"results": [report, …]}`;
/// - some rejected (the event can never succeed: wrong trigger, a missing object, an event that
///   does not parse), none unavailable: **still a response**, each rejected trigger's entry
///   being `{"outcome": "rejected", "reason": …}`, next to the other triggers' reports. An
///   error would make Lambda retry an asynchronous invocation twice and then send it to the
///   failure queue, for an event that can never succeed; the rejection is logged at error
///   and counted as `stage_invocations_total{outcome="rejected"}` (exported as EMF) instead;
/// - any trigger unavailable: an error whose `errorType` is [`UNAVAILABLE_ERROR_TYPE`]; Lambda
///   retries the whole invocation, and every stage is idempotent, so the triggers that were
///   done are done again harmlessly.
async fn serve_lambda<H, F>(handler: H) -> anyhow::Result<()>
where
    H: Fn(Trigger) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = StageResult> + Send + 'static,
{
    let policy = deadline_policy();
    let service = service_fn(move |event: LambdaEvent<Value>| {
        let handler = handler.clone();
        async move {
            let request_id = event.context.request_id.clone();
            let deadline = policy.for_lambda(event.context.deadline());
            if deadline.is_none() {
                tracing::warn!(
                    deadline_ms = event.context.deadline,
                    "the invocation's deadline is already past; running without one"
                );
            }
            let delivered = match events::from_json(event.payload) {
                Ok(mut triggers) => {
                    // Lambda keeps the request id across its own retries of an async
                    // invocation, so it identifies a schedule firing that carried no id of its
                    // own (a constant Input).
                    for trigger in &mut triggers {
                        if let Trigger::Schedule(tick) = trigger
                            && tick.id.is_none()
                        {
                            tick.id = Some(format!("lambda:{request_id}"));
                        }
                    }
                    run_triggers(&handler, triggers, deadline).await
                }
                Err(error) => Ok(unparsed(error)),
            };
            telemetry::flush_emf();
            delivered.map(Delivered::report)
        }
    });
    lambda_runtime::run(service)
        .await
        .map_err(|error| anyhow::anyhow!("Lambda runtime failed: {error}"))
}

/// Serves `router` (with the operational routes) to function URL and API Gateway HTTP API
/// invocations. A payload of any other kind (an S3 notification, a schedule) is answered with
/// the runtime's error naming the payloads it expects. Each invocation's metrics are written
/// as EMF after the router has answered, before the answer goes back to Lambda.
async fn serve_lambda_http(router: Router) -> anyhow::Result<()> {
    let app = with_operational_routes(router).layer(axum::middleware::map_response(
        |response: Response| async move {
            telemetry::flush_emf();
            response
        },
    ));
    lambda_http::run(app)
        .await
        .map_err(|error| anyhow::anyhow!("Lambda runtime failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str) -> Trigger {
        Trigger::ObjectCreated(events::ObjectCreated {
            bucket: "b".to_owned(),
            key: key.to_owned(),
            size: None,
            etag: None,
            event_name: "ObjectCreated:Put".to_owned(),
        })
    }

    /// Rejects keys starting with `bad`, is unavailable for keys starting with `down`, and
    /// reports the key otherwise.
    async fn stage(trigger: Trigger) -> StageResult {
        let Trigger::ObjectCreated(object) = trigger else {
            return Err(StageError::Rejected("objects only".to_owned()));
        };
        match object.key.as_str() {
            key if key.starts_with("bad") => Err(StageError::Rejected(format!("{key} is bad"))),
            key if key.starts_with("down") => Err(StageError::Unavailable("down".to_owned())),
            key => Ok(json!({ "outcome": "done", "key": key })),
        }
    }

    #[tokio::test]
    async fn a_rejected_trigger_is_reported_and_the_others_still_run() {
        let triggers = vec![object("bad-1"), object("good"), object("bad-2")];
        let delivered = run_triggers(&stage, triggers, None).await.unwrap();
        assert_eq!(delivered.first_rejection.as_deref(), Some("bad-1 is bad"));
        assert_eq!(
            delivered.report(),
            json!({ "results": [
                { "outcome": "rejected", "reason": "bad-1 is bad" },
                { "outcome": "done", "key": "good" },
                { "outcome": "rejected", "reason": "bad-2 is bad" },
            ]})
        );
    }

    #[tokio::test]
    async fn an_unavailable_trigger_fails_the_whole_delivery() {
        let triggers = vec![
            object("good"),
            object("bad"),
            object("down"),
            object("good"),
        ];
        let error = run_triggers(&stage, triggers, None).await.err().unwrap();
        assert!(matches!(error, StageError::Unavailable(_)), "{error}");
        let diagnostic = lambda_runtime::Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, UNAVAILABLE_ERROR_TYPE);
        assert_eq!(diagnostic.error_message, "unavailable: down");
    }

    #[tokio::test]
    async fn the_stage_sees_the_deadline_it_runs_within() {
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        let seen = run_triggers(
            &|_| async { Ok(json!(deadline::remaining().is_some())) },
            vec![object("any")],
            Some(deadline),
        )
        .await
        .unwrap();
        assert_eq!(seen.results, vec![json!(true)]);
    }
}
