//! The batch plan: how many batches the source serves, how many rows each has, and which slice
//! of the market each one comes from.
//!
//! The course API cut the Kaggle dataset into six batches "by status and price range", so each
//! new batch looks different from the last and a pipeline meets real drift. The default plan,
//! [`BatchPlan::course`], keeps the course's six batch sizes and gives each one a segment.
//! Batches are numbered from 0, as the course API numbers them (its first answer after a start
//! or restart is `"batch_number": 0`); a batch's number is its position in the plan:
//!
//! | batch | rows    | status           | asking price      | what drifts                                     |
//! |------:|--------:|------------------|-------------------|-------------------------------------------------|
//! | 0     | 73,784  | `for_sale`       | $150k – $500k     | the starting point: mid-market listings          |
//! | 1     | 94,551  | `sold`           | $150k – $500k     | status; most rows now have a `prev_sold_date`   |
//! | 2     | 230,366 | `for_sale`       | $500k and up      | price level jumps; bigger houses, richer places  |
//! | 3     | 4,055   | `ready_to_build` | any               | new construction only; no land, no sale history |
//! | 4     | 320,696 | `sold`           | any               | the full price range, cheap land and outliers   |
//! | 5     | 361,457 | `for_sale`       | any               | the whole for-sale market, like the Kaggle file  |
//!
//! Bands are half-open, `[floor, ceiling)`, on the asking price in dollars. Inside a band the
//! generator does not reject rows: it draws the place and the property kind in proportion to
//! how much of their price distribution falls in the band, then the price from that
//! distribution cut to the band (see [`crate::generator`]). So a high band is dominated by
//! California, Hawaii and Manhattan, as it would be in real data.
//!
//! [`Scale`] multiplies every batch size (tests use 0.01); a batch never shrinks below one row.

use std::{fmt, str::FromStr};

pub use appraise_core::listing::Status;

/// A half-open range of asking prices, `[floor, ceiling)`; either end may be open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceBand {
    floor: Option<f64>,
    ceiling: Option<f64>,
}

/// Why a [`PriceBand`] could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "a price band needs 0 < floor < ceiling, both finite; got floor {floor:?}, ceiling {ceiling:?}"
)]
pub struct InvalidPriceBand {
    pub floor: Option<f64>,
    pub ceiling: Option<f64>,
}

impl PriceBand {
    /// Every price.
    pub const ANY: PriceBand = PriceBand {
        floor: None,
        ceiling: None,
    };

    pub fn new(floor: Option<f64>, ceiling: Option<f64>) -> Result<PriceBand, InvalidPriceBand> {
        let positive_finite = |bound: Option<f64>| bound.is_none_or(|v| v.is_finite() && v > 0.0);
        let ordered = match (floor, ceiling) {
            (Some(floor), Some(ceiling)) => floor < ceiling,
            _ => true,
        };
        if positive_finite(floor) && positive_finite(ceiling) && ordered {
            Ok(PriceBand { floor, ceiling })
        } else {
            Err(InvalidPriceBand { floor, ceiling })
        }
    }

    /// `[floor, ceiling)`.
    pub fn between(floor: f64, ceiling: f64) -> Result<PriceBand, InvalidPriceBand> {
        PriceBand::new(Some(floor), Some(ceiling))
    }

    /// `[floor, ∞)`.
    pub fn at_least(floor: f64) -> Result<PriceBand, InvalidPriceBand> {
        PriceBand::new(Some(floor), None)
    }

    pub fn floor(&self) -> Option<f64> {
        self.floor
    }

    pub fn ceiling(&self) -> Option<f64> {
        self.ceiling
    }

    pub fn contains(&self, price: f64) -> bool {
        self.floor.is_none_or(|floor| price >= floor)
            && self.ceiling.is_none_or(|ceiling| price < ceiling)
    }

    /// The band on the log-price scale, with open ends as infinities.
    pub(crate) fn log_bounds(&self) -> (f64, f64) {
        (
            self.floor.map_or(f64::NEG_INFINITY, f64::ln),
            self.ceiling.map_or(f64::INFINITY, f64::ln),
        )
    }
}

impl fmt::Display for PriceBand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.floor, self.ceiling) {
            (None, None) => write!(f, "any price"),
            (Some(floor), None) => write!(f, "${floor} and up"),
            (None, Some(ceiling)) => write!(f, "below ${ceiling}"),
            (Some(floor), Some(ceiling)) => write!(f, "${floor} to ${ceiling}"),
        }
    }
}

