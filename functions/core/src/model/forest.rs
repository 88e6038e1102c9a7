//! A fitted random forest: regression trees whose predictions are averaged. The train stage
//! grows it (bagged CART trees on binned features, in parallel); a fitted forest keeps only
//! thresholds in feature units, so predicting needs no bins.

use serde::{Deserialize, Serialize};

/// How the forest grows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    pub trees: usize,
    pub max_depth: usize,
    /// The fewest bootstrap draws a leaf may hold (repeats of a row count; scikit-learn counts
    /// distinct rows, which differs only above 1).
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

/// One node of a [`Tree`]. An inner node sends `x[feature] <= threshold` to node `left` and
/// anything else to node `left + 1` (children are stored side by side); a leaf has
/// `feature == LEAF` and its prediction in `threshold`. 16 bytes: one cache line holds four.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    pub threshold: f64,
    pub feature: u32,
    pub left: u32,
}

/// `Node::feature` of a leaf.
pub const LEAF: u32 = u32::MAX;

/// Trees walked side by side when predicting.
const LANES: usize = 8;

impl Node {
    /// The child a row goes to from this inner node: `left` when `x[feature] <= threshold`,
    /// else `left + 1` (so NaN, which no fitted feature holds, goes right).
    fn next(&self, x: &[f64]) -> usize {
        let goes_left = x[self.feature as usize] <= self.threshold;
        self.left as usize + usize::from(!goes_left)
    }

    pub fn leaf(value: f64) -> Node {
        Node {
            threshold: value,
            feature: LEAF,
            left: 0,
        }
    }
}

impl super::packed::Packed for Node {
    const SIZE: usize = 16;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.threshold.to_le_bytes());
        out.extend_from_slice(&self.feature.to_le_bytes());
        out.extend_from_slice(&self.left.to_le_bytes());
    }
    fn read(bytes: &[u8]) -> Node {
        Node {
            threshold: f64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
            feature: super::packed::u32_at(bytes, 8),
            left: super::packed::u32_at(bytes, 12),
        }
    }
}

/// One regression tree; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    #[serde(with = "super::packed")]
    pub nodes: Vec<Node>,
    /// Per node, how many of the tree's (bootstrap) training rows reached it: what TreeSHAP
    /// weighs a split's children by ([`super::shap`]). Empty in models saved before covers
    /// were recorded; those predict but cannot be explained.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "super::packed")]
    pub covers: Vec<f64>,
}

impl Tree {
    pub fn predict_row(&self, x: &[f64]) -> f64 {
        let mut node = self.nodes[0];
        while node.feature != LEAF {
            node = self.nodes[node.next(x)];
        }
        node.threshold
    }

    /// Appends a leaf that `cover` training rows reached and returns its index.
    pub fn push_leaf(&mut self, value: f64, cover: f64) -> usize {
        self.nodes.push(Node::leaf(value));
        self.covers.push(cover);
        self.nodes.len() - 1
    }

    /// Checks that every walk from the root ends at a leaf within the tree, splitting only on
    /// the model's `features`.
    pub fn validate(&self, features: usize) -> Result<(), &'static str> {
        if self.nodes.is_empty() {
            return Err("a tree without nodes");
        }
        for (index, node) in self.nodes.iter().enumerate() {
            if node.feature == LEAF {
                continue;
            }
            if node.feature as usize >= features {
                return Err("a split on a feature the model does not have");
            }
            let left = node.left as usize;
            if left <= index || left + 1 >= self.nodes.len() {
                return Err("a child index out of range");
            }
        }
        super::shap::validate_covers(&self.covers, self.nodes.len())
    }
}

impl super::shap::ExplainableTree for Tree {
    fn node_count(&self) -> usize {
        self.nodes.len()
    }
    fn split(&self, node: usize) -> Option<(usize, usize, usize)> {
        let node = self.nodes[node];
        (node.feature != LEAF).then_some((
            node.feature as usize,
            node.left as usize,
            node.left as usize + 1,
        ))
    }
    fn goes_left(&self, node: usize, x: &[f64]) -> bool {
        let node = self.nodes[node];
        node.next(x) == node.left as usize
    }
    fn leaf_value(&self, node: usize) -> f64 {
        self.nodes[node].threshold
    }
    fn cover(&self, node: usize) -> f64 {
        self.covers[node]
    }
}

/// Trees whose predictions are averaged, with the parameters they were grown with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    pub params: ForestParams,
    pub trees: Vec<Tree>,
}

impl Forest {
    pub fn validate(&self, features: usize) -> Result<(), &'static str> {
        if self.trees.is_empty() {
            return Err("a forest without trees");
        }
        self.trees
            .iter()
            .try_for_each(|tree| tree.validate(features))
    }

    /// The mean of the trees' predictions. Trees are walked `LANES` at a time, one level
    /// per step, so the processor overlaps their memory loads instead of waiting on one chain;
    /// leaves are then added in tree order, so the sum is exactly that of one tree after the
    /// other ([`Tree::predict_row`]).
    pub fn predict_row(&self, x: &[f64]) -> f64 {
        let mut sum = 0.0;
        for group in self.trees.chunks(LANES) {
            let mut at = [Node::leaf(0.0); LANES];
            for (lane, tree) in group.iter().enumerate() {
                at[lane] = tree.nodes[0];
            }
            loop {
                let mut walking = false;
                for (lane, tree) in group.iter().enumerate() {
                    let node = at[lane];
                    if node.feature != LEAF {
                        walking = true;
                        at[lane] = tree.nodes[node.next(x)];
                    }
                }
                if !walking {
                    break;
                }
            }
            for node in &at[..group.len()] {
                sum += node.threshold;
            }
        }
        sum / self.trees.len() as f64
    }

    /// Adds each feature's contribution to [`Forest::predict_row`] of `x` into `phi` and
    /// returns the base value: the trees' TreeSHAP values and expected values, averaged as
    /// their predictions are.
    pub fn contributions(&self, x: &[f64], phi: &mut [f64]) -> Result<f64, super::shap::ShapError> {
        let scale = 1.0 / self.trees.len() as f64;
        let mut scratch = super::shap::Scratch::default();
        let mut base = 0.0;
        for tree in &self.trees {
            if tree.covers.is_empty() {
                return Err(super::shap::ShapError::NoCovers);
            }
            super::shap::add_contributions(tree, x, scale, phi, &mut scratch)?;
            base += super::shap::expected_value(tree, &mut scratch);
        }
        Ok(base * scale)
    }
}
