//! The harness's parts and the whole main job, for real: a PostgreSQL cluster that cleans up
//! after itself, the S3 server's MinIO-style notifications, and `appraise run` end to end.

use std::{sync::Arc, time::Duration};

use appraise_core::{events, objects::ObjectStore};
use appraise_testkit::{
    course_api_double::{CourseApi, Fault, Plan},
    fixtures,
    postgres::Postgres,
    s3_server::{NotificationRule, S3Server},
};
use axum::{Router, body::Bytes, extract::State, routing::post};
use tokio::sync::Mutex;

#[tokio::test]
async fn a_throwaway_cluster_serves_queries_and_leaves_nothing_behind() {
    let mut cluster = tokio::task::spawn_blocking(Postgres::start)
        .await
        .unwrap()
        .unwrap();
    let url = cluster.create_database("scratch").await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client.query_one("SELECT 6 * 7", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    drop(client);

    let port = cluster.port();
    let directory = cluster.directory().to_owned();
    assert!(directory.exists());
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server stopped"
    );
    assert!(!directory.exists(), "its directory was removed");
}

#[tokio::test]
async fn the_s3_server_returns_whole_objects_as_stored_and_rewritten() {
    let (_server, objects) = fixtures::s3_server(Vec::new()).await.unwrap();
    // Larger than any streaming chunk, under a key that needs escaping.
    let big: Vec<u8> = (0..3_000_017u32).map(|i| (i * 7 % 251) as u8).collect();
    let key = "models/t 1+é/model.json";
    objects
        .put(key, Bytes::from(big.clone()), "application/json")
        .await
        .unwrap();
    assert_eq!(objects.get(key).await.unwrap().unwrap(), big);
    // Rewritten shorter and longer: each GET returns what was last stored.
    for body in [&b"{\"version\":\"v2\"}"[..], &big[..1_000_003]] {
        objects
            .put(key, Bytes::copy_from_slice(body), "application/json")
            .await
            .unwrap();
        assert_eq!(objects.get(key).await.unwrap().unwrap(), body);
    }
    assert_eq!(objects.get("models/none.json").await.unwrap(), None);
}

