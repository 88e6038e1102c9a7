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

pub mod config;

use std::sync::Arc;

use anyhow::Context;
use appraise_core::{
    clean::{self, Side, split_side},
    db::{DbPool, locks},
    events::{ObjectCreated, Trigger},
    keys,
    model::{ModelArtifact, ProductionPointer, metrics::Metrics},
    objects::ObjectStore,
    outbox,
    runtime::{self, StageError, StageResult},
};
use serde::{Deserialize, Serialize};
use tokio_postgres::Transaction;

pub use crate::config::{PromoteConfig, PromotionRule};

/// A model and its score on the evaluation rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub version: String,
    pub metrics: Metrics,
}

/// What one object event did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PromoteReport {
    /// A decision was taken (promoted or rejected).
    Decided {
        training_id: i64,
        promoted: bool,
        reason: String,
        candidate: Scored,
        production: Option<Scored>,
        evaluation_rows: usize,
    },
    Duplicate {
        training_id: i64,
    },
    Ignored {
        key: String,
        reason: String,
    },
}

/// The stage, with its clients built once. Cheap to clone.
#[derive(Clone)]
pub struct Promote {
    inner: Arc<Inner>,
}

struct Inner {
    config: PromoteConfig,
    db: DbPool,
    objects: ObjectStore,
}

impl Promote {
    pub fn new(config: PromoteConfig, db: DbPool, objects: ObjectStore) -> Self {
        Promote {
            inner: Arc::new(Inner {
                config,
                db,
                objects,
            }),
        }
    }

    /// The entry point the runtime calls.
    pub async fn handle(&self, trigger: Trigger) -> StageResult {
        let object = runtime::object_event(trigger, "promote runs on candidates/ object events")?;
        runtime::report(&self.promote_object(&object).await?)
    }

    pub async fn promote_object(
        &self,
        object: &ObjectCreated,
    ) -> Result<PromoteReport, StageError> {
        let Some(training_id) = keys::training_of_candidates(&object.key) else {
            return Ok(PromoteReport::Ignored {
                key: object.key.clone(),
                reason: "not a candidates/training-NNNNNN.json key".to_owned(),
            });
        };
        let report =
            outbox::commit_then_flush(&self.inner.db, &self.inner.objects, async |transaction| {
                self.decide(transaction, training_id).await
            })
            .await?;
        if let PromoteReport::Decided { promoted, .. } = &report {
            let decision = if *promoted { "promoted" } else { "rejected" };
            ::metrics::counter!("promotion_decisions_total", "decision" => decision).increment(1);
        }
        Ok(report)
    }

