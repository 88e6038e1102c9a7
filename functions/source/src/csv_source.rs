//! Listings read from a Kaggle-format CSV file (`realtor-data.zip.csv` or a slice of it, such as
//! `data/realtor-sample.csv`), served in fixed-size batches.
//!
//! The file needs a header naming the twelve API fields, in any order (extra columns are
//! ignored). Empty fields are nulls. A field that does not parse as its type (a price of
//! `"abc"`, a zip code of `"1234567"`) becomes null too, and is counted per column in the
//! [`CsvLoadReport`]; a row with too few or too many fields keeps the fields it has. Nothing in
//! the file's contents can make loading fail or panic; only an unreadable file or a header
//! without the twelve columns does.
//!
//! **Batching.** Batches are consecutive runs of a fixed number of rows
//! (`SOURCE_CSV_BATCH_ROWS`, default 2,000), the last one shorter: the 12,885-row sample gives
//! six batches of 2,000 and one of 885. Fixed sizes were chosen over the course plan's
//! proportions because a CSV has no status/price segments to honour, and a fixed size makes
//! the number of batches obvious from the file's length.
//!
//! **Memory.** The whole file is read into memory at start-up (about 200 bytes per row; the
//! 1 MB sample is instant, the full 2.2M-row Kaggle file would take ~0.5 GB). A multi-gigabyte
//! file would want an index of batch offsets and streaming reads instead.

use std::{collections::BTreeMap, io::Read, num::NonZeroUsize, path::Path};

use appraise_core::listing::{FIELDS, Listing, ZipCode, parse_date};

/// Every row of a CSV file, cut into batches.
#[derive(Debug, Clone)]
pub struct CsvListings {
    rows: Vec<Listing>,
    batch_rows: NonZeroUsize,
}

/// What loading found wrong with the file, for the start-up log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvLoadReport {
    /// Rows read (every row is kept).
    pub rows: usize,
    /// Rows whose number of fields differs from the header's.
    pub ragged_rows: usize,
    /// Per column: non-empty values that did not parse and were read as null.
    pub unparsed_values: BTreeMap<&'static str, usize>,
}

/// Why a CSV file could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum CsvLoadError {
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the header lacks the column(s) {missing:?} (it has {found:?})")]
    MissingColumns {
        path: String,
        missing: Vec<&'static str>,
        found: Vec<String>,
    },
    #[error("{path}: no data rows")]
    Empty { path: String },
}

impl CsvListings {
    /// Reads the file at `path`.
    pub fn open(
        path: &Path,
        batch_rows: NonZeroUsize,
    ) -> Result<(CsvListings, CsvLoadReport), CsvLoadError> {
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| CsvLoadError::Unreadable {
            path: shown.clone(),
            source,
        })?;
        CsvListings::from_reader(std::io::BufReader::new(file), &shown, batch_rows)
    }

    /// Reads CSV text from any reader; `name` appears in error messages.
    pub fn from_reader(
        reader: impl Read,
        name: &str,
        batch_rows: NonZeroUsize,
    ) -> Result<(CsvListings, CsvLoadReport), CsvLoadError> {
        let mut csv = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(reader);
        let unreadable = |error: csv::Error| CsvLoadError::Unreadable {
            path: name.to_owned(),
            source: std::io::Error::other(error),
        };
        let header = csv.byte_headers().map_err(unreadable)?.clone();
        let columns =
            ColumnMap::from_header(&header).map_err(|missing| CsvLoadError::MissingColumns {
                path: name.to_owned(),
                missing,
                found: header
                    .iter()
                    .map(|field| String::from_utf8_lossy(field).into_owned())
                    .collect(),
            })?;

        let mut report = CsvLoadReport::default();
        let mut rows = Vec::new();
        let mut record = csv::ByteRecord::new();
        loop {
            match csv.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                // The csv parser itself accepts any bytes; what is left is a failing reader.
                Err(error) if error.is_io_error() => return Err(unreadable(error)),
                Err(_) => {
                    report.ragged_rows += 1;
                    continue;
                }
            }
            if record.len() != header.len() {
                report.ragged_rows += 1;
            }
            rows.push(columns.listing(&record, &mut report));
        }
        report.rows = rows.len();
        if rows.is_empty() {
            return Err(CsvLoadError::Empty {
                path: name.to_owned(),
            });
        }
        Ok((CsvListings { rows, batch_rows }, report))
    }

    /// Every row, in file order.
    pub fn rows(&self) -> &[Listing] {
        &self.rows
    }

    /// How many batches the file makes.
    pub fn batch_count(&self) -> u64 {
        self.rows.len().div_ceil(self.batch_rows.get()) as u64
    }

    /// The rows of batch `batch_number` (1-based), or `None` past the last batch.
    pub fn batch(&self, batch_number: u64) -> Option<&[Listing]> {
        let index = usize::try_from(batch_number.checked_sub(1)?).ok()?;
        let start = index.checked_mul(self.batch_rows.get())?;
        if start >= self.rows.len() {
            return None;
        }
        let end = (start + self.batch_rows.get()).min(self.rows.len());
        Some(&self.rows[start..end])
    }
}

