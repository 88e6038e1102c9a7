//! Lost and early events: process cleans the batches whose events were lost before its own,
//! in order, and answers 503 (retry) rather than a final 400 for a batch announced moments
//! ago whose rows it cannot see yet.

use std::time::Duration;

use appraise_core::{
    db::DbPool,
    events::{ObjectCreated, ScheduleTick},
    objects::ObjectStore,
    runtime::StageError,
};
use appraise_ingest::{
    Ingest,
    config::{IngestConfig, SamplingConfig, SourceConfig},
};
use appraise_process::{Process, ProcessReport, config::ProcessConfig, rules::CleaningRules};
use appraise_testkit::{
    course_api_double::{CourseApi, Plan, sample_records},
    fixtures,
    s3_server::S3Server,
};
use serde_json::Value;

/// Whether the default rules keep this record (so a copy of it in a later batch is dropped as
/// a duplicate, and which batch keeps it shows the order batches were cleaned in).
fn keepable(record: &Value) -> bool {
    let number = |field: &str| record[field].as_f64();
    let within =
        |field: &str, min: f64, max: f64| number(field).is_some_and(|v| min <= v && v <= max);
    within("price", 50_000.0, 2_000_000.0)
        && within("house_size", 500.0, 10_000.0)
        && within("bed", 0.0, 20.0)
        && within("bath", 0.0, 20.0)
        && number("bed").is_some_and(|v| v.fract() == 0.0)
        && number("bath").is_some_and(|v| v.fract() == 0.0)
        && within("acre_lot", 0.0, f64::MAX)
        && !record["zip_code"].is_null()
        && !record["state"].is_null()
        && ["for_sale", "sold", "ready_to_build"].contains(&record["status"].as_str().unwrap_or(""))
        && record["prev_sold_date"]
            .as_str()
            .is_none_or(|date| date < "2025-01-01")
}

/// Three batches of the real sample, numbered from 0; batch 1 repeats five listings batch 0
/// keeps, batch 2 repeats five of batch 1's and three of batch 0's. Cleaned out of order,
/// batch 2 would keep listings that batch 1 then drops.
fn plan() -> Plan {
    let records = sample_records();
    let (keep, rest): (Vec<Value>, Vec<Value>) = records.into_iter().partition(keepable);
    let batch0: Vec<Value> = keep[0..30].iter().chain(&rest[0..10]).cloned().collect();
    let batch1: Vec<Value> = keep[30..60]
        .iter()
        .chain(&rest[10..20])
        .chain(&keep[0..5])
        .cloned()
        .collect();
    let batch2: Vec<Value> = keep[60..90]
        .iter()
        .chain(&rest[20..30])
        .chain(&keep[30..35])
        .chain(&keep[5..8])
        .cloned()
        .collect();
    Plan {
        first_batch_number: 0,
        float_batch_numbers: true,
        batches: vec![batch0, batch1, batch2],
    }
}

struct World {
    db: DbPool,
    objects: ObjectStore,
    _s3: S3Server,
    _api: CourseApi,
    ingest: Ingest,
}

async fn world() -> World {
    let (_, db) = fixtures::fresh_database().await.unwrap();
    let (s3, objects) = fixtures::s3_server(vec![]).await.unwrap();
    let api = CourseApi::start(plan()).await;
    let config = IngestConfig {
        source: SourceConfig {
            base_url: api.url(),
            extra_roots: Vec::new(),
            group_number: 9,
            day: None,
            timeout: Duration::from_secs(5),
            retries: 1,
            backoff: Duration::from_millis(10),
        },
        sampling: SamplingConfig {
            first_batch: 1_000,
            later_batches: 1_000,
            seed: 1,
        },
    };
    World {
        ingest: Ingest::new(config, db.clone(), objects.clone()).unwrap(),
        db,
        objects,
        _s3: s3,
        _api: api,
    }
}

