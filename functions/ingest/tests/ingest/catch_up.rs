//! The schedule repairs lost events: every ingest firing announces again the work whose
//! announcement no stage acted on within `CATCH_UP_AFTER_SECS`. A test drops an event on
//! purpose (the embedded S3 server delivers it to a recording endpoint, and nobody passes it
//! on) and shows the next firing repairing it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use appraise_core::{
    catch_up::CatchUpConfig,
    db::locks,
    events::{self, ObjectCreated, Trigger},
};
use appraise_ingest::{FiringReport, IngestReport};
use appraise_process::{Process, ProcessReport, rules::CleaningRules};
use appraise_testkit::{
    course_api_double::{CourseApi, Plan},
    fixtures,
    s3_server::NotificationRule,
};
use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use serde_json::{Value, json};

const RAW_0: &str = "raw/batch-000000/manifest.json";
const RAW_1: &str = "raw/batch-000001/manifest.json";
const CLEAN_0: &str = "clean/batch-000000/manifest.json";
const CLEAN_1: &str = "clean/batch-000001/manifest.json";

/// A webhook target that records every object event delivered to it and passes none on: a
/// channel that loses what it is given unless the test hands it to a stage.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<ObjectCreated>>>,
}

impl Recorder {
    /// Starts the endpoint; returns it and its URL.
    async fn start() -> (Recorder, String) {
        let recorder = Recorder::default();
        let router = Router::new()
            .route("/", post(record))
            .with_state(recorder.clone());
        (recorder, crate::support::serve(router).await)
    }

    fn delivered(&self, key: &str) -> Vec<ObjectCreated> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event.key == key)
            .cloned()
            .collect()
    }

    /// Waits for the `n`-th delivery of `key` and returns it.
    async fn wait_for(&self, key: &str, n: usize) -> ObjectCreated {
        for _ in 0..200 {
            if let Some(event) = self.delivered(key).get(n - 1) {
                return event.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "delivery {n} of {key} never came (delivered: {:?})",
            self.delivered(key).len()
        );
    }
}

async fn record(State(recorder): State<Recorder>, headers: HeaderMap, body: Bytes) -> &'static str {
    for trigger in events::from_http(&headers, &body).expect("a MinIO event body") {
        if let Trigger::ObjectCreated(object) = trigger {
            recorder.events.lock().unwrap().push(object);
        }
    }
    "recorded"
}

fn to_recorder(prefix: &str, url: &str) -> NotificationRule {
    NotificationRule {
        prefix: prefix.to_owned(),
        suffix: ".json".to_owned(),
        target: Some(format!("{url}/")),
    }
}

async fn fire(ingest: &appraise_ingest::Ingest, id: &str) -> FiringReport {
    ingest.fire(&crate::support::tick(id)).await.unwrap()
}

