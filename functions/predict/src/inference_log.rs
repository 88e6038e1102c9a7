//! Every prediction, written to `ops.inference_log` in batches, off the request path.
//!
//! A request appends its entry to an in-memory buffer and moves on ([`InferenceLog::record`]
//! takes an uncontended lock for a push and never waits on I/O). One writer task takes the
//! whole buffer every [`FLUSH_EVERY`] (or as soon as [`BATCH`] entries wait) and writes it with
//! binary `COPY`s of up to [`BATCH`] rows into typed columns, the cheapest way into
//! PostgreSQL. The writer is not woken per request: at tens of thousands of predictions a
//! second, a wake-up per entry would cost more than the prediction. When the buffer is full
//! (the database cannot keep up) or a batch fails to write, entries are dropped and counted in
//! `inference_log_dropped_total`, so the loss is visible rather than silent. Once it has written
//! a buffer as long as a large batch leaves, the freed memory is given back to the system
//! ([`crate::memory`]).
//!
//! On Lambda there is no writer task: a frozen execution environment would hold the entries
//! until its next invocation, or lose them when it is shut down. [`InferenceLog::on_demand`]
//! only buffers, and the predictor calls [`InferenceLog::flush`] before each answer leaves.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use appraise_core::{
    db::{CopyTable, DbPool},
    listing::Status,
};
use tokio::sync::Notify;
use tokio_postgres::{binary_copy::BinaryCopyInWriter, types::Type};

use crate::{memory, prediction_id::PredictionId, request::ListingInput};

/// Rows per `COPY`, and the buffer length that wakes the writer early.
pub const BATCH: usize = 2_048;
/// How often the writer takes what is buffered.
pub const FLUSH_EVERY: Duration = Duration::from_millis(5);

/// One served prediction.
pub struct Entry {
    pub prediction_id: PredictionId,
    pub predicted_at: time::OffsetDateTime,
    pub model_version: Arc<str>,
    pub listing: ListingInput,
    pub predicted_price: f64,
    pub latency_us: u32,
}

#[derive(Clone)]
pub struct InferenceLog {
    shared: Arc<Shared>,
}

struct Shared {
    db: DbPool,
    buffer: Mutex<Vec<Entry>>,
    capacity: usize,
    full: Notify,
    written: metrics::Counter,
    dropped: metrics::Counter,
}

impl InferenceLog {
    /// Starts the writer task; at most `capacity` entries wait in the buffer.
    pub fn start(db: DbPool, capacity: usize) -> InferenceLog {
        let log = InferenceLog::on_demand(db, capacity);
        tokio::spawn(write_forever(log.shared.clone()));
        log
    }

    /// A log without a writer task: entries wait until [`InferenceLog::flush`] (Lambda).
    pub fn on_demand(db: DbPool, capacity: usize) -> InferenceLog {
        InferenceLog {
            shared: Arc::new(Shared {
                db,
                buffer: Mutex::new(Vec::with_capacity(BATCH)),
                capacity: capacity.max(1),
                full: Notify::new(),
                written: metrics::counter!("inference_log_written_total"),
                dropped: metrics::counter!("inference_log_dropped_total"),
            }),
        }
    }

    /// Writes every buffered entry now and returns when they are in the database (or counted
    /// as dropped).
    pub async fn flush(&self) {
        drain(&self.shared).await;
    }

    /// Buffers an entry, or counts it as dropped when the buffer is full.
    pub fn record(&self, entry: Entry) {
        let waiting = {
            let mut buffer = self
                .shared
                .buffer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if buffer.len() >= self.shared.capacity {
                drop(buffer);
                self.shared.dropped.increment(1);
                return;
            }
            buffer.push(entry);
            buffer.len()
        };
        if waiting == BATCH {
            self.shared.full.notify_one();
        }
    }
}

async fn write_forever(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            () = shared.full.notified() => {}
            () = tokio::time::sleep(FLUSH_EVERY) => {}
        }
        if !drain(&shared).await {
            // Let the database come back rather than spinning on errors.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Writes what is buffered; false when a batch could not be written (its rows are dropped).
async fn drain(shared: &Shared) -> bool {
    let entries = std::mem::take(
        &mut *shared
            .buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    );
    let mut all_written = true;
    for batch in entries.chunks(BATCH) {
        let rows = batch.len() as u64;
        match write(&shared.db, batch).await {
            Ok(()) => shared.written.increment(rows),
            Err(error) => {
                shared.dropped.increment(rows);
                tracing::warn!(%error, rows, "could not write the inference log; rows dropped");
                all_written = false;
            }
        }
    }
    // A buffer this long means a large batch was just answered, and its entries are the last
    // of its memory still held: give what it freed back ([`crate::memory`]). Single-listing
    // traffic fills one only when the writer has fallen behind by a fifth of a second at
    // 25,000 predictions a second.
    let large = entries.len() >= memory::LARGE_BATCH_ROWS;
    drop(entries);
    if large {
        memory::give_back_free_memory();
    }
    all_written
}

/// `ops.inference_log` as [`write`] fills it, in the order of each row's values.
const INFERENCE_LOG: CopyTable = CopyTable {
    table: "ops.inference_log",
    columns: &[
        ("predicted_at", Type::TIMESTAMPTZ),
        ("model_version", Type::TEXT),
        ("brokered_by", Type::INT8),
        ("status", Type::TEXT),
        ("bed", Type::FLOAT8),
        ("bath", Type::FLOAT8),
        ("acre_lot", Type::FLOAT8),
        ("house_size", Type::FLOAT8),
        ("city", Type::TEXT),
        ("state", Type::TEXT),
        ("zip_code", Type::TEXT),
        ("prev_sold_date", Type::DATE),
        ("predicted_price", Type::FLOAT8),
        ("latency_us", Type::INT4),
        ("prediction_id", Type::UUID),
    ],
};

async fn write(db: &DbPool, batch: &[Entry]) -> anyhow::Result<()> {
    let client = db.get().await?;
    let sink = client.copy_in(&INFERENCE_LOG.statement()).await?;
    let writer = BinaryCopyInWriter::new(sink, &INFERENCE_LOG.types());
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
                &entry.prediction_id,
            ])
            .await?;
    }
    writer.as_mut().finish().await?;
    Ok(())
}
