//! The ingest stage against a real PostgreSQL, a real S3 server and the real batch source.

use std::io::Read;

use crate::support::{Fault, dataset, faulty_proxy, ingest_config, serve, start_source, world};
use appraise_ingest::{IngestReport, store};

const SCALE: f64 = 0.02;

fn stored(report: IngestReport) -> appraise_ingest::StoredBatch {
    match report {
        IngestReport::Stored(batch) => batch,
        other => panic!("expected a stored batch, got {other:?}"),
    }
}

#[tokio::test]
async fn samples_the_first_batch_and_later_batches_with_their_own_sizes() {
    let source = start_source(SCALE).await;
    let world = world(ingest_config(&source, 1_000, 200)).await;
    let expected = dataset(SCALE);

    let stored_batches = world.drain("tick").await;
    let count = expected.batch_count() as i32;
    assert_eq!(stored_batches, (0..count).collect::<Vec<_>>());

    let client = world.db.get().await.unwrap();
    for batch in 0..count {
        let received = expected.batch_rows(batch as u64).unwrap() as i64;
        let sample = if batch == 0 { 1_000 } else { 200 };
        let row = client
            .query_one(
                "SELECT rows_received::bigint, rows_sampled::bigint,
                        (SELECT count(*) FROM raw.listings l WHERE l.batch_number = b.batch_number),
                        (SELECT written_at IS NOT NULL FROM ops.outbox o WHERE o.key = b.manifest_key)
                 FROM ops.batches b WHERE batch_number = $1",
                &[&batch],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), received, "batch {batch} received");
        assert_eq!(
            row.get::<_, i64>(1),
            received.min(sample),
            "batch {batch} sampled"
        );
        assert_eq!(
            row.get::<_, i64>(2),
            received.min(sample),
            "batch {batch} rows"
        );
        assert!(row.get::<_, bool>(3), "batch {batch} announced");
        assert!(
            world
                .objects
                .get(&store::manifest_key(batch))
                .await
                .unwrap()
                .is_some(),
            "manifest of batch {batch}"
        );
    }

    // The response object holds exactly what the source sent: a second source with the same
    // seed serves the same bytes for batch 0.
    let compressed = world
        .objects
        .get(&store::response_key(0))
        .await
        .unwrap()
        .unwrap();
    let mut stored_body = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut stored_body)
        .unwrap();
    let again = reqwest::get(format!("{}/data?group_number=9", start_source(SCALE).await))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(stored_body, again.to_vec());

    // Sampling is seeded: a second run of the same seed keeps the same rows.
    let rerun = world_run_rows(&start_source(SCALE).await).await;
    let first_run: Vec<(i32, i32)> = client
        .query(
            "SELECT batch_number, row_index FROM raw.listings ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rerun, first_run);
}

async fn world_run_rows(source: &str) -> Vec<(i32, i32)> {
    let world = world(ingest_config(source, 1_000, 200)).await;
    world.drain("again").await;
    let client = world.db.get().await.unwrap();
    client
        .query(
            "SELECT batch_number, row_index FROM raw.listings ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_redelivered_firing_does_nothing_even_concurrently() {
    let source = start_source(SCALE).await;
    let world = world(ingest_config(&source, 500, 100)).await;

    let first = stored(world.fire("same").await);
    assert_eq!(first.batch_number, 0);
    match world.fire("same").await {
        IngestReport::Duplicate {
            previous_outcome,
            batch_number,
            ..
        } => {
            assert_eq!(previous_outcome, "stored");
            assert_eq!(batch_number, Some(0));
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }

    // Two copies of one firing at once: one stores, the other sees it.
    let (a, b) = tokio::join!(world.fire("twin"), world.fire("twin"));
    let outcomes = [&a, &b]
        .iter()
        .filter(|r| matches!(r, IngestReport::Stored(_)))
        .count();
    assert_eq!(outcomes, 1, "{a:?} / {b:?}");
    assert_eq!(world.batch_numbers().await, vec![0, 1]);
    assert_eq!(
        world
            .count("SELECT count(*) FROM raw.listings WHERE batch_number = 1")
            .await,
        100
    );
}

#[tokio::test]
async fn concurrent_distinct_firings_take_consecutive_batches() {
    let source = start_source(SCALE).await;
    let world = world(ingest_config(&source, 300, 50)).await;
    let (a, b, c) = tokio::join!(world.fire("a"), world.fire("b"), world.fire("c"));
    let mut numbers: Vec<i32> = [a, b, c]
        .into_iter()
        .map(|r| stored(r).batch_number)
        .collect();
    numbers.sort();
    assert_eq!(numbers, vec![0, 1, 2]);
    assert_eq!(world.batch_numbers().await, vec![0, 1, 2]);
}

#[tokio::test]
async fn end_of_data_is_a_normal_outcome() {
    let source = start_source(SCALE).await;
    let world = world(ingest_config(&source, 100, 100)).await;
    let stored_batches = world.drain("drain").await;
    assert_eq!(stored_batches.len() as u64, dataset(SCALE).batch_count());
    assert_eq!(world.fire("after-the-end").await, IngestReport::Exhausted);
    assert_eq!(world.count("SELECT count(*) FROM ops.batches").await, 6);
    assert_eq!(
        world
            .count("SELECT count(*) FROM ops.schedule_ticks WHERE outcome = 'exhausted'")
            .await,
        2
    );
}

#[tokio::test]
async fn recovers_batches_lost_to_timeouts_errors_and_truncated_json() {
    let source = start_source(SCALE).await;
    // Call 1 fails before reaching the source; call 3 is cut short after the source served
    // batch 2; call 6 stalls past the timeout after the source served a batch.
    let (proxy, calls) = faulty_proxy(source, |call| match call {
        1 => Fault::Fail500,
        3 => Fault::Truncate,
        6 => Fault::Stall,
        _ => Fault::Pass,
    })
    .await;
    let world = world(ingest_config(&proxy, 200, 50)).await;

    let reports = world.drain_reports("t").await;
    let order: Vec<i32> = reports.iter().map(|b| b.batch_number).collect();
    let skipped: Vec<i32> = reports
        .iter()
        .flat_map(|b| b.skipped_batches.clone())
        .collect();
    assert_eq!(order, vec![0, 1, 2, 3, 4, 5], "every batch once, in order");
    assert_eq!(world.batch_numbers().await, vec![0, 1, 2, 3, 4, 5]);
    assert!(
        !skipped.is_empty(),
        "recovery re-fetched and dropped batches"
    );
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) > 8);
}

