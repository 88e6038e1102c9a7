//! The dead-letter sink: `POST /dead-letters` stores each CloudEvent Knative gave up
//! delivering in `ops.dead_letters` and counts it in `dead_letters_total{destination}`.
//!
//! The Broker and every Trigger name this route as their `delivery.deadLetterSink`. When a
//! delivery still fails after the delivery policy's retries, Knative's dispatcher sends the
//! event here, in binary mode unless `delivery.format` says `json` (structured mode; both are
//! accepted), with three extension attributes added:
//!
//! | extension | value |
//! |---|---|
//! | `knativeerrordest` | the URL it could not deliver to (e.g. `http://process.appraise.svc.cluster.local`) |
//! | `knativeerrorcode` | the HTTP status it got (an integer) |
//! | `knativeerrordata` | the answer's body, base64, cut at 1024 characters |
//!
//! The stage the event was for ([`Destination`]) comes from `knativeerrordest`: the URL's first
//! host label (a Knative Service's address) or one of its path segments (a JobSink's address,
//! `…/appraise/train`). Dead letters are keyed by the event's `source` and `id` and by
//! `knativeerrordest`, so the same dead letter sent twice is stored, and counted, once, while
//! the same event given up by the Broker and by a Trigger (or by two Triggers) is stored and
//! counted once for each. The route answers 2xx only once the row is committed, 503 when
//! PostgreSQL is unavailable (Knative then retries), and 400 naming the attribute only when the
//! request is not a CloudEvent (no `specversion` 1.0, `id`, `source` or `type`): Knative drops a
//! dead letter its sink refuses, so a `time` or `knativeerrorcode` that does not parse is stored
//! as NULL, its value kept as sent in `extensions`.
//!
//! The route has no authentication of its own: on Knative a NetworkPolicy
//! (`knative/platform/bridge.yaml`, `s3-bridge-ingress`) lets only the `knative-eventing`
//! namespace (the Broker's and Triggers' dispatchers) and MinIO reach the bridge's pods.

use appraise_core::db::DbPool;
use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use appraise_core::runtime;

/// The stage a dead letter was meant for: the `destination` label of `dead_letters_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Ingest,
    Process,
    Train,
    Promote,
    Predict,
    /// Not a stage's address (the Broker's own channel, or no `knativeerrordest` at all).
    Other,
}

impl Destination {
    /// Every value, for registering the metric's series at 0.
    pub const ALL: [Destination; 6] = [
        Destination::Ingest,
        Destination::Process,
        Destination::Train,
        Destination::Promote,
        Destination::Predict,
        Destination::Other,
    ];

    /// The label value (and the `destination` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::Ingest => "ingest",
            Destination::Process => "process",
            Destination::Train => "train",
            Destination::Promote => "promote",
            Destination::Predict => "predict",
            Destination::Other => "other",
        }
    }

    fn from_name(name: &str) -> Option<Destination> {
        Destination::ALL
            .into_iter()
            .find(|stage| stage.as_str() == name)
    }

    /// The stage of a `knativeerrordest` URL: its first host label when that names a stage
    /// (`http://process.appraise.svc.cluster.local`), else its last path segment that does
    /// (`http://job-sink.knative-eventing.svc.cluster.local/appraise/train`), else
    /// [`Destination::Other`].
    pub fn of_url(url: &str) -> Destination {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let first_label = host.split(['.', ':']).next().unwrap_or("");
        Destination::from_name(first_label)
            .or_else(|| {
                path.split(['/', '?', '#'])
                    .rev()
                    .find_map(Destination::from_name)
            })
            .unwrap_or(Destination::Other)
    }
}

/// Sets every `dead_letters_total` series to 0, so the first dead letter is an increase.
pub fn register_metrics() {
    for destination in Destination::ALL {
        metrics::counter!("dead_letters_total", "destination" => destination.as_str()).increment(0);
    }
}

/// A CloudEvent as Knative sends it to a dead-letter sink.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: String,
    pub source: String,
    pub event_type: String,
    pub subject: Option<String>,
    pub time: Option<OffsetDateTime>,
    /// `knativeerrordest`.
    pub error_destination: Option<String>,
    /// `knativeerrorcode`.
    pub error_code: Option<i32>,
    /// `knativeerrordata`, base64 as sent.
    pub error_data: Option<String>,
    /// Every other extension attribute, as strings.
    pub extensions: Map<String, Value>,
    pub data_content_type: Option<String>,
    pub data: EventData,
}

