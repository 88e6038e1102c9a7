//! Copies of a Kaggle-format CSV file made the ways people's copies differ from the original,
//! for tests: this crate's (`tests/source/csv_variants.rs`) and the local harness's, which serve them
//! to check the pipeline copes. The server never uses this module.
//!
//! [`write()`] reads a file with the twelve columns (such as `data/realtor-sample.csv`) and
//! writes one [`Variant`] of it. Every variant keeps the rows, in order, so a test can compare
//! what the source reads from the copy with what it reads from the original.

use std::{io, path::Path};

/// One way a copy of the file can differ from the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// 11 columns: no `prev_sold_date`.
    ElevenColumns,
    /// 10 columns: no `brokered_by` and no `street`.
    TenColumns,
    /// What opening and saving in Excel (US locale) does: dates as `M/D/YYYY`, zip codes
    /// without leading zeros (`601`), whole numbers without `.0`, CRLF line endings and a
    /// UTF-8 byte-order mark.
    ExcelResave,
    /// Fields separated by `;`.
    Semicolon,
    /// Fields separated by tabs.
    Tab,
    /// Two broken rows: data row [`UNQUOTED_COMMA_ROW`] gets `, PR` appended to its city
    /// without quotes (one field too many), and the last row is cut after its sixth field,
    /// without a final newline (a truncated download).
    Ragged,
    /// UTF-16 little-endian with its byte-order mark, as Excel's "Unicode Text" writes it.
    Utf16Le,
}

/// In [`Variant::Ragged`], the data row (0-based, header excluded) whose city gets an unquoted
/// comma.
pub const UNQUOTED_COMMA_ROW: usize = 100;

/// Columns written as numbers, which an Excel re-save writes without a trailing `.0`.
const NUMERIC: [&str; 7] = [
    "brokered_by",
    "price",
    "bed",
    "bath",
    "acre_lot",
    "street",
    "house_size",
];

/// Writes `variant` of the CSV file `from` to `to`.
pub fn write(variant: Variant, from: &Path, to: &Path) -> io::Result<()> {
    let mut reader = csv::Reader::from_path(from).map_err(io::Error::other)?;
    let header: Vec<String> = reader
        .headers()
        .map_err(io::Error::other)?
        .iter()
        .map(str::to_owned)
        .collect();
    let dropped: &[&str] = match variant {
        Variant::ElevenColumns => &["prev_sold_date"],
        Variant::TenColumns => &["brokered_by", "street"],
        _ => &[],
    };
    let kept: Vec<usize> = (0..header.len())
        .filter(|&column| !dropped.contains(&header[column].as_str()))
        .collect();
    let (delimiter, newline) = match variant {
        Variant::Semicolon => (';', "\n"),
        Variant::Tab => ('\t', "\n"),
        Variant::ExcelResave => (',', "\r\n"),
        _ => (',', "\n"),
    };

    let mut lines = vec![line(kept.iter().map(|&c| header[c].clone()), delimiter)];
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(io::Error::other)?;
        let mut fields: Vec<String> = kept
            .iter()
            .map(|&column| {
                let value = record.get(column).unwrap_or_default();
                match variant {
                    Variant::ExcelResave => excel_value(&header[column], value),
                    _ => value.to_owned(),
                }
            })
            .collect();
        if variant == Variant::Ragged && index == UNQUOTED_COMMA_ROW {
            let city = kept
                .iter()
                .position(|&column| header[column] == "city")
                .ok_or_else(|| io::Error::other("the file has no city column"))?;
            fields[city].push_str(", PR");
            lines.push(fields.join(","));
        } else {
            lines.push(line(fields, delimiter));
        }
    }
    let mut text = lines.join(newline) + newline;
    if variant == Variant::Ragged {
        // Cut the last row just before its seventh field, and drop the final newline.
        let last_start = text.len() - lines.last().map_or(0, String::len) - newline.len();
        let cut = text[last_start..]
            .match_indices(',')
            .nth(5)
            .map_or(text.len(), |(at, _)| last_start + at);
        text.truncate(cut);
    }

    let bytes = match variant {
        Variant::ExcelResave => [&b"\xEF\xBB\xBF"[..], text.as_bytes()].concat(),
        Variant::Utf16Le => [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect(),
        _ => text.into_bytes(),
    };
    std::fs::write(to, bytes)
}

/// Fields joined by `delimiter`, quoted where CSV needs it.
fn line(fields: impl IntoIterator<Item = String>, delimiter: char) -> String {
    let quoted: Vec<String> = fields
        .into_iter()
        .map(|field| {
            if field.contains([delimiter, '"', '\n', '\r']) {
                format!("\"{}\"", field.replace('"', "\"\""))
            } else {
                field
            }
        })
        .collect();
    quoted.join(&delimiter.to_string())
}

/// A value as Excel writes it back: `2019-12-02` → `12/2/2019`, `00601` → `601`,
/// `103378.0` → `103378`.
fn excel_value(column: &str, value: &str) -> String {
    match column {
        "prev_sold_date" => {
            let mut parts = value.splitn(3, '-');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(year), Some(month), Some(day)) => format!(
                    "{}/{}/{year}",
                    month.trim_start_matches('0'),
                    day.trim_start_matches('0')
                ),
                _ => value.to_owned(),
            }
        }
        "zip_code" if !value.is_empty() => {
            let trimmed = value.trim_start_matches('0');
            if trimmed.is_empty() { "0" } else { trimmed }.to_owned()
        }
        _ if NUMERIC.contains(&column) => value.strip_suffix(".0").unwrap_or(value).to_owned(),
        _ => value.to_owned(),
    }
}
