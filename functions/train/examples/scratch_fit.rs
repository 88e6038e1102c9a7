//! Scratch (not committed): fits one model kind N times on a realtor CSV, dumps matrix.
use std::time::Instant;
use appraise_core::model::{Matrix, metrics::Metrics};
use appraise_train::{config::TrainConfig, fit::{boosting::fit_boosting, forest::fit_forest}};
#[path = "compare_peer.rs"]
#[allow(dead_code)]
mod peer;

fn dump(path: &str, x: &Matrix, y: &[f64]) {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(x.rows as u64).to_le_bytes());
    bytes.extend_from_slice(&(x.cols as u64).to_le_bytes());
    for v in &x.data { bytes.extend_from_slice(&v.to_le_bytes()); }
    for v in y { bytes.extend_from_slice(&v.to_le_bytes()); }
    std::fs::write(path, bytes).unwrap();
}

fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (x, y, tx, ty) = peer::matrices(&args[1], &args[2]);
    let what = args[3].as_str();
    let times: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
    if what == "dump" { dump(&format!("{}.train.bin", args[4]), &x, &y); dump(&format!("{}.test.bin", args[4]), &tx, &ty); return; }
    let cfg = TrainConfig::default();
    for _ in 0..times {
        let t = Instant::now(); let c0 = cpu();
        let model: appraise_core::model::TrainedModel = match what {
            "boost" => appraise_core::model::TrainedModel::Xgboost(fit_boosting(&x, &y, cfg.boosting).unwrap().model),
            _ => appraise_core::model::TrainedModel::RandomForest(fit_forest(&x, &y, cfg.forest).unwrap()),
        };
        let s = t.elapsed().as_secs_f64(); let c = cpu() - c0;
        let m = Metrics::compute(&ty, &model.predict(&tx)).unwrap();
        println!("{what} fit {s:.3} s cpu {c:.2} rmse {:.1}", m.rmse);
    }
}
