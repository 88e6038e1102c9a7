//! Listings read from a Kaggle-format CSV file (`realtor-data.zip.csv` or a slice of it, such as
//! `data/realtor-sample.csv`), served in fixed-size batches.
//!
//! People's copies of the Kaggle file differ, so the reader accepts the variants found in the
//! wild and reports what it made of them in a [`CsvLoadReport`] (logged at start and served by
//! `GET /health`):
//!
//! - **Columns** are found by the header's names, in any order (extra columns are ignored,
//!   names are compared ignoring ASCII case and surrounding spaces). Nine are required:
//!   `status, price, bed, bath, acre_lot, city, state, zip_code, house_size`; the error names
//!   the missing ones. `brokered_by`, `street` and `prev_sold_date` ([`OPTIONAL_COLUMNS`]) may
//!   be absent, as in the 10- and 11-column copies that circulate: they are then null in every
//!   row and listed in [`CsvLoadReport::missing_optional_columns`].
//! - **Separator**: comma, semicolon or tab, whichever splits the header into the most known
//!   column names (comma on a tie). When none of them yields the required columns, the error
//!   shows the header and the character it looks separated by.
//! - **What an Excel re-save does** keeps working: a UTF-8 byte-order mark, CRLF line endings,
//!   zip codes without their leading zeros (`601` is 00601), whole numbers without `.0`, and
//!   dates written `M/D/YYYY` or `MM/DD/YYYY` (US order) instead of `YYYY-MM-DD`, with or
//!   without a time after a space or a `T` (`12/2/2019 0:00`, `2019-12-02T00:00:00`); see
//!   [`parse_csv_date`].
//! - **Values**: empty fields are nulls. A field that does not parse as its type (a price of
//!   `"abc"`, a zip code of `"1234567"`, a date of `"2019-13-01"` or `"2/12/19"`) becomes null
//!   too, and is counted per column in [`CsvLoadReport::unparsed_values`].
//! - **Ragged rows are dropped.** A row whose number of fields differs from the header's (a
//!   truncated last line, a city with an unquoted comma in it) cannot be read safely: every
//!   field after the fault would land in the wrong column. Such rows are never served; they are
//!   counted in [`CsvLoadReport::ragged_rows`] (with the first few line numbers), and
//!   [`CsvLoadReport::rows`] counts only the rows kept. A last line cut inside its last field
//!   keeps its field count and cannot be told apart from a complete one.
//! - **Text must be UTF-8.** A UTF-16 file (with or without its byte-order mark, as Excel's
//!   "Unicode text" writes) is refused with an error that says so and suggests re-saving as
//!   UTF-8. Any other invalid UTF-8 (a Latin-1 `São Paulo`) fails the whole file with an error
//!   naming the line and column: one bad byte usually means the whole file is in another
//!   encoding, and serving it half-decoded would spread the damage silently.
//!
//! Otherwise nothing in the file's contents can make loading fail or panic; only an unreadable
//! file, one that is not UTF-8, a header without the required columns, or a file with no
//! usable row does.
//!
//! **Batching.** Batches are consecutive runs of a fixed number of rows
//! (`SOURCE_CSV_BATCH_ROWS`, default 2,000), the last one shorter, numbered from 0: the
//! 12,885-row sample gives batches 0–5 of 2,000 rows and batch 6 of 885. Fixed sizes were
//! chosen over the course plan's proportions because a CSV has no status/price segments to
//! honour, and a fixed size makes the number of batches obvious from the file's length.
//!
//! **Memory.** The whole file is read into memory at start-up (about 200 bytes per row; the
//! 1 MB sample is instant, the full 2.2M-row Kaggle file would take ~0.5 GB). A multi-gigabyte
//! file would want an index of batch offsets and streaming reads instead.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read},
    num::NonZeroUsize,
    path::Path,
};

use appraise_core::listing::{FIELDS, Listing, ZipCode};
use time::{Date, Month};

/// The columns a copy of the file may lack; they are then null in every row.
pub const OPTIONAL_COLUMNS: [&str; 3] = ["brokered_by", "street", "prev_sold_date"];

/// The separators tried on the header, in order of preference on a tie.
const DELIMITERS: [u8; 3] = [b',', b';', b'\t'];

/// How many line numbers of dropped rows the report keeps.
const RAGGED_LINES_KEPT: usize = 5;

