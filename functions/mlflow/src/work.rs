//! What there is to mirror, as train, promote and the predictor's rollback queue it in `ops.mlflow_outbox`: plain data,
//! complete enough that the mirror needs nothing but the bucket (for the artifacts) to write
//! it to MLflow, however late it runs.

use appraise_core::model::metrics::Metrics;
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

/// One piece of work for the mirror.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Work {
    /// A training that trained: a run with one nested run and one registered version per model.
    Training(TrainingRun),
    /// A promotion decision: tags on the judged version, and the `champion` alias when promoted.
    Promotion(PromotionVerdict),
    /// A rollback by hand (the predictor's `POST /models/{version}/promote`): the `champion`
    /// alias back on the version put back, and why as its tag.
    Rollback(RollbackDone),
}

impl Work {
    /// The key under which it is queued once: `training-NNNNNN`, `promotion-NNNNNN` (the
    /// training's id) or `rollback-NNNNNN` (the rollback's row in `ops.promotions`).
    pub fn key(&self) -> String {
        match self {
            Work::Training(training) => training_key(training.training_id),
            Work::Promotion(promotion) => format!("promotion-{:06}", promotion.training_id),
            Work::Rollback(rollback) => format!("rollback-{:06}", rollback.promotion_id),
        }
    }
}

/// The tag value that identifies a training's run (and its run name).
pub fn training_key(training_id: i64) -> String {
    format!("training-{training_id:06}")
}

/// A training, as its MLflow run shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRun {
    pub training_id: i64,
    /// The clean batch whose event decided it.
    pub batch_number: i32,
    /// The batches its rows come from, both included.
    pub first_batch: i32,
    pub last_batch: i32,
    pub new_rows: i64,
    pub rows_train: usize,
    pub rows_validation: usize,
    pub rows_test: usize,
    pub split_seed: i64,
    /// The drift test against the production model's rows; `None` when there was no
    /// production model to test against.
    pub drift: Option<DriftVerdict>,
    /// Why it trained.
    pub reason: String,
    pub code_version: String,
    /// When it was recorded, in milliseconds since the epoch: every metric's timestamp, so
    /// logging them again is recognised as the same values.
    pub trained_at_ms: i64,
    pub models: Vec<ModelRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftVerdict {
    pub drifted: bool,
    pub report_id: i64,
    pub worst_feature: Option<String>,
}

/// One trained model: a nested run and a version of the registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRun {
    /// appraise's version name, `t{training:06}-{algorithm}`.
    pub version: String,
    pub algorithm: String,
    /// The model's parameters as `ops.model_versions.params` holds them (a JSON object).
    pub params: serde_json::Value,
    pub validation: Metrics,
    pub test: Metrics,
    pub fit_seconds: f64,
    /// The bucket's keys of its artifacts (`models/<version>/model.json`, and
    /// `xgboost.json` for XGBoost); each is logged under its file name.
    pub artifact_keys: Vec<String>,
}

/// A promotion decision on a training's best candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionVerdict {
    pub training_id: i64,
    /// The judged candidate's appraise version name.
    pub candidate_version: String,
    pub promoted: bool,
    pub reason: String,
}

/// A model put back in production by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackDone {
    /// Its audit row in `ops.promotions` (kind `rollback`).
    pub promotion_id: i64,
    /// The appraise version name put back in production.
    pub version: String,
    /// The version it replaced, if any.
    pub previous_version: Option<String>,
    pub reason: String,
}

/// Queues `work` in the caller's transaction (so it exists exactly when the stage's result
/// does). Queuing the same work again keeps the first.
pub async fn queue(client: &impl GenericClient, work: &Work) -> anyhow::Result<()> {
    let key = work.key();
    client
        .execute(
            "INSERT INTO ops.mlflow_outbox (work_key, work) VALUES ($1, $2)
             ON CONFLICT (work_key) DO NOTHING",
            &[&key, &serde_json::to_value(work)?],
        )
        .await
        .map_err(|error| anyhow::anyhow!("queueing {key} in ops.mlflow_outbox: {error}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollback_is_queued_under_its_promotion_id_and_reads_back_as_queued() {
        let work = Work::Rollback(RollbackDone {
            promotion_id: 42,
            version: "t000001-ridge".to_owned(),
            previous_version: Some("t000002-xgboost".to_owned()),
            reason: "rolled back by hand".to_owned(),
        });
        assert_eq!(work.key(), "rollback-000042");
        let stored = serde_json::to_value(&work).unwrap();
        assert_eq!(stored["kind"], "rollback");
        assert_eq!(serde_json::from_value::<Work>(stored).unwrap(), work);
    }
}
