//! The promote stage: on a `candidates/training-NNNNNN.json` object event, decide whether the
//! training's best model replaces the one in production.
//!
//! 1. Under a global advisory lock (the pointer moves one decision at a time), skip a training
//!    that was decided before (a redelivered or concurrent event).
//! 2. Take the training's best candidate (lowest validation RMSE) and the production model, and
//!    score both on the same held-out rows: the candidate training's test rows, which no model
//!    trained with the same split seed has seen.
//! 3. Apply the [`PromotionRule`] and record the decision with both scores and the reason,
//!    promoted or rejected, in `ops.promotions`.
//! 4. When promoted, move `ops.production` in the same transaction and queue
//!    `production/current.json` (a [`ProductionPointer`]) in the outbox: it is written after the
//!    commit and wakes every predictor.
//!
//! Before its own training, every invocation catches up: it decides, oldest first, each
//! training older than the event's that trained (`decision = 'train'`) and has no
//! `ops.promotions` row — its candidates event was lost (a dropped in-memory delivery, a
//! Lambda event in the failure queue). Each is its own transaction under the lock, so the
//! pointer moves in training order; the report's `caught_up` lists them. A training that can
//! never be decided (no test rows, an unreadable artifact) is logged and passed over, as its own
//! event would have been refused; one that fails for now fails the invocation (503, retried).
//!
//! When an MLflow [`Mirror`] is configured (`MLFLOW_TRACKING_URI`), each decision also queues
//! an [`appraise_mlflow::PromotionVerdict`] in `ops.mlflow_outbox`, in the same transaction:
//! the judged version gets the decision and reason as tags and, when promoted, the `champion`
//! alias. Every invocation starts a drain of that queue after its work
//! ([`Mirror::drain_after_commit`]: in the background, or on Lambda within the invocation's
//! deadline).
//!
//! A training id is its clean batch's number (see the train stage). An event for a training
//! that is not recorded is answered 503 (the platform retries) while its candidates object
//! exists and was written less than `STAGE_PENDING_WINDOW_SECS` (default 600) ago, by the
//! object's `Last-Modified`: the training's commit may not be visible yet. When the object is
//! older, or absent, the answer is a final 400.

pub mod config;
pub mod decision;
pub mod store;

pub use appraise_core::reports::{ModelScore, PromoteReport};

use std::sync::Arc;

use anyhow::Context;
use appraise_core::{
    catch_up,
    clean::{self, CleanRow, Side, split_side},
    db::DbPool,
    events::{ObjectCreated, Trigger},
    keys,
    model::{ModelArtifact, ProductionPointer, metrics::Metrics},
    objects::ObjectStore,
    outbox,
    runs::{Attempt, Stage},
    runtime::{self, StageError, StageResult},
};
use appraise_mlflow::Mirror;
use serde::Serialize;
use tokio_postgres::Transaction;

pub use crate::{config::PromoteConfig, decision::PromotionRule};

/// The stage, with its clients built once. Cheap to clone.
#[derive(Clone)]
pub struct Promote {
    inner: Arc<Inner>,
}

struct Inner {
    config: PromoteConfig,
    db: DbPool,
    objects: ObjectStore,
    mirror: Option<Mirror>,
}

impl Promote {
    pub fn new(config: PromoteConfig, db: DbPool, objects: ObjectStore) -> Self {
        Promote::with_mlflow(config, db, objects, None)
    }

    /// The stage, mirroring its decisions to MLflow through `mirror` when there is one.
    pub fn with_mlflow(
        config: PromoteConfig,
        db: DbPool,
        objects: ObjectStore,
        mirror: Option<Mirror>,
    ) -> Self {
        Promote {
            inner: Arc::new(Inner {
                config,
                db,
                objects,
                mirror,
            }),
        }
    }

    /// The entry point the runtime calls.
    pub async fn handle(&self, trigger: Trigger) -> StageResult {
        let object = runtime::object_event(trigger, "promote runs on candidates/ object events")?;
        runtime::report(&self.promote_object(&object).await?)
    }

    /// Handles one `candidates/training-NNNNNN.json` event for training `N`: first decides,
    /// oldest first, every training older than `N` that trained and has no promotion decision
    /// (its event was lost), each in its own transaction under the promote lock; then `N`.
    ///
    /// A training that is not recorded is retried (503) while its candidates object is younger
    /// than `STAGE_PENDING_WINDOW_SECS` (its rows may not be visible yet), and rejected (400)
    /// otherwise.
    pub async fn promote_object(
        &self,
        object: &ObjectCreated,
    ) -> Result<PromoteReport, StageError> {
        let outcome = self.decide_object(object).await;
        // After the work, whatever its outcome: this decision and any mirroring that waits.
        if let Some(mirror) = &self.inner.mirror {
            mirror.drain_after_commit().await;
        }
        outcome
    }

