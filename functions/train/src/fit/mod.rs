//! Fitting the three model kinds on a feature matrix: [`ridge`], a random [`forest`] and
//! gradient-boosted trees ([`boosting`], saved in XGBoost's format). The fitted forms live in `appraise_core::model`,
//! which promote and predict use without any of this code.

pub mod boosting;
pub mod forest;
pub mod ridge;

use std::time::Instant;

use appraise_core::model::{Matrix, TrainedModel};

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
