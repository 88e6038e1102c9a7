//! Features: how a listing becomes the numbers a model sees, fitted once, at training.
//!
//! A [`FeatureSpec`] is fitted on the training rows only, serialized into the model artifact,
//! and applied by one function, [`FeatureSpec::transform`], both when training and when
//! serving. (The seed project label-encoded categories at training and md5-hashed them at
//! serving, so its served predictions were wrong.)
//!
//! The features, in order ([`FEATURE_NAMES`]):
//!
//! - numeric: `bed`, `bath`, `house_size`, `log_house_size`, `log1p_acre_lot`;
//! - `years_since_sale`: years between the previous sale and the listing's date (the batch
//!   date at training, the request date at serving), the training median when unknown, with a
//!   `sale_unknown` indicator;
//! - `status`: one-hot over the three statuses (all zero for an absent status);
//! - `state`, `city` (within its state), `zip_code`, `zip3` (the zip's first three digits) and
//!   `brokered_by`: target encodings — the smoothed mean of log price over the training rows
//!   of that value, `(n·mean + k·global) / (n + k)` with `k` = [`SMOOTHING`]. A value never seen
//!   in training, or absent, gets the global mean: the defined fallback. Smoothing keeps a
//!   value seen once from claiming its one price.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::listing::{Status, ZipCode};

/// Bumped whenever the features or their encoding change; a model records the version it was
/// trained with, and serving refuses a spec of another version.
pub const FEATURE_SPEC_VERSION: u32 = 1;

/// Pseudo-count of the target encodings' shrinkage toward the global mean.
pub const SMOOTHING: f64 = 20.0;

/// Folds of the cross-fitted training encodings ([`FeatureSpec::fit_cross`]).
pub const CROSS_FIT_FOLDS: usize = 5;

/// The feature names, in the order of [`FeatureSpec::transform`]'s output.
pub const FEATURE_NAMES: [&str; 16] = [
    "bed",
    "bath",
    "house_size",
    "log_house_size",
    "log1p_acre_lot",
    "years_since_sale",
    "sale_unknown",
    "status_for_sale",
    "status_sold",
    "status_ready_to_build",
    "state",
    "city",
    "zip_code",
    "zip3",
    "brokered_by",
    "state_known",
];

/// How many features there are.
pub const FEATURE_COUNT: usize = FEATURE_NAMES.len();

/// The fields of a listing a person types (the `/predict` body's), in the order explanations
/// list them when they tie.
pub const INPUT_FIELDS: [&str; 10] = [
    "bed",
    "bath",
    "house_size",
    "acre_lot",
    "prev_sold_date",
    "status",
    "state",
    "city",
    "zip_code",
    "brokered_by",
];

/// For each feature, in [`FEATURE_NAMES`] order, the input field it is computed from: the
/// field's explanation is the sum of its features' contributions. `house_size` takes its value
/// and its log, `prev_sold_date` the years since the sale and the unknown-sale indicator,
/// `status` its one-hot columns, `state` its encoding and the known-state indicator, `zip_code`
/// its encoding and its first three digits'. The city's encoding is keyed by state and city but
/// counted to the city.
pub const FEATURE_FIELDS: [&str; FEATURE_COUNT] = [
    "bed",
    "bath",
    "house_size",
    "house_size",
    "acre_lot",
    "prev_sold_date",
    "prev_sold_date",
    "status",
    "status",
    "status",
    "state",
    "city",
    "zip_code",
    "zip_code",
    "brokered_by",
    "state",
];

/// Per-feature values (e.g. contributions, in [`FEATURE_NAMES`] order) summed per input field,
/// in [`INPUT_FIELDS`] order.
pub fn sum_by_input_field(per_feature: &[f64; FEATURE_COUNT]) -> [(&'static str, f64); 10] {
    INPUT_FIELDS.map(|field| {
        let sum = FEATURE_FIELDS
            .iter()
            .zip(per_feature)
            .filter(|(feature_field, _)| **feature_field == field)
            .map(|(_, value)| value)
            .sum();
        (field, sum)
    })
}

/// What a model needs to know about one listing. Numeric fields are required; categorical
/// ones may be absent (they then take the fallback).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureInput<'a> {
    pub bed: f64,
    pub bath: f64,
    pub acre_lot: f64,
    pub house_size: f64,
    pub status: Option<Status>,
    pub state: Option<&'a str>,
    pub city: Option<&'a str>,
    pub zip_code: Option<ZipCode>,
    pub brokered_by: Option<i64>,
    pub prev_sold_date: Option<Date>,
    /// The listing's date: its batch's date at training, the request's date at serving.
    pub as_of: Date,
}

