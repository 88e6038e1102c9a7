//! The bridge's dead-letter sink (`POST /dead-letters`), for real: dead letters as Knative's
//! dispatcher sends them, in binary and in structured mode with its error extensions, made by
//! the CloudEvents Python SDK (not our code), are stored in a real PostgreSQL once each and
//! counted in `dead_letters_total` (once for each address Knative could not reach); a `time`
//! or `knativeerrorcode` that does not parse is stored as NULL and kept in `extensions`; what
//! is not a CloudEvent is refused with 400; and while the
//! row cannot be written the answer is 503, so Knative sends it again. The manifests' check
//! (infra/checks/check_manifests.py) refuses a Broker or Trigger without a dead-letter sink, a
//! Trigger that does not filter on the subject's prefix, and a Secret key nobody wrote.

use appraise_testkit::fixtures;
use serde_json::{Value, json};

use super::bridge::{scrape, start_bridge};
use super::cloud_events_sdk;
use super::deploy_checks::{check_manifests, copy_of_the_manifests, edit, text, workspace};

async fn post(url: &str, (headers, body): &(Vec<(String, String)>, String)) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).body(body.clone());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn counter(metrics: &str, destination: &str) -> Option<f64> {
    let series = format!("dead_letters_total{{service=\"bridge\",destination=\"{destination}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map(|value| value.trim().parse().unwrap())
}

const STAGES: [&str; 6] = ["ingest", "process", "train", "promote", "predict", "other"];

/// The S3 record the bridge sent (what the functions got), the event's data.
fn record(key: &str) -> Value {
    json!({"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": "appraise"},
        "object": {"key": key}}})
}

#[tokio::test]
async fn dead_letters_are_stored_once_each_and_counted_by_stage() {
    let (database_url, pool) = fixtures::fresh_database().await.unwrap();
    // Where the webhook's events would go; these tests send none.
    let bridge = start_bridge("http://127.0.0.1:9/", &database_url).await;
    let metrics = scrape(&bridge).await;
    for stage in STAGES {
        assert_eq!(
            counter(&metrics, stage),
            Some(0.0),
            "{stage} registered at 0 before any dead letter: {metrics}"
        );
    }

    // As Knative's dispatcher sends them: process answered 503 (binary mode, the default), and
    // the JobSink refused train's event (a Trigger with `delivery.format: json`).
    let process_error = "eyJlcnJvciI6ICJ1bmF2YWlsYWJsZTogZGF0YWJhc2UifQ=="; // {"error": "unavailable: database"}
    let Some(requests) = cloud_events_sdk::requests(&json!([
        {"mode": "binary", "attributes": {
            "specversion": "1.0", "id": "req-1.host-1", "source": "minio:s3..appraise",
            "type": "com.amazonaws.s3.ObjectCreated:Put",
            "subject": "raw/batch 000002/manifest.json", "time": "2026-11-27T12:05:00+00:00",
            "datacontenttype": "application/json",
            "knativeerrordest": "http://process.appraise.svc.cluster.local",
            "knativeerrorcode": 503, "knativeerrordata": process_error,
            "knativearrivaltime": "2026-11-27T12:05:01Z"},
         "data": record("raw%2Fbatch+000002%2Fmanifest.json")},
        {"mode": "structured", "attributes": {
            "specversion": "1.0", "id": "req-2.host-2", "source": "minio:s3..appraise",
            "type": "com.amazonaws.s3.ObjectCreated:Put",
            "subject": "clean/batch-000002/manifest.json", "datacontenttype": "application/json",
            "knativeerrordest": "http://job-sink.knative-eventing.svc.cluster.local/appraise/train",
            "knativeerrorcode": 500, "knativeerrordata": ""},
         "data": record("clean%2Fbatch-000002%2Fmanifest.json")},
    ])) else {
        bridge.stop().await;
        return;
    };
    let url = format!("{}/dead-letters", bridge.url());
    let (status, answer) = post(&url, &requests[0]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"stored": true, "destination": "process"}));
    let (status, answer) = post(&url, &requests[1]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"stored": true, "destination": "train"}));
    // Knative sends a dead letter again when it did not see our answer: stored once.
    let (status, answer) = post(&url, &requests[0]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stored"], json!(false));

    let count: i64 = fixtures::query_value(&pool, "SELECT count(*) FROM ops.dead_letters").await;
    assert_eq!(count, 2);
    let row = pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT subject, to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), destination,
                    knativeerrordest, knativeerrorcode, knativeerrordata, data,
                    extensions->>'knativearrivaltime', datacontenttype
             FROM ops.dead_letters WHERE source = 'minio:s3..appraise' AND id = 'req-1.host-1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "raw/batch 000002/manifest.json",
        "the percent-encoded ce-subject decoded"
    );
    assert_eq!(row.get::<_, String>(1), "2026-11-27 12:05:00");
    assert_eq!(row.get::<_, String>(2), "process");
    assert_eq!(
        row.get::<_, String>(3),
        "http://process.appraise.svc.cluster.local"
    );
    assert_eq!(row.get::<_, i32>(4), 503);
    assert_eq!(row.get::<_, String>(5), process_error);
    assert_eq!(
        row.get::<_, Value>(6),
        record("raw%2Fbatch+000002%2Fmanifest.json")
    );
    assert_eq!(row.get::<_, String>(7), "2026-11-27T12:05:01Z");
    assert_eq!(row.get::<_, String>(8), "application/json");
    let row = pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT destination, knativeerrorcode, data
             FROM ops.dead_letters WHERE id = 'req-2.host-2'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "train");
    assert_eq!(row.get::<_, i32>(1), 500);
    assert_eq!(
        row.get::<_, Value>(2),
        record("clean%2Fbatch-000002%2Fmanifest.json")
    );

    let metrics = scrape(&bridge).await;
    for (stage, expected) in [
        ("process", 1.0),
        ("train", 1.0),
        ("predict", 0.0),
        ("other", 0.0),
    ] {
        assert_eq!(
            counter(&metrics, stage),
            Some(expected),
            "{stage}: {metrics}"
        );
    }
    bridge.stop().await;
}

