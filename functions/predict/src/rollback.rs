//! Rollback: `POST /models/{version}/promote` puts a model that was in production before back
//! in production, by hand.
//!
//! It moves the pointer the way promote does, so everything downstream sees an ordinary
//! promotion: under the promote advisory lock (a rollback never interleaves with a promote
//! decision), one transaction records the audit row in `ops.promotions` (kind `rollback`, the
//! reason, the version it replaces), points `ops.production` at the version, and queues
//! `production/current.json` in the outbox; the object is written after the commit
//! ([`outbox::commit_then_flush`]). Its object event reaches a predictor, and every replica
//! also notices it by its own poll of the pointer, as after any promotion; the replica that
//! answered the request reloads at once.
//!
//! With MLflow mirroring on (`MLFLOW_TRACKING_URI`), the same transaction queues an
//! [`appraise_mlflow::Work::Rollback`] in `ops.mlflow_outbox` (key `rollback-<promotion_id>`):
//! the mirror moves the `champion` alias back to the version's MLflow model version and tags it
//! with the reason, in queue order, after the rollback commits
//! ([`Mirror::drain_after_commit`](appraise_mlflow::Mirror::drain_after_commit)).
//!
//! Only a version that was in production before (promoted by promote, or rolled back to) can
//! be put back: a candidate promote rejected or never judged is not a rollback target.

use appraise_core::{
    db::{DbPool, locks},
    keys,
    model::ProductionPointer,
    objects::ObjectStore,
    outbox,
    runtime::StageError,
};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

/// A rollback done.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolledBack {
    pub model_version: String,
    /// The model it replaced (none when nothing was in production).
    pub previous_version: Option<String>,
    /// Its audit row in `ops.promotions`.
    pub promotion_id: i64,
    pub promoted_at: String,
    pub reason: String,
}

/// What a rollback request came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    RolledBack(RolledBack),
    UnknownVersion,
    NeverInProduction,
    AlreadyInProduction,
}

/// The reason recorded when the request gives none.
pub const DEFAULT_REASON: &str = "rolled back by hand";

/// Puts `version` back in production, recording `reason`; queues it for MLflow when
/// `mirrored`.
pub async fn rollback(
    db: &DbPool,
    objects: &ObjectStore,
    version: &str,
    reason: &str,
    mirrored: bool,
) -> Result<Outcome, StageError> {
    outbox::commit_then_flush(db, objects, async |transaction| {
        let database =
            |error: tokio_postgres::Error| StageError::Unavailable(format!("database: {error}"));
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&locks::PROMOTE])
            .await
            .map_err(database)?;
        let Some(model) = transaction
            .query_opt(
                "SELECT v.algorithm, v.artifact_key, v.training_id, v.test, t.rows_test,
                        EXISTS (SELECT 1 FROM ops.promotions p
                                WHERE p.candidate_version = v.version AND p.decision = 'promoted')
                 FROM ops.model_versions v JOIN ops.trainings t ON t.id = v.training_id
                 WHERE v.version = $1",
                &[&version],
            )
            .await
            .map_err(database)?
        else {
            return Ok(Outcome::UnknownVersion);
        };
        if !model.get::<_, bool>(5) {
            return Ok(Outcome::NeverInProduction);
        }
        let previous: Option<String> = transaction
            .query_opt("SELECT version FROM ops.production", &[])
            .await
            .map_err(database)?
            .map(|row| row.get(0));
        if previous.as_deref() == Some(version) {
            return Ok(Outcome::AlreadyInProduction);
        }
        let training_id: i64 = model.get(2);
        let test: serde_json::Value = model.get(3);
        let promotion_id: i64 = transaction
            .query_one(
                "INSERT INTO ops.promotions (training_id, candidate_version, production_version,
                     decision, reason, candidate_metrics, evaluation_rows, kind)
                 VALUES ($1, $2, $3, 'promoted', $4, $5, $6, 'rollback') RETURNING id",
                &[
                    &training_id,
                    &version,
                    &previous,
                    &reason,
                    &test,
                    &model.get::<_, Option<i64>>(4).unwrap_or(0),
                ],
            )
            .await
            .map_err(database)?
            .get(0);
        let promoted_at = appraise_core::production::point_at(transaction, version, promotion_id)
            .await
            .map_err(database)?;
        let promoted_at = promoted_at
            .format(&Rfc3339)
            .map_err(|e| StageError::Unavailable(format!("formatting promoted_at: {e}")))?;
        let pointer = ProductionPointer {
            version: version.to_owned(),
            algorithm: model.get(0),
            artifact_key: model.get(1),
            promotion_id,
            training_id,
            test: serde_json::from_value(test)
                .map_err(|e| StageError::Unavailable(format!("the recorded test metrics: {e}")))?,
            promoted_at: promoted_at.clone(),
        };
        outbox::enqueue_replacing(transaction, keys::PRODUCTION_POINTER, &pointer).await?;
        if mirrored {
            let work = appraise_mlflow::Work::Rollback(appraise_mlflow::RollbackDone {
                promotion_id,
                version: version.to_owned(),
                previous_version: previous.clone(),
                reason: reason.to_owned(),
            });
            appraise_mlflow::queue(transaction, &work).await?;
        }
        Ok(Outcome::RolledBack(RolledBack {
            model_version: version.to_owned(),
            previous_version: previous,
            promotion_id,
            promoted_at,
            reason: reason.to_owned(),
        }))
    })
    .await
}