#[tokio::test]
async fn the_s3_server_announces_matching_objects_like_minio() {
    // A webhook target that records what it receives.
    let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let router = Router::new()
        .route(
            "/",
            post(
                |State(received): State<Arc<Mutex<Vec<Bytes>>>>, body: Bytes| async move {
                    received.lock().await.push(body);
                    "{\"ok\":true}"
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let rules = vec![NotificationRule {
        prefix: "raw/".into(),
        suffix: ".json".into(),
        target: Some(target.clone()),
    }];
    let (server, objects): (S3Server, ObjectStore) = fixtures::s3_server(rules).await.unwrap();
    let mut deliveries = server.deliveries();

    objects
        .put(
            "raw/batch 1/manifest.json",
            Bytes::from_static(b"{}"),
            "application/json",
        )
        .await
        .unwrap();
    objects
        .put(
            "raw/batch-1/response.json.gz",
            Bytes::from_static(b"x"),
            "application/gzip",
        )
        .await
        .unwrap();
    objects
        .put(
            "clean/batch-1/manifest.json",
            Bytes::from_static(b"{}"),
            "application/json",
        )
        .await
        .unwrap();

    let delivery = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.key, "raw/batch 1/manifest.json");
    assert_eq!(delivery.status, Some(200));
    assert_eq!(delivery.response, "{\"ok\":true}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let bodies = received.lock().await.clone();
    assert_eq!(
        bodies.len(),
        1,
        "only the key matching prefix and suffix is announced"
    );
    let body: serde_json::Value = serde_json::from_slice(&bodies[0]).unwrap();
    assert_eq!(body["EventName"], "s3:ObjectCreated:Put");
    assert_eq!(body["Key"], "appraise/raw/batch 1/manifest.json");
    let encoded = body["Records"][0]["s3"]["object"]["key"].as_str().unwrap();
    assert_eq!(
        encoded, "raw%2Fbatch+1%2Fmanifest.json",
        "keys are URL-encoded as MinIO does"
    );
    // And what the functions make of it is the real key.
    let triggers = events::from_json(body).unwrap();
    let events::Trigger::ObjectCreated(created) = &triggers[0] else {
        panic!("{triggers:?}")
    };
    assert_eq!(created.key, "raw/batch 1/manifest.json");

    // The object itself round-trips through the real AWS SDK.
    assert_eq!(
        objects
            .get("raw/batch-1/response.json.gz")
            .await
            .unwrap()
            .unwrap(),
        Bytes::from_static(b"x")
    );
    assert_eq!(objects.get("raw/missing").await.unwrap(), None);
    assert_eq!(
        objects.list("raw/").await.unwrap(),
        vec!["raw/batch 1/manifest.json", "raw/batch-1/response.json.gz"]
    );
}

/// Runs `appraise run <args> --min-new-rows 100 --trees 5` in a fresh work directory, with
/// its own PostgreSQL and S3 server; returns whether it succeeded, its stdout and its stderr.
async fn main_job(args: &[&str]) -> (bool, String, String) {
    let work_dir = tempfile::tempdir().unwrap();
    main_job_in(work_dir.path(), args).await
}

/// [`main_job`] with its run files in `work_dir`, which outlives the run.
async fn main_job_in(work_dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let binary = appraise_testkit::processes::binary("appraise").unwrap();
    let output = tokio::process::Command::new(binary)
        .arg("run")
        .args(args)
        .args(["--min-new-rows", "100", "--trees", "5"])
        .arg("--work-dir")
        .arg(work_dir)
        .env_remove("DATABASE_URL")
        .env_remove("S3_ENDPOINT")
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_main_job_drains_the_source_and_reports_every_batch() {
    let summary_dir = tempfile::tempdir().unwrap();
    let summary_path = summary_dir.path().join("summary.json");
    let (success, stdout, stderr) = main_job(&[
        "--scale",
        "0.01",
        "--first-sample",
        "400",
        "--later-sample",
        "50",
        "--summary-json",
        summary_path.to_str().unwrap(),
    ])
    .await;
    assert!(success, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    check_run_summary(&summary, &stdout);
    for batch in 0..=5 {
        assert!(
            stdout.contains(&format!("ingest   batch {batch:>3}")),
            "batch {batch} ingested:\n{stdout}"
        );
        assert!(
            stdout.contains(&format!("process  batch {batch:>3}  kept")),
            "batch {batch} processed:\n{stdout}"
        );
        assert!(
            stdout.contains(&format!("raw/batch-{batch:06}/manifest.json")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("clean/batch-{batch:06}/manifest.json")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("train    batch {batch:>3}  ")),
            "batch {batch} decided:\n{stdout}"
        );
    }
    // Batch 0 keeps well over 100 clean rows and there is no production model: it trains,
    // and each model's test metrics are shown.
    assert!(stdout.contains("train    batch   0  trained"), "{stdout}");
    assert!(stdout.contains("model    t000000-ridge"), "{stdout}");
    assert!(
        stdout.contains("model    t000000-random_forest"),
        "{stdout}"
    );
    assert!(stdout.contains("model    t000000-xgboost"), "{stdout}");
    assert!(
        stdout.contains("candidates/training-000000.json"),
        "{stdout}"
    );
    // Promote puts the first training's best model in production, and the predictor
    // answers with it.
    assert!(
        stdout.contains("promote  batch   0  promoted t000000-"),
        "{stdout}"
    );
    assert!(stdout.contains("production model: t0000"), "{stdout}");
    assert!(stdout.contains("Springfield, MA: $"), "{stdout}");
    assert!(stdout.contains("predictor: http://127.0.0.1:"), "{stdout}");
    // The predictor's GET /runs lists every batch with its four stages, none failed or left
    // waiting, as the harness prints it.
    for batch in 0..=5 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("runs     batch {batch:>3}  ")))
            .unwrap_or_else(|| panic!("no runs line for batch {batch}:\n{stdout}"));
        assert!(
            line.contains("ingest done · process done · train "),
            "{line}"
        );
        assert!(
            !line.contains("failed") && !line.contains("waiting"),
            "{line}"
        );
    }
    assert!(
        stdout
            .contains("runs     batch   0  ingest done · process done · train done · promote done"),
        "{stdout}"
    );
    // The predictor's GET /drift/predictions answers a per-field report after the run's
    // prediction (the inference log is written off the request path: 0 or 1 compared).
    assert!(
        stdout.contains("served inputs: ") && stdout.contains(" 7 fields tested; drifted: "),
        "{stdout}"
    );
    // The generator's nulls make some rule drop rows in every run.
    assert!(stdout.contains("dropped: missing_"), "{stdout}");
    assert!(stdout.contains("the source has nothing left"), "{stdout}");
    // Batch 0 is sampled to 400 rows, later ones to 50 (batch 3 has fewer rows than that).
    let summary = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("0 "))
        .unwrap();
    assert!(summary.contains(" 400 "), "{summary}");
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("total")),
        "{stdout}"
    );
}

