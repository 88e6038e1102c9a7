//! A fitted ridge regression: weights on standardized features plus an intercept
//! (scikit-learn's `make_pipeline(StandardScaler(), Ridge(alpha))`). The train stage fits it.

use serde::{Deserialize, Serialize};

/// Predicts `intercept + Σ w_k (x_k − mean_k) / scale_k`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ridge {
    pub alpha: f64,
    pub means: Vec<f64>,
    pub scales: Vec<f64>,
    pub weights: Vec<f64>,
    pub intercept: f64,
}

impl Ridge {
    pub fn predict_row(&self, features: &[f64]) -> f64 {
        self.intercept
            + features
                .iter()
                .zip(&self.means)
                .zip(&self.scales)
                .zip(&self.weights)
                .map(|(((x, m), s), w)| (x - m) / s * w)
                .sum::<f64>()
    }
}
