//! Fitting: the clean rows split into train, validation and test sides ([`split_rows`]), the
//! features fitted and each side made a feature matrix ([`feature_matrices`]), and the three
//! model kinds fitted on the training matrix ([`fit_all`]): [`ridge`], a random [`forest`] and
//! gradient-boosted trees ([`boosting`], saved in XGBoost's format). [`export`] writes rows and
//! matrices out for other implementations. The fitted forms live in `appraise_core::model`,
//! which promote and predict use without any of this code.

pub mod boosting;
pub mod export;
pub mod forest;
pub mod ridge;

use std::time::Instant;

use anyhow::Context;
use appraise_core::{
    clean::{CleanRow, Side, split_side},
    features::{FEATURE_COUNT, FeatureSpec},
    model::{GlobalImportance, Matrix, TrainedModel, metrics::Metrics},
};
use rayon::prelude::*;

use crate::config::TrainConfig;

/// One fitted model, with how long fitting took and, for boosted trees, their XGBoost JSON.
pub struct FittedModel {
    pub model: TrainedModel,
    pub fit_seconds: f64,
    pub xgboost_json: Option<String>,
}

/// Fits Ridge, the random forest and XGBoost, in that order, with the configured settings.
pub fn fit_models(x: &Matrix, y: &[f64], config: &TrainConfig) -> anyhow::Result<Vec<FittedModel>> {
    let timed = |fit: &dyn Fn() -> anyhow::Result<(TrainedModel, Option<String>)>| {
        let started = Instant::now();
        let (model, xgboost_json) = fit()?;
        anyhow::Ok(FittedModel {
            model,
            fit_seconds: started.elapsed().as_secs_f64(),
            xgboost_json,
        })
    };
    Ok(vec![
        timed(&|| {
            Ok((
                TrainedModel::Ridge(ridge::fit_ridge(x, y, config.ridge_alpha)?),
                None,
            ))
        })?,
        timed(&|| {
            Ok((
                TrainedModel::RandomForest(forest::fit_forest(x, y, config.forest)?),
                None,
            ))
        })?,
        timed(&|| {
            let fitted = boosting::fit_boosting(x, y, config.boosting)?;
            Ok((
                TrainedModel::Xgboost(fitted.model),
                Some(fitted.xgboost_json),
            ))
        })?,
    ])
}

/// A fitted model with its validation and test metrics, and its global importance on the
/// test rows (`None` when the model cannot be explained, e.g. trees deeper than TreeSHAP's
/// limit: the training still counts).
pub struct ScoredFit {
    pub fitted: FittedModel,
    pub validation: Metrics,
    pub test: Metrics,
    pub importance: Option<GlobalImportance>,
}

/// Test rows a model's global importance is computed over, at most: evenly spread over them.
/// (A forest's explanation costs milliseconds per row.)
pub const IMPORTANCE_ROWS: usize = 200;

