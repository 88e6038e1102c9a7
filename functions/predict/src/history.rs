//! What the web page shows besides the form: every model version with its promotion decision,
//! and the drift reports, read from PostgreSQL.

use appraise_core::db::DbPool;
use serde::Serialize;
use serde_json::Value;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// One model version as the history table shows it.
#[derive(Debug, Serialize)]
pub struct ModelEntry {
    pub version: String,
    pub algorithm: String,
    pub training_id: i64,
    pub batch_number: i32,
    pub created_at: String,
    pub fit_seconds: f64,
    pub validation: Value,
    pub test: Value,
    /// `promoted` or `rejected` when promote judged it; `candidate` when it was not its
    /// training's best, so promote did not consider it.
    pub decision: String,
    pub reason: Option<String>,
    pub decided_at: Option<String>,
    pub in_production: bool,
    /// Every time it was put back in production by hand (`POST /models/{version}/promote`),
    /// oldest first: `[{"at", "reason", "previous_version"}]`.
    pub rollbacks: Value,
    /// Mean absolute contribution per input field over its test rows
    /// (`{"rows", "fields": [{"field", "mean_abs_contribution"}]}`, largest first); null for
    /// versions trained before it was recorded.
    pub importance: Value,
}

#[derive(Debug, Serialize)]
pub struct Models {
    pub production: Option<String>,
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Serialize)]
pub struct DriftEntry {
    pub batch_number: i32,
    pub created_at: String,
    pub drifted: bool,
    pub worst_feature: Option<String>,
    pub reference_training: Option<i64>,
    pub features: Value,
    /// The categorical features' PSI (`[]` in reports stored before they were tested).
    pub categorical: Value,
}

#[derive(Debug, Serialize)]
pub struct DriftReports {
    pub reports: Vec<DriftEntry>,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Every model version, oldest first.
pub async fn models(db: &DbPool) -> anyhow::Result<Models> {
    let client = db.get().await?;
    let rows = client
        .query(
            "SELECT v.version, v.algorithm, v.training_id, t.batch_number, v.created_at,
                    v.fit_seconds, v.validation, v.test, p.decision, p.reason, p.created_at,
                    prod.version IS NOT NULL, v.importance,
                    COALESCE((SELECT jsonb_agg(jsonb_build_object('at', r.created_at,
                                  'reason', r.reason, 'previous_version', r.production_version)
                                  ORDER BY r.id)
                              FROM ops.promotions r
                              WHERE r.candidate_version = v.version AND r.kind = 'rollback'),
                             '[]'::jsonb)
             FROM ops.model_versions v
             JOIN ops.trainings t ON t.id = v.training_id
             LEFT JOIN ops.promotions p ON p.candidate_version = v.version AND p.kind = 'decision'
             LEFT JOIN ops.production prod ON prod.version = v.version
             ORDER BY v.created_at, v.version",
            &[],
        )
        .await?;
    let models: Vec<ModelEntry> = rows
        .iter()
        .map(|row| ModelEntry {
            version: row.get(0),
            algorithm: row.get(1),
            training_id: row.get(2),
            batch_number: row.get(3),
            created_at: rfc3339(row.get(4)),
            fit_seconds: row.get(5),
            validation: row.get(6),
            test: row.get(7),
            decision: row
                .get::<_, Option<String>>(8)
                .unwrap_or_else(|| "candidate".to_owned()),
            reason: row.get(9),
            decided_at: row.get::<_, Option<OffsetDateTime>>(10).map(rfc3339),
            in_production: row.get(11),
            importance: row.get::<_, Option<Value>>(12).unwrap_or(Value::Null),
            rollbacks: row.get(13),
        })
        .collect();
    let production = models
        .iter()
        .find(|m| m.in_production)
        .map(|m| m.version.clone());
    Ok(Models { production, models })
}

/// The latest drift reports (at most `limit`), newest first.
pub async fn drift_reports(db: &DbPool, limit: i64) -> anyhow::Result<DriftReports> {
    let client = db.get().await?;
    let rows = client
        .query(
            "SELECT batch_number, created_at, drifted, worst_feature, reference_training,
                    report->'features', coalesce(report->'categorical', '[]'::jsonb)
             FROM ops.drift_reports ORDER BY batch_number DESC, id DESC LIMIT $1",
            &[&limit],
        )
        .await?;
    Ok(DriftReports {
        reports: rows
            .iter()
            .map(|row| DriftEntry {
                batch_number: row.get(0),
                created_at: rfc3339(row.get(1)),
                drifted: row.get(2),
                worst_feature: row.get(3),
                reference_training: row.get(4),
                features: row.get::<_, Option<Value>>(5).unwrap_or(Value::Null),
                categorical: row.get(6),
            })
            .collect(),
    })
}