/// The longest header an error message quotes.
const HEADER_SHOWN_CHARS: usize = 200;

/// Every usable row of a CSV file, cut into batches.
#[derive(Debug, Clone)]
pub struct CsvListings {
    rows: Vec<Listing>,
    batch_rows: NonZeroUsize,
    report: CsvLoadReport,
}

/// What loading made of the file, for the start-up log and `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvLoadReport {
    /// Rows kept and served (ragged rows excluded).
    pub rows: usize,
    /// Rows dropped because their number of fields differs from the header's.
    pub ragged_rows: usize,
    /// The line numbers (1-based, the header is line 1) of the first few dropped rows.
    pub first_ragged_lines: Vec<u64>,
    /// Optional columns ([`OPTIONAL_COLUMNS`]) the header lacks, served as null.
    pub missing_optional_columns: Vec<&'static str>,
    /// Per column: non-empty values that did not parse and were read as null.
    pub unparsed_values: BTreeMap<&'static str, usize>,
    /// The separator the header was found to use: `,`, `;` or a tab.
    pub delimiter: char,
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
    #[error(
        "{path} is UTF-16 text ({byte_order}), not UTF-8: re-save it as UTF-8 (in Excel: \
         \"CSV UTF-8 (Comma delimited)\")"
    )]
    Utf16 {
        path: String,
        /// `little-endian` or `big-endian`.
        byte_order: &'static str,
    },
    #[error("{path}: line {line} is not UTF-8 text ({detail}); re-save the file as UTF-8")]
    NotUtf8 {
        path: String,
        line: u64,
        /// Which byte, in which column.
        detail: String,
    },
    #[error(
        "{path}: the header {header:?} has no column named {names}; {separator}",
        names = .missing.join(", "),
        separator = describe_separator(.looks_separated_by)
    )]
    MissingColumns {
        path: String,
        /// The required columns not found.
        missing: Vec<&'static str>,
        /// The header line as read (shortened if long).
        header: String,
        /// The separator the header seems to use, when one stands out.
        looks_separated_by: Option<char>,
    },
    #[error("{path}: no data rows")]
    Empty { path: String },
}

/// The end of a missing-columns message: what the header seems to be separated by.
fn describe_separator(separator: &Option<char>) -> String {
    match *separator {
        Some(',') => "it looks separated by ','".to_owned(),
        Some(';') => "it looks separated by ';'".to_owned(),
        Some('\t') => "it looks separated by tabs".to_owned(),
        Some(other) => format!(
            "it looks separated by {other:?}, but only commas, semicolons and tabs are read"
        ),
        None => "no separator stands out (commas, semicolons and tabs are read)".to_owned(),
    }
}

