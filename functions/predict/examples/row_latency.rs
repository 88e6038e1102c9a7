//! Times single-row evaluation (features plus model, what one `/predict` costs besides HTTP)
//! for model artifacts on disk, e.g. those of a harness run:
//!
//! `cargo run --release -p appraise-predict --example row_latency -- .appraise/run-*/s3/appraise/models/*/model.json`

use std::time::Instant;

use appraise_core::{listing::Status, listing::ZipCode, model::ModelArtifact};
use appraise_predict::request::ListingInput;

fn main() {
    let listings: Vec<ListingInput> = (0..1_000u32)
        .map(|i| ListingInput {
            brokered_by: Some(i64::from(i % 700) * 13),
            status: Some(Status::ALL[(i % 3) as usize]),
            bed: f64::from(1 + i % 6),
            bath: f64::from(1 + i % 4),
            acre_lot: f64::from(i % 50) / 20.0,
            house_size: f64::from(700 + (i * 37) % 4000),
            city: Some(
                ["Springfield", "Houston", "Miami", "Atlantis"][(i % 4) as usize].to_owned(),
            ),
            state: Some(["Massachusetts", "Texas", "Florida", "Ohio"][(i % 4) as usize].to_owned()),
            zip_code: ZipCode::new((i * 97) % 99_999),
            prev_sold_date: None,
        })
        .collect();
    let today = time::OffsetDateTime::now_utc().date();
    for path in std::env::args().skip(1) {
        let artifact = ModelArtifact::from_json(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut sum = 0.0;
        // Warm up, then time 200,000 single-row predictions.
        for listing in &listings {
            sum += artifact.predict(&listing.features(today));
        }
        let rounds = 200;
        let started = Instant::now();
        for _ in 0..rounds {
            for listing in &listings {
                sum += artifact.predict(&listing.features(today));
            }
        }
        let per_row = started.elapsed().as_secs_f64() / (rounds * listings.len()) as f64;
        println!(
            "{:<28} {:>8.2} µs per row  (checksum {sum:.0})",
            artifact.version,
            per_row * 1e6
        );
    }
}
