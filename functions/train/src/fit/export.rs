//! Rows written out for other implementations to fit on, in two forms:
//!
//! - [`write_realtor_csv`]: the training and test rows of a training as realtor-data CSVs,
//!   for comparing with other implementations that make their own features
//!   (`TRAIN_EXPORT_DIR`; see bench/README.md);
//! - [`write_feature_matrix`]: a feature matrix and its prices, exactly as the models are fitted
//!   on it, for comparing the learners alone (the train tests' `quality` module fits Python's
//!   xgboost and scikit-learn on it through `bench/fit_matrix.py`).

use anyhow::Context;
use appraise_core::{
    clean::CleanRow,
    features::{FEATURE_COUNT, FEATURE_NAMES},
    model::Matrix,
};

/// Creates `path` (and its folder) for writing, buffered.
fn create(path: &std::path::Path) -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(std::io::BufWriter::new(file))
}

/// Writes a feature matrix and its prices as a CSV: a header of [`FEATURE_NAMES`] and `price`,
/// then one line per row. Numbers are written in Rust's shortest form that reads back as the
/// same `f64` (so a reader gets the exact values the models saw); a missing value (NaN) is an
/// empty field, which numpy's `genfromtxt` and pandas read as NaN. An error when `x` does not
/// have [`FEATURE_COUNT`] columns or `y` has not one price per row.
pub fn write_feature_matrix(path: &std::path::Path, x: &Matrix, y: &[f64]) -> anyhow::Result<()> {
    use std::{fmt::Write as _, io::Write};

    if x.cols != FEATURE_COUNT {
        anyhow::bail!(
            "feature matrix: {} columns, but there are {FEATURE_COUNT} features",
            x.cols
        );
    }
    if y.len() != x.rows {
        anyhow::bail!(
            "feature matrix: {} prices for {} rows, not one per row",
            y.len(),
            x.rows
        );
    }
    let mut out = create(path)?;
    writeln!(out, "{},price", FEATURE_NAMES.join(","))?;
    let mut line = String::new();
    for (i, price) in y.iter().enumerate() {
        line.clear();
        // Each field followed by a comma, the last one removed; a NaN leaves its field empty.
        for value in x.row(i).iter().chain([price]) {
            if !value.is_nan() {
                write!(line, "{value}")?;
            }
            line.push(',');
        }
        line.pop();
        writeln!(out, "{line}")?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
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
    let mut out = create(path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_matrix_reads_back_exactly_with_missing_values_empty() {
        let mut row = [0.0; FEATURE_COUNT];
        row[0] = 0.1 + 0.2;
        row[1] = f64::NAN;
        row[2] = 1e-300;
        row[3] = 12.582900103603793;
        row[FEATURE_COUNT - 1] = -3.0;
        let x = Matrix::from_rows(&[row, [1.0; FEATURE_COUNT]]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        write_feature_matrix(&path, &x, &[512_900.0, 1.5]).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], format!("{},price", FEATURE_NAMES.join(",")));
        let fields: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(fields.len(), FEATURE_COUNT + 1);
        assert_eq!(fields[1], "");
        for (written, value) in fields.iter().zip(row.iter().chain([&512_900.0])) {
            if value.is_nan() {
                continue;
            }
            assert_eq!(written.parse::<f64>().unwrap().to_bits(), value.to_bits());
        }
    }

    #[test]
    fn a_matrix_of_other_shape_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        let narrow = Matrix::from_rows(&[[1.0, 2.0]]).unwrap();
        let error = write_feature_matrix(&path, &narrow, &[1.0]).unwrap_err();
        assert!(error.to_string().contains("2 columns"), "{error}");
        let x = Matrix::from_rows(&[[1.0; FEATURE_COUNT]]).unwrap();
        let error = write_feature_matrix(&path, &x, &[1.0, 2.0]).unwrap_err();
        assert!(error.to_string().contains("2 prices for 1 rows"), "{error}");
    }
}