impl CsvListings {
    /// Reads the file at `path`. The report is also kept in the listings ([`Self::report`]).
    pub fn open(
        path: &Path,
        batch_rows: NonZeroUsize,
    ) -> Result<(CsvListings, CsvLoadReport), CsvLoadError> {
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| CsvLoadError::Unreadable {
            path: shown.clone(),
            source,
        })?;
        CsvListings::from_reader(file, &shown, batch_rows)
    }

    /// Reads CSV text from any reader; `name` appears in error messages.
    pub fn from_reader(
        reader: impl Read,
        name: &str,
        batch_rows: NonZeroUsize,
    ) -> Result<(CsvListings, CsvLoadReport), CsvLoadError> {
        let unreadable = |source: std::io::Error| CsvLoadError::Unreadable {
            path: name.to_owned(),
            source,
        };
        let mut reader = BufReader::new(reader);
        let mut header_line = Vec::new();
        reader
            .read_until(b'\n', &mut header_line)
            .map_err(unreadable)?;
        if header_line.iter().all(u8::is_ascii_whitespace) {
            return Err(CsvLoadError::Empty {
                path: name.to_owned(),
            });
        }
        if let Some(byte_order) = utf16_byte_order(&header_line) {
            return Err(CsvLoadError::Utf16 {
                path: name.to_owned(),
                byte_order,
            });
        }
        if header_line.starts_with(b"\xEF\xBB\xBF") {
            header_line.drain(..3);
        }
        let header_text =
            std::str::from_utf8(&header_line).map_err(|error| CsvLoadError::NotUtf8 {
                path: name.to_owned(),
                line: 1,
                detail: format!(
                    "byte 0x{:02X} in the header",
                    header_line[error.valid_up_to()]
                ),
            })?;
        let layout = Layout::detect(header_text).map_err(|(missing, looks_separated_by)| {
            CsvLoadError::MissingColumns {
                path: name.to_owned(),
                missing,
                header: shorten(header_text.trim_end_matches(['\r', '\n'])),
                looks_separated_by,
            }
        })?;

        // The header goes back in front of the rest, so the csv reader counts lines from it.
        let mut csv = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .delimiter(layout.delimiter)
            .from_reader(std::io::Cursor::new(header_line).chain(reader));
        let header_len = csv
            .byte_headers()
            .map_err(|error| unreadable(std::io::Error::other(error)))?
            .len();

        let mut report = CsvLoadReport {
            rows: 0,
            ragged_rows: 0,
            first_ragged_lines: Vec::new(),
            missing_optional_columns: layout.missing_optional.clone(),
            unparsed_values: BTreeMap::new(),
            delimiter: char::from(layout.delimiter),
        };
        let mut rows = Vec::new();
        let mut record = csv::ByteRecord::new();
        loop {
            let line = match csv.read_byte_record(&mut record) {
                Ok(true) => record.position().map_or(0, csv::Position::line),
                Ok(false) => break,
                Err(error) if error.is_io_error() => {
                    return Err(unreadable(std::io::Error::other(error)));
                }
                // The parser accepts any bytes in flexible mode; count anything else as ragged.
                Err(error) => {
                    report.note_ragged(error.position().map_or(0, csv::Position::line));
                    continue;
                }
            };
            layout.check_utf8(&record, line, name)?;
            if record.len() != header_len {
                report.note_ragged(line);
                continue;
            }
            rows.push(layout.listing(&record, &mut report));
        }
        report.rows = rows.len();
        if rows.is_empty() {
            return Err(CsvLoadError::Empty {
                path: name.to_owned(),
            });
        }
        let listings = CsvListings {
            rows,
            batch_rows,
            report: report.clone(),
        };
        Ok((listings, report))
    }

    /// Every row kept, in file order.
    pub fn rows(&self) -> &[Listing] {
        &self.rows
    }

    /// What loading made of the file.
    pub fn report(&self) -> &CsvLoadReport {
        &self.report
    }

    /// How many batches the file makes.
    pub fn batch_count(&self) -> u64 {
        self.rows.len().div_ceil(self.batch_rows.get()) as u64
    }

    /// The rows of batch `batch_number` (0-based), or `None` past the last batch.
    pub fn batch(&self, batch_number: u64) -> Option<&[Listing]> {
        let index = usize::try_from(batch_number).ok()?;
        let start = index.checked_mul(self.batch_rows.get())?;
        if start >= self.rows.len() {
            return None;
        }
        let end = (start + self.batch_rows.get()).min(self.rows.len());
        Some(&self.rows[start..end])
    }
}

impl CsvLoadReport {
    fn note_ragged(&mut self, line: u64) {
        self.ragged_rows += 1;
        if self.first_ragged_lines.len() < RAGGED_LINES_KEPT {
            self.first_ragged_lines.push(line);
        }
    }
}

/// `Some` byte order when the header line is UTF-16: a byte-order mark, or ASCII text with
/// every other byte zero.
fn utf16_byte_order(line: &[u8]) -> Option<&'static str> {
    if line.starts_with(b"\xFF\xFE") {
        return Some("little-endian");
    }
    if line.starts_with(b"\xFE\xFF") {
        return Some("big-endian");
    }
    let zeros_at = |parity: usize| {
        line.iter()
            .skip(parity)
            .step_by(2)
            .filter(|&&byte| byte == 0)
            .count()
    };
    let half = line.len() / 2;
    if half >= 4 && zeros_at(1) * 4 >= half * 3 {
        Some("little-endian")
    } else if half >= 4 && zeros_at(0) * 4 >= half * 3 {
        Some("big-endian")
    } else {
        None
    }
}

/// `text` cut to [`HEADER_SHOWN_CHARS`] characters.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(HEADER_SHOWN_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The file's separator and where each API field sits in its rows.
struct Layout {
    delimiter: u8,
    /// `positions[k]` is the column of `FIELDS[k]`, `None` for an absent optional column.
    positions: [Option<usize>; 12],
    missing_optional: Vec<&'static str>,
    /// The header's column names, for error messages.
    names: Vec<String>,
}

