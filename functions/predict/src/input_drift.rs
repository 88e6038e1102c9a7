//! Drift in what users ask: the inputs of the last logged predictions compared, field by field,
//! with the rows the production model was trained on (`GET /drift/predictions`, the page's
//! *Drift in served inputs*, and the gauges `prediction_input_drift{field}` and
//! `prediction_input_drifted{field}`).
//!
//! - **The two samples.** The reference is the clean rows of the production model's training
//!   window (`ops.trainings.first_batch..=last_batch` of the version in `ops.production`), cut
//!   down in SQL to at most `DRIFT_MAX_SAMPLE` rows by a deterministic subsample (ordered by a
//!   hash of each row's `row_hash` keyed on `DRIFT_SEED`), read once per production version and
//!   kept in memory. The current sample is the inputs of the last `PREDICT_DRIFT_SAMPLE`
//!   (default 5,000) predictions in `ops.inference_log`, newest first by `prediction_id` (a
//!   time-first UUIDv7 with a btree index, strictly increasing within a replica and ordered to
//!   the millisecond across replicas, [`crate::prediction_id`]; rows logged before the column
//!   existed are left out).
//! - **Numeric fields** (bed, bath, acre_lot, house_size): the two-sample KS test train's drift
//!   report uses, with the same effect floor and subsample (`DRIFT_P_VALUE`,
//!   `DRIFT_MIN_STATISTIC`, `DRIFT_MAX_SAMPLE`, `DRIFT_SEED`; see [`appraise_core::drift`]).
//! - **Categorical fields** (state, status, city_prefix): the population stability index over
//!   the columns [`appraise_core::drift::categorical_values`] builds, exactly as train's report
//!   does; a field drifts when PSI ≥ `DRIFT_PSI_MIN` (default 0.2, the usual "significant
//!   shift" rule of thumb).
//! - A field with no values on a side is reported untested, never drifted.
//!
//! A report is reused for `PREDICT_INPUT_DRIFT_REUSE_SECONDS` (default 10) after it was
//! computed, and concurrent requests wait for one computation, so the unauthenticated endpoint
//! cannot be used to load the database.
//!
//! The gauges hold, per field, the statistic (KS `D`, or PSI) and the verdict (1 drifted, 0
//! not) of the last computation: on `GET /drift/predictions`, and every
//! `PREDICT_INPUT_DRIFT_SECONDS` (default 300; 0: never) in the background where a server runs
//! (not on Lambda). Every field's series is exported at 0 from the start, and a field that
//! could not be tested reads 0 on both.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use appraise_core::{
    db::DbPool,
    drift::{
        self, CATEGORICAL_FEATURES, CategoricalInputs, DriftConfig, DriftReport, drift_report,
    },
};
use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;

use crate::{Predictor, error::ApiError};

/// The numeric fields, tested with KS.
pub const NUMERIC_FIELDS: [&str; 4] = ["bed", "bath", "acre_lot", "house_size"];

/// Every field of the report, in its order: the numeric ones, then
/// [`CATEGORICAL_FEATURES`].
pub fn fields() -> impl Iterator<Item = &'static str> {
    NUMERIC_FIELDS.into_iter().chain(CATEGORICAL_FEATURES)
}

/// What the test of served inputs uses.
#[derive(Debug, Clone, PartialEq)]
pub struct InputDriftConfig {
    /// `PREDICT_DRIFT_SAMPLE`: how many of the last predictions are compared (default 5,000).
    pub sample: usize,
    /// `PREDICT_INPUT_DRIFT_REUSE_SECONDS`: how long a report is answered again before it is
    /// computed anew (default 10 s).
    pub reuse: Duration,
    /// The KS test's thresholds and subsample, and the PSI floor, shared with train
    /// (`DRIFT_*`).
    pub drift: DriftConfig,
}