    async fn decide(
        &self,
        transaction: &Transaction<'_>,
        training_id: i64,
    ) -> Result<PromoteReport, StageError> {
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&locks::PROMOTE])
            .await
            .map_err(unavailable)?;
        if transaction
            .query_opt(
                "SELECT 1 FROM ops.promotions WHERE training_id = $1",
                &[&training_id],
            )
            .await
            .map_err(unavailable)?
            .is_some()
        {
            return Ok(PromoteReport::Duplicate { training_id });
        }
        let training = transaction
            .query_opt(
                "SELECT first_batch, last_batch, split_seed FROM ops.trainings
                 WHERE id = $1 AND decision = 'train'",
                &[&training_id],
            )
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                StageError::Rejected(format!("training {training_id} is not a recorded training"))
            })?;
        let (first_batch, last_batch, split_seed): (i32, i32, i64) =
            (training.get(0), training.get(1), training.get(2));
        let candidate = transaction
            .query_opt(
                "SELECT version, artifact_key FROM ops.model_versions WHERE training_id = $1
                 ORDER BY (validation->>'rmse')::float8, version LIMIT 1",
                &[&training_id],
            )
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                StageError::Rejected(format!("training {training_id} has no model versions"))
            })?;
        let (candidate_version, candidate_key): (String, String) =
            (candidate.get(0), candidate.get(1));
        let production: Option<(String, String)> = transaction
            .query_opt(
                "SELECT p.version, v.artifact_key FROM ops.production p
                 JOIN ops.model_versions v USING (version)",
                &[],
            )
            .await
            .map_err(unavailable)?
            .map(|row| (row.get(0), row.get(1)));

        // The held-out rows: the candidate training's test side.
        let rows = clean::clean_rows(transaction, first_batch, last_batch).await?;
        let test_rows: Vec<_> = rows
            .into_iter()
            .filter(|r| split_side(r.row_hash, split_seed as u64) == Side::Test)
            .collect();
        if test_rows.is_empty() {
            return Err(StageError::Rejected(format!(
                "training {training_id} has no test rows to score on"
            )));
        }
        let candidate_artifact = self.artifact(&candidate_key).await?;
        let production_artifact = match &production {
            Some((_, key)) => Some(self.artifact(key).await?),
            None => None,
        };
        let evaluation_rows = test_rows.len();
        let candidate_algorithm = candidate_artifact.algorithm.clone();
        let (candidate_metrics, production_metrics) = tokio::task::spawn_blocking(move || {
            let actual: Vec<f64> = test_rows.iter().map(|r| r.price).collect();
            let score = |artifact: &ModelArtifact| {
                let predicted: Vec<f64> = test_rows
                    .iter()
                    .map(|r| artifact.predict(&r.input()))
                    .collect();
                Metrics::compute(&actual, &predicted).expect("rows to score")
            };
            (
                score(&candidate_artifact),
                production_artifact.as_ref().map(score),
            )
        })
        .await
        .map_err(|e| StageError::Unavailable(format!("the scoring task failed: {e}")))?;

        let verdict = self.inner.config.rule.decide(
            candidate_metrics.rmse,
            production_metrics.as_ref().map(|m| m.rmse),
        );
        let candidate = Scored {
            version: candidate_version.clone(),
            metrics: candidate_metrics,
        };
        let production = production
            .zip(production_metrics)
            .map(|((version, _), metrics)| Scored { version, metrics });
        let promotion_id: i64 = transaction
            .query_one(
                "INSERT INTO ops.promotions (training_id, candidate_version, production_version,
                     decision, reason, candidate_metrics, production_metrics, evaluation_rows)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &training_id,
                    &candidate.version,
                    &production.as_ref().map(|p| &p.version),
                    &if verdict.promote {
                        "promoted"
                    } else {
                        "rejected"
                    },
                    &verdict.reason,
                    &json(&candidate.metrics)?,
                    &production.as_ref().map(|p| json(&p.metrics)).transpose()?,
                    &(evaluation_rows as i64),
                ],
            )
            .await
            .map_err(unavailable)?
            .get(0);
        if verdict.promote {
            let promoted_at: time::OffsetDateTime = transaction
                .query_one(
                    "INSERT INTO ops.production (singleton, version, promoted_at, promotion_id)
                     VALUES (true, $1, now(), $2)
                     ON CONFLICT (singleton) DO UPDATE
                     SET version = excluded.version, promoted_at = excluded.promoted_at,
                         promotion_id = excluded.promotion_id
                     RETURNING promoted_at",
                    &[&candidate.version, &promotion_id],
                )
                .await
                .map_err(unavailable)?
                .get(0);
            let pointer = ProductionPointer {
                version: candidate.version.clone(),
                algorithm: candidate_algorithm,
                artifact_key: candidate_key,
                promotion_id,
                training_id,
                test: candidate.metrics,
                promoted_at: promoted_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .context("formatting promoted_at")?,
            };
            outbox::enqueue_replacing(transaction, keys::PRODUCTION_POINTER, &json(&pointer)?)
                .await?;
        }
        Ok(PromoteReport::Decided {
            training_id,
            promoted: verdict.promote,
            reason: verdict.reason,
            candidate,
            production,
            evaluation_rows,
        })
    }

    async fn artifact(&self, key: &str) -> Result<ModelArtifact, StageError> {
        let bytes = self.inner.objects.get(key).await?.ok_or_else(|| {
            StageError::Unavailable(format!("artifact {key} is not in the bucket"))
        })?;
        ModelArtifact::from_json(&bytes)
            .map_err(|e| StageError::Rejected(format!("artifact {key}: {e}")))
    }
}

fn json<T: Serialize>(value: &T) -> Result<serde_json::Value, StageError> {
    serde_json::to_value(value).map_err(|e| StageError::Unavailable(e.to_string()))
}

fn unavailable(error: tokio_postgres::Error) -> StageError {
    StageError::Unavailable(format!("database: {error}"))
}