/// Where each API field sits in the file's rows.
struct ColumnMap {
    /// `positions[k]` is the column of `FIELDS[k]`.
    positions: [usize; 12],
}

impl ColumnMap {
    fn from_header(header: &csv::ByteRecord) -> Result<ColumnMap, Vec<&'static str>> {
        let mut positions = [usize::MAX; 12];
        for (column, name) in header.iter().enumerate() {
            // Tolerate a byte-order mark and stray spaces around names.
            let name = String::from_utf8_lossy(name);
            let name = name.trim_start_matches('\u{feff}').trim();
            if let Some(field) = FIELDS.iter().position(|field| *field == name)
                && positions[field] == usize::MAX
            {
                positions[field] = column;
            }
        }
        let missing: Vec<&'static str> = FIELDS
            .iter()
            .zip(positions)
            .filter(|(_, position)| *position == usize::MAX)
            .map(|(field, _)| *field)
            .collect();
        if missing.is_empty() {
            Ok(ColumnMap { positions })
        } else {
            Err(missing)
        }
    }

    fn listing(&self, record: &csv::ByteRecord, report: &mut CsvLoadReport) -> Listing {
        let mut fields = FieldReader { record, report };
        let p = &self.positions;
        Listing {
            brokered_by: fields.id("brokered_by", p[0]),
            status: fields.text(p[1]),
            price: fields.number("price", p[2]),
            bed: fields.number("bed", p[3]),
            bath: fields.number("bath", p[4]),
            acre_lot: fields.number("acre_lot", p[5]),
            street: fields.id("street", p[6]),
            city: fields.text(p[7]),
            state: fields.text(p[8]),
            zip_code: fields.parsed("zip_code", p[9], ZipCode::parse),
            house_size: fields.number("house_size", p[10]),
            prev_sold_date: fields.parsed("prev_sold_date", p[11], parse_date),
        }
    }
}

/// Reads one row's fields, counting values that do not parse.
struct FieldReader<'a> {
    record: &'a csv::ByteRecord,
    report: &'a mut CsvLoadReport,
}

