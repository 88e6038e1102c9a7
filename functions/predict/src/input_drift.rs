//! Drift in what users ask: the inputs of the last logged predictions compared, field by field,
//! with the rows the production model was trained on (`GET /drift/predictions`, the page's
//! *Drift in served inputs*, and the gauge `prediction_input_drift{field}`).
//!
//! - **The two samples.** The reference is every clean row of the production model's training
//!   window (`ops.trainings.first_batch..=last_batch` of the version in `ops.production`), as
//!   train's drift test takes it; the current sample is the inputs of the last
//!   `PREDICT_DRIFT_SAMPLE` (default 5,000) predictions in `ops.inference_log`.
//! - **Numeric fields** (bed, bath, acre_lot, house_size): the two-sample KS test train's drift
//!   report uses, with the same effect floor and subsample (`DRIFT_P_VALUE`,
//!   `DRIFT_MIN_STATISTIC`, `DRIFT_MAX_SAMPLE`, `DRIFT_SEED`; see [`appraise_core::drift`]).
//! - **Categorical fields** (status, state, city): the population stability index
//!   ([`appraise_core::drift::psi()`], as train's report uses it), whose floor is the threshold: a
//!   field drifts when PSI ≥ `DRIFT_PSI_MIN` (default 0.2, the usual "significant shift" rule
//!   of thumb).
//! - A field with no values on a side is reported untested, never drifted.
//!
//! The gauge holds each field's statistic (KS `D`, or PSI) from the last computation: on every
//! `GET /drift/predictions`, and every `PREDICT_INPUT_DRIFT_SECONDS` (default 300; 0: never)
//! in the background where a server runs (not on Lambda). Each series is exported at 0 from the
//! start.

use std::time::Duration;

use anyhow::Context;
use appraise_core::{
    db::DbPool,
    drift::{DriftConfig, drift_report, psi},
};
use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;

use crate::{Predictor, error::ApiError};

/// The numeric fields, tested with KS.
pub const NUMERIC_FIELDS: [&str; 4] = ["bed", "bath", "acre_lot", "house_size"];
/// The categorical fields, tested with PSI.
pub const CATEGORICAL_FIELDS: [&str; 3] = ["status", "state", "city"];

/// What the test of served inputs uses.
#[derive(Debug, Clone, PartialEq)]
pub struct InputDriftConfig {
    /// `PREDICT_DRIFT_SAMPLE`: how many of the last predictions are compared (default 5,000).
    pub sample: usize,
    /// The KS test's thresholds and subsample, and the PSI floor, shared with train
    /// (`DRIFT_*`).
    pub ks: DriftConfig,
}

impl Default for InputDriftConfig {
    fn default() -> Self {
        InputDriftConfig {
            sample: 5_000,
            ks: DriftConfig::default(),
        }
    }
}

/// One field's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDrift {
    pub field: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    /// `ks` or `psi`.
    pub test: &'static str,
    /// KS `D`, or PSI; `None` when a side has no values.
    pub statistic: Option<f64>,
    /// KS only.
    pub p_value: Option<f64>,
    pub drifted: bool,
    /// Values compared on each side (after KS's subsample).
    pub reference_size: usize,
    pub current_size: usize,
}

/// `GET /drift/predictions`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputDriftReport {
    /// The production model whose training rows are the reference (`None`: none yet, and
    /// nothing is compared).
    pub production_version: Option<String>,
    pub reference_rows: usize,
    /// Predictions compared (at most `PREDICT_DRIFT_SAMPLE`).
    pub current_rows: usize,
    /// Whether any field drifted.
    pub drifted: bool,
    pub fields: Vec<FieldDrift>,
    pub thresholds: Thresholds,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Thresholds {
    pub ks_p_value: f64,
    pub ks_min_statistic: f64,
    pub psi_min: f64,
    pub sample: usize,
}

/// One sample's columns.
#[derive(Debug, Default)]
struct Sample {
    numeric: [Vec<f64>; 4],
    categorical: [Vec<Option<String>>; 3],
    rows: usize,
}

impl Sample {
    fn from_rows(rows: &[tokio_postgres::Row]) -> Sample {
        let mut sample = Sample {
            rows: rows.len(),
            ..Sample::default()
        };
        for row in rows {
            for (index, column) in sample.numeric.iter_mut().enumerate() {
                column.push(row.get::<_, Option<f64>>(index).unwrap_or(f64::NAN));
            }
            for (index, column) in sample.categorical.iter_mut().enumerate() {
                column.push(row.get(NUMERIC_FIELDS.len() + index));
            }
        }
        sample
    }
}

/// The routes of this module.
pub fn routes() -> Router<Predictor> {
    Router::new().route("/drift/predictions", get(get_input_drift))
}

