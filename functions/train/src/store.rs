//! What train reads and writes in PostgreSQL: every SQL statement of the stage, each a named
//! function over a transaction (the flow that calls them is in the crate root).

use std::collections::HashSet;

use appraise_core::{
    db::locks,
    drift::DriftReport,
    model::{GlobalImportance, metrics::Metrics},
};
use tokio_postgres::Transaction;

/// Takes the global train advisory lock until the transaction ends: trainings, and the repairs
/// before them, happen one at a time.
pub async fn lock_train(transaction: &Transaction<'_>) -> anyhow::Result<()> {
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&locks::TRAIN])
        .await?;
    Ok(())
}

/// The clean batches older than `batch_number` that have no training decision, oldest first.
pub async fn undecided_batches_before(
    transaction: &Transaction<'_>,
    batch_number: i32,
) -> anyhow::Result<Vec<i32>> {
    Ok(transaction
        .query(
            "SELECT c.batch_number FROM ops.clean_batches c
             WHERE c.batch_number < $1
               AND NOT EXISTS (SELECT 1 FROM ops.trainings t WHERE t.batch_number = c.batch_number)
             ORDER BY c.batch_number",
            &[&batch_number],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Every recorded model version.
pub async fn model_versions(transaction: &Transaction<'_>) -> anyhow::Result<HashSet<String>> {
    Ok(transaction
        .query("SELECT version FROM ops.model_versions", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// The recorded model versions whose name starts with `prefix`.
pub async fn model_versions_starting_with(
    transaction: &Transaction<'_>,
    prefix: &str,
) -> anyhow::Result<Vec<String>> {
    Ok(transaction
        .query(
            "SELECT version FROM ops.model_versions WHERE starts_with(version, $1)",
            &[&prefix],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Whether the batch has a training decision already.
pub async fn batch_decided(
    transaction: &Transaction<'_>,
    batch_number: i32,
) -> anyhow::Result<bool> {
    Ok(transaction
        .query_opt(
            "SELECT 1 FROM ops.trainings WHERE batch_number = $1",
            &[&batch_number],
        )
        .await?
        .is_some())
}

/// The last batch a training used, if any training happened.
pub async fn last_trained_batch(transaction: &Transaction<'_>) -> anyhow::Result<Option<i32>> {
    Ok(transaction
        .query_one(
            "SELECT max(last_batch) FROM ops.trainings WHERE decision = 'train'",
            &[],
        )
        .await?
        .get(0))
}

/// The production model's training: its id and the first and last batches it used.
pub async fn production_training(
    transaction: &Transaction<'_>,
) -> anyhow::Result<Option<(i64, i32, i32)>> {
    let row = transaction
        .query_opt(
            "SELECT t.id, t.first_batch, t.last_batch FROM ops.production p
             JOIN ops.model_versions v ON v.version = p.version
             JOIN ops.trainings t ON t.id = v.training_id",
            &[],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1), row.get(2))))
}

/// Clean rows of batches `first` to `last`, both included.
pub async fn count_rows(
    transaction: &Transaction<'_>,
    first: i32,
    last: i32,
) -> anyhow::Result<i64> {
    Ok(transaction
        .query_one(
            "SELECT count(*) FROM clean.listings WHERE batch_number BETWEEN $1 AND $2",
            &[&first, &last],
        )
        .await?
        .get(0))
}

/// Stores a drift report of batch `batch_number` against the rows of training
/// `reference_training`; returns its id.
pub async fn insert_drift_report(
    transaction: &Transaction<'_>,
    batch_number: i32,
    reference_training: i64,
    report: &DriftReport,
) -> anyhow::Result<i64> {
    Ok(transaction
        .query_one(
            "INSERT INTO ops.drift_reports (batch_number, reference_training, report, drifted, worst_feature)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &batch_number,
                &reference_training,
                &serde_json::to_value(report)?,
                &report.drifted,
                &report.worst,
            ],
        )
        .await?
        .get(0))
}

/// The first batch of the training window that ends at `last`: of the clean batches from
/// `window_start` to `last`, the earliest such that it and the later ones hold at most
/// `max_rows` clean rows together (`None`: no bound in rows). `last` when even it alone holds
/// more, or when none is clean.
pub async fn window_first_batch(
    transaction: &Transaction<'_>,
    window_start: i32,
    last: i32,
    max_rows: Option<u64>,
) -> anyhow::Result<i32> {
    let max_rows = max_rows.map_or(i64::MAX, |rows| i64::try_from(rows).unwrap_or(i64::MAX));
    Ok(transaction
        .query_one(
            "SELECT coalesce(min(batch_number), $1) FROM (
                 SELECT batch_number,
                        sum(rows_kept) OVER (ORDER BY batch_number DESC) AS rows_from_here
                 FROM ops.clean_batches
                 WHERE batch_number >= $2 AND batch_number <= $1
             ) window_batches
             WHERE rows_from_here <= $3",
            &[&last, &window_start, &max_rows],
        )
        .await?
        .get(0))
}

/// A training decision, as `ops.trainings` records it.
pub struct TrainingRecord<'a> {
    /// The training's id, which is its batch's number.
    pub id: i64,
    pub batch_number: i32,
    pub trains: bool,
    pub reason: &'a str,
    pub new_rows: i64,
    pub drift_report_id: Option<i64>,
    /// The batches its rows come from, both included.
    pub first_batch: i32,
    pub last_batch: i32,
    pub split_seed: i64,
}

/// Records a training decision, taken or not.
pub async fn insert_training(
    transaction: &Transaction<'_>,
    training: &TrainingRecord<'_>,
) -> anyhow::Result<()> {
    transaction
        .execute(
            "INSERT INTO ops.trainings (id, batch_number, decision, reason, new_rows,
                                        drift_report_id, first_batch, last_batch, split_seed)
             VALUES ($9, $1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &training.batch_number,
                &if training.trains { "train" } else { "skip" },
                &training.reason,
                &training.new_rows,
                &training.drift_report_id,
                &training.first_batch,
                &training.last_batch,
                &training.split_seed,
                &training.id,
            ],
        )
        .await?;
    Ok(())
}

/// A trained model, as `ops.model_versions` records it.
pub struct ModelVersionRecord<'a> {
    pub version: &'a str,
    pub training_id: i64,
    pub algorithm: &'a str,
    pub params: &'a serde_json::Value,
    pub validation: &'a Metrics,
    pub test: &'a Metrics,
    pub fit_seconds: f64,
    pub artifact_key: &'a str,
    pub code_version: &'a str,
    /// `None` stores NULL.
    pub importance: Option<&'a GlobalImportance>,
}

/// The parameters of each model of a training, by version.
pub async fn model_params(
    transaction: &Transaction<'_>,
    training_id: i64,
) -> anyhow::Result<std::collections::HashMap<String, serde_json::Value>> {
    Ok(transaction
        .query(
            "SELECT version, params FROM ops.model_versions WHERE training_id = $1",
            &[&training_id],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// Records a trained model.
pub async fn insert_model_version(
    transaction: &Transaction<'_>,
    model: &ModelVersionRecord<'_>,
) -> anyhow::Result<()> {
    transaction
        .execute(
            "INSERT INTO ops.model_versions (version, training_id, algorithm, params, validation,
                                             test, fit_seconds, artifact_key, code_version,
                                             importance)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &model.version,
                &model.training_id,
                &model.algorithm,
                model.params,
                &serde_json::to_value(model.validation)?,
                &serde_json::to_value(model.test)?,
                &model.fit_seconds,
                &model.artifact_key,
                &model.code_version,
                &model.importance.map(serde_json::to_value).transpose()?,
            ],
        )
        .await?;
    Ok(())
}

/// Records a training's split sizes (train, validation, test) and its fitted feature spec.
pub async fn record_split(
    transaction: &Transaction<'_>,
    training_id: i64,
    sizes: [usize; 3],
    feature_spec: &serde_json::Value,
) -> anyhow::Result<()> {
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
                feature_spec,
            ],
        )
        .await?;
    Ok(())
}
