//! The stand-in source on Lambda answers batches far above a function URL's 6 MB buffered
//! limit, by streaming them (`functions/core/src/lambda_streaming.rs`; the SAM template gives
//! its URL `InvokeMode: RESPONSE_STREAM`).
//!
//! A batch of more than 50 MB (batch 0 at `SOURCE_SCALE=3.2`: 236,109 rows) is fetched through
//! a function URL in front of the source binary in its Lambda mode, and must arrive whole: the
//! same status, content type, byte count, checksum and row count as the same batch served over
//! plain HTTP by a second source process with the same seed. Two implementations of the
//! runtime API and of function URLs stand in front of it:
//!
//! - `cargo lambda watch --only-lambda-apis` (cargo-lambda 1.9.2, from the tools venv), an
//!   implementation independent of ours: with `--only-lambda-apis` it builds and starts nothing
//!   (the test starts the binary the suite built) and `-P` puts it on a free port. Skipped when
//!   cargo-lambda is missing, except in CI;
//! - the testkit's emulator (`appraise_testkit::lambda_emulator`), whose streaming support
//!   (prelude, NUL delimiter, error trailers) follows the runtime API's documentation; it runs
//!   everywhere the suite runs.

use std::{
    hash::{DefaultHasher, Hasher},
    path::PathBuf,
    process::Stdio,
    time::Duration,
};

use appraise_testkit::{
    fixtures,
    lambda_emulator::LambdaEmulator,
    processes::{self, FunctionProcess},
};
use serde::{Deserialize, de::IgnoredAny};

/// Batch 0 of the course plan is 73,784 rows at scale 1; 3.2 times that is about 51 MB of JSON.
const BIG_BATCH_ENV: [(&str, &str); 2] = [("SOURCE_SCALE", "3.2"), ("SOURCE_SEED", "42")];
/// The size the batch must exceed: well above the 6 MB a buffered function URL allows.
const AT_LEAST_BYTES: usize = 50_000_000;

/// What is compared of a batch as it arrived.
#[derive(Debug, PartialEq)]
struct Arrived {
    status: u16,
    content_type: String,
    bytes: usize,
    checksum: u64,
    batch_number: u64,
    rows: usize,
}

/// The batch body, its rows counted without being kept.
#[derive(Deserialize)]
struct BatchBody {
    batch_number: u64,
    data: Vec<IgnoredAny>,
}

async fn fetch(url: &str) -> Arrived {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{url}: the body broke off: {e}"));
    let mut hasher = DefaultHasher::new();
    hasher.write(&body);
    let parsed: BatchBody = serde_json::from_slice(&body).unwrap_or_else(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        panic!(
            "{url}: {} bytes that are not a whole batch ({e}): {start}",
            body.len()
        )
    });
    Arrived {
        status,
        content_type,
        bytes: body.len(),
        checksum: hasher.finish(),
        batch_number: parsed.batch_number,
        rows: parsed.data.len(),
    }
}

fn big_batch_env() -> Vec<(String, String)> {
    BIG_BATCH_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The batch as the source serves it over plain HTTP: what the function URL must deliver.
async fn served_over_http() -> Arrived {
    let source = FunctionProcess::start(
        "source",
        &processes::binary("source").unwrap(),
        &big_batch_env(),
        Stdio::null(),
    )
    .await
    .unwrap();
    let arrived = fetch(&format!("{}/data?group_number=9", source.url())).await;
    source.stop().await;
    assert_eq!(arrived.status, 200, "{arrived:?}");
    assert!(arrived.bytes > AT_LEAST_BYTES, "{arrived:?}");
    assert_eq!(arrived.batch_number, 0, "{arrived:?}");
    arrived
}

/// The source binary in its Lambda mode, against the runtime API `lambda_env` names.
fn lambda_source(
    lambda_env: Vec<(String, String)>,
    log: &std::path::Path,
) -> tokio::process::Child {
    tokio::process::Command::new(processes::binary("source").unwrap())
        .envs(big_batch_env())
        .envs(lambda_env)
        .env_remove("PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn log_of(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn a_big_batch_arrives_whole_through_the_emulators_function_url() {
    let logs = tempfile::tempdir().unwrap();
    let expected = served_over_http().await;
    let emulator = LambdaEmulator::start().await.unwrap();
    let log = logs.path().join("source.log");
    let _source = lambda_source(emulator.env("source"), &log);
    let url = format!("{}/data?group_number=9", emulator.function_url());
    let arrived = fetch(&url).await;
    assert_eq!(arrived, expected, "{}", log_of(&log));
    // A second request is the next batch of the same cursor: the environment kept its state.
    let next = fetch(&url).await;
    assert_eq!((next.status, next.batch_number), (200, 1), "{next:?}");
    // A 4xx goes through the stream's prelude as well.
    let bad = reqwest::get(format!("{}/data?group_number=x", emulator.function_url()))
        .await
        .unwrap();
    assert!(bad.status().is_client_error(), "{}", log_of(&log));
    assert!(bad.text().await.unwrap().contains("group_number"));
}

/// `cargo lambda watch` with only its Lambda APIs, on `port`; killed when dropped.
fn cargo_lambda_watch(
    cargo_lambda: &std::path::Path,
    port: u16,
    log: &std::path::Path,
) -> tokio::process::Child {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let port = port.to_string();
    tokio::process::Command::new(cargo_lambda)
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
            &port,
        ])
        .args(["--timeout", "600"])
        // It reads the workspace's metadata (`cargo metadata`), and builds nothing.
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_big_batch_arrives_whole_through_cargo_lambda_watch() {
    let cargo_lambda = fixtures::tools_venv().join("bin/cargo-lambda");
    if !cargo_lambda.exists() {
        fixtures::skip_without_tool(
            "cargo-lambda is not installed: `bash scripts/setup-tools.sh` installs it",
        );
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let expected = served_over_http().await;
    let port = appraise_testkit::free_port().unwrap();
    let watch_log = logs.path().join("watch.log");
    let _watch = cargo_lambda_watch(&cargo_lambda, port, &watch_log);
    // Ready when it accepts connections (a guard against a watch that never starts, not a
    // measurement).
    let mut attempts = 0;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        attempts += 1;
        assert!(
            attempts < 600,
            "cargo lambda watch did not listen on {port}:\n{}{}",
            log_of(&watch_log),
            log_of(&watch_log.with_extension("err"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The environment `watch --only-lambda-apis` says a function started by hand must have;
    // its one function is named `_`.
    let lambda_env = [
        (
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        ),
        ("AWS_LAMBDA_FUNCTION_NAME", "_".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec();
    let log = logs.path().join("source.log");
    let _source = lambda_source(lambda_env, &log);
    let arrived = fetch(&format!(
        "http://127.0.0.1:{port}/lambda-url/_/data?group_number=9"
    ))
    .await;
    assert_eq!(
        arrived,
        expected,
        "{}\n{}",
        log_of(&log),
        log_of(&watch_log.with_extension("err"))
    );
}