impl Layout {
    /// Splits the header with each separator and keeps the one that finds the most known
    /// columns. Without the required columns: those missing and the separator the header
    /// seems to use.
    fn detect(header: &str) -> Result<Layout, (Vec<&'static str>, Option<char>)> {
        let mut best: Option<(usize, Layout)> = None;
        for delimiter in DELIMITERS {
            let names = split_header(header, delimiter);
            let mut positions = [None; 12];
            for (column, name) in names.iter().enumerate() {
                let name = name.trim().trim_start_matches('\u{feff}').trim();
                if let Some(field) = FIELDS.iter().position(|f| f.eq_ignore_ascii_case(name))
                    && positions[field].is_none()
                {
                    positions[field] = Some(column);
                }
            }
            let found = positions.iter().flatten().count();
            if best.as_ref().is_none_or(|(most, _)| found > *most) {
                let missing_optional = FIELDS
                    .iter()
                    .zip(positions)
                    .filter(|(field, position)| {
                        position.is_none() && OPTIONAL_COLUMNS.contains(field)
                    })
                    .map(|(field, _)| *field)
                    .collect();
                let layout = Layout {
                    delimiter,
                    positions,
                    missing_optional,
                    names,
                };
                best = Some((found, layout));
            }
        }
        let (found, layout) = best.expect("at least one delimiter is tried");
        let missing_required: Vec<&'static str> = FIELDS
            .iter()
            .zip(layout.positions)
            .filter(|(field, position)| position.is_none() && !OPTIONAL_COLUMNS.contains(field))
            .map(|(field, _)| *field)
            .collect();
        if missing_required.is_empty() {
            return Ok(layout);
        }
        // Two known names split apart say the separator is right and the columns are missing;
        // otherwise name the punctuation the header is full of.
        let separator = if found >= 2 {
            Some(char::from(layout.delimiter))
        } else {
            most_common_punctuation(header)
        };
        Err((missing_required, separator))
    }

    /// Fails on the first field that is not UTF-8, naming its line and column.
    fn check_utf8(
        &self,
        record: &csv::ByteRecord,
        line: u64,
        file: &str,
    ) -> Result<(), CsvLoadError> {
        for (column, field) in record.iter().enumerate() {
            if let Err(error) = std::str::from_utf8(field) {
                let name = self
                    .names
                    .get(column)
                    .map_or("beyond the header", String::as_str);
                return Err(CsvLoadError::NotUtf8 {
                    path: file.to_owned(),
                    line,
                    detail: format!(
                        "byte 0x{:02X} in column {} ({name})",
                        field[error.valid_up_to()],
                        column + 1
                    ),
                });
            }
        }
        Ok(())
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
            prev_sold_date: fields.parsed("prev_sold_date", p[11], parse_csv_date),
        }
    }
}

/// The header's names as `delimiter` splits them (quotes understood).
fn split_header(header: &str, delimiter: u8) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(header.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => record.iter().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// The ASCII punctuation (or tab) the header uses most, apart from quotes and underscores.
fn most_common_punctuation(header: &str) -> Option<char> {
    let mut counts = BTreeMap::<char, usize>::new();
    for c in header.trim_end_matches(['\r', '\n']).chars() {
        if (c.is_ascii_punctuation() && !matches!(c, '_' | '"' | '\'')) || c == '\t' {
            *counts.entry(c).or_default() += 1;
        }
    }
    // The first of the most frequent, in character order, so the answer is deterministic.
    let most = counts.values().copied().max()?;
    counts
        .into_iter()
        .find(|&(_, count)| count == most)
        .map(|(c, _)| c)
}

/// Reads one row's fields, counting values that do not parse.
struct FieldReader<'a> {
    record: &'a csv::ByteRecord,
    report: &'a mut CsvLoadReport,
}

