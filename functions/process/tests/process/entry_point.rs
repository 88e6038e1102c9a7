//! The process binary in HTTP mode, woken by MinIO webhook bodies as the embedded S3 server
//! (or MinIO) sends them.

use std::process::Stdio;

use appraise_core::events::ScheduleTick;
use appraise_ingest::{
    Ingest,
    config::{IngestConfig, SamplingConfig, SourceConfig},
};
use appraise_source::{DataConfig, Dataset, SourceState, plan::Scale, router};
use appraise_testkit::{fixtures, processes::FunctionProcess, s3_server::minio_event};
use serde_json::Value;

#[tokio::test]
async fn process_answers_minio_webhooks_on_post_root() {
    let (db_url, db) = fixtures::fresh_database().await.unwrap();
    let (s3, objects) = fixtures::s3_server(vec![]).await.unwrap();

    // One real batch, ingested from the real source.
    let dataset = Dataset::from_config(&DataConfig::Synthetic {
        seed: 42,
        scale: Scale::new(0.01).unwrap(),
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(SourceState::new(dataset))).await });
    let config = IngestConfig {
        source: SourceConfig {
            base_url: source,
            extra_roots: Vec::new(),
            group_number: 9,
            day: None,
            timeout: std::time::Duration::from_secs(10),
            retries: 1,
            backoff: std::time::Duration::from_millis(10),
        },
        sampling: SamplingConfig {
            first_batch: 500,
            later_batches: 100,
            seed: 3,
        },
    };
    let tick = ScheduleTick {
        id: Some("one".into()),
        time: None,
        payload: Value::Null,
    };
    Ingest::new(config, db, objects.clone())
        .unwrap()
        .ingest_tick(&tick)
        .await
        .unwrap();

    let mut env = s3.env(fixtures::BUCKET);
    env.push(("DATABASE_URL".into(), db_url));
    env.push(("PROCESS_PRICE_MIN".into(), "60000".into()));
    let process = FunctionProcess::start(
        "process",
        env!("CARGO_BIN_EXE_process").as_ref(),
        &env,
        Stdio::null(),
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let event = minio_event(
        fixtures::BUCKET,
        "raw/batch-000000/manifest.json",
        "ObjectCreated:Put",
        1,
    );

    let response = client
        .post(process.url())
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    let result = &report["results"][0];
    assert_eq!(result["outcome"], "processed");
    assert_eq!(result["rows_in"], 500);
    let kept = result["rows_kept"].as_u64().unwrap();
    let dropped: u64 = result["dropped"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        kept + dropped,
        500,
        "every row is kept or dropped by one rule"
    );
    assert!(
        objects
            .get("clean/batch-000000/manifest.json")
            .await
            .unwrap()
            .is_some()
    );

    // Redelivered: nothing happens twice.
    let report: Value = client
        .post(process.url())
        .json(&event)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["results"][0]["outcome"], "duplicate");

    // A schedule is not for process; a bad threshold stops the binary at start.
    let response = client
        .post(process.url())
        .body(r#"{"detail-type":"Scheduled Event","id":"x","detail":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    process.stop().await;

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_process"))
        .env("PROCESS_PRICE_MIN", "3000000")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PROCESS_PRICE_MAX"), "{stderr}");
}

#[tokio::test]
async fn an_event_ahead_of_its_batch_gets_503_within_the_window_and_400_without_a_manifest() {
    let (db_url, _db) = fixtures::fresh_database().await.unwrap();
    let (s3, objects) = fixtures::s3_server(vec![]).await.unwrap();
    // Announced, but its rows are not visible to process.
    objects
        .put(
            "raw/batch-000005/manifest.json",
            bytes::Bytes::from_static(b"{}"),
            "application/json",
        )
        .await
        .unwrap();
    let mut env = s3.env(fixtures::BUCKET);
    env.push(("DATABASE_URL".into(), db_url));
    env.push(("STAGE_PENDING_WINDOW_SECS".into(), "600".into()));
    let process = FunctionProcess::start(
        "process",
        env!("CARGO_BIN_EXE_process").as_ref(),
        &env,
        Stdio::null(),
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let post = async |key: &str| {
        let event = minio_event(fixtures::BUCKET, key, "ObjectCreated:Put", 1);
        let response = client
            .post(process.url())
            .json(&event)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    let (status, body) = post("raw/batch-000005/manifest.json").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not visible yet"), "{body}");
    let (status, body) = post("raw/batch-000006/manifest.json").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("batch 6 is not in ops.batches"), "{body}");
    process.stop().await;

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_process"))
        .env("STAGE_PENDING_WINDOW_SECS", "soon")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("STAGE_PENDING_WINDOW_SECS"), "{stderr}");
}
