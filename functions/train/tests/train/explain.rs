//! Explanations of the models train fits: every algorithm's contributions add up to its
//! prediction, after the model went through its stored JSON; a model saved before covers were
//! recorded still predicts and says why it cannot be explained; the boosted trees'
//! contributions are XGBoost's own `pred_contribs`, computed by Python's `xgboost` from the
//! exported `xgboost.json`, and so are the forest's, on its trees written as an equivalent
//! XGBoost model (the tools virtualenv's `xgboost-cpu`; without it these tests say so and pass,
//! except in CI); and each model version stores its global importance.

use std::process::Command;

use appraise_core::{
    features::FEATURE_COUNT,
    model::{
        Matrix, TrainedModel,
        boosted::{BoostingParams, DEFAULT_LEFT},
        shap::ShapError,
    },
    rng::SplitMix64,
};
use appraise_train::{
    config::TrainConfig,
    fit::{boosting::fit_boosting, fit_models},
};

/// Rows of `FEATURE_COUNT` features with steps, interactions and a linear part, and their
/// targets (prices, roughly).
fn synthetic(rows: usize, seed: u64) -> (Matrix, Vec<f64>) {
    let mut rng = SplitMix64::new(seed);
    let features: Vec<[f64; FEATURE_COUNT]> = (0..rows)
        .map(|_| {
            std::array::from_fn(|f| {
                if f % 3 == 0 {
                    rng.below(6) as f64
                } else {
                    rng.next_f64() * 10.0
                }
            })
        })
        .collect();
    let y = features
        .iter()
        .map(|r| {
            2e5 + 3e4 * r[0] + if r[1] > 5.0 { 8e4 } else { 0.0 } + 5e3 * r[2] * r[3] - 2e3 * r[4]
                + 1e4 * rng.normal()
        })
        .collect();
    (Matrix::from_rows(&features).unwrap(), y)
}

/// A model as predict reads it: through its JSON.
fn reloaded(model: &TrainedModel) -> TrainedModel {
    serde_json::from_str(&serde_json::to_string(model).unwrap()).unwrap()
}

#[test]
fn every_algorithm_adds_up_to_its_prediction() {
    let (x, y) = synthetic(3_000, 1);
    let (probe, _) = synthetic(200, 2);
    let fitted = fit_models(&x, &y, &TrainConfig::small()).unwrap();
    assert_eq!(fitted.len(), 3);
    for fit in fitted {
        let model = reloaded(&fit.model);
        let algorithm = model.algorithm();
        for i in 0..probe.rows {
            let row = probe.row(i);
            let prediction = model.predict_row(row);
            let explained = model.contributions(row).unwrap();
            let total = explained.base_value + explained.values.iter().sum::<f64>();
            // Boosted trees predict in f32 (as XGBoost does); the others in f64.
            let tolerance = match model {
                TrainedModel::Xgboost(_) => 4.0 * f64::from(f32::EPSILON) * prediction.abs(),
                _ => 1e-9 * prediction.abs(),
            };
            assert!(
                (total - prediction).abs() <= tolerance,
                "{algorithm}, row {i}: base {} + contributions = {total}, prediction {prediction}",
                explained.base_value
            );
            assert!(
                explained.values.iter().any(|v| v.abs() > 1.0),
                "{algorithm}: something contributes"
            );
        }
    }
}

#[test]
fn a_model_saved_without_covers_predicts_but_is_not_explained() {
    let (x, y) = synthetic(1_000, 3);
    for fit in fit_models(&x, &y, &TrainConfig::small()).unwrap() {
        if let TrainedModel::Ridge(_) = fit.model {
            continue; // a linear model needs no covers
        }
        let mut json = serde_json::to_value(&fit.model).unwrap();
        for tree in json["trees"].as_array_mut().unwrap() {
            let tree = tree.as_object_mut().unwrap();
            tree.remove("covers").expect("covers are stored");
        }
        let old: TrainedModel = serde_json::from_value(json).unwrap();
        old.validate(FEATURE_COUNT).unwrap();
        assert_eq!(old.predict_row(x.row(0)), fit.model.predict_row(x.row(0)));
        assert_eq!(old.contributions(x.row(0)), Err(ShapError::NoCovers));
    }
}

