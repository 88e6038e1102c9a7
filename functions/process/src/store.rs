//! Reading raw listings and writing clean ones, with the batch's cleaning report.

use std::collections::BTreeMap;

use anyhow::Context;
use appraise_core::{
    db::CopyTable,
    listing::{Listing, ZipCode},
    outbox,
};
use futures_util::pin_mut;
use serde::Serialize;
use serde_json::{Value, json};
use time::Date;
use tokio_postgres::{Transaction, binary_copy::BinaryCopyInWriter, types::Type};

use crate::rules::{self, CleanListing, CleaningRules, Rule};

/// The object whose creation announces a clean batch to `train`.
pub fn manifest_key(batch_number: i32) -> String {
    appraise_core::keys::batch_manifest("clean", batch_number)
}

/// The day the batch was taken (UTC), or `None` if there is no such batch.
pub async fn batch_date(
    transaction: &Transaction<'_>,
    batch_number: i32,
) -> anyhow::Result<Option<Date>> {
    let row = transaction
        .query_opt(
            "SELECT (ingested_at AT TIME ZONE 'UTC')::date FROM ops.batches WHERE batch_number = $1",
            &[&batch_number],
        )
        .await
        .context("reading ops.batches")?;
    Ok(row.map(|row| row.get(0)))
}

/// The raw batches numbered below `batch_number` that have no cleaning report yet, oldest
/// first: the work of events that were lost (or have not arrived yet).
pub async fn unprocessed_before(
    client: &impl tokio_postgres::GenericClient,
    batch_number: i32,
) -> anyhow::Result<Vec<i32>> {
    let rows = client
        .query(
            "SELECT b.batch_number FROM ops.batches b
             WHERE b.batch_number < $1
               AND NOT EXISTS (SELECT 1 FROM ops.clean_batches c
                               WHERE c.batch_number = b.batch_number)
             ORDER BY b.batch_number",
            &[&batch_number],
        )
        .await
        .context("looking for unprocessed earlier batches")?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// One raw listing: its place in the batch, its fields, and whether ingest flagged it.
pub struct RawRow {
    pub row_index: i32,
    pub listing: Listing,
    pub malformed: bool,
}

/// Reads a batch's raw rows in row order and hands each to `each` as it arrives
/// ([`appraise_core::db::for_each_row`]); returns how many there were.
pub async fn for_each_raw(
    transaction: &Transaction<'_>,
    batch_number: i32,
    mut each: impl FnMut(RawRow),
) -> anyhow::Result<u64> {
    appraise_core::db::for_each_row(
        transaction,
        "SELECT row_index, brokered_by, status, price, bed, bath, acre_lot, street, city,
                state, zip_code, house_size, prev_sold_date, cardinality(problems) > 0
         FROM raw.listings WHERE batch_number = $1 ORDER BY row_index",
        &[&batch_number],
        |row| {
            each(RawRow {
                row_index: row.get(0),
                listing: Listing {
                    brokered_by: row.get(1),
                    status: row.get(2),
                    price: row.get(3),
                    bed: row.get(4),
                    bath: row.get(5),
                    acre_lot: row.get(6),
                    street: row.get(7),
                    city: row.get(8),
                    state: row.get(9),
                    zip_code: row
                        .get::<_, Option<String>>(10)
                        .as_deref()
                        .and_then(ZipCode::parse),
                    house_size: row.get(11),
                    prev_sold_date: row.get(12),
                },
                malformed: row.get(13),
            })
        },
    )
    .await
    .context("reading raw.listings")
}

/// A few numbers that describe the kept rows, for the report and the web page.
pub fn statistics<'a>(kept: impl Iterator<Item = &'a CleanListing>) -> Value {
    let kept: Vec<&CleanListing> = kept.collect();
    if kept.is_empty() {
        return json!({ "rows": 0 });
    }
    let quantiles = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        json!({
            "mean": values.iter().sum::<f64>() / values.len() as f64,
            "p10": at(0.1), "p50": at(0.5), "p90": at(0.9),
        })
    };
    let mut statuses: BTreeMap<&str, u64> = BTreeMap::new();
    let mut states: BTreeMap<&str, u64> = BTreeMap::new();
    for listing in &kept {
        *statuses.entry(listing.status.as_str()).or_default() += 1;
        *states.entry(listing.state.as_str()).or_default() += 1;
    }
    json!({
        "rows": kept.len(),
        "price": quantiles(kept.iter().map(|l| l.price).collect()),
        "house_size": quantiles(kept.iter().map(|l| l.house_size).collect()),
        "bed": quantiles(kept.iter().map(|l| f64::from(l.bed)).collect()),
        "status": statuses,
        "states": states.len(),
    })
}