#[tokio::test]
async fn a_lost_event_for_the_last_batch_is_announced_again_and_processed() {
    let api = CourseApi::start(Plan::from_sample(0, &[60, 60])).await;
    let world =
        crate::support::world(crate::support::ingest_config(&api.url(), 1_000, 1_000)).await;
    let after = Duration::from_secs(2);
    let ingest = world.ingest.clone().with_catch_up(CatchUpConfig { after });
    let process = Process::new(
        CleaningRules::default(),
        world.db.clone(),
        world.objects.clone(),
    );
    let (recorder, url) = Recorder::start().await;
    world.s3.set_rules(vec![
        to_recorder("raw/", &url),
        to_recorder("clean/", &url),
        to_recorder("candidates/", &url),
    ]);

    // Batch 0: its event arrives and process cleans it.
    let first = fire(&ingest, "f1").await;
    assert!(matches!(&first.ingest, IngestReport::Stored(b) if b.batch_number == 0));
    assert_eq!(first.reannounced, Vec::<String>::new());
    let event = recorder.wait_for(RAW_0, 1).await;
    assert!(matches!(
        process.process_object(&event).await.unwrap(),
        ProcessReport::Processed(_)
    ));

    // Batch 1, the last one: its event is delivered to the channel, which loses it.
    let second = fire(&ingest, "f2").await;
    assert!(matches!(&second.ingest, IngestReport::Stored(b) if b.batch_number == 1));
    recorder.wait_for(RAW_1, 1).await;
    let announced = world.objects.get(RAW_1).await.unwrap().unwrap();

    // Right away, the API exhausted: batch 1 was announced too recently to count as lost.
    let third = fire(&ingest, "f3").await;
    assert_eq!(third.ingest, IngestReport::Exhausted);
    assert!(!third.reannounced.contains(&RAW_1.to_owned()), "{third:?}");

    // Past CATCH_UP_AFTER_SECS, the next firing (here a redelivery of the last one, which
    // does nothing of its own) announces batch 1 again; also batch 0's clean manifest, since
    // no train ever acted on it. What the runtime returns says so.
    tokio::time::sleep(after + Duration::from_millis(500)).await;
    let report = ingest
        .handle(Trigger::Schedule(crate::support::tick("f3")))
        .await
        .unwrap();
    assert_eq!(report["outcome"], "duplicate", "{report}");
    assert_eq!(report["previous_outcome"], "exhausted", "{report}");
    assert_eq!(report["reannounced"], json!([RAW_1, CLEAN_0]), "{report}");

    // A new event for the same object, with the same bytes.
    let redelivered = recorder.wait_for(RAW_1, 2).await;
    assert_eq!(recorder.delivered(RAW_0).len(), 1, "batch 0 was acted on");
    assert_eq!(world.objects.get(RAW_1).await.unwrap().unwrap(), announced);
    let ProcessReport::Processed(batch) = process.process_object(&redelivered).await.unwrap()
    else {
        panic!("the re-announced batch is processed");
    };
    assert_eq!(batch.batch_number, 1);
    assert_eq!(batch.rows_in, 60);
    assert_eq!(
        world
            .count("SELECT count(*) FROM ops.clean_batches WHERE batch_number = 1")
            .await,
        1
    );

    // Once acted on, batch 1 is announced no more.
    tokio::time::sleep(after + Duration::from_millis(500)).await;
    let fourth = fire(&ingest, "f4").await;
    assert_eq!(fourth.ingest, IngestReport::Exhausted);
    assert_eq!(
        fourth.reannounced,
        [CLEAN_0, CLEAN_1],
        "only train's work is left"
    );
    assert_eq!(recorder.delivered(RAW_1).len(), 2);
}

