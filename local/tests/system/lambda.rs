//! The functions as AWS Lambda runs them: each binary in its Lambda mode, fetching invocations
//! from the runtime API (the harness's emulator of it, `appraise_testkit::lambda_emulator`),
//! against a real PostgreSQL and a real S3-protocol server.
//!
//! One test walks the pipeline the way the SAM stack chains it: an EventBridge scheduled
//! event wakes ingest, and S3 object-created notifications (the AWS shape, keys URL-encoded)
//! wake process, train and promote in turn; every effect is checked in PostgreSQL and in the
//! bucket, and each function's CloudWatch EMF lines are read back from its stdout. Then the
//! predictor answers function-URL invocations (payload format 2.0) with the model promote put
//! in production. On the way, events a function can never take (the wrong trigger, a payload
//! that is no event) are acknowledged with the rejection in the report, so Lambda does not
//! retry them (an unavailable dependency's typed error, `appraise.Unavailable`, is tested with
//! ingest's entry points). Two more tests: the stand-in source behind a function URL, and
//! cfn-lint on the SAM template.
//!
//! Why the emulator rather than `cargo lambda watch` (which works offline here, and is the tool
//! for poking a function by hand, see infra/sam/README.md): the emulator drives the binaries
//! the test suite has already built, on random ports, so tests run in parallel, and takes any
//! event through the same runtime API calls (next invocation, response, error, init error).
//! `watch --only-lambda-apis -P <port>` also starts nothing and takes a port; `lambda_streaming`
//! uses it as the independent implementation for the source's streamed answers.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use appraise_core::{db::DbPool, objects::ObjectStore};
use appraise_testkit::{
    fixtures,
    lambda_emulator::{Invocation, LambdaEmulator},
    processes::{self, FunctionProcess},
    s3_server::S3Server,
};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

/// How long one invocation may take (train, in a debug build, is the slowest).
const PATIENCE: Duration = Duration::from_secs(300);

/// A function binary running in Lambda mode against its own emulator.
struct LambdaFunction {
    name: &'static str,
    emulator: LambdaEmulator,
    child: tokio::process::Child,
    stdout: Arc<Mutex<Vec<String>>>,
    log: PathBuf,
    next_request: u32,
}

