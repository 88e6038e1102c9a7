//! A listing: the twelve fields of the course's batch API, typed.
//!
//! The API (DESIGN.md §5) sends every number as a JSON float, ids and zip codes included
//! (`6016.0` for zip 06016), and `status`, `city`, `state` and `prev_sold_date` as strings. Any
//! field may be null. [`Listing::write_api_json`] writes that wire format (the `source` serves
//! it); [`parse_api_record`] reads it back (the `ingest` stage), keeping what it can and
//! naming every field that was missing or of the wrong type instead of failing the record.

use serde::Deserialize;
use serde_json::value::RawValue;
use time::{Date, macros::format_description};

/// The API's field names, in its order.
pub const FIELDS: [&str; 12] = [
    "brokered_by",
    "status",
    "price",
    "bed",
    "bath",
    "acre_lot",
    "street",
    "city",
    "state",
    "zip_code",
    "house_size",
    "prev_sold_date",
];

/// One listing; `None` is the API's null.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// The broker's id (an opaque integer the API sends as a float).
    pub brokered_by: Option<i64>,
    /// `for_sale`, `sold` or `ready_to_build` in the real data; not checked here.
    pub status: Option<String>,
    pub price: Option<f64>,
    pub bed: Option<f64>,
    pub bath: Option<f64>,
    pub acre_lot: Option<f64>,
    /// The street's id (the dataset hashes street names into integers).
    pub street: Option<i64>,
    pub city: Option<String>,
    /// The state's full name, e.g. `Puerto Rico`.
    pub state: Option<String>,
    /// Five digits with leading zeros, e.g. `00601`.
    pub zip_code: Option<ZipCode>,
    pub house_size: Option<f64>,
    pub prev_sold_date: Option<Date>,
}

/// A listing's `status` as the dataset writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    ForSale,
    Sold,
    ReadyToBuild,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::ForSale, Status::Sold, Status::ReadyToBuild];

    /// The wire value: `for_sale`, `sold` or `ready_to_build`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::ForSale => "for_sale",
            Status::Sold => "sold",
            Status::ReadyToBuild => "ready_to_build",
        }
    }

    /// Reads a wire value; `None` for anything else.
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// A US zip code: an integer 0..=99999, shown with five digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZipCode(u32);

impl ZipCode {
    pub fn new(value: u32) -> Option<ZipCode> {
        (value <= 99_999).then_some(ZipCode(value))
    }

    pub fn value(self) -> u32 {
        self.0
    }

    /// Parses `00601`, `601`, `601.0` or `00601-1234` (ZIP+4 keeps its first five digits).
    pub fn parse(text: &str) -> Option<ZipCode> {
        let text = text.trim();
        let head = text.split_once('-').map_or(text, |(head, _)| head);
        if let Ok(value) = head.parse::<u32>() {
            return ZipCode::new(value);
        }
        let value: f64 = head.parse().ok()?;
        ZipCode::from_f64(value)
    }

    /// A whole number 0..=99999 (the API sends zip codes as floats).
    pub fn from_f64(value: f64) -> Option<ZipCode> {
        (value.fract() == 0.0 && (0.0..=99_999.0).contains(&value)).then_some(ZipCode(value as u32))
    }
}

impl std::fmt::Display for ZipCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:05}", self.0)
    }
}

/// `YYYY-MM-DD`, the API's date format.
pub fn parse_date(text: &str) -> Option<Date> {
    Date::parse(text.trim(), format_description!("[year]-[month]-[day]")).ok()
}

