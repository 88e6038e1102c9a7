//! The CSV reader on the variants of the Kaggle file people actually have, each written from
//! the real sample `data/realtor-sample.csv` by `appraise_source::csv_variants`: whatever the
//! copy, the rows read must be the original's, field for field, or the load must fail with a
//! message that says why.

use std::{
    num::NonZeroUsize,
    path::{Path, PathBuf},
};

use appraise_core::listing::Listing;
use appraise_source::{
    csv_source::{CsvListings, CsvLoadError, CsvLoadReport},
    csv_variants::{self, UNQUOTED_COMMA_ROW, Variant},
};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/realtor-sample.csv");
const SAMPLE_ROWS: usize = 12_885;

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("appraise-source-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes `variant` of the sample into the directory and returns its path.
    fn variant(&self, variant: Variant) -> PathBuf {
        let path = self.0.join(format!("{variant:?}.csv"));
        csv_variants::write(variant, Path::new(SAMPLE), &path).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(path: &Path) -> Result<(CsvListings, CsvLoadReport), CsvLoadError> {
    CsvListings::open(path, NonZeroUsize::new(2_000).unwrap())
}

fn original() -> Vec<Listing> {
    let (listings, report) = open(Path::new(SAMPLE)).unwrap();
    assert_eq!((report.rows, report.ragged_rows), (SAMPLE_ROWS, 0));
    listings.rows().to_vec()
}

/// The original's rows with the columns a copy lacks set to null.
fn without(rows: &[Listing], columns: &[&str]) -> Vec<Listing> {
    rows.iter()
        .map(|row| {
            let mut row = row.clone();
            for column in columns {
                match *column {
                    "brokered_by" => row.brokered_by = None,
                    "street" => row.street = None,
                    "prev_sold_date" => row.prev_sold_date = None,
                    other => panic!("{other} is not optional"),
                }
            }
            row
        })
        .collect()
}

/// Row by row, so a failure names the first row that differs.
fn assert_same_rows(read: &[Listing], expected: &[Listing], variant: Variant) {
    assert_eq!(read.len(), expected.len(), "{variant:?}: row count");
    for (index, (read, expected)) in read.iter().zip(expected).enumerate() {
        assert_eq!(read, expected, "{variant:?}: row {index}");
    }
}

#[test]
fn copies_without_optional_columns_load_with_those_columns_null() {
    let scratch = Scratch::new("optional");
    let original = original();
    for (variant, absent) in [
        (Variant::ElevenColumns, &["prev_sold_date"][..]),
        (Variant::TenColumns, &["brokered_by", "street"][..]),
    ] {
        let path = scratch.variant(variant);
        let header = std::fs::read_to_string(&path).unwrap();
        let columns = header.lines().next().unwrap().split(',').count();
        assert_eq!(columns, 12 - absent.len(), "{variant:?}");

        let (listings, report) = open(&path).unwrap();
        assert_eq!(report.missing_optional_columns, absent, "{variant:?}");
        assert_eq!((report.rows, report.ragged_rows), (SAMPLE_ROWS, 0));
        assert!(report.unparsed_values.is_empty(), "{variant:?}");
        assert_same_rows(listings.rows(), &without(&original, absent), variant);
    }
}

#[test]
fn an_excel_resave_reads_back_the_same_rows() {
    let scratch = Scratch::new("excel");
    let path = scratch.variant(Variant::ExcelResave);
    // The copy really has what Excel does to the file.
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBFbrokered_by,"));
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    assert!(text.ends_with("\r\n"));
    assert_eq!(text.matches("\r\n").count(), text.matches('\n').count());
    let first = text.lines().nth(1).unwrap();
    assert_eq!(
        first,
        "103378,for_sale,105000,3,2,0.12,1962661,Adjuntas,Puerto Rico,601,920,"
    );
    let dates: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|line| line.rsplit(',').next().filter(|date| !date.is_empty()))
        .collect();
    assert!(dates.len() > 4_000, "{} dates", dates.len());
    assert!(
        dates
            .iter()
            .all(|date| date.contains('/') && !date.contains('-')),
        "dates are M/D/YYYY"
    );
    assert!(
        dates.iter().any(|date| date.len() < 10),
        "without leading zeros"
    );
    assert!(!text.contains(".0,"));

    let (listings, report) = open(&path).unwrap();
    assert_eq!((report.rows, report.ragged_rows), (SAMPLE_ROWS, 0));
    assert!(report.missing_optional_columns.is_empty());
    assert!(
        report.unparsed_values.is_empty(),
        "{:?}",
        report.unparsed_values
    );
    assert_same_rows(listings.rows(), &original(), Variant::ExcelResave);
    assert!(
        listings
            .rows()
            .iter()
            .filter(|row| row.prev_sold_date.is_some())
            .count()
            > 4_000,
        "the dates were read, not dropped"
    );
}

#[test]
fn semicolon_and_tab_copies_load() {
    let scratch = Scratch::new("separators");
    let original = original();
    for (variant, delimiter) in [(Variant::Semicolon, ';'), (Variant::Tab, '\t')] {
        let path = scratch.variant(variant);
        let (listings, report) = open(&path).unwrap();
        assert_eq!(report.delimiter, delimiter);
        assert_eq!((report.rows, report.ragged_rows), (SAMPLE_ROWS, 0));
        assert!(report.unparsed_values.is_empty(), "{variant:?}");
        assert_same_rows(listings.rows(), &original, variant);
    }
}

#[test]
fn ragged_rows_are_counted_and_never_served() {
    let scratch = Scratch::new("ragged");
    let path = scratch.variant(Variant::Ragged);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.ends_with('\n'), "the last line is truncated");

    let (listings, report) = open(&path).unwrap();
    assert_eq!(report.ragged_rows, 2);
    assert_eq!(report.rows, SAMPLE_ROWS - 2);
    // Lines count from the header, line 1; data row k is on line k + 2.
    assert_eq!(
        report.first_ragged_lines,
        [UNQUOTED_COMMA_ROW as u64 + 2, SAMPLE_ROWS as u64 + 1]
    );
    assert!(report.unparsed_values.is_empty(), "nothing shifted");

    let mut expected = original();
    expected.pop();
    expected.remove(UNQUOTED_COMMA_ROW);
    assert_same_rows(listings.rows(), &expected, Variant::Ragged);
    assert_eq!(
        listings.batch_count(),
        (SAMPLE_ROWS - 2).div_ceil(2_000) as u64
    );
}

