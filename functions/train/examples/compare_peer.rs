//! Fits this crate's models on the exact rows the peer (../shared/bench/peer/train.py) uses,
//! and prints fit time and test metrics per model, for the comparison in bench/README.md.
//!
//! `cargo run --release -p appraise-train --example compare_peer -- TRAIN.csv TEST.csv
//! [--boosting N] [--export-matrix PREFIX] [--json]` (make the CSVs with
//! `bench/split_for_peer.py`; see bench/README.md).
//!
//! - `--boosting N`: only the boosted trees are fitted, N times (0: none), to time them against
//!   XGBoost on the same matrix.
//! - `--export-matrix PREFIX`: writes the training and test feature matrices to
//!   `PREFIX-train.csv` and `PREFIX-test.csv` (`fit::export::write_feature_matrix`), which
//!   `bench/fit_matrix.py` fits with XGBoost or scikit-learn.
//! - `--json`: one JSON line per fitted model instead of the table (bench/fits.sh reads them).

use std::{path::Path, time::Instant};

use appraise_core::{
    listing::parse_date,
    model::{Matrix, metrics::Metrics},
};
use appraise_train::{
    config::TrainConfig,
    fit::{
        boosting::fit_boosting,
        export::{read_realtor_csv, realtor_matrices, write_feature_matrix},
        fit_models,
    },
};

/// The training and test matrices and prices of the two CSVs, the features fitted on the
/// training rows as the train stage fits them.
fn matrices(train: &str, test: &str) -> (Matrix, Vec<f64>, Matrix, Vec<f64>) {
    let read = |path: &str| read_realtor_csv(Path::new(path)).unwrap_or_else(|e| panic!("{e:#}"));
    let as_of = parse_date("2026-11-27").unwrap();
    let [train, test] = realtor_matrices(&read(train), &read(test), as_of).unwrap();
    (train.x, train.y, test.x, test.y)
}

/// Prints one fitted model's figures, as a table row or (`json`) a JSON line.
fn report(json: bool, algorithm: &str, fit_seconds: f64, metrics: &Metrics, train_rows: usize) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "model": algorithm,
                "fit_seconds": fit_seconds,
                "rmse": metrics.rmse,
                "mae": metrics.mae,
                "r2": metrics.r2,
                "train_rows": train_rows,
                "test_rows": metrics.rows,
            })
        );
    } else {
        println!(
            "{algorithm:<14} fit {fit_seconds:>7.2} s  rmse {:>9.0}  mae {:>9.0}  r2 {:.4}  mape {:.3}",
            metrics.rmse, metrics.mae, metrics.r2, metrics.mape
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str| {
        args.iter().position(|a| a == name).map(|at| {
            args.get(at + 1)
                .unwrap_or_else(|| panic!("{name} takes a value"))
        })
    };
    let json = args.iter().any(|a| a == "--json");
    let started = Instant::now();
    let (x, train_y, test_x, test_y) = matrices(&args[1], &args[2]);
    if !json {
        println!(
            "features: {} train rows, {} test rows, {:.3} s",
            x.rows,
            test_x.rows,
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(prefix) = option("--export-matrix") {
        write_feature_matrix(format!("{prefix}-train.csv").as_ref(), &x, &train_y).unwrap();
        write_feature_matrix(format!("{prefix}-test.csv").as_ref(), &test_x, &test_y).unwrap();
    }
    if let Some(times) = option("--boosting") {
        let times: usize = times.parse().expect("--boosting takes a number of fits");
        for _ in 0..times {
            let started = Instant::now();
            let fitted = fit_boosting(&x, &train_y, TrainConfig::default().boosting).unwrap();
            let seconds = started.elapsed().as_secs_f64();
            let predicted: Vec<f64> = (0..test_x.rows)
                .map(|i| fitted.model.predict_row(test_x.row(i)))
                .collect();
            let metrics = Metrics::compute(&test_y, &predicted).unwrap();
            report(json, "xgboost", seconds, &metrics, x.rows);
        }
        return;
    }
    for fitted in fit_models(&x, &train_y, &TrainConfig::default()).unwrap() {
        let predicted = fitted.model.predict(&test_x);
        let metrics = Metrics::compute(&test_y, &predicted).unwrap();
        report(
            json,
            fitted.model.algorithm(),
            fitted.fit_seconds,
            &metrics,
            x.rows,
        );
    }
}
