//! Fits this crate's models on the exact rows the peer (../shared/bench/peer/train.py) uses,
//! and prints fit time and test metrics per model, for the comparison in bench/README.md.
//!
//! `cargo run --release -p appraise-train --example compare_peer -- TRAIN.csv TEST.csv [--boosting N]`
//! (make the CSVs with `bench/split_for_peer.py`; see bench/README.md). With `--boosting N`
//! only the boosted trees are fitted, N times, to time them against the peer's XGBoost.

use std::{path::Path, time::Instant};

use appraise_core::{
    features::{FeatureInput, FeatureSpec},
    listing::parse_date,
    model::{Matrix, metrics::Metrics},
};
use appraise_train::{
    config::TrainConfig,
    fit::{
        boosting::fit_boosting,
        export::{RealtorRow, read_realtor_csv},
        fit_models,
    },
};

fn read(path: &str) -> Vec<RealtorRow> {
    read_realtor_csv(Path::new(path)).unwrap_or_else(|e| panic!("{e:#}"))
}

fn inputs(rows: &[RealtorRow]) -> Vec<FeatureInput<'_>> {
    let as_of = parse_date("2026-11-27").unwrap();
    rows.iter().map(|r| r.input(as_of)).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (train, test) = (read(&args[1]), read(&args[2]));
    let (train_inputs, test_inputs) = (inputs(&train), inputs(&test));
    let train_y: Vec<f64> = train.iter().map(|r| r.price).collect();
    let test_y: Vec<f64> = test.iter().map(|r| r.price).collect();
    let started = Instant::now();
    let (spec, train_features) = FeatureSpec::fit_cross(&train_inputs, &train_y).unwrap();
    let x = Matrix::from_rows(&train_features).unwrap();
    let test_x = Matrix::from_rows(
        &test_inputs
            .iter()
            .map(|i| spec.transform(i))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    println!(
        "features: {} train rows, {} test rows, {:.3} s",
        x.rows,
        test_x.rows,
        started.elapsed().as_secs_f64()
    );

    if let Some(times) = args.iter().position(|a| a == "--boosting").map(|at| {
        args.get(at + 1)
            .and_then(|n| n.parse::<usize>().ok())
            .expect("--boosting takes a number of fits")
    }) {
        for _ in 0..times {
            let started = Instant::now();
            let fitted = fit_boosting(&x, &train_y, TrainConfig::default().boosting).unwrap();
            let seconds = started.elapsed().as_secs_f64();
            let predicted: Vec<f64> = (0..test_x.rows)
                .map(|i| fitted.model.predict_row(test_x.row(i)))
                .collect();
            let m = Metrics::compute(&test_y, &predicted).unwrap();
            println!("xgboost        fit {seconds:>7.3} s  rmse {:>9.0}", m.rmse);
        }
        return;
    }
    for fitted in fit_models(&x, &train_y, &TrainConfig::default()).unwrap() {
        let started = Instant::now();
        let predicted = fitted.model.predict(&test_x);
        let predict_seconds = started.elapsed().as_secs_f64();
        let m = Metrics::compute(&test_y, &predicted).unwrap();
        println!(
            "{:<14} fit {:>7.2} s  predict {predict_seconds:>6.3} s  rmse {:>9.0}  mae {:>9.0}  r2 {:.4}  mape {:.3}",
            fitted.model.algorithm(),
            fitted.fit_seconds,
            m.rmse,
            m.mae,
            m.r2,
            m.mape
        );
    }
}
