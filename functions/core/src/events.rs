//! Every event shape a function can be woken by, turned into one neutral [`Trigger`].
//!
//! Platforms disagree on how they say "it is time" or "an object was written":
//!
//! | shape | how it is recognised |
//! |---|---|
//! | AWS S3 notification | JSON object with `Records[]`, `eventSource` `aws:s3` |
//! | MinIO webhook | JSON object with `EventName`, `Key` and `Records[]`; event names carry an `s3:` prefix |
//! | CloudEvent, binary mode | `ce-type`/`ce-id` headers, the data in the body |
//! | CloudEvent, structured mode | `application/cloudevents+json`, or a body with `specversion` |
//! | Knative PingSource | CloudEvent of type `dev.knative.sources.ping` |
//! | CloudEvents AWS S3 adapter | CloudEvent of type `com.amazonaws.s3.<eventName>`, an S3 record as data |
//! | EventBridge scheduled event | `detail-type: "Scheduled Event"` |
//! | EventBridge S3 event | `detail-type: "Object Created"` |
//! | an EventBridge rule's constant `Input` | any other JSON object, delivered verbatim |
//!
//! Object keys in S3 and MinIO records are URL-encoded with `+` for a space; they are decoded
//! here, once, so stages only ever see real keys. Records of other kinds (e.g. `ObjectRemoved`)
//! are skipped. A body that fits no shape is an [`EventError`] naming the offending field.

use http::HeaderMap;
use serde_json::Value;

/// Why the function was woken.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// The schedule fired (EventBridge, PingSource, the harness's timer).
    Schedule(ScheduleTick),
    /// An object was written to the bucket.
    ObjectCreated(ObjectCreated),
}

/// One firing of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleTick {
    /// The delivery's id when the platform gives one (EventBridge event id, CloudEvent id, Lambda
    /// request id); redeliveries of one firing carry the same id, which is how stages spot them.
    pub id: Option<String>,
    /// When the schedule fired, as the platform wrote it (RFC 3339), if it said.
    pub time: Option<String>,
    /// What the schedule carried: PingSource data, the rule's constant Input, or `null`.
    pub payload: Value,
}

/// One object-created record.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectCreated {
    pub bucket: String,
    /// The decoded object key, e.g. `raw/batch-000001/manifest.json`.
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    /// The event name without any `s3:` prefix, e.g. `ObjectCreated:Put`.
    pub event_name: String,
}

/// A body that is not any accepted event shape; the message names the field and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct EventError {
    pub field: String,
    pub reason: String,
}

fn fail(field: impl Into<String>, reason: impl Into<String>) -> EventError {
    EventError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Parses an HTTP delivery: CloudEvents binary mode from the headers, anything else from the body.
pub fn from_http(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Trigger>, EventError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(event_type) = header("ce-type") {
        let data = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
        };
        return from_cloud_event(CloudEvent {
            event_type,
            id: header("ce-id"),
            time: header("ce-time"),
            data,
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(fail(
            "body",
            "empty, and no CloudEvents headers (ce-type) either",
        ));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|error| fail("body", format!("not JSON: {error}")))?;
    from_json(value)
}

/// Parses a JSON event (a Lambda payload, or an HTTP body without CloudEvents headers).
pub fn from_json(value: Value) -> Result<Vec<Trigger>, EventError> {
    let Value::Object(object) = &value else {
        return Err(fail(
            "body",
            format!("expected a JSON object, got {}", kind(&value)),
        ));
    };
    if object.contains_key("specversion") {
        return from_cloud_event(CloudEvent {
            event_type: string_at(&value, &["type"], "type")?.to_owned(),
            id: optional_string(&value, "id"),
            time: optional_string(&value, "time"),
            data: value.get("data").cloned().unwrap_or(Value::Null),
        });
    }
    if object.contains_key("Records") {
        // AWS S3 notification, or a MinIO webhook body (which adds EventName and Key).
        return s3_records(&value, "Records");
    }
    if let Some(detail_type) = object.get("detail-type") {
        return eventbridge(&value, detail_type);
    }
    if object.contains_key("EventName") {
        return Err(fail("Records", "missing from a MinIO webhook body"));
    }
    // An EventBridge rule with a constant Input delivers that JSON verbatim.
    Ok(vec![Trigger::Schedule(ScheduleTick {
        id: optional_string(&value, "id"),
        time: optional_string(&value, "time"),
        payload: value,
    })])
}

struct CloudEvent {
    event_type: String,
    id: Option<String>,
    time: Option<String>,
    data: Value,
}

/// Prefix of CloudEvent types produced by the CloudEvents AWS S3 adapter.
pub const S3_CLOUD_EVENT_PREFIX: &str = "com.amazonaws.s3.";
/// The CloudEvent type of a Knative PingSource.
pub const PING_CLOUD_EVENT_TYPE: &str = "dev.knative.sources.ping";

fn from_cloud_event(event: CloudEvent) -> Result<Vec<Trigger>, EventError> {
    if event.event_type == PING_CLOUD_EVENT_TYPE {
        return Ok(vec![Trigger::Schedule(ScheduleTick {
            id: event.id,
            time: event.time,
            payload: event.data,
        })]);
    }
    if let Some(event_name) = event.event_type.strip_prefix(S3_CLOUD_EVENT_PREFIX) {
        // The adapter's data is one S3 record; a whole notification is accepted too.
        if event.data.get("Records").is_some() {
            return s3_records(&event.data, "data.Records");
        }
        let mut record = event.data;
        if record.get("eventName").is_none()
            && let Value::Object(map) = &mut record
        {
            map.insert("eventName".into(), Value::String(event_name.to_owned()));
        }
        return Ok(s3_record(&record, "data")?.into_iter().collect());
    }
    Err(fail(
        "type",
        format!(
            "unsupported CloudEvent type {:?} (expected {PING_CLOUD_EVENT_TYPE} or {S3_CLOUD_EVENT_PREFIX}*)",
            event.event_type
        ),
    ))
}

fn s3_records(value: &Value, field: &str) -> Result<Vec<Trigger>, EventError> {
    let records = value
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| fail(field, "expected an array of records"))?;
    let mut triggers = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        if let Some(trigger) = s3_record(record, &format!("{field}[{index}]"))? {
            triggers.push(trigger);
        }
    }
    Ok(triggers)
}