#[tokio::test]
async fn a_source_that_keeps_failing_is_a_clear_error_and_nothing_is_stored() {
    let source = start_source(SCALE).await;
    let (proxy, _) = faulty_proxy(source, |_| Fault::Fail500).await;
    let world = world(ingest_config(&proxy, 100, 100)).await;
    let error = world
        .ingest
        .ingest_tick(&crate::support::tick("doomed"))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(text.contains("4 attempts"), "{text}");
    assert_eq!(world.count("SELECT count(*) FROM ops.batches").await, 0);
    assert_eq!(
        world.count("SELECT count(*) FROM ops.schedule_ticks").await,
        0,
        "the firing is not marked handled, so its redelivery tries again"
    );
}

/// A batch API that stalls, under an invocation deadline of a few seconds: the firing gives up
/// before the deadline with an error naming it, instead of waiting out `SOURCE_TIMEOUT_SECS`
/// (120 s here) and its retries; nothing is stored, and the next firing takes the batch.
#[tokio::test]
async fn a_stalling_source_stops_the_firing_before_its_deadline_and_loses_nothing() {
    let source = start_source(SCALE).await;
    // The first `/data` call stalls (30 s, then a 504); every later one passes.
    let (proxy, _) = faulty_proxy(
        source,
        |call| {
            if call == 0 { Fault::Stall } else { Fault::Pass }
        },
    )
    .await;
    let mut config = ingest_config(&proxy, 100, 100);
    config.source.timeout = std::time::Duration::from_secs(120);
    let world = world(config).await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let error = appraise_core::deadline::within(
        Some(deadline),
        world.ingest.ingest_tick(&crate::support::tick("short")),
    )
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, appraise_core::runtime::StageError::Unavailable(_)),
        "{text}"
    );
    assert!(text.contains("deadline"), "{text}");
    assert!(
        text.contains("timed out"),
        "the clipped attempt's error: {text}"
    );
    assert_eq!(world.count("SELECT count(*) FROM ops.batches").await, 0);
    assert_eq!(
        world.count("SELECT count(*) FROM ops.schedule_ticks").await,
        0,
        "the firing is not marked handled, so its redelivery tries again"
    );

    // The next firing, with time to spare, stores the first batch.
    let batch = stored(world.fire("next").await);
    assert_eq!(batch.batch_number, 0);
}