impl<'a> FieldReader<'a> {
    /// The trimmed text of a column, `None` when empty or the column is absent. Fields were
    /// checked to be UTF-8 before the row got here.
    fn raw(&self, column: Option<usize>) -> Option<&'a str> {
        let bytes = self.record.get(column?)?;
        let text = std::str::from_utf8(bytes).ok()?.trim();
        (!text.is_empty()).then_some(text)
    }

    fn parsed<T>(
        &mut self,
        field: &'static str,
        column: Option<usize>,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let value = parse(self.raw(column)?);
        if value.is_none() {
            *self.report.unparsed_values.entry(field).or_default() += 1;
        }
        value
    }

    fn text(&mut self, column: Option<usize>) -> Option<String> {
        self.raw(column).map(str::to_owned)
    }

    /// `105000.0` or `105000`: anything Rust reads as a finite `f64`.
    fn number(&mut self, field: &'static str, column: Option<usize>) -> Option<f64> {
        self.parsed(field, column, |text| {
            text.parse::<f64>().ok().filter(|value| value.is_finite())
        })
    }

    /// Ids are written as floats (`103378.0`, or `103378` after a re-save); anything but a
    /// whole number is not an id.
    fn id(&mut self, field: &'static str, column: Option<usize>) -> Option<i64> {
        self.parsed(field, column, |text| {
            let value: f64 = text.parse().ok()?;
            (value.fract() == 0.0 && value.abs() < 9.0e15).then_some(value as i64)
        })
    }
}

