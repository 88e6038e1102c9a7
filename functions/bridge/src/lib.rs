//! `appraise-bridge`: the small adapters the Knative deployment needs between the platform
//! and the functions. They run only on Knative, so they live apart from the local harness; the
//! `bridge` binary serves either (`bridge serve`, `bridge job`).
//!
//! **The MinIO → CloudEvents bridge** (`bridge serve`, `POST /`). MinIO's webhook posts plain
//! JSON bodies (`EventName`, `Key`, `Records[]`) without CloudEvents headers, which a Knative
//! Broker refuses. The bridge takes those bodies on `POST /` and sends one CloudEvent per
//! record, in binary mode, to `$K_SINK` (the Broker, injected by a SinkBinding), mapped as the
//! CloudEvents AWS S3 adapter says:
//!
//! | attribute | value |
//! |---|---|
//! | `id` | `responseElements.x-amz-request-id` `.` `responseElements.x-amz-id-2` (bucket, key and sequencer when MinIO leaves those out) |
//! | `source` | `eventSource` `.` `awsRegion` `.` `s3.bucket.name` (MinIO: `minio:s3..appraise`, its region is empty) |
//! | `type` | `com.amazonaws.s3.` + `eventName` without MinIO's `s3:` prefix, e.g. `com.amazonaws.s3.ObjectCreated:Put` |
//! | `subject` | the object key, decoded (MinIO sends `raw%2Fbatch-000001%2Fmanifest.json`) |
//! | `time` | `eventTime` |
//! | `datacontenttype` | `application/json` |
//! | data | the S3 record, untouched (its key still encoded, as the functions expect) |
//!
//! The Triggers pick a stage's objects with the `filters` dialect on `subject`
//! (`prefix: {subject: raw/}`), so no extension attribute of our own is needed. Extensions
//! from `$K_CE_OVERRIDES` (a SinkBinding's `ceOverrides`) are added. A delivery the sink does
//! not accept with a 2xx is retried a few times; if it still fails the bridge answers MinIO with
//! 502, so MinIO keeps the event in its queue and sends it again.
//!
//! Only MinIO may post there: MinIO sends `Authorization: Bearer <token>` when its target has an
//! auth token (`MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_BRIDGE`), and the bridge answers 401, sending
//! nothing, unless the token is `$BRIDGE_WEBHOOK_TOKEN` (compared in constant time). The token
//! is required: `bridge serve` does not start without it, and an error about it never shows
//! its value.
//!
//! **The dead-letter sink** (`bridge serve`, `POST /dead-letters`, module [`dead_letters`]).
//! Every event Knative gives up delivering is stored in `ops.dead_letters` (PostgreSQL,
//! `$DATABASE_URL`) and counted in `dead_letters_total{destination}`. The route takes no
//! credentials (Knative's dispatchers send none); on Knative the NetworkPolicy
//! `s3-bridge-ingress` (knative/platform/bridge.yaml) lets only the `knative-eventing`
//! namespace, MinIO and Prometheus reach the bridge's pods.
//!
//! **The JobSink runner** (`bridge job`). Training may outlast a request, so on Knative it
//! runs as a Kubernetes Job made by a JobSink, which mounts the event as a JSON file. The runner
//! starts the function binary (in its ordinary HTTP mode, on `--port`), posts that event to it,
//! waits for its answer, optionally lingers so Prometheus scrapes the run's metrics, stops it,
//! and exits 0 when the event was handled (or rejected for good: retrying cannot help) and 1
//! when a retry may succeed, so the Job's `backoffLimit` retries it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use appraise_core::{auth, config, db, events, runtime};
use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

pub mod dead_letters;

/// The CloudEvent type prefix of the CloudEvents AWS S3 adapter.
pub const TYPE_PREFIX: &str = events::S3_CLOUD_EVENT_PREFIX;

/// What the CloudEvents HTTP binding percent-encodes in a `ce-` header value (besides every
/// byte that is not ASCII, which percent-encoding always escapes).
const HEADER_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b' ').add(b'"').add(b'%');

/// One S3 record as a CloudEvent.
#[derive(Debug, Clone, PartialEq)]
pub struct S3CloudEvent {
    pub id: String,
    pub source: String,
    pub event_type: String,
    /// The decoded object key.
    pub subject: String,
    pub time: Option<String>,
    /// The S3 record.
    pub data: Value,
}

