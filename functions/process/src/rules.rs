//! The cleaning rules: named, configurable, and applied in a fixed order.
//!
//! A raw listing is kept when it breaks no rule. A dropped listing is counted under the first
//! rule it breaks, so the counts of one batch add up to the rows dropped. The defaults are the
//! seed project's ranges (50,000 ≤ price ≤ 2,000,000 and 500 ≤ house_size ≤ 10,000) plus the
//! checks it lacked: malformed records, missing required fields, unknown statuses, impossible
//! sizes and room counts, sale dates after the batch was taken, and exact duplicates.

use std::{collections::BTreeMap, fmt};

use appraise_core::{
    config::{self, ConfigError},
    listing::{Listing, Status, ZipCode},
};
use serde::Serialize;
use time::Date;

/// Why a listing was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Ingest could not read a field (missing from the record, or of the wrong type).
    Malformed,
    MissingPrice,
    MissingBed,
    MissingBath,
    MissingAcreLot,
    MissingHouseSize,
    MissingStatus,
    MissingState,
    MissingZipCode,
    /// A status other than `for_sale`, `sold`, `ready_to_build`.
    UnknownStatus,
    /// A house size of zero or less, or a negative lot.
    ImpossibleSize,
    /// A negative or fractional bed or bath count, or one above the configured maximum.
    ImpossibleRooms,
    /// A previous sale dated after the batch was taken.
    FutureSaleDate,
    PriceOutOfRange,
    HouseSizeOutOfRange,
    /// The same listing, field for field, as one kept earlier (in this batch or another).
    Duplicate,
}

impl Rule {
    /// Every rule, in the order they are applied.
    pub const ALL: [Rule; 16] = [
        Rule::Malformed,
        Rule::MissingPrice,
        Rule::MissingBed,
        Rule::MissingBath,
        Rule::MissingAcreLot,
        Rule::MissingHouseSize,
        Rule::MissingStatus,
        Rule::MissingState,
        Rule::MissingZipCode,
        Rule::UnknownStatus,
        Rule::ImpossibleSize,
        Rule::ImpossibleRooms,
        Rule::FutureSaleDate,
        Rule::PriceOutOfRange,
        Rule::HouseSizeOutOfRange,
        Rule::Duplicate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::Malformed => "malformed",
            Rule::MissingPrice => "missing_price",
            Rule::MissingBed => "missing_bed",
            Rule::MissingBath => "missing_bath",
            Rule::MissingAcreLot => "missing_acre_lot",
            Rule::MissingHouseSize => "missing_house_size",
            Rule::MissingStatus => "missing_status",
            Rule::MissingState => "missing_state",
            Rule::MissingZipCode => "missing_zip_code",
            Rule::UnknownStatus => "unknown_status",
            Rule::ImpossibleSize => "impossible_size",
            Rule::ImpossibleRooms => "impossible_rooms",
            Rule::FutureSaleDate => "future_sale_date",
            Rule::PriceOutOfRange => "price_out_of_range",
            Rule::HouseSizeOutOfRange => "house_size_out_of_range",
            Rule::Duplicate => "duplicate",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An inclusive range `[min, max]` with `min <= max`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bounds {
    pub min: f64,
    pub max: f64,
}

impl Bounds {
    fn from_env(prefix: &str, min: f64, max: f64) -> Result<Bounds, ConfigError> {
        let min_name = format!("{prefix}_MIN");
        let max_name = format!("{prefix}_MAX");
        let min: f64 = config::optional(&min_name, min)?;
        let max: f64 = config::optional(&max_name, max)?;
        if !(min.is_finite() && max.is_finite()) || min > max {
            return Err(ConfigError::invalid(
                &max_name,
                max,
                format!("must be a number at least {min_name} ({min})"),
            ));
        }
        Ok(Bounds { min, max })
    }

    pub fn contains(&self, value: f64) -> bool {
        self.min <= value && value <= self.max
    }
}

/// The thresholds of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CleaningRules {
    pub price: Bounds,
    pub house_size: Bounds,
    /// Most beds, and most baths, a listing may have.
    pub max_rooms: u16,
}

impl Default for CleaningRules {
    fn default() -> Self {
        CleaningRules {
            price: Bounds {
                min: 50_000.0,
                max: 2_000_000.0,
            },
            house_size: Bounds {
                min: 500.0,
                max: 10_000.0,
            },
            max_rooms: 20,
        }
    }
}

impl CleaningRules {
    /// `PROCESS_PRICE_MIN`/`_MAX`, `PROCESS_HOUSE_SIZE_MIN`/`_MAX`, `PROCESS_MAX_ROOMS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = CleaningRules::default();
        Ok(CleaningRules {
            price: Bounds::from_env("PROCESS_PRICE", defaults.price.min, defaults.price.max)?,
            house_size: Bounds::from_env(
                "PROCESS_HOUSE_SIZE",
                defaults.house_size.min,
                defaults.house_size.max,
            )?,
            max_rooms: config::optional("PROCESS_MAX_ROOMS", defaults.max_rooms)?,
        })
    }