#[tokio::test]
async fn one_event_given_up_by_the_broker_and_a_trigger_is_stored_and_counted_for_each() {
    let (database_url, pool) = fixtures::fresh_database().await.unwrap();
    let bridge = start_bridge("http://127.0.0.1:9/", &database_url).await;
    let attributes = |destination: &str| {
        json!({"specversion": "1.0", "id": "req-9.host-9", "source": "minio:s3..appraise",
            "type": "com.amazonaws.s3.ObjectCreated:Put",
            "subject": "raw/batch-000009/manifest.json",
            "knativeerrordest": destination, "knativeerrorcode": 503})
    };
    // The Broker gave it up on its channel, and the process Trigger could not reach process:
    // the same event (source and id), two dead letters.
    let Some(requests) = cloud_events_sdk::requests(&json!([
        {"mode": "binary", "attributes": attributes(
            "http://default-kne-trigger-kn-channel.appraise.svc.cluster.local"),
         "data": record("raw%2Fbatch-000009%2Fmanifest.json")},
        {"mode": "binary", "attributes": attributes("http://process.appraise.svc.cluster.local"),
         "data": record("raw%2Fbatch-000009%2Fmanifest.json")},
    ])) else {
        bridge.stop().await;
        return;
    };
    let url = format!("{}/dead-letters", bridge.url());
    let (status, answer) = post(&url, &requests[0]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"stored": true, "destination": "other"}));
    let (status, answer) = post(&url, &requests[1]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"stored": true, "destination": "process"}));
    // Each sent again: still one row for each.
    for request in &requests {
        let (status, answer) = post(&url, request).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["stored"], json!(false), "{answer}");
    }
    let count: i64 = fixtures::query_value(
        &pool,
        "SELECT count(*) FROM ops.dead_letters WHERE id = 'req-9.host-9'",
    )
    .await;
    assert_eq!(count, 2);
    let metrics = scrape(&bridge).await;
    assert_eq!(counter(&metrics, "other"), Some(1.0), "{metrics}");
    assert_eq!(counter(&metrics, "process"), Some(1.0), "{metrics}");
    bridge.stop().await;
}