/// A CloudEvent's data.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    None,
    Json(Value),
    /// Anything that is not JSON, kept as bytes.
    Bytes(Vec<u8>),
}

impl DeadLetter {
    /// The stage the event was for.
    pub fn destination(&self) -> Destination {
        self.error_destination
            .as_deref()
            .map_or(Destination::Other, Destination::of_url)
    }

    /// `knativeerrordata` decoded, for logs (lossy: Knative may cut it mid-character).
    pub fn error_text(&self) -> Option<String> {
        let encoded = self.error_data.as_deref()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .or_else(|_| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(encoded.trim_end_matches('='))
            })
            .ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Context attributes that are not extensions (the data's are handled apart).
const CONTEXT_ATTRIBUTES: [&str; 7] = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
];

/// Parses a CloudEvent from an HTTP request, in binary or structured mode. The error names
/// the attribute and says what is wrong with it.
pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<DeadLetter, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let structured = content_type.as_deref().is_some_and(|value| {
        value
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/cloudevents")
    });
    if structured {
        if content_type
            .as_deref()
            .is_some_and(|value| value.to_ascii_lowercase().contains("batch"))
        {
            return Err(
                "content-type: batched CloudEvents are not accepted; send one event per request"
                    .to_owned(),
            );
        }
        let event: Value = serde_json::from_slice(body)
            .map_err(|error| format!("body: not a structured-mode CloudEvent (JSON): {error}"))?;
        let Value::Object(attributes) = event else {
            return Err("body: a structured-mode CloudEvent must be a JSON object".to_owned());
        };
        return from_structured(attributes);
    }
    if headers.get("ce-specversion").is_none() {
        return Err("ce-specversion: missing, and the content-type is not application/cloudevents+json: not a CloudEvent".to_owned());
    }
    from_binary(headers, content_type, body)
}

fn from_binary(
    headers: &HeaderMap,
    content_type: Option<String>,
    body: &[u8],
) -> Result<DeadLetter, String> {
    let mut attributes = Map::new();
    for (name, value) in headers {
        let Some(attribute) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let value = value
            .to_str()
            .map_err(|_| format!("{name}: not visible ASCII"))?;
        // The HTTP binding percent-encodes what a header cannot carry.
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| format!("{name}: percent-encoded bytes that are not UTF-8"))?;
        attributes.insert(attribute.to_owned(), Value::String(value.into_owned()));
    }
    let data = if body.is_empty() {
        EventData::None
    } else if content_type.as_deref().is_none_or(is_json) {
        serde_json::from_slice(body)
            .map(EventData::Json)
            .unwrap_or_else(|_| EventData::Bytes(body.to_vec()))
    } else {
        EventData::Bytes(body.to_vec())
    };
    let mut event = attributes_of(attributes)?;
    event.data_content_type = content_type;
    event.data = data;
    Ok(event)
}

fn from_structured(mut attributes: Map<String, Value>) -> Result<DeadLetter, String> {
    let data = match (attributes.remove("data"), attributes.remove("data_base64")) {
        (Some(_), Some(_)) => return Err("data, data_base64: only one may be present".to_owned()),
        (Some(Value::Null) | None, None) => EventData::None,
        (Some(data), None) => EventData::Json(data),
        (None, Some(Value::String(encoded))) => EventData::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(encoded.as_bytes())
                .map_err(|error| format!("data_base64: not base64: {error}"))?,
        ),
        (None, Some(_)) => return Err("data_base64: expected a base64 string".to_owned()),
    };
    let content_type = match attributes.get("datacontenttype") {
        None | Some(Value::Null) => None,
        Some(Value::String(value)) => Some(value.clone()),
        Some(_) => return Err("datacontenttype: expected a string".to_owned()),
    };
    let mut event = attributes_of(attributes)?;
    event.data_content_type = content_type;
    event.data = data;
    Ok(event)
}

