//! The ingest binary through its real entry points: HTTP on `$PORT` (Knative, the harness) and
//! the Lambda runtime API (driven by the testkit's emulator of it, which can set a short
//! deadline, and by `cargo lambda watch`, an implementation of it that is not ours).

use std::{process::Stdio, time::Duration};

use crate::support::{Fault, start_source};
use appraise_testkit::{
    lambda_emulator::{Invocation, LambdaEmulator},
    processes::FunctionProcess,
};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../local/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The settings the binary needs: a fresh database, an S3 server, a small source.
async fn function_env() -> (Vec<(String, String)>, appraise_testkit::s3_server::S3Server) {
    let source = start_source(0.02).await;
    let (db_url, _) = appraise_testkit::fixtures::fresh_database().await.unwrap();
    let (s3, _) = appraise_testkit::fixtures::s3_server(vec![]).await.unwrap();
    let mut env = s3.env(appraise_testkit::fixtures::BUCKET);
    env.extend([
        ("DATABASE_URL".to_owned(), db_url),
        ("SOURCE_URL".to_owned(), source),
        ("INGEST_FIRST_SAMPLE".to_owned(), "500".to_owned()),
        ("INGEST_LATER_SAMPLE".to_owned(), "100".to_owned()),
    ]);
    (env, s3)
}

