//! The train stage: on a `clean/batch-NNNNNN/manifest.json` object event, decide whether to
//! retrain and, if so, train.
//!
//! 1. Under a global advisory lock (trainings happen one at a time), skip a batch that was
//!    decided before (a redelivered or concurrent event).
//! 2. Count the clean rows that arrived since the last training; when a production model
//!    exists, test the new rows for [`drift`] against the rows it was trained on (two-sample
//!    KS per numeric column) and store the report.
//! 3. Apply the [`decision`] rule — `new rows ≥ TRAIN_MIN_NEW_ROWS AND (drift OR no
//!    production model)` — and record the decision and its reason either way.
//! 4. When it trains: every clean row so far, split 70 / 15 / 15 into train, validation and
//!    test by each listing's fingerprint (so a listing stays on its side as data grows); the
//!    [`appraise_core::features::FeatureSpec`] fitted on the training rows (cross-fitted
//!    encodings for the rows it is fitted on); Ridge, a random forest and XGBoost ([`fit`]);
//!    their validation and test metrics; each model's artifact (`models/<version>/model.json`:
//!    the spec and the model; for XGBoost also `models/<version>/xgboost.json`, XGBoost's
//!    own format, which Python's `xgboost` loads) and its row in `ops.model_versions`; then
//!    `candidates/training-NNNNNN.json`, queued in the same transaction and written after the
//!    commit, which wakes `promote`.

pub mod config;
pub mod decision;
pub mod drift;
pub mod fit;
pub mod store;

use std::sync::Arc;

use anyhow::Context;
use appraise_core::{
    clean::{self, CleanRow, Side, split_side},
    db::{DbPool, locks},
    events::{ObjectCreated, Trigger},
    features::FeatureSpec,
    model::{Matrix, ModelArtifact, TrainedModel, metrics::Metrics},
    objects::ObjectStore,
    outbox,
    runtime::{self, StageError, StageResult},
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_postgres::Transaction;

use crate::{
    config::TrainConfig,
    decision::{Decision, Situation},
    drift::{DriftReport, drift_report},
};

/// A short account of a drift report, for logs and the harness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftSummary {
    pub drifted: bool,
    pub worst_feature: Option<String>,
    pub worst_statistic: Option<f64>,
}

impl DriftSummary {
    fn of(report: &DriftReport) -> DriftSummary {
        let worst = report
            .worst
            .as_ref()
            .and_then(|w| report.features.iter().find(|f| &f.feature == w));
        DriftSummary {
            drifted: report.drifted,
            worst_feature: report.worst.clone(),
            worst_statistic: worst.and_then(|f| f.statistic),
        }
    }
}

/// One trained model, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub version: String,
    pub algorithm: String,
    pub validation: Metrics,
    pub test: Metrics,
    pub fit_seconds: f64,
    pub artifact_key: String,
}

/// What one object event did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TrainReport {
    Trained {
        training_id: i64,
        batch_number: i32,
        reason: String,
        drift: Option<DriftSummary>,
        rows_train: usize,
        rows_validation: usize,
        rows_test: usize,
        candidates: Vec<Candidate>,
    },
    Skipped {
        batch_number: i32,
        reason: String,
        drift: Option<DriftSummary>,
    },
    Duplicate {
        batch_number: i32,
    },
    Ignored {
        key: String,
        reason: String,
    },
}

/// The stage, with its clients built once. Cheap to clone.
#[derive(Clone)]
pub struct Train {
    inner: Arc<Inner>,
}

struct Inner {
    config: TrainConfig,
    db: DbPool,
    objects: ObjectStore,
}

/// The numeric columns tested for drift.
pub const DRIFT_COLUMNS: [&str; 5] = ["price", "bed", "bath", "acre_lot", "house_size"];