#[tokio::test]
async fn records_with_missing_or_wrong_typed_fields_are_kept_and_flagged() {
    let body = serde_json::json!({
        "group_number": 9.0, "day": null, "batch_number": 1.0,
        "data": [
            {"brokered_by": 1.0, "status": "for_sale", "price": 100000.0, "bed": 3.0, "bath": 2.0,
             "acre_lot": 0.1, "street": 5.0, "city": "Ponce", "state": "Puerto Rico",
             "zip_code": 731.0, "house_size": 1200.0, "prev_sold_date": null},
            {"brokered_by": "x", "status": 3, "price": "cheap", "bed": 3.0, "bath": 2.0,
             "acre_lot": 0.1, "street": 5.0, "city": "Ponce", "state": "Puerto Rico",
             "zip_code": 731.0, "house_size": 1200.0, "prev_sold_date": "not a date"},
            {"status": "sold"},
            "not even an object"
        ]
    })
    .to_string();
    let router = axum::Router::new()
        .route(
            "/data",
            axum::routing::get(move || {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        )
        .route(
            "/restart_data_generation",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"ok": true})) }),
        );
    let source = serve(router).await;
    let world = world(ingest_config(&source, 100, 100)).await;
    let batch = stored(world.fire("bad-records").await);
    assert_eq!(batch.rows_received, 4);
    assert_eq!(batch.rows_stored, 4, "nothing is dropped");
    assert_eq!(batch.rows_flagged, 3);

    let client = world.db.get().await.unwrap();
    let rows = client
        .query(
            "SELECT row_index, problems, original IS NOT NULL, zip_code, city
             FROM raw.listings ORDER BY row_index",
            &[],
        )
        .await
        .unwrap();
    let problems: Vec<Vec<String>> = rows.iter().map(|r| r.get(1)).collect();
    assert!(problems[0].is_empty());
    assert_eq!(
        rows[0].get::<_, Option<String>>(3).as_deref(),
        Some("00731")
    );
    assert!(problems[1].iter().any(|p| p.starts_with("brokered_by:")));
    assert!(problems[1].iter().any(|p| p.starts_with("price:")));
    assert!(problems[1].iter().any(|p| p.starts_with("prev_sold_date:")));
    assert_eq!(
        rows[1].get::<_, Option<String>>(4).as_deref(),
        Some("Ponce"),
        "the rest is kept"
    );
    assert!(problems[2].iter().any(|p| p == "price: missing"));
    assert!(problems[3].iter().any(|p| p.starts_with("record:")));
    assert!(
        rows[1].get::<_, bool>(2),
        "the original record is kept when flagged"
    );
    assert!(!rows[0].get::<_, bool>(2));
}

#[tokio::test]
async fn a_batch_committed_but_not_announced_is_announced_by_the_next_firing() {
    let source = start_source(SCALE).await;
    let world = world(ingest_config(&source, 100, 100)).await;
    stored(world.fire("one").await);
    // Simulate a crash between commit and manifest: the manifest never got written.
    let manifest = world
        .s3
        .root()
        .join("appraise")
        .join(store::manifest_key(0));
    std::fs::remove_file(&manifest).unwrap();
    world
        .db
        .get()
        .await
        .unwrap()
        .execute("UPDATE ops.outbox SET written_at = NULL", &[])
        .await
        .unwrap();

    stored(world.fire("two").await);
    assert!(manifest.exists(), "batch 0's manifest was written again");
    assert_eq!(
        world
            .count("SELECT count(*) FROM ops.outbox WHERE written_at IS NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn a_database_restart_mid_firing_loses_nothing() {
    let source = start_source(SCALE).await;
    // The second fetch is slow; while it is in flight, every connection to the database is
    // killed, as a server restart does.
    let (proxy, calls) = faulty_proxy(
        source,
        |call| if call == 1 { Fault::Slow } else { Fault::Pass },
    )
    .await;
    let world = world(ingest_config(&proxy, 100, 100)).await;
    stored(world.fire("first").await);

    let killer = {
        let url = world.db_url.clone();
        let calls = calls.clone();
        tokio::spawn(async move {
            while calls.load(std::sync::atomic::Ordering::SeqCst) < 2 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap()
        })
    };
    let failed = world
        .ingest
        .ingest_tick(&crate::support::tick("second"))
        .await;
    assert!(killer.await.unwrap() > 0, "connections were killed");
    assert!(
        failed.is_err(),
        "the firing fails while the database is gone: {failed:?}"
    );

    // The platform redelivers the firing: batch 1, consumed from the cursor by the failed
    // attempt, is recovered; nothing is stored twice.
    let retried = stored(world.fire("second").await);
    assert_eq!(retried.batch_number, 1);
    assert!(!retried.skipped_batches.is_empty(), "{retried:?}");
    assert_eq!(world.drain("rest").await, vec![2, 3, 4, 5]);
    assert_eq!(world.batch_numbers().await, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(
        world
            .count(
                "SELECT count(*) FROM (SELECT DISTINCT batch_number, row_index FROM raw.listings) x"
            )
            .await,
        world.count("SELECT count(*) FROM raw.listings").await
    );
}