/// `--summary-json`'s file agrees with the console: the rows of the summary table's total line,
/// one run per batch in each stage, a promote per training, and every function's memory and
/// rate measured.
fn check_run_summary(summary: &serde_json::Value, stdout: &str) {
    let total: Vec<u64> = stdout
        .lines()
        .find(|l| l.starts_with("total"))
        .unwrap_or_else(|| panic!("no total line:\n{stdout}"))
        .split_whitespace()
        .skip(1)
        .take(5)
        .map(|figure| figure.replace(',', "").parse().unwrap())
        .collect();
    let &[received, sampled, _flagged, _stored, kept] = &total[..] else {
        panic!("{total:?}")
    };
    let stages = summary["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["source", "ingest", "process", "train", "promote"]);
    let stage = |name: &str| stages.iter().find(|s| s["stage"] == name).unwrap();
    let trainings = summary["trainings"].as_array().unwrap();
    assert_eq!(
        trainings.len(),
        stdout.matches("  trained (training ").count(),
        "{summary}"
    );
    assert!(!trainings.is_empty(), "{summary}");
    // What the stages recorded is what the console's summary table shows.
    assert_eq!(summary["rows_planned"], received, "{summary}");
    assert_eq!(stage("source")["rows_out"], received, "{summary}");
    assert_eq!(stage("ingest")["rows_in"], received, "{summary}");
    assert_eq!(stage("ingest")["rows_out"], sampled, "{summary}");
    assert_eq!(stage("process")["rows_in"], sampled, "{summary}");
    assert_eq!(stage("process")["rows_out"], kept, "{summary}");
    let trained_rows: u64 = trainings
        .iter()
        .map(|t| {
            ["rows_train", "rows_validation", "rows_test"]
                .iter()
                .map(|field| t[field].as_u64().unwrap())
                .sum::<u64>()
        })
        .sum();
    assert_eq!(stage("train")["rows_in"], trained_rows, "{summary}");
    for (name, invocations) in [
        ("source", 6),
        ("ingest", 6),
        ("process", 6),
        ("train", 6),
        ("promote", trainings.len() as u64),
    ] {
        let stage = stage(name);
        assert_eq!(stage["invocations"], invocations, "{name}: {stage}");
        assert!(
            stage["peak_rss_bytes"].as_u64().unwrap() > 1_000_000,
            "{name}: {stage}"
        );
        assert!(
            stage["cpu_seconds"].as_f64().unwrap() >= 0.0,
            "{name}: {stage}"
        );
        assert!(
            stage["rows_per_cpu_second"]
                .as_f64()
                .is_none_or(|r| r > 0.0),
            "{name}: {stage}"
        );
        if name == "source" {
            assert!(stage["wall_seconds"].is_null(), "{stage}");
            continue;
        }
        let wall = stage["wall_seconds"].as_f64().unwrap();
        let rows = stage["rows_in"].as_f64().unwrap();
        assert!(wall > 0.0 && rows > 0.0, "{name}: {stage}");
        let rate = stage["rows_per_second"].as_f64().unwrap();
        assert!((rate - rows / wall).abs() <= 1e-6 * rate, "{name}: {stage}");
    }
    for training in trainings {
        let algorithms: Vec<&str> = training["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                assert!(c["fit_seconds"].as_f64().unwrap() >= 0.0, "{c}");
                assert!(c["test"]["rmse"].as_f64().unwrap() > 0.0, "{c}");
                c["algorithm"].as_str().unwrap()
            })
            .collect();
        assert_eq!(algorithms.len(), 3, "{training}");
    }
}