    async fn decide_object(&self, object: &ObjectCreated) -> Result<PromoteReport, StageError> {
        let Some(training_id) = keys::training_of_candidates(&object.key) else {
            return Ok(PromoteReport::Ignored {
                key: object.key.clone(),
                reason: "not a candidates/training-NNNNNN.json key".to_owned(),
            });
        };
        let pending =
            outbox::commit_then_flush(&self.inner.db, &self.inner.objects, async |transaction| {
                undecided_before(transaction, training_id)
                    .await
                    .map_err(unavailable)
            })
            .await?;
        let mut caught_up = Vec::new();
        for training in pending {
            match self.decide_training(training).await {
                Ok(Some(PromoteReport::Duplicate { .. })) | Ok(None) => {}
                Ok(Some(report)) => {
                    tracing::info!(
                        training,
                        ?report,
                        "caught up on a training whose event never came"
                    );
                    caught_up.push(training);
                }
                // It can never be decided (no test rows, an unreadable artifact): as if its
                // own event had been refused. Do not let it hold up the trainings after it.
                Err(StageError::Rejected(reason)) => {
                    tracing::warn!(
                        training,
                        reason,
                        "a training caught up on cannot be decided"
                    );
                }
                Err(StageError::Unavailable(reason)) => {
                    return Err(StageError::Unavailable(format!(
                        "catching up on training {training}, whose event never came, before \
                         training {training_id}: {reason}"
                    )));
                }
            }
        }
        match self.decide_training(training_id).await? {
            Some(report) => Ok(report.after(caught_up)),
            None => Err(self.not_visible(training_id, &object.key, &caught_up).await),
        }
    }

    /// Decides one training in its own transaction; `None` when it is not a recorded training.
    /// The decision is recorded in `ops.stage_runs` in its transaction, a failure after it.
    async fn decide_training(&self, training_id: i64) -> Result<Option<PromoteReport>, StageError> {
        // A training's id is its batch's number.
        let report = Attempt::start(Stage::Promote)
            .commit_then_flush(
                &self.inner.db,
                &self.inner.objects,
                i32::try_from(training_id).ok(),
                async |transaction| self.decide(transaction, training_id).await,
            )
            .await?;
        if let Some(PromoteReport::Decided { promoted, .. }) = &report {
            let decision = if *promoted { "promoted" } else { "rejected" };
            ::metrics::counter!("promotion_decisions_total", "decision" => decision).increment(1);
        }
        Ok(report)
    }

    /// The answer for an event whose training is not recorded: retry while the candidates
    /// object is young (the training's commit may not be visible yet, or may be redone after it
    /// was lost), reject when it is old or absent.
    async fn not_visible(&self, training_id: i64, key: &str, caught_up: &[i64]) -> StageError {
        let mut missing = format!("training {training_id} is not a recorded training");
        if !caught_up.is_empty() {
            missing.push_str(&format!(" (caught up on trainings {caught_up:?} first)"));
        }
        catch_up::not_visible_yet(
            &self.inner.objects,
            key,
            self.inner.config.pending_window,
            &format!("training {training_id}"),
            &missing,
        )
        .await
    }

    /// Decides one training under the promote lock: its best candidate against the production
    /// model on the same held-out rows, the decision recorded and, when promoted, the pointer
    /// moved. `None` when it is not a recorded training that trained.
    async fn decide(
        &self,
        transaction: &Transaction<'_>,
        training_id: i64,
    ) -> Result<Option<PromoteReport>, StageError> {
        store::lock_promote(transaction)
            .await
            .map_err(unavailable)?;
        if store::promotion_decided(transaction, training_id)
            .await
            .map_err(unavailable)?
        {
            return Ok(Some(PromoteReport::Duplicate {
                training_id,
                caught_up: Vec::new(),
            }));
        }
        let Some(training) = store::trained_rows(transaction, training_id)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let candidate = store::best_candidate(transaction, training_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                StageError::Rejected(format!("training {training_id} has no model versions"))
            })?;
        let production = store::production_model(transaction)
            .await
            .map_err(unavailable)?;

        let test_rows = held_out_rows(transaction, training_id, &training).await?;
        let candidate_artifact = self.artifact(&candidate.artifact_key).await?;
        let production_artifact = match &production {
            Some(model) => Some(self.artifact(&model.artifact_key).await?),
            None => None,
        };
        let evaluation_rows = test_rows.len();
        let candidate_algorithm = candidate_artifact.algorithm.clone();
        let (candidate_metrics, production_metrics) =
            score(test_rows, candidate_artifact, production_artifact).await?;