/// A listing as a model sees it, owned and undated: what the predictor parses a request into
/// (and its inference log keeps), and what benchmarks read from realtor-data CSVs. Not
/// [`crate::listing::Listing`], the batch API's record (with a price, every field optional and
/// unchecked).
#[derive(Debug, Clone, PartialEq)]
pub struct ListingInput {
    pub brokered_by: Option<i64>,
    pub status: Option<Status>,
    pub bed: f64,
    pub bath: f64,
    pub acre_lot: f64,
    pub house_size: f64,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip_code: Option<ZipCode>,
    pub prev_sold_date: Option<Date>,
}

impl ListingInput {
    /// The model's input, dated `as_of` (today, at serving).
    pub fn features(&self, as_of: Date) -> FeatureInput<'_> {
        FeatureInput {
            bed: self.bed,
            bath: self.bath,
            acre_lot: self.acre_lot,
            house_size: self.house_size,
            status: self.status,
            state: self.state.as_deref(),
            city: self.city.as_deref(),
            zip_code: self.zip_code,
            brokered_by: self.brokered_by,
            prev_sold_date: self.prev_sold_date,
            as_of,
        }
    }
}

/// A value → number map fitted on training rows, with the number for anything else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetEncoding {
    pub values: BTreeMap<String, f64>,
    pub fallback: f64,
}

impl TargetEncoding {
    fn fit(pairs: impl Iterator<Item = (Option<String>, f64)>, global: f64) -> Self {
        let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for (key, target) in pairs {
            if let Some(key) = key {
                let entry = sums.entry(key).or_default();
                entry.0 += target;
                entry.1 += 1.0;
            }
        }
        let values = sums
            .into_iter()
            .map(|(key, (sum, n))| (key, (sum + SMOOTHING * global) / (n + SMOOTHING)))
            .collect();
        TargetEncoding {
            values,
            fallback: global,
        }
    }

    fn encode(&self, key: Option<&str>) -> f64 {
        key.and_then(|key| self.values.get(key))
            .copied()
            .unwrap_or(self.fallback)
    }
}

/// The fitted feature transformation; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub version: u32,
    /// Median years since the previous sale among training rows that have one.
    pub median_years_since_sale: f64,
    pub state: TargetEncoding,
    /// Keyed `state|city`: a city name is only meaningful within its state.
    pub city: TargetEncoding,
    pub zip_code: TargetEncoding,
    pub zip3: TargetEncoding,
    pub brokered_by: TargetEncoding,
}

/// A spec that cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FeatureError {
    #[error(
        "feature spec version {found} is not supported (this build applies version {FEATURE_SPEC_VERSION})"
    )]
    Version { found: u32 },
    #[error("cannot fit features on zero rows")]
    NoRows,
}

fn years_between(earlier: Date, later: Date) -> f64 {
    f64::from(later.to_julian_day() - earlier.to_julian_day()) / 365.25
}

fn city_key(state: Option<&str>, city: Option<&str>) -> Option<String> {
    Some(format!("{}|{}", state?, city?))
}

fn zip3(zip: ZipCode) -> String {
    format!("{:03}", zip.value() / 100)
}

