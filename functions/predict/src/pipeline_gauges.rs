//! Gauges of the pipeline's progress, read from PostgreSQL on a timer, for the alerts that a
//! short-lived pod cannot feed.
//!
//! On Knative, ingest, process and promote scale to zero and train runs as a Job: their own
//! metrics exist only while a pod lives, so "no batch stored for half an hour" or "a training
//! never finished" cannot come from them. The predictor runs with at least one replica, so it
//! reads those facts from the tables the stages write and exports them (every series registered
//! at 0 when it starts):
//!
//! | gauge | value |
//! |---|---|
//! | `last_batch_stored_timestamp_seconds` | `max(ops.batches.ingested_at)`; before the first batch, when the database was set up (`min(ops.schema_migrations.applied_at)`), so a system that never stores one alerts too |
//! | `production_model_trained_timestamp_seconds` | `ops.model_versions.created_at` of the version in `ops.production`; 0 without one |
//! | `oldest_untrained_batch_timestamp_seconds` | `ops.clean_batches.processed_at` of the oldest cleaned batch train has not decided on (no `ops.trainings` row: its Job is running, failed or never ran); 0 when there is none |
//! | `drift_detected` | 1 when the latest `ops.drift_reports` row says drifted, else 0 |
//!
//! Timestamps are Unix seconds, as Prometheus's `time()`. A failed read is logged and the
//! gauges keep their last values; the next tick reads again. Not run on Lambda (nothing runs
//! between invocations there, and nobody scrapes `/metrics`).

use std::time::Duration;

use appraise_core::db::DbPool;

/// What one read of the tables found (see the module docs for each value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PipelineState {
    pub last_batch_stored: f64,
    pub production_model_trained: f64,
    pub oldest_untrained_batch: f64,
    pub drift_detected: f64,
}

impl PipelineState {
    /// Sets the gauges to these values.
    pub fn export(&self) {
        metrics::gauge!("last_batch_stored_timestamp_seconds").set(self.last_batch_stored);
        metrics::gauge!("production_model_trained_timestamp_seconds")
            .set(self.production_model_trained);
        metrics::gauge!("oldest_untrained_batch_timestamp_seconds")
            .set(self.oldest_untrained_batch);
        metrics::gauge!("drift_detected").set(self.drift_detected);
    }
}

/// Exports every gauge at 0, so each series exists from the first scrape.
pub fn register() {
    PipelineState {
        last_batch_stored: 0.0,
        production_model_trained: 0.0,
        oldest_untrained_batch: 0.0,
        drift_detected: 0.0,
    }
    .export();
}

/// Reads the pipeline's state from the tables in one query.
pub async fn read(db: &DbPool) -> anyhow::Result<PipelineState> {
    let client = db.get().await?;
    let row = client
        .query_one(
            "SELECT
                coalesce(extract(epoch FROM (SELECT max(ingested_at) FROM ops.batches)),
                         extract(epoch FROM (SELECT min(applied_at) FROM ops.schema_migrations)),
                         0)::float8,
                coalesce(extract(epoch FROM (
                    SELECT v.created_at FROM ops.production p
                    JOIN ops.model_versions v ON v.version = p.version)), 0)::float8,
                coalesce(extract(epoch FROM (
                    SELECT min(c.processed_at) FROM ops.clean_batches c
                    WHERE NOT EXISTS (SELECT 1 FROM ops.trainings t
                                      WHERE t.batch_number = c.batch_number))), 0)::float8,
                coalesce((SELECT drifted::int FROM ops.drift_reports
                          ORDER BY id DESC LIMIT 1), 0)::float8",
            &[],
        )
        .await?;
    Ok(PipelineState {
        last_batch_stored: row.get(0),
        production_model_trained: row.get(1),
        oldest_untrained_batch: row.get(2),
        drift_detected: row.get(3),
    })
}

/// Registers the gauges at 0, then reads and exports them every `interval` (zero: never).
pub fn export_forever(db: DbPool, interval: Duration) {
    register();
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        loop {
            match read(&db).await {
                Ok(state) => state.export(),
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "could not read the pipeline gauges"
                ),
            }
            tokio::time::sleep(interval).await;
        }
    });
}