        let verdict = self.inner.config.rule.decide(
            candidate_metrics.rmse,
            production_metrics.as_ref().map(|m| m.rmse),
        );
        let candidate_score = ModelScore {
            version: candidate.version.clone(),
            metrics: candidate_metrics,
        };
        let production = production
            .zip(production_metrics)
            .map(|(model, metrics)| ModelScore {
                version: model.version,
                metrics,
            });
        let promotion_id = store::insert_promotion(
            transaction,
            &store::PromotionRecord {
                training_id,
                candidate_version: &candidate_score.version,
                production_version: production.as_ref().map(|p| p.version.as_str()),
                promoted: verdict.promote,
                reason: &verdict.reason,
                candidate_metrics: json(&candidate_score.metrics)?,
                production_metrics: production.as_ref().map(|p| json(&p.metrics)).transpose()?,
                evaluation_rows: evaluation_rows as i64,
            },
        )
        .await
        .map_err(unavailable)?;
        if self.inner.mirror.is_some() {
            let work = appraise_mlflow::Work::Promotion(appraise_mlflow::PromotionVerdict {
                training_id,
                candidate_version: candidate_score.version.clone(),
                promoted: verdict.promote,
                reason: verdict.reason.clone(),
            });
            appraise_mlflow::queue(transaction, &work).await?;
        }
        if verdict.promote {
            let promoted_at =
                move_production(transaction, &candidate_score.version, promotion_id).await?;
            let pointer = ProductionPointer {
                version: candidate_score.version.clone(),
                algorithm: candidate_algorithm,
                artifact_key: candidate.artifact_key,
                promotion_id,
                training_id,
                test: candidate_score.metrics,
                promoted_at,
            };
            outbox::enqueue_replacing(transaction, keys::PRODUCTION_POINTER, &json(&pointer)?)
                .await?;
        }
        Ok(Some(PromoteReport::Decided {
            training_id,
            promoted: verdict.promote,
            reason: verdict.reason,
            candidate: candidate_score,
            production,
            evaluation_rows,
            caught_up: Vec::new(),
        }))
    }

    async fn artifact(&self, key: &str) -> Result<ModelArtifact, StageError> {
        let bytes = self.inner.objects.get(key).await?.ok_or_else(|| {
            StageError::Unavailable(format!("artifact {key} is not in the bucket"))
        })?;
        ModelArtifact::from_json(&bytes)
            .map_err(|e| StageError::Rejected(format!("artifact {key}: {e}")))
    }
}

/// The trainings older than `training_id` that trained and have no promotion decision, oldest
/// first (read under the promote lock).
async fn undecided_before(
    transaction: &Transaction<'_>,
    training_id: i64,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    store::lock_promote(transaction).await?;
    store::undecided_before(transaction, training_id).await
}

/// The held-out rows: the training's test side, which no model trained with the same split
/// seed has seen.
async fn held_out_rows(
    transaction: &Transaction<'_>,
    training_id: i64,
    training: &store::TrainedRows,
) -> Result<Vec<CleanRow>, StageError> {
    let rows = clean::clean_rows(transaction, training.first_batch, training.last_batch).await?;
    let test_rows: Vec<_> = rows
        .into_iter()
        .filter(|r| split_side(r.row_hash, training.split_seed as u64) == Side::Test)
        .collect();
    if test_rows.is_empty() {
        return Err(StageError::Rejected(format!(
            "training {training_id} has no test rows to score on"
        )));
    }
    Ok(test_rows)
}

/// The candidate's and the production model's metrics on the same rows (CPU work: off the
/// async runtime).
async fn score(
    rows: Vec<CleanRow>,
    candidate: ModelArtifact,
    production: Option<ModelArtifact>,
) -> Result<(Metrics, Option<Metrics>), StageError> {
    tokio::task::spawn_blocking(move || {
        let actual: Vec<f64> = rows.iter().map(|r| r.price).collect();
        let score = |artifact: &ModelArtifact| {
            let predicted: Vec<f64> = rows.iter().map(|r| artifact.predict(&r.input())).collect();
            Metrics::compute(&actual, &predicted).expect("rows to score")
        };
        (score(&candidate), production.as_ref().map(score))
    })
    .await
    .map_err(|e| StageError::Unavailable(format!("the scoring task failed: {e}")))
}

/// Points `ops.production` at `version`; returns when, in RFC 3339, as the database recorded
/// it.
async fn move_production(
    transaction: &Transaction<'_>,
    version: &str,
    promotion_id: i64,
) -> Result<String, StageError> {
    let promoted_at = appraise_core::production::point_at(transaction, version, promotion_id)
        .await
        .map_err(unavailable)?;
    Ok(promoted_at
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting promoted_at")?)
}

fn json<T: Serialize>(value: &T) -> Result<serde_json::Value, StageError> {
    serde_json::to_value(value).map_err(|e| StageError::Unavailable(e.to_string()))
}

fn unavailable(error: tokio_postgres::Error) -> StageError {
    StageError::Unavailable(format!("database: {error}"))
}