/// One S3 or MinIO record; `None` for records that are not object creations.
fn s3_record(record: &Value, field: &str) -> Result<Option<Trigger>, EventError> {
    let event_name = string_at(record, &["eventName"], &format!("{field}.eventName"))?;
    let event_name = event_name.strip_prefix("s3:").unwrap_or(event_name);
    if !event_name.starts_with("ObjectCreated:") {
        return Ok(None);
    }
    let bucket = string_at(
        record,
        &["s3", "bucket", "name"],
        &format!("{field}.s3.bucket.name"),
    )?;
    let key_field = format!("{field}.s3.object.key");
    let encoded_key = string_at(record, &["s3", "object", "key"], &key_field)?;
    let key = decode_key(encoded_key).map_err(|reason| fail(&key_field, reason))?;
    let object = &record["s3"]["object"];
    Ok(Some(Trigger::ObjectCreated(ObjectCreated {
        bucket: bucket.to_owned(),
        key,
        size: object.get("size").and_then(Value::as_u64),
        etag: object
            .get("eTag")
            .or_else(|| object.get("etag"))
            .and_then(Value::as_str)
            .map(|etag| etag.trim_matches('"').to_owned()),
        event_name: event_name.to_owned(),
    })))
}

fn eventbridge(value: &Value, detail_type: &Value) -> Result<Vec<Trigger>, EventError> {
    match detail_type.as_str() {
        Some("Scheduled Event") => Ok(vec![Trigger::Schedule(ScheduleTick {
            id: optional_string(value, "id"),
            time: optional_string(value, "time"),
            payload: value.get("detail").cloned().unwrap_or(Value::Null),
        })]),
        // EventBridge S3 events carry plain (not URL-encoded) keys.
        Some("Object Created") => Ok(vec![Trigger::ObjectCreated(ObjectCreated {
            bucket: string_at(value, &["detail", "bucket", "name"], "detail.bucket.name")?
                .to_owned(),
            key: string_at(value, &["detail", "object", "key"], "detail.object.key")?.to_owned(),
            size: value["detail"]["object"]
                .get("size")
                .and_then(Value::as_u64),
            etag: optional_string(&value["detail"]["object"], "etag"),
            event_name: "ObjectCreated:Put".to_owned(),
        })]),
        Some(other) => Err(fail(
            "detail-type",
            format!(
                "unsupported EventBridge detail-type {other:?} (expected \"Scheduled Event\" or \"Object Created\")"
            ),
        )),
        None => Err(fail("detail-type", "expected a string")),
    }
}

/// Decodes an S3 notification key: `+` is a space, then percent-decoding.
pub fn decode_key(encoded: &str) -> Result<String, String> {
    let spaced = encoded.replace('+', " ");
    let key = percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map_err(|_| "percent-decoding does not give UTF-8".to_owned())?
        .into_owned();
    if key.is_empty() {
        return Err("empty".to_owned());
    }
    Ok(key)
}

fn string_at<'a>(value: &'a Value, path: &[&str], field: &str) -> Result<&'a str, EventError> {
    let mut here = value;
    for step in path {
        here = here.get(step).ok_or_else(|| fail(field, "missing"))?;
    }
    here.as_str()
        .ok_or_else(|| fail(field, format!("expected a string, got {}", kind(here))))
}

fn optional_string(value: &Value, name: &str) -> Option<String> {
    value.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