/// The attributes, whichever mode carried them; `data` is filled in by the caller.
fn attributes_of(mut attributes: Map<String, Value>) -> Result<DeadLetter, String> {
    // Knative drops a dead letter the sink refuses, so these two are never a reason to refuse
    // one: when they do not parse, their column is NULL and the value is kept, as sent, among
    // the extensions.
    let raw_time = attributes.remove("time");
    let raw_code = attributes.remove("knativeerrorcode");
    let mut unparsed = Map::new();
    let mut text = |name: &str| -> Result<Option<String>, String> {
        match attributes.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            // Extension values of other types (integer, boolean) have a canonical string form.
            Some(value @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(value.to_string())),
            Some(_) => Err(format!("{name}: expected a string")),
        }
    };
    let required = |value: Option<String>, name: &str| {
        value
            .filter(|value| !value.is_empty())
            .ok_or_else(|| format!("{name}: missing (a CloudEvent requires it)"))
    };
    let spec_version = required(text("specversion")?, "specversion")?;
    if spec_version != "1.0" {
        return Err(format!(
            "specversion: {spec_version:?} is not supported (expected \"1.0\")"
        ));
    }
    let id = required(text("id")?, "id")?;
    let source = required(text("source")?, "source")?;
    let event_type = required(text("type")?, "type")?;
    let subject = text("subject")?;
    let time = lenient(raw_time, "time", &mut unparsed, |value| {
        OffsetDateTime::parse(value, &Rfc3339).ok()
    });
    let error_destination = text("knativeerrordest")?;
    let error_code = lenient(raw_code, "knativeerrorcode", &mut unparsed, |value| {
        value.trim().parse::<i32>().ok()
    });
    let error_data = text("knativeerrordata")?;
    let _ = text("datacontenttype")?;
    let extensions = attributes
        .into_iter()
        .filter(|(name, _)| !CONTEXT_ATTRIBUTES.contains(&name.as_str()))
        .map(|(name, value)| {
            let value = match value {
                Value::String(value) => value,
                other => other.to_string(),
            };
            (name, Value::String(value))
        })
        .chain(unparsed)
        .collect();
    Ok(DeadLetter {
        id,
        source,
        event_type,
        subject,
        time,
        error_destination,
        error_code,
        error_data,
        extensions,
        data_content_type: None,
        data: EventData::None,
    })
}