#[derive(Serialize)]
struct Manifest<'a> {
    batch_number: i32,
    rows_in: u64,
    rows_kept: u64,
    dropped: &'a serde_json::Map<String, Value>,
}

/// Inserts the batch's report (before its listings, which refer to it); rows kept and
/// duplicates across batches are filled in by [`finish_report`].
pub async fn insert_report(
    transaction: &Transaction<'_>,
    batch_number: i32,
    rows_in: u64,
    dropped: &BTreeMap<Rule, u64>,
    stats: &Value,
    cleaning: &CleaningRules,
) -> anyhow::Result<()> {
    transaction
        .execute(
            "INSERT INTO ops.clean_batches (batch_number, rows_in, rows_kept, dropped, stats, rules,
                                            manifest_key)
             VALUES ($1, $2, 0, $3, $4, $5, $6)",
            &[
                &batch_number,
                &(rows_in as i32),
                &Value::Object(rules::drop_counts(dropped)),
                stats,
                &serde_json::to_value(cleaning)?,
                &manifest_key(batch_number),
            ],
        )
        .await
        .context("inserting into ops.clean_batches")?;
    Ok(())
}

/// Sets the final counts and queues the batch's manifest.
pub async fn finish_report(
    transaction: &Transaction<'_>,
    batch_number: i32,
    rows_kept: u64,
    dropped: &BTreeMap<Rule, u64>,
) -> anyhow::Result<()> {
    let counts = rules::drop_counts(dropped);
    let rows_in: i32 = transaction
        .query_one(
            "UPDATE ops.clean_batches SET rows_kept = $2, dropped = $3 WHERE batch_number = $1
             RETURNING rows_in",
            &[
                &batch_number,
                &(rows_kept as i32),
                &Value::Object(counts.clone()),
            ],
        )
        .await?
        .get(0);
    let manifest = Manifest {
        batch_number,
        rows_in: rows_in as u64,
        rows_kept,
        dropped: &counts,
    };
    outbox::enqueue(transaction, &manifest_key(batch_number), &manifest).await
}

/// The columns of `clean.listings` that [`insert_listings`] writes, in the order of each row's
/// values, COPYed first into `incoming_listings`, a temporary table shaped like it.
const INCOMING_LISTINGS: CopyTable = CopyTable {
    table: "incoming_listings",
    columns: &[
        ("batch_number", Type::INT4),
        ("row_index", Type::INT4),
        ("brokered_by", Type::INT8),
        ("status", Type::TEXT),
        ("price", Type::FLOAT8),
        ("bed", Type::INT2),
        ("bath", Type::INT2),
        ("acre_lot", Type::FLOAT8),
        ("street", Type::INT8),
        ("city", Type::TEXT),
        ("state", Type::TEXT),
        ("zip_code", Type::TEXT),
        ("house_size", Type::FLOAT8),
        ("prev_sold_date", Type::DATE),
        ("row_hash", Type::INT8),
    ],
};

/// COPYs the kept listings into `clean.listings`, skipping any whose content an earlier batch
/// already holds; returns how many were inserted.
pub async fn insert_listings(
    transaction: &Transaction<'_>,
    batch_number: i32,
    kept: &[(i32, i64, CleanListing)],
) -> anyhow::Result<u64> {
    transaction
        .batch_execute(
            "CREATE TEMP TABLE incoming_listings (LIKE clean.listings INCLUDING DEFAULTS)
             ON COMMIT DROP",
        )
        .await?;
    let sink = transaction.copy_in(&INCOMING_LISTINGS.statement()).await?;
    let writer = BinaryCopyInWriter::new(sink, &INCOMING_LISTINGS.types());
    pin_mut!(writer);
    for (row_index, fingerprint, listing) in kept {
        writer
            .as_mut()
            .write(&[
                &batch_number,
                row_index,
                &listing.brokered_by,
                &listing.status.as_str(),
                &listing.price,
                &listing.bed,
                &listing.bath,
                &listing.acre_lot,
                &listing.street,
                &listing.city,
                &listing.state,
                &listing.zip_code.to_string(),
                &listing.house_size,
                &listing.prev_sold_date,
                fingerprint,
            ])
            .await?;
    }
    writer
        .as_mut()
        .finish()
        .await
        .context("COPY into clean.listings")?;
    let inserted = transaction
        .execute(
            "INSERT INTO clean.listings SELECT * FROM incoming_listings
             ON CONFLICT (row_hash) DO NOTHING",
            &[],
        )
        .await
        .context("inserting clean.listings")?;
    Ok(inserted)
}