/// A date as copies of the file write it: `YYYY-MM-DD` (the original), `M/D/YYYY` or
/// `MM/DD/YYYY` (US order, as Excel writes it), each optionally followed by a time after a
/// space or a `T` (`2019-12-02 00:00:00`, `12/2/2019 0:00`, `2019-12-02T00:00:00Z`), which is
/// ignored. Two-digit years and day-first orders are not read: they are ambiguous.
pub fn parse_csv_date(text: &str) -> Option<Date> {
    let text = text.trim();
    let (date, time) = match text.find([' ', 'T']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    if time.is_some_and(|time| !is_time_of_day(time)) {
        return None;
    }
    let (year, month, day) = if date.contains('-') {
        let mut parts = date.split('-');
        let parts = (parts.next()?, parts.next()?, parts.next()?, parts.next());
        match parts {
            (year, month, day, None) => (year, month, day),
            _ => return None,
        }
    } else {
        let mut parts = date.split('/');
        let parts = (parts.next()?, parts.next()?, parts.next()?, parts.next());
        match parts {
            (month, day, year, None) => (year, month, day),
            _ => return None,
        }
    };
    if year.len() != 4 {
        return None;
    }
    let year = digits(year, 4)? as i32;
    let month = Month::try_from(digits(month, 2)? as u8).ok()?;
    Date::from_calendar_date(year, month, digits(day, 2)? as u8).ok()
}

/// `H:MM`, `HH:MM:SS` or `HH:MM:SS.fff`, optionally followed by `Z`, `AM` or `PM`.
fn is_time_of_day(text: &str) -> bool {
    let text = text.trim();
    let text = ["Z", "AM", "PM", "am", "pm"]
        .iter()
        .find_map(|suffix| text.strip_suffix(suffix))
        .unwrap_or(text)
        .trim_end();
    let mut parts = text.split(':');
    let hour = parts.next().and_then(|hour| digits(hour, 2));
    let minute = parts.next().and_then(|minute| digits(minute, 2));
    let second_ok = match parts.next() {
        None => true,
        Some(second) => {
            let (whole, fraction) = second.split_once('.').unwrap_or((second, "0"));
            digits(whole, 2).is_some_and(|s| s < 61)
                && fraction.bytes().all(|b| b.is_ascii_digit())
                && !fraction.is_empty()
        }
    };
    matches!((hour, minute), (Some(h), Some(m)) if h < 24 && m < 60)
        && second_ok
        && parts.next().is_none()
}

/// 1 to `max_len` ASCII digits as a number.
fn digits(text: &str, max_len: usize) -> Option<u32> {
    if text.is_empty() || text.len() > max_len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn load(text: &str, batch_rows: usize) -> Result<(CsvListings, CsvLoadReport), CsvLoadError> {
        load_bytes(text.as_bytes(), batch_rows)
    }

    fn load_bytes(
        bytes: &[u8],
        batch_rows: usize,
    ) -> Result<(CsvListings, CsvLoadReport), CsvLoadError> {
        CsvListings::from_reader(bytes, "test.csv", NonZeroUsize::new(batch_rows).unwrap())
    }

    const HEADER: &str = "brokered_by,status,price,bed,bath,acre_lot,street,city,state,zip_code,house_size,prev_sold_date\n";

    #[test]
    fn bad_values_become_null_and_are_counted_and_ragged_rows_are_dropped() {
        let text = format!(
            "{HEADER}\
             1.5,for_sale,abc,3,2,0.1,9.0,Town,Ohio,123456,inf,2020-13-01\n\
             2.0,sold,100000,x,2\n\
             3.0,for_sale,5,1,1,1,1,\"Quoted, City\",Ohio,00601,900,2020-01-31\n\
             4.0,for_sale,5,1,1,1,1,Unquoted, City,Ohio,00601,900,2020-01-31\n\
             5.0,sold,7,1,1,1,1,Last,Ohio,601,900,1/31/2020"
        );
        let (listings, report) = load(&text, 2).unwrap();
        assert_eq!(report.rows, 3);
        assert_eq!(report.ragged_rows, 2);
        assert_eq!(report.first_ragged_lines, [3, 5]);
        assert_eq!(report.delimiter, ',');
        assert!(report.missing_optional_columns.is_empty());
        let counts: Vec<(&str, usize)> = report.unparsed_values.into_iter().collect();
        assert_eq!(
            counts,
            [
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
        let quoted = &listings.rows()[1];
        assert_eq!(quoted.city.as_deref(), Some("Quoted, City"));
        assert_eq!(
            quoted.zip_code.map(|zip| zip.to_string()).as_deref(),
            Some("00601")
        );
        let last = &listings.rows()[2];
        assert_eq!(last.brokered_by, Some(5));
        assert_eq!(last.prev_sold_date, Some(date!(2020 - 01 - 31)));
        assert_eq!(listings.batch_count(), 2);
        assert_eq!(listings.batch(0).unwrap().len(), 2);
        assert_eq!(listings.batch(1).unwrap().len(), 1);
        assert!(listings.batch(2).is_none());
        assert_eq!(listings.report().rows, 3);
    }

    #[test]
    fn columns_may_come_in_any_order_and_optional_ones_may_be_absent() {
        let text = "zip_code,price,status,bed,bath,acre_lot,street,city,state,brokered_by,house_size,prev_sold_date,notes\n\
                    02919,205000.0,for_sale,3,2,0.12,1.0,Johnston,Rhode Island,81032.0,988.0,2019-12-02,x\n";
        let (listings, _) = load(text, 10).unwrap();
        let row = &listings.rows()[0];
        assert_eq!(row.zip_code.unwrap().value(), 2919);
        assert_eq!(row.price, Some(205_000.0));
        assert_eq!(row.brokered_by, Some(81_032));

        let ten = "Status, Price,bed,bath,acre_lot,city,state,zip_code,house_size,prev_sold_date\r\n\
                   sold,1,2,3,4,Town,Ohio,43215,5,\r\n";
        let (listings, report) = load(ten, 10).unwrap();
        assert_eq!(report.missing_optional_columns, ["brokered_by", "street"]);
        let row = &listings.rows()[0];
        assert_eq!((row.brokered_by, row.street), (None, None));
        assert_eq!(
            (row.status.as_deref(), row.price, row.house_size),
            (Some("sold"), Some(1.0), Some(5.0))
        );

        match load("price,status,brokered_by\n1,sold,3\n", 10) {
            Err(error @ CsvLoadError::MissingColumns { .. }) => {
                let CsvLoadError::MissingColumns { missing, .. } = &error else {
                    unreachable!()
                };
                assert_eq!(
                    missing,
                    &[
                        "bed",
                        "bath",
                        "acre_lot",
                        "city",
                        "state",
                        "zip_code",
                        "house_size"
                    ]
                );
                let message = error.to_string();
                assert!(
                    message.contains("no column named bed, bath, acre_lot")
                        && message.contains("it looks separated by ','"),
                    "{message}"
                );
            }
            other => panic!("expected missing columns, got {other:?}"),
        }
        assert!(matches!(load(HEADER, 10), Err(CsvLoadError::Empty { .. })));
        assert!(matches!(load("", 10), Err(CsvLoadError::Empty { .. })));
    }

    #[test]
    fn the_separator_is_read_from_the_header() {
        let semicolon = HEADER.replace(',', ";")
            + "1.0;sold;10.5;1;1;0.5;2.0;\"A; B\";Ohio;43215;500;2019-12-02\n";
        let (listings, report) = load(&semicolon, 5).unwrap();
        assert_eq!(report.delimiter, ';');
        assert_eq!(listings.rows()[0].city.as_deref(), Some("A; B"));
        assert_eq!(listings.rows()[0].price, Some(10.5));

        let tab =
            HEADER.replace(',', "\t") + "1.0\tsold\t10\t1\t1\t0.5\t2.0\tA, B\tOhio\t43215\t500\t\n";
        let (listings, report) = load(&tab, 5).unwrap();
        assert_eq!(report.delimiter, '\t');
        assert_eq!(listings.rows()[0].city.as_deref(), Some("A, B"));

        let piped = HEADER.replace(',', "|") + "1.0|sold|10|1|1|0.5|2.0|A|Ohio|43215|500|\n";
        let message = load(&piped, 5).unwrap_err().to_string();
        assert!(
            message.contains("has no column named status, price")
                && message.contains("\"brokered_by|status|price")
                && message.contains("it looks separated by '|'"),
            "{message}"
        );
    }

    #[test]
    fn dates_are_read_in_the_forms_copies_use() {
        let december = Some(date!(2019 - 12 - 02));
        for text in [
            "2019-12-02",
            "2019-12-2",
            "12/2/2019",
            "12/02/2019",
            " 12/2/2019 ",
            "2019-12-02 00:00:00",
            "2019-12-02T00:00:00",
            "2019-12-02T00:00:00Z",
            "2019-12-02T13:45:10.250",
            "12/2/2019 0:00",
            "12/2/2019 12:00 AM",
        ] {
            assert_eq!(parse_csv_date(text), december, "{text}");
        }
        for text in [
            "2019-13-01",
            "2/30/2019",
            "12/2/19",
            "19-12-02",
            "2019/12/02",
            "12/2/2019/1",
            "2019-12-02 noon",
            "2019-12-02 25:00",
            "12-2-2019",
            "",
            "today",
        ] {
            assert_eq!(parse_csv_date(text), None, "{text}");
        }
    }

    #[test]
    fn text_that_is_not_utf8_fails_the_file_with_its_line() {
        // Latin-1 `São Paulo` on the second data row: the whole file is refused.
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"1.0,for_sale,10.0,1,1,1,1,Ohio City,Ohio,43215,500,\n");
        bytes.extend_from_slice(b"1.0,for_sale,10.0,1,1,1,1,S\xe3o Paulo,Ohio,43215,500,\n");
        let error = load_bytes(&bytes, 5).unwrap_err();
        assert!(
            matches!(error, CsvLoadError::NotUtf8 { line: 3, .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("line 3 is not UTF-8 text")
                && message.contains("0xE3 in column 8 (city)")
                && message.contains("re-save the file as UTF-8"),
            "{message}"
        );

        // UTF-16, with its byte-order mark or without.
        let utf16: Vec<u8> = HEADER.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let with_bom = [&b"\xFF\xFE"[..], &utf16].concat();
        for bytes in [&with_bom[..], &utf16[..]] {
            let message = load_bytes(bytes, 5).unwrap_err().to_string();
            assert!(
                message.contains("UTF-16 text (little-endian), not UTF-8")
                    && message.contains("re-save it as UTF-8"),
                "{message}"
            );
        }
        let big_endian: Vec<u8> = HEADER.encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert!(matches!(
            load_bytes(&big_endian, 5),
            Err(CsvLoadError::Utf16 {
                byte_order: "big-endian",
                ..
            })
        ));
    }

    #[test]
    fn a_bom_and_crlf_are_tolerated() {
        let text = format!(
            "\u{feff}{}1.0,sold,10,1,1,0.5,2,Town,Ohio,601,500,12/2/2019\r\n",
            HEADER.replace('\n', "\r\n")
        );
        let (listings, report) = load(&text, 5).unwrap();
        assert_eq!((report.rows, report.ragged_rows), (1, 0));
        let row = &listings.rows()[0];
        assert_eq!(row.brokered_by, Some(1));
        assert_eq!(row.zip_code.unwrap().to_string(), "00601");
        assert_eq!(row.prev_sold_date, Some(date!(2019 - 12 - 02)));
        assert!(report.unparsed_values.is_empty());
    }
}