/// The slice of the market one batch is drawn from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub status: Status,
    pub prices: PriceBand,
}

/// One batch of the plan before scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedBatch {
    /// Rows at scale 1.
    pub rows: u64,
    pub segment: Segment,
}

/// The batches a source serves, in order; batch `n` is `batches()[n]`. Never empty.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPlan {
    batches: Vec<PlannedBatch>,
}

/// A plan with no batch, or a batch with no row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("a batch plan needs at least one batch and every batch at least one row")]
pub struct EmptyPlan;

impl BatchPlan {
    pub fn new(batches: Vec<PlannedBatch>) -> Result<BatchPlan, EmptyPlan> {
        if batches.is_empty() || batches.iter().any(|batch| batch.rows == 0) {
            return Err(EmptyPlan);
        }
        Ok(BatchPlan { batches })
    }

    /// The course API's six batches, segmented as in the module docs.
    pub fn course() -> BatchPlan {
        let mid = PriceBand::between(150_000.0, 500_000.0).expect("a valid band");
        let upper = PriceBand::at_least(500_000.0).expect("a valid band");
        let batch = |rows, status, prices| PlannedBatch {
            rows,
            segment: Segment { status, prices },
        };
        BatchPlan::new(vec![
            batch(73_784, Status::ForSale, mid),
            batch(94_551, Status::Sold, mid),
            batch(230_366, Status::ForSale, upper),
            batch(4_055, Status::ReadyToBuild, PriceBand::ANY),
            batch(320_696, Status::Sold, PriceBand::ANY),
            batch(361_457, Status::ForSale, PriceBand::ANY),
        ])
        .expect("the course plan is not empty")
    }

    pub fn batches(&self) -> &[PlannedBatch] {
        &self.batches
    }
}

/// A positive, finite multiplier of every batch size, at most [`Scale::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Scale(f64);

impl Scale {
    pub const ONE: Scale = Scale(1.0);
    /// 100× the course's ~1.1M rows is already more than anyone should stream.
    pub const MAX: f64 = 100.0;

    pub fn new(value: f64) -> Result<Scale, String> {
        if value.is_finite() && value > 0.0 && value <= Scale::MAX {
            Ok(Scale(value))
        } else {
            Err(format!(
                "must be a number greater than 0 and at most {}",
                Scale::MAX
            ))
        }
    }

    pub fn value(self) -> f64 {
        self.0
    }

    /// `rows × scale`, rounded, and never below one row.
    pub fn apply(self, rows: u64) -> u64 {
        ((rows as f64 * self.0).round() as u64).max(1)
    }
}

impl FromStr for Scale {
    type Err = String;

    fn from_str(text: &str) -> Result<Scale, String> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a number"))?;
        Scale::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_course_plan_has_the_course_sizes_and_drifts() {
        let plan = BatchPlan::course();
        let rows: Vec<u64> = plan.batches().iter().map(|b| b.rows).collect();
        assert_eq!(rows, [73_784, 94_551, 230_366, 4_055, 320_696, 361_457]);
        let segments: Vec<Segment> = plan.batches().iter().map(|b| b.segment).collect();
        for pair in segments.windows(2) {
            assert_ne!(
                pair[0], pair[1],
                "neighbouring batches come from the same segment"
            );
        }
    }

    #[test]
    fn scale_rounds_and_keeps_one_row() {
        let tenth = Scale::new(0.1).unwrap();
        assert_eq!(tenth.apply(73_784), 7_378);
        assert_eq!(Scale::new(0.000_001).unwrap().apply(4_055), 1);
        assert_eq!("0.01".parse::<Scale>().unwrap().apply(361_457), 3_615);
        for bad in ["0", "-1", "NaN", "inf", "1000", "lots"] {
            assert!(bad.parse::<Scale>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn bands_reject_nonsense_and_are_half_open() {
        assert!(PriceBand::between(500.0, 100.0).is_err());
        assert!(PriceBand::between(0.0, 100.0).is_err());
        assert!(PriceBand::at_least(f64::NAN).is_err());
        let band = PriceBand::between(100.0, 200.0).unwrap();
        assert!(band.contains(100.0) && band.contains(199.99));
        assert!(!band.contains(200.0) && !band.contains(99.0));
        assert!(BatchPlan::new(vec![]).is_err());
    }
}
