//! Every prediction, written to `ops.inference_log` in batches, off the request path.
//!
//! A request hands its entry to a bounded queue and moves on ([`InferenceLog::record`] never
//! waits). One writer task drains the queue in batches of up to [`BATCH`] rows, one `INSERT …
//! SELECT FROM unnest(…)` per batch. When the queue is full (the database cannot keep up) or a
//! batch fails to write, the entries are dropped and counted in
//! `inference_log_dropped_total`, so the loss is visible rather than silent.

use std::{sync::Arc, time::Duration};

use appraise_core::db::DbPool;
use tokio::sync::mpsc;

use crate::request::Listing;

/// Rows per insert.
pub const BATCH: usize = 2_048;

/// One served prediction.
pub struct Entry {
    pub predicted_at: time::OffsetDateTime,
    pub model_version: Arc<str>,
    pub listing: Listing,
    pub predicted_price: f64,
    pub latency_us: u32,
}

#[derive(Clone)]
pub struct InferenceLog {
    queue: mpsc::Sender<Entry>,
    dropped: metrics::Counter,
}

impl InferenceLog {
    /// Starts the writer task; `capacity` entries may wait in the queue.
    pub fn start(db: DbPool, capacity: usize) -> InferenceLog {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let dropped = metrics::counter!("inference_log_dropped_total");
        tokio::spawn(write_forever(db, receiver, dropped.clone()));
        InferenceLog { queue, dropped }
    }

    /// Queues an entry, or counts it as dropped when the queue is full.
    pub fn record(&self, entry: Entry) {
        if self.queue.try_send(entry).is_err() {
            self.dropped.increment(1);
        }
    }
}

async fn write_forever(db: DbPool, mut receiver: mpsc::Receiver<Entry>, dropped: metrics::Counter) {
    let written = metrics::counter!("inference_log_written_total");
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        let rows = batch.len() as u64;
        match write(&db, &batch).await {
            Ok(()) => written.increment(rows),
            Err(error) => {
                dropped.increment(rows);
                tracing::warn!(%error, rows, "could not write the inference log; rows dropped");
                // Let the database come back rather than spinning on errors.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        batch.clear();
    }
}

async fn write(db: &DbPool, batch: &[Entry]) -> anyhow::Result<()> {
    let client = db.get().await?;
    let at: Vec<time::OffsetDateTime> = batch.iter().map(|e| e.predicted_at).collect();
    let versions: Vec<&str> = batch.iter().map(|e| &*e.model_version).collect();
    let inputs: Vec<serde_json::Value> = batch.iter().map(|e| e.listing.to_json()).collect();
    let prices: Vec<f64> = batch.iter().map(|e| e.predicted_price).collect();
    let latencies: Vec<i32> = batch
        .iter()
        .map(|e| e.latency_us.min(i32::MAX as u32) as i32)
        .collect();
    client
        .execute(
            "INSERT INTO ops.inference_log (predicted_at, model_version, input, predicted_price, latency_us)
             SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::jsonb[], $4::float8[], $5::int4[])",
            &[&at, &versions, &inputs, &prices, &latencies],
        )
        .await?;
    Ok(())
}