#[tokio::test]
async fn a_dead_letter_with_a_time_or_code_that_does_not_parse_is_stored_with_them_kept() {
    let (database_url, pool) = fixtures::fresh_database().await.unwrap();
    let bridge = start_bridge("http://127.0.0.1:9/", &database_url).await;
    let url = format!("{}/dead-letters", bridge.url());
    let binary = (
        vec![
            ("ce-specversion".to_owned(), "1.0".to_owned()),
            ("ce-id".to_owned(), "odd-1".to_owned()),
            ("ce-source".to_owned(), "minio:s3..appraise".to_owned()),
            (
                "ce-type".to_owned(),
                "com.amazonaws.s3.ObjectCreated:Put".to_owned(),
            ),
            ("ce-time".to_owned(), "yesterday".to_owned()),
            (
                "ce-knativeerrordest".to_owned(),
                "http://predict.appraise.svc.cluster.local".to_owned(),
            ),
            ("ce-knativeerrorcode".to_owned(), "teapot".to_owned()),
        ],
        String::new(),
    );
    let structured = (
        vec![(
            "content-type".to_owned(),
            "application/cloudevents+json".to_owned(),
        )],
        json!({"specversion": "1.0", "id": "odd-2", "source": "s", "type": "t",
               "time": "2026-13-45T99:00:00Z", "knativeerrorcode": {"status": 500}})
        .to_string(),
    );
    for (request, destination) in [(&binary, "predict"), (&structured, "other")] {
        let (status, answer) = post(&url, request).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer, json!({"stored": true, "destination": destination}));
    }
    let client = pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT id, time IS NULL, knativeerrorcode IS NULL, extensions->>'time',
                    extensions->>'knativeerrorcode'
             FROM ops.dead_letters ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(String, bool, bool, String, String)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
        .collect();
    assert_eq!(
        rows,
        [
            (
                "odd-1".to_owned(),
                true,
                true,
                "yesterday".to_owned(),
                "teapot".to_owned()
            ),
            (
                "odd-2".to_owned(),
                true,
                true,
                "2026-13-45T99:00:00Z".to_owned(),
                r#"{"status":500}"#.to_owned()
            ),
        ]
    );
    let metrics = scrape(&bridge).await;
    assert_eq!(counter(&metrics, "predict"), Some(1.0), "{metrics}");
    bridge.stop().await;
}

