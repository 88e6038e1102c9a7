//! Prediction requests, parsed at the boundary into a [`ListingInput`] that cannot hold an
//! invalid value, with every problem named by field and reason.
//!
//! A body is first read as an [`UncheckedListing`] (each field any JSON value, a
//! [`RequestValue`]), then checked field by field. Any problem refuses the request (422). This
//! is not the batch API's reader ([`appraise_core::listing::parse_api_record`]), which keeps a
//! record despite its problems and records them with it: a request is the client's to fix, an
//! API record is data that must not be lost.
//!
//! The body is the seed project's: `brokered_by, status, bed, bath, acre_lot, city, state,
//! zip_code, house_size` with `prev_sold_date` and `street` optional. The numeric fields `bed`,
//! `bath`, `acre_lot` and `house_size` are required; the categorical ones may be absent (the
//! model then uses its fallback for unseen values), which also accepts the shorter bodies of
//! the peer benchmark. `zip_code` and `brokered_by` may be a number or a string. Unknown fields
//! are ignored.

use std::borrow::Cow;

/// A valid listing to price: the model's input and what the inference log keeps.
pub use appraise_core::features::ListingInput;
use appraise_core::listing::{Status, ZipCode, parse_date};
use serde::{Deserialize, Serialize};
use time::Date;

/// Largest batch body accepted, for `/predict/batch` and for an inference request.
pub(crate) const MAX_BATCH_BODY: usize = 16 * 1024 * 1024;

/// The date listings are priced as of.
pub(crate) fn today() -> Date {
    time::OffsetDateTime::now_utc().date()
}

