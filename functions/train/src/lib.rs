//! The train stage (in progress): drift detection between the rows a production model was
//! trained on and newly cleaned rows ([`drift`]), the retraining rule ([`decision`]), the
//! regression [`metrics`], and the [`models`] (Ridge and a random forest so far). XGBoost,
//! the stage's binary and the model registry follow.

pub mod decision;
pub mod drift;
pub mod metrics;
pub mod models;
