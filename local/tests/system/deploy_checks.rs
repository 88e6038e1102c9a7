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
//! - the Alertmanager configuration passes Debian's `amtool check-config`, and a real
//!   Alertmanager running it delivers an alert to the alert log, its default webhook receiver,
//!   and lets the critical AppraisePrediction5xxHigh mute the warning AppraiseNoProductionModel;
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
            "          env:\n",
            "          env:\n            - name: PORT\n              value: \"9000\"\n",
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
        "docker, podman, or minikube's own 'minikube image build'",
        // No git on this PATH to tag the images with the commit.
        "IMAGE_TAG, the images' tag",
    ] {
        assert!(stderr.contains(missing), "{missing:?}:\n{stderr}");
    }
}

const ALERTMANAGER_CONFIG: &str = "knative/monitoring/config/alertmanager";

/// `amtool` with `args`, or `None` (after skipping, outside CI) when it is not installed.
fn amtool(args: &[&str]) -> Option<Output> {
    match Command::new("amtool").args(args).output() {
        Ok(output) => Some(output),
        Err(error) => {
            fixtures::skip_without_tool(&format!(
                "amtool: {error}: run `bash scripts/setup-tools.sh` (Debian's prometheus-alertmanager package)"
            ));
            None
        }
    }
}

#[test]
fn the_alertmanager_configuration_passes_amtool() {
    let config = workspace()
        .join(ALERTMANAGER_CONFIG)
        .join("alertmanager.yml");
    let Some(output) = amtool(&["check-config", config.to_str().unwrap()]) else {
        return;
    };
    assert!(output.status.success(), "{}", text(&output));

    // A route to a receiver that does not exist is refused, by name.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("alertmanager.yml");
    std::fs::copy(&config, &broken).unwrap();
    edit(
        &broken,
        "  receiver: webhook
",
        "  receiver: pager
",
    );
    let output = amtool(&["check-config", broken.to_str().unwrap()]).unwrap();
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("\"pager\""),
        "{}",
        text(&output)
    );
}

/// A child process killed when dropped.
fn spawn(command: &mut tokio::process::Command) -> tokio::process::Child {
    command
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("starting {command:?}: {error}"))
}