impl Listing {
    /// Appends this listing as one JSON object in the API's wire format.
    pub fn write_api_json(&self, out: &mut Vec<u8>) {
        let mut floats = ryu::Buffer::new();
        let mut integers = itoa::Buffer::new();
        // Python's float repr, which the course API emits: whole numbers as `123.0` (written
        // with itoa, ~3× faster than ryu and byte-identical below 1e15), others shortest
        // round-trip.
        let mut number = |out: &mut Vec<u8>, value: Option<f64>| match value {
            Some(v)
                if v.fract() == 0.0 && v.abs() < 1e15 && !(v == 0.0 && v.is_sign_negative()) =>
            {
                out.extend_from_slice(integers.format(v as i64).as_bytes());
                out.extend_from_slice(b".0");
            }
            Some(v) if v.is_finite() => {
                out.extend_from_slice(floats.format_finite(v).as_bytes());
            }
            _ => out.extend_from_slice(b"null"),
        };
        let id = |value: Option<i64>| value.map(|v| v as f64);
        out.extend_from_slice(b"{\"brokered_by\":");
        number(out, id(self.brokered_by));
        out.extend_from_slice(b",\"status\":");
        write_string(out, self.status.as_deref());
        out.extend_from_slice(b",\"price\":");
        number(out, self.price);
        out.extend_from_slice(b",\"bed\":");
        number(out, self.bed);
        out.extend_from_slice(b",\"bath\":");
        number(out, self.bath);
        out.extend_from_slice(b",\"acre_lot\":");
        number(out, self.acre_lot);
        out.extend_from_slice(b",\"street\":");
        number(out, id(self.street));
        out.extend_from_slice(b",\"city\":");
        write_string(out, self.city.as_deref());
        out.extend_from_slice(b",\"state\":");
        write_string(out, self.state.as_deref());
        out.extend_from_slice(b",\"zip_code\":");
        number(out, self.zip_code.map(|zip| zip.value() as f64));
        out.extend_from_slice(b",\"house_size\":");
        number(out, self.house_size);
        out.extend_from_slice(b",\"prev_sold_date\":");
        match self.prev_sold_date {
            Some(date) => {
                let (year, month, day) = (date.year(), u8::from(date.month()), date.day());
                let year = year.clamp(0, 9999) as u16;
                out.extend_from_slice(&[
                    b'"',
                    b'0' + (year / 1000) as u8,
                    b'0' + (year / 100 % 10) as u8,
                    b'0' + (year / 10 % 10) as u8,
                    b'0' + (year % 10) as u8,
                    b'-',
                    b'0' + month / 10,
                    b'0' + month % 10,
                    b'-',
                    b'0' + day / 10,
                    b'0' + day % 10,
                    b'"',
                ]);
            }
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
}

fn write_string(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.extend_from_slice(b"null"),
        // The common case, nothing to escape, is one copy.
        Some(text) if !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        Some(text) => {
            out.push(b'"');
            for ch in text.chars() {
                match ch {
                    '"' => out.extend_from_slice(b"\\\""),
                    '\\' => out.extend_from_slice(b"\\\\"),
                    c if (c as u32) < 0x20 => {
                        out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                    }
                    c => {
                        let mut utf8 = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                    }
                }
            }
            out.push(b'"');
        }
    }
}

/// A field that could not be read as its type; the record keeps the other fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: &'static str,
    pub reason: String,
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// What [`parse_api_record`] made of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRecord {
    pub listing: Listing,
    /// Empty for a well-formed record. A missing field and a field of the wrong type are both
    /// problems; a present null is not (nulls are normal in this data).
    pub problems: Vec<FieldProblem>,
}

