//! The fault suite's predictor faults, against the reference run's predictor: fuzzed bodies on
//! every route that takes one, and model swaps under load.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use appraise_core::{db::DbPool, rng::SplitMix64};
use serde_json::{Value, json};

use super::{Run, report};

/// Posts fuzzed bodies to every predictor route that takes one; none may get a 5xx, and every
/// prediction answered is in the inference log.
pub(super) async fn fuzz(run: &Run, bodies: usize) -> bool {
    let url = run.predict.url();
    wait_ready(&run.client, &url).await;
    let logged_before = inference_log_rows(&run.db).await;
    let mut rng = SplitMix64::new(2026);
    let mut five_xx = 0;
    let mut answered = 0;
    for n in 0..bodies {
        let (route, body) = fuzzed_body(&mut rng, n);
        let response = run
            .client
            .post(format!("{url}{route}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status.is_server_error() {
            five_xx += 1;
            eprintln!(
                "fuzz {route}: HTTP {status}: {}",
                response.text().await.unwrap_or_default()
            );
        } else if status.is_success() {
            let answer: Value = response.json().await.unwrap();
            answered += answer["predictions"]
                .as_array()
                .map_or(1, |predictions| predictions.len());
        }
    }
    // The inference log is written every few milliseconds.
    let mut logged = 0;
    for _ in 0..100 {
        logged = inference_log_rows(&run.db).await - logged_before;
        if logged >= answered as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lost = (answered as i64 - logged).max(0) as usize;
    report("fuzzed bodies", bodies, lost, 0, 0, five_xx)
}

async fn inference_log_rows(db: &DbPool) -> i64 {
    db.get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM ops.inference_log", &[])
        .await
        .unwrap()
        .get(0)
}

/// A body for `/predict`, `/predict/batch` or the OIP route: a valid listing with one to three
/// mutations (a field dropped, retyped, or set to an extreme), or bytes that are not JSON.
fn fuzzed_body(rng: &mut SplitMix64, n: usize) -> (&'static str, Vec<u8>) {
    let mut listing = json!({
        "brokered_by": 10481, "status": "for_sale", "bed": 3, "bath": 2, "acre_lot": 0.25,
        "city": "Springfield", "state": "Massachusetts", "zip_code": "01103",
        "house_size": 1800, "prev_sold_date": "2015-06-01", "street": 1234
    });
    let fields: Vec<String> = listing.as_object().unwrap().keys().cloned().collect();
    let strange = [
        json!(null),
        json!(-1),
        json!(1e308),
        json!(-0.0),
        json!("x"),
        json!(""),
        json!([1, 2]),
        json!({"a": 1}),
        json!(true),
        json!(18_446_744_073_709_551_615u64),
        json!("9".repeat(400)),
        json!("2015-13-45"),
        json!("\u{0}\u{ffff}"),
    ];
    for _ in 0..=rng.below(3) {
        let field = &fields[rng.below(fields.len() as u64) as usize];
        if rng.chance(0.2) {
            listing.as_object_mut().unwrap().remove(field);
        } else {
            listing[field] = strange[rng.below(strange.len() as u64) as usize].clone();
        }
    }
    match n % 5 {
        0 => (
            "/predict/batch",
            json!({ "listings": [listing.clone(), listing] })
                .to_string()
                .into_bytes(),
        ),
        1 => {
            let tensor = |name: &str, datatype: &str, data: Value| json!({"name": name, "datatype": datatype, "shape": [1], "data": data});
            let mut inputs = vec![
                tensor("bed", "FP64", json!([listing["bed"].clone()])),
                tensor("bath", "FP64", json!([listing["bath"].clone()])),
                tensor("acre_lot", "FP64", json!([listing["acre_lot"].clone()])),
                tensor("house_size", "FP64", json!([listing["house_size"].clone()])),
                tensor("state", "BYTES", json!([listing["state"].clone()])),
            ];
            if rng.chance(0.3) {
                inputs[0]["shape"] = json!([3, rng.next_u64() as i64]);
            }
            (
                "/v2/models/appraise/infer",
                json!({ "inputs": inputs }).to_string().into_bytes(),
            )
        }
        2 if rng.chance(0.3) => {
            // Cut anywhere, inside a multi-byte character too: the body is then not even
            // UTF-8.
            let mut bytes = listing.to_string().into_bytes();
            bytes.truncate(rng.below(bytes.len() as u64) as usize);
            ("/predict", bytes)
        }
        _ => ("/predict", listing.to_string().into_bytes()),
    }
}

async fn wait_ready(client: &reqwest::Client, url: &str) {
    for _ in 0..400 {
        if let Ok(response) = client.get(format!("{url}/ready")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the predictor never loaded a model");
}

/// Alternates the production pointer between two model versions while eight clients predict;
/// every prediction must be answered 200 by one model or the other.
pub(super) async fn swap_models_under_load(run: &Run, swaps: usize) -> bool {
    let url = run.predict.url();
    wait_ready(&run.client, &url).await;
    let pointer: Value = serde_json::from_slice(
        &run.objects
            .get("production/current.json")
            .await
            .unwrap()
            .expect("a production pointer"),
    )
    .unwrap();
    let other: (String, String, String) = run
        .db
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT version, algorithm, artifact_key FROM ops.model_versions
             WHERE version <> $1 ORDER BY version LIMIT 1",
            &[&pointer["version"].as_str().unwrap()],
        )
        .await
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .unwrap();
    let mut swapped = pointer.clone();
    swapped["version"] = json!(other.0);
    swapped["algorithm"] = json!(other.1);
    swapped["artifact_key"] = json!(other.2);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let five_xx = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, stop, failed, five_xx, answered) = (
                run.client.clone(),
                url.clone(),
                stop.clone(),
                failed.clone(),
                five_xx.clone(),
                answered.clone(),
            );
            tokio::spawn(async move {
                let listing = json!({"bed": 3, "bath": 2, "acre_lot": 0.2, "house_size": 1500,
                                     "state": "Texas", "city": "Austin", "zip_code": "78701",
                                     "status": "for_sale", "brokered_by": 1});
                while !stop.load(Ordering::SeqCst) {
                    match client
                        .post(format!("{url}/predict"))
                        .json(&listing)
                        .send()
                        .await
                    {
                        Ok(response) if response.status().is_success() => {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(response) if response.status().is_server_error() => {
                            five_xx.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    let mut versions_seen = BTreeSet::new();
    for n in 0..swaps {
        let body = if n % 2 == 0 { &swapped } else { &pointer };
        run.objects
            .put(
                "production/current.json",
                bytes::Bytes::from(body.to_string()),
                "application/json",
            )
            .await
            .unwrap();
        let answer: Value = run
            .client
            .post(format!("{url}/reload_model"))
            .bearer_auth("faults")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        versions_seen.insert(answer["model_version"].to_string());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    // Put the real pointer back.
    run.objects
        .put(
            "production/current.json",
            bytes::Bytes::from(pointer.to_string()),
            "application/json",
        )
        .await
        .unwrap();
    assert!(versions_seen.len() >= 2 || swaps < 2, "{versions_seen:?}");
    assert!(answered.load(Ordering::SeqCst) > 0);
    let failed = failed.load(Ordering::SeqCst);
    let five_xx = five_xx.load(Ordering::SeqCst);
    report("model swaps", swaps, failed, 0, 0, five_xx)
}