/// One thing wrong with a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub field: String,
    pub reason: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Problem {
        Problem {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// One field of a request as sent: any JSON value, remembered only as much as validation needs
/// (no allocation for numbers; text borrowed from the body where it can be). Absence is the
/// `Option` around it; an explicit `null` counts as absent too.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestValue<'a> {
    Null,
    Bool(bool),
    Number(f64),
    Text(Cow<'a, str>),
    Array,
    Object,
}

impl RequestValue<'_> {
    fn kind(&self) -> &'static str {
        match self {
            RequestValue::Null => "null",
            RequestValue::Bool(_) => "a boolean",
            RequestValue::Number(_) => "a number",
            RequestValue::Text(_) => "a string",
            RequestValue::Array => "an array",
            RequestValue::Object => "an object",
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RequestValue<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RequestValue<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(RequestValue::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(RequestValue::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(RequestValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RequestValue::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RequestValue::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(RequestValue::Number(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RequestValue::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RequestValue::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(RequestValue::Text(Cow::Owned(v)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(RequestValue::Array)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(RequestValue::Object)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The request body as sent: every field any JSON value, checked by
/// [`UncheckedListing::validate`] into a [`ListingInput`].
#[derive(Debug, Default, Deserialize)]
pub struct UncheckedListing<'a> {
    #[serde(borrow)]
    pub brokered_by: Option<RequestValue<'a>>,
    #[serde(borrow)]
    pub status: Option<RequestValue<'a>>,
    #[serde(borrow)]
    pub bed: Option<RequestValue<'a>>,
    #[serde(borrow)]
    pub bath: Option<RequestValue<'a>>,
    #[serde(borrow)]
    pub acre_lot: Option<RequestValue<'a>>,
    #[serde(borrow)]
    pub city: Option<RequestValue<'a>>,
    #[serde(borrow)]
    pub state: Option<RequestValue<'a>>,
    #[serde(borrow)]
    pub zip_code: Option<RequestValue<'a>>,
    #[serde(borrow)]
    pub house_size: Option<RequestValue<'a>>,
    #[serde(borrow)]
    pub prev_sold_date: Option<RequestValue<'a>>,
    #[serde(borrow)]
    pub street: Option<RequestValue<'a>>,
}

/// Upper bounds that separate a typo from a house.
const MAX_ROOMS: f64 = 1_000.0;
const MAX_ACRES: f64 = 1_000_000.0;
const MAX_SQUARE_FEET: f64 = 100_000_000.0;

/// Collects problems while fields are checked.
struct Checker<'p> {
    prefix: &'p str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn fail(&mut self, field: &str, reason: String) {
        self.problems
            .push(Problem::new(format!("{}{field}", self.prefix), reason));
    }

    /// A required number in `min..=max`; zero refused unless `zero_ok`.
    fn number(
        &mut self,
        field: &str,
        value: &Option<RequestValue<'_>>,
        max: f64,
        zero_ok: bool,
    ) -> Option<f64> {
        let reason = match value {
            None | Some(RequestValue::Null) => "is required".to_owned(),
            Some(RequestValue::Number(v)) if !v.is_finite() => "must be a finite number".to_owned(),
            Some(RequestValue::Number(v)) if *v < 0.0 => format!("must not be negative, got {v}"),
            Some(RequestValue::Number(v)) if *v == 0.0 && !zero_ok => {
                "must be more than zero".to_owned()
            }
            Some(RequestValue::Number(v)) if *v > max => format!("must be at most {max}, got {v}"),
            Some(RequestValue::Number(v)) => return Some(*v),
            Some(other) => format!("must be a number, got {}", other.kind()),
        };
        self.fail(field, reason);
        None
    }

    /// An optional string; empty counts as absent.
    fn text(&mut self, field: &str, value: &Option<RequestValue<'_>>) -> Option<String> {
        match value {
            None | Some(RequestValue::Null) => None,
            Some(RequestValue::Text(t)) if t.trim().is_empty() => None,
            // PostgreSQL text cannot hold NUL, so the inference log could not keep it.
            Some(RequestValue::Text(t)) if t.contains('\0') => {
                self.fail(field, "must not contain a NUL character".to_owned());
                None
            }
            Some(RequestValue::Text(t)) => Some(t.trim().to_owned()),
            Some(other) => {
                self.fail(field, format!("must be a string, got {}", other.kind()));
                None
            }
        }
    }

    /// An optional whole number or digits, e.g. `zip_code` or `brokered_by`, read by `parse`
    /// (text) or `from_number`; `what` says what was expected.
    fn code<T>(
        &mut self,
        field: &str,
        value: &Option<RequestValue<'_>>,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
        from_number: impl Fn(f64) -> Option<T>,
    ) -> Option<T> {
        let reason = match value {
            None | Some(RequestValue::Null) => return None,
            Some(RequestValue::Text(t)) if t.trim().is_empty() => return None,
            Some(RequestValue::Text(t)) => match parse(t.trim()) {
                Some(found) => return Some(found),
                None => format!("{t:?} is not {what}"),
            },
            Some(RequestValue::Number(v)) => match from_number(*v) {
                Some(found) => return Some(found),
                None => format!("{v} is not {what}"),
            },
            Some(other) => format!("must be a string or a number, got {}", other.kind()),
        };
        self.fail(field, reason);
        None
    }
}

impl UncheckedListing<'_> {
    /// Checks every field; on failure, every problem found (not just the first), each field
    /// prefixed with `prefix` (e.g. `listings[3].`).
    pub fn validate(&self, prefix: &str, today: Date) -> Result<ListingInput, Vec<Problem>> {
        let mut check = Checker {
            prefix,
            problems: Vec::new(),
        };
        let bed = check.number("bed", &self.bed, MAX_ROOMS, true);
        let bath = check.number("bath", &self.bath, MAX_ROOMS, true);
        let acre_lot = check.number("acre_lot", &self.acre_lot, MAX_ACRES, true);
        let house_size = check.number("house_size", &self.house_size, MAX_SQUARE_FEET, false);
        let city = check.text("city", &self.city);
        let state = check.text("state", &self.state);
        let status = check.text("status", &self.status).and_then(|s| {
            let status = Status::parse(&s);
            if status.is_none() {
                check.fail(
                    "status",
                    format!("unknown value {s:?} (expected for_sale, sold or ready_to_build)"),
                );
            }
            status
        });
        let prev_sold_date = check
            .text("prev_sold_date", &self.prev_sold_date)
            .and_then(|s| match parse_date(&s) {
                Some(date) if date > today => {
                    check.fail("prev_sold_date", format!("{s} is in the future"));
                    None
                }
                Some(date) => Some(date),
                None => {
                    check.fail("prev_sold_date", format!("{s:?} is not a YYYY-MM-DD date"));
                    None
                }
            });
        check.text("street", &self.street);
        let zip_code = check.code(
            "zip_code",
            &self.zip_code,
            "a US zip code (0 to 99999)",
            ZipCode::parse,
            ZipCode::from_f64,
        );
        let brokered_by = check.code(
            "brokered_by",
            &self.brokered_by,
            "a whole number",
            |t| t.parse::<i64>().ok(),
            |v| (v.fract() == 0.0 && v.abs() < 9.0e15).then_some(v as i64),
        );
        match (bed, bath, acre_lot, house_size) {
            (Some(bed), Some(bath), Some(acre_lot), Some(house_size))
                if check.problems.is_empty() =>
            {
                Ok(ListingInput {
                    brokered_by,
                    status,
                    bed,
                    bath,
                    acre_lot,
                    house_size,
                    city,
                    state,
                    zip_code,
                    prev_sold_date,
                })
            }
            _ => Err(check.problems),
        }
    }
}

/// Parses one listing body.
pub fn parse_listing(body: &[u8], today: Date) -> Result<ListingInput, Vec<Problem>> {
    let raw: UncheckedListing<'_> = serde_json::from_slice(body).map_err(body_problem)?;
    raw.validate("", today)
}

/// The batch body: `{"listings": [ ... ], "explain": false}`.
#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(borrow)]
    listings: Option<Vec<UncheckedListing<'a>>>,
    #[serde(borrow)]
    explain: Option<RequestValue<'a>>,
}

/// A valid batch: its listings, and whether each price comes with its explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub listings: Vec<ListingInput>,
    pub explain: bool,
}

/// Parses a batch body, at most `max` listings (`max_explained` when it asks for
/// explanations); problems name `listings[i].field`.
pub fn parse_batch(
    body: &[u8],
    today: Date,
    max: usize,
    max_explained: usize,
) -> Result<Batch, Vec<Problem>> {
    let raw: RawBatch<'_> = serde_json::from_slice(body).map_err(body_problem)?;
    let explain = match raw.explain {
        None | Some(RequestValue::Null) => false,
        Some(RequestValue::Bool(explain)) => explain,
        Some(other) => {
            return Err(vec![Problem::new(
                "explain",
                format!("must be true or false, got {}", other.kind()),
            )]);
        }
    };
    let Some(listings) = raw.listings else {
        return Err(vec![Problem::new(
            "listings",
            "is required: an array of listings",
        )]);
    };
    if listings.is_empty() {
        return Err(vec![Problem::new("listings", "is empty")]);
    }
    if listings.len() > max {
        return Err(vec![Problem::new(
            "listings",
            format!("has {} listings; at most {max} per request", listings.len()),
        )]);
    }
    if explain && listings.len() > max_explained {
        return Err(vec![Problem::new(
            "listings",
            format!(
                "has {} listings; at most {max_explained} per request with \"explain\": true",
                listings.len()
            ),
        )]);
    }
    let mut valid = Vec::with_capacity(listings.len());
    let mut problems = Vec::new();
    for (i, raw) in listings.iter().enumerate() {
        match raw.validate(&format!("listings[{i}]."), today) {
            Ok(listing) => valid.push(listing),
            Err(found) => problems.extend(found),
        }
    }
    if problems.is_empty() {
        Ok(Batch {
            listings: valid,
            explain,
        })
    } else {
        Err(problems)
    }
}

/// The optional body of `POST /models/{version}/promote`: nothing, or `{"reason": "…"}`.
#[derive(Deserialize)]
struct RawRollback<'a> {
    #[serde(borrow)]
    reason: Option<RequestValue<'a>>,
}

/// Longest rollback reason accepted, in characters.
const MAX_REASON: usize = 1_000;

/// The reason a rollback request gives, if any (an empty body gives none).
pub fn parse_rollback_reason(body: &[u8]) -> Result<Option<String>, Vec<Problem>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let raw: RawRollback<'_> = serde_json::from_slice(body).map_err(body_problem)?;
    match raw.reason {
        None | Some(RequestValue::Null) => Ok(None),
        Some(RequestValue::Text(text)) => {
            let text = text.trim();
            if text.is_empty() {
                Err(vec![Problem::new("reason", "must not be empty")])
            } else if text.chars().count() > MAX_REASON {
                Err(vec![Problem::new(
                    "reason",
                    format!("must be at most {MAX_REASON} characters"),
                )])
            } else if text.contains('\0') {
                Err(vec![Problem::new(
                    "reason",
                    "must not contain a NUL character",
                )])
            } else {
                Ok(Some(text.to_owned()))
            }
        }
        Some(other) => Err(vec![Problem::new(
            "reason",
            format!("must be a string, got {}", other.kind()),
        )]),
    }
}

/// A body that is not the expected JSON shape, explained.
fn body_problem(error: serde_json::Error) -> Vec<Problem> {
    use serde_json::error::Category;
    let reason = match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => format!("is not valid JSON: {error}"),
        // Wrong shape: e.g. an array where an object belongs, or a repeated field.
        Category::Data => format!("has the wrong shape: {error}"),
    };
    vec![Problem::new("body", reason)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 27);

    fn problems(body: &str) -> Vec<(String, String)> {
        parse_listing(body.as_bytes(), TODAY)
            .unwrap_err()
            .into_iter()
            .map(|p| (p.field, p.reason))
            .collect()
    }

    #[test]
    fn text_with_a_nul_character_is_refused() {
        // The inference log could not store it (PostgreSQL text holds no NUL).
        let body = r#"{"bed": 3, "bath": 2, "acre_lot": 0.1, "house_size": 1800,
            "city": "Spring\u0000field"}"#;
        assert_eq!(
            problems(body),
            [(
                "city".to_owned(),
                "must not contain a NUL character".to_owned()
            )]
        );
    }

    #[test]
    fn accepts_the_seed_body_and_the_peer_bodies() {
        let full = r#"{"brokered_by": 10481.0, "status": "for_sale", "bed": 3, "bath": 2,
            "acre_lot": 0.12, "city": "Agawam", "state": "Massachusetts", "zip_code": "01001",
            "house_size": 1800, "prev_sold_date": "2015-06-01", "street": "1 Main St"}"#;
        let listing = parse_listing(full.as_bytes(), TODAY).unwrap();
        assert_eq!(listing.brokered_by, Some(10481));
        assert_eq!(listing.zip_code, ZipCode::new(1001));
        assert_eq!(listing.status, Some(Status::ForSale));
        assert_eq!(listing.prev_sold_date, Some(date!(2015 - 06 - 01)));

        let peer = r#"{"bed":1,"bath":1,"acre_lot":0.05,"house_size":700,"zip_code":2108,
            "state":"Massachusetts","status":"for_sale"}"#;
        let listing = parse_listing(peer.as_bytes(), TODAY).unwrap();
        assert_eq!(listing.zip_code, ZipCode::new(2108));
        assert_eq!(listing.city, None);
        assert_eq!(listing.brokered_by, None);
    }

    #[test]
    fn names_every_bad_field_and_why() {
        let found = problems(
            r#"{"bed": "three", "bath": -1, "acre_lot": null, "house_size": 0,
                "status": "rented", "zip_code": 123456, "prev_sold_date": "2099-01-01"}"#,
        );
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "bed",
                "bath",
                "acre_lot",
                "house_size",
                "status",
                "prev_sold_date",
                "zip_code"
            ]
        );
        assert!(found[0].1.contains("got a string"), "{found:?}");
        assert!(found[1].1.contains("negative"), "{found:?}");
        assert!(found[2].1.contains("required"), "{found:?}");
        assert!(found[4].1.contains("rented"), "{found:?}");
        assert!(found[5].1.contains("future"), "{found:?}");

        // JSON has no NaN; a huge exponent overflows to infinity in some parsers: refused.
        assert_eq!(
            problems(r#"{"bed": 3, "bath": 2, "acre_lot": 1, "house_size": 1e999}"#)[0].0,
            "body"
        );
        assert_eq!(problems("not json")[0].0, "body");
        assert!(problems("[1, 2]")[0].1.contains("wrong shape"));
        assert!(
            problems(r#"{"bed": 3, "bed": 4}"#)[0]
                .1
                .contains("duplicate")
        );
    }

    #[test]
    fn a_rollback_reason_is_optional_and_checked() {
        assert_eq!(parse_rollback_reason(b""), Ok(None));
        assert_eq!(parse_rollback_reason(b"{}"), Ok(None));
        assert_eq!(
            parse_rollback_reason(br#"{"reason": " bad model "}"#),
            Ok(Some("bad model".to_owned()))
        );
        for (body, field) in [
            (&br#"{"reason": 3}"#[..], "reason"),
            (br#"{"reason": ""}"#, "reason"),
            (b"not json", "body"),
        ] {
            assert_eq!(parse_rollback_reason(body).unwrap_err()[0].field, field);
        }
        let long = format!(r#"{{"reason": "{}"}}"#, "x".repeat(MAX_REASON + 1));
        assert!(parse_rollback_reason(long.as_bytes()).is_err());
    }

    #[test]
    fn batches_name_the_listing() {
        let body = r#"{"listings": [
            {"bed": 3, "bath": 2, "acre_lot": 0.1, "house_size": 1500},
            {"bed": 3, "bath": 2, "acre_lot": 0.1, "house_size": -5}
        ]}"#;
        let found = parse_batch(body.as_bytes(), TODAY, 10, 10).unwrap_err();
        assert_eq!(found[0].field, "listings[1].house_size");
        let ok = r#"{"listings": [{"bed": 3, "bath": 2, "acre_lot": 0.1, "house_size": 1500}]}"#;
        let batch = parse_batch(ok.as_bytes(), TODAY, 10, 10).unwrap();
        assert_eq!((batch.listings.len(), batch.explain), (1, false));
        let explained = ok.replace("]}", r#"], "explain": true}"#);
        assert!(
            parse_batch(explained.as_bytes(), TODAY, 10, 10)
                .unwrap()
                .explain
        );
        assert!(
            parse_batch(explained.as_bytes(), TODAY, 10, 0).unwrap_err()[0]
                .reason
                .contains("with \"explain\": true")
        );
        assert_eq!(
            parse_batch(ok.as_bytes(), TODAY, 10, 0)
                .unwrap()
                .listings
                .len(),
            1
        );
        let wrong = ok.replace("]}", r#"], "explain": "yes"}"#);
        assert_eq!(
            parse_batch(wrong.as_bytes(), TODAY, 10, 10).unwrap_err(),
            vec![Problem::new(
                "explain",
                "must be true or false, got a string"
            )]
        );
        assert!(
            parse_batch(ok.as_bytes(), TODAY, 0, 0).unwrap_err()[0]
                .reason
                .contains("at most")
        );
        assert_eq!(
            parse_batch(b"{}", TODAY, 10, 10).unwrap_err()[0].field,
            "listings"
        );
    }
}
