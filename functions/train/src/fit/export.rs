//! The training and test rows of a training as realtor-data CSVs, for comparing with other
//! implementations on identical rows (`TRAIN_EXPORT_DIR`; see bench/README.md).

use anyhow::Context;
use appraise_core::clean::CleanRow;

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
