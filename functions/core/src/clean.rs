//! Clean listings as training and model evaluation read them from `clean.listings`, and the
//! deterministic train / validation / test split that both train and promote apply.

use anyhow::Context;
use time::Date;
use tokio_postgres::GenericClient;

use crate::{
    features::FeatureInput,
    listing::{Status, ZipCode},
    rng::mix64,
};

/// A side of the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Train,
    Validation,
    Test,
}

/// Which side of the split a listing is on (70 / 15 / 15), by its fingerprint: a listing stays
/// on its side as data grows, so a later training's test rows were never trained on by an
/// earlier model with the same seed.
pub fn split_side(row_hash: i64, seed: u64) -> Side {
    match mix64(row_hash as u64 ^ mix64(seed)) % 100 {
        0..70 => Side::Train,
        70..85 => Side::Validation,
        _ => Side::Test,
    }
}

/// A clean listing as training and evaluation need it (owning its strings; see [`CleanRow::input`]).
pub struct CleanRow {
    pub batch_number: i32,
    pub row_hash: i64,
    pub price: f64,
    pub bed: f64,
    pub bath: f64,
    pub acre_lot: f64,
    pub house_size: f64,
    pub status: Option<Status>,
    pub state: String,
    pub city: Option<String>,
    pub zip_code: Option<ZipCode>,
    pub brokered_by: Option<i64>,
    pub prev_sold_date: Option<Date>,
    /// The day its batch was taken: the listing's date for `years_since_sale`.
    pub as_of: Date,
}

impl CleanRow {
    pub fn input(&self) -> FeatureInput<'_> {
        FeatureInput {
            bed: self.bed,
            bath: self.bath,
            acre_lot: self.acre_lot,
            house_size: self.house_size,
            status: self.status,
            state: Some(&self.state),
            city: self.city.as_deref(),
            zip_code: self.zip_code,
            brokered_by: self.brokered_by,
            prev_sold_date: self.prev_sold_date,
            as_of: self.as_of,
        }
    }
}

/// Whether process has cleaned batch `batch_number` (it has a report in `ops.clean_batches`).
pub async fn is_cleaned(client: &impl GenericClient, batch_number: i32) -> anyhow::Result<bool> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM ops.clean_batches WHERE batch_number = $1",
            &[&batch_number],
        )
        .await
        .context("reading ops.clean_batches")?
        .is_some())
}

/// The clean rows of batches `first..=last`, in a stable order.
pub async fn clean_rows(
    client: &impl GenericClient,
    first: i32,
    last: i32,
) -> anyhow::Result<Vec<CleanRow>> {
    // Converted row by row as they stream ([`crate::db::for_each_row`]).
    let mut rows = Vec::new();
    crate::db::for_each_row(
        client,
        "SELECT l.batch_number, l.row_hash, l.price, l.bed, l.bath, l.acre_lot, l.house_size,
                l.status, l.state, l.city, l.zip_code, l.brokered_by, l.prev_sold_date,
                (b.ingested_at AT TIME ZONE 'UTC')::date
         FROM clean.listings l JOIN ops.batches b USING (batch_number)
         WHERE l.batch_number BETWEEN $1 AND $2
         ORDER BY l.batch_number, l.row_index",
        &[&first, &last],
        |row| {
            rows.push(CleanRow {
                batch_number: row.get(0),
                row_hash: row.get(1),
                price: row.get(2),
                bed: f64::from(row.get::<_, i16>(3)),
                bath: f64::from(row.get::<_, i16>(4)),
                acre_lot: row.get(5),
                house_size: row.get(6),
                status: Status::parse(row.get(7)),
                state: row.get(8),
                city: row.get(9),
                zip_code: ZipCode::parse(row.get(10)),
                brokered_by: row.get(11),
                prev_sold_date: row.get(12),
                as_of: row.get(13),
            })
        },
    )
    .await
    .context("reading clean.listings")?;
    rows.shrink_to_fit();
    Ok(rows)
}