fn drift_columns(rows: &[&CleanRow]) -> Vec<(&'static str, Vec<f64>)> {
    let column = |f: fn(&CleanRow) -> f64| rows.iter().map(|r| f(r)).collect::<Vec<f64>>();
    vec![
        (DRIFT_COLUMNS[0], column(|r| r.price)),
        (DRIFT_COLUMNS[1], column(|r| r.bed)),
        (DRIFT_COLUMNS[2], column(|r| r.bath)),
        (DRIFT_COLUMNS[3], column(|r| r.acre_lot)),
        (DRIFT_COLUMNS[4], column(|r| r.house_size)),
    ]
}

const CODE_VERSION: &str = env!("CARGO_PKG_VERSION");

impl Train {
    pub fn new(config: TrainConfig, db: DbPool, objects: ObjectStore) -> Self {
        Train {
            inner: Arc::new(Inner {
                config,
                db,
                objects,
            }),
        }
    }

    /// The entry point the runtime calls.
    pub async fn handle(&self, trigger: Trigger) -> StageResult {
        let object = runtime::object_event(trigger, "train runs on clean/ object events")?;
        runtime::report(&self.train_object(&object).await?)
    }

    pub async fn train_object(&self, object: &ObjectCreated) -> Result<TrainReport, StageError> {
        let Some(batch_number) = appraise_core::keys::batch_of_manifest("clean", &object.key)
        else {
            return Ok(TrainReport::Ignored {
                key: object.key.clone(),
                reason: "not a clean/batch-NNNNNN/manifest.json key".to_owned(),
            });
        };
        let report =
            outbox::commit_then_flush(&self.inner.db, &self.inner.objects, async |transaction| {
                self.decide_and_train(transaction, batch_number).await
            })
            .await?;
        if let TrainReport::Trained { candidates, .. } = &report {
            for candidate in candidates {
                ::metrics::gauge!("model_test_rmse", "algorithm" => candidate.algorithm.clone())
                    .set(candidate.test.rmse);
            }
        }
        Ok(report)
    }

