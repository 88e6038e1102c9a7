//! The model kinds and what they share: a dense feature matrix, and a trained model that
//! predicts one row at a time and serializes into the model artifact.

pub mod forest;
pub mod ridge;

use serde::{Deserialize, Serialize};

/// Rows of features, row-major: row `i` is `data[i * cols..(i + 1) * cols]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
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
}

impl TrainedModel {
    pub fn predict_row(&self, features: &[f64]) -> f64 {
        match self {
            TrainedModel::Ridge(model) => model.predict_row(features),
            TrainedModel::RandomForest(model) => model.predict_row(features),
        }
    }

    pub fn predict(&self, matrix: &Matrix) -> Vec<f64> {
        (0..matrix.rows)
            .map(|i| self.predict_row(matrix.row(i)))
            .collect()
    }
}
