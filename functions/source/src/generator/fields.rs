//! The fields that follow a row's price (steps 3 and 4 of the module docs): the asking-price
//! rounding, the building (size, bedrooms, bathrooms, lot) or the plot of land, the broker, the
//! previous sale, each with the real file's null rates and outliers.

use appraise_core::{
    listing::Listing,
    rng::{SplitMix64, mix64},
};
use time::{Date, macros::date};

use crate::{
    geography::{City, State},
    plan::{PriceBand, Status},
};

/// Kinds of property, which decide which fields are null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PropertyKind {
    /// A house on a lot: every field present.
    House,
    /// An apartment or condo: no lot of its own, so `acre_lot` is null.
    Condo,
    /// A plot of land: no building, so `bed`, `bath` and `house_size` are null.
    Land,
}

impl PropertyKind {
    pub(super) const ALL: [PropertyKind; 3] =
        [PropertyKind::House, PropertyKind::Condo, PropertyKind::Land];

    /// Share of listings of this kind for a status. For-sale listings are a quarter land, as in
    /// the real file (24.8% of rows have no bed, bath and size); sales are mostly homes; new
    /// construction is homes only.
    pub(super) fn share(self, status: Status) -> f64 {
        match (status, self) {
            (Status::ForSale, PropertyKind::House) => 0.615,
            (Status::ForSale, PropertyKind::Condo) => 0.13,
            (Status::ForSale, PropertyKind::Land) => 0.255,
            (Status::Sold, PropertyKind::House) => 0.75,
            (Status::Sold, PropertyKind::Condo) => 0.18,
            (Status::Sold, PropertyKind::Land) => 0.07,
            (Status::ReadyToBuild, PropertyKind::House) => 0.9,
            (Status::ReadyToBuild, PropertyKind::Condo) => 0.1,
            (Status::ReadyToBuild, PropertyKind::Land) => 0.0,
        }
    }

    /// Log-price offset from the place's typical price (land sells for ~40% of a house).
    pub(super) fn log_price_offset(self) -> f64 {
        match self {
            PropertyKind::House => 0.0,
            PropertyKind::Condo => -0.25,
            PropertyKind::Land => -1.05,
        }
    }

    /// Spread of ordinary log-prices within one city: land prices vary most.
    pub(super) fn log_price_spread(self) -> f64 {
        match self {
            PropertyKind::House => 0.5,
            PropertyKind::Condo => 0.5,
            PropertyKind::Land => 0.8,
        }
    }
}

/// Rounds a price the way listings are priced: 28% end in 900 ($249,900), a third are round
/// thousands, most of the rest round hundreds, a few are exact. Stays inside the band.
pub(super) fn asking_price(exact: f64, band: PriceBand, rng: &mut SplitMix64) -> f64 {
    let style = rng.next_f64();
    let rounded = if exact >= 10_000.0 && style < 0.28 {
        (exact / 1_000.0).round() * 1_000.0 - 100.0
    } else if exact >= 10_000.0 && style < 0.65 {
        (exact / 1_000.0).round() * 1_000.0
    } else if exact >= 1_000.0 && style < 0.97 {
        (exact / 100.0).round() * 100.0
    } else {
        exact.round()
    };
    if band.contains(rounded) && rounded >= 1.0 {
        return rounded;
    }
    // Rounding crossed an edge of the band: keep whole dollars inside it.
    let floor = band.floor().map_or(1.0, |floor| floor.ceil().max(1.0));
    let last = band
        .ceiling()
        .map_or(f64::MAX, |ceiling| ceiling.ceil() - 1.0);
    exact.round().clamp(floor, last.max(floor))
}

/// Size, bedrooms, bathrooms and lot of a house or condo.
pub(super) fn fill_building(
    rng: &mut SplitMix64,
    kind: PropertyKind,
    premium: f64,
    city: &City,
    out: &mut Listing,
) {
    let multi_unit = kind == PropertyKind::House && rng.chance(0.015);
    let (mut size, bed, bath) = if multi_unit {
        // Multi-family houses and rooming houses: the real file has up to 86 bedrooms.
        let bed = (5.0 + (-6.0 * (1.0 - rng.next_f64()).ln()).floor()).min(80.0);
        let bath = (bed * (0.5 + 0.5 * rng.next_f64())).round().max(2.0);
        let size = bed * (450.0 + 450.0 * rng.next_f64());
        (size, bed, bath)
    } else {
        let (base_size, size_noise) = match kind {
            PropertyKind::Condo => (1_350.0_f64, 0.3),
            _ => (1_850.0_f64, 0.36),
        };
        let size = (base_size.ln() + 0.6 * premium + size_noise * rng.normal()).exp();
        // One-bedroom listings are rare (1% in the real file) and small.
        let fewest = if size < 800.0 { 1.0 } else { 2.0 };
        let bed = ((size / 500.0).ln() / 0.37 + 0.65 * rng.normal())
            .round()
            .max(fewest);
        let bath = (0.35 + 0.58 * bed + 0.3 * premium + 0.55 * rng.normal())
            .round()
            .max(1.0);
        (size, bed, bath)
    };
    if rng.chance(0.000_2) {
        // A data-entry error: square metres typed as thousands, a lot size in the wrong field.
        size *= (2.3 + 4.7 * rng.next_f64()).exp();
    }
    let bed_missing = rng.chance(0.013);
    out.bed = (!bed_missing).then_some(bed);
    // Listings that omit the bedrooms mostly omit the bathrooms too.
    let bath_missing = if bed_missing {
        rng.chance(0.8)
    } else {
        rng.chance(0.003_5)
    };
    out.bath = (!bath_missing).then_some(bath);
    out.house_size = (!rng.chance(0.014)).then_some(size.round().max(100.0));
    out.acre_lot = match kind {
        PropertyKind::Condo => None,
        _ => {
            // Most lots are a fraction of an acre; a sixth are rural acreage.
            let noise = if rng.chance(0.22) {
                2.0 + 1.5 * rng.normal()
            } else {
                0.85 * rng.normal()
            };
            let acres =
                (0.25_f64.ln() + 0.35 * premium - 0.3 * city.price_factor.ln() + noise).exp();
            Some(round_acres(with_acreage_outlier(rng, acres)))
        }
    };
}

