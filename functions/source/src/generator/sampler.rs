//! The segment sampler: the mixture of (city, property kind, price regime) components a batch's
//! segment draws from, weighted by how much of each component's price distribution falls in
//! the segment's band, and the draw of one row from it (component, then price, then the
//! fields in [`super::fields`]).

use appraise_core::{
    listing::{Listing, ZipCode},
    rng::SplitMix64,
};

use super::fields::{
    PropertyKind, asking_price, broker_id, fill_building, fill_land, previous_sale, set_text,
};
use crate::{
    gaussian,
    geography::{City, STATES, State},
    plan::{PriceBand, Segment, Status},
};

fn status_log_price_offset(status: Status) -> f64 {
    match status {
        Status::ForSale => 0.0,
        // Sale prices sit a little below asking prices.
        Status::Sold => -0.05,
        // New construction carries a premium.
        Status::ReadyToBuild => 0.2,
    }
}

/// Price regimes: the ordinary market and two tails that give the real data its skew.
#[derive(Debug, Clone, Copy)]
struct PriceRegime {
    weight: f64,
    /// Shift of the log-price from the place's typical price.
    shift: f64,
    /// Spread of the log-price; `None` uses the property kind's own spread.
    spread: Option<f64>,
}

const PRICE_REGIMES: [PriceRegime; 3] = [
    // The ordinary market.
    PriceRegime {
        weight: 0.96,
        shift: 0.0,
        spread: None,
    },
    // Luxury: estates, waterfront, penthouses; gives the p99 of ~$5M and the $10M+ listings.
    PriceRegime {
        weight: 0.035,
        shift: 2.0,
        spread: Some(1.0),
    },
    // Bargains and data-entry errors: the real file's $445 and $2,500 "houses".
    PriceRegime {
        weight: 0.005,
        shift: -2.3,
        spread: Some(1.0),
    },
];

/// One (city, kind, regime) component of a segment's price mixture.
#[derive(Debug, Clone)]
pub(super) struct Component {
    pub(super) state_index: usize,
    city: &'static City,
    kind: PropertyKind,
    /// The log of the place's typical price for this kind and status (regime excluded).
    typical_log_price: f64,
    /// Mean and spread of this component's log-price.
    mean: f64,
    spread: f64,
    /// The band in standard units of this component: `(ln floor − mean) / spread`, etc.
    lower_z: f64,
    upper_z: f64,
}

/// Draws rows of one segment: a cumulative table over components, then the per-row model.
#[derive(Debug, Clone)]
pub(super) struct SegmentSampler {
    prices: PriceBand,
    components: Vec<Component>,
    /// `cumulative[k]` is the probability of components `0..=k`; the last entry is 1.
    cumulative: Vec<f64>,
}

impl SegmentSampler {
    /// `None` when the band is out of reach of every component.
    pub(super) fn new(segment: Segment) -> Option<SegmentSampler> {
        let (log_floor, log_ceiling) = segment.prices.log_bounds();
        let state_total: f64 = STATES.iter().map(|state| state.listing_share).sum();
        let mut components = Vec::new();
        let mut weights = Vec::new();
        for (state_index, state) in STATES.iter().enumerate() {
            let city_total: f64 = state.cities.iter().map(|city| city.share).sum();
            for city in state.cities {
                let place_weight = state.listing_share / state_total * city.share / city_total;
                let place_log_price = (state.median_price * city.price_factor).ln();
                for kind in PropertyKind::ALL {
                    let kind_weight = kind.share(segment.status);
                    if kind_weight == 0.0 {
                        continue;
                    }
                    let typical_log_price = place_log_price
                        + kind.log_price_offset()
                        + status_log_price_offset(segment.status);
                    for regime in PRICE_REGIMES {
                        let mean = typical_log_price + regime.shift;
                        let spread = regime.spread.unwrap_or(kind.log_price_spread());
                        let lower_z = (log_floor - mean) / spread;
                        let upper_z = (log_ceiling - mean) / spread;
                        let weight = place_weight
                            * kind_weight
                            * regime.weight
                            * gaussian::mass_between(lower_z, upper_z);
                        if weight > 0.0 {
                            components.push(Component {
                                state_index,
                                city,
                                kind,
                                typical_log_price,
                                mean,
                                spread,
                                lower_z,
                                upper_z,
                            });
                            weights.push(weight);
                        }
                    }
                }
            }
        }
        let total: f64 = weights.iter().sum();
        if total.is_nan() || total <= 0.0 {
            return None;
        }
        let mut running = 0.0;
        let mut cumulative: Vec<f64> = weights
            .iter()
            .map(|weight| {
                running += weight / total;
                running
            })
            .collect();
        // Guard against rounding: the last component must catch every uniform number.
        if let Some(last) = cumulative.last_mut() {
            *last = 1.0;
        }
        Some(SegmentSampler {
            prices: segment.prices,
            components,
            cumulative,
        })
    }

    pub(super) fn fill_listing(
        &self,
        rng: &mut SplitMix64,
        status: Status,
        seed: u64,
        out: &mut Listing,
    ) {
        let pick = rng.next_f64();
        let index = self
            .cumulative
            .partition_point(|&cumulative| cumulative <= pick)
            .min(self.components.len() - 1);
        let component = &self.components[index];
        let state: &State = &STATES[component.state_index];

        // Price, inside the band.
        let z = gaussian::truncated(component.lower_z, component.upper_z, open_unit(rng));
        let log_price = component.mean + component.spread * z;
        let price = asking_price(log_price.exp(), self.prices, rng);
        // How much dearer than typical this listing is; drives every feature below. Clamped so
        // a $445 error or a $100M estate does not produce absurd houses on top of it.
        let premium = (log_price - component.typical_log_price).clamp(-1.5, 3.5);

        out.price = Some(price);
        set_text(&mut out.status, Some(status.as_str()));
        match component.kind {
            PropertyKind::House | PropertyKind::Condo => {
                fill_building(rng, component.kind, premium, component.city, out)
            }
            PropertyKind::Land => fill_land(rng, premium, out),
        }

        // Identity and place.
        out.brokered_by =
            (!rng.chance(0.000_3)).then(|| broker_id(rng, seed, component.state_index, state));
        out.street = (!rng.chance(0.004_7)).then(|| 1 + rng.below(2_001_357) as i64);
        let city_missing = rng.chance(0.001_2);
        set_text(
            &mut out.city,
            (!city_missing).then_some(component.city.name),
        );
        set_text(&mut out.state, Some(state.name));
        let zip = component.city.first_zip + rng.below(u64::from(component.city.zip_count)) as u32;
        out.zip_code = if city_missing || rng.chance(0.002_2) {
            None
        } else {
            ZipCode::new(zip)
        };
        out.prev_sold_date = previous_sale(rng, status, component.kind);
    }
}

/// Uniform in the open interval (0, 1), so inverse CDFs never see 0 or 1.
fn open_unit(rng: &mut SplitMix64) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}
