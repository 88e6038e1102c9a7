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

use super::bridge::start_bridge;

pub(super) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The tools venv's Python (scripts/setup-tools.sh makes it).
fn python() -> PathBuf {
    let python = workspace().join("target/tools-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash scripts/setup-tools.sh` first",
        python.display()
    );
    python
}

fn run(command: &mut Command) -> Output {
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

fn check_manifests(kustomization: &Path, schemas: &Path) -> Output {
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
const PROMETHEUS_CONFIG: &str = "knative/monitoring/config/prometheus";
const GRAFANA_DASHBOARDS: &str = "knative/monitoring/config/grafana/dashboards";

/// A copy of `knative/` (everything its kustomization reads), to break or to build, with the
/// git-ignored env files of its Secrets made from their committed examples.
fn copy_of_the_manifests() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let knative = dir.path().join("knative");
    copy_tree(&workspace().join("knative"), &knative);
    for name in ["secrets.env", "admin.env"] {
        let _ = std::fs::remove_file(knative.join(name));
        std::fs::copy(knative.join(format!("{name}.example")), knative.join(name)).unwrap();
    }
    dir
}

fn copy_tree(from: &Path, to: &Path) {
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

fn edit(path: &Path, from: &str, to: &str) {
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

/// Whether kubectl is here with a kustomize that can build `knative/` (v4 or later: Debian
/// bookworm's kubernetes-client 1.20 embeds kustomize v2, which knows no `labels:`). Without
/// one the kubectl half of a test is skipped with a message, except under `CI`, where it fails.
fn usable_kubectl() -> bool {
    let version = Command::new("kubectl")
        .args(["version", "--client"])
        .output();
    let usable = version.as_ref().is_ok_and(|output| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.strip_prefix("Kustomize Version: v"))
            .filter_map(|v| v.split('.').next()?.parse::<u32>().ok())
            .any(|major| major >= 4)
    });
    if !usable {
        let message = "kubectl with kustomize v4 or later is not on PATH (the rust machine \
                       image's `kubectl` package has it)";
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("skipped: {message}");
    }
    usable
}

#[test]
fn kubectl_kustomize_builds_the_kustomization_with_default_load_restrictions() {
    if !usable_kubectl() {
        return;
    }
    let copy = copy_of_the_manifests();
    // What `kubectl apply -k knative/` builds: no --load-restrictor.
    let build = run(Command::new("kubectl")
        .arg("kustomize")
        .arg(copy.path().join("knative")));
    assert!(build.status.success(), "{}", text(&build));
    let built = copy.path().join("built.yaml");
    std::fs::write(&built, &build.stdout).unwrap();
    let output = run(Command::new(python())
        .arg(workspace().join("infra/checks/check_manifests.py"))
        .arg("--built")
        .arg(&built)
        .arg("--schemas")
        .arg(workspace().join("infra/schemas")));
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for kind in [
        "serving.knative.dev/v1/Service",
        "sinks.knative.dev/v1alpha1/JobSink",
        "v1/Secret",
        "v1/ConfigMap",
    ] {
        assert!(stdout.contains(kind), "{kind} checked:\n{stdout}");
    }
    // The generated Secrets keep their names (Knative Services name them) and hold the keys of
    // the env files; the Prometheus rules are in their ConfigMap.
    let built = String::from_utf8_lossy(&build.stdout);
    for needle in [
        "name: appraise-secrets\n",
        "name: appraise-admin\n",
        "DATABASE_URL: ",
        "MINIO_ROOT_PASSWORD: ",
        "alert: AppraiseStageUnavailable",
    ] {
        assert!(built.contains(needle), "{needle:?} not built");
    }

    // The checker itself (through kubectl too) passes on the real folder: the env files of a
    // fresh checkout are read from their examples.
    let output = check_manifests(
        &workspace().join("knative"),
        &workspace().join("infra/schemas"),
    );
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("kubectl kustomize (default load restrictions) builds"),
        "{stdout}"
    );
}

