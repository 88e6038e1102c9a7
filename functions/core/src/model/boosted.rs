//! A fitted gradient-boosted tree ensemble in the terms of XGBoost's JSON model format
//! (`Booster.save_model("model.json")`), evaluated in plain Rust. Reading and writing that
//! format is [`super::xgboost_json`].
//!
//! The train stage grows the trees itself (`appraise_train::fit::boosting`) and stores them in
//! XGBoost's JSON next to our artifact, so Python's `xgboost` loads the same model. The walk
//! follows XGBoost's arithmetic: features are compared as `f32` with `value < split_condition`
//! (a missing value — NaN — takes the node's default branch) and leaf values are added to the
//! base score in `f32`, tree by tree, so the result equals XGBoost's prediction (to the last
//! bit of an `f32`; XGBoost 3 adds the base score last).

use serde::{Deserialize, Serialize};

pub use super::xgboost_json::XgboostJsonError;

/// One node of a [`BoostedTree`]: an inner node sends `value < condition` to `left`, anything
/// else to `right`, and a missing value (NaN) to its default side; a leaf has `left == -1` and
/// its value in `condition`. 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoostedNode {
    pub condition: f32,
    /// The feature index, with [`DEFAULT_LEFT`] set when a missing value goes left.
    pub feature: u32,
    pub left: i32,
    pub right: i32,
}

/// The flag in [`BoostedNode::feature`] that sends missing values left.
pub const DEFAULT_LEFT: u32 = 1 << 31;

impl super::packed::Packed for BoostedNode {
    const SIZE: usize = 16;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.condition.to_le_bytes());
        out.extend_from_slice(&self.feature.to_le_bytes());
        out.extend_from_slice(&self.left.to_le_bytes());
        out.extend_from_slice(&self.right.to_le_bytes());
    }
    fn read(bytes: &[u8]) -> BoostedNode {
        BoostedNode {
            condition: f32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")),
            feature: super::packed::u32_at(bytes, 4),
            left: super::packed::u32_at(bytes, 8) as i32,
            right: super::packed::u32_at(bytes, 12) as i32,
        }
    }
}

/// One tree; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoostedTree {
    #[serde(with = "super::packed")]
    pub nodes: Vec<BoostedNode>,
    /// Per node, the hessian sum of the training rows that reached it (XGBoost's
    /// `sum_hessian`, its "cover"; for squared error, the row count): what TreeSHAP weighs a
    /// split's children by ([`super::shap`]). Empty in models saved before covers were
    /// recorded; those predict but cannot be explained.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "super::packed")]
    pub covers: Vec<f32>,
}

/// Hyperparameters the ensemble was fitted with (recorded for lineage).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoostingParams {
    pub rounds: usize,
    pub max_depth: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl Default for BoostingParams {
    /// The seed project's settings: 100 rounds, depth 6, η 0.1.
    fn default() -> Self {
        BoostingParams {
            rounds: 100,
            max_depth: 6,
            learning_rate: 0.1,
            seed: 42,
        }
    }
}

/// A squared-error regression ensemble: `base_score + Σ tree(x)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoostedTrees {
    pub params: BoostingParams,
    pub base_score: f32,
    pub trees: Vec<BoostedTree>,
}

impl BoostedNode {
    /// The child a row goes to from this inner node.
    fn next(&self, x: &[f64]) -> usize {
        let value = x[(self.feature & !DEFAULT_LEFT) as usize] as f32;
        let go_left =
            value < self.condition || (value.is_nan() && self.feature & DEFAULT_LEFT != 0);
        (if go_left { self.left } else { self.right }) as usize
    }
}

/// Trees walked side by side when predicting.
const LANES: usize = 8;

impl BoostedTree {
    pub fn predict_row(&self, x: &[f64]) -> f32 {
        let mut node = self.nodes[0];
        while node.left >= 0 {
            node = self.nodes[node.next(x)];
        }
        node.condition
    }

    /// Checks that every walk ends at a leaf: children in range and pointing forward.
    pub(super) fn validate(&self, features: usize) -> Result<(), &'static str> {
        let n = self.nodes.len();
        if n == 0 {
            return Err("no nodes");
        }
        for (index, node) in self.nodes.iter().enumerate() {
            if node.left < 0 {
                continue;
            }
            let in_range = |child: i32| child as usize > index && (child as usize) < n;
            if node.right < 0 || !in_range(node.left) || !in_range(node.right) {
                return Err("a child index out of range");
            }
            if (node.feature & !DEFAULT_LEFT) as usize >= features {
                return Err("a split on a feature the model does not have");
            }
        }
        super::shap::validate_covers(&self.covers, n)
    }
}

impl super::shap::ExplainableTree for BoostedTree {
    fn node_count(&self) -> usize {
        self.nodes.len()
    }
    fn split(&self, node: usize) -> Option<(usize, usize, usize)> {
        let node = self.nodes[node];
        (node.left >= 0).then_some((
            (node.feature & !DEFAULT_LEFT) as usize,
            node.left as usize,
            node.right as usize,
        ))
    }
    fn goes_left(&self, node: usize, x: &[f64]) -> bool {
        let node = self.nodes[node];
        node.next(x) == node.left as usize
    }
    fn leaf_value(&self, node: usize) -> f64 {
        f64::from(self.nodes[node].condition)
    }
    fn cover(&self, node: usize) -> f64 {
        f64::from(self.covers[node])
    }
}

impl BoostedTrees {
    pub fn validate(&self, features: usize) -> Result<(), &'static str> {
        self.trees
            .iter()
            .try_for_each(|tree| tree.validate(features))
    }

    /// `base_score` plus every tree's leaf, added in `f32` in tree order as XGBoost does.
    /// Trees are walked `LANES` at a time, one level per step, so their memory loads overlap.
    pub fn predict_row(&self, x: &[f64]) -> f64 {
        let mut sum = self.base_score;
        for group in self.trees.chunks(LANES) {
            let mut at = [BoostedNode {
                condition: 0.0,
                feature: 0,
                left: -1,
                right: -1,
            }; LANES];
            for (lane, tree) in group.iter().enumerate() {
                at[lane] = tree.nodes[0];
            }
            loop {
                let mut walking = false;
                for (lane, tree) in group.iter().enumerate() {
                    let node = at[lane];
                    if node.left >= 0 {
                        walking = true;
                        at[lane] = tree.nodes[node.next(x)];
                    }
                }
                if !walking {
                    break;
                }
            }
            for node in &at[..group.len()] {
                sum += node.condition;
            }
        }
        f64::from(sum)
    }

    /// Adds each feature's contribution to [`BoostedTrees::predict_row`] of `x` into `phi` and
    /// returns the base value: `base_score` plus the trees' expected values (XGBoost's
    /// `pred_contribs` bias column). The arithmetic is `f64`; the prediction's is `f32`, so
    /// base plus contributions equals it to within `f32` rounding.
    pub fn contributions(&self, x: &[f64], phi: &mut [f64]) -> Result<f64, super::shap::ShapError> {
        let mut scratch = super::shap::Scratch::default();
        let mut base = f64::from(self.base_score);
        for tree in &self.trees {
            if tree.covers.is_empty() {
                return Err(super::shap::ShapError::NoCovers);
            }
            super::shap::add_contributions(tree, x, 1.0, phi, &mut scratch)?;
            base += super::shap::expected_value(tree, &mut scratch);
        }
        Ok(base)
    }
}
