//! What train reads and writes in PostgreSQL.

use anyhow::Context;
use appraise_core::clean::CleanRow;
use tokio_postgres::Transaction;

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

/// Clean rows of batches `first` to `last`, both included.
pub async fn count_rows(
    transaction: &Transaction<'_>,
    first: i32,
    last: i32,
) -> anyhow::Result<i64> {
    Ok(transaction
        .query_one(
            "SELECT count(*) FROM clean.listings WHERE batch_number BETWEEN $1 AND $2",
            &[&first, &last],
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
