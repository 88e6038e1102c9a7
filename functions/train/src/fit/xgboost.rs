//! Gradient-boosted trees fitted by the XGBoost library (xgboost-rs, which builds XGBoost
//! 1.6.2 from source): the same `hist` algorithm Python's `XGBRegressor(tree_method="hist")`
//! runs. The model comes back twice: as XGBoost's own JSON (stored next to the artifact, and
//! loadable by Python's `xgboost`) and as [`BoostedTrees`] read from that JSON, which is what
//! the artifact holds and serving evaluates without the library.

use std::collections::HashMap;

use appraise_core::model::{
    Matrix,
    boosted::{BoostedTrees, BoostingParams, XgboostJsonError},
};
use xgboost_rs::{Booster, DMatrix, XGBError};

#[derive(Debug, thiserror::Error)]
pub enum XgboostError {
    #[error("no rows to fit on")]
    NoRows,
    #[error("invalid boosting parameters: {0}")]
    BadParams(&'static str),
    #[error(transparent)]
    Library(#[from] XGBError),
    #[error("reading back the fitted model: {0}")]
    Json(#[from] XgboostJsonError),
}

/// A fitted ensemble with the JSON XGBoost wrote for it.
pub struct FittedXgboost {
    pub model: BoostedTrees,
    pub xgboost_json: String,
}

/// Builds a `DMatrix` from row-major features; NaN marks a missing value (as in Python).
pub fn dmatrix(x: &Matrix) -> Result<DMatrix, XGBError> {
    let data: Vec<f32> = x.data.iter().map(|&v| v as f32).collect();
    let item = std::mem::size_of::<f32>();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
    DMatrix::from_col_major_f32(
        &data,
        x.cols * item,
        item,
        x.rows,
        x.cols,
        threads,
        f32::NAN,
    )
}

/// Fits `params.rounds` rounds of squared-error boosting with the `hist` tree method.
///
/// The starting score is the mean target (what XGBoost ≥ 2.0 estimates by itself; 1.6 would
/// start from 0.5).
pub fn fit_xgboost(
    x: &Matrix,
    y: &[f64],
    params: BoostingParams,
) -> Result<FittedXgboost, XgboostError> {
    if x.rows == 0 || x.cols == 0 || y.len() != x.rows {
        return Err(XgboostError::NoRows);
    }
    if params.rounds == 0 {
        return Err(XgboostError::BadParams("rounds must be at least 1"));
    }
    if !(params.learning_rate > 0.0 && params.learning_rate <= 1.0) {
        return Err(XgboostError::BadParams("learning_rate must be in (0, 1]"));
    }
    if params.max_depth == 0 {
        return Err(XgboostError::BadParams("max_depth must be at least 1"));
    }
    let mut train = dmatrix(x)?;
    let labels: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    train.set_labels(&labels)?;
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let settings: HashMap<String, String> = [
        ("objective", "reg:squarederror".to_owned()),
        ("tree_method", "hist".to_owned()),
        ("max_depth", params.max_depth.to_string()),
        ("eta", params.learning_rate.to_string()),
        ("seed", params.seed.to_string()),
        ("base_score", mean.to_string()),
        ("nthread", threads.to_string()),
        ("verbosity", "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut booster = Booster::new_with_json_config(&[&train], settings)?;
    // Booster::train stops after 16 rounds whatever it is asked (DESIGN.md §10): one update
    // per round instead.
    for round in 0..params.rounds {
        booster.update(&train, round as i32)?;
    }
    let xgboost_json = booster.save_to_buffer("json".to_owned())?;
    let model = BoostedTrees::from_xgboost_json(&xgboost_json, params, x.cols)?;
    Ok(FittedXgboost {
        model,
        xgboost_json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use appraise_core::rng::SplitMix64;

    #[test]
    fn evaluating_the_json_equals_xgboost_and_reloads_in_the_library() {
        let mut rng = SplitMix64::new(7);
        let rows: Vec<[f64; 3]> = (0..3_000)
            .map(|_| [rng.next_f64() * 10.0, (rng.below(5)) as f64, rng.next_f64()])
            .collect();
        let y: Vec<f64> = rows
            .iter()
            .map(|r| 1e5 + (if r[0] > 5.0 { 5e4 } else { 0.0 }) + 1e4 * r[1] + 1e3 * rng.normal())
            .collect();
        let x = Matrix::from_rows(&rows).unwrap();
        let params = BoostingParams {
            rounds: 30,
            ..BoostingParams::default()
        };
        let fitted = fit_xgboost(&x, &y, params).unwrap();
        assert_eq!(fitted.model.trees.len(), 30, "one tree per round, past 16");

        // Unseen rows, zeros and exact split values included.
        let mut probe: Vec<[f64; 3]> = (0..500)
            .map(|_| {
                [
                    rng.next_f64() * 12.0 - 1.0,
                    rng.below(6) as f64,
                    rng.next_f64(),
                ]
            })
            .collect();
        probe.push([0.0, 0.0, 0.0]);
        let split = f64::from(fitted.model.trees[0].nodes[0].condition);
        probe.push([split, split, split]);
        let probe = Matrix::from_rows(&probe).unwrap();
        let reloaded = Booster::load_buffer(fitted.xgboost_json.as_bytes()).unwrap();
        let library = reloaded.predict(&dmatrix(&probe).unwrap()).unwrap();
        for (i, want) in library.iter().enumerate() {
            let got = fitted.model.predict_row(probe.row(i));
            assert_eq!(got, f64::from(*want), "row {i}: {:?}", probe.row(i));
        }
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        assert!((f64::from(fitted.model.base_score) - mean).abs() < 1.0);

        assert!(matches!(
            fit_xgboost(
                &x,
                &y,
                BoostingParams {
                    rounds: 0,
                    ..params
                }
            ),
            Err(XgboostError::BadParams(_))
        ));
    }
}