impl Default for InputDriftConfig {
    fn default() -> Self {
        InputDriftConfig {
            sample: 5_000,
            reuse: Duration::from_secs(10),
            drift: DriftConfig::default(),
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
    /// [`CATEGORICAL_FEATURES`]' values, from [`drift::categorical_values`].
    categorical: [Vec<Option<String>>; 3],
    rows: usize,
}

impl Sample {
    /// From rows whose columns are the numeric fields, then status, state and city.
    fn from_rows(rows: &[tokio_postgres::Row]) -> Sample {
        let mut numeric: [Vec<f64>; 4] = Default::default();
        for row in rows {
            for (index, column) in numeric.iter_mut().enumerate() {
                column.push(row.get::<_, Option<f64>>(index).unwrap_or(f64::NAN));
            }
        }
        let at = NUMERIC_FIELDS.len();
        let categorical = drift::categorical_values(rows.iter().map(|row| CategoricalInputs {
            status: row.get(at),
            state: row.get(at + 1),
            city: row.get(at + 2),
        }));
        Sample {
            numeric,
            categorical,
            rows: rows.len(),
        }
    }
}

/// The test's memory, kept in the [`Predictor`]: the reference sample of the production
/// version it was last read for, and the last report with when it was computed. The lock is
/// held through a computation, so concurrent requests wait for one.
#[derive(Default)]
pub struct InputDrift {
    cached: tokio::sync::Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    reference: Option<(String, Arc<Sample>)>,
    report: Option<(Instant, Arc<InputDriftReport>)>,
}

impl InputDrift {
    /// The last report if it is younger than `config.reuse`, else a new one (read with the
    /// cached reference sample while the production version is unchanged).
    pub async fn report(
        &self,
        db: &DbPool,
        config: &InputDriftConfig,
    ) -> anyhow::Result<Arc<InputDriftReport>> {
        let mut cached = self.cached.lock().await;
        if let Some((at, report)) = &cached.report
            && at.elapsed() < config.reuse
        {
            return Ok(Arc::clone(report));
        }
        let report = Arc::new(compute(db, config, &mut cached.reference).await?);
        cached.report = Some((Instant::now(), Arc::clone(&report)));
        Ok(report)
    }
}

/// The routes of this module.
pub fn routes() -> Router<Predictor> {
    Router::new().route("/drift/predictions", get(get_input_drift))
}

async fn get_input_drift(
    State(predictor): State<Predictor>,
) -> Result<Json<InputDriftReport>, ApiError> {
    let report = predictor
        .input_drift()
        .report(predictor.db(), &predictor.config().input_drift)
        .await
        .map_err(|error| {
            ApiError::Unavailable(format!("the served-input drift is unavailable: {error:#}"))
        })?;
    export(&report);
    Ok(Json(InputDriftReport::clone(&report)))
}

/// Reads the current sample (and the reference, unless `reference` holds the production
/// version's) and tests every field.
async fn compute(
    db: &DbPool,
    config: &InputDriftConfig,
    reference: &mut Option<(String, Arc<Sample>)>,
) -> anyhow::Result<InputDriftReport> {
    let client = db.get().await.context("getting a database connection")?;
    let thresholds = Thresholds {
        ks_p_value: config.drift.p_value_threshold,
        ks_min_statistic: config.drift.min_statistic,
        psi_min: config.drift.psi_min,
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
    let reference_sample = match reference {
        Some((version, sample)) if *version == production_version => Arc::clone(sample),
        _ => {
            let max_sample = i64::try_from(config.drift.max_sample).unwrap_or(i64::MAX);
            // The seed's bits, as PostgreSQL's bigint holds them.
            let seed = config.drift.seed as i64;
            let rows = client
                .query(
                    "SELECT l.bed::float8, l.bath::float8, l.acre_lot, l.house_size,
                            l.status, l.state, l.city
                     FROM ops.model_versions v
                     JOIN ops.trainings t ON t.id = v.training_id
                     JOIN clean.listings l
                       ON l.batch_number BETWEEN t.first_batch AND t.last_batch
                     WHERE v.version = $1
                     ORDER BY hashint8extended(l.row_hash, $2), l.row_hash
                     LIMIT $3",
                    &[&production_version, &seed, &max_sample],
                )
                .await
                .context("reading the production model's training rows")?;
            let sample = Arc::new(Sample::from_rows(&rows));
            *reference = Some((production_version.clone(), Arc::clone(&sample)));
            sample
        }
    };
    let limit = i64::try_from(config.sample).unwrap_or(i64::MAX);
    let current = client
        .query(
            "SELECT bed, bath, acre_lot, house_size, status, state, city
             FROM ops.inference_log WHERE prediction_id IS NOT NULL
             ORDER BY prediction_id DESC LIMIT $1",
            &[&limit],
        )
        .await
        .context("reading ops.inference_log")?;
    drop(client);
    let current = Sample::from_rows(&current);
    let drift_config = config.drift;
    // CPU work: off the async runtime.
    let fields = tokio::task::spawn_blocking(move || {
        test_fields(&reference_sample, &current, &drift_config)
            .map(|fields| (fields, reference_sample.rows, current.rows))
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
    config: &DriftConfig,
) -> anyhow::Result<Vec<FieldDrift>> {
    let columns = |sample: &Sample| -> Vec<(&'static str, Vec<f64>)> {
        NUMERIC_FIELDS
            .iter()
            .zip(&sample.numeric)
            .map(|(name, values)| (*name, values.clone()))
            .collect()
    };
    let DriftReport {
        features,
        categorical,
        ..
    } = drift_report(&columns(reference), &columns(current), config)?.with_categorical(
        drift::categorical_columns(reference.categorical.clone(), current.categorical.clone()),
    );
    let numeric = features.into_iter().map(|feature| FieldDrift {
        field: feature.feature,
        kind: "numeric",
        test: "ks",
        statistic: feature.statistic,
        p_value: feature.p_value,
        drifted: feature.drifted,
        reference_size: feature.reference_size,
        current_size: feature.current_size,
    });
    let categorical = categorical.into_iter().map(|feature| FieldDrift {
        field: feature.feature,
        kind: "categorical",
        test: "psi",
        statistic: feature.psi,
        p_value: None,
        drifted: feature.drifted,
        reference_size: feature.reference_size,
        current_size: feature.current_size,
    });
    Ok(numeric.chain(categorical).collect())
}

/// Sets each field's `prediction_input_drift{field}` to its statistic and
/// `prediction_input_drifted{field}` to its verdict (1 drifted, 0 not); a field the report did
/// not test (or has not: no production model) reads 0 on both.
pub fn export(report: &InputDriftReport) {
    for name in fields() {
        let field = report
            .fields
            .iter()
            .find(|field| field.field == name && field.statistic.is_some());
        metrics::gauge!("prediction_input_drift", "field" => name)
            .set(field.and_then(|field| field.statistic).unwrap_or(0.0));
        metrics::gauge!("prediction_input_drifted", "field" => name).set(
            if field.is_some_and(|field| field.drifted) {
                1.0
            } else {
                0.0
            },
        );
    }
}

/// Exports every field's gauges at 0, then computes and exports them every `interval` (zero:
/// never), with a memory of its own.
pub fn export_forever(db: DbPool, config: InputDriftConfig, interval: Duration) {
    for field in fields() {
        metrics::gauge!("prediction_input_drift", "field" => field).set(0.0);
        metrics::gauge!("prediction_input_drifted", "field" => field).set(0.0);
    }
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let memory = InputDrift::default();
        loop {
            tokio::time::sleep(interval).await;
            match memory.report(&db, &config).await {
                Ok(report) => export(&report),
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "could not test the served inputs for drift"
                ),
            }
        }
    });
}