#[tokio::test]
async fn the_main_job_runs_against_an_external_batch_api() {
    // The course-API double: batches numbered from 0, and the last answer lost once after the
    // cursor moved past it.
    let api = CourseApi::start(Plan::from_sample(0, &[3_000, 2_000, 2_000])).await;
    api.plant(2, Fault::Error500AfterCursorMoves);
    let url = api.url();
    let (success, stdout, stderr) = main_job(&[
        "--source-url",
        &url,
        "--group",
        "3",
        "--day",
        "Tuesday",
        "--first-sample",
        "10000",
        "--later-sample",
        "10000",
    ])
    .await;
    assert!(success, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(&format!("source: using the batch API at {url}")),
        "{stdout}"
    );
    for batch in 0..=2 {
        assert!(
            stdout.contains(&format!("process  batch {batch:>3}  kept")),
            "batch {batch} processed:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("recovered an answer lost in flight"),
        "{stdout}"
    );
    assert!(stdout.contains("promote  batch   0  promoted"), "{stdout}");
    // Every row the API served was received and stored.
    let total = stdout
        .lines()
        .find(|l| l.starts_with("total"))
        .unwrap_or_default();
    let figures: Vec<&str> = total.split_whitespace().collect();
    assert_eq!(figures[1..5], ["7,000", "7,000", "0", "7,000"], "{total}");
}

#[tokio::test]
async fn the_main_job_runs_on_the_datasets_real_csv_variants() {
    use appraise_source::csv_variants::{Variant, write};
    let sample = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/realtor-sample.csv"
    ));
    let dir = tempfile::tempdir().unwrap();
    for (variant, notice) in [
        (
            Variant::ElevenColumns,
            "notice: the CSV has no prev_sold_date column",
        ),
        (
            Variant::TenColumns,
            "notice: the CSV has no brokered_by, street columns",
        ),
        (Variant::ExcelResave, "serving 12,885 rows of the CSV"),
        (Variant::Ragged, "malformed rows"),
    ] {
        let copy = dir.path().join(format!("{variant:?}.csv"));
        write(variant, sample, &copy).unwrap();
        let (success, stdout, stderr) = main_job(&[
            "--csv",
            copy.to_str().unwrap(),
            "--first-sample",
            "3000",
            "--later-sample",
            "500",
        ])
        .await;
        assert!(success, "{variant:?}: stdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(stdout.contains(notice), "{variant:?}: {notice}\n{stdout}");
        assert!(
            stdout.contains("promote  batch   0  promoted"),
            "{variant:?}:\n{stdout}"
        );
        assert!(
            stdout.contains("production model: t0000"),
            "{variant:?}:\n{stdout}"
        );
        if variant == Variant::Ragged {
            assert!(
                stdout.contains("the source dropped 2 malformed CSV rows before serving"),
                "{stdout}"
            );
        }
        if variant == Variant::ExcelResave {
            // Excel's M/D/YYYY dates are read: no date is served as null for failing to parse.
            assert!(!stdout.contains("prev_sold_date"), "{stdout}");
        }
    }
}

#[tokio::test]
async fn a_function_that_cannot_start_says_why_on_the_console() {
    use appraise_source::csv_variants::{Variant, write};
    let sample = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/realtor-sample.csv"
    ));
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("utf16.csv");
    write(Variant::Utf16Le, sample, &copy).unwrap();
    let (success, stdout, stderr) = main_job(&["--csv", copy.to_str().unwrap()]).await;
    assert!(!success, "{stdout}");
    assert!(
        stderr.contains("source exited at start") && stderr.contains("UTF-16"),
        "the source's own reason is on the console:\n{stderr}"
    );
}

#[tokio::test]
async fn the_main_job_with_mlflow_mirrors_every_training_to_a_local_server() {
    if appraise_testkit::mlflow_server::mlflow_command().is_none() {
        fixtures::skip_without_tool("no mlflow in target/tools-venv: run scripts/setup-tools.sh");
        return;
    }
    let work_dir = tempfile::tempdir().unwrap();
    let (success, stdout, stderr) = main_job_in(
        work_dir.path(),
        &[
            "--mlflow",
            "--scale",
            "0.01",
            "--first-sample",
            "400",
            "--later-sample",
            "50",
        ],
    )
    .await;
    assert!(success, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("MLflow: server at http://127.0.0.1:"),
        "{stdout}"
    );
    let trained = stdout.matches("  trained (training ").count();
    assert!(trained >= 1, "{stdout}");
    // Printed once the mirror caught up: every training the run made is in MLflow.
    let plural = if trained == 1 {
        "training"
    } else {
        "trainings"
    };
    assert!(
        stdout.contains(&format!(
            "{trained} {plural} mirrored to experiment and model `appraise`)"
        )),
        "{trained} trainings:\n{stdout}"
    );
    assert!(stdout.contains("mlflow: http://127.0.0.1:"), "{stdout}");

    // The run's MLflow data, served again and read by MLflow's Python client: a run per
    // training, a version per model, `champion` on the production model.
    let run_dir = std::fs::read_dir(work_dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.join("mlflow/mlflow.db").exists())
        .expect("the run kept its MLflow data");
    let server = appraise_testkit::mlflow_server::MlflowServer::start(run_dir.join("mlflow"), 0)
        .await
        .unwrap();
    let mlflow = server.read_back("appraise", "appraise").unwrap();
    assert_eq!(
        mlflow["trainings"].as_array().unwrap().len(),
        trained,
        "{mlflow}"
    );
    assert_eq!(
        mlflow["models"].as_array().unwrap().len(),
        3 * trained,
        "{mlflow}"
    );
    assert_eq!(
        mlflow["versions"].as_array().unwrap().len(),
        3 * trained,
        "{mlflow}"
    );
    let production = stdout
        .lines()
        .find_map(|line| line.strip_prefix("production model: "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a production model");
    assert_eq!(mlflow["champion"], production, "{mlflow}");
}
