//! What train reads and writes in PostgreSQL.

use anyhow::Context;
use appraise_core::{
    features::FeatureInput,
    listing::{Status, ZipCode},
};
use time::Date;
use tokio_postgres::Transaction;

/// A clean listing as training needs it (owning its strings; see [`CleanRow::input`]).
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

/// The clean rows of batches `first..=last`, in a stable order.
pub async fn clean_rows(
    transaction: &Transaction<'_>,
    first: i32,
    last: i32,
) -> anyhow::Result<Vec<CleanRow>> {
    let rows = transaction
        .query(
            "SELECT l.batch_number, l.row_hash, l.price, l.bed, l.bath, l.acre_lot, l.house_size,
                    l.status, l.state, l.city, l.zip_code, l.brokered_by, l.prev_sold_date,
                    (b.ingested_at AT TIME ZONE 'UTC')::date
             FROM clean.listings l JOIN ops.batches b USING (batch_number)
             WHERE l.batch_number BETWEEN $1 AND $2
             ORDER BY l.batch_number, l.row_index",
            &[&first, &last],
        )
        .await
        .context("reading clean.listings")?;
    Ok(rows
        .iter()
        .map(|row| CleanRow {
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
        .collect())
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

/// The production model's training: its id and the last batch it used.
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

pub async fn count_rows(
    transaction: &Transaction<'_>,
    after: i32,
    up_to: i32,
) -> anyhow::Result<i64> {
    Ok(transaction
        .query_one(
            "SELECT count(*) FROM clean.listings WHERE batch_number > $1 AND batch_number <= $2",
            &[&after, &up_to],
        )
        .await?
        .get(0))
}

/// Writes rows as a realtor-data CSV (the Kaggle dataset's 12 columns; `street` is not kept
/// by process, so it is empty).
pub fn write_realtor_csv(path: &std::path::Path, rows: &[&CleanRow]) -> anyhow::Result<()> {
    use std::io::Write;

    fn quoted(text: &str) -> std::borrow::Cow<'_, str> {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\"")).into()
        } else {
            text.into()
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(
        out,
        "brokered_by,status,price,bed,bath,acre_lot,street,city,state,zip_code,house_size,prev_sold_date"
    )?;
    for row in rows {
        writeln!(
            out,
            "{},{},{},{},{},{},,{},{},{},{},{}",
            row.brokered_by.map(|b| b.to_string()).unwrap_or_default(),
            row.status.map(|s| s.as_str()).unwrap_or_default(),
            row.price,
            row.bed,
            row.bath,
            row.acre_lot,
            quoted(row.city.as_deref().unwrap_or_default()),
            quoted(&row.state),
            row.zip_code.map(|z| z.to_string()).unwrap_or_default(),
            row.house_size,
            row.prev_sold_date
                .map(|d| d.to_string())
                .unwrap_or_default(),
        )?;
    }
    out.flush()?;
    Ok(())
}
