//! The process stage against a real PostgreSQL and S3, fed by the real ingest stage from a
//! batch API (the course-API double) that serves hand-written records: one kept listing and one for each rule.

use appraise_core::events::{ObjectCreated, ScheduleTick};
use appraise_ingest::{
    Ingest,
    config::{IngestConfig, SamplingConfig, SourceConfig},
};
use appraise_process::{Process, ProcessReport, rules::CleaningRules};
use appraise_testkit::{
    course_api_double::{CourseApi, Plan},
    fixtures,
};
use serde_json::{Value, json};

fn good() -> Value {
    json!({"brokered_by": 1.0, "status": "for_sale", "price": 300000.0, "bed": 3.0, "bath": 2.0,
           "acre_lot": 0.2, "street": 9.0, "city": "Austin", "state": "Texas",
           "zip_code": 78701.0, "house_size": 1800.0, "prev_sold_date": "2015-06-01"})
}

fn with(changes: Value) -> Value {
    let mut record = good();
    for (field, value) in changes.as_object().unwrap() {
        record[field] = value.clone();
    }
    record
}

/// Batch 1: one record per rule, plus kept ones. Batch 2: a repeat of a kept listing of batch 1
/// and one new listing.
fn batches() -> Vec<Vec<Value>> {
    let batch1 = vec![
        good(),
        with(json!({"price": 310000.0})),
        with(json!({"price": "cheap"})),               // malformed
        with(json!({"price": null})),                  // missing_price
        with(json!({"bed": null})),                    // missing_bed
        with(json!({"bath": null})),                   // missing_bath
        with(json!({"acre_lot": null})),               // missing_acre_lot
        with(json!({"house_size": null})),             // missing_house_size
        with(json!({"status": null})),                 // missing_status
        with(json!({"state": null})),                  // missing_state
        with(json!({"zip_code": null})),               // missing_zip_code
        with(json!({"status": "rented"})),             // unknown_status
        with(json!({"acre_lot": -0.5})),               // impossible_size
        with(json!({"bed": 86.0})),                    // impossible_rooms
        with(json!({"prev_sold_date": "2999-01-01"})), // future_sale_date
        with(json!({"price": 25000.0})),               // price_out_of_range
        with(json!({"house_size": 1450112.0})),        // house_size_out_of_range
        good(),                                        // duplicate (within the batch)
    ];
    let batch2 = vec![
        with(json!({"price": 310000.0})),
        with(json!({"city": "Dallas"})),
    ];
    vec![batch1, batch2]
}

/// The course-API double serving [`batches`] in order, numbered from 1, then the end-of-data
/// answer.
async fn scripted_source() -> String {
    CourseApi::start(Plan {
        first_batch_number: 1,
        float_batch_numbers: true,
        batches: batches(),
    })
    .await
    .url()
}

struct World {
    db: appraise_core::db::DbPool,
    objects: appraise_core::objects::ObjectStore,
    _s3: appraise_testkit::s3_server::S3Server,
    ingest: Ingest,
    process: Process,
}

async fn world() -> World {
    let (_, db) = fixtures::fresh_database().await.unwrap();
    let (s3, objects) = fixtures::s3_server(vec![]).await.unwrap();
    let source = scripted_source().await;
    let config = IngestConfig {
        source: SourceConfig {
            base_url: source,
            extra_roots: Vec::new(),
            group_number: 9,
            day: None,
            timeout: std::time::Duration::from_secs(5),
            retries: 1,
            backoff: std::time::Duration::from_millis(10),
        },
        sampling: SamplingConfig {
            first_batch: 1_000,
            later_batches: 1_000,
            seed: 1,
        },
    };
    World {
        ingest: Ingest::new(config, db.clone(), objects.clone()).unwrap(),
        process: Process::new(CleaningRules::default(), db.clone(), objects.clone()),
        db,
        objects,
        _s3: s3,
    }
}

impl World {
    async fn ingest_next(&self, id: &str) {
        let tick = ScheduleTick {
            id: Some(id.into()),
            time: None,
            payload: Value::Null,
        };
        self.ingest.ingest_tick(&tick).await.unwrap();
    }

    async fn event(&self, key: &str) -> ProcessReport {
        let object = ObjectCreated {
            bucket: fixtures::BUCKET.into(),
            key: key.into(),
            size: None,
            etag: None,
            event_name: "ObjectCreated:Put".into(),
        };
        self.process.process_object(&object).await.unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        fixtures::query_value(&self.db, sql).await
    }
}