    /// Checks one raw listing taken on `batch_date`; the clean listing, or the first rule it
    /// breaks. (Duplicates are found later, across the batch.)
    pub fn check(
        &self,
        raw: &Listing,
        malformed: bool,
        batch_date: Date,
    ) -> Result<CleanListing, Rule> {
        if malformed {
            return Err(Rule::Malformed);
        }
        let price = raw.price.ok_or(Rule::MissingPrice)?;
        let bed = raw.bed.ok_or(Rule::MissingBed)?;
        let bath = raw.bath.ok_or(Rule::MissingBath)?;
        let acre_lot = raw.acre_lot.ok_or(Rule::MissingAcreLot)?;
        let house_size = raw.house_size.ok_or(Rule::MissingHouseSize)?;
        let status = raw.status.as_deref().ok_or(Rule::MissingStatus)?;
        let state = raw.state.clone().ok_or(Rule::MissingState)?;
        let zip_code = raw.zip_code.ok_or(Rule::MissingZipCode)?;
        let status = Status::parse(status).ok_or(Rule::UnknownStatus)?;
        if house_size <= 0.0 || acre_lot < 0.0 {
            return Err(Rule::ImpossibleSize);
        }
        let bed = self.rooms(bed).ok_or(Rule::ImpossibleRooms)?;
        let bath = self.rooms(bath).ok_or(Rule::ImpossibleRooms)?;
        if raw.prev_sold_date.is_some_and(|sold| sold > batch_date) {
            return Err(Rule::FutureSaleDate);
        }
        if !self.price.contains(price) {
            return Err(Rule::PriceOutOfRange);
        }
        if !self.house_size.contains(house_size) {
            return Err(Rule::HouseSizeOutOfRange);
        }
        Ok(CleanListing {
            brokered_by: raw.brokered_by,
            status,
            price,
            bed,
            bath,
            acre_lot,
            street: raw.street,
            city: raw.city.clone(),
            state,
            zip_code,
            house_size,
            prev_sold_date: raw.prev_sold_date,
        })
    }

    fn rooms(&self, count: f64) -> Option<i16> {
        (count.fract() == 0.0 && (0.0..=f64::from(self.max_rooms)).contains(&count))
            .then_some(count as i16)
    }
}

/// A listing that passed every rule: required fields are present and plausible.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanListing {
    pub brokered_by: Option<i64>,
    pub status: Status,
    pub price: f64,
    pub bed: i16,
    pub bath: i16,
    pub acre_lot: f64,
    pub street: Option<i64>,
    pub city: Option<String>,
    pub state: String,
    pub zip_code: ZipCode,
    pub house_size: f64,
    pub prev_sold_date: Option<Date>,
}

impl CleanListing {
    /// The row train reads back of this listing once process has stored it in batch
    /// `batch_number`, taken on `as_of` (`appraise_core::clean::clean_rows`): for code that
    /// makes training rows without the database (benchmarks, tests).
    pub fn into_clean_row(self, batch_number: i32, as_of: Date) -> appraise_core::clean::CleanRow {
        appraise_core::clean::CleanRow {
            batch_number,
            row_hash: self.fingerprint(),
            price: self.price,
            bed: f64::from(self.bed),
            bath: f64::from(self.bath),
            acre_lot: self.acre_lot,
            house_size: self.house_size,
            status: Some(self.status),
            state: self.state,
            city: self.city,
            zip_code: Some(self.zip_code),
            brokered_by: self.brokered_by,
            prev_sold_date: self.prev_sold_date,
            as_of,
        }
    }