    async fn decide_and_train(
        &self,
        transaction: &Transaction<'_>,
        batch_number: i32,
    ) -> Result<TrainReport, StageError> {
        let inner = &self.inner;
        let outcome: anyhow::Result<Option<TrainReport>> = async {
            transaction
                .execute("SELECT pg_advisory_xact_lock($1)", &[&locks::TRAIN])
                .await?;
            let known = transaction
                .query_opt("SELECT 1 FROM ops.clean_batches WHERE batch_number = $1", &[&batch_number])
                .await?;
            if known.is_none() {
                return Ok(None);
            }
            if transaction
                .query_opt("SELECT 1 FROM ops.trainings WHERE batch_number = $1", &[&batch_number])
                .await?
                .is_some()
            {
                return Ok(Some(TrainReport::Duplicate { batch_number }));
            }
            // The first batch no training has used (batch numbers start at 0 or above).
            let first_new_batch = store::last_trained_batch(transaction)
                .await?
                .map_or(0, |last| last + 1);
            let new_rows = store::count_rows(transaction, first_new_batch, batch_number).await?;
            let production = store::production_training(transaction).await?;

            // Drift of the new rows against the production model's training rows.
            let mut drift = None;
            let mut drift_report_id: Option<i64> = None;
            if let Some((training_id, first, last)) = production {
                let reference_rows = clean::clean_rows(transaction, first, last).await?;
                let current_rows = clean::clean_rows(transaction, first_new_batch, batch_number).await?;
                let reference = drift_columns(&reference_rows.iter().collect::<Vec<_>>());
                let current = drift_columns(&current_rows.iter().collect::<Vec<_>>());
                let report = drift_report(&reference, &current, &inner.config.drift)?;
                for feature in &report.features {
                    if let Some(statistic) = feature.statistic {
                        ::metrics::gauge!("drift_statistic", "feature" => feature.feature.clone())
                            .set(statistic);
                    }
                }
                let id: i64 = transaction
                    .query_one(
                        "INSERT INTO ops.drift_reports (batch_number, reference_training, report, drifted, worst_feature)
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                        &[&batch_number, &training_id, &serde_json::to_value(&report)?, &report.drifted, &report.worst],
                    )
                    .await?
                    .get(0);
                drift_report_id = Some(id);
                drift = Some(report);
            }
            let decision = inner.config.rule.decide(&Situation {
                new_rows: new_rows as u64,
                has_production_model: production.is_some(),
                drift: drift.as_ref(),
            });
            // Every clean row so far, or only the last `window_batches` batches' worth.
            let window_start = match inner.config.window_batches {
                0 => i32::MIN,
                window => batch_number - (window.min(i32::MAX as u32) as i32) + 1,
            };
            let first_batch: i32 = transaction
                .query_one(
                    "SELECT coalesce(min(batch_number), $1) FROM ops.clean_batches
                     WHERE batch_number >= $2 AND batch_number <= $1",
                    &[&batch_number, &window_start],
                )
                .await?
                .get(0);
            let training_id: i64 = transaction
                .query_one(
                    "INSERT INTO ops.trainings (batch_number, decision, reason, new_rows, drift_report_id,
                                                first_batch, last_batch, split_seed)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    &[
                        &batch_number,
                        &if decision.trains() { "train" } else { "skip" },
                        &decision.reason(),
                        &new_rows,
                        &drift_report_id,
                        &first_batch,
                        &batch_number,
                        &(inner.config.split_seed as i64),
                    ],
                )
                .await?
                .get(0);
            let drift_summary = drift.as_ref().map(DriftSummary::of);
            let Decision::Train { reason } = decision else {
                return Ok(Some(TrainReport::Skipped {
                    batch_number,
                    reason: decision.reason().to_owned(),
                    drift: drift_summary,
                }));
            };
            let report = self
                .train(transaction, training_id, batch_number, first_batch, reason, drift_summary)
                .await?;
            Ok(Some(report))
        }
        .await;
        match outcome {
            Ok(Some(report)) => Ok(report),
            Ok(None) => Err(StageError::Rejected(format!(
                "batch {batch_number} is not in ops.clean_batches: nothing to train on"
            ))),
            Err(error) => Err(error.into()),
        }
    }

    async fn train(
        &self,
        transaction: &Transaction<'_>,
        training_id: i64,
        batch_number: i32,
        first_batch: i32,
        reason: String,
        drift: Option<DriftSummary>,
    ) -> anyhow::Result<TrainReport> {
        let inner = &self.inner;
        let config = inner.config.clone();
        let rows = clean::clean_rows(transaction, first_batch, batch_number).await?;
        let export = config
            .export_dir
            .as_ref()
            .map(|dir| dir.join(format!("training-{training_id:06}")));
        // Fitting is CPU work: off the async runtime.
        let (spec, fitted, sizes) =
            tokio::task::spawn_blocking(move || fit_all(&rows, &config, export.as_deref()))
                .await
                .context("the training task panicked")??;

        let mut candidates = Vec::new();
        for Scored {
            fitted,
            validation,
            test,
        } in fitted
        {
            let algorithm = fitted.model.algorithm();
            let fit_seconds = fitted.fit_seconds;
            let version = format!("t{training_id:06}-{algorithm}");
            let artifact_key = format!("models/{version}/model.json");
            if let Some(json) = fitted.xgboost_json {
                inner
                    .objects
                    .put(
                        &format!("models/{version}/xgboost.json"),
                        Bytes::from(json),
                        "application/json",
                    )
                    .await?;
            }
            let artifact = ModelArtifact {
                version: version.clone(),
                algorithm: algorithm.to_owned(),
                feature_spec: spec.clone(),
                model: fitted.model,
            };
            let body = serde_json::to_vec(&artifact)?;
            inner
                .objects
                .put(&artifact_key, Bytes::from(body), "application/json")
                .await?;
            let params = artifact.model.params();
            transaction
                .execute(
                    "INSERT INTO ops.model_versions (version, training_id, algorithm, params, validation,
                                                     test, fit_seconds, artifact_key, code_version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &version,
                        &training_id,
                        &algorithm,
                        &params,
                        &serde_json::to_value(validation)?,
                        &serde_json::to_value(test)?,
                        &fit_seconds,
                        &artifact_key,
                        &CODE_VERSION,
                    ],
                )
                .await?;
            candidates.push(Candidate {
                version,
                algorithm: algorithm.to_owned(),
                validation,
                test,
                fit_seconds,
                artifact_key,
            });
        }
        transaction
            .execute(
                "UPDATE ops.trainings SET rows_train = $2, rows_validation = $3, rows_test = $4,
                                          feature_spec = $5
                 WHERE id = $1",
                &[
                    &training_id,
                    &(sizes[0] as i64),
                    &(sizes[1] as i64),
                    &(sizes[2] as i64),
                    &serde_json::to_value(&spec)?,
                ],
            )
            .await?;
        let best = candidates
            .iter()
            .min_by(|a, b| a.validation.rmse.total_cmp(&b.validation.rmse))
            .map(|c| c.version.clone());
        outbox::enqueue(
            transaction,
            &appraise_core::keys::candidates(training_id),
            &serde_json::json!({
                "training_id": training_id,
                "batch_number": batch_number,
                "best": best,
                "candidates": candidates,
            }),
        )
        .await?;
        Ok(TrainReport::Trained {
            training_id,
            batch_number,
            reason,
            drift,
            rows_train: sizes[0],
            rows_validation: sizes[1],
            rows_test: sizes[2],
            candidates,
        })
    }
}