impl LambdaFunction {
    async fn start(
        name: &'static str,
        env: &[(String, String)],
        log_dir: &std::path::Path,
    ) -> Self {
        let emulator = LambdaEmulator::start().await.unwrap();
        let log = log_dir.join(format!("{name}-{}.log", appraise_testkit::unique_suffix()));
        let mut child = tokio::process::Command::new(processes::binary(name).unwrap())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(emulator.env(name))
            .env_remove("PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // What the function writes to stdout is what CloudWatch Logs would read for EMF.
        let stdout: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn({
            let stdout = stdout.clone();
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    stdout.lock().unwrap().push(line);
                }
            }
        });
        LambdaFunction {
            name,
            emulator,
            child,
            stdout,
            log,
            next_request: 0,
        }
    }

    async fn invoke(&mut self, event: Value) -> Invocation {
        self.next_request += 1;
        let request_id = format!("{}-{}", self.name, self.next_request);
        match self.emulator.invoke(&request_id, event, PATIENCE).await {
            Ok(answer) => answer,
            Err(error) => panic!("{}: {error:#}\n{}", self.name, self.logs()),
        }
    }

    /// The report of a successful invocation; panics with the function's logs otherwise.
    async fn report(&mut self, event: Value) -> Value {
        match self.invoke(event).await {
            Invocation::Response(report) => report,
            Invocation::Error(error) => panic!("{}: {error}\n{}", self.name, self.logs()),
        }
    }

    /// The reason of a rejected event: on Lambda a rejection is a successful invocation (so
    /// Lambda does not retry it), whose report gives the reason.
    async fn rejection(&mut self, event: Value) -> String {
        let report = self.report(event).await;
        let result = &report["results"][0];
        assert_eq!(result["outcome"], "rejected", "{}: {report}", self.name);
        result["reason"].as_str().unwrap().to_owned()
    }

    /// The message of a failed invocation.
    async fn error(&mut self, event: Value) -> String {
        match self.invoke(event).await {
            Invocation::Error(error) => error["errorMessage"].as_str().unwrap().to_owned(),
            Invocation::Response(report) => {
                panic!("{}: expected an error, got {report}", self.name)
            }
        }
    }

    /// The EMF documents written so far, parsed.
    fn emf(&self) -> Vec<Value> {
        let lines = self.stdout.lock().unwrap().clone();
        lines
            .iter()
            .map(|line| {
                serde_json::from_str::<Value>(line).unwrap_or_else(|e| {
                    panic!("{}: stdout line is not JSON ({e}): {line}", self.name)
                })
            })
            .filter(|document| document.get("_aws").is_some())
            .collect()
    }

    fn logs(&self) -> String {
        format!(
            "--- {} log ---\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for LambdaFunction {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The S3 notification Lambda receives for `key` in the test bucket: the AWS fixture with its
/// bucket and key replaced (the key URL-encoded as S3 does, `+` for a space).
fn s3_event(key: &str) -> Value {
    let mut event = fixture("s3-put.json");
    let record = &mut event["Records"][0];
    record["s3"]["bucket"]["name"] = json!(fixtures::BUCKET);
    record["s3"]["bucket"]["arn"] = json!(format!("arn:aws:s3:::{}", fixtures::BUCKET));
    let encoded: String =
        percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC)
            .to_string()
            .replace("%20", "+");
    record["s3"]["object"]["key"] = json!(encoded);
    // Only the object-created record: the fixture's second one (a removal) is skipped anyway.
    event["Records"] = json!([record.clone()]);
    event
}

/// A function URL invocation (payload format 2.0) of `method path` with `body`; `path` may
/// carry a query string.
fn function_url_request(method: &str, path: &str, body: Option<&str>) -> Value {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let host = "abcdefghij.lambda-url.us-east-1.on.aws";
    let mut headers = json!({ "host": host, "user-agent": "appraise-test", "accept": "*/*" });
    if body.is_some() {
        headers["content-type"] = json!("application/json");
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghij",
            "domainName": host,
            "domainPrefix": "abcdefghij",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "appraise-test"
            },
            "requestId": "c7c0a2c5-0000-4000-8000-000000000000",
            "routeKey": "$default",
            "stage": "$default",
            "time": "27/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_780_800_000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// The status and JSON body of a function URL response.
fn http_answer(answer: &Value) -> (u64, Value) {
    let status = answer["statusCode"].as_u64().unwrap();
    let body = answer["body"].as_str().unwrap_or_default();
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    (status, body)
}

/// The value `metric` carries in the EMF documents, with the directive checked: namespace,
/// a `service` dimension whose value is `service`, and the metric declared.
fn emf_metric<'a>(documents: &'a [Value], service: &str, metric: &str) -> &'a Value {
    let document = documents
        .iter()
        .find(|d| d.get(metric).is_some())
        .unwrap_or_else(|| panic!("no EMF document carries {metric}: {documents:#?}"));
    let directive = &document["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "appraise", "{document}");
    assert!(
        document["_aws"]["Timestamp"].as_u64().unwrap() > 0,
        "{document}"
    );
    let dimensions = directive["Dimensions"][0].as_array().unwrap();
    assert!(dimensions.contains(&json!("service")), "{document}");
    assert_eq!(document["service"], service, "{document}");
    assert!(
        directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["Name"] == metric),
        "{document}"
    );
    &document[metric]
}

async fn count(db: &DbPool, sql: &str) -> i64 {
    fixtures::query_value(db, sql).await
}

async fn exists(objects: &ObjectStore, key: &str) -> bool {
    objects.get(key).await.unwrap().is_some()
}

