//! The predictor gives memory back after large batches: several 10,000-row `POST /predict/batch`
//! requests, sequential and concurrent, against the predict binary (a child process, so its
//! own `/proc/<pid>/status` says what it holds), then its resident memory must come back near
//! where it was before them (see `functions/predict/src/memory.rs` for why it did not).

use std::time::Duration;

use serde_json::{Value, json};

use crate::api::World;

/// Listings per request: the default `PREDICT_MAX_BATCH`.
const ROWS: usize = 10_000;
/// Requests sent one after another, then clients sending [`PER_CLIENT`] each at once.
const SEQUENTIAL: usize = 6;
const CLIENTS: usize = 4;
const PER_CLIENT: usize = 2;
/// How much more the predictor may hold once the batches are answered and logged than before
/// them. Without `functions/predict/src/memory.rs` it kept 30–31 MiB more here (debug build,
/// 2026-12-01); with it, 2–3 MiB.
const MAX_GROWTH_MIB: u64 = 16;

/// A batch body of `rows` seed-shaped listings, varied as real ones are.
fn batch_body(rows: usize) -> String {
    let states = [
        ("Massachusetts", ["Boston", "Agawam", "Worcester"], 1_000),
        ("Texas", ["Austin", "Houston", "Dallas"], 75_000),
        ("California", ["Fresno", "San Diego", "Oakland"], 90_000),
    ];
    let listings: Vec<Value> = (0..rows)
        .map(|i| {
            let (state, cities, zip_base) = states[i % states.len()];
            let status = ["for_sale", "sold", "ready_to_build"][i % 3];
            json!({
                "brokered_by": 1 + (i * 7919) % 100_000,
                "status": status,
                "bed": 1 + i % 6,
                "bath": 1 + i % 4,
                "acre_lot": 0.02 + (i % 300) as f64 / 100.0,
                "city": cities[i % cities.len()],
                "state": state,
                "zip_code": format!("{:05}", zip_base + i % 1_000),
                "house_size": 500 + (i * 37) % 4_500,
                "prev_sold_date": format!("{}-0{}-1{}", 1995 + i % 28, 1 + i % 9, i % 10),
                "street": format!("{} Main St", 1 + i % 999),
            })
        })
        .collect();
    json!({ "listings": listings }).to_string()
}

async fn send_batches(world: &World, body: &str, count: usize) {
    for _ in 0..count {
        let response = world
            .client
            .post(world.url("/predict/batch"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["predictions"].as_array().unwrap().len(), ROWS);
    }
}

fn mib(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

#[tokio::test]
async fn memory_comes_back_after_large_batches() {
    let world = World::start().await;
    let body = batch_body(ROWS);
    let idle = world.predict.rss_bytes().expect("/proc tells the RSS");

    send_batches(&world, &body, SEQUENTIAL).await;
    futures_util::future::join_all((0..CLIENTS).map(|_| send_batches(&world, &body, PER_CLIENT)))
        .await;

    // Every prediction written to the inference log: its buffer has been taken and freed.
    let expected = (ROWS * (SEQUENTIAL + CLIENTS * PER_CLIENT)) as i64;
    let logged = world.inference_log_rows_reaching(expected, 1_200).await;
    assert_eq!(
        logged, expected,
        "every prediction reaches the inference log"
    );
    // Let the last request's tasks end (not a timing assertion: memory is read, not time).
    tokio::time::sleep(Duration::from_secs(1)).await;

    let after = world.predict.rss_bytes().expect("/proc tells the RSS");
    let peak = world
        .predict
        .peak_rss_bytes()
        .expect("/proc tells the peak");
    eprintln!(
        "predictor RSS: idle {} MiB, peak {} MiB, after {} MiB",
        mib(idle),
        mib(peak),
        mib(after)
    );
    assert!(
        after <= idle + MAX_GROWTH_MIB * 1024 * 1024,
        "the predictor kept {} MiB after its batches were answered and logged (idle {} MiB, \
         peak {} MiB, now {} MiB); at most {MAX_GROWTH_MIB} MiB more than idle is allowed",
        mib(after.saturating_sub(idle)),
        mib(idle),
        mib(peak),
        mib(after)
    );
}