/// A fitted model with its validation and test metrics.
struct Scored {
    fitted: fit::FittedModel,
    validation: Metrics,
    test: Metrics,
}

/// Splits the rows, fits the features and every model, and scores them.
fn fit_all(
    rows: &[CleanRow],
    config: &TrainConfig,
    export: Option<&std::path::Path>,
) -> anyhow::Result<(FeatureSpec, Vec<Scored>, [usize; 3])> {
    let mut sides: [Vec<&CleanRow>; 3] = Default::default();
    for row in rows {
        let side = match split_side(row.row_hash, config.split_seed) {
            Side::Train => 0,
            Side::Validation => 1,
            Side::Test => 2,
        };
        sides[side].push(row);
    }
    let sizes = [sides[0].len(), sides[1].len(), sides[2].len()];
    if sizes.contains(&0) {
        anyhow::bail!("too few rows to split into train, validation and test: {sizes:?}");
    }
    if let Some(prefix) = export {
        let path = |side: &str| {
            let mut name = prefix.as_os_str().to_owned();
            name.push(format!("-{side}.csv"));
            std::path::PathBuf::from(name)
        };
        store::write_realtor_csv(&path("train"), &sides[0])?;
        store::write_realtor_csv(&path("test"), &sides[2])?;
    }
    let inputs: Vec<_> = sides[0].iter().map(|r| r.input()).collect();
    let prices: Vec<f64> = sides[0].iter().map(|r| r.price).collect();
    let (spec, train_features) = FeatureSpec::fit_cross(&inputs, &prices)?;
    let x = Matrix::from_rows(&train_features).context("feature rows")?;
    let matrix_of = |side: &[&CleanRow]| {
        Matrix::from_rows(
            &side
                .iter()
                .map(|r| spec.transform(&r.input()))
                .collect::<Vec<_>>(),
        )
    };
    let (validation_x, test_x) = (
        matrix_of(&sides[1]).context("validation rows")?,
        matrix_of(&sides[2]).context("test rows")?,
    );
    let validation_y: Vec<f64> = sides[1].iter().map(|r| r.price).collect();
    let test_y: Vec<f64> = sides[2].iter().map(|r| r.price).collect();

    let score = |model: &TrainedModel| -> anyhow::Result<(Metrics, Metrics)> {
        Ok((
            Metrics::compute(&validation_y, &model.predict(&validation_x)).context("validation")?,
            Metrics::compute(&test_y, &model.predict(&test_x)).context("test")?,
        ))
    };
    let fitted = fit::fit_models(&x, &prices, config)?
        .into_iter()
        .map(|fitted| {
            let (validation, test) = score(&fitted.model)?;
            Ok(Scored {
                fitted,
                validation,
                test,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((spec, fitted, sizes))
}