#[tokio::test]
async fn the_pipeline_runs_on_the_lambda_runtime_api_and_the_predictor_behind_a_function_url() {
    let logs = tempfile::tempdir().unwrap();
    let (db_url, db) = fixtures::fresh_database().await.unwrap();
    let (s3, objects): (S3Server, ObjectStore) = fixtures::s3_server(vec![]).await.unwrap();
    let source = FunctionProcess::start(
        "source",
        &processes::binary("source").unwrap(),
        &[
            ("SOURCE_SCALE".to_owned(), "0.01".to_owned()),
            ("SOURCE_SEED".to_owned(), "42".to_owned()),
        ],
        Stdio::null(),
    )
    .await
    .unwrap();
    let mut env = s3.env(fixtures::BUCKET);
    env.push(("DATABASE_URL".into(), db_url));
    let with = |extra: &[(&str, &str)]| {
        let mut env = env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    let source_url = source.url();
    let mut ingest = LambdaFunction::start(
        "ingest",
        &with(&[
            ("SOURCE_URL", &source_url),
            ("INGEST_FIRST_SAMPLE", "400"),
            ("INGEST_LATER_SAMPLE", "50"),
        ]),
        logs.path(),
    )
    .await;
    let mut process = LambdaFunction::start("process", &env, logs.path()).await;
    let mut train = LambdaFunction::start(
        "train",
        &with(&[("TRAIN_MIN_NEW_ROWS", "100"), ("TRAIN_RF_TREES", "5")]),
        logs.path(),
    )
    .await;
    let mut promote = LambdaFunction::start("promote", &env, logs.path()).await;

    // The EventBridge schedule fires: ingest stores batch 0 raw, in PostgreSQL and S3.
    let report = ingest.report(fixture("eventbridge-schedule.json")).await;
    let stored = &report["results"][0];
    assert_eq!(stored["outcome"], "stored", "{report}");
    assert_eq!(stored["batch_number"], 0);
    assert_eq!(stored["rows_sampled"], 400);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM raw.listings WHERE batch_number = 0"
        )
        .await,
        400
    );
    let raw_manifest = "raw/batch-000000/manifest.json";
    assert!(exists(&objects, raw_manifest).await);
    assert!(exists(&objects, "raw/batch-000000/response.json.gz").await);
    // EventBridge retries deliver the same event id: a redelivery, not a second batch.
    let again = ingest.report(fixture("eventbridge-schedule.json")).await;
    assert_eq!(again["results"][0]["outcome"], "duplicate", "{again}");

    // Each function takes only its own trigger, and says so; a rejection is acknowledged.
    let error = ingest.rejection(s3_event(raw_manifest)).await;
    assert!(error.contains("ingest runs on the schedule"), "{error}");
    let error = process
        .rejection(fixture("eventbridge-schedule.json"))
        .await;
    assert!(
        error.contains("process runs on raw/ object events, not on a schedule"),
        "{error}"
    );
    let error = process.rejection(json!("not an event")).await;
    assert!(
        error.contains("bad event") && error.contains("expected a JSON object"),
        "{error}"
    );

    // S3 announces the raw manifest: process stores the clean rows and announces them.
    let report = process.report(s3_event(raw_manifest)).await;
    let processed = &report["results"][0];
    assert_eq!(processed["outcome"], "processed", "{report}");
    let kept = processed["rows_kept"].as_i64().unwrap();
    assert!(kept > 100 && kept <= 400, "{report}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM clean.listings WHERE batch_number = 0"
        )
        .await,
        kept
    );
    let clean_manifest = "clean/batch-000000/manifest.json";
    assert!(exists(&objects, clean_manifest).await);

    // The clean manifest wakes train, which trains (no production model yet) ...
    let report = train.report(s3_event(clean_manifest)).await;
    let trained = &report["results"][0];
    assert_eq!(trained["outcome"], "trained", "{report}");
    let training_id = trained["training_id"].as_i64().unwrap();
    let candidates = format!("candidates/training-{training_id:06}.json");
    assert!(exists(&objects, &candidates).await, "{candidates}");
    assert!(
        count(&db, "SELECT count(*) FROM ops.model_versions").await >= 2,
        "every candidate is a recorded model version"
    );

    // A predictor environment that starts before anything is in production answers 503 …
    let mut early = LambdaFunction::start(
        "predict",
        &with(&[("PREDICT_POLL_SECONDS", "1")]),
        logs.path(),
    )
    .await;
    let body = r#"{"brokered_by": 101, "status": "for_sale", "bed": 3, "bath": 2,
        "acre_lot": 0.25, "city": "Town", "state": "Texas", "zip_code": "12345",
        "house_size": 1800, "prev_sold_date": "2015-06-01"}"#;
    let answer = early
        .report(function_url_request("POST", "/predict", Some(body)))
        .await;
    let (status, error) = http_answer(&answer);
    assert_eq!(status, 503, "{answer}");
    assert!(
        error["error"].as_str().unwrap().contains("no model"),
        "{error}"
    );

    // ... and the candidates wake promote, which puts the best one in production.
    let report = promote.report(s3_event(&candidates)).await;
    let decided = &report["results"][0];
    assert_eq!(decided["outcome"], "decided", "{report}");
    assert_eq!(decided["promoted"], true, "{report}");
    assert!(exists(&objects, "production/current.json").await);
    let production: String = fixtures::query_value(&db, "SELECT version FROM ops.production").await;

    // Every invocation left its metrics on stdout as CloudWatch EMF.
    let ingest_emf = ingest.emf();
    let firings = emf_metric(&ingest_emf, "ingest", "ingest_firings_total");
    assert!(firings.as_f64().unwrap() >= 1.0, "{firings}");
    let durations = emf_metric(&ingest_emf, "ingest", "stage_duration_seconds");
    assert!(
        durations.as_array().is_some_and(|v| !v.is_empty()),
        "{durations}"
    );
    let process_emf = process.emf();
    let rejected = process_emf
        .iter()
        .find(|d| d["stage_invocations_total"].is_number() && d["outcome"] == "rejected")
        .unwrap_or_else(|| panic!("no EMF line for the rejected schedule: {process_emf:#?}"));
    assert_eq!(rejected["trigger"], "schedule", "{rejected}");
    emf_metric(&train.emf(), "train", "stage_invocations_total");

    // … and, once the poll interval has passed, notices the promotion by itself: the lazy poll
    // at request time stands in for the server's background task.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let answer = early
        .report(function_url_request("GET", "/health", None))
        .await;
    let (status, health) = http_answer(&answer);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(health["model_version"], production.as_str(), "{health}");
    drop(early);

    // A new environment loads the production model during init, before its first request
    // (the default poll interval, 5 s, has not passed when it is asked).
    let mut predict = LambdaFunction::start("predict", &env, logs.path()).await;
    let answer = predict
        .report(function_url_request("GET", "/health", None))
        .await;
    let (status, health) = http_answer(&answer);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(health["model_loaded"], true, "{health}");
    assert_eq!(health["model_version"], production.as_str());

    let answer = predict
        .report(function_url_request("POST", "/predict", Some(body)))
        .await;
    let (status, prediction) = http_answer(&answer);
    assert_eq!(status, 200, "{answer}");
    assert!(
        prediction["predicted_price"].as_f64().unwrap() > 0.0,
        "{prediction}"
    );
    assert_eq!(prediction["model_version"], production.as_str());
    assert!(prediction["model_rmse"].as_f64().unwrap() > 0.0);
    // The inference log was written before the answer left (Lambda may freeze right after).
    assert_eq!(
        count(&db, "SELECT count(*) FROM ops.inference_log").await,
        1
    );

    // Bad input: 422 naming the field, through the function URL as over HTTP.
    let answer = predict
        .report(function_url_request(
            "POST",
            "/predict",
            Some(r#"{"bed": "three"}"#),
        ))
        .await;
    let (status, problem) = http_answer(&answer);
    assert_eq!(status, 422, "{answer}");
    assert!(
        problem["error"].as_str().unwrap().contains("bed"),
        "{problem}"
    );

    // A payload that is not an HTTP request is refused, naming what the predictor expects.
    let error = predict.error(s3_event("production/current.json")).await;
    assert!(
        error.contains("API Gateway") || error.contains("Function URL"),
        "{error}"
    );

    let predict_emf = predict.emf();
    let predictions = predict_emf
        .iter()
        .find(|d| d["predictions_total"].is_number())
        .unwrap_or_else(|| panic!("no EMF line counts the prediction: {predict_emf:#?}"));
    assert_eq!(predictions["model_version"], production.as_str());
    assert_eq!(predictions["predictions_total"], 1.0);
    emf_metric(&predict_emf, "predict", "prediction_latency_seconds");

    source.stop().await;
}