impl World {
    fn process(&self, pending_window: Duration) -> Process {
        Process::from_config(
            ProcessConfig {
                rules: CleaningRules::default(),
                pending_window,
            },
            self.db.clone(),
            self.objects.clone(),
        )
    }

    async fn ingest_next(&self, id: &str) {
        let tick = ScheduleTick {
            id: Some(id.into()),
            time: None,
            payload: Value::Null,
        };
        self.ingest.ingest_tick(&tick).await.unwrap();
    }

    /// One JSON document per row of `sql`'s single column.
    async fn rows(&self, sql: &str) -> Vec<Value> {
        self.db
            .get()
            .await
            .unwrap()
            .query(sql, &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// What process leaves behind: clean listings, cleaning reports (but when), and the
    /// clean manifests' bytes.
    async fn clean_state(&self) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
        let listings = self
            .rows("SELECT to_jsonb(l) FROM clean.listings l ORDER BY batch_number, row_index")
            .await;
        let reports = self
            .rows(
                "SELECT to_jsonb(c) - 'processed_at' FROM ops.clean_batches c
                 ORDER BY batch_number",
            )
            .await;
        let mut manifests = Vec::new();
        for key in self.objects.list("clean/").await.unwrap() {
            let body = self.objects.get(&key).await.unwrap().unwrap();
            manifests.push(serde_json::json!({
                "key": key,
                "body": serde_json::from_slice::<Value>(&body).unwrap(),
            }));
        }
        (listings, reports, manifests)
    }
}

fn event(key: &str) -> ObjectCreated {
    fixtures::object_created(key)
}

#[tokio::test]
async fn batches_whose_events_were_lost_are_cleaned_first_in_order() {
    // Every event delivered, in order: the reference.
    let reference = world().await;
    let process = reference.process(Duration::from_secs(600));
    for n in 0..3 {
        reference.ingest_next(&format!("t{n}")).await;
        let key = format!("raw/batch-{n:06}/manifest.json");
        let ProcessReport::Processed(batch) = process.process_object(&event(&key)).await.unwrap()
        else {
            panic!("batch {n} is processed");
        };
        assert_eq!(batch.caught_up, Vec::<i32>::new());
        if n > 0 {
            assert!(
                batch.dropped["duplicate"].as_u64().unwrap() >= 5,
                "batch {n} repeats listings of earlier batches: {:?}",
                batch.dropped
            );
        }
    }

    // The events of batches 0 and 1 lost: only batch 2's arrives.
    let lossy = world().await;
    for n in 0..3 {
        lossy.ingest_next(&format!("t{n}")).await;
    }
    let process = lossy.process(Duration::from_secs(600));
    let ProcessReport::Processed(batch) = process
        .process_object(&event("raw/batch-000002/manifest.json"))
        .await
        .unwrap()
    else {
        panic!("batch 2 is processed");
    };
    assert_eq!(batch.batch_number, 2);
    assert_eq!(batch.caught_up, vec![0, 1]);
    let report = serde_json::to_value(ProcessReport::Processed(batch)).unwrap();
    assert_eq!(report["outcome"], "processed");
    assert_eq!(report["caught_up"], serde_json::json!([0, 1]));

    // In order: each batch's clean manifest was queued after the one before.
    let order = lossy
        .rows(
            "SELECT to_jsonb(key) FROM ops.outbox WHERE key LIKE 'clean/%'
             ORDER BY queued_at",
        )
        .await;
    assert_eq!(
        order,
        [0, 1, 2]
            .map(|n| Value::from(format!("clean/batch-{n:06}/manifest.json")))
            .to_vec()
    );
    let reference_state = reference.clean_state().await;
    assert!(
        reference_state.0.len() >= 80,
        "{} kept listings",
        reference_state.0.len()
    );
    assert_eq!(lossy.clean_state().await, reference_state);

    // The lost events arriving late change nothing.
    for n in [0, 1] {
        let key = format!("raw/batch-{n:06}/manifest.json");
        assert_eq!(
            process.process_object(&event(&key)).await.unwrap(),
            ProcessReport::Duplicate {
                batch_number: n,
                caught_up: vec![]
            }
        );
    }
    assert_eq!(lossy.clean_state().await, reference_state);
}

#[tokio::test]
async fn an_older_report_without_caught_up_still_reads() {
    let old = serde_json::json!({
        "outcome": "processed", "batch_number": 3, "rows_in": 10, "rows_kept": 9,
        "dropped": {"duplicate": 1}, "manifest_key": "clean/batch-000003/manifest.json"
    });
    let ProcessReport::Processed(batch) = serde_json::from_value(old).unwrap() else {
        panic!("a processed report");
    };
    assert!(batch.caught_up.is_empty());
    let old = serde_json::json!({"outcome": "duplicate", "batch_number": 0});
    assert_eq!(
        serde_json::from_value::<ProcessReport>(old).unwrap(),
        ProcessReport::Duplicate {
            batch_number: 0,
            caught_up: vec![]
        }
    );
}

#[tokio::test]
async fn a_batch_announced_moments_ago_but_not_visible_is_retried_not_rejected() {
    let world = world().await;
    let key = "raw/batch-000000/manifest.json";
    // The manifest is in the bucket, the batch's rows are not visible (yet): a commit seen
    // late, or a batch being ingested again.
    world
        .objects
        .put(key, bytes::Bytes::from_static(b"{}"), "application/json")
        .await
        .unwrap();

    let patient = world.process(Duration::from_secs(3));
    match patient.process_object(&event(key)).await {
        Err(StageError::Unavailable(reason)) => {
            assert!(reason.contains("batch 0 is not visible yet"), "{reason}");
            assert!(reason.contains("STAGE_PENDING_WINDOW_SECS"), "{reason}");
        }
        other => panic!("expected 503 (retry), got {other:?}"),
    }
    // With no window the same event is final.
    match world
        .process(Duration::ZERO)
        .process_object(&event(key))
        .await
    {
        Err(StageError::Rejected(reason)) => {
            assert!(reason.contains("batch 0 is not in ops.batches"), "{reason}");
        }
        other => panic!("expected a final 400, got {other:?}"),
    }
    // No manifest at all: final, whatever the window.
    match patient
        .process_object(&event("raw/batch-000007/manifest.json"))
        .await
    {
        Err(StageError::Rejected(reason)) => {
            assert!(reason.contains("batch 7"), "{reason}");
            assert!(reason.contains("there is no object"), "{reason}");
        }
        other => panic!("expected a final 400, got {other:?}"),
    }

    // The batch becomes visible (ingest stores it and writes its manifest again): the
    // retried event now cleans it.
    world.ingest_next("t0").await;
    let ProcessReport::Processed(batch) = patient.process_object(&event(key)).await.unwrap() else {
        panic!("the retried event cleans the batch");
    };
    assert_eq!(batch.batch_number, 0);
    assert!(batch.rows_kept > 0);
}

#[tokio::test]
async fn past_the_window_an_event_for_an_unknown_batch_is_rejected() {
    let world = world().await;
    let key = "raw/batch-000004/manifest.json";
    world
        .objects
        .put(key, bytes::Bytes::from_static(b"{}"), "application/json")
        .await
        .unwrap();
    let process = world.process(Duration::from_secs(2));
    assert!(matches!(
        process.process_object(&event(key)).await,
        Err(StageError::Unavailable(_))
    ));
    // Last-Modified has whole seconds: 3.5 s later the object is at least 2 s old.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    match process.process_object(&event(key)).await {
        Err(StageError::Rejected(reason)) => {
            assert!(reason.contains("batch 4 is not in ops.batches"), "{reason}");
            assert!(
                reason.contains("longer ago than the 2s STAGE_PENDING_WINDOW_SECS"),
                "{reason}"
            );
        }
        other => panic!("expected a final 400 past the window, got {other:?}"),
    }
}
