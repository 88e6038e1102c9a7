//! The Knative deployment's offline checks, as part of `cargo test`:
//!
//! - every manifest of `knative/` validates against the vendored schemas of the releases it
//!   targets (`infra/checks/check_manifests.py`), and deliberately broken copies fail with a
//!   message naming the problem;
//! - `kubectl kustomize` builds a copy of `knative/` with kubectl's default load restrictions
//!   (as `kubectl apply -k knative/` does), the Secrets' env files taken from the committed
//!   examples, and the built documents pass the same checks; a kustomization reading a file
//!   outside its folder is refused, by the checker and by kubectl;
//! - no password is committed under `knative/` or `infra/`: the Secrets come from git-ignored
//!   env files;
//! - the Prometheus configuration and rules pass Debian's `promtool` (and its rule unit tests,
//!   whose series begin as real scrapes begin);
//! - every metric a Grafana panel or a rule queries is exported, checked against real `/metrics`
//!   scrapes of the functions after they did some work (`infra/checks/check_metrics.py`);
//!
//! The Knative adapters (the bridge and the JobSink runner) are tested in `bridge`.
//!
//! The Python tools and promtool come from `bash scripts/setup-tools.sh`; the function binaries
//! from `cargo build --bins` (scripts/test.sh does both before the tests).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use appraise_core::events;
use appraise_testkit::{
    fixtures,
    processes::FunctionProcess,
    s3_server::{Delivery, NotificationRule},
};
use serde_json::json;

use super::bridge::{WEBHOOK_TOKEN, start_bridge};

