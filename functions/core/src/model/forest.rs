//! A fitted random forest: regression trees whose predictions are averaged. The train stage
//! grows it (bagged CART trees on binned features, in parallel); a fitted forest keeps only
//! thresholds in feature units, so predicting needs no bins.

use serde::{Deserialize, Serialize};

/// How the forest grows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    pub trees: usize,
    pub max_depth: usize,
    pub min_samples_leaf: usize,
    /// Fraction of the features tried at each split (1.0 = all, scikit-learn's default for
    /// regression).
    pub max_features: f64,
    /// At most this many bins per feature (≤ 256).
    pub max_bins: usize,
    pub seed: u64,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            trees: 100,
            max_depth: 10,
            min_samples_leaf: 1,
            max_features: 1.0,
            max_bins: 255,
            seed: 42,
            threads: 0,
        }
    }
}

/// One regression tree, stored as parallel arrays; node 0 is the root. A leaf has
/// `feature == LEAF`; an inner node sends `x[feature] <= threshold` left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub feature: Vec<u32>,
    pub threshold: Vec<f64>,
    pub left: Vec<u32>,
    pub right: Vec<u32>,
    pub value: Vec<f64>,
}

/// `Tree::feature` of a leaf.
pub const LEAF: u32 = u32::MAX;

impl Tree {
    pub fn predict_row(&self, x: &[f64]) -> f64 {
        let mut node = 0usize;
        loop {
            let feature = self.feature[node];
            if feature == LEAF {
                return self.value[node];
            }
            node = if x[feature as usize] <= self.threshold[node] {
                self.left[node]
            } else {
                self.right[node]
            } as usize;
        }
    }

    /// Appends a leaf and returns its index.
    pub fn push_leaf(&mut self, value: f64) -> usize {
        self.feature.push(LEAF);
        self.threshold.push(0.0);
        self.left.push(0);
        self.right.push(0);
        self.value.push(value);
        self.feature.len() - 1
    }
}

/// Trees whose predictions are averaged, with the parameters they were grown with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    pub params: ForestParams,
    pub trees: Vec<Tree>,
}

impl Forest {
    pub fn predict_row(&self, x: &[f64]) -> f64 {
        self.trees.iter().map(|t| t.predict_row(x)).sum::<f64>() / self.trees.len() as f64
    }
}