async fn get_input_drift(
    State(predictor): State<Predictor>,
) -> Result<Json<InputDriftReport>, ApiError> {
    let report = compute(predictor.db(), &predictor.config().input_drift)
        .await
        .map_err(|error| {
            ApiError::Unavailable(format!("the served-input drift is unavailable: {error:#}"))
        })?;
    export(&report);
    Ok(Json(report))
}

/// Reads both samples and tests every field.
pub async fn compute(db: &DbPool, config: &InputDriftConfig) -> anyhow::Result<InputDriftReport> {
    let client = db.get().await.context("getting a database connection")?;
    let thresholds = Thresholds {
        ks_p_value: config.ks.p_value_threshold,
        ks_min_statistic: config.ks.min_statistic,
        psi_min: config.ks.psi_min,
        sample: config.sample,
    };
    let production: Option<String> = client
        .query_opt("SELECT version FROM ops.production", &[])
        .await
        .context("reading ops.production")?
        .map(|row| row.get(0));
    let Some(production_version) = production else {
        return Ok(InputDriftReport {
            production_version: None,
            reference_rows: 0,
            current_rows: 0,
            drifted: false,
            fields: Vec::new(),
            thresholds,
        });
    };
    let reference = client
        .query(
            "SELECT l.bed::float8, l.bath::float8, l.acre_lot, l.house_size,
                    l.status, l.state, l.city
             FROM ops.production p
             JOIN ops.model_versions v ON v.version = p.version
             JOIN ops.trainings t ON t.id = v.training_id
             JOIN clean.listings l ON l.batch_number BETWEEN t.first_batch AND t.last_batch",
            &[],
        )
        .await
        .context("reading the production model's training rows")?;
    let limit = i64::try_from(config.sample).unwrap_or(i64::MAX);
    let current = client
        .query(
            "SELECT bed, bath, acre_lot, house_size, status, state, city
             FROM ops.inference_log ORDER BY predicted_at DESC LIMIT $1",
            &[&limit],
        )
        .await
        .context("reading ops.inference_log")?;
    drop(client);
    let reference = Sample::from_rows(&reference);
    let current = Sample::from_rows(&current);
    let ks_config = config.ks;
    let psi_min = config.ks.psi_min;
    // CPU work: off the async runtime.
    let fields = tokio::task::spawn_blocking(move || {
        test_fields(&reference, &current, &ks_config, psi_min)
            .map(|fields| (fields, reference.rows, current.rows))
    })
    .await
    .context("the drift task panicked")??;
    let (fields, reference_rows, current_rows) = fields;
    Ok(InputDriftReport {
        production_version: Some(production_version),
        reference_rows,
        current_rows,
        drifted: fields.iter().any(|f| f.drifted),
        fields,
        thresholds,
    })
}

fn test_fields(
    reference: &Sample,
    current: &Sample,
    ks_config: &DriftConfig,
    psi_min: f64,
) -> anyhow::Result<Vec<FieldDrift>> {
    let columns = |sample: &Sample| -> Vec<(&'static str, Vec<f64>)> {
        NUMERIC_FIELDS
            .iter()
            .zip(&sample.numeric)
            .map(|(name, values)| (*name, values.clone()))
            .collect()
    };
    let report = drift_report(&columns(reference), &columns(current), ks_config)?;
    let mut fields: Vec<FieldDrift> = report
        .features
        .into_iter()
        .map(|feature| FieldDrift {
            field: feature.feature,
            kind: "numeric",
            test: "ks",
            statistic: feature.statistic,
            p_value: feature.p_value,
            drifted: feature.drifted,
            reference_size: feature.reference_size,
            current_size: feature.current_size,
        })
        .collect();
    for (index, name) in CATEGORICAL_FIELDS.iter().enumerate() {
        let reference = &reference.categorical[index];
        let current = &current.categorical[index];
        let statistic = psi(reference, current);
        fields.push(FieldDrift {
            field: (*name).to_owned(),
            kind: "categorical",
            test: "psi",
            statistic,
            p_value: None,
            drifted: statistic.is_some_and(|value| value >= psi_min),
            reference_size: reference.len(),
            current_size: current.len(),
        });
    }
    Ok(fields)
}

/// Sets `prediction_input_drift{field}` to each tested field's statistic.
pub fn export(report: &InputDriftReport) {
    for field in &report.fields {
        if let Some(statistic) = field.statistic {
            metrics::gauge!("prediction_input_drift", "field" => field.field.clone())
                .set(statistic);
        }
    }
}

/// Exports every field's gauge at 0, then computes and exports them every `interval` (zero:
/// never).
pub fn export_forever(db: DbPool, config: InputDriftConfig, interval: Duration) {
    for field in NUMERIC_FIELDS.iter().chain(&CATEGORICAL_FIELDS) {
        metrics::gauge!("prediction_input_drift", "field" => *field).set(0.0);
    }
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            match compute(&db, &config).await {
                Ok(report) => export(&report),
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "could not test the served inputs for drift"
                ),
            }
        }
    });
}