#[test]
fn a_file_outside_the_kustomization_is_refused() {
    let copy = copy_of_the_manifests();
    let knative = copy.path().join("knative");
    // The layout that broke `kubectl apply -k`: a generator reading from ../infra.
    std::fs::create_dir_all(copy.path().join("infra/prometheus")).unwrap();
    std::fs::rename(
        knative.join("monitoring/config/prometheus/rules.yml"),
        copy.path().join("infra/prometheus/rules.yml"),
    )
    .unwrap();
    edit(
        &knative.join("kustomization.yaml"),
        "      - monitoring/config/prometheus/rules.yml\n",
        "      - ../infra/prometheus/rules.yml\n",
    );
    let output = run(Command::new(python())
        .arg(workspace().join("infra/checks/check_manifests.py"))
        .arg(&knative)
        .arg("--no-build")
        .arg("--schemas")
        .arg(workspace().join("infra/schemas")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        stderr.contains(
            "configMapGenerator prometheus-config: file '../infra/prometheus/rules.yml' is not in or below 'knative'"
        ),
        "{stderr}"
    );
    if usable_kubectl() {
        let build = run(Command::new("kubectl").arg("kustomize").arg(&knative));
        assert!(!build.status.success(), "{}", text(&build));
        assert!(
            String::from_utf8_lossy(&build.stderr).contains("is not in or below"),
            "{}",
            text(&build)
        );
    }
}

/// Whether a committed value is a placeholder rather than a credential.
fn placeholder(value: &str) -> bool {
    let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
    value.is_empty()
        || value.starts_with("CHANGE_ME")
        || value.starts_with('$')
        || value.starts_with('<')
        || value.starts_with("{{")
        || value.starts_with("!Ref")
        // Documentation of a format, e.g. postgres://user:password@host:5432/database.
        || value.eq_ignore_ascii_case("password")
}

#[test]
fn no_password_is_committed_under_knative_or_infra() {
    let root = workspace();
    // Tracked files and new ones git would add (ignored ones, like knative/secrets.env, not).
    let listing = run(Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
        ])
        .args(["knative", "infra"])
        .current_dir(&root));
    assert!(listing.status.success(), "{}", text(&listing));
    let mut problems = Vec::new();
    let mut scanned = 0;
    for file in String::from_utf8_lossy(&listing.stdout).lines() {
        let Ok(content) = std::fs::read_to_string(root.join(file)) else {
            continue; // deleted in the work tree, or not text
        };
        scanned += 1;
        for (number, line) in content.lines().enumerate() {
            let at = format!("{file}:{}", number + 1);
            // The development passwords knative/config.yaml used to hold.
            for old in [
                "appraise-dev-password",
                "appraise-dev-secret",
                "appraise-dev-grafana",
                "appraise-dev-reload-token",
            ] {
                if line.contains(old) {
                    problems.push(format!("{at}: {old}"));
                }
            }
            // `password: value`, `PASSWORD=value`, `..._SECRET...=value`, `..._TOKEN: value`.
            for separator in [':', '='] {
                for (index, _) in line.match_indices(separator) {
                    let key = line[..index]
                        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let sensitive = key.ends_with("PASSWORD")
                        || key.ends_with("SECRET")
                        || key.ends_with("SECRET_ACCESS_KEY")
                        || key.ends_with("TOKEN");
                    if !sensitive || key.is_empty() {
                        continue;
                    }
                    let value = line[index + 1..].split_whitespace().next().unwrap_or("");
                    if !placeholder(value) {
                        problems.push(format!("{at}: {key}{separator} {value}"));
                    }
                }
            }
            // A password inside a URL (scheme://user:password@host) of a manifest or env file
            // (elsewhere in infra/, checkers hold dummy URLs such as postgres://u:p@db).
            if file.starts_with("knative/")
                && let Some(start) = line.find("://")
            {
                let rest = &line[start + 3..];
                let authority = rest.split(['/', ' ', '"', '\'']).next().unwrap_or("");
                if let Some((userinfo, _)) = authority.rsplit_once('@')
                    && let Some((_, password)) = userinfo.split_once(':')
                    && !placeholder(password)
                {
                    problems.push(format!("{at}: a password in a URL"));
                }
            }
        }
        if file.starts_with("knative/")
            && (file.ends_with(".yaml") || file.ends_with(".yml"))
            && content.lines().any(|line| line.trim() == "kind: Secret")
        {
            problems.push(format!(
                "{file}: a Secret manifest (use the kustomization's secretGenerator)"
            ));
        }
    }
    assert!(scanned > 20, "only {scanned} files scanned");
    assert!(
        problems.is_empty(),
        "committed credentials:\n{}",
        problems.join("\n")
    );
    // The env files the Secrets come from are ignored by git.
    let ignored = run(Command::new("git")
        .args(["check-ignore", "knative/secrets.env", "knative/admin.env"])
        .current_dir(&root));
    assert!(ignored.status.success(), "{}", text(&ignored));
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
    env.push(("DATABASE_URL".to_owned(), database_url));
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
    let bridge = start_bridge(&format!("{}/", process.url())).await;
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
