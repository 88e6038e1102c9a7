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

impl Ridge {
    /// Writes each feature's exact contribution `w_k (x_k − mean_k) / scale_k` into `phi` and
    /// returns the base value, the intercept: the prediction at the training means of the
    /// features (for a linear model these are its Shapley values under independent features).
    pub fn contributions(&self, features: &[f64], phi: &mut [f64]) -> f64 {
        for ((((phi, x), m), s), w) in phi
            .iter_mut()
            .zip(features)
            .zip(&self.means)
            .zip(&self.scales)
            .zip(&self.weights)
        {
            *phi += (x - m) / s * w;
        }
        self.intercept
    }
}
