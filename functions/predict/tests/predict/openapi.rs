//! The OpenAPI document is valid OpenAPI 3.0, as an independent validator reads it
//! (`openapi-spec-validator` in the tools virtualenv; without it the test says so and passes,
//! except in CI), describes the explanation, lineage and rollback routes, and has a path for
//! every route the router serves.

use std::process::Command;

use serde_json::Value;

const DOCUMENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/openapi.json");

#[test]
fn the_openapi_document_is_valid_and_describes_explanations_lineage_and_rollback() {
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(DOCUMENT).unwrap()).unwrap();
    let explain = &document["paths"]["/explain"]["post"];
    for status in ["200", "409", "413", "422", "503"] {
        assert!(
            explain["responses"][status].is_object(),
            "/explain {status}"
        );
    }
    let batch = &document["paths"]["/predict/batch"]["post"];
    assert_eq!(
        batch["requestBody"]["content"]["application/json"]["schema"]["properties"]["explain"]["type"],
        "boolean"
    );
    let fields =
        &document["components"]["schemas"]["FieldContribution"]["properties"]["field"]["enum"];
    let fields: Vec<&str> = fields
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(fields, appraise_core::features::INPUT_FIELDS);

    let python = appraise_testkit::fixtures::tools_venv().join("bin/python");
    let has_validator = Command::new(&python)
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_validator {
        appraise_testkit::fixtures::skip_without_tool(
            "no openapi-spec-validator in target/tools-venv: run scripts/setup-tools.sh",
        );
        return;
    }
    let out = Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(DOCUMENT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every path a `.route("…"` call in the predictor's sources serves, in the order found.
fn served_paths() -> Vec<String> {
    let sources = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut paths = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(sources)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = rest[at + ".route(".len()..].trim_start();
            let Some(quoted) = rest.strip_prefix('"') else {
                continue;
            };
            let end = quoted.find('"').unwrap();
            paths.push(quoted[..end].to_owned());
        }
    }
    paths
}

#[test]
fn every_route_the_router_serves_is_described() {
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(DOCUMENT).unwrap()).unwrap();
    let described = document["paths"].as_object().unwrap();
    let served = served_paths();
    // The sources' routes are found at all (a guard on the scan itself).
    for known in [
        "/predict",
        "/runs/{stage}/{batch}",
        "/v2/models/{name}/infer",
    ] {
        assert!(served.iter().any(|p| p == known), "{known} in {served:?}");
    }
    let undescribed: Vec<&String> = served
        .iter()
        .filter(|path| !described.contains_key(path.as_str()))
        .collect();
    assert!(
        undescribed.is_empty(),
        "served but missing from openapi.json: {undescribed:?}"
    );
}