#[tokio::test]
async fn each_stage_s_unanswered_work_is_announced_again_unless_the_stage_is_at_it() {
    let api = CourseApi::start(Plan::from_sample(0, &[40, 40, 40, 40])).await;
    let world =
        crate::support::world(crate::support::ingest_config(&api.url(), 1_000, 1_000)).await;
    // The default: 60 s. The test ages the announcements instead of waiting.
    let ingest = world.ingest.clone();
    let process = Process::new(
        CleaningRules::default(),
        world.db.clone(),
        world.objects.clone(),
    );
    let client = world.db.get().await.unwrap();
    let age_every_announcement = async || {
        client
            .execute(
                "UPDATE ops.outbox SET written_at = written_at - interval '1 hour'
                 WHERE written_at IS NOT NULL",
                &[],
            )
            .await
            .unwrap();
    };
    // Batches 0, 1 and 2 are processed; batch 3's event is lost.
    for id in ["s0", "s1", "s2", "s3"] {
        let stored = fire(&ingest, id).await;
        let IngestReport::Stored(batch) = stored.ingest else {
            panic!("a batch is stored: {stored:?}");
        };
        if batch.batch_number < 3 {
            process
                .process_object(&fixtures::object_created(&batch.manifest_key))
                .await
                .unwrap();
        }
    }
    // Train decided batches 0 and 1: batch 0 trained (training 0, whose candidates object
    // was queued and written), batch 1 skipped. Its event for batch 2 was lost.
    let candidates = appraise_core::keys::candidates(0);
    client
        .batch_execute(&format!(
            "INSERT INTO ops.trainings (id, batch_number, decision, reason, new_rows,
                                        first_batch, last_batch)
             VALUES (0, 0, 'train', 'no production model', 40, 0, 0),
                    (1, 1, 'skip', 'too few rows', 40, 1, 1);
             INSERT INTO ops.outbox (key, body, written_at)
             VALUES ('{candidates}', '{{\"training_id\": 0}}', now());"
        ))
        .await
        .unwrap();
    age_every_announcement().await;

    // An hour later, but each stage is at work on it right now (holds its lock): a long
    // training is not announced again while it runs.
    let holder = world.db.get().await.unwrap();
    holder
        .execute(
            "SELECT pg_advisory_lock($1, 3), pg_advisory_lock($2), pg_advisory_lock($3)",
            &[&locks::PROCESS_CLASS, &locks::TRAIN, &locks::PROMOTE],
        )
        .await
        .unwrap();
    let report = fire(&ingest, "s4").await;
    assert_eq!(report.ingest, IngestReport::Exhausted);
    assert_eq!(report.reannounced, Vec::<String>::new());

    // The stages let go: raw batch 3, clean batch 2 and training 0's candidates are announced
    // again, and nothing else (the other batches were acted on, training 1 trained nothing).
    holder
        .execute("SELECT pg_advisory_unlock_all()", &[])
        .await
        .unwrap();
    let report = fire(&ingest, "s5").await;
    assert_eq!(
        report.reannounced,
        [
            "raw/batch-000003/manifest.json",
            "clean/batch-000002/manifest.json",
            candidates.as_str()
        ]
    );
    let written = world.objects.get(&candidates).await.unwrap();
    assert_eq!(
        written.as_deref(),
        Some(&b"{\"training_id\": 0}"[..]),
        "the queued bytes are written again"
    );

    // Written again just now: not again at once.
    assert_eq!(fire(&ingest, "s6").await.reannounced, Vec::<String>::new());

    // Promote decides training 0: it is announced no more.
    client
        .batch_execute(
            "INSERT INTO ops.model_versions (version, training_id, algorithm, params, validation,
                                             test, fit_seconds, artifact_key, code_version)
             VALUES ('t000000-ridge', 0, 'ridge', '{}', '{}', '{}', 0.1, 'models/x', 'test');
             INSERT INTO ops.promotions (training_id, candidate_version, decision, reason,
                                         candidate_metrics, evaluation_rows)
             VALUES (0, 't000000-ridge', 'promoted', 'no production model', '{}', 10);",
        )
        .await
        .unwrap();
    age_every_announcement().await;
    assert_eq!(
        fire(&ingest, "s7").await.reannounced,
        [
            "raw/batch-000003/manifest.json",
            "clean/batch-000002/manifest.json"
        ]
    );
}

#[test]
fn firing_reports_read_with_and_without_reannounced() {
    let older = json!({"outcome": "exhausted"});
    let report: FiringReport = serde_json::from_value(older.clone()).unwrap();
    assert_eq!(report.ingest, IngestReport::Exhausted);
    assert!(report.reannounced.is_empty());
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        older,
        "nothing re-announced: the report is what it always was"
    );

    let newer = json!({"outcome": "duplicate", "trigger_id": "x", "previous_outcome": "stored",
                       "batch_number": 0, "reannounced": [RAW_1]});
    let report: FiringReport = serde_json::from_value(newer.clone()).unwrap();
    assert_eq!(report.reannounced, [RAW_1]);
    assert_eq!(
        report.ingest,
        IngestReport::Duplicate {
            trigger_id: "x".into(),
            previous_outcome: "stored".into(),
            batch_number: Some(0)
        }
    );
    let written: Value = serde_json::to_value(&report).unwrap();
    assert_eq!(written, newer, "flat, as the harness reads it");
    // The ingest report alone still reads a firing's report (the field is ignored).
    let ingest: IngestReport = serde_json::from_value(written).unwrap();
    assert_eq!(ingest, report.ingest);
}
