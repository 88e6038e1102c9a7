//! Every prediction, written to `ops.inference_log` in batches, off the request path.
//!
//! A request hands its entry to a bounded queue and moves on ([`InferenceLog::record`] never
//! waits). One writer task drains the queue in batches of up to [`BATCH`] rows, one binary
//! `COPY` per batch into typed columns (the cheapest way into PostgreSQL). When the queue is full (the database cannot keep up) or a
//! batch fails to write, the entries are dropped and counted in
//! `inference_log_dropped_total`, so the loss is visible rather than silent.

use std::{sync::Arc, time::Duration};

use appraise_core::{db::DbPool, listing::Status};
use tokio::sync::mpsc;
use tokio_postgres::{binary_copy::BinaryCopyInWriter, types::Type};

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
    let sink = client
        .copy_in(
            "COPY ops.inference_log (predicted_at, model_version, brokered_by, status, bed, bath,
                 acre_lot, house_size, city, state, zip_code, prev_sold_date, predicted_price,
                 latency_us)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let types = [
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::DATE,
        Type::FLOAT8,
        Type::INT4,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures_util::pin_mut!(writer);
    for entry in batch {
        let listing = &entry.listing;
        let latency_us = entry.latency_us.min(i32::MAX as u32) as i32;
        writer
            .as_mut()
            .write(&[
                &entry.predicted_at,
                &&*entry.model_version,
                &listing.brokered_by,
                &listing.status.map(Status::as_str),
                &listing.bed,
                &listing.bath,
                &listing.acre_lot,
                &listing.house_size,
                &listing.city,
                &listing.state,
                &listing.zip_code.map(|z| z.to_string()),
                &listing.prev_sold_date,
                &entry.predicted_price,
                &latency_us,
            ])
            .await?;
    }
    writer.as_mut().finish().await?;
    Ok(())
}