impl FeatureSpec {
    /// Fits the spec on training rows and their prices.
    pub fn fit(rows: &[FeatureInput<'_>], prices: &[f64]) -> Result<FeatureSpec, FeatureError> {
        if rows.is_empty() || rows.len() != prices.len() {
            return Err(FeatureError::NoRows);
        }
        let targets: Vec<f64> = prices.iter().map(|p| p.max(1.0).ln()).collect();
        let global = targets.iter().sum::<f64>() / targets.len() as f64;
        let mut years: Vec<f64> = rows
            .iter()
            .filter_map(|row| Some(years_between(row.prev_sold_date?, row.as_of)))
            .collect();
        years.sort_by(f64::total_cmp);
        let median_years_since_sale = if years.is_empty() {
            0.0
        } else {
            years[years.len() / 2]
        };
        let pairs = |key: &dyn Fn(&FeatureInput) -> Option<String>| {
            rows.iter()
                .zip(&targets)
                .map(|(row, &target)| (key(row), target))
                .collect::<Vec<_>>()
        };
        Ok(FeatureSpec {
            version: FEATURE_SPEC_VERSION,
            median_years_since_sale,
            state: TargetEncoding::fit(pairs(&|r| r.state.map(str::to_owned)).into_iter(), global),
            city: TargetEncoding::fit(pairs(&|r| city_key(r.state, r.city)).into_iter(), global),
            zip_code: TargetEncoding::fit(
                pairs(&|r| r.zip_code.map(|z| z.to_string())).into_iter(),
                global,
            ),
            zip3: TargetEncoding::fit(pairs(&|r| r.zip_code.map(zip3)).into_iter(), global),
            brokered_by: TargetEncoding::fit(
                pairs(&|r| r.brokered_by.map(|b| b.to_string())).into_iter(),
                global,
            ),
        })
    }

    /// Fits the spec on training rows and returns it with the training rows' features,
    /// cross-fitted: each row's target encodings come from a spec fitted on the other
    /// [`CROSS_FIT_FOLDS`]−1 folds, so no row sees its own price (otherwise trees learn the
    /// leak, e.g. a broker seen once "predicts" its one listing exactly). The returned spec,
    /// fitted on every row, is what is stored and what serving and evaluation apply.
    pub fn fit_cross(
        rows: &[FeatureInput<'_>],
        prices: &[f64],
    ) -> Result<(FeatureSpec, Vec<[f64; FEATURE_COUNT]>), FeatureError> {
        let spec = FeatureSpec::fit(rows, prices)?;
        let fold_of = |i: usize| (crate::rng::mix64(i as u64) % CROSS_FIT_FOLDS as u64) as usize;
        let mut features = vec![[0.0; FEATURE_COUNT]; rows.len()];
        for fold in 0..CROSS_FIT_FOLDS {
            let (mut fit_rows, mut fit_prices) = (Vec::new(), Vec::new());
            for (i, (row, price)) in rows.iter().zip(prices).enumerate() {
                if fold_of(i) != fold {
                    fit_rows.push(row.clone());
                    fit_prices.push(*price);
                }
            }
            // A fold holding every row (tiny inputs): fall back to the full spec.
            let fold_spec = if fit_rows.is_empty() {
                spec.clone()
            } else {
                FeatureSpec::fit(&fit_rows, &fit_prices)?
            };
            for (i, row) in rows.iter().enumerate() {
                if fold_of(i) == fold {
                    features[i] = fold_spec.transform(row);
                }
            }
        }
        Ok((spec, features))
    }

    /// Checks a spec read from an artifact can be applied by this build.
    pub fn check_version(&self) -> Result<(), FeatureError> {
        if self.version == FEATURE_SPEC_VERSION {
            Ok(())
        } else {
            Err(FeatureError::Version {
                found: self.version,
            })
        }
    }

    /// The feature vector of one listing, in [`FEATURE_NAMES`] order. The one function used at
    /// training and at serving.
    pub fn transform(&self, row: &FeatureInput<'_>) -> [f64; FEATURE_COUNT] {
        let (years, sale_unknown) = match row.prev_sold_date {
            Some(date) => (years_between(date, row.as_of), 0.0),
            None => (self.median_years_since_sale, 1.0),
        };
        let is = |status: Status| f64::from(u8::from(row.status == Some(status)));
        let zip = row.zip_code.map(|z| z.to_string());
        let broker = row.brokered_by.map(|b| b.to_string());
        let state_known = row
            .state
            .is_some_and(|state| self.state.values.contains_key(state));
        [
            row.bed,
            row.bath,
            row.house_size,
            row.house_size.max(1.0).ln(),
            row.acre_lot.max(0.0).ln_1p(),
            years,
            sale_unknown,
            is(Status::ForSale),
            is(Status::Sold),
            is(Status::ReadyToBuild),
            self.state.encode(row.state),
            self.city.encode(city_key(row.state, row.city).as_deref()),
            self.zip_code.encode(zip.as_deref()),
            self.zip3.encode(row.zip_code.map(zip3).as_deref()),
            self.brokered_by.encode(broker.as_deref()),
            f64::from(u8::from(state_known)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::parse_date;

    fn row<'a>(state: &'a str, city: &'a str, zip: u32, size: f64) -> FeatureInput<'a> {
        FeatureInput {
            bed: 3.0,
            bath: 2.0,
            acre_lot: 0.25,
            house_size: size,
            status: Some(Status::ForSale),
            state: Some(state),
            city: Some(city),
            zip_code: ZipCode::new(zip),
            brokered_by: Some(7),
            prev_sold_date: parse_date("2016-01-01"),
            as_of: parse_date("2026-01-01").unwrap(),
        }
    }

    #[test]
    fn a_reloaded_spec_gives_identical_features_unseen_values_included() {
        let rows = vec![
            row("Texas", "Austin", 78701, 1800.0),
            row("Texas", "Dallas", 75201, 2000.0),
            row("California", "Fresno", 93650, 1500.0),
        ];
        let prices = [400_000.0, 350_000.0, 600_000.0];
        let spec = FeatureSpec::fit(&rows, &prices).unwrap();
        let reloaded: FeatureSpec =
            serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        reloaded.check_version().unwrap();

        let unseen = FeatureInput {
            state: Some("Vermont"),
            city: Some("Nowhere"),
            zip_code: ZipCode::new(5401),
            brokered_by: None,
            status: None,
            prev_sold_date: None,
            ..row("x", "y", 0, 900.0)
        };
        for input in rows.iter().chain([&unseen]) {
            let before = spec.transform(input);
            let after = reloaded.transform(input);
            assert_eq!(
                before.map(f64::to_bits),
                after.map(f64::to_bits),
                "bit-for-bit equal after a round trip"
            );
        }
        let features = spec.transform(&unseen);
        let global = spec.state.fallback;
        for name in ["state", "city", "zip_code", "zip3", "brokered_by"] {
            let index = FEATURE_NAMES.iter().position(|n| *n == name).unwrap();
            assert_eq!(
                features[index], global,
                "{name} falls back to the global mean"
            );
        }
        assert_eq!(features[6], 1.0, "unknown sale date is flagged");
        assert_eq!(features[5], spec.median_years_since_sale);
        assert_eq!(
            &features[7..10],
            &[0.0, 0.0, 0.0],
            "absent status: no one-hot"
        );
        assert_eq!(features[15], 0.0, "Vermont was not seen");
    }

    #[test]
    fn every_feature_belongs_to_one_input_field_and_sums_keep_the_total() {
        for field in FEATURE_FIELDS {
            assert!(INPUT_FIELDS.contains(&field), "{field}");
        }
        for field in INPUT_FIELDS {
            assert!(FEATURE_FIELDS.contains(&field), "{field} has no feature");
        }
        let per_feature: [f64; FEATURE_COUNT] = std::array::from_fn(|i| (i * i) as f64 - 7.5);
        let grouped = sum_by_input_field(&per_feature);
        let total: f64 = grouped.iter().map(|(_, v)| v).sum();
        assert_eq!(total, per_feature.iter().sum::<f64>());
        let index = |name: &str| FEATURE_NAMES.iter().position(|n| *n == name).unwrap();
        let field = |name: &str| grouped.iter().find(|(f, _)| *f == name).unwrap().1;
        assert_eq!(
            field("house_size"),
            per_feature[index("house_size")] + per_feature[index("log_house_size")]
        );
        assert_eq!(
            field("state"),
            per_feature[index("state")] + per_feature[index("state_known")]
        );
    }

    #[test]
    fn cross_fitted_training_features_never_see_their_own_price() {
        // Each broker has one listing: fitted on all rows, its encoding leaks its own price;
        // cross-fitted, a row's broker is unseen and takes the other folds' global mean.
        let rows: Vec<FeatureInput> = (0..100)
            .map(|i| FeatureInput {
                brokered_by: Some(i),
                ..row("Texas", "Austin", 78701, 1500.0)
            })
            .collect();
        let prices: Vec<f64> = (0..100).map(|i| 100_000.0 + 10_000.0 * i as f64).collect();
        let (spec, features) = FeatureSpec::fit_cross(&rows, &prices).unwrap();
        assert_eq!(
            spec,
            FeatureSpec::fit(&rows, &prices).unwrap(),
            "the stored spec sees every row"
        );
        let broker = FEATURE_NAMES
            .iter()
            .position(|n| *n == "brokered_by")
            .unwrap();
        for (i, row) in rows.iter().enumerate() {
            let leaked = spec.transform(row)[broker];
            let own = prices[i].ln();
            let cross = features[i][broker];
            assert_ne!(cross, leaked, "row {i}");
            // The leaked value leans toward the row's own price; the cross-fitted one does not.
            assert!((leaked - own).abs() < (spec.brokered_by.fallback - own).abs());
        }
    }

    #[test]
    fn encodings_order_places_by_price_and_shrink_rare_values() {
        let mut rows = Vec::new();
        let mut prices = Vec::new();
        for _ in 0..50 {
            rows.push(row("California", "Fresno", 93650, 1500.0));
            prices.push(900_000.0);
            rows.push(row("Ohio", "Akron", 44301, 1500.0));
            prices.push(150_000.0);
        }
        rows.push(row("Hawaii", "Hilo", 96720, 1500.0));
        prices.push(5_000_000.0);
        let spec = FeatureSpec::fit(&rows, &prices).unwrap();
        let enc = |state: &str| spec.state.values[state];
        assert!(enc("California") > enc("Ohio"));
        // One very expensive sale moves Hawaii only a little above the global mean.
        let hawaii_raw = 5_000_000f64.ln();
        assert!(enc("Hawaii") > spec.state.fallback);
        assert!(enc("Hawaii") < spec.state.fallback + (hawaii_raw - spec.state.fallback) / 10.0);
        assert_eq!(
            FeatureSpec {
                version: 99,
                ..spec
            }
            .check_version(),
            Err(FeatureError::Version { found: 99 })
        );
    }
}
