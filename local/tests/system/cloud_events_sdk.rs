//! The CloudEvents Python SDK (`cloudevents`, in the tools virtualenv) as the independent
//! implementation of the CloudEvents HTTP binding the bridge's tests check against: it makes
//! the requests Knative's dispatcher would send, and reads the requests the bridge sends.

use std::process::Command;

use appraise_testkit::fixtures;
use serde_json::{Value, json};

use super::deploy_checks::text;

/// An HTTP request: its headers and its body.
pub(super) type Request = (Vec<(String, String)>, String);

/// Runs `script` with `argument` in the tools venv's Python and parses what it prints (JSON).
/// `None` (the test is skipped) when the SDK is missing outside CI.
fn run(script: &str, argument: &Value) -> Option<Value> {
    let python = fixtures::tools_venv().join("bin/python");
    let output = Command::new(&python)
        .args(["-c", script, &argument.to_string()])
        .output();
    match output {
        Ok(output) if output.status.success() => {
            Some(serde_json::from_slice(&output.stdout).unwrap())
        }
        other => {
            fixtures::skip_without_tool(&format!(
                "the CloudEvents SDK (`cloudevents` in {}; `bash scripts/setup-tools.sh` installs it) did not run: {}",
                python.display(),
                other.map_or_else(|error| error.to_string(), |output| text(&output))
            ));
            None
        }
    }
}

/// Each event's HTTP request as the SDK makes it, in its `mode` (`binary` or `structured`).
/// An event is `{"mode", "attributes", "data"}`; a `time` attribute is ISO 8601.
pub(super) fn requests(events: &Value) -> Option<Vec<Request>> {
    const SCRIPT: &str = r#"
import json, sys
from datetime import datetime
from cloudevents.core.bindings import http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
out = []
for spec in json.loads(sys.argv[1]):
    attributes = dict(spec["attributes"])
    if "time" in attributes:
        attributes["time"] = datetime.fromisoformat(attributes["time"])
    event = CloudEvent(attributes, spec.get("data"))
    make = http.to_binary if spec["mode"] == "binary" else http.to_structured
    message = make(event, JSONFormat())
    out.append({"headers": message.headers, "body": message.body.decode()})
print(json.dumps(out))
"#;
    let requests = run(SCRIPT, events)?;
    Some(
        requests
            .as_array()
            .unwrap()
            .iter()
            .map(|request| {
                let headers = request["headers"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
                    .collect();
                (headers, request["body"].as_str().unwrap().to_owned())
            })
            .collect(),
    )
}

/// The event the SDK reads from an HTTP request: its attributes (`time` as ISO 8601) and, under
/// `data`, its data.
pub(super) fn parse(headers: &[(String, String)], body: &[u8]) -> Option<Value> {
    const SCRIPT: &str = r#"
import json, sys
from cloudevents.core.bindings import http
from cloudevents.core.formats.json import JSONFormat
request = json.loads(sys.argv[1])
message = http.HTTPMessage(headers=request["headers"], body=request["body"].encode())
event = http.from_http(message, JSONFormat())
attributes = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
              for k, v in event.get_attributes().items()}
data = event.get_data()
if isinstance(data, bytes):
    data = json.loads(data)
attributes["data"] = data
print(json.dumps(attributes))
"#;
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), Value::String(value.clone())))
        .collect();
    run(
        SCRIPT,
        &json!({"headers": headers, "body": String::from_utf8_lossy(body)}),
    )
}
