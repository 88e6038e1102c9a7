//! Regression metrics: RMSE, MAE, R² and MAPE, as scikit-learn defines them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub rmse: f64,
    pub mae: f64,
    /// 1 − SSE/SST; can be negative for a model worse than the mean.
    pub r2: f64,
    /// Mean of |error| / |actual| (a fraction, not a percentage), over rows whose actual value
    /// is not zero.
    pub mape: f64,
    pub rows: usize,
}

impl Metrics {
    /// Compares predictions with actual values; `None` when there are no rows or the lengths
    /// differ.
    pub fn compute(actual: &[f64], predicted: &[f64]) -> Option<Metrics> {
        if actual.is_empty() || actual.len() != predicted.len() {
            return None;
        }
        let n = actual.len() as f64;
        let mean = actual.iter().sum::<f64>() / n;
        let (mut sse, mut sae, mut sst, mut ape, mut ape_rows) = (0.0, 0.0, 0.0, 0.0, 0usize);
        for (&y, &p) in actual.iter().zip(predicted) {
            let error = y - p;
            sse += error * error;
            sae += error.abs();
            sst += (y - mean) * (y - mean);
            if y != 0.0 {
                ape += (error / y).abs();
                ape_rows += 1;
            }
        }
        Some(Metrics {
            rmse: (sse / n).sqrt(),
            mae: sae / n,
            r2: if sst > 0.0 { 1.0 - sse / sst } else { 0.0 },
            mape: if ape_rows > 0 {
                ape / ape_rows as f64
            } else {
                0.0
            },
            rows: actual.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_values() {
        // sklearn: mean_squared_error([3, -0.5, 2, 7], [2.5, 0.0, 2, 8]) = 0.375,
        // mean_absolute_error = 0.5, r2_score = 0.9486081370449679.
        let m = Metrics::compute(&[3.0, -0.5, 2.0, 7.0], &[2.5, 0.0, 2.0, 8.0]).unwrap();
        assert!((m.rmse - 0.375f64.sqrt()).abs() < 1e-12);
        assert!((m.mae - 0.5).abs() < 1e-12);
        assert!((m.r2 - 0.948_608_137_044_967_9).abs() < 1e-12);
        // |0.5/3| + |0.5/0.5| + 0 + |1/7|, over 4.
        assert!((m.mape - (0.5 / 3.0 + 1.0 + 1.0 / 7.0) / 4.0).abs() < 1e-12);
        assert!(Metrics::compute(&[], &[]).is_none());
    }
}
