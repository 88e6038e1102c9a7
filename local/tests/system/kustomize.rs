//! The Knative kustomization as `kubectl apply -k` builds it: with kubectl's default load
//! restrictions, its Secrets from the committed examples of their git-ignored env files, the
//! built output checked against the vendored schemas; a file outside the kustomization refused;
//! and no password committed under `knative/` or `infra/`.

use std::process::Command;

use super::deploy_checks::{
    check_manifests, copy_of_the_manifests, edit, python, run, text, workspace,
};

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
        appraise_testkit::fixtures::skip_without_tool(message);
    }
    usable
}

/// Prints what the NetworkPolicy s3-bridge-ingress of a built manifest selects and lets in,
/// naming each pod selector by the workload whose pod labels it matches.
const NETWORK_POLICY_PEERS: &str = r#"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
def workload(selector):
    names = [name for name, labels in pods.items()
             if all(labels.get(k) == v for k, v in selector["matchLabels"].items())]
    assert len(names) == 1, (selector, names)
    return names[0]
[policy] = [d for d in docs if d["kind"] == "NetworkPolicy"
            and d["metadata"]["name"] == "s3-bridge-ingress"]
assert policy["metadata"]["namespace"] == "appraise", policy["metadata"]
[rule] = policy["spec"]["ingress"]
peers = []
for peer in rule["from"]:
    if "namespaceSelector" in peer:
        peers.append("namespace " + peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
    else:
        peers.append("pods " + workload(peer["podSelector"]))
print("selects " + workload(policy["spec"]["podSelector"]) + "; from " + ", ".join(peers))
"#;

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
        "networking.k8s.io/v1/NetworkPolicy",
    ] {
        assert!(stdout.contains(kind), "{kind} checked:\n{stdout}");
    }
    // The bridge's NetworkPolicy, read by PyYAML: it selects the bridge's pods, and lets in
    // exactly the knative-eventing namespace and the pods of MinIO and Prometheus, each
    // selector matching a workload's pod labels in the same build.
    let policy = run(Command::new(python())
        .arg("-c")
        .arg(NETWORK_POLICY_PEERS)
        .arg(&built));
    assert!(policy.status.success(), "{}", text(&policy));
    assert_eq!(
        String::from_utf8_lossy(&policy.stdout).trim(),
        "selects s3-bridge; from namespace knative-eventing, pods minio, pods prometheus",
        "{}",
        text(&policy)
    );
    // The generated Secrets keep their names (Knative Services name them) and hold the keys of
    // the env files; the Prometheus rules are in their ConfigMap.
    let built = String::from_utf8_lossy(&build.stdout);
    for needle in [
        "name: appraise-secrets\n",
        "name: appraise-admin\n",
        "DATABASE_URL: ",
        "MINIO_ROOT_PASSWORD: ",
        "alert: AppraiseStageUnavailable",
        // The MLflow component: its server, and the tracking URI train and promote read.
        "image: ghcr.io/mlflow/mlflow:",
        "MLFLOW_TRACKING_URI: http://mlflow.appraise.svc.cluster.local\n",
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
fn the_mlflow_component_can_be_left_out() {
    if !usable_kubectl() {
        return;
    }
    let copy = copy_of_the_manifests();
    let knative = copy.path().join("knative");
    edit(
        &knative.join("kustomization.yaml"),
        "  - components/mlflow\n",
        "",
    );
    let build = run(Command::new("kubectl").arg("kustomize").arg(&knative));
    assert!(build.status.success(), "{}", text(&build));
    let built = String::from_utf8_lossy(&build.stdout);
    assert!(
        !built.contains("MLFLOW_TRACKING_URI: "),
        "no tracking URI without the component"
    );
    assert!(
        !built.contains("name: mlflow"),
        "no MLflow server without the component"
    );
    let output = check_manifests(&knative, &workspace().join("infra/schemas"));
    assert!(output.status.success(), "{}", text(&output));
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
        // A CloudFormation function (`!Ref`, `!Not`, `!Sub`...), not a literal.
        || value.starts_with('!')
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
                    // `secret:` inside an ARN (arn:aws:secretsmanager:...:secret:name) names a
                    // resource; it holds no value.
                    let word_start = line[..index]
                        .rfind(|c: char| c.is_whitespace() || "\"'^(".contains(c))
                        .map_or(0, |at| at + 1);
                    let in_arn = line[word_start..index].starts_with("arn:");
                    if !sensitive || key.is_empty() || in_arn {
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
