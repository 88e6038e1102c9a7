//! Rows written out for other implementations to fit on, and read back:
//!
//! - [`write_realtor_csv`]: the training and test rows of a training as realtor-data CSVs,
//!   for comparing with other implementations that make their own features
//!   (`TRAIN_EXPORT_DIR`; see bench/README.md); [`read_realtor_csv`] turns such a CSV back
//!   into feature inputs for the comparisons;
//! - [`write_feature_matrix`]: a feature matrix and its prices, exactly as the models are fitted
//!   on it, for comparing the learners alone (the train tests' `quality` module fits Python's
//!   xgboost and scikit-learn on it through `bench/fit_matrix.py`).

use anyhow::Context;
use appraise_core::{
    clean::CleanRow,
    features::{FEATURE_COUNT, FEATURE_NAMES, FeatureInput, FeatureSpec, ListingInput},
    listing::{Status, ZipCode, parse_date},
    model::Matrix,
};
use time::Date;

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

/// One row of a realtor-data CSV as the comparisons read it: the listing and its price. The
/// four sizes and the price are required, the other fields optional (an unreadable one counts
/// as missing, as the peer's pandas reads it).
#[derive(Debug, Clone, PartialEq)]
pub struct RealtorRow {
    pub price: f64,
    pub listing: ListingInput,
}

/// The training and test matrices of realtor-data rows listed on `as_of`: the features fitted
/// on `train` (cross-fitted, as train fits them) and applied to both sides. For comparisons on
/// the peer's rows (`compare_peer`, the bench-only `compare-libs`).
pub fn realtor_matrices(
    train: &[RealtorRow],
    test: &[RealtorRow],
    as_of: Date,
) -> anyhow::Result<[super::LabelledMatrix; 2]> {
    anyhow::ensure!(
        !train.is_empty() && !test.is_empty(),
        "need rows on both sides: {} training rows, {} test rows",
        train.len(),
        test.len()
    );
    let train_y: Vec<f64> = train.iter().map(|r| r.price).collect();
    let (spec, train_features) = {
        let inputs: Vec<FeatureInput<'_>> =
            train.iter().map(|r| r.listing.features(as_of)).collect();
        FeatureSpec::fit_cross(&inputs, &train_y).context("fitting the features")?
    };
    let test_features: Vec<_> = test
        .iter()
        .map(|r| spec.transform(&r.listing.features(as_of)))
        .collect();
    Ok([
        super::LabelledMatrix {
            x: Matrix::from(train_features),
            y: train_y,
        },
        super::LabelledMatrix {
            x: Matrix::from(test_features),
            y: test.iter().map(|r| r.price).collect(),
        },
    ])
}

/// Reads a realtor-data CSV (the columns [`write_realtor_csv`] writes, in any order, extra
/// columns ignored). A missing column, or a row whose price or size is missing or not a
/// number, is an error naming the column and the line.
pub fn read_realtor_csv(path: &std::path::Path) -> anyhow::Result<Vec<RealtorRow>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{}: reading the header", path.display()))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no column {name}", path.display()))
    };
    let [
        price,
        bed,
        bath,
        acre_lot,
        house_size,
        status,
        state,
        city,
        zip_code,
        brokered_by,
        prev_sold_date,
    ] = [
        "price",
        "bed",
        "bath",
        "acre_lot",
        "house_size",
        "status",
        "state",
        "city",
        "zip_code",
        "brokered_by",
        "prev_sold_date",
    ]
    .map(column);
    let (price, bed, bath, acre_lot, house_size) = (price?, bed?, bath?, acre_lot?, house_size?);
    let (status, state, city, zip_code) = (status?, state?, city?, zip_code?);
    let (brokered_by, prev_sold_date) = (brokered_by?, prev_sold_date?);
    let mut rows = Vec::new();
    for record in reader.records() {
        // The csv error names the line of a row it cannot read.
        let record = record.with_context(|| format!("{}: reading a row", path.display()))?;
        // Where the record starts (a quoted field may span lines).
        let line = record.position().map_or(0, |at| at.line());
        let text = |i: usize| Some(record.get(i)?.trim()).filter(|t| !t.is_empty());
        let number = |i: usize| text(i).and_then(|t| t.parse::<f64>().ok());
        let required = |i: usize| {
            number(i).with_context(|| {
                format!(
                    "{}: line {line}: {} is missing or not a number",
                    path.display(),
                    &headers[i]
                )
            })
        };
        rows.push(RealtorRow {
            price: required(price)?,
            listing: ListingInput {
                bed: required(bed)?,
                bath: required(bath)?,
                acre_lot: required(acre_lot)?,
                house_size: required(house_size)?,
                status: text(status).and_then(Status::parse),
                state: text(state).map(str::to_owned),
                city: text(city).map(str::to_owned),
                zip_code: text(zip_code).and_then(ZipCode::parse),
                brokered_by: number(brokered_by).map(|b| b as i64),
                prev_sold_date: text(prev_sold_date).and_then(parse_date),
            },
        });
    }
    Ok(rows)
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

    #[test]
    fn a_written_csv_reads_back_into_the_same_inputs_and_a_bad_price_is_named() {
        let as_of = parse_date("2026-11-27").unwrap();
        let row = CleanRow {
            batch_number: 3,
            row_hash: 7,
            price: 425_000.0,
            bed: 3.0,
            bath: 2.0,
            acre_lot: 0.25,
            house_size: 1_850.0,
            status: Some(Status::Sold),
            state: "New York".into(),
            city: Some("Troy, \"Lansingburgh\"".into()),
            zip_code: ZipCode::parse("01201"),
            brokered_by: Some(4_242),
            prev_sold_date: parse_date("2019-06-03"),
            as_of,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        write_realtor_csv(&path, &[&row]).unwrap();
        let read = read_realtor_csv(&path).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].price, 425_000.0);
        assert_eq!(read[0].listing.features(as_of), row.input());

        std::fs::write(
            &path,
            "brokered_by,status,price,bed,bath,acre_lot,city,state,zip_code,house_size,prev_sold_date\n\
             1,sold,abc,3,2,0.1,Troy,New York,12180,1000,\n",
        )
        .unwrap();
        let error = format!("{:#}", read_realtor_csv(&path).unwrap_err());
        assert!(
            error.contains("line 2: price is missing or not a number"),
            "{error}"
        );
    }
}
