//! Knative's adapters, for real: the MinIO → CloudEvents bridge (`bridge serve`) emits
//! CloudEvents the functions accept, to a real sink, answers MinIO 502 when the sink fails, and
//! 401 to a webhook call without its token; the JobSink runner (`bridge job`) runs an event
//! file through a real function binary. The bridge's dead-letter sink is tested in
//! `dead_letters`.

use std::{path::Path, sync::Arc, time::Duration};

use appraise_core::events::{self, Trigger};
use appraise_testkit::{fixtures, processes};

use super::cloud_events_sdk;
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::deploy_checks::{text, workspace};

/// A sink that records every request it gets and answers with `status`.
async fn recording_sink(status: StatusCode) -> (String, Arc<Mutex<Vec<(HeaderMap, Bytes)>>>) {
    type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;
    let seen: Seen = Arc::default();
    let router = Router::new()
        .route(
            "/",
            post(
                move |State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
                    seen.lock().await.push((headers, body));
                    status
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, seen)
}

/// The webhook token the tests' bridges expect (`BRIDGE_WEBHOOK_TOKEN`).
pub(super) const WEBHOOK_TOKEN: &str = "test-webhook-token-0123456789";

/// `bridge serve` on a free port, sending to `sink`, storing dead letters in `database_url`;
/// stops when dropped.
pub(super) struct Bridge {
    child: tokio::process::Child,
    port: u16,
}

impl Bridge {
    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(super) async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

pub(super) async fn start_bridge(sink: &str, database_url: &str) -> Bridge {
    let port = appraise_testkit::free_port().unwrap();
    let child = tokio::process::Command::new(processes::binary("bridge").unwrap())
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("BRIDGE_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("APPRAISE_EXIT_ON_STDIN_EOF", "1")
        .env("K_SINK", sink)
        .env(
            "K_CE_OVERRIDES",
            r#"{"extensions": {"cluster": "minikube"}}"#,
        )
        .env("BRIDGE_RETRIES", "1")
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let bridge = Bridge { child, port };
    for _ in 0..500 {
        if reqwest::get(format!("{}/healthz", bridge.url()))
            .await
            .is_ok_and(|response| response.status().is_success())
        {
            return bridge;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the bridge did not answer /healthz");
}

/// The bridge's `/metrics` text.
pub(super) async fn scrape(bridge: &Bridge) -> String {
    reqwest::get(format!("{}/metrics", bridge.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn minio_webhook() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(workspace().join("local/events/minio-webhook.json")).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_bridge_sends_cloud_events_the_functions_accept() {
    let (database_url, _pool) = fixtures::fresh_database().await.unwrap();
    let (sink, seen) = recording_sink(StatusCode::ACCEPTED).await;
    let bridge = start_bridge(&sink, &database_url).await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/", bridge.url()))
        .bearer_auth(WEBHOOK_TOKEN)
        .json(&minio_webhook())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["delivered"],
        json!(["raw/batch-000002/manifest.json"])
    );

    let seen = seen.lock().await.clone();
    assert_eq!(seen.len(), 1, "one CloudEvent per record");
    let (headers, body) = &seen[0];
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("ce-specversion"), "1.0");
    assert_eq!(header("ce-type"), "com.amazonaws.s3.ObjectCreated:Put");
    assert_eq!(header("ce-source"), "minio:s3..appraise");
    assert_eq!(header("ce-subject"), "raw/batch-000002/manifest.json");
    assert!(
        headers.get("ce-keyprefix").is_none(),
        "Triggers filter on subject"
    );
    assert_eq!(
        header("ce-cluster"),
        "minikube",
        "K_CE_OVERRIDES extensions"
    );
    assert_eq!(header("ce-time"), "2026-11-27T12:05:00.000Z");
    assert!(header("ce-id").starts_with("1797CF5A5B3C2D10."));
    assert_eq!(header("content-type"), "application/json");
    // What a function makes of exactly this request: the object, key decoded.
    let triggers = events::from_http(headers, body).unwrap();
    let [Trigger::ObjectCreated(object)] = triggers.as_slice() else {
        panic!("{triggers:?}")
    };
    assert_eq!(object.bucket, "appraise");
    assert_eq!(object.key, "raw/batch-000002/manifest.json");
    assert_eq!(object.event_name, "ObjectCreated:Put");

    // Not a webhook body: 400, and nothing is sent.
    let response = client
        .post(format!("{}/", bridge.url()))
        .bearer_auth(WEBHOOK_TOKEN)
        .json(&json!({"hello": "world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("Records"));
    let metrics = scrape(&bridge).await;
    assert!(
        metrics.contains("bridge_events_total{service=\"bridge\",outcome=\"delivered\"} 1"),
        "{metrics}"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn the_cloud_events_sdk_reads_the_object_key_as_the_subject_triggers_filter_on() {
    let (database_url, _pool) = fixtures::fresh_database().await.unwrap();
    let (sink, seen) = recording_sink(StatusCode::ACCEPTED).await;
    let bridge = start_bridge(&sink, &database_url).await;
    // A key with a space (`+` in MinIO's encoding) and `%41`: the binary-mode header must be
    // percent-encoded for a CloudEvents reader (Knative's broker filter) to see the key.
    let mut webhook = minio_webhook();
    webhook["Records"][0]["s3"]["object"]["key"] = json!("raw%2Fbatch+000002%2Fa%2541.json");
    let response = reqwest::Client::new()
        .post(format!("{}/", bridge.url()))
        .bearer_auth(WEBHOOK_TOKEN)
        .json(&webhook)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let (headers, body) = seen.lock().await[0].clone();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    bridge.stop().await;
    let Some(event) = cloud_events_sdk::parse(&headers, &body) else {
        return;
    };
    assert_eq!(event["subject"], "raw/batch 000002/a%41.json", "{event}");
    assert_eq!(event["type"], "com.amazonaws.s3.ObjectCreated:Put");
    assert_eq!(event["source"], "minio:s3..appraise");
    assert_eq!(event["cluster"], "minikube", "K_CE_OVERRIDES extensions");
    assert_eq!(
        event["data"]["s3"]["object"]["key"], "raw%2Fbatch+000002%2Fa%2541.json",
        "the record as MinIO sent it"
    );
}

#[tokio::test]
async fn the_bridge_refuses_webhook_calls_without_its_token() {
    let (database_url, _pool) = fixtures::fresh_database().await.unwrap();
    let (sink, seen) = recording_sink(StatusCode::ACCEPTED).await;
    let bridge = start_bridge(&sink, &database_url).await;
    let metrics = scrape(&bridge).await;
    assert!(
        metrics.contains("bridge_events_total{service=\"bridge\",outcome=\"unauthorized\"} 0"),
        "registered at 0 before any: {metrics}"
    );
    let client = reqwest::Client::new();
    let webhook = |authorization: Option<String>| {
        let mut request = client
            .post(format!("{}/", bridge.url()))
            .json(&minio_webhook());
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send()
    };
    for (what, authorization) in [
        ("no token", None),
        ("a wrong token", Some("Bearer not-the-token".to_owned())),
        (
            "the token one character short",
            Some(format!("Bearer {}", &WEBHOOK_TOKEN[1..])),
        ),
        ("the token without Bearer", Some(WEBHOOK_TOKEN.to_owned())),
    ] {
        let response = webhook(authorization).await.unwrap();
        assert_eq!(response.status(), 401, "{what}");
        assert!(
            response.text().await.unwrap().contains("Authorization"),
            "{what}: the answer says why"
        );
    }
    assert!(seen.lock().await.is_empty(), "nothing refused was sent on");

    // MinIO's form, `Authorization: Bearer <token>`: forwarded.
    let response = webhook(Some(format!("Bearer {WEBHOOK_TOKEN}")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(seen.lock().await.len(), 1);
    let metrics = scrape(&bridge).await;
    assert!(
        metrics.contains("bridge_events_total{service=\"bridge\",outcome=\"unauthorized\"} 4"),
        "{metrics}"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn the_bridge_does_not_start_without_its_webhook_token() {
    let output = tokio::process::Command::new(processes::binary("bridge").unwrap())
        .arg("serve")
        .env("K_SINK", "http://127.0.0.1:9/")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:9/none")
        .env_remove("BRIDGE_WEBHOOK_TOKEN")
        .env("PORT", appraise_testkit::free_port().unwrap().to_string())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("BRIDGE_WEBHOOK_TOKEN"),
        "{}",
        text(&output)
    );
}

#[tokio::test]
async fn a_webhook_token_that_is_refused_is_named_but_not_shown() {
    let token = "leaked secret-with-a-space";
    let output = tokio::process::Command::new(processes::binary("bridge").unwrap())
        .arg("serve")
        .env("K_SINK", "http://127.0.0.1:9/")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:9/none")
        .env("BRIDGE_WEBHOOK_TOKEN", token)
        .env("PORT", appraise_testkit::free_port().unwrap().to_string())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success(), "{}", text(&output));
    let all = text(&output);
    assert!(all.contains("BRIDGE_WEBHOOK_TOKEN"), "{all}");
    assert!(all.contains("whitespace"), "the reason is given: {all}");
    assert!(!all.contains("leaked"), "the token is not shown: {all}");
}

#[tokio::test]
async fn the_bridge_answers_502_when_the_sink_fails_so_minio_retries() {
    let (database_url, _pool) = fixtures::fresh_database().await.unwrap();
    let (sink, seen) = recording_sink(StatusCode::SERVICE_UNAVAILABLE).await;
    let bridge = start_bridge(&sink, &database_url).await;
    let response = reqwest::Client::new()
        .post(format!("{}/", bridge.url()))
        .bearer_auth(WEBHOOK_TOKEN)
        .json(&minio_webhook())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("the sink answered 503")
    );
    assert_eq!(seen.lock().await.len(), 2, "one retry (BRIDGE_RETRIES=1)");
    bridge.stop().await;
}

#[tokio::test]
async fn the_job_runner_runs_an_event_file_through_a_function() {
    let (database_url, _pool) = fixtures::fresh_database().await.unwrap();
    let (s3, _objects) = fixtures::s3_server(Vec::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A structured CloudEvent as a JobSink mounts it: an object process does not act on.
    let event = dir.path().join("event");
    std::fs::write(
        &event,
        json!({
            "specversion": "1.0", "id": "job-1", "source": "minio:s3..appraise",
            "type": "com.amazonaws.s3.ObjectCreated:Put", "subject": "raw/batch-000001/response.json.gz",
            "datacontenttype": "application/json",
            "data": {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": "appraise"},
                     "object": {"key": "raw%2Fbatch-000001%2Fresponse.json.gz"}}}
        })
        .to_string(),
    )
    .unwrap();
    let port = appraise_testkit::free_port().unwrap().to_string();
    let job = async |event: &Path| {
        tokio::process::Command::new(processes::binary("bridge").unwrap())
            .args(["job", "--port", &port, "--event-file"])
            .arg(event)
            .arg(processes::binary("process").unwrap())
            .env("DATABASE_URL", &database_url)
            .env("HOST", "127.0.0.1")
            .envs(s3.env(fixtures::BUCKET))
            .output()
            .await
            .unwrap()
    };
    let output = job(&event).await;
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("Done("), "{stdout}");
    assert!(stdout.contains("response.json.gz"), "{stdout}");

    // An event no function takes is rejected for good: exit 0, no retry.
    std::fs::write(
        &event,
        r#"{"specversion": "1.0", "id": "x", "source": "s", "type": "com.example.other"}"#,
    )
    .unwrap();
    let output = job(&event).await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("Rejected("),
        "{}",
        text(&output)
    );
}
