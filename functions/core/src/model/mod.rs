//! Fitted models, as train stores them and promote and predict use them: the model kinds, the
//! artifact that carries a model with its [`FeatureSpec`], and the regression [`metrics`].
//!
//! Every kind also explains its predictions: exact per-feature contributions that add up, with
//! a base value, to the prediction ([`TrainedModel::contributions`], [`shap`] for the trees).
//!
//! Fitting lives in the train stage; everything here only predicts, or reads and writes
//! XGBoost's JSON ([`xgboost_json`]), so serving links no training code (and no XGBoost
//! library).

pub mod boosted;
pub mod forest;
pub mod metrics;
mod packed;
pub mod ridge;
pub mod shap;
pub mod xgboost_json;

use serde::{Deserialize, Serialize};

use crate::features::{FeatureError, FeatureInput, FeatureSpec};

/// Rows of features, row-major: row `i` is `data[i * cols..(i + 1) * cols]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl<const N: usize> From<Vec<[f64; N]>> for Matrix {
    /// Rows of `N` features, taken over without a copy (a million rows of the 16 features are
    /// 128 MB).
    fn from(rows: Vec<[f64; N]>) -> Matrix {
        Matrix {
            rows: rows.len(),
            cols: N,
            data: rows.into_flattened(),
        }
    }
}

impl Matrix {
    /// A matrix from rows of equal length; `None` if they are not.
    pub fn from_rows<R: AsRef<[f64]>>(rows: &[R]) -> Option<Matrix> {
        let cols = rows.first().map_or(0, |r| r.as_ref().len());
        let mut data = Vec::with_capacity(rows.len() * cols);
        for row in rows {
            if row.as_ref().len() != cols {
                return None;
            }
            data.extend_from_slice(row.as_ref());
        }
        Some(Matrix {
            rows: rows.len(),
            cols,
            data,
        })
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// A trained model of any kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrainedModel {
    Ridge(ridge::Ridge),
    RandomForest(forest::Forest),
    Xgboost(boosted::BoostedTrees),
}

impl TrainedModel {
    pub fn predict_row(&self, features: &[f64]) -> f64 {
        match self {
            TrainedModel::Ridge(model) => model.predict_row(features),
            TrainedModel::RandomForest(model) => model.predict_row(features),
            TrainedModel::Xgboost(model) => model.predict_row(features),
        }
    }

    /// Checks that the model can evaluate rows of `features` values without going out of
    /// bounds (an artifact is input like any other).
    pub fn validate(&self, features: usize) -> Result<(), &'static str> {
        match self {
            TrainedModel::Ridge(model) => {
                let lengths = [model.means.len(), model.scales.len(), model.weights.len()];
                if lengths.iter().any(|&len| len != features) {
                    return Err("ridge coefficients do not match the features");
                }
                Ok(())
            }
            TrainedModel::RandomForest(model) => model.validate(features),
            TrainedModel::Xgboost(model) => model.validate(features),
        }
    }

    /// The algorithm's name, as versions and reports spell it.
    pub fn algorithm(&self) -> &'static str {
        match self {
            TrainedModel::Ridge(_) => "ridge",
            TrainedModel::RandomForest(_) => "random_forest",
            TrainedModel::Xgboost(_) => "xgboost",
        }
    }

    /// The hyperparameters it was fitted with, for the model registry.
    pub fn params(&self) -> serde_json::Value {
        match self {
            TrainedModel::Ridge(model) => serde_json::json!({ "alpha": model.alpha }),
            TrainedModel::RandomForest(model) => {
                serde_json::to_value(model.params).expect("parameters serialize")
            }
            TrainedModel::Xgboost(model) => {
                serde_json::to_value(model.params).expect("parameters serialize")
            }
        }
    }

    /// Each feature's exact contribution to [`TrainedModel::predict_row`] of `features`, and the
    /// base value they add up from: `base + Σ contributions = prediction` (to within `f32`
    /// rounding for boosted trees, which predict in `f32`).
    ///
    /// - Ridge: `w_k (x_k − mean_k) / scale_k`, from the prediction at the training means of
    ///   the features (the intercept).
    /// - Trees: path-dependent TreeSHAP ([`shap`]) from the expected prediction under the
    ///   trees' covers; averaged over the forest's trees, summed over the booster's (plus its
    ///   `base_score`), as their predictions are.
    pub fn contributions(&self, features: &[f64]) -> Result<Contributions, shap::ShapError> {
        let mut values = vec![0.0; features.len()];
        let base_value = match self {
            TrainedModel::Ridge(model) => model.contributions(features, &mut values),
            TrainedModel::RandomForest(model) => model.contributions(features, &mut values)?,
            TrainedModel::Xgboost(model) => model.contributions(features, &mut values)?,
        };
        Ok(Contributions { base_value, values })
    }

    pub fn predict(&self, matrix: &Matrix) -> Vec<f64> {
        (0..matrix.rows)
            .map(|i| self.predict_row(matrix.row(i)))
            .collect()
    }
}