    /// A 64-bit fingerprint of every field (FNV-1a over a canonical encoding): equal listings
    /// have equal fingerprints, on every machine and release.
    pub fn fingerprint(&self) -> i64 {
        let mut hash = Fnv1a::default();
        hash.write(&self.brokered_by.unwrap_or(i64::MIN).to_le_bytes());
        hash.write(self.status.as_str().as_bytes());
        hash.write(&self.price.to_bits().to_le_bytes());
        hash.write(&self.bed.to_le_bytes());
        hash.write(&self.bath.to_le_bytes());
        hash.write(&self.acre_lot.to_bits().to_le_bytes());
        hash.write(&self.street.unwrap_or(i64::MIN).to_le_bytes());
        hash.write(self.city.as_deref().unwrap_or("\u{0}").as_bytes());
        hash.write(&[0xff]);
        hash.write(self.state.as_bytes());
        hash.write(&[0xff]);
        hash.write(&self.zip_code.value().to_le_bytes());
        hash.write(&self.house_size.to_bits().to_le_bytes());
        hash.write(
            &self
                .prev_sold_date
                .map_or(i32::MIN, |d| d.to_julian_day())
                .to_le_bytes(),
        );
        hash.0 as i64
    }
}

struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Rows dropped per rule, every rule listed (zeros included), in the order rules apply.
pub fn drop_counts(dropped: &BTreeMap<Rule, u64>) -> serde_json::Map<String, serde_json::Value> {
    Rule::ALL
        .iter()
        .map(|rule| {
            (
                rule.name().to_owned(),
                serde_json::Value::from(dropped.get(rule).copied().unwrap_or(0)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use appraise_core::listing::parse_date;

    fn good() -> Listing {
        Listing {
            brokered_by: Some(1),
            status: Some("for_sale".into()),
            price: Some(300_000.0),
            bed: Some(3.0),
            bath: Some(2.0),
            acre_lot: Some(0.2),
            street: Some(9),
            city: Some("Austin".into()),
            state: Some("Texas".into()),
            zip_code: ZipCode::new(78701),
            house_size: Some(1_800.0),
            prev_sold_date: parse_date("2015-06-01"),
        }
    }

    #[test]
    fn each_rule_catches_its_case_and_only_the_first_broken_rule_counts() {
        let rules = CleaningRules::default();
        let today = parse_date("2026-11-27").unwrap();
        let check = |listing: Listing| rules.check(&listing, false, today).err();
        assert_eq!(check(good()), None);
        assert_eq!(
            rules.check(&good(), true, today).err(),
            Some(Rule::Malformed)
        );
        assert_eq!(
            check(Listing {
                price: None,
                ..good()
            }),
            Some(Rule::MissingPrice)
        );
        assert_eq!(
            check(Listing {
                zip_code: None,
                ..good()
            }),
            Some(Rule::MissingZipCode)
        );
        assert_eq!(
            check(Listing {
                status: Some("rented".into()),
                ..good()
            }),
            Some(Rule::UnknownStatus)
        );
        assert_eq!(
            check(Listing {
                house_size: Some(0.0),
                ..good()
            }),
            Some(Rule::ImpossibleSize)
        );
        assert_eq!(
            check(Listing {
                acre_lot: Some(-1.0),
                ..good()
            }),
            Some(Rule::ImpossibleSize)
        );
        assert_eq!(
            check(Listing {
                bed: Some(2.5),
                ..good()
            }),
            Some(Rule::ImpossibleRooms)
        );
        assert_eq!(
            check(Listing {
                bath: Some(21.0),
                ..good()
            }),
            Some(Rule::ImpossibleRooms)
        );
        assert_eq!(
            check(Listing {
                prev_sold_date: parse_date("2027-01-01"),
                ..good()
            }),
            Some(Rule::FutureSaleDate)
        );
        assert_eq!(
            check(Listing {
                price: Some(49_999.0),
                ..good()
            }),
            Some(Rule::PriceOutOfRange)
        );
        assert_eq!(
            check(Listing {
                price: Some(2_000_000.0),
                ..good()
            }),
            None,
            "bounds are inclusive"
        );
        assert_eq!(
            check(Listing {
                house_size: Some(10_001.0),
                ..good()
            }),
            Some(Rule::HouseSizeOutOfRange)
        );
        // Missing price and out-of-range size: the earlier rule is the one counted.
        assert_eq!(
            check(Listing {
                price: None,
                house_size: Some(20_000.0),
                ..good()
            }),
            Some(Rule::MissingPrice)
        );
    }

    #[test]
    fn fingerprints_tell_listings_apart() {
        let rules = CleaningRules::default();
        let today = parse_date("2026-11-27").unwrap();
        let a = rules.check(&good(), false, today).unwrap();
        let b = rules.check(&good(), false, today).unwrap();
        let c = rules
            .check(
                &Listing {
                    bed: Some(4.0),
                    ..good()
                },
                false,
                today,
            )
            .unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}