impl FieldReader<'_> {
    /// The trimmed text of a column, `None` when empty or absent (a short row).
    fn raw(&self, column: usize) -> Option<String> {
        let bytes = self.record.get(column)?;
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }

    fn parsed<T>(
        &mut self,
        field: &'static str,
        column: usize,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let text = self.raw(column)?;
        let value = parse(&text);
        if value.is_none() {
            *self.report.unparsed_values.entry(field).or_default() += 1;
        }
        value
    }

    fn text(&mut self, column: usize) -> Option<String> {
        self.raw(column)
    }

    fn number(&mut self, field: &'static str, column: usize) -> Option<f64> {
        self.parsed(field, column, |text| {
            text.parse::<f64>().ok().filter(|value| value.is_finite())
        })
    }

    /// Ids are written as floats (`103378.0`); anything but a whole number is not an id.
    fn id(&mut self, field: &'static str, column: usize) -> Option<i64> {
        self.parsed(field, column, |text| {
            let value: f64 = text.parse().ok()?;
            (value.fract() == 0.0 && value.abs() < 9.0e15).then_some(value as i64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, batch_rows: usize) -> Result<(CsvListings, CsvLoadReport), CsvLoadError> {
        CsvListings::from_reader(
            text.as_bytes(),
            "test.csv",
            NonZeroUsize::new(batch_rows).unwrap(),
        )
    }

    const HEADER: &str = "brokered_by,status,price,bed,bath,acre_lot,street,city,state,zip_code,house_size,prev_sold_date\n";

    #[test]
    fn bad_values_become_null_and_are_counted() {
        let text = format!(
            "{HEADER}\
             1.5,for_sale,abc,3,2,0.1,9.0,Town,Ohio,123456,inf,2020-13-01\n\
             2.0,sold,100000,x,2\n\
             3.0,for_sale,5,1,1,1,1,\"Quoted, City\",Ohio,00601,900,2020-01-31,extra\n"
        );
        let (listings, report) = load(&text, 2).unwrap();
        assert_eq!(report.rows, 3);
        assert_eq!(report.ragged_rows, 2);
        let counts: Vec<(&str, usize)> = report.unparsed_values.into_iter().collect();
        assert_eq!(
            counts,
            [
                ("bed", 1),
                ("brokered_by", 1),
                ("house_size", 1),
                ("prev_sold_date", 1),
                ("price", 1),
                ("zip_code", 1),
            ]
        );
        let first = &listings.rows()[0];
        assert_eq!(
            (first.brokered_by, first.price, first.zip_code),
            (None, None, None)
        );
        assert_eq!(first.street, Some(9));
        let short = &listings.rows()[1];
        assert_eq!(short.bath, Some(2.0));
        assert_eq!((short.acre_lot, short.state.as_deref()), (None, None));
        let last = &listings.rows()[2];
        assert_eq!(last.city.as_deref(), Some("Quoted, City"));
        assert_eq!(
            last.zip_code.map(|zip| zip.to_string()).as_deref(),
            Some("00601")
        );
        assert_eq!(listings.batch_count(), 2);
        assert_eq!(listings.batch(2).unwrap().len(), 1);
        assert!(listings.batch(3).is_none() && listings.batch(0).is_none());
    }

    #[test]
    fn columns_may_come_in_any_order_but_must_all_be_there() {
        let text = "zip_code,price,status,bed,bath,acre_lot,street,city,state,brokered_by,house_size,prev_sold_date,notes\n\
                    02919,205000.0,for_sale,3,2,0.12,1.0,Johnston,Rhode Island,81032.0,988.0,2019-12-02,x\n";
        let (listings, _) = load(text, 10).unwrap();
        let row = &listings.rows()[0];
        assert_eq!(row.zip_code.unwrap().value(), 2919);
        assert_eq!(row.price, Some(205_000.0));
        assert_eq!(row.brokered_by, Some(81_032));

        match load("price,status\n1,sold\n", 10) {
            Err(CsvLoadError::MissingColumns { missing, .. }) => assert_eq!(missing.len(), 10),
            other => panic!("expected missing columns, got {other:?}"),
        }
        assert!(matches!(load(HEADER, 10), Err(CsvLoadError::Empty { .. })));
    }

    #[test]
    fn invalid_utf8_does_not_fail_the_file() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"1.0,for_sale,10.0,1,1,1,1,S\xffo Paulo,Ohio,43215,500,\n");
        let (listings, _) =
            CsvListings::from_reader(&bytes[..], "bytes", NonZeroUsize::new(5).unwrap()).unwrap();
        assert!(listings.rows()[0].city.as_deref().unwrap().starts_with('S'));
    }
}