/// Prints XGBoost's `pred_contribs` (per feature, then the bias) and predictions for the rows.
const CONTRIBS: &str = r#"
import json, sys
import numpy as np
import xgboost as xgb
booster = xgb.Booster()
booster.load_model(sys.argv[1])
rows = np.array([[np.nan if v is None else v for v in row] for row in json.load(open(sys.argv[2]))])
matrix = xgb.DMatrix(rows, missing=np.nan)
contribs = booster.predict(matrix, pred_contribs=True)
predicted = booster.predict(matrix)
print(json.dumps({
    "version": xgb.__version__,
    "contribs": [[float(v) for v in row] for row in contribs],
    "predictions": [float(p) for p in predicted],
}))
"#;

/// XGBoost's answer for some rows: per row its `pred_contribs` (each feature, then the bias)
/// and its prediction.
struct XgboostAnswer {
    version: String,
    contribs: Vec<Vec<f64>>,
    predictions: Vec<f64>,
}

/// Loads `model_json` in Python's `xgboost` and asks it about `rows`; `None` (after saying so,
/// or failing under CI) when the tools virtualenv has no xgboost.
fn ask_xgboost(model_json: &str, rows: &[Vec<f64>]) -> Option<XgboostAnswer> {
    let python = appraise_testkit::fixtures::tools_venv().join("bin/python");
    let has_xgboost = Command::new(&python)
        .args(["-c", "import xgboost"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_xgboost {
        appraise_testkit::fixtures::skip_without_tool(
            "no Python with xgboost in target/tools-venv: run scripts/setup-tools.sh",
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("xgboost.json");
    let rows_path = dir.path().join("rows.json");
    std::fs::write(&model_path, model_json).unwrap();
    // JSON has no NaN: serde_json writes a missing value as null, which the script reads back.
    std::fs::write(&rows_path, serde_json::to_string(rows).unwrap()).unwrap();
    let out = Command::new(&python)
        .args(["-c", CONTRIBS])
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
    let numbers = |value: &serde_json::Value| -> Vec<f64> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    Some(XgboostAnswer {
        version: answer["version"].as_str().unwrap().to_owned(),
        contribs: answer["contribs"]
            .as_array()
            .unwrap()
            .iter()
            .map(numbers)
            .collect(),
        predictions: numbers(&answer["predictions"]),
    })
}

/// Checks appraise's contributions of `model` on `rows` against XGBoost's, feature by feature
/// and the bias, within 1e-4 of the prediction; returns the largest gap, relative.
fn compare_with_xgboost(model: &TrainedModel, rows: &[Vec<f64>], answer: &XgboostAnswer) -> f64 {
    let version = &answer.version;
    assert_eq!(answer.contribs.len(), rows.len());
    let mut largest_gap = 0f64;
    for (i, (row, theirs)) in rows.iter().zip(&answer.contribs).enumerate() {
        assert_eq!(theirs.len(), FEATURE_COUNT + 1, "features and the bias");
        let prediction = model.predict_row(row);
        let python_prediction = answer.predictions[i];
        assert!(
            (prediction - python_prediction).abs() <= 1e-6 * prediction.abs(),
            "row {i}: appraise predicts {prediction}, xgboost {version} {python_prediction}"
        );
        let ours = model.contributions(row).unwrap();
        let tolerance = 1e-4 * prediction.abs();
        for (f, (mine, xgboost)) in ours.values.iter().zip(theirs).enumerate() {
            let gap = (mine - xgboost).abs();
            largest_gap = largest_gap.max(gap / prediction.abs());
            assert!(
                gap <= tolerance,
                "row {i}, feature {f}: appraise {mine}, xgboost {version} {xgboost}"
            );
        }
        assert!(
            (ours.base_value - theirs[FEATURE_COUNT]).abs() <= tolerance,
            "row {i}: base value {}, xgboost's bias {}",
            ours.base_value,
            theirs[FEATURE_COUNT]
        );
    }
    eprintln!(
        "{} {} rows against xgboost {version}: largest gap {largest_gap:e} of the prediction",
        model.algorithm(),
        rows.len()
    );
    largest_gap
}

/// `rows` probe rows of [`synthetic`], where each value is, one time in eight, missing and, two
/// times in eight, one of the `thresholds` of its feature.
fn probe_rows(rows: usize, thresholds: &[Vec<f64>], seed: u64) -> Vec<Vec<f64>> {
    let (probe_x, _) = synthetic(rows, seed);
    let mut rng = SplitMix64::new(seed ^ 0x5eed);
    let mut probe: Vec<Vec<f64>> = (0..probe_x.rows).map(|i| probe_x.row(i).to_vec()).collect();
    let (mut on_threshold, mut missing) = (0, 0);
    for row in &mut probe {
        for (f, value) in row.iter_mut().enumerate() {
            match rng.below(8) {
                0 => {
                    *value = f64::NAN;
                    missing += 1;
                }
                1 | 2 if !thresholds[f].is_empty() => {
                    *value = thresholds[f][rng.below(thresholds[f].len() as u64) as usize];
                    on_threshold += 1;
                }
                _ => {}
            }
        }
    }
    assert!(
        on_threshold > rows && missing > rows / 2,
        "{on_threshold} on thresholds, {missing} missing"
    );
    probe
}

#[test]
fn boosted_contributions_are_xgboosts_pred_contribs() {
    let (mut x, y) = synthetic(4_000, 5);
    // Missing values at training: splits learn where they go.
    for i in (0..x.rows).step_by(9) {
        x.data[i * x.cols + 1] = f64::NAN;
    }
    let params = BoostingParams {
        rounds: 40,
        ..BoostingParams::default()
    };
    let fitted = fit_boosting(&x, &y, params).unwrap();
    // Every split's threshold per feature, for probes that sit exactly on one.
    let mut thresholds = vec![Vec::new(); FEATURE_COUNT];
    for tree in &fitted.model.trees {
        for node in tree.nodes.iter().filter(|n| n.left >= 0) {
            thresholds[(node.feature & !DEFAULT_LEFT) as usize].push(f64::from(node.condition));
        }
    }
    let probe = probe_rows(400, &thresholds, 6);
    let Some(answer) = ask_xgboost(&fitted.xgboost_json, &probe) else {
        return;
    };
    compare_with_xgboost(&TrainedModel::Xgboost(fitted.model), &probe, &answer);
}

/// The largest `f32` at most `value`.
fn f32_at_most(value: f64) -> f32 {
    let nearest = value as f32;
    if f64::from(nearest) > value {
        nearest.next_down()
    } else {
        nearest
    }
}

/// The forest's contributions checked by XGBoost too, on the same trees written as an XGBoost
/// model: each tree's leaves divided by the number of trees (the forest averages, a booster
/// sums), a base score of 0, covers as `sum_hessian`, and each split `x <= t` written as
/// `x < t'` with `t'` the first `f32` above the largest `f32` at most `t` — the same branch for
/// every value an `f32` holds, which XGBoost compares in. So the probes are `f32` values
/// (thresholds' neighbours on both sides included) or missing (the forest sends a missing value
/// right: `default_left` 0). The enumeration test in `appraise_core::model::shap` checks the
/// algorithm on its own; this checks the forest's covers and averaging against a library.
#[test]
fn forest_contributions_are_xgboosts_on_the_same_trees() {
    use appraise_core::model::{
        boosted::BoostedNode,
        forest::{LEAF, Tree},
        xgboost_json::{XgboostJsonWriter, XgboostNode},
    };
    use appraise_train::fit::forest::fit_forest;

    let (x, y) = synthetic(3_000, 8);
    let params = appraise_core::model::forest::ForestParams {
        trees: 20,
        max_depth: 7,
        ..Default::default()
    };
    let forest = fit_forest(&x, &y, params).unwrap();
    let scale = 1.0 / forest.trees.len() as f64;
    let as_xgboost = |tree: &Tree| -> Vec<XgboostNode> {
        let mut parents = vec![-1i32; tree.nodes.len()];
        for (index, node) in tree.nodes.iter().enumerate() {
            if node.feature != LEAF {
                parents[node.left as usize] = index as i32;
                parents[node.left as usize + 1] = index as i32;
            }
        }
        tree.nodes
            .iter()
            .zip(&tree.covers)
            .zip(&parents)
            .map(|((node, &cover), &parent)| {
                let (condition, feature, left, right) = if node.feature == LEAF {
                    ((node.threshold * scale) as f32, 0, -1, -1)
                } else {
                    (
                        f32_at_most(node.threshold).next_up(),
                        node.feature,
                        node.left as i32,
                        node.left as i32 + 1,
                    )
                };
                XgboostNode {
                    node: BoostedNode {
                        condition,
                        feature,
                        left,
                        right,
                    },
                    parent,
                    weight: if left < 0 { condition } else { 0.0 },
                    gain: 0.0,
                    hessian: cover as f32,
                }
            })
            .collect()
    };
    let mut writer = XgboostJsonWriter::new(FEATURE_COUNT);
    for tree in &forest.trees {
        writer.push_tree(&as_xgboost(tree));
    }
    let model_json = writer.finish(0.0);

    // Thresholds' f32 neighbours: the largest at most the threshold (goes left) and the next
    // one (goes right).
    let mut thresholds = vec![Vec::new(); FEATURE_COUNT];
    for tree in &forest.trees {
        for node in tree.nodes.iter().filter(|n| n.feature != LEAF) {
            let below = f32_at_most(node.threshold);
            thresholds[node.feature as usize].push(f64::from(below));
            thresholds[node.feature as usize].push(f64::from(below.next_up()));
        }
    }
    let mut probe = probe_rows(400, &thresholds, 9);
    for value in probe.iter_mut().flatten() {
        *value = f64::from(*value as f32);
    }
    let Some(answer) = ask_xgboost(&model_json, &probe) else {
        return;
    };
    compare_with_xgboost(&TrainedModel::RandomForest(forest), &probe, &answer);
}

#[tokio::test]
async fn each_model_version_stores_its_global_importance() {
    let world = crate::support::world().await;
    // Prices follow size and state; status, city and the sale date are the same on every row.
    world.clean_batch(1, 12_000, 1.0).await;
    let appraise_train::TrainReport::Trained { .. } = world.event(1).await else {
        panic!("expected a training")
    };
    let rows = world
        .db
        .get()
        .await
        .unwrap()
        .query(
            "SELECT v.algorithm, v.importance, t.rows_test FROM ops.model_versions v
             JOIN ops.trainings t ON t.id = v.training_id ORDER BY v.algorithm",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        let algorithm: String = row.get(0);
        let importance: appraise_core::model::GlobalImportance =
            serde_json::from_value(row.get(1)).unwrap();
        let test_rows: i64 = row.get(2);
        assert!(test_rows > 1_000, "{test_rows}");
        assert_eq!(
            importance.rows,
            appraise_train::fit::IMPORTANCE_ROWS,
            "{algorithm}"
        );
        let mut fields: Vec<&str> = importance.fields.iter().map(|f| f.field.as_str()).collect();
        let sizes: Vec<f64> = importance
            .fields
            .iter()
            .map(|f| f.mean_abs_contribution)
            .collect();
        assert!(
            sizes.windows(2).all(|w| w[0] >= w[1]),
            "{algorithm}: {sizes:?}"
        );
        assert!(
            ["house_size", "state"].contains(&fields[0]),
            "{algorithm}: {:?}",
            importance.fields
        );
        let of = |name: &str| {
            importance
                .fields
                .iter()
                .find(|f| f.field == name)
                .unwrap()
                .mean_abs_contribution
        };
        if algorithm != "ridge" {
            // A feature with one value is never split on: it contributes nothing.
            assert_eq!(of("status"), 0.0, "{algorithm}");
            assert_eq!(of("prev_sold_date"), 0.0, "{algorithm}");
        }
        fields.sort_unstable();
        let mut expected = appraise_core::features::INPUT_FIELDS.to_vec();
        expected.sort_unstable();
        assert_eq!(fields, expected);
    }
}