#[tokio::test]
async fn what_is_not_a_cloud_event_is_refused_with_the_reason() {
    let (database_url, pool) = fixtures::fresh_database().await.unwrap();
    let bridge = start_bridge("http://127.0.0.1:9/", &database_url).await;
    let url = format!("{}/dead-letters", bridge.url());
    let json_body = vec![("content-type".to_owned(), "application/json".to_owned())];
    let structured = vec![(
        "content-type".to_owned(),
        "application/cloudevents+json".to_owned(),
    )];
    let cases = [
        (
            json_body.clone(),
            r#"{"hello": "world"}"#.to_owned(),
            "ce-specversion",
        ),
        (
            structured.clone(),
            json!({"specversion": "1.0", "source": "s", "type": "t"}).to_string(),
            "id: missing",
        ),
        (structured, "not json".to_owned(), "body"),
    ];
    for (headers, body, reason) in cases {
        let (status, answer) = post(&url, &(headers, body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(reason), "{body}: {error}");
    }
    let count: i64 = fixtures::query_value(&pool, "SELECT count(*) FROM ops.dead_letters").await;
    assert_eq!(count, 0);
    bridge.stop().await;
}

#[tokio::test]
async fn a_dead_letter_that_cannot_be_stored_is_answered_503_so_knative_sends_it_again() {
    let (database_url, pool) = fixtures::fresh_database().await.unwrap();
    let bridge = start_bridge("http://127.0.0.1:9/", &database_url).await;
    let url = format!("{}/dead-letters", bridge.url());
    let letter = (
        vec![
            ("ce-specversion".to_owned(), "1.0".to_owned()),
            ("ce-id".to_owned(), "lost-1".to_owned()),
            ("ce-source".to_owned(), "minio:s3..appraise".to_owned()),
            (
                "ce-type".to_owned(),
                "com.amazonaws.s3.ObjectCreated:Put".to_owned(),
            ),
            (
                "ce-knativeerrordest".to_owned(),
                "http://promote.appraise.svc.cluster.local".to_owned(),
            ),
            ("ce-knativeerrorcode".to_owned(), "502".to_owned()),
        ],
        String::new(),
    );
    let client = pool.get().await.unwrap();
    // The table out of reach stands in for a database that cannot take the row.
    client
        .batch_execute("ALTER TABLE ops.dead_letters RENAME TO dead_letters_away")
        .await
        .unwrap();
    let (status, answer) = post(&url, &letter).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        scrape(&bridge)
            .await
            .contains("dead_letters_total{service=\"bridge\",destination=\"promote\"} 0")
    );
    client
        .batch_execute("ALTER TABLE ops.dead_letters_away RENAME TO dead_letters")
        .await
        .unwrap();
    let (status, answer) = post(&url, &letter).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"stored": true, "destination": "promote"}));
    assert!(
        scrape(&bridge)
            .await
            .contains("dead_letters_total{service=\"bridge\",destination=\"promote\"} 1")
    );
    bridge.stop().await;
}

#[test]
fn the_manifest_check_refuses_events_that_could_be_dropped_unseen() {
    let copy = copy_of_the_manifests();
    let knative = copy.path().join("knative");
    let eventing = knative.join("eventing.yaml");
    // The Broker without a dead-letter sink (its first delivery block).
    edit(
        &eventing,
        "    deadLetterSink:\n      ref:\n        apiVersion: v1\n        kind: Service\n        name: s3-bridge\n      uri: /dead-letters\n",
        "",
    );
    // A Trigger back on the old exact-match attribute, and one with a typo in its policy.
    edit(
        &eventing,
        "  filters:\n    - prefix:\n        subject: raw/\n",
        "  filter:\n    attributes:\n      keyprefix: raw\n",
    );
    let text_now = std::fs::read_to_string(&eventing).unwrap();
    let train = text_now.find("name: train-on-clean").unwrap();
    let broken = format!(
        "{}{}",
        &text_now[..train],
        text_now[train..].replacen("retry: 10", "retries: 10", 1)
    );
    std::fs::write(&eventing, broken).unwrap();
    // The bridge's token taken from a key the Secret's env file does not have.
    edit(
        &knative.join("admin.env"),
        "BRIDGE_WEBHOOK_TOKEN=",
        "WEBHOOK_TOKEN=",
    );
    let output = check_manifests(&knative, &workspace().join("infra/schemas"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output));
    for (object, message) in [
        ("Broker/default", "spec.delivery.deadLetterSink: missing"),
        (
            "Trigger/process-on-raw",
            "spec.filters: no `prefix` on `subject`",
        ),
        (
            "Trigger/process-on-raw",
            "spec.filter: the legacy exact-match filter",
        ),
        (
            "Trigger/train-on-clean",
            "spec.delivery.retries: not a Knative delivery field",
        ),
        (
            "Trigger/train-on-clean",
            "spec.delivery.retry: None, expected a positive integer",
        ),
        (
            "Deployment/s3-bridge",
            "takes key BRIDGE_WEBHOOK_TOKEN of Secret/appraise-admin, which has no such key",
        ),
        (
            "Deployment/minio",
            "takes key BRIDGE_WEBHOOK_TOKEN of Secret/appraise-admin, which has no such key",
        ),
    ] {
        assert!(
            stderr
                .lines()
                .any(|line| line.contains(object) && line.contains(message)),
            "expected {message:?} for {object}:\n{stderr}"
        );
    }
}
