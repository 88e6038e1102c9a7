//! The boosted trees' `xgboost.json` is a model Python's `xgboost` loads and predicts with as
//! appraise does: fitted here, loaded by the real library (the `xgboost-cpu` wheel in the
//! project's tools virtualenv, installed by `scripts/setup-tools.sh`), compared row by row on
//! unseen rows, missing values and exact split values included.
//!
//! Without that Python the test says so and passes, except in CI (`CI=true`), where it fails.

use std::{path::PathBuf, process::Command};

use appraise_core::{
    model::{Matrix, boosted::BoostingParams},
    rng::SplitMix64,
};
use appraise_train::fit::boosting::fit_boosting;

/// The tools virtualenv's Python, if it has `xgboost`.
fn python_with_xgboost() -> Option<PathBuf> {
    let python = appraise_testkit::fixtures::tools_venv().join("bin/python");
    let has_xgboost = Command::new(&python)
        .args(["-c", "import xgboost"])
        .output()
        .is_ok_and(|out| out.status.success());
    has_xgboost.then_some(python)
}

const PREDICT: &str = r#"
import json, sys
import numpy as np
import xgboost as xgb
booster = xgb.Booster()
booster.load_model(sys.argv[1])
rows = np.array([[np.nan if v is None else v for v in row] for row in json.load(open(sys.argv[2]))])
predicted = booster.predict(xgb.DMatrix(rows, missing=np.nan))
print(json.dumps({"version": xgb.__version__, "predictions": [float(p) for p in predicted]}))
"#;

#[test]
fn python_xgboost_loads_the_model_and_predicts_the_same() {
    let Some(python) = python_with_xgboost() else {
        appraise_testkit::fixtures::skip_without_tool(
            "no Python with xgboost in target/tools-venv: run scripts/setup-tools.sh",
        );
        return;
    };
    let mut rng = SplitMix64::new(17);
    let mut sample = |rows: usize, missing_every: usize| -> Vec<[f64; 4]> {
        (0..rows)
            .map(|i| {
                let size = 500.0 + 4_000.0 * rng.next_f64();
                [
                    if i % missing_every == 0 {
                        f64::NAN
                    } else {
                        size
                    },
                    rng.below(6) as f64,
                    rng.next_f64(),
                    (rng.below(50) as f64) * 1_000.0,
                ]
            })
            .collect()
    };
    let rows = sample(6_000, 11);
    let y: Vec<f64> = rows
        .iter()
        .map(|r| {
            let size = if r[0].is_nan() { 1_500.0 } else { r[0] };
            5e4 + 150.0 * size + 2e4 * r[1] + r[3] + 3e3 * r[2]
        })
        .collect();
    let x = Matrix::from_rows(&rows).unwrap();
    let params = BoostingParams {
        rounds: 40,
        ..BoostingParams::default()
    };
    let fitted = fit_boosting(&x, &y, params).unwrap();

    let mut probe = sample(300, 7);
    let root = fitted.model.trees[0].nodes[0];
    let split = f64::from(root.condition);
    probe.push([split, split, split, split]);
    probe.push([0.0; 4]);
    probe.push([f64::NAN; 4]);
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("xgboost.json");
    let rows_path = dir.path().join("rows.json");
    std::fs::write(&model_path, &fitted.xgboost_json).unwrap();
    // JSON has no NaN: serde_json writes a missing value as null, which the script reads back.
    let encoded = serde_json::to_string(&probe).unwrap();
    std::fs::write(&rows_path, encoded).unwrap();

    let out = Command::new(&python)
        .args(["-c", PREDICT])
        .arg(&model_path)
        .arg(&rows_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let predictions = answer["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), probe.len());
    for (row, python) in probe.iter().zip(predictions) {
        let python = python.as_f64().unwrap();
        let ours = fitted.model.predict_row(row);
        // XGBoost 3 adds the base score after the trees, appraise before: the sums may differ
        // in their last f32 bit, never more.
        let tolerance = f64::from(f32::EPSILON) * ours.abs() * 4.0;
        assert!(
            (ours - python).abs() <= tolerance,
            "row {row:?}: appraise {ours}, xgboost {} {python}",
            answer["version"]
        );
    }
}
