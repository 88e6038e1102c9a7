//! The pipeline gauges (`appraise_predict::pipeline_gauges`): what they read from the tables the
//! stages write, on a real PostgreSQL, as the pipeline goes from an empty database to a
//! production model; and that the predictor binary registers them at 0 and exports what it read.

use std::time::Duration;

use appraise_core::db::DbPool;
use appraise_predict::pipeline_gauges::{self, PipelineState};
use appraise_testkit::fixtures;

/// A timestamp column as Unix seconds, read by its own query.
async fn epoch(db: &DbPool, sql: &str) -> f64 {
    fixtures::query_value::<f64>(db, &format!("SELECT extract(epoch FROM ({sql}))::float8")).await
}

#[tokio::test]
async fn the_gauges_follow_the_pipeline_from_an_empty_database_to_a_production_model() {
    let (_url, db) = fixtures::fresh_database().await.unwrap();
    let (_s3, objects) = fixtures::s3_server(vec![]).await.unwrap();

    // Nothing stored yet: the batch clock starts when the database was set up.
    let setup = epoch(&db, "SELECT min(applied_at) FROM ops.schema_migrations").await;
    assert!(setup > 1.7e9, "{setup}");
    assert_eq!(
        pipeline_gauges::read(&db).await.unwrap(),
        PipelineState {
            last_batch_stored: setup,
            production_model_trained: 0.0,
            oldest_untrained_batch: 0.0,
            drift_detected: 0.0,
        }
    );

    // A batch stored and cleaned, not trained on yet: train's Job is running, failed or never ran.
    fixtures::insert_clean_batch(&db, 1, 200, 1.0)
        .await
        .unwrap();
    let state = pipeline_gauges::read(&db).await.unwrap();
    assert_eq!(
        state.last_batch_stored,
        epoch(
            &db,
            "SELECT ingested_at FROM ops.batches WHERE batch_number = 1"
        )
        .await
    );
    assert_eq!(
        state.oldest_untrained_batch,
        epoch(
            &db,
            "SELECT processed_at FROM ops.clean_batches WHERE batch_number = 1"
        )
        .await
    );
    assert_eq!(state.production_model_trained, 0.0);

    // The real train and promote stages: batch 1 trains and is promoted, batch 2 is drifted.
    let (_url, db) = fixtures::fresh_database().await.unwrap();
    let version = crate::support::seed_production_model(&db, &objects)
        .await
        .unwrap();
    let state = pipeline_gauges::read(&db).await.unwrap();
    assert_eq!(
        state.production_model_trained,
        epoch(
            &db,
            &format!("SELECT created_at FROM ops.model_versions WHERE version = '{version}'")
        )
        .await
    );
    assert_eq!(
        state.oldest_untrained_batch, 0.0,
        "both batches have a decision"
    );
    let drifted: bool = fixtures::query_value(
        &db,
        "SELECT drifted FROM ops.drift_reports ORDER BY id DESC LIMIT 1",
    )
    .await;
    assert!(drifted, "the seeded second batch is drifted");
    assert_eq!(state.drift_detected, 1.0);
}

/// The value of a series with only the `service` label in a Prometheus text exposition.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    let series = format!("{name}{{service=\"predict\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series)?.trim().parse().ok())
}

#[tokio::test]
async fn the_predictor_registers_the_gauges_at_zero_and_exports_what_it_reads() {
    let (db_url, db) = fixtures::fresh_database().await.unwrap();
    let (s3, _objects) = fixtures::s3_server(vec![]).await.unwrap();
    fixtures::insert_clean_batch(&db, 1, 200, 1.0)
        .await
        .unwrap();
    let stored = epoch(
        &db,
        "SELECT ingested_at FROM ops.batches WHERE batch_number = 1",
    )
    .await;
    let names = [
        "last_batch_stored_timestamp_seconds",
        "production_model_trained_timestamp_seconds",
        "oldest_untrained_batch_timestamp_seconds",
        "drift_detected",
    ];
    let client = reqwest::Client::new();

    // Off: every gauge is exported, at 0.
    let mut env = s3.env(fixtures::BUCKET);
    env.push(("DATABASE_URL".to_owned(), db_url));
    let mut off = env.clone();
    off.push(("PREDICT_PIPELINE_GAUGES_SECONDS".to_owned(), "0".to_owned()));
    let predict = crate::support::start_predictor(&off).await;
    let metrics = client
        .get(format!("{}/metrics", predict.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in names {
        assert_eq!(sample(&metrics, name), Some(0.0), "{name} in:\n{metrics}");
    }
    predict.stop().await;

    // On: the stored batch's time appears.
    env.push((
        "PREDICT_PIPELINE_GAUGES_SECONDS".to_owned(),
        "0.1".to_owned(),
    ));
    let predict = crate::support::start_predictor(&env).await;
    let mut seen = None;
    for _ in 0..300 {
        let metrics = client
            .get(format!("{}/metrics", predict.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        seen = sample(&metrics, "last_batch_stored_timestamp_seconds");
        if seen == Some(stored) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, Some(stored));
    predict.stop().await;
}