/// The stand-in batch API, which the SAM stack deploys behind a function URL when no
/// `SourceUrl` is given, serves the course API's contract through it.
#[tokio::test]
async fn the_source_serves_batches_through_a_function_url() {
    let logs = tempfile::tempdir().unwrap();
    let env = [("SOURCE_SCALE".to_owned(), "0.01".to_owned())];
    let mut source = LambdaFunction::start("source", &env, logs.path()).await;
    let answer = source
        .report(function_url_request("GET", "/data?group_number=9", None))
        .await;
    let (status, batch) = http_answer(&answer);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(batch["group_number"], 9, "{answer}");
    assert_eq!(batch["batch_number"], 0);
    assert!(!batch["data"].as_array().unwrap().is_empty());
    // The query string is parsed at the boundary: a bad one is a 4xx with the reason.
    let answer = source
        .report(function_url_request("GET", "/data?group_number=x", None))
        .await;
    let (status, _) = http_answer(&answer);
    assert!((400..500).contains(&status), "{answer}");
}

/// The SAM template passes cfn-lint. Without cfn-lint the test is skipped with a note, except
/// in CI (`CI=true`), where a missing linter is a failure.
#[test]
fn the_sam_template_passes_cfn_lint() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let template = root.join("infra/sam/template.yaml");
    assert!(template.exists(), "{} is missing", template.display());
    let venv = fixtures::tools_venv().join("bin/cfn-lint");
    let linter = if venv.exists() {
        venv
    } else {
        PathBuf::from("cfn-lint")
    };
    let output = match std::process::Command::new(&linter).arg(&template).output() {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            fixtures::skip_without_tool(
                "cfn-lint is not installed: `bash scripts/setup-tools.sh` installs it",
            );
            return;
        }
        Err(error) => panic!("running {}: {error}", linter.display()),
    };
    assert!(
        output.status.success(),
        "cfn-lint found problems in {}:\n{}{}",
        template.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn train_and_promote_on_lambda_mirror_to_mlflow_within_their_invocations() {
    if appraise_testkit::mlflow_server::mlflow_command().is_none() {
        fixtures::skip_without_tool("no mlflow in target/tools-venv: run scripts/setup-tools.sh");
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let (db_url, db) = fixtures::fresh_database().await.unwrap();
    let (s3, _objects): (S3Server, ObjectStore) = fixtures::s3_server(vec![]).await.unwrap();
    let mlflow = appraise_testkit::mlflow_server::MlflowServer::start_in_temp_dir()
        .await
        .unwrap();
    fixtures::insert_clean_batch(&db, 0, 2_000, 1.0)
        .await
        .unwrap();
    let mut env = s3.env(fixtures::BUCKET);
    env.push(("DATABASE_URL".into(), db_url));
    env.push(("MLFLOW_TRACKING_URI".into(), mlflow.url()));
    let mut promote = LambdaFunction::start("promote", &env, logs.path()).await;
    env.extend([
        ("TRAIN_MIN_NEW_ROWS".into(), "100".into()),
        ("TRAIN_RF_TREES".into(), "5".into()),
    ]);
    let mut train = LambdaFunction::start("train", &env, logs.path()).await;

    let report = train
        .report(s3_event("clean/batch-000000/manifest.json"))
        .await;
    assert_eq!(report["results"][0]["outcome"], "trained", "{report}");
    let report = promote
        .report(s3_event("candidates/training-000000.json"))
        .await;
    assert_eq!(report["results"][0]["promoted"], true, "{report}");

    // No background task runs in a frozen environment: each invocation drained before it
    // answered, and said so in its EMF.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ops.mlflow_outbox WHERE mirrored_at IS NULL"
        )
        .await,
        0
    );
    let pending = promote
        .emf()
        .into_iter()
        .rev()
        .find_map(|d| d.get("mlflow_pending_writes").cloned())
        .expect("promote reports mlflow_pending_writes");
    assert_eq!(pending, 0.0, "nothing waits");
    let mlflow = mlflow.read_back("appraise", "appraise").unwrap();
    assert_eq!(mlflow["trainings"].as_array().unwrap().len(), 1, "{mlflow}");
    assert_eq!(mlflow["versions"].as_array().unwrap().len(), 3, "{mlflow}");
    let production: String = fixtures::query_value(&db, "SELECT version FROM ops.production").await;
    assert_eq!(mlflow["champion"], production.as_str(), "{mlflow}");
}