/// A model's global importance: the mean absolute contribution of each input field
/// ([`crate::features::INPUT_FIELDS`]) over a set of rows (at training, its test rows), largest
/// first. Stored with the model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalImportance {
    /// How many rows the means are over.
    pub rows: usize,
    pub fields: Vec<FieldImportance>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldImportance {
    pub field: String,
    pub mean_abs_contribution: f64,
}

impl GlobalImportance {
    /// The importance over the rows whose per-feature contributions are given (each in
    /// [`crate::features::FEATURE_NAMES`] order).
    pub fn from_contributions(rows: &[[f64; crate::features::FEATURE_COUNT]]) -> GlobalImportance {
        let mut sums = crate::features::INPUT_FIELDS.map(|field| (field, 0.0));
        for row in rows {
            for (sum, (_, value)) in sums
                .iter_mut()
                .zip(crate::features::sum_by_input_field(row))
            {
                sum.1 += value.abs();
            }
        }
        let count = rows.len().max(1) as f64;
        let mut fields: Vec<FieldImportance> = sums
            .into_iter()
            .map(|(field, sum)| FieldImportance {
                field: field.to_owned(),
                mean_abs_contribution: sum / count,
            })
            .collect();
        fields.sort_by(|a, b| b.mean_abs_contribution.total_cmp(&a.mean_abs_contribution));
        GlobalImportance {
            rows: rows.len(),
            fields,
        }
    }
}

/// A prediction taken apart: `base_value + Σ values` is the prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Contributions {
    /// The expected prediction (see [`TrainedModel::contributions`]).
    pub base_value: f64,
    /// Per feature, in the model's feature order.
    pub values: Vec<f64>,
}

/// What a model artifact (`models/<version>/model.json`) holds: everything serving needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    pub version: String,
    pub algorithm: String,
    pub feature_spec: FeatureSpec,
    pub model: TrainedModel,
}

/// Why an artifact could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("reading a model artifact: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error("the model is malformed: {0}")]
    Malformed(&'static str),
}

impl ModelArtifact {
    /// Reads an artifact, refusing a feature spec this build cannot apply.
    pub fn from_json(bytes: &[u8]) -> Result<ModelArtifact, ArtifactError> {
        let artifact: ModelArtifact = serde_json::from_slice(bytes)?;
        artifact.feature_spec.check_version()?;
        artifact
            .model
            .validate(crate::features::FEATURE_COUNT)
            .map_err(ArtifactError::Malformed)?;
        Ok(artifact)
    }

    /// The predicted price of one listing.
    pub fn predict(&self, input: &FeatureInput<'_>) -> f64 {
        self.model.predict_row(&self.feature_spec.transform(input))
    }

    /// The predicted price of one listing with its exact contributions per input field
    /// ([`crate::features::INPUT_FIELDS`]). Models predict the price itself (no target
    /// transform), so the contributions are in dollars and add up to the price.
    pub fn explain(&self, input: &FeatureInput<'_>) -> Result<Explanation, shap::ShapError> {
        let features = self.feature_spec.transform(input);
        let contributions = self.model.contributions(&features)?;
        let per_feature: [f64; crate::features::FEATURE_COUNT] =
            std::array::from_fn(|i| contributions.values[i]);
        Ok(Explanation {
            predicted_price: self.model.predict_row(&features),
            base_value: contributions.base_value,
            per_feature,
            per_field: crate::features::sum_by_input_field(&per_feature),
        })
    }
}

/// A price taken apart ([`ModelArtifact::explain`]): `base_value` plus the contributions (of
/// the features, or of the input fields: the same total) is `predicted_price`.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub predicted_price: f64,
    /// The expected price (see [`TrainedModel::contributions`]).
    pub base_value: f64,
    /// Per feature, in [`crate::features::FEATURE_NAMES`] order.
    pub per_feature: [f64; crate::features::FEATURE_COUNT],
    /// Per input field, in [`crate::features::INPUT_FIELDS`] order.
    pub per_field: [(&'static str, f64); 10],
}

/// What `production/current.json` says: the model in production and how it scored when promote
/// chose it. Promote writes it after moving the pointer in PostgreSQL; every predictor reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductionPointer {
    pub version: String,
    pub algorithm: String,
    pub artifact_key: String,
    pub promotion_id: i64,
    pub training_id: i64,
    /// Metrics on the held-out rows promote scored it on.
    pub test: metrics::Metrics,
    /// RFC 3339.
    pub promoted_at: String,
}