/// A JSON value read loosely, so a wrong type is reported instead of failing the record.
#[derive(Debug, Default)]
enum Loose {
    #[default]
    Missing,
    Null,
    Number(f64),
    Text(String),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LooseVisitor;
        impl<'de> serde::de::Visitor<'de> for LooseVisitor {
            type Value = Loose;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Loose, E> {
                Ok(Loose::Null)
            }
            fn visit_none<E>(self) -> Result<Loose, E> {
                Ok(Loose::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Loose, E> {
                Ok(Loose::Other("a boolean"))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Loose, E> {
                Ok(Loose::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Loose, E> {
                Ok(Loose::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Loose, E> {
                Ok(Loose::Number(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Loose, E> {
                Ok(Loose::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Loose, E> {
                Ok(Loose::Text(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Loose, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Loose::Other("an array"))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Loose, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Loose::Other("an object"))
            }
        }
        deserializer.deserialize_any(LooseVisitor)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LooseRecord {
    brokered_by: Loose,
    status: Loose,
    price: Loose,
    bed: Loose,
    bath: Loose,
    acre_lot: Loose,
    street: Loose,
    city: Loose,
    state: Loose,
    zip_code: Loose,
    house_size: Loose,
    prev_sold_date: Loose,
}

struct Reader {
    problems: Vec<FieldProblem>,
}

impl Reader {
    fn problem(&mut self, field: &'static str, reason: impl Into<String>) {
        self.problems.push(FieldProblem {
            field,
            reason: reason.into(),
        });
    }

    /// Takes the value out if it is present; records "missing" or the wrong type otherwise.
    fn present(&mut self, field: &'static str, value: Loose) -> Option<Loose> {
        match value {
            Loose::Missing => {
                self.problem(field, "missing");
                None
            }
            Loose::Null => None,
            Loose::Other(kind) => {
                self.problem(field, format!("expected a value, got {kind}"));
                None
            }
            value => Some(value),
        }
    }

    fn number(&mut self, field: &'static str, value: Loose) -> Option<f64> {
        match self.present(field, value)? {
            Loose::Number(v) => Some(v),
            // Numbers sent as strings ("3") are read, but flagged: the contract says floats.
            Loose::Text(text) => {
                let parsed = text.trim().parse::<f64>().ok().filter(|v| v.is_finite());
                self.problem(
                    field,
                    match parsed {
                        Some(_) => {
                            format!("expected a number, got the string {text:?} (read as a number)")
                        }
                        None => format!("expected a number, got the string {text:?}"),
                    },
                );
                parsed
            }
            _ => None,
        }
    }

    fn id(&mut self, field: &'static str, value: Loose) -> Option<i64> {
        let number = self.number(field, value)?;
        if number.fract() == 0.0 && number.abs() < 9.0e15 {
            Some(number as i64)
        } else {
            self.problem(field, format!("expected a whole-number id, got {number}"));
            None
        }
    }

    fn text(&mut self, field: &'static str, value: Loose) -> Option<String> {
        match self.present(field, value)? {
            Loose::Text(text) => Some(text),
            Loose::Number(v) => {
                self.problem(field, format!("expected a string, got the number {v}"));
                None
            }
            _ => None,
        }
    }

    fn zip(&mut self, value: Loose) -> Option<ZipCode> {
        let (zip, shown) = match self.present("zip_code", value)? {
            Loose::Number(v) => (ZipCode::from_f64(v), v.to_string()),
            // A string zip ("00601") is unambiguous and common in CSV-born data: accepted.
            Loose::Text(text) => (ZipCode::parse(&text), text),
            _ => return None,
        };
        if zip.is_none() {
            self.problem(
                "zip_code",
                format!("{shown:?} is not a zip code (0 to 99999)"),
            );
        }
        zip
    }

    fn date(&mut self, value: Loose) -> Option<Date> {
        let text = self.text("prev_sold_date", value)?;
        let date = parse_date(&text);
        if date.is_none() {
            self.problem(
                "prev_sold_date",
                format!("{text:?} is not a YYYY-MM-DD date"),
            );
        }
        date
    }
}

/// Reads one record of the API's `data` array. Never fails: a record that is not even a JSON
/// object comes back empty with a problem saying so.
pub fn parse_api_record(raw: &RawValue) -> ParsedRecord {
    // serde would read a JSON array into the struct by position: only objects are records.
    let parsed = if raw.get().trim_start().starts_with('{') {
        serde_json::from_str::<LooseRecord>(raw.get()).ok()
    } else {
        None
    };
    let record = match parsed {
        Some(record) => record,
        None => {
            return ParsedRecord {
                listing: Listing::default(),
                problems: vec![FieldProblem {
                    field: "record",
                    reason: "expected a JSON object".to_owned(),
                }],
            };
        }
    };
    let mut reader = Reader {
        problems: Vec::new(),
    };
    let listing = Listing {
        brokered_by: reader.id("brokered_by", record.brokered_by),
        status: reader.text("status", record.status),
        price: reader.number("price", record.price),
        bed: reader.number("bed", record.bed),
        bath: reader.number("bath", record.bath),
        acre_lot: reader.number("acre_lot", record.acre_lot),
        street: reader.id("street", record.street),
        city: reader.text("city", record.city),
        state: reader.text("state", record.state),
        zip_code: reader.zip(record.zip_code),
        house_size: reader.number("house_size", record.house_size),
        prev_sold_date: reader.date(record.prev_sold_date),
    };
    ParsedRecord {
        listing,
        problems: reader.problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ParsedRecord {
        parse_api_record(&serde_json::from_str::<Box<RawValue>>(json).unwrap())
    }

    #[test]
    fn round_trips_the_wire_format() {
        let listing = Listing {
            brokered_by: Some(103378),
            status: Some("for_sale".into()),
            price: Some(105000.0),
            bed: Some(3.0),
            bath: Some(2.0),
            acre_lot: Some(0.12),
            street: Some(1962661),
            city: Some("Adjuntas \"PR\"".into()),
            state: Some("Puerto Rico".into()),
            zip_code: ZipCode::new(601),
            house_size: None,
            prev_sold_date: parse_date("2015-06-01"),
        };
        let mut out = Vec::new();
        listing.write_api_json(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\"zip_code\":601.0"), "{text}");
        assert!(text.contains("\"brokered_by\":103378.0"), "{text}");
        assert!(text.contains("\"house_size\":null"), "{text}");
        let back = parse(&text);
        assert_eq!(back.problems, vec![]);
        assert_eq!(back.listing, listing);
        assert_eq!(back.listing.zip_code.unwrap().to_string(), "00601");
    }

    #[test]
    fn numbers_are_written_as_python_writes_floats() {
        let write = |value: f64| {
            let mut out = Vec::new();
            Listing {
                price: Some(value),
                ..Listing::default()
            }
            .write_api_json(&mut out);
            let text = String::from_utf8(out).unwrap();
            let start = text.find("\"price\":").unwrap() + 8;
            text[start..].split(',').next().unwrap().to_owned()
        };
        assert_eq!(write(105000.0), "105000.0");
        assert_eq!(write(0.0), "0.0");
        assert_eq!(write(-0.0), "-0.0");
        assert_eq!(write(-3.0), "-3.0");
        assert_eq!(write(0.12), "0.12");
        assert_eq!(write(60_000_000.0), "60000000.0");
        assert_eq!(write(f64::NAN), "null");
    }

    #[test]
    fn flags_wrong_types_and_missing_fields_but_keeps_the_rest() {
        let parsed = parse(
            r#"{"brokered_by":1.5,"status":"sold","price":"abc","bed":"3","bath":true,
                "acre_lot":null,"street":2.0,"city":7,"state":"Texas","zip_code":123456.0,
                "prev_sold_date":"yesterday"}"#,
        );
        let fields: Vec<&str> = parsed.problems.iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "brokered_by",
                "price",
                "bed",
                "bath",
                "city",
                "zip_code",
                "house_size",
                "prev_sold_date"
            ]
        );
        assert_eq!(parsed.listing.status.as_deref(), Some("sold"));
        assert_eq!(
            parsed.listing.bed,
            Some(3.0),
            "a numeric string is read, flagged"
        );
        assert_eq!(parsed.listing.street, Some(2));
        assert!(parsed.problems[6].reason.contains("missing"));
        assert_eq!(parse("[1,2]").problems[0].field, "record");
    }
}
