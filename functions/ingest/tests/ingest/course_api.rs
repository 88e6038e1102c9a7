//! Ingest against an independent double of the course's batch API
//! (`appraise_testkit::course_api_double`, written from the contract, not from our `source`):
//! whatever the sequence's first number, and wherever an answer is lost, every batch the API
//! serves ends up in `raw.listings` exactly as it was served.

use crate::support::{World, ingest_config, tick, world};
use appraise_core::runtime::StageError;
use appraise_ingest::IngestReport;
use appraise_testkit::course_api_double::{CourseApi, Fault, Plan};
use serde_json::Value;

/// Five batches of the real sample, of uneven sizes.
const SIZES: [usize; 5] = [40, 25, 60, 5, 30];

/// Ingest pointed at `api`, keeping every record (no sampling), with `retries` further
/// attempts per call.
async fn ingest_of(api: &CourseApi, retries: u32) -> World {
    let mut config = ingest_config(&api.url(), 10_000, 10_000);
    config.source.retries = retries;
    world(config).await
}

/// What a run of firings gave: the batches stored, in order, and each failed firing's error.
struct Drained {
    stored: Vec<i32>,
    errors: Vec<String>,
}

/// Fires until the API is exhausted, carrying on after failed firings as a platform's retries
/// do (each firing a new id, so none is taken for a redelivery).
async fn drain(world: &World, name: &str) -> Drained {
    let mut drained = Drained {
        stored: Vec::new(),
        errors: Vec::new(),
    };
    for n in 0..60 {
        match world
            .ingest
            .ingest_tick(&tick(&format!("{name}-{n}")))
            .await
        {
            Ok(IngestReport::Stored(batch)) => drained.stored.push(batch.batch_number),
            Ok(IngestReport::Exhausted) => return drained,
            Ok(other) => panic!("{name}: unexpected {other:?}"),
            Err(StageError::Unavailable(error)) => drained.errors.push(error),
            Err(error) => panic!("{name}: a firing was rejected: {error}"),
        }
    }
    panic!("{name}: the API never ran out");
}

/// Asserts, batch by batch, that `raw.listings` holds exactly what the API served.
async fn assert_stored_as_served(world: &World, api: &CourseApi, scenario: &str) {
    let client = world.db.get().await.unwrap();
    let served = api.batches();
    let numbers: Vec<i64> = served.iter().map(|(number, _)| *number).collect();
    let stored: Vec<i64> = world
        .batch_numbers()
        .await
        .into_iter()
        .map(i64::from)
        .collect();
    assert_eq!(stored, numbers, "{scenario}: the batches stored");
    for (number, records) in &served {
        let batch = *number as i32;
        let received: i32 = client
            .query_one(
                "SELECT rows_received FROM ops.batches WHERE batch_number = $1",
                &[&batch],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            received as usize,
            records.len(),
            "{scenario}: batch {number} received"
        );
        let rows = client
            .query(
                "SELECT row_index, brokered_by, status, price, bed, bath, acre_lot, street, city,
                        state, zip_code, house_size, prev_sold_date::text
                 FROM raw.listings WHERE batch_number = $1 ORDER BY row_index",
                &[&batch],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), records.len(), "{scenario}: batch {number} rows");
        for (position, (row, record)) in rows.iter().zip(records).enumerate() {
            let index: i32 = row.get(0);
            assert_eq!(index as usize, position, "{scenario}: batch {number}");
            let number_of = |field: &str| record[field].as_f64();
            let text_of = |field: &str| record[field].as_str().map(str::to_owned);
            let expected = (
                number_of("brokered_by").map(|v| v as i64),
                text_of("status"),
                number_of("price"),
                number_of("bed"),
                number_of("bath"),
                number_of("acre_lot"),
                number_of("street").map(|v| v as i64),
                text_of("city"),
                text_of("state"),
                number_of("zip_code").map(|v| format!("{:05}", v as i64)),
                number_of("house_size"),
                text_of("prev_sold_date"),
            );
            let actual = (
                row.get::<_, Option<i64>>(1),
                row.get::<_, Option<String>>(2),
                row.get::<_, Option<f64>>(3),
                row.get::<_, Option<f64>>(4),
                row.get::<_, Option<f64>>(5),
                row.get::<_, Option<f64>>(6),
                row.get::<_, Option<i64>>(7),
                row.get::<_, Option<String>>(8),
                row.get::<_, Option<String>>(9),
                row.get::<_, Option<String>>(10),
                row.get::<_, Option<f64>>(11),
                row.get::<_, Option<String>>(12),
            );
            assert_eq!(
                actual, expected,
                "{scenario}: batch {number} row {index} (served {record})"
            );
        }
    }
}

