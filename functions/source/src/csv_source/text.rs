//! What a CSV file's text is made of, read from its header: the encoding (UTF-8 required; UTF-16
//! recognised, with or without its byte-order mark, so it can be refused with a clear error),
//! the separator (comma, semicolon or tab) and where each API field's column sits.

use std::collections::BTreeMap;

use appraise_core::listing::FIELDS;

use super::{CsvLoadError, OPTIONAL_COLUMNS};

/// The separators tried on the header, in order of preference on a tie.
const DELIMITERS: [u8; 3] = [b',', b';', b'\t'];

/// The longest header an error message quotes.
const HEADER_SHOWN_CHARS: usize = 200;

/// `Some` byte order when the header line is UTF-16: a byte-order mark, or ASCII text with
/// every other byte zero.
pub(super) fn utf16_byte_order(line: &[u8]) -> Option<&'static str> {
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
pub(super) fn shorten(text: &str) -> String {
    match text.char_indices().nth(HEADER_SHOWN_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The file's separator and where each API field sits in its rows.
pub(super) struct Layout {
    pub(super) delimiter: u8,
    /// `positions[k]` is the column of `FIELDS[k]`, `None` for an absent optional column.
    pub(super) positions: [Option<usize>; 12],
    pub(super) missing_optional: Vec<&'static str>,
    /// The header's column names, for error messages.
    names: Vec<String>,
}

impl Layout {
    /// Splits the header with each separator and keeps the one that finds the most known
    /// columns. Without the required columns: those missing and the separator the header
    /// seems to use.
    pub(super) fn detect(header: &str) -> Result<Layout, (Vec<&'static str>, Option<char>)> {
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
    pub(super) fn check_utf8(
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

#[cfg(test)]
mod tests {
    use super::super::{
        CsvLoadError,
        tests::{HEADER, load, load_bytes},
    };

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
}
