//! Writing a batch down: listings into `raw.listings` with COPY, the batch into `ops.batches`,
//! the response as received and the manifest that announces the batch into the bucket.

use std::io::Write;

use anyhow::Context;
use appraise_core::{db::CopyTable, listing::ParsedRecord, objects::ObjectStore, outbox};
use bytes::Bytes;
use futures_util::pin_mut;
use serde::Serialize;
use tokio_postgres::{Transaction, binary_copy::BinaryCopyInWriter, types::Type};

/// The object that holds a batch's response, byte for byte, gzip-compressed.
pub fn response_key(batch_number: i32) -> String {
    format!("raw/batch-{batch_number:06}/response.json.gz")
}

/// The object whose creation announces a batch to `process`.
pub fn manifest_key(batch_number: i32) -> String {
    appraise_core::keys::batch_manifest("raw", batch_number)
}

/// Compresses the response as received and writes it to the bucket.
pub async fn put_response(objects: &ObjectStore, key: &str, body: Bytes) -> anyhow::Result<u64> {
    // Fast compression: a 90 MB batch takes well under a second and shrinks about 6×.
    let compressed = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        encoder.write_all(&body)?;
        encoder.finish()
    })
    .await
    .context("compression task panicked")??;
    let size = compressed.len() as u64;
    objects
        .put(key, Bytes::from(compressed), "application/gzip")
        .await?;
    Ok(size)
}

/// One batch's row in `ops.batches`; inserting it also queues the batch's manifest.
pub struct BatchRow {
    pub batch_number: i32,
    pub group_number: i32,
    pub day: Option<String>,
    pub rows_received: i32,
    pub rows_sampled: i32,
    pub rows_flagged: i32,
    pub sample_seed: i64,
    pub response_bytes: i64,
}

pub async fn insert_batch(transaction: &Transaction<'_>, row: &BatchRow) -> anyhow::Result<()> {
    transaction
        .execute(
            "INSERT INTO ops.batches (batch_number, group_number, day, rows_received, rows_sampled,
                                      rows_flagged, sample_seed, response_key, response_bytes,
                                      manifest_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &row.batch_number,
                &row.group_number,
                &row.day,
                &row.rows_received,
                &row.rows_sampled,
                &row.rows_flagged,
                &row.sample_seed,
                &response_key(row.batch_number),
                &row.response_bytes,
                &manifest_key(row.batch_number),
            ],
        )
        .await
        .context("inserting into ops.batches")?;
    let manifest = Manifest {
        batch_number: row.batch_number,
        group_number: row.group_number,
        day: row.day.clone(),
        rows_received: row.rows_received,
        rows_sampled: row.rows_sampled,
        rows_flagged: row.rows_flagged,
        response_key: response_key(row.batch_number),
    };
    outbox::enqueue(transaction, &manifest_key(row.batch_number), &manifest).await
}

/// A sampled record: its position in the batch, what was read, and the JSON as received.
pub struct SampledRecord<'a> {
    pub row_index: i32,
    pub parsed: ParsedRecord,
    pub original: &'a serde_json::value::RawValue,
}

/// `raw.listings` as [`copy_listings`] writes it, in the order of each row's values.
const RAW_LISTINGS: CopyTable = CopyTable {
    table: "raw.listings",
    columns: &[
        ("batch_number", Type::INT4),
        ("row_index", Type::INT4),
        ("brokered_by", Type::INT8),
        ("status", Type::TEXT),
        ("price", Type::FLOAT8),
        ("bed", Type::FLOAT8),
        ("bath", Type::FLOAT8),
        ("acre_lot", Type::FLOAT8),
        ("street", Type::INT8),
        ("city", Type::TEXT),
        ("state", Type::TEXT),
        ("zip_code", Type::TEXT),
        ("house_size", Type::FLOAT8),
        ("prev_sold_date", Type::DATE),
        ("problems", Type::TEXT_ARRAY),
        ("original", Type::JSONB),
    ],
};

/// COPYs the sampled listings into `raw.listings`; returns how many rows were written.
pub async fn copy_listings(
    transaction: &Transaction<'_>,
    batch_number: i32,
    records: &[SampledRecord<'_>],
) -> anyhow::Result<u64> {
    let sink = transaction
        .copy_in(&RAW_LISTINGS.statement())
        .await
        .context("starting COPY into raw.listings")?;
    let writer = BinaryCopyInWriter::new(sink, &RAW_LISTINGS.types());
    pin_mut!(writer);
    for record in records {
        let listing = &record.parsed.listing;
        let zip = listing.zip_code.map(|zip| zip.to_string());
        let problems: Vec<String> = record
            .parsed
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect();
        // The record as received is kept only where reading it lost something.
        let original: Option<serde_json::Value> = if problems.is_empty() {
            None
        } else {
            serde_json::from_str(record.original.get()).ok()
        };
        writer
            .as_mut()
            .write(&[
                &batch_number,
                &record.row_index,
                &listing.brokered_by,
                &listing.status,
                &listing.price,
                &listing.bed,
                &listing.bath,
                &listing.acre_lot,
                &listing.street,
                &listing.city,
                &listing.state,
                &zip,
                &listing.house_size,
                &listing.prev_sold_date,
                &problems,
                &original,
            ])
            .await
            .context("writing a row to COPY")?;
    }
    writer
        .as_mut()
        .finish()
        .await
        .context("finishing COPY into raw.listings")
}

/// What the raw/ manifest says about a batch.
#[derive(Debug, Serialize)]
pub struct Manifest {
    pub batch_number: i32,
    pub group_number: i32,
    pub day: Option<String>,
    pub rows_received: i32,
    pub rows_sampled: i32,
    pub rows_flagged: i32,
    pub response_key: String,
}