#[tokio::test]
async fn http_mode_takes_every_event_shape_on_post_root() {
    let (env, _s3) = function_env().await;
    let ingest = FunctionProcess::start(
        "ingest",
        env!("CARGO_BIN_EXE_ingest").as_ref(),
        &env,
        Stdio::null(),
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let post = |body: Value| client.post(ingest.url()).json(&body).send();

    let response = post(fixture("eventbridge-schedule.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["results"][0]["outcome"], "stored");
    assert_eq!(report["results"][0]["batch_number"], 0);
    assert_eq!(report["results"][0]["rows_sampled"], 500);

    // The same EventBridge event again: a redelivery.
    let report: Value = post(fixture("eventbridge-schedule.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["results"][0]["outcome"], "duplicate");

    // A PingSource firing in binary CloudEvents mode.
    let report: Value = client
        .post(ingest.url())
        .header("ce-specversion", "1.0")
        .header("ce-type", "dev.knative.sources.ping")
        .header("ce-id", "ping-7")
        .header("ce-source", "/pingsources/ingest")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["results"][0]["batch_number"], 1);

    // A constant Input (no id): a new firing every time.
    let report: Value = post(fixture("constant-input.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["results"][0]["batch_number"], 2);

    // An object event is not for ingest, and garbage is not an event: 400 with the reason.
    let response = post(fixture("s3-put.json")).await.unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("schedule"),
        "{error}"
    );

    let response = client
        .post(ingest.url())
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("body: not JSON"),
        "{error}"
    );

    let health = client
        .get(format!("{}/healthz", ingest.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = client
        .get(format!("{}/metrics", ingest.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ingest_firings_total"), "{metrics}");
    assert!(
        metrics.contains("stage_duration_seconds_bucket"),
        "{metrics}"
    );
    ingest.stop().await;
}

#[tokio::test]
async fn lambda_mode_answers_invocations_through_the_runtime_api() {
    let (mut env, _s3) = function_env().await;
    let emulator = LambdaEmulator::start().await.unwrap();
    env.extend(emulator.env("ingest"));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ingest"))
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let wait = Duration::from_secs(60);

    let answer = emulator
        .invoke("req-1", fixture("constant-input.json"), wait)
        .await
        .unwrap();
    let Invocation::Response(report) = answer else {
        panic!("expected a response, got {answer:?}");
    };
    assert_eq!(report["results"][0]["outcome"], "stored");
    assert_eq!(report["results"][0]["batch_number"], 0);

    // Lambda retries an async invocation under the same request id: it is a redelivery.
    let answer = emulator
        .invoke("req-1", fixture("constant-input.json"), wait)
        .await
        .unwrap();
    assert_eq!(
        answer,
        Invocation::Response(json!({"results": [{
            "outcome": "duplicate", "trigger_id": "lambda:req-1",
            "previous_outcome": "stored", "batch_number": 0
        }]}))
    );

    let answer = emulator
        .invoke("req-2", fixture("eventbridge-schedule.json"), wait)
        .await
        .unwrap();
    assert!(
        matches!(&answer, Invocation::Response(r) if r["results"][0]["batch_number"] == 1),
        "{answer:?}"
    );

    // An event that can never succeed is acknowledged, not failed (Lambda would retry it and
    // then send it to the failure queue): the report says it was rejected, and why.
    let answer = emulator.invoke("req-3", json!([1, 2]), wait).await.unwrap();
    let Invocation::Response(report) = answer else {
        panic!("expected a response, got {answer:?}");
    };
    let rejected = &report["results"][0];
    assert_eq!(rejected["outcome"], "rejected", "{report}");
    assert!(
        rejected["reason"]
            .as_str()
            .unwrap()
            .contains("expected a JSON object"),
        "{report}"
    );
    child.start_kill().unwrap();
}

/// A batch API that stalls, behind a function with a short timeout: on Lambda the invocation
/// fails before its deadline with the typed error `appraise.Unavailable` naming the deadline
/// (so Lambda retries it), not the emulator's `Sandbox.Timedout` at the limit; over HTTP, `STAGE_DEADLINE_SECS` gives the same bound, and a 503.
/// Without the deadline each attempt would wait out the stall (30 s) and retry, far past
/// the test's patience.
#[tokio::test]
async fn a_stalling_source_fails_the_invocation_before_its_deadline_with_a_typed_error() {
    let (mut env, _s3) = function_env().await;
    let (stalling, _) =
        crate::support::faulty_proxy(start_source(0.02).await, |_| Fault::Stall).await;
    env.extend([
        ("SOURCE_URL".to_owned(), stalling),
        ("SOURCE_TIMEOUT_SECS".to_owned(), "120".to_owned()),
        ("STAGE_DEADLINE_MARGIN_SECS".to_owned(), "1".to_owned()),
    ]);
    let patience = Duration::from_secs(25);

    let emulator = LambdaEmulator::start().await.unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ingest"))
        .envs(env.clone())
        .envs(emulator.env("ingest"))
        .env_remove("PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let answer = emulator
        .invoke_with_time_limit(
            "slow-1",
            fixture("eventbridge-schedule.json"),
            Duration::from_secs(4),
            patience,
        )
        .await
        .unwrap();
    let Invocation::Error(error) = answer else {
        panic!("expected an error, got {answer:?}");
    };
    assert_eq!(error["errorType"], "appraise.Unavailable", "{error}");
    let message = error["errorMessage"].as_str().unwrap();
    assert!(message.contains("deadline"), "{message}");
    child.start_kill().unwrap();

    env.push(("STAGE_DEADLINE_SECS".to_owned(), "4".to_owned()));
    let ingest = FunctionProcess::start(
        "ingest",
        env!("CARGO_BIN_EXE_ingest").as_ref(),
        &env,
        Stdio::null(),
    )
    .await
    .unwrap();
    let response = reqwest::Client::new()
        .post(ingest.url())
        .json(&fixture("eventbridge-schedule.json"))
        .timeout(patience)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("deadline"),
        "{body}"
    );
    ingest.stop().await;
}

#[test]
fn a_missing_setting_stops_the_binary_with_the_variables_name() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ingest"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SOURCE_URL"), "{stderr}");
}

/// The same answers through an independent implementation of the runtime API: `cargo lambda
/// watch --only-lambda-apis` (cargo-lambda, from the tools virtualenv), with the ingest binary
/// started against it as Lambda would start it. An unavailable batch API fails the invocation
/// with the typed `errorType`; an object event, which ingest never takes, is acknowledged with
/// the rejection in the report. (watch 1.9 sends its timeout, `600000`, as the deadline, a time
/// long past: the function then runs without a deadline and says so.) Skipped without
/// cargo-lambda, except in CI.
#[tokio::test]
async fn cargo_lambda_watch_receives_the_typed_error_and_the_acknowledged_rejection() {
    let cargo_lambda = appraise_testkit::fixtures::tools_venv().join("bin/cargo-lambda");
    if !cargo_lambda.exists() {
        appraise_testkit::fixtures::skip_without_tool(
            "cargo-lambda is not installed: `bash scripts/setup-tools.sh` installs it",
        );
        return;
    }
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The port is found free by binding and releasing it, so another program may take it
    // first: the watch is ready only once the port's listening socket is one of *its* file
    // descriptors, and a watch that exits (the port taken) is started again on a new port.
    let mut started = None;
    for _ in 0..3 {
        let port = appraise_testkit::free_port().unwrap();
        let mut watch = tokio::process::Command::new(&cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1"])
            .args(["-P", &port.to_string()])
            .current_dir(&workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Any HTTP request would be taken for an invocation: watch the socket instead.
        loop {
            if watch.try_wait().unwrap().is_some() {
                break;
            }
            if watch.id().is_some_and(|pid| listens_on(pid, port)) {
                started = Some((watch, port));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if started.is_some() {
            break;
        }
    }
    let Some((_watch, port)) = started else {
        panic!("cargo lambda watch exited three times before listening");
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let (mut env, _s3) = function_env().await;
    let (failing, _) =
        crate::support::faulty_proxy(start_source(0.02).await, |_| Fault::Fail500).await;
    env.extend([
        ("SOURCE_URL".to_owned(), failing),
        ("SOURCE_RETRIES".to_owned(), "0".to_owned()),
        ("AWS_LAMBDA_RUNTIME_API".to_owned(), format!("{base}/.rt")),
        ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), "_".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION".to_owned(), "1".to_owned()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(),
            "1024".to_owned(),
        ),
    ]);
    let _ingest = tokio::process::Command::new(env!("CARGO_BIN_EXE_ingest"))
        .envs(env)
        .env_remove("PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let invoke = |event: Value| {
        client
            .post(format!("{base}/2015-03-31/functions/_/invocations"))
            .json(&event)
            .timeout(Duration::from_secs(60))
            .send()
    };

    let response = invoke(fixture("eventbridge-schedule.json")).await.unwrap();
    assert_eq!(response.status(), 500);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["errorType"], "appraise.Unavailable", "{error}");
    assert!(
        error["errorMessage"].as_str().unwrap().contains("HTTP 500"),
        "{error}"
    );

    let object_event = json!({"Records": [{
        "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "b"}, "object": {"key": "raw/batch-000000/manifest.json"}}
    }]});
    let response = invoke(object_event).await.unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["results"][0]["outcome"], "rejected", "{report}");
    assert!(
        report["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("ingest runs on the schedule"),
        "{report}"
    );
}

/// Whether process `pid` holds the socket listening on TCP `port` (IPv4), by Linux's `/proc`:
/// the listening socket's inode in `/proc/net/tcp` among the process's file descriptors.
fn listens_on(pid: u32, port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local_port = format!(":{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.len() > 9 && fields[1].ends_with(&local_port) && fields[3] == "0A")
        .map(|fields| format!("socket:[{}]", fields[9]))
        .collect();
    let Ok(descriptors) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    descriptors.flatten().any(|descriptor| {
        std::fs::read_link(descriptor.path()).is_ok_and(|target| {
            inodes
                .iter()
                .any(|inode| target.as_os_str() == inode.as_str())
        })
    })
}