#[test]
fn a_utf16_copy_is_refused_with_advice() {
    let scratch = Scratch::new("utf16");
    let path = scratch.variant(Variant::Utf16Le);
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"\xFF\xFEb\0r\0"));
    let without_bom = scratch.0.join("no-bom.csv");
    std::fs::write(&without_bom, &bytes[2..]).unwrap();

    for path in [path, without_bom] {
        let error = open(&path).unwrap_err();
        assert!(
            matches!(
                error,
                CsvLoadError::Utf16 {
                    byte_order: "little-endian",
                    ..
                }
            ),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("is UTF-16 text (little-endian), not UTF-8")
                && message.contains("re-save it as UTF-8"),
            "{message}"
        );
    }
}

#[test]
fn latin1_text_is_refused_naming_its_line() {
    let scratch = Scratch::new("latin1");
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    // The sample's `Anasco` (line 21) spelt `Añasco` in Latin-1, as a Windows tool saves it.
    let mut lines: Vec<Vec<u8>> = text.lines().map(|line| line.as_bytes().to_vec()).collect();
    let line = String::from_utf8(lines[20].clone()).unwrap();
    let (before, after) = line.split_once(",Anasco,").unwrap();
    lines[20] = [before.as_bytes(), b",A\xF1asco,", after.as_bytes()].concat();
    let path = scratch.0.join("latin1.csv");
    std::fs::write(&path, lines.join(&b'\n')).unwrap();
    let message = open(&path).unwrap_err().to_string();
    assert!(
        message.contains("line 21 is not UTF-8 text (byte 0xF1 in column 8 (city))")
            && message.contains("re-save the file as UTF-8"),
        "{message}"
    );
}

#[test]
fn a_copy_without_required_columns_names_them() {
    let scratch = Scratch::new("required");
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let piped = format!("{}\n{rows}", header.replace(',', "|"));
    let path = scratch.0.join("piped.csv");
    std::fs::write(&path, piped).unwrap();
    let message = open(&path).unwrap_err().to_string();
    assert!(
        message.contains("has no column named status, price")
            && message.contains("it looks separated by '|'"),
        "{message}"
    );

    let renamed = text.replacen(",price,", ",list_price,", 1);
    let path = scratch.0.join("renamed.csv");
    std::fs::write(&path, renamed).unwrap();
    let message = open(&path).unwrap_err().to_string();
    assert!(
        message.contains("has no column named price; it looks separated by ','"),
        "{message}"
    );
}