/// The mean absolute contribution of each input field over [`IMPORTANCE_ROWS`] of the rows of
/// `x` (all of them when there are fewer), evenly spread, explained on every core.
pub fn global_importance(model: &TrainedModel, x: &Matrix) -> anyhow::Result<GlobalImportance> {
    let count = x.rows.min(IMPORTANCE_ROWS);
    let rows: Vec<usize> = (0..count).map(|k| k * x.rows / count).collect();
    let contributions = rows
        .par_iter()
        .map(|&i| {
            let values = model.contributions(x.row(i))?.values;
            <[f64; FEATURE_COUNT]>::try_from(values)
                .map_err(|_| anyhow::anyhow!("a model over other than {FEATURE_COUNT} features"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(GlobalImportance::from_contributions(&contributions))
}

/// The rows of one side of the split as a model sees them: features and prices.
pub struct LabelledMatrix {
    pub x: Matrix,
    pub y: Vec<f64>,
}

/// Splits the rows 70 / 15 / 15 (train, validation, test) by fingerprint with `split_seed`;
/// an error when a side is empty.
pub fn split_rows(rows: &[CleanRow], split_seed: u64) -> anyhow::Result<[Vec<&CleanRow>; 3]> {
    let mut sides: [Vec<&CleanRow>; 3] = Default::default();
    for row in rows {
        let side = match split_side(row.row_hash, split_seed) {
            Side::Train => 0,
            Side::Validation => 1,
            Side::Test => 2,
        };
        sides[side].push(row);
    }
    if sides.iter().any(Vec::is_empty) {
        anyhow::bail!(
            "too few rows to split into train, validation and test: {:?}",
            sides.each_ref().map(Vec::len)
        );
    }
    Ok(sides)
}

/// Fits the features on the training side (cross-fitted, [`FeatureSpec::fit_cross`]) and
/// turns every side of [`split_rows`] into its matrix: what the models are fitted and scored on.
pub fn feature_matrices(
    sides: &[Vec<&CleanRow>; 3],
) -> anyhow::Result<(FeatureSpec, [LabelledMatrix; 3])> {
    let prices = |side: &[&CleanRow]| side.iter().map(|r| r.price).collect::<Vec<f64>>();
    let train_y = prices(&sides[0]);
    let (spec, train_features) = {
        let inputs: Vec<_> = sides[0].iter().map(|r| r.input()).collect();
        FeatureSpec::fit_cross(&inputs, &train_y)?
    };
    let train = LabelledMatrix {
        x: Matrix::from(train_features),
        y: train_y,
    };
    let matrix_of = |side: &[&CleanRow]| {
        Matrix::from(
            side.iter()
                .map(|r| spec.transform(&r.input()))
                .collect::<Vec<_>>(),
        )
    };
    let validation = LabelledMatrix {
        x: matrix_of(&sides[1]),
        y: prices(&sides[1]),
    };
    let test = LabelledMatrix {
        x: matrix_of(&sides[2]),
        y: prices(&sides[2]),
    };
    Ok((spec, [train, validation, test]))
}

/// Splits the rows ([`split_rows`]), fits the features and makes the matrices
/// ([`feature_matrices`]), fits every model on the training side, and scores the models on the
/// validation and test sides; returns the feature spec, the scored models and the sizes of the
/// three sides. With `export`, the training and test rows are also written as CSVs named after
/// it (see [`export`]).
///
/// The rows are dropped once the matrices are made, before any model is fitted: at a million
/// rows they are a few hundred MB that the fits do not need.
pub fn fit_all(
    rows: Vec<CleanRow>,
    config: &TrainConfig,
    export: Option<&std::path::Path>,
) -> anyhow::Result<(FeatureSpec, Vec<ScoredFit>, [usize; 3])> {
    let sides = split_rows(&rows, config.split_seed)?;
    let sizes = sides.each_ref().map(Vec::len);
    if let Some(prefix) = export {
        let path = |side: &str| {
            let mut name = prefix.as_os_str().to_owned();
            name.push(format!("-{side}.csv"));
            std::path::PathBuf::from(name)
        };
        export::write_realtor_csv(&path("train"), &sides[0])?;
        export::write_realtor_csv(&path("test"), &sides[2])?;
    }
    let (spec, [train, validation_side, test_side]) = feature_matrices(&sides)?;
    drop(sides);
    drop(rows);
    let score = |model: &TrainedModel| -> anyhow::Result<(Metrics, Metrics)> {
        Ok((
            Metrics::compute(&validation_side.y, &model.predict(&validation_side.x))
                .context("validation")?,
            Metrics::compute(&test_side.y, &model.predict(&test_side.x)).context("test")?,
        ))
    };
    let fitted = fit_models(&train.x, &train.y, config)?
        .into_iter()
        .map(|fitted| {
            let (validation, test) = score(&fitted.model)?;
            let importance = global_importance(&fitted.model, &test_side.x)
                .inspect_err(|error| {
                    tracing::warn!(
                        algorithm = fitted.model.algorithm(),
                        error = format!("{error:#}"),
                        "no global importance for this model"
                    );
                })
                .ok();
            Ok(ScoredFit {
                fitted,
                validation,
                test,
                importance,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((spec, fitted, sizes))
}