/// Attribute `name` parsed by `parse`; when it does not parse, `None`, and its value as sent goes
/// into `unparsed` (a string as is, any other JSON as its text).
fn lenient<T>(
    value: Option<Value>,
    name: &str,
    unparsed: &mut Map<String, Value>,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Option<T> {
    let text = match value? {
        Value::Null => return None,
        Value::String(text) => text,
        other => other.to_string(),
    };
    let parsed = parse(&text);
    if parsed.is_none() {
        tracing::warn!(
            attribute = name,
            value = %text,
            "dead letter: an attribute does not parse; stored as NULL, its value kept in extensions"
        );
        unparsed.insert(name.to_owned(), Value::String(text));
    }
    parsed
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

/// Stores a dead letter; `true` when it is new, `false` when it was stored before. Returns once
/// the row is committed.
pub async fn store(db: &DbPool, letter: &DeadLetter) -> anyhow::Result<bool> {
    let client = db.get().await?;
    let (data, data_base64) = match &letter.data {
        EventData::None => (None, None),
        EventData::Json(value) => (Some(value), None),
        EventData::Bytes(bytes) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    };
    let extensions = Value::Object(letter.extensions.clone());
    let inserted = client
        .execute(
            "INSERT INTO ops.dead_letters (source, id, type, subject, time, destination,
                 knativeerrordest, knativeerrorcode, knativeerrordata, extensions,
                 datacontenttype, data, data_base64)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (source, id, knativeerrordest_key) DO NOTHING",
            &[
                &letter.source,
                &letter.id,
                &letter.event_type,
                &letter.subject,
                &letter.time,
                &letter.destination().as_str(),
                &letter.error_destination,
                &letter.error_code,
                &letter.error_data,
                &extensions,
                &letter.data_content_type,
                &data,
                &data_base64,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// `POST /dead-letters`.
pub(crate) async fn receive(State(db): State<DbPool>, headers: HeaderMap, body: Bytes) -> Response {
    let letter = match parse(&headers, &body) {
        Ok(letter) => letter,
        Err(reason) => {
            tracing::warn!(%reason, "not a CloudEvent; dead letter refused");
            return runtime::error_response(
                StatusCode::BAD_REQUEST,
                &format!("not a CloudEvent: {reason}"),
            );
        }
    };
    let destination = letter.destination();
    match store(&db, &letter).await {
        Ok(stored) => {
            if stored {
                metrics::counter!("dead_letters_total", "destination" => destination.as_str())
                    .increment(1);
                tracing::error!(
                    id = %letter.id,
                    source = %letter.source,
                    r#type = %letter.event_type,
                    subject = letter.subject.as_deref().unwrap_or(""),
                    destination = destination.as_str(),
                    code = letter.error_code,
                    error = letter.error_text().as_deref().unwrap_or(""),
                    "dead letter: Knative could not deliver an event"
                );
            } else {
                tracing::info!(id = %letter.id, source = %letter.source, "dead letter already stored");
            }
            Json(json!({
                "stored": stored,
                "destination": destination.as_str(),
            }))
            .into_response()
        }
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), id = %letter.id, "cannot store a dead letter");
            runtime::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("cannot store the dead letter: {error:#}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_url_names_its_stage() {
        let cases = [
            (
                "http://process.appraise.svc.cluster.local",
                Destination::Process,
            ),
            (
                "http://predict.appraise.svc.cluster.local/",
                Destination::Predict,
            ),
            (
                "http://promote.appraise.svc.cluster.local:80/x",
                Destination::Promote,
            ),
            (
                "http://job-sink.knative-eventing.svc.cluster.local/appraise/train",
                Destination::Train,
            ),
            ("http://ingest.appraise.svc", Destination::Ingest),
            (
                "http://broker-filter.knative-eventing.svc.cluster.local/triggers/appraise/x",
                Destination::Other,
            ),
            ("", Destination::Other),
            ("http://processing.example/", Destination::Other),
        ];
        for (url, stage) in cases {
            assert_eq!(Destination::of_url(url), stage, "{url}");
        }
    }

    #[test]
    fn what_is_wrong_with_an_event_is_named() {
        let mut headers = HeaderMap::new();
        assert!(
            parse(&headers, b"{}")
                .unwrap_err()
                .contains("ce-specversion")
        );
        headers.insert("ce-specversion", "1.0".parse().unwrap());
        headers.insert("ce-source", "s".parse().unwrap());
        headers.insert("ce-type", "t".parse().unwrap());
        assert!(parse(&headers, b"").unwrap_err().starts_with("id:"));
        headers.insert("ce-id", "1".parse().unwrap());
        assert!(parse(&headers, b"").is_ok());
    }

    #[test]
    fn a_time_or_error_code_that_does_not_parse_is_kept_not_refused() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "s"),
            ("ce-type", "t"),
            ("ce-knativeerrorcode", "five hundred"),
            ("ce-time", "yesterday"),
            ("ce-traceparent", "00-abc-def-01"),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        let letter = parse(&headers, b"").unwrap();
        assert_eq!(letter.time, None);
        assert_eq!(letter.error_code, None);
        assert_eq!(letter.extensions["time"], "yesterday");
        assert_eq!(letter.extensions["knativeerrorcode"], "five hundred");
        assert_eq!(letter.extensions["traceparent"], "00-abc-def-01");

        headers.insert("ce-knativeerrorcode", "500".parse().unwrap());
        headers.insert("ce-time", "2026-11-27T12:05:00Z".parse().unwrap());
        let letter = parse(&headers, b"").unwrap();
        assert_eq!(letter.error_code, Some(500));
        assert!(letter.time.is_some());
        assert!(
            !letter.extensions.contains_key("time"),
            "{:?}",
            letter.extensions
        );
        assert!(!letter.extensions.contains_key("knativeerrorcode"));
    }

    #[test]
    fn the_error_data_decodes_for_logs() {
        let letter = DeadLetter {
            id: "1".into(),
            source: "s".into(),
            event_type: "t".into(),
            subject: None,
            time: None,
            error_destination: None,
            error_code: Some(503),
            error_data: Some(base64::engine::general_purpose::STANDARD.encode("no database")),
            extensions: Map::new(),
            data_content_type: None,
            data: EventData::None,
        };
        assert_eq!(letter.error_text().as_deref(), Some("no database"));
    }
}