#[tokio::test]
async fn every_rule_drops_and_counts_its_rows() {
    let world = world().await;
    world.ingest_next("t1").await;
    let ProcessReport::Processed(report) = world.event("raw/batch-000001/manifest.json").await
    else {
        panic!("expected the batch to be processed");
    };
    assert_eq!(report.rows_in, 18);
    assert_eq!(report.rows_kept, 2);
    for (rule, count) in &report.dropped {
        assert_eq!(count, &json!(1), "rule {rule} drops exactly its one row");
    }
    assert_eq!(report.dropped.len(), 16);
    assert_eq!(world.count("SELECT count(*) FROM clean.listings").await, 2);

    let manifest = world
        .objects
        .get("clean/batch-000001/manifest.json")
        .await
        .unwrap()
        .expect("the clean manifest is written");
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(manifest["rows_kept"], 2);
    assert_eq!(manifest["dropped"]["price_out_of_range"], 1);

    let stats: Value = world
        .db
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT stats FROM ops.clean_batches WHERE batch_number = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stats["rows"], 2);
    assert_eq!(stats["price"]["p10"], 300000.0);
}

#[tokio::test]
async fn an_exact_duplicate_of_an_earlier_batch_is_dropped() {
    let world = world().await;
    world.ingest_next("t1").await;
    world.ingest_next("t2").await;
    world.event("raw/batch-000001/manifest.json").await;
    let ProcessReport::Processed(report) = world.event("raw/batch-000002/manifest.json").await
    else {
        panic!("expected batch 2 to be processed");
    };
    assert_eq!(report.rows_kept, 1);
    assert_eq!(report.dropped["duplicate"], 1);
    assert_eq!(world.count("SELECT count(*) FROM clean.listings").await, 3);
}

#[tokio::test]
async fn duplicate_and_concurrent_events_process_a_batch_once() {
    let world = world().await;
    world.ingest_next("t1").await;
    let key = "raw/batch-000001/manifest.json";
    let (a, b) = tokio::join!(world.event(key), world.event(key));
    let processed = [&a, &b]
        .iter()
        .filter(|r| matches!(r, ProcessReport::Processed(_)))
        .count();
    assert_eq!(processed, 1, "{a:?} / {b:?}");
    assert_eq!(
        world.event(key).await,
        ProcessReport::Duplicate {
            batch_number: 1,
            caught_up: vec![]
        }
    );
    assert_eq!(world.count("SELECT count(*) FROM clean.listings").await, 2);
    assert_eq!(
        world.count("SELECT count(*) FROM ops.clean_batches").await,
        1
    );
}

#[tokio::test]
async fn other_keys_are_ignored_and_unknown_batches_rejected() {
    let world = world().await;
    assert!(matches!(
        world.event("raw/batch-000001/response.json.gz").await,
        ProcessReport::Ignored { .. }
    ));
    let object = ObjectCreated {
        bucket: fixtures::BUCKET.into(),
        key: "raw/batch-000042/manifest.json".into(),
        size: None,
        etag: None,
        event_name: "ObjectCreated:Put".into(),
    };
    let error = world.process.process_object(&object).await.unwrap_err();
    assert!(error.to_string().contains("batch 42"), "{error}");
}

#[tokio::test]
async fn the_runs_record_a_done_batch_and_a_failed_one() {
    let world = world().await;
    let run = |batch: i32| {
        let db = world.db.clone();
        async move {
            let row = db
                .get()
                .await
                .unwrap()
                .query_one(
                    "SELECT state, attempts, error FROM ops.stage_runs
                     WHERE batch_number = $1 AND stage = 'process'",
                    &[&batch],
                )
                .await
                .unwrap();
            (
                row.get::<_, String>(0),
                row.get::<_, i32>(1),
                row.get::<_, Option<String>>(2),
            )
        }
    };
    world.ingest_next("t1").await;
    world.event("raw/batch-000001/manifest.json").await;
    let (state, attempts, error) = run(1).await;
    assert_eq!((state.as_str(), attempts, error), ("done", 1, None));

    // Batch 2 cannot be stored (its table is gone for a while): the attempt is rolled back and
    // recorded as failed, with the reason.
    world.ingest_next("t2").await;
    let execute = |sql: &'static str| {
        let db = world.db.clone();
        async move { db.get().await.unwrap().batch_execute(sql).await.unwrap() }
    };
    execute("ALTER TABLE clean.listings RENAME TO listings_elsewhere").await;
    let object = fixtures::object_created("raw/batch-000002/manifest.json");
    let failed = world.process.process_object(&object).await;
    assert!(failed.is_err(), "{failed:?}");
    let (state, attempts, error) = run(2).await;
    assert_eq!((state.as_str(), attempts), ("failed", 1));
    let error = error.unwrap();
    assert!(error.contains("listings"), "{error}");

    // Back again: the retry is done.
    execute("ALTER TABLE clean.listings_elsewhere RENAME TO listings").await;
    world.event("raw/batch-000002/manifest.json").await;
    let (state, attempts, _) = run(2).await;
    assert_eq!((state.as_str(), attempts), ("done", 2));
}