impl S3CloudEvent {
    /// The HTTP headers of the event in binary mode, `extensions` (e.g. from `K_CE_OVERRIDES`)
    /// included; the body is [`S3CloudEvent::data`] as JSON. Attribute values are
    /// percent-encoded where the CloudEvents HTTP binding says so (space, `"`, `%`, controls,
    /// anything not ASCII), so a key such as `raw/a b%` arrives as itself.
    pub fn binary_headers(&self, extensions: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let mut headers = vec![
            ("ce-specversion".to_owned(), "1.0".to_owned()),
            ("ce-id".to_owned(), self.id.clone()),
            ("ce-source".to_owned(), self.source.clone()),
            ("ce-type".to_owned(), self.event_type.clone()),
            ("ce-subject".to_owned(), self.subject.clone()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        if let Some(time) = &self.time {
            headers.push(("ce-time".to_owned(), time.clone()));
        }
        for (name, value) in extensions {
            headers.push((format!("ce-{name}"), value.clone()));
        }
        for (name, value) in &mut headers {
            if name.starts_with("ce-") {
                *value = percent_encoding::utf8_percent_encode(value, HEADER_ESCAPES).to_string();
            }
        }
        headers
    }
}

/// Maps a MinIO webhook body (or an AWS S3 notification: the same `Records[]`) to one CloudEvent
/// per record. An error names the field that is wrong.
pub fn cloud_events(body: &Value) -> Result<Vec<S3CloudEvent>, String> {
    let records = body
        .get("Records")
        .and_then(Value::as_array)
        .ok_or("Records: expected an array of S3 records")?;
    let mut out = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let field = |name: &str| format!("Records[{index}].{name}");
        let text = |path: &[&str]| -> Option<&str> {
            let mut here = record;
            for step in path {
                here = here.get(step)?;
            }
            here.as_str()
        };
        let event_name = text(&["eventName"]).ok_or_else(|| field("eventName: missing"))?;
        let event_name = event_name.strip_prefix("s3:").unwrap_or(event_name);
        let bucket =
            text(&["s3", "bucket", "name"]).ok_or_else(|| field("s3.bucket.name: missing"))?;
        let encoded_key =
            text(&["s3", "object", "key"]).ok_or_else(|| field("s3.object.key: missing"))?;
        let key = events::decode_key(encoded_key)
            .map_err(|reason| format!("{}: {reason}", field("s3.object.key")))?;
        let id = match (
            text(&["responseElements", "x-amz-request-id"]),
            text(&["responseElements", "x-amz-id-2"]),
        ) {
            (Some(request), Some(host)) if !request.is_empty() => format!("{request}.{host}"),
            _ => format!(
                "{bucket}/{key}/{}",
                text(&["s3", "object", "sequencer"]).unwrap_or("")
            ),
        };
        let source = format!(
            "{}.{}.{bucket}",
            text(&["eventSource"]).unwrap_or("aws:s3"),
            text(&["awsRegion"]).unwrap_or("")
        );
        out.push(S3CloudEvent {
            id,
            source,
            event_type: format!("{TYPE_PREFIX}{event_name}"),
            subject: key,
            time: text(&["eventTime"]).map(str::to_owned),
            data: record.clone(),
        });
    }
    Ok(out)
}

/// The token MinIO must send (`Authorization: Bearer <token>`): not empty, no whitespace (MinIO
/// sends a token with a space in it as the whole header value, without `Bearer `).
#[derive(Clone)]
pub struct WebhookToken(String);

impl WebhookToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WebhookToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookToken(..)")
    }
}

impl std::str::FromStr for WebhookToken {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.is_empty() {
            return Err("empty".to_owned());
        }
        if value.chars().any(char::is_whitespace) {
            return Err(
                "contains whitespace (MinIO would not send it as a bearer token)".to_owned(),
            );
        }
        Ok(WebhookToken(value.to_owned()))
    }
}

/// Where the bridge sends events and what it adds to them.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The sink's URL (`K_SINK`).
    pub sink: String,
    /// Extension attributes added to every event (`K_CE_OVERRIDES`'s `extensions`).
    pub extensions: BTreeMap<String, String>,
    /// Further attempts after a failed delivery.
    pub retries: u32,
    /// The bearer token MinIO's webhook must carry (`BRIDGE_WEBHOOK_TOKEN`).
    pub webhook_token: WebhookToken,
}

