//! What promote reads and writes in PostgreSQL: every SQL statement of the stage, each a named
//! function over a transaction (the flow that calls them is in the crate root).

use appraise_core::db::locks;
use tokio_postgres::{Error, Transaction};

/// Takes the global promote advisory lock until the transaction ends: the production pointer
/// moves one decision at a time.
pub async fn lock_promote(transaction: &Transaction<'_>) -> Result<(), Error> {
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&locks::PROMOTE])
        .await?;
    Ok(())
}

/// The trainings older than `training_id` that trained and have no promotion decision, oldest
/// first.
pub async fn undecided_before(
    transaction: &Transaction<'_>,
    training_id: i64,
) -> Result<Vec<i64>, Error> {
    Ok(transaction
        .query(
            "SELECT t.id FROM ops.trainings t
             WHERE t.decision = 'train' AND t.id < $1
               AND NOT EXISTS (SELECT 1 FROM ops.promotions p WHERE p.training_id = t.id)
             ORDER BY t.id",
            &[&training_id],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Whether the training has a promotion decision already.
pub async fn promotion_decided(
    transaction: &Transaction<'_>,
    training_id: i64,
) -> Result<bool, Error> {
    Ok(transaction
        .query_opt(
            "SELECT 1 FROM ops.promotions WHERE training_id = $1",
            &[&training_id],
        )
        .await?
        .is_some())
}

/// The rows a training used, and how it split them.
pub struct TrainedRows {
    /// The clean batches of its rows, both included.
    pub first_batch: i32,
    pub last_batch: i32,
    pub split_seed: i64,
}

/// The rows of training `training_id`; `None` unless it is a recorded training that trained.
pub async fn trained_rows(
    transaction: &Transaction<'_>,
    training_id: i64,
) -> Result<Option<TrainedRows>, Error> {
    Ok(transaction
        .query_opt(
            "SELECT first_batch, last_batch, split_seed FROM ops.trainings
             WHERE id = $1 AND decision = 'train'",
            &[&training_id],
        )
        .await?
        .map(|row| TrainedRows {
            first_batch: row.get(0),
            last_batch: row.get(1),
            split_seed: row.get(2),
        }))
}

/// A recorded model version and where its artifact is.
pub struct StoredModel {
    pub version: String,
    pub artifact_key: String,
}

/// The training's model of lowest validation RMSE (the first version of equals), if it has
/// any.
pub async fn best_candidate(
    transaction: &Transaction<'_>,
    training_id: i64,
) -> Result<Option<StoredModel>, Error> {
    Ok(transaction
        .query_opt(
            "SELECT version, artifact_key FROM ops.model_versions WHERE training_id = $1
             ORDER BY (validation->>'rmse')::float8, version LIMIT 1",
            &[&training_id],
        )
        .await?
        .map(|row| StoredModel {
            version: row.get(0),
            artifact_key: row.get(1),
        }))
}

/// The production model, if there is one.
pub async fn production_model(transaction: &Transaction<'_>) -> Result<Option<StoredModel>, Error> {
    Ok(transaction
        .query_opt(
            "SELECT p.version, v.artifact_key FROM ops.production p
             JOIN ops.model_versions v USING (version)",
            &[],
        )
        .await?
        .map(|row| StoredModel {
            version: row.get(0),
            artifact_key: row.get(1),
        }))
}

/// A promotion decision, as `ops.promotions` records it.
pub struct PromotionRecord<'a> {
    pub training_id: i64,
    pub candidate_version: &'a str,
    pub production_version: Option<&'a str>,
    pub promoted: bool,
    pub reason: &'a str,
    pub candidate_metrics: serde_json::Value,
    pub production_metrics: Option<serde_json::Value>,
    pub evaluation_rows: i64,
}

/// Records a promotion decision, promoted or rejected; returns its id.
pub async fn insert_promotion(
    transaction: &Transaction<'_>,
    promotion: &PromotionRecord<'_>,
) -> Result<i64, Error> {
    Ok(transaction
        .query_one(
            "INSERT INTO ops.promotions (training_id, candidate_version, production_version,
                 decision, reason, candidate_metrics, production_metrics, evaluation_rows)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &promotion.training_id,
                &promotion.candidate_version,
                &promotion.production_version,
                &if promotion.promoted {
                    "promoted"
                } else {
                    "rejected"
                },
                &promotion.reason,
                &promotion.candidate_metrics,
                &promotion.production_metrics,
                &promotion.evaluation_rows,
            ],
        )
        .await?
        .get(0))
}