#[tokio::test]
async fn a_real_alertmanager_delivers_an_alert_to_the_alert_log() {
    use tokio::io::AsyncBufReadExt;
    if Command::new("prometheus-alertmanager")
        .arg("--version")
        .output()
        .is_err()
    {
        fixtures::skip_without_tool(
            "prometheus-alertmanager: run `bash scripts/setup-tools.sh` (Debian's prometheus-alertmanager package)",
        );
        return;
    }
    let config_dir = workspace().join(ALERTMANAGER_CONFIG);
    let client = reqwest::Client::new();

    // The alert log, as its Deployment runs it.
    let log_port = appraise_testkit::free_port().unwrap();
    let mut alert_log = spawn(
        tokio::process::Command::new(python())
            .arg("-u")
            .arg(config_dir.join("alert_log.py"))
            .env("PORT", log_port.to_string())
            .stdout(std::process::Stdio::piped()),
    );
    let mut alert_lines = tokio::io::BufReader::new(alert_log.stdout.take().unwrap()).lines();
    let log_url = format!("http://127.0.0.1:{log_port}/");
    let mut up = false;
    for _ in 0..200 {
        if client.get(&log_url).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the alert log did not start");
    // What is not a notification is refused, naming the field.
    let response = client.post(&log_url).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("alerts: missing"));

    // Alertmanager with the committed configuration, its webhook pointed at this alert log and
    // no wait before the first notification.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::copy(config_dir.join("alertmanager.yml"), &config).unwrap();
    edit(
        &config,
        "http://alert-log.appraise.svc.cluster.local:8080/",
        &log_url,
    );
    edit(&config, "group_wait: 30s", "group_wait: 0s");
    let port = appraise_testkit::free_port().unwrap();
    let _alertmanager = spawn(
        tokio::process::Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stderr(std::process::Stdio::null()),
    );
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..600 {
        if let Ok(response) = client.get(format!("{base}/-/ready")).send().await
            && response.status().is_success()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "Alertmanager did not become ready");

    // An alert as Prometheus sends it.
    let response = client
        .post(format!("{base}/api/v2/alerts"))
        .json(&json!([{
            "labels": {"alertname": "AppraiseDeadLetters", "severity": "critical",
                       "destination": "train"},
            "annotations": {"summary": "Events for train were dead-lettered"},
        }]))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    let line = tokio::time::timeout(Duration::from_secs(120), alert_lines.next_line())
        .await
        .expect("no notification reached the alert log within 2 minutes")
        .unwrap()
        .expect("the alert log's output ended");
    let logged: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(logged["status"], "firing", "{line}");
    assert_eq!(logged["alertname"], "AppraiseDeadLetters", "{line}");
    assert_eq!(logged["severity"], "critical", "{line}");
    assert_eq!(logged["labels"]["destination"], "train", "{line}");
    assert_eq!(
        logged["summary"], "Events for train were dead-lettered",
        "{line}"
    );

    // The inhibit rule: the critical 5xx alert mutes the warning about no production model
    // (which says the same thing), never the other way round.
    let response = client
        .post(format!("{base}/api/v2/alerts"))
        .json(&json!([
            {"labels": {"alertname": "AppraiseNoProductionModel", "severity": "warning"}},
            {"labels": {"alertname": "AppraisePrediction5xxHigh", "severity": "critical"}},
        ]))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    let state_of = |alerts: &serde_json::Value, name: &str| {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|alert| alert["labels"]["alertname"] == name)
            .map(|alert| alert["status"]["state"].as_str().unwrap_or("").to_owned())
    };
    // Alertmanager's inhibitor learns of new alerts in the background: ask until it has.
    let mut states = (None, None);
    for _ in 0..600 {
        let alerts: serde_json::Value = client
            .get(format!("{base}/api/v2/alerts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        states = (
            state_of(&alerts, "AppraiseNoProductionModel"),
            state_of(&alerts, "AppraisePrediction5xxHigh"),
        );
        if states.0.as_deref() == Some("suppressed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        states,
        (Some("suppressed".to_owned()), Some("active".to_owned())),
        "(AppraiseNoProductionModel, AppraisePrediction5xxHigh)"
    );
}

/// `infra/deploy.sh` with `args` and extra environment, run by bash on this process's PATH.
fn deploy_sh(args: &[&str], env: &[(&str, &str)]) -> Output {
    run(Command::new("bash")
        .arg(workspace().join("infra/deploy.sh"))
        .args(args)
        .env_remove("REGISTRY")
        .env_remove("BUILDER")
        .env_remove("IMAGE_TAG")
        .envs(env.iter().copied()))
}

#[test]
fn deploy_sh_dry_run_pushes_to_a_registry_and_rewrites_the_images() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        fixtures::skip_without_tool("kubectl (its kustomize builds the manifests)");
        return;
    }
    // podman need not be installed: a dry run only reports what a real run lacks.
    let output = deploy_sh(
        &["--dry-run", "--skip-knative"],
        &[
            ("REGISTRY", "registry.example/team/"),
            ("BUILDER", "podman"),
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Tagged with the commit, as git itself names it, and -dirty when the tree has changes.
    let git = |args: &[&str]| {
        let output = run(Command::new("git").args(args).current_dir(workspace()));
        assert!(output.status.success(), "git {args:?}: {}", text(&output));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let tag = if git(&["status", "--porcelain"]).is_empty() {
        commit
    } else {
        format!("{commit}-dirty")
    };
    for function in [
        "source", "ingest", "process", "train", "promote", "predict", "bridge",
    ] {
        let image = format!("registry.example/team/appraise-{function}:{tag}");
        assert!(
            stdout.contains(&format!("+ podman push {image}\n")),
            "push {image}:\n{stdout}"
        );
        assert!(
            stdout.contains(&format!("\n  {image}\n")),
            "{image} in the manifests:\n{stdout}"
        );
    }
    assert!(!stdout.contains("dev.local/"), "{stdout}");
    assert!(!stdout.contains("+ minikube -p appraise image"), "{stdout}");
    for step in [
        "+ kubectl apply -f ",
        "+ kubectl -n appraise rollout status deployment/alertmanager",
        "dry run done: nothing was changed",
    ] {
        assert!(stdout.contains(step), "{step}:\n{stdout}");
    }

    // Without a registry, podman's images are loaded into Minikube under the manifests' names,
    // here with the tag given.
    let output = deploy_sh(
        &["--dry-run", "--skip-knative"],
        &[("BUILDER", "podman"), ("IMAGE_TAG", "2.0.1-rc1")],
    );
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("-t dev.local/appraise/predict:2.0.1-rc1 ")
            && stdout.contains("+ minikube -p appraise image load ")
            && stdout.contains("\n  dev.local/appraise/predict:2.0.1-rc1\n")
            && !stdout.contains(":0.1.0")
            && !stdout.contains(" push "),
        "{stdout}"
    );

    let output = deploy_sh(&["--dry-run"], &[("IMAGE_TAG", "no/slashes")]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("IMAGE_TAG=no/slashes is not an image tag"),
        "{}",
        text(&output)
    );
}

/// Writes an executable script.
fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/usr/bin/env bash\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `KEY=value` lines of an env file.
fn env_file(path: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

#[test]
fn deploy_sh_writes_the_secrets_and_applies_rewritten_manifests() {
    // A real run against stand-ins for the cluster: `minikube` answers and `kubectl` records
    // what it is asked to apply, except `kubectl kustomize`, which is the real one.
    let Some(real_kubectl) = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join("kubectl"))
        .find(|path| path.exists())
    else {
        fixtures::skip_without_tool("kubectl (its kustomize builds the manifests)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("infra")).unwrap();
    std::fs::copy(
        workspace().join("infra/deploy.sh"),
        root.path().join("infra/deploy.sh"),
    )
    .unwrap();
    let knative = root.path().join("knative");
    copy_tree(&workspace().join("knative"), &knative);
    for name in ["secrets.env", "admin.env"] {
        let _ = std::fs::remove_file(knative.join(name));
    }
    let stubs = root.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let applied = root.path().join("applied.yaml");
    write_script(
        &stubs.join("minikube"),
        "[ \"${3:-}\" = ip ] && echo 192.0.2.10\nexit 0\n",
    );
    write_script(
        &stubs.join("kubectl"),
        &format!(
            "case \"$1\" in\n  kustomize) exec {} \"$@\" ;;\n  apply) cp \"$3\" {} ;;\n  -n) [ \"$3\" = get ] && echo 30080 ;;\nesac\nexit 0\n",
            real_kubectl.display(),
            applied.display()
        ),
    );
    let path = std::env::join_paths(
        std::iter::once(stubs.clone())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let deploy = || {
        run(Command::new("bash")
            .arg(root.path().join("infra/deploy.sh"))
            .args(["--skip-knative", "--skip-build"])
            .env("PATH", &path)
            .env("REGISTRY", "registry.example/team")
            .env("IMAGE_TAG", "1.4.2")
            .env_remove("BUILDER"))
    };

    // The copy is no git work tree: without IMAGE_TAG there is no tag to give the images.
    let output = run(Command::new("bash")
        .arg(root.path().join("infra/deploy.sh"))
        .args(["--skip-knative", "--skip-build"])
        .env("PATH", &path)
        .env_remove("IMAGE_TAG"));
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("IMAGE_TAG, the images' tag: it is not set"),
        "{}",
        text(&output)
    );

    let output = deploy();
    assert!(output.status.success(), "{}", text(&output));
    let secrets = env_file(&knative.join("secrets.env"));
    let admin = env_file(&knative.join("admin.env"));
    for (key, value) in secrets.iter().chain(admin.iter()) {
        assert!(!value.contains("CHANGE_ME"), "{key}={value}");
    }
    let token = &admin["BRIDGE_WEBHOOK_TOKEN"];
    assert!(
        token.len() == 36 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{token}"
    );
    assert!(
        secrets["DATABASE_URL"].contains(&format!(":{}@", admin["POSTGRES_PASSWORD"])),
        "{secrets:?} {admin:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(knative.join("secrets.env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "secrets.env is private: {mode:o}");
    let manifests = std::fs::read_to_string(&applied).unwrap();
    assert!(
        manifests.contains("image: registry.example/team/appraise-train:1.4.2")
            && manifests.contains("image: registry.example/team/appraise-predict:1.4.2")
            && !manifests.contains("dev.local/"),
        "{manifests}"
    );
    assert!(
        manifests.contains("BRIDGE_WEBHOOK_TOKEN: "),
        "the Secret carries the token"
    );

    // Run again: the files are kept as they are.
    let secrets_before = std::fs::read_to_string(knative.join("secrets.env")).unwrap();
    let before = std::fs::read_to_string(knative.join("admin.env")).unwrap();
    let output = deploy();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        std::fs::read_to_string(knative.join("secrets.env")).unwrap(),
        secrets_before
    );
    assert_eq!(
        std::fs::read_to_string(knative.join("admin.env")).unwrap(),
        before
    );

    // An admin.env from before the token: the token is added, the rest is kept.
    let without: String = before
        .lines()
        .filter(|line| !line.starts_with("BRIDGE_WEBHOOK_TOKEN="))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(knative.join("admin.env"), &without).unwrap();
    let output = deploy();
    assert!(output.status.success(), "{}", text(&output));
    let after = std::fs::read_to_string(knative.join("admin.env")).unwrap();
    assert!(after.starts_with(&without), "{after}");
    let added = env_file(&knative.join("admin.env"))["BRIDGE_WEBHOOK_TOKEN"].clone();
    assert!(added.len() == 36 && &added != token, "{added}");
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("added BRIDGE_WEBHOOK_TOKEN to knative/admin.env"),
        "{}",
        text(&output)
    );
}

#[test]
fn deploy_sh_refuses_a_builder_or_registry_it_cannot_use() {
    for (env, message) in [
        (
            [("BUILDER", "buildah"), ("REGISTRY", "")],
            "BUILDER=buildah: use docker, podman or minikube",
        ),
        (
            [("BUILDER", "minikube"), ("REGISTRY", "ghcr.io/you")],
            "BUILDER=minikube cannot push to REGISTRY=ghcr.io/you",
        ),
        (
            [("BUILDER", "docker"), ("REGISTRY", "ghcr.io/you; rm -rf")],
            "is not a registry path",
        ),
    ] {
        let output = deploy_sh(&["--dry-run"], &env);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(message),
            "{message}: {}",
            text(&output)
        );
    }
}

#[test]
fn deploy_sh_passes_shellcheck() {
    match Command::new("shellcheck")
        .arg(workspace().join("infra/deploy.sh"))
        .output()
    {
        Ok(output) => assert!(output.status.success(), "{}", text(&output)),
        Err(error) => fixtures::skip_without_tool(&format!(
            "shellcheck: {error}: run `bash scripts/setup-tools.sh`"
        )),
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
    for name in [
        "drift_statistic",
        "last_batch_stored_timestamp_seconds",
        "drift_detected",
        "prediction_input_drifted",
    ] {
        assert!(stdout.contains(name), "{name}: {stdout}");
    }

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
    for name in [
        "prediction_latency_seconds_bucket",
        "production_model_trained_timestamp_seconds",
    ] {
        assert!(
            stderr.contains(&format!("{name}: not exported by any scraped function")),
            "{stderr}"
        );
    }

    bridge.stop().await;
    for function in [predict, promote, train, process, ingest, source] {
        function.stop().await;
    }
}