/// A plot of land: only the lot size (and rarely not even that).
pub(super) fn fill_land(rng: &mut SplitMix64, premium: f64, out: &mut Listing) {
    out.bed = None;
    out.bath = None;
    out.house_size = None;
    let noise = if rng.chance(0.25) {
        2.0 + 1.7 * rng.normal()
    } else {
        1.2 * rng.normal()
    };
    let acres = (2.0_f64.ln() + 0.55 * premium + noise).exp();
    let acres = with_acreage_outlier(rng, acres);
    out.acre_lot = (!rng.chance(0.007)).then(|| round_acres(acres));
}

/// One lot in 2,000 is a ranch or a typo of 500 to 100,000 acres.
fn with_acreage_outlier(rng: &mut SplitMix64, acres: f64) -> f64 {
    if rng.chance(0.000_5) {
        (500.0_f64.ln() + (100_000.0_f64 / 500.0).ln() * rng.next_f64()).exp()
    } else {
        acres.min(100_000.0)
    }
}

/// Lots are listed to the hundredth of an acre.
fn round_acres(acres: f64) -> f64 {
    (acres * 100.0).round() / 100.0
}

/// Brokers are local: each state has its own pool, sized by its market, and a broker's id is an
/// opaque integer below the real file's maximum (~110,000).
pub(super) fn broker_id(rng: &mut SplitMix64, seed: u64, state_index: usize, state: &State) -> i64 {
    let pool = (state.listing_share * 250.0).max(20.0) as u64;
    let broker = rng.below(pool);
    let key = mix64(seed ^ mix64(((state_index as u64) << 32) | broker));
    1 + (key % 110_140) as i64
}

/// The day the data was scraped; previous sales are dated before it.
const SNAPSHOT: Date = date!(2022 - 04 - 01);

/// Years before the snapshot of a for-sale listing's previous sale: quantiles of the real file
/// (1% within 4 months, 10% within 1.8 years, median 14.5 years, 99% within 42 years).
const YEARS_SINCE_SALE: [(f64, f64); 9] = [
    (0.0, 0.0),
    (0.01, 0.3),
    (0.10, 1.8),
    (0.25, 5.3),
    (0.50, 14.5),
    (0.75, 21.0),
    (0.90, 28.5),
    (0.99, 42.0),
    (1.0, 52.0),
];

/// `prev_sold_date`: a third of for-sale homes and few plots of land have one; sold listings
/// nearly always do (the sale itself, within about three years); new construction never does.
pub(super) fn previous_sale(
    rng: &mut SplitMix64,
    status: Status,
    kind: PropertyKind,
) -> Option<Date> {
    let years = match status {
        Status::ReadyToBuild => return None,
        Status::Sold => {
            if !rng.chance(0.96) {
                return None;
            }
            3.25 * rng.next_f64()
        }
        Status::ForSale => {
            let present = if kind == PropertyKind::Land {
                0.076
            } else {
                0.42
            };
            if !rng.chance(present) {
                return None;
            }
            interpolate_quantile(&YEARS_SINCE_SALE, rng.next_f64())
        }
    };
    let days = (years * 365.25) as i32;
    Date::from_julian_day(SNAPSHOT.to_julian_day() - days).ok()
}

/// The value at probability `p` of a piecewise-linear inverse CDF given as (probability,
/// value) knots in increasing order.
fn interpolate_quantile(knots: &[(f64, f64)], p: f64) -> f64 {
    let upper = knots
        .iter()
        .position(|&(probability, _)| probability >= p)
        .unwrap_or(knots.len() - 1)
        .max(1);
    let (p0, v0) = knots[upper - 1];
    let (p1, v1) = knots[upper];
    if p1 <= p0 {
        return v1;
    }
    v0 + (v1 - v0) * (p - p0) / (p1 - p0)
}

/// Writes `value` into an optional string, reusing its buffer.
pub(super) fn set_text(slot: &mut Option<String>, value: Option<&str>) {
    match (slot.as_mut(), value) {
        (Some(text), Some(value)) => {
            text.clear();
            text.push_str(value);
        }
        (None, Some(value)) => *slot = Some(value.to_owned()),
        (_, None) => *slot = None,
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_prices_in_the_band() {
        let band = PriceBand::between(150_000.0, 500_000.0).unwrap();
        let mut rng = SplitMix64::new(3);
        for exact in [150_000.2, 150_040.0, 499_999.6, 499_960.0, 320_123.4] {
            for _ in 0..50 {
                let price = asking_price(exact, band, &mut rng);
                assert!(band.contains(price), "{exact} became {price}");
                assert_eq!(price.fract(), 0.0);
            }
        }
    }

    #[test]
    fn quantile_interpolation_hits_the_knots() {
        assert_eq!(interpolate_quantile(&YEARS_SINCE_SALE, 0.5), 14.5);
        assert_eq!(interpolate_quantile(&YEARS_SINCE_SALE, 0.0), 0.0);
        let between = interpolate_quantile(&YEARS_SINCE_SALE, 0.375);
        assert!((between - (5.3 + 14.5) / 2.0).abs() < 1e-9);
    }
}
