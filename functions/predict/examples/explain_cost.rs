//! What an explanation costs per row next to a prediction (features plus model, without HTTP),
//! for the three algorithms fitted with the production settings (100 trees of depth 10; 100
//! rounds of depth 6) on synthetic listings:
//!
//! `cargo run --release -p appraise-predict --example explain_cost [-- <training rows>]`

use std::time::Instant;

use appraise_core::{
    features::FeatureSpec,
    listing::{Status, ZipCode},
    model::{Matrix, ModelArtifact},
    rng::SplitMix64,
};
use appraise_predict::request::ListingInput;
use appraise_train::{config::TrainConfig, fit::fit_models};

fn listings(rows: usize, seed: u64) -> Vec<(ListingInput, f64)> {
    let mut rng = SplitMix64::new(seed);
    const STATES: [(&str, f64); 4] = [
        ("Massachusetts", 1.6),
        ("Texas", 0.9),
        ("Florida", 1.2),
        ("Ohio", 0.6),
    ];
    (0..rows)
        .map(|_| {
            let (state, level) = STATES[rng.below(4) as usize];
            let size = 700.0 + 4_000.0 * rng.next_f64();
            let bed = 1.0 + rng.below(6) as f64;
            let acre_lot = rng.next_f64() * 2.0;
            let zip = rng.below(2_000) as u32 * 37;
            let price = level
                * (150.0 * size + 20_000.0 * bed + 50_000.0 * acre_lot)
                * (1.0 + 0.15 * rng.normal());
            let listing = ListingInput {
                brokered_by: Some(rng.below(700) as i64),
                status: Some(Status::ALL[rng.below(3) as usize]),
                bed,
                bath: 1.0 + rng.below(4) as f64,
                acre_lot,
                house_size: size,
                city: Some(format!("City {}", rng.below(40))),
                state: Some(state.to_owned()),
                zip_code: ZipCode::new(zip),
                prev_sold_date: None,
            };
            (listing, price.max(20_000.0))
        })
        .collect()
}

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .map_or(20_000, |n| n.parse().expect("a row count"));
    let today = time::OffsetDateTime::now_utc().date();
    let training = listings(rows, 1);
    let inputs: Vec<_> = training.iter().map(|(l, _)| l.features(today)).collect();
    let prices: Vec<f64> = training.iter().map(|(_, p)| *p).collect();
    let (spec, features) = FeatureSpec::fit_cross(&inputs, &prices).unwrap();
    let x = Matrix::from_rows(&features).unwrap();
    let config = TrainConfig::default();
    let probe = listings(1_000, 2);
    for fitted in fit_models(&x, &prices, &config).unwrap() {
        let artifact = ModelArtifact {
            version: fitted.model.algorithm().to_owned(),
            algorithm: fitted.model.algorithm().to_owned(),
            feature_spec: spec.clone(),
            model: fitted.model,
        };
        let time = |work: &dyn Fn(&ListingInput) -> f64| {
            let mut checksum = 0.0;
            for (listing, _) in &probe {
                checksum += work(listing); // warm up
            }
            let mut rounds = 0;
            let started = Instant::now();
            while started.elapsed().as_secs_f64() < 2.0 {
                for (listing, _) in &probe {
                    checksum += work(listing);
                }
                rounds += 1;
            }
            let per_row = started.elapsed().as_secs_f64() / (rounds * probe.len()) as f64;
            (per_row * 1e6, checksum)
        };
        let (predict_us, a) = time(&|l| artifact.predict(&l.features(today)));
        let (explain_us, b) = time(&|l| {
            let explained = artifact.explain(&l.features(today)).unwrap();
            explained.base_value + explained.per_field.iter().map(|(_, c)| c).sum::<f64>()
        });
        println!(
            "{:<14} predict {predict_us:>9.2} µs per row, explain {explain_us:>9.2} µs per row \
             ({:.0}×)  (checksums {a:.0} {b:.0})",
            artifact.algorithm,
            explain_us / predict_us
        );
    }
}