impl BridgeConfig {
    /// From `K_SINK` (required: a SinkBinding or ContainerSource sets it), `K_CE_OVERRIDES`
    /// (optional JSON `{"extensions": {...}}`), `BRIDGE_RETRIES` (default 3) and
    /// `BRIDGE_WEBHOOK_TOKEN` (required).
    pub fn from_env() -> anyhow::Result<BridgeConfig> {
        let sink: String = config::required(
            "K_SINK",
            "where CloudEvents go; a SinkBinding sets it to the Broker's URL",
        )?;
        let extensions = match config::maybe::<String>("K_CE_OVERRIDES")? {
            None => BTreeMap::new(),
            Some(text) => {
                let overrides: Value = serde_json::from_str(&text).map_err(|error| {
                    config::ConfigError::invalid("K_CE_OVERRIDES", &text, error)
                })?;
                overrides
                    .get("extensions")
                    .and_then(Value::as_object)
                    .map(|map| {
                        map.iter()
                            .map(|(k, v)| {
                                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                                (k.to_ascii_lowercase(), v)
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            }
        };
        Ok(BridgeConfig {
            sink,
            extensions,
            retries: config::optional("BRIDGE_RETRIES", 3)?,
            webhook_token: config::required_secret(
                "BRIDGE_WEBHOOK_TOKEN",
                "the bearer token MinIO's webhook sends (MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_BRIDGE)",
            )?,
        })
    }
}

#[derive(Clone)]
struct Bridge {
    config: BridgeConfig,
    client: reqwest::Client,
}

/// The bridge's HTTP routes: `POST /` takes a MinIO webhook body, `POST /dead-letters` a
/// dead letter from Knative.
pub fn router(config: BridgeConfig, db: db::DbPool) -> Router {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("the bridge's HTTP client builds");
    Router::new()
        .route("/", post(receive).with_state(Bridge { config, client }))
        .route("/dead-letters", post(dead_letters::receive).with_state(db))
}

/// Runs the bridge on `$PORT` until SIGTERM (with `/healthz` and `/metrics`), once PostgreSQL
/// answers and the migrations are applied.
pub async fn serve() -> anyhow::Result<()> {
    appraise_core::telemetry::init("bridge");
    let config = BridgeConfig::from_env()?;
    let pool = db::pool_from_env().await?;
    db::connect_and_migrate(&pool, Duration::from_secs(30)).await?;
    tracing::info!(sink = %config.sink, "bridging MinIO webhooks to CloudEvents");
    // Exported at 0 from the start, so the alerts' increase() sees the first of each.
    for outcome in ["failed", "unauthorized"] {
        metrics::counter!("bridge_events_total", "outcome" => outcome).increment(0);
    }
    dead_letters::register_metrics();
    runtime::serve_http("bridge", router(config, pool)).await
}

async fn receive(State(bridge): State<Bridge>, headers: HeaderMap, body: Bytes) -> Response {
    if !auth::bearer_token_matches(&headers, bridge.config.webhook_token.as_str()) {
        metrics::counter!("bridge_events_total", "outcome" => "unauthorized").increment(1);
        tracing::warn!("a webhook call without the right bearer token; refused");
        return runtime::error_response(
            StatusCode::UNAUTHORIZED,
            "Authorization: expected the webhook's bearer token (MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_BRIDGE)",
        );
    }
    let parsed = serde_json::from_slice::<Value>(&body)
        .map_err(|error| format!("body: not JSON: {error}"))
        .and_then(|value| cloud_events(&value));
    let cloud_events = match parsed {
        Ok(events) => events,
        Err(reason) => {
            metrics::counter!("bridge_events_total", "outcome" => "invalid").increment(1);
            tracing::warn!(%reason, "not a MinIO webhook body");
            return runtime::error_response(StatusCode::BAD_REQUEST, &reason);
        }
    };
    let mut delivered = Vec::with_capacity(cloud_events.len());
    for event in &cloud_events {
        match deliver(&bridge, event).await {
            Ok(()) => {
                metrics::counter!("bridge_events_total", "outcome" => "delivered").increment(1);
                tracing::info!(key = %event.subject, r#type = %event.event_type, "delivered");
                delivered.push(event.subject.clone());
            }
            Err(reason) => {
                metrics::counter!("bridge_events_total", "outcome" => "failed").increment(1);
                tracing::error!(key = %event.subject, %reason, "delivery failed");
                return runtime::error_response(
                    StatusCode::BAD_GATEWAY,
                    &format!("delivering {}: {reason}", event.subject),
                );
            }
        }
    }
    Json(json!({ "delivered": delivered })).into_response()
}

async fn deliver(bridge: &Bridge, event: &S3CloudEvent) -> Result<(), String> {
    let body = serde_json::to_vec(&event.data).expect("a record serializes");
    let mut wait = Duration::from_millis(200);
    let mut last = String::new();
    for attempt in 0..=bridge.config.retries {
        if attempt > 0 {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        let mut request = bridge.client.post(&bridge.config.sink).body(body.clone());
        for (name, value) in event.binary_headers(&bridge.config.extensions) {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => {
                let status = response.status();
                last = format!("the sink answered {status}");
                // A 4xx other than 429 will not change on a retry.
                if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
                    return Err(last);
                }
            }
            Err(error) => last = format!("cannot reach the sink: {error}"),
        }
    }
    Err(last)
}

/// What `bridge job` does.
#[derive(Debug, Clone)]
pub struct JobRun {
    /// The event file (a JobSink mounts it at `/etc/jobsink-event/event`).
    pub event_file: PathBuf,
    /// The function binary to run.
    pub binary: PathBuf,
    /// The port the function listens on (on every interface, so Prometheus can scrape it).
    pub port: u16,
    /// How long the function keeps serving `/metrics` after the event, so a scrape sees it.
    pub linger: Duration,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// The function handled the event (2xx).
    Done(Value),
    /// The function rejected the event for good (4xx): running it again cannot help.
    Rejected(String),
    /// The function failed in a way a retry may fix (5xx).
    Failed(String),
}

impl JobOutcome {
    /// The process exit code: 0 unless a retry may help.
    pub fn exit_code(&self) -> i32 {
        match self {
            JobOutcome::Done(_) | JobOutcome::Rejected(_) => 0,
            JobOutcome::Failed(_) => 1,
        }
    }
}

/// Reads the event file, which holds a CloudEvent in structured JSON mode.
pub fn read_event_file(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the event file {}", path.display()))?;
    let event: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if event.get("data").is_none() && event.get("data_base64").is_some() {
        bail!(
            "{}: the event's data is base64 (data_base64); send it with datacontenttype application/json",
            path.display()
        );
    }
    Ok(event)
}

/// Runs one event through the function binary and reports how it went.
pub async fn run_job(job: &JobRun) -> anyhow::Result<JobOutcome> {
    let event = read_event_file(&job.event_file)?;
    // The binary exits when its stdin closes (`APPRAISE_EXIT_ON_STDIN_EOF`), so it never
    // outlives this runner.
    let mut child = tokio::process::Command::new(&job.binary)
        .env("PORT", job.port.to_string())
        .env("APPRAISE_EXIT_ON_STDIN_EOF", "1")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", job.binary.display()))?;
    let base = format!("http://127.0.0.1:{}", job.port);
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await
            && response.status().is_success()
        {
            break;
        }
        if let Some(status) = child.try_wait()? {
            bail!("{} exited at start with {status}", job.binary.display());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "{} did not answer /healthz within 120 s",
                job.binary.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = client
        .post(format!("{base}/"))
        .header("content-type", "application/cloudevents+json")
        .json(&event)
        .send()
        .await;
    let outcome = match answer {
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status.is_success() {
                JobOutcome::Done(serde_json::from_str(&text).unwrap_or(Value::String(text)))
            } else if status.is_client_error() {
                JobOutcome::Rejected(format!("{status}: {text}"))
            } else {
                JobOutcome::Failed(format!("{status}: {text}"))
            }
        }
        Err(error) => JobOutcome::Failed(format!("no answer from the function: {error}")),
    };
    if !job.linger.is_zero() {
        tokio::time::sleep(job.linger).await;
    }
    drop(child.stdin.take());
    if tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minio_body() -> Value {
        serde_json::from_str(include_str!("../../../local/events/minio-webhook.json")).unwrap()
    }

    #[test]
    fn a_minio_record_maps_as_the_s3_adapter_says() {
        let events = cloud_events(&minio_body()).unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.event_type, "com.amazonaws.s3.ObjectCreated:Put");
        assert_eq!(event.subject, "raw/batch-000002/manifest.json");
        assert_eq!(event.source, "minio:s3..appraise");
        assert_eq!(
            event.id,
            "1797CF5A5B3C2D10.dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8"
        );
        assert_eq!(event.time.as_deref(), Some("2026-11-27T12:05:00.000Z"));
        assert_eq!(event.data, minio_body()["Records"][0]);
    }

    #[test]
    fn a_webhook_token_is_one_word() {
        assert!("s3cret".parse::<WebhookToken>().is_ok());
        assert!("".parse::<WebhookToken>().is_err());
        assert!("Bearer s3cret".parse::<WebhookToken>().is_err());
    }

    #[test]
    fn what_is_wrong_with_a_body_is_named() {
        assert!(
            cloud_events(&json!({"EventName": "x"}))
                .unwrap_err()
                .contains("Records")
        );
        let error =
            cloud_events(&json!({"Records": [{"eventName": "s3:ObjectCreated:Put"}]})).unwrap_err();
        assert!(error.contains("Records[0].s3.bucket.name"), "{error}");
    }

    #[test]
    fn an_aws_record_without_request_ids_gets_an_id_from_its_object() {
        let body = json!({"Records": [{"eventName": "ObjectCreated:Put", "eventSource": "aws:s3",
            "awsRegion": "us-east-1", "s3": {"bucket": {"name": "b"}, "object": {"key": "top.json", "sequencer": "01"}}}]});
        let event = &cloud_events(&body).unwrap()[0];
        assert_eq!(event.subject, "top.json");
        assert_eq!(event.source, "aws:s3.us-east-1.b");
        assert_eq!(event.id, "b/top.json/01");
    }
}