pub(super) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The tools venv's Python (scripts/setup-tools.sh makes it).
pub(super) fn python() -> PathBuf {
    let python = fixtures::tools_venv().join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash scripts/setup-tools.sh` first",
        python.display()
    );
    python
}

pub(super) fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("running {command:?}: {error}"))
}

pub(super) fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub(super) fn check_manifests(kustomization: &Path, schemas: &Path) -> Output {
    run(Command::new(python())
        .arg(workspace().join("infra/checks/check_manifests.py"))
        .arg(kustomization)
        .arg("--schemas")
        .arg(schemas))
}

#[test]
fn every_manifest_validates_against_the_vendored_schemas() {
    let root = workspace();
    let output = check_manifests(&root.join("knative"), &root.join("infra/schemas"));
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for kind in [
        "serving.knative.dev/v1/Service",
        "sinks.knative.dev/v1alpha1/JobSink",
        "eventing.knative.dev/v1/Trigger",
        "sources.knative.dev/v1/PingSource",
        "apps/v1/Deployment",
    ] {
        assert!(stdout.contains(kind), "{kind} checked:\n{stdout}");
    }
    assert!(
        stdout.contains("kubernetes-v1.34.0-strict.json")
            && stdout.contains("knative-1.23.0-strict.json"),
        "{stdout}"
    );
}

/// Where the Prometheus configuration, rules and rule tests live (inside the kustomization, so
/// `kubectl apply -k` may read them).
pub(super) const PROMETHEUS_CONFIG: &str = "knative/monitoring/config/prometheus";
pub(super) const GRAFANA_DASHBOARDS: &str = "knative/monitoring/config/grafana/dashboards";

/// A copy of `knative/` (everything its kustomization reads), to break or to build, with the
/// git-ignored env files of its Secrets made from their committed examples.
pub(super) fn copy_of_the_manifests() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let knative = dir.path().join("knative");
    copy_tree(&workspace().join("knative"), &knative);
    for name in ["secrets.env", "admin.env"] {
        let _ = std::fs::remove_file(knative.join(name));
        std::fs::copy(knative.join(format!("{name}.example")), knative.join(name)).unwrap();
    }
    dir
}

pub(super) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub(super) fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn broken_manifests_fail_the_checks_with_a_clear_message() {
    let copy = copy_of_the_manifests();
    let knative = copy.path().join("knative");
    let schemas = workspace().join("infra/schemas");
    let breakages: [(&str, &str, &str, &str); 6] = [
        // A name Knative reserves: it sets PORT itself.
        (
            "functions/process.yaml",
            "          envFrom:",
            "          env:\n            - name: PORT\n              value: \"9000\"\n          envFrom:",
            "env: PORT is reserved by Knative",
        ),
        // A port Knative reserves (its queue-proxy's metrics port).
        (
            "functions/predict.yaml",
            "containerPort: 8080",
            "containerPort: 9090",
            "ports: 9090 is reserved by Knative",
        ),
        // A wrong field type, caught by the Knative Serving schema.
        (
            "functions/ingest.yaml",
            "containerPort: 8080",
            "containerPort: \"eighty\"",
            "containerPort: 'eighty' is not of type 'integer' (schema knative-1.23.0-strict.json)",
        ),
        // An unknown field in a Kubernetes kind, caught by the strict Kubernetes schema.
        (
            "platform/minio.yaml",
            "  strategy:\n",
            "  stratagem: {}\n  strategy:\n",
            "'stratagem' was unexpected) (schema kubernetes-v1.34.0-strict.json)",
        ),
        // The JobSink's Job is validated as a batch/v1 Job.
        (
            "functions/train.yaml",
            "backoffLimit: 3",
            "backoffLimit: three",
            "spec.job as batch/v1 Job): spec/backoffLimit: 'three' is not of type 'integer'",
        ),
        // A Trigger whose subscriber does not exist.
        (
            "eventing.yaml",
            "      name: promote\n",
            "      name: promoter\n",
            "spec.subscriber.ref Service/promoter is not defined",
        ),
    ];
    for (file, from, to, _) in &breakages {
        edit(&knative.join(file), from, to);
    }
    let output = check_manifests(&knative, &schemas);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output));
    for (file, _, _, message) in &breakages {
        assert!(
            stderr
                .lines()
                .any(|line| line.contains(file) && line.contains(message)),
            "expected {message:?} for {file}:\n{stderr}"
        );
    }
    assert!(stderr.contains("FAILED: "), "{stderr}");
}

#[test]
fn a_reserved_name_in_a_shared_config_map_fails_too() {
    let copy = copy_of_the_manifests();
    let knative = copy.path().join("knative");
    edit(
        &knative.join("config.yaml"),
        "  S3_BUCKET: appraise\n",
        "  S3_BUCKET: appraise\n  K_REVISION: mine\n",
    );
    let output = check_manifests(&knative, &workspace().join("infra/schemas"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        stderr.contains("envFrom configMapRef appraise-config: key K_REVISION is reserved"),
        "{stderr}"
    );
}

fn promtool(args: &[&str]) -> Output {
    let dir = workspace().join(PROMETHEUS_CONFIG);
    let output = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output();
    match output {
        Ok(output) => output,
        Err(error) => panic!(
            "promtool: {error}: run `bash scripts/setup-tools.sh` (Debian's prometheus package)"
        ),
    }
}

#[test]
fn the_prometheus_configuration_and_rules_pass_promtool() {
    let config = promtool(&["check", "config", "prometheus.yml"]);
    assert!(config.status.success(), "{}", text(&config));
    let rules = promtool(&["check", "rules", "rules.yml"]);
    assert!(rules.status.success(), "{}", text(&rules));
    let tests = promtool(&["test", "rules", "rules_test.yml"]);
    assert!(tests.status.success(), "{}", text(&tests));
}

#[test]
fn promtool_rejects_a_broken_rule() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: broken\n    rules:\n      - record: appraise:broken\n        expr: sum(rate(predictions_total[5m])\n",
    )
    .unwrap();
    let output = promtool(&["check", "rules", rules.to_str().unwrap()]);
    assert!(!output.status.success(), "{}", text(&output));
}

#[test]
fn deploy_sh_stops_with_a_clear_message_when_a_prerequisite_is_missing() {
    let empty = tempfile::tempdir().unwrap();
    // Found on this process's PATH: the script itself gets an empty one.
    let bash = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join("bash"))
        .find(|path| path.exists())
        .expect("bash on PATH");
    let output = run(Command::new(bash)
        .arg(workspace().join("infra/deploy.sh"))
        .arg("--check")
        .env_clear()
        .env("PATH", empty.path()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    for missing in [
        "missing prerequisites",
        "minikube (",
        "kubectl (",
        "docker, or minikube",
    ] {
        assert!(stderr.contains(missing), "{missing:?}:\n{stderr}");
    }
}

/// Waits for the S3 server's notification of a key starting with `prefix` and checks the
/// target took it.
async fn delivered(deliveries: &mut tokio::sync::broadcast::Receiver<Delivery>, prefix: &str) {
    loop {
        let delivery = tokio::time::timeout(Duration::from_secs(300), deliveries.recv())
            .await
            .unwrap_or_else(|_| panic!("no delivery of {prefix}* within 5 minutes"))
            .unwrap();
        if delivery.key.starts_with(prefix) {
            assert_eq!(delivery.status, Some(200), "{delivery:?}");
            return;
        }
    }
}

#[tokio::test]
async fn every_queried_metric_is_exported_by_a_running_function() {
    // The functions on a real PostgreSQL and S3 server, as the harness runs them; raw/ events go
    // through the bridge (binary-mode CloudEvents) to process, the others straight to the stage.
    let (database_url, _pool) = fixtures::fresh_database().await.unwrap();
    let (s3, _objects) = fixtures::s3_server(Vec::new()).await.unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut env = s3.env(fixtures::BUCKET);
    env.push(("DATABASE_URL".to_owned(), database_url.clone()));
    let source = FunctionProcess::start_logged(
        "source",
        &[("SOURCE_SCALE".to_owned(), "0.01".to_owned())],
        logs.path(),
    )
    .await
    .unwrap();
    let mut ingest_env = env.clone();
    ingest_env.extend([
        ("SOURCE_URL".to_owned(), source.url()),
        ("INGEST_FIRST_SAMPLE".to_owned(), "400".to_owned()),
        ("INGEST_LATER_SAMPLE".to_owned(), "200".to_owned()),
    ]);
    let ingest = FunctionProcess::start_logged("ingest", &ingest_env, logs.path())
        .await
        .unwrap();
    let process = FunctionProcess::start_logged("process", &env, logs.path())
        .await
        .unwrap();
    let mut train_env = env.clone();
    train_env.extend([
        ("TRAIN_MIN_NEW_ROWS".to_owned(), "100".to_owned()),
        ("TRAIN_RF_TREES".to_owned(), "3".to_owned()),
        ("TRAIN_XGB_ROUNDS".to_owned(), "5".to_owned()),
    ]);
    let train = FunctionProcess::start_logged("train", &train_env, logs.path())
        .await
        .unwrap();
    let promote = FunctionProcess::start_logged("promote", &env, logs.path())
        .await
        .unwrap();
    let predict = FunctionProcess::start_logged("predict", &env, logs.path())
        .await
        .unwrap();
    let bridge = start_bridge(&format!("{}/", process.url()), &database_url).await;
    // As MinIO with MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_BRIDGE set.
    s3.set_webhook_token(Some(WEBHOOK_TOKEN));
    let rule = |prefix: &str, suffix: &str, target: String| NotificationRule {
        prefix: prefix.into(),
        suffix: suffix.into(),
        target: Some(format!("{target}/")),
    };
    s3.set_rules(vec![
        rule("raw/", "manifest.json", bridge.url()),
        rule("clean/", "manifest.json", train.url()),
        rule("candidates/", ".json", promote.url()),
        rule("production/", ".json", predict.url()),
    ]);
    let mut deliveries = s3.deliveries();
    let client = reqwest::Client::new();

    // Batch 0 trains and promotes the first model; batch 1 is tested for drift against it.
    for batch in 0..=1 {
        let response = client
            .post(format!("{}/", ingest.url()))
            .header("ce-specversion", "1.0")
            .header("ce-type", events::PING_CLOUD_EVENT_TYPE)
            .header("ce-source", "deploy-checks")
            .header("ce-id", format!("deploy-checks-{batch}"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        delivered(&mut deliveries, &format!("clean/batch-{batch:06}/")).await;
        if batch == 0 {
            delivered(&mut deliveries, "production/").await;
        }
    }
    // Predictions, a bad one included, so the predictor's counters and histogram exist.
    let listing = json!({"brokered_by": 1, "status": "for_sale", "bed": 3, "bath": 2,
        "acre_lot": 0.2, "city": "Springfield", "state": "Massachusetts", "zip_code": "01103",
        "house_size": 1800});
    let mut predicted = false;
    for _ in 0..100 {
        let response = client
            .post(format!("{}/predict", predict.url()))
            .json(&listing)
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            predicted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(predicted, "the predictor loaded the promoted model");
    let response = client
        .post(format!("{}/predict", predict.url()))
        .json(&json!({"bed": "three"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    tokio::time::sleep(Duration::from_millis(200)).await; // the inference log's writer

    let scrapes = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    let mut targets: Vec<(String, String)> =
        [&source, &ingest, &process, &train, &promote, &predict]
            .iter()
            .map(|function| (function.name.clone(), function.url()))
            .collect();
    targets.push(("bridge".to_owned(), bridge.url()));
    for (name, url) in &targets {
        let metrics = client
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let path = scrapes.path().join(format!("{name}.txt"));
        std::fs::write(&path, metrics).unwrap();
        args.push("--scrape".to_owned());
        args.push(path.display().to_string());
    }
    let check = |scrape_args: &[String]| {
        run(Command::new(python())
            .arg(workspace().join("infra/checks/check_metrics.py"))
            .arg("--dashboards")
            .arg(workspace().join(GRAFANA_DASHBOARDS))
            .arg("--rules")
            .arg(workspace().join(PROMETHEUS_CONFIG).join("rules.yml"))
            .args(scrape_args))
    };
    let output = check(&args);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("drift_statistic"), "{stdout}");

    // Without the predictor's scrape, its metrics are reported missing by name.
    let without_predict: Vec<String> = args
        .chunks(2)
        .filter(|pair| !pair[1].ends_with("predict.txt"))
        .flatten()
        .cloned()
        .collect();
    let output = check(&without_predict);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        stderr.contains("prediction_latency_seconds_bucket: not exported by any scraped function"),
        "{stderr}"
    );

    bridge.stop().await;
    for function in [predict, promote, train, process, ingest, source] {
        function.stop().await;
    }
}
