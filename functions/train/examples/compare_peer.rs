//! Fits this crate's models on the exact rows the peer (../shared/bench/peer/train.py) uses,
//! and prints fit time and test metrics per model, for the comparison in bench/README.md.
//!
//! `cargo run --release -p appraise-train --example compare_peer -- TRAIN.csv TEST.csv [--boosting N]`
//! (make the CSVs with `bench/split_for_peer.py`; see bench/README.md). With `--boosting N`
//! only the boosted trees are fitted, N times, to time them against the peer's XGBoost.

use std::time::Instant;

use appraise_core::{
    features::{FeatureInput, FeatureSpec},
    listing::{Status, ZipCode, parse_date},
    model::{Matrix, metrics::Metrics},
};
use appraise_train::{
    config::TrainConfig,
    fit::{boosting::fit_boosting, fit_models},
};

struct Row {
    bed: f64,
    bath: f64,
    acre_lot: f64,
    house_size: f64,
    status: Option<Status>,
    state: Option<String>,
    city: Option<String>,
    zip: Option<ZipCode>,
    broker: Option<i64>,
    sold: Option<time::Date>,
    price: f64,
}

fn read(path: &str) -> Vec<Row> {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let [
        bed,
        bath,
        acre,
        size,
        status,
        state,
        city,
        zip,
        broker,
        sold,
        price,
    ] = [
        "bed",
        "bath",
        "acre_lot",
        "house_size",
        "status",
        "state",
        "city",
        "zip_code",
        "brokered_by",
        "prev_sold_date",
        "price",
    ]
    .map(column);
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            let text = |i: usize| Some(record.get(i)?.trim()).filter(|t| !t.is_empty());
            let number = |i: usize| text(i).and_then(|t| t.parse::<f64>().ok());
            Row {
                bed: number(bed).unwrap(),
                bath: number(bath).unwrap(),
                acre_lot: number(acre).unwrap(),
                house_size: number(size).unwrap(),
                status: text(status).and_then(Status::parse),
                state: text(state).map(str::to_owned),
                city: text(city).map(str::to_owned),
                zip: text(zip).and_then(ZipCode::parse),
                broker: number(broker).map(|b| b as i64),
                sold: text(sold).and_then(parse_date),
                price: number(price).unwrap(),
            }
        })
        .collect()
}

fn inputs(rows: &[Row]) -> Vec<FeatureInput<'_>> {
    let as_of = parse_date("2026-11-27").unwrap();
    rows.iter()
        .map(|r| FeatureInput {
            bed: r.bed,
            bath: r.bath,
            acre_lot: r.acre_lot,
            house_size: r.house_size,
            status: r.status,
            state: r.state.as_deref(),
            city: r.city.as_deref(),
            zip_code: r.zip,
            brokered_by: r.broker,
            prev_sold_date: r.sold,
            as_of,
        })
        .collect()
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