#[tokio::test]
async fn every_batch_is_stored_whatever_number_the_sequence_starts_at() {
    for first in [0, 1, 7] {
        for float_batch_numbers in [false, true] {
            let scenario = format!("first batch {first}, floats {float_batch_numbers}");
            let api = CourseApi::start(Plan {
                float_batch_numbers,
                ..Plan::from_sample(first, &SIZES)
            })
            .await;
            let world = ingest_of(&api, 2).await;
            let drained = drain(&world, "base").await;
            let expected: Vec<i32> = (first as i32..first as i32 + SIZES.len() as i32).collect();
            assert_eq!(drained.stored, expected, "{scenario}");
            assert!(
                drained.errors.is_empty(),
                "{scenario}: {:?}",
                drained.errors
            );
            assert_stored_as_served(&world, &api, &scenario).await;
        }
    }
}

#[tokio::test]
async fn a_cursor_moved_before_the_first_firing_loses_nothing() {
    let api = CourseApi::start(Plan::from_sample(0, &SIZES)).await;
    // Someone (a notebook, a previous deployment) already took two batches.
    for _ in 0..2 {
        let answer: Value = reqwest::get(format!("{}/data?group_number=9", api.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer["batch_number"].is_number());
    }
    let world = ingest_of(&api, 2).await;
    assert_eq!(drain(&world, "moved").await.stored, vec![0, 1, 2, 3, 4]);
    assert_stored_as_served(&world, &api, "cursor moved before ingest").await;
}

#[tokio::test]
async fn answers_lost_at_the_first_a_middle_or_the_last_batch_are_fetched_again() {
    let last = SIZES.len() - 1;
    for fault in [
        Fault::Error500BeforeCursorMoves,
        Fault::Error500AfterCursorMoves,
        Fault::BodyCutShort,
    ] {
        for position in [0, 2, last] {
            // With retries the loss is met within one firing; without, across firings.
            for retries in [3, 0] {
                let scenario = format!("{fault:?} at batch index {position}, {retries} retries");
                let api = CourseApi::start(Plan::from_sample(0, &SIZES)).await;
                api.plant(position, fault);
                let world = ingest_of(&api, retries).await;
                let drained = drain(&world, "lossy").await;
                assert_eq!(drained.stored, vec![0, 1, 2, 3, 4], "{scenario}");
                assert_eq!(
                    drained.errors.len(),
                    usize::from(retries == 0),
                    "{scenario}: {:?}",
                    drained.errors
                );
                assert_stored_as_served(&world, &api, &scenario).await;
            }
        }
    }
}

#[tokio::test]
async fn the_same_answer_lost_twice_is_still_recovered() {
    // The last batch is lost, and lost again on the first rewound pass.
    let api = CourseApi::start(Plan::from_sample(1, &SIZES)).await;
    let last = SIZES.len() - 1;
    api.plant(last, Fault::Error500AfterCursorMoves);
    api.plant(last, Fault::BodyCutShort);
    let world = ingest_of(&api, 3).await;
    let drained = drain(&world, "twice").await;
    assert_eq!(drained.stored, vec![1, 2, 3, 4, 5]);
    assert_stored_as_served(&world, &api, "last batch lost twice").await;
}

#[tokio::test]
async fn a_non_integer_batch_number_is_a_clear_error_and_loses_nothing() {
    let api = CourseApi::start(Plan::from_sample(0, &SIZES)).await;
    api.plant(2, Fault::NonIntegerBatchNumber);
    let world = ingest_of(&api, 3).await;
    let drained = drain(&world, "fraction").await;
    assert_eq!(drained.errors.len(), 1, "{:?}", drained.errors);
    let error = &drained.errors[0];
    assert!(
        error.contains("batch_number") && error.contains("2.5"),
        "the error names the field and the value: {error}"
    );
    assert_eq!(drained.stored, vec![0, 1, 2, 3, 4]);
    assert_stored_as_served(&world, &api, "non-integer batch_number").await;
}

#[tokio::test]
async fn a_restart_that_answers_5xx_delays_but_loses_nothing() {
    // At the first firing, which rewinds to learn where the sequence starts.
    let api = CourseApi::start(Plan::from_sample(0, &SIZES)).await;
    api.fail_restarts(2);
    let world = ingest_of(&api, 1).await;
    let first = world.ingest.ingest_tick(&tick("first")).await.unwrap_err();
    let text = first.to_string();
    assert!(
        text.contains("restart_data_generation") && text.contains("503"),
        "{text}"
    );
    assert_eq!(world.count("SELECT count(*) FROM ops.batches").await, 0);
    assert_eq!(drain(&world, "after").await.stored, vec![0, 1, 2, 3, 4]);
    assert_stored_as_served(&world, &api, "restart failing at the start").await;

    // While recovering a batch lost in flight, with no retries: the firing that needs the
    // rewind fails, the next one rewinds.
    let api = CourseApi::start(Plan::from_sample(0, &SIZES)).await;
    let world = ingest_of(&api, 0).await;
    for id in ["a", "b"] {
        world.fire(id).await;
    }
    api.plant(2, Fault::Error500AfterCursorMoves);
    let (_, restarts_before) = api.calls();
    assert!(world.ingest.ingest_tick(&tick("lost")).await.is_err());
    api.fail_restarts(1);
    let refused = world
        .ingest
        .ingest_tick(&tick("refused"))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("restart_data_generation"),
        "{refused}"
    );
    let drained = drain(&world, "rest").await;
    assert_eq!(drained.stored, vec![2, 3, 4]);
    assert!(api.calls().1 >= restarts_before + 2);
    assert_stored_as_served(&world, &api, "restart failing during recovery").await;

    // Both failed firings were after batch 2 and are counted in its run (ops.stage_runs), which
    // the firing that stored it made done, keeping the last error for the operator.
    let client = world.db.get().await.unwrap();
    let run = client
        .query_one(
            "SELECT state, attempts, error FROM ops.stage_runs
             WHERE batch_number = 2 AND stage = 'ingest'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(run.get::<_, &str>(0), "done");
    assert_eq!(run.get::<_, i32>(1), 3);
    let error: Option<&str> = run.get(2);
    assert!(
        error.is_some_and(|e| e.contains("restart_data_generation")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_failed_firing_after_the_last_batch_leaves_no_batch_in_the_runs() {
    let api = CourseApi::start(Plan::from_sample(0, &[5, 5])).await;
    let world = ingest_of(&api, 0).await;
    assert_eq!(drain(&world, "all").await.stored, vec![0, 1]);
    // The firing after the last batch fails: recorded against batch 2, which it was after.
    api.plant(2, Fault::Error500BeforeCursorMoves);
    assert!(world.ingest.ingest_tick(&tick("fails")).await.is_err());
    let failed = "SELECT count(*) FROM ops.stage_runs WHERE batch_number = 2 AND state = 'failed'";
    assert_eq!(world.count(failed).await, 1);
    // The next one learns there is no batch 2: its run goes.
    assert!(matches!(
        world.ingest.ingest_tick(&tick("end")).await.unwrap(),
        IngestReport::Exhausted
    ));
    assert_eq!(
        world
            .count("SELECT count(*) FROM ops.stage_runs WHERE batch_number = 2")
            .await,
        0
    );
    assert_eq!(
        world
            .count("SELECT count(*) FROM ops.stage_runs WHERE stage = 'ingest'")
            .await,
        2
    );
}
