//! Lineage, read from PostgreSQL: where a model version came from, and which model and data
//! were behind a prediction.
//!
//! - [`model`] (`GET /lineage/model/{version}`) walks the tables the stages already keep: the
//!   model version (`ops.model_versions`), its training and why it happened
//!   (`ops.trainings`), the batches it learned from — each with its row counts, the batch
//!   API's raw response and the raw and clean manifests in the bucket (`ops.batches`,
//!   `ops.clean_batches`) — the drift report behind the decision (`ops.drift_reports`) and
//!   every promotion decision that judged it, as candidate or as the production model
//!   (`ops.promotions`).
//! - [`prediction`] (`GET /lineage/prediction/{id}`) finds the prediction in the inference log
//!   by its id and adds its model's lineage. The log is written a few milliseconds after the
//!   answer (off the request path), so a prediction is found once it has been written.
//!
//! Each is one query that builds the JSON document in PostgreSQL.

use appraise_core::db::DbPool;
use serde_json::Value;

use crate::prediction_id::PredictionId;

/// The lineage document of `version` as a SQL expression over `v` (the version's row of
/// `ops.model_versions`) and `t` (its row of `ops.trainings`).
const MODEL_LINEAGE: &str = "jsonb_build_object(
    'model', jsonb_build_object(
        'version', v.version, 'algorithm', v.algorithm, 'params', v.params,
        'validation', v.validation, 'test', v.test, 'fit_seconds', v.fit_seconds,
        'artifact_key', v.artifact_key, 'code_version', v.code_version,
        'created_at', v.created_at, 'importance', v.importance,
        'in_production', EXISTS (SELECT 1 FROM ops.production p WHERE p.version = v.version)),
    'training', jsonb_build_object(
        'id', t.id, 'batch_number', t.batch_number, 'decision', t.decision,
        'reason', t.reason, 'new_rows', t.new_rows, 'first_batch', t.first_batch,
        'last_batch', t.last_batch, 'rows_train', t.rows_train,
        'rows_validation', t.rows_validation, 'rows_test', t.rows_test,
        'split_seed', t.split_seed, 'created_at', t.created_at),
    'batches', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
            'batch_number', b.batch_number, 'rows_received', b.rows_received,
            'rows_sampled', b.rows_sampled, 'rows_flagged', b.rows_flagged,
            'raw_response_key', b.response_key, 'raw_manifest_key', b.manifest_key,
            'ingested_at', b.ingested_at,
            'clean_rows_in', c.rows_in, 'clean_rows_kept', c.rows_kept,
            'clean_dropped', c.dropped, 'clean_manifest_key', c.manifest_key,
            'processed_at', c.processed_at) ORDER BY b.batch_number)
        FROM ops.batches b JOIN ops.clean_batches c USING (batch_number)
        WHERE b.batch_number BETWEEN t.first_batch AND t.last_batch), '[]'::jsonb),
    'drift_report', (
        SELECT jsonb_build_object(
            'id', d.id, 'batch_number', d.batch_number,
            'reference_training', d.reference_training, 'drifted', d.drifted,
            'worst_feature', d.worst_feature, 'created_at', d.created_at,
            'features', d.report->'features')
        FROM ops.drift_reports d WHERE d.id = t.drift_report_id),
    'promotions', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
            'id', p.id, 'kind', p.kind,
            'role', CASE WHEN p.candidate_version = v.version THEN 'candidate'
                         ELSE 'production' END,
            'training_id', p.training_id, 'candidate_version', p.candidate_version,
            'production_version', p.production_version, 'decision', p.decision,
            'reason', p.reason, 'candidate_metrics', p.candidate_metrics,
            'production_metrics', p.production_metrics,
            'evaluation_rows', p.evaluation_rows, 'created_at', p.created_at) ORDER BY p.id)
        FROM ops.promotions p
        WHERE v.version IN (p.candidate_version, p.production_version)), '[]'::jsonb))";

/// The lineage of a model version, or `None` when there is no such version.
pub async fn model(db: &DbPool, version: &str) -> anyhow::Result<Option<Value>> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT {MODEL_LINEAGE} FROM ops.model_versions v
                 JOIN ops.trainings t ON t.id = v.training_id WHERE v.version = $1"
            ),
            &[&version],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// A logged prediction with its model's lineage (`null` fields when its model version is not
/// recorded), or `None` when no prediction has that id (yet).
pub async fn prediction(db: &DbPool, id: PredictionId) -> anyhow::Result<Option<Value>> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT jsonb_build_object(
                     'prediction', jsonb_build_object(
                         'prediction_id', l.prediction_id, 'predicted_at', l.predicted_at,
                         'model_version', l.model_version,
                         'predicted_price', l.predicted_price, 'latency_us', l.latency_us,
                         'input', jsonb_build_object(
                             'brokered_by', l.brokered_by, 'status', l.status, 'bed', l.bed,
                             'bath', l.bath, 'acre_lot', l.acre_lot,
                             'house_size', l.house_size, 'city', l.city, 'state', l.state,
                             'zip_code', l.zip_code, 'prev_sold_date', l.prev_sold_date)))
                     || COALESCE(lineage.document, jsonb_build_object(
                         'model', NULL, 'training', NULL, 'batches', '[]'::jsonb,
                         'drift_report', NULL, 'promotions', '[]'::jsonb))
                 FROM ops.inference_log l
                 LEFT JOIN LATERAL (
                     SELECT {MODEL_LINEAGE} AS document FROM ops.model_versions v
                     JOIN ops.trainings t ON t.id = v.training_id
                     WHERE v.version = l.model_version) lineage ON true
                 WHERE l.prediction_id = $1
                 LIMIT 1"
            ),
            &[&id],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}
