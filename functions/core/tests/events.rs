//! Every event shape of DESIGN.md §3, from the sample payloads in local/events/ and from
//! hand-built HTTP deliveries, turned into triggers.

use appraise_core::events::{self, ObjectCreated, ScheduleTick, Trigger};
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../local/events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers
}

fn parse_fixture(name: &str) -> Vec<Trigger> {
    let body = fixture(name);
    let over_http = events::from_http(&json_headers(), &body).expect(name);
    // The Lambda path (a JSON payload, no headers) must agree with the HTTP path.
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(events::from_json(value).expect(name), over_http, "{name}");
    over_http
}

fn object(trigger: &Trigger) -> &ObjectCreated {
    match trigger {
        Trigger::ObjectCreated(object) => object,
        other => panic!("expected an object event, got {other:?}"),
    }
}

fn tick(trigger: &Trigger) -> &ScheduleTick {
    match trigger {
        Trigger::Schedule(tick) => tick,
        other => panic!("expected a schedule tick, got {other:?}"),
    }
}

#[test]
fn aws_s3_notification_decodes_keys_and_skips_removals() {
    let triggers = parse_fixture("s3-put.json");
    assert_eq!(triggers.len(), 1, "the ObjectRemoved record is skipped");
    let created = object(&triggers[0]);
    assert_eq!(created.bucket, "appraise");
    assert_eq!(
        created.key, "raw/batch-000001/my manifest.json",
        "%2F is / and + is a space"
    );
    assert_eq!(created.size, Some(1024));
    assert_eq!(created.event_name, "ObjectCreated:Put");
    assert_eq!(
        created.etag.as_deref(),
        Some("d41d8cd98f00b204e9800998ecf8427e")
    );
}

#[test]
fn minio_webhook_drops_the_s3_prefix() {
    let triggers = parse_fixture("minio-webhook.json");
    let created = object(&triggers[0]);
    assert_eq!(created.key, "raw/batch-000002/manifest.json");
    assert_eq!(created.event_name, "ObjectCreated:Put");
}

#[test]
fn eventbridge_schedule_and_s3_events() {
    let triggers = parse_fixture("eventbridge-schedule.json");
    let schedule = tick(&triggers[0]);
    assert_eq!(
        schedule.id.as_deref(),
        Some("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa")
    );
    assert_eq!(schedule.time.as_deref(), Some("2026-11-27T12:00:00Z"));

    let triggers = parse_fixture("eventbridge-s3.json");
    assert_eq!(object(&triggers[0]).key, "candidates/training-000001.json");
}

#[test]
fn a_rules_constant_input_is_a_schedule_tick_carrying_that_json() {
    let triggers = parse_fixture("constant-input.json");
    let schedule = tick(&triggers[0]);
    assert_eq!(schedule.id, None, "a constant Input carries no delivery id");
    assert_eq!(schedule.payload, json!({ "schedule": "ingest" }));
}

#[test]
fn structured_cloud_events() {
    let ping = parse_fixture("cloudevent-ping-structured.json");
    let schedule = tick(&ping[0]);
    assert_eq!(
        schedule.id.as_deref(),
        Some("5f1b0c5e-8a2b-4c3d-9e4f-0a1b2c3d4e5f")
    );
    assert_eq!(schedule.payload, json!({ "schedule": "ingest" }));

    let s3 = parse_fixture("cloudevent-s3-structured.json");
    assert_eq!(object(&s3[0]).key, "clean/batch-000003/manifest.json");
}

#[test]
fn binary_cloud_events_read_the_headers() {
    let mut headers = HeaderMap::new();
    headers.insert("ce-specversion", HeaderValue::from_static("1.0"));
    headers.insert(
        "ce-type",
        HeaderValue::from_static("dev.knative.sources.ping"),
    );
    headers.insert("ce-id", HeaderValue::from_static("ping-1"));
    headers.insert("ce-source", HeaderValue::from_static("/pingsources/ingest"));
    let triggers = events::from_http(&headers, b"").unwrap();
    assert_eq!(tick(&triggers[0]).id.as_deref(), Some("ping-1"));
    assert_eq!(
        tick(&triggers[0]).payload,
        Value::Null,
        "a ping without data"
    );

    // The CloudEvents AWS S3 adapter, binary mode: the record is the body; the event name
    // comes from the type when the record lacks one.
    let mut headers = HeaderMap::new();
    headers.insert("ce-specversion", HeaderValue::from_static("1.0"));
    headers.insert(
        "ce-type",
        HeaderValue::from_static("com.amazonaws.s3.ObjectCreated:Put"),
    );
    headers.insert("ce-id", HeaderValue::from_static("abc.def"));
    let record = json!({
        "s3": { "bucket": { "name": "appraise" }, "object": { "key": "raw/a+b%2Bc.json", "size": 3 } }
    });
    let triggers = events::from_http(&headers, record.to_string().as_bytes()).unwrap();
    let created = object(&triggers[0]);
    assert_eq!(created.key, "raw/a b+c.json", "+ is a space, %2B is a plus");
    assert_eq!(created.event_name, "ObjectCreated:Put");
}

#[test]
fn bad_bodies_name_the_field_and_the_reason() {
    let error = events::from_http(&json_headers(), b"{not json").unwrap_err();
    assert_eq!(error.field, "body");
    assert!(error.reason.contains("not JSON"), "{error}");

    let error = events::from_http(&json_headers(), b"[1, 2]").unwrap_err();
    assert!(error.reason.contains("an array"), "{error}");

    let error = events::from_http(&json_headers(), b"").unwrap_err();
    assert!(error.reason.contains("empty"), "{error}");

    let missing_key = json!({ "Records": [{ "eventName": "ObjectCreated:Put", "s3": { "bucket": { "name": "b" }, "object": {} } }] });
    let error = events::from_json(missing_key).unwrap_err();
    assert_eq!(error.field, "Records[0].s3.object.key");
    assert_eq!(error.reason, "missing");

    let wrong_type = json!({ "Records": [{ "eventName": "s3:ObjectCreated:Put", "s3": { "bucket": { "name": 7 }, "object": { "key": "k" } } }] });
    let error = events::from_json(wrong_type).unwrap_err();
    assert_eq!(error.field, "Records[0].s3.bucket.name");
    assert!(error.reason.contains("a number"), "{error}");

    let error =
        events::from_json(json!({ "specversion": "1.0", "type": "com.example.other", "id": "1" }))
            .unwrap_err();
    assert_eq!(error.field, "type");

    let error = events::from_json(json!({ "detail-type": "Something Else" })).unwrap_err();
    assert_eq!(error.field, "detail-type");

    let error = events::from_json(json!({ "EventName": "s3:ObjectCreated:Put", "Key": "b/k" }))
        .unwrap_err();
    assert_eq!(error.field, "Records");
}
