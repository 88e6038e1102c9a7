//! A fitted gradient-boosted tree ensemble in the terms of XGBoost's JSON model format
//! (`Booster.save_model("model.json")`), read from it and evaluated in plain Rust.
//!
//! The train stage grows the trees itself (`appraise_train::fit::boosting`) and stores them in
//! XGBoost's JSON next to our artifact, so Python's `xgboost` loads the same model. The walk
//! follows XGBoost's arithmetic: features are compared as `f32` with `value < split_condition`
//! (a missing value — NaN — takes the node's default branch) and leaf values are added to the
//! base score in `f32`, tree by tree, so the result equals XGBoost's prediction (to the last
//! bit of an `f32`; XGBoost 3 adds the base score last).

use serde::{Deserialize, Serialize};

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

/// Why an XGBoost JSON model could not be read.
#[derive(Debug, thiserror::Error)]
pub enum XgboostJsonError {
    #[error("not an XGBoost JSON model: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported XGBoost model: {0}")]
    Unsupported(String),
    #[error("tree {tree} is malformed: {reason}")]
    BadTree { tree: usize, reason: &'static str },
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
    fn validate(&self, features: usize) -> Result<(), &'static str> {
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
        Ok(())
    }
}

impl BoostedTrees {
    pub fn validate(&self, features: usize) -> Result<(), &'static str> {
        self.trees
            .iter()
            .try_for_each(|tree| tree.validate(features))
    }

    /// `base_score` plus every tree's leaf, added in `f32` in tree order as XGBoost does.
    /// Trees are walked [`LANES`] at a time, one level per step, so their memory loads overlap.
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

    /// Reads a model saved by XGBoost as JSON: a `gbtree` booster with the
    /// `reg:squarederror` objective over `features` numeric features.
    pub fn from_xgboost_json(
        json: &str,
        params: BoostingParams,
        features: usize,
    ) -> Result<BoostedTrees, XgboostJsonError> {
        let model: xgb::Model = serde_json::from_str(json)?;
        let learner = model.learner;
        if learner.objective.name != "reg:squarederror" {
            return Err(XgboostJsonError::Unsupported(format!(
                "objective {:?} (only reg:squarederror)",
                learner.objective.name
            )));
        }
        if learner.gradient_booster.name != "gbtree" {
            return Err(XgboostJsonError::Unsupported(format!(
                "booster {:?} (only gbtree)",
                learner.gradient_booster.name
            )));
        }
        let base_score: f32 = learner
            .learner_model_param
            .base_score
            .parse()
            .map_err(|_| {
                XgboostJsonError::Unsupported(format!(
                    "base_score {:?} is not a number",
                    learner.learner_model_param.base_score
                ))
            })?;
        let mut trees = Vec::new();
        for (index, tree) in learner.gradient_booster.model.trees.into_iter().enumerate() {
            if tree.split_type.iter().any(|&t| t != 0) {
                return Err(XgboostJsonError::Unsupported(
                    "categorical splits".to_owned(),
                ));
            }
            let n = tree.left_children.len();
            if [
                tree.right_children.len(),
                tree.split_indices.len(),
                tree.split_conditions.len(),
                tree.default_left.len(),
            ]
            .iter()
            .any(|&len| len != n)
            {
                return Err(XgboostJsonError::BadTree {
                    tree: index,
                    reason: "node arrays of different lengths",
                });
            }
            if tree.split_indices.iter().any(|&f| f & DEFAULT_LEFT != 0) {
                return Err(XgboostJsonError::BadTree {
                    tree: index,
                    reason: "a feature index too large",
                });
            }
            let tree = BoostedTree {
                nodes: (0..n)
                    .map(|i| BoostedNode {
                        condition: tree.split_conditions[i],
                        feature: tree.split_indices[i]
                            | if tree.default_left[i].0 {
                                DEFAULT_LEFT
                            } else {
                                0
                            },
                        left: tree.left_children[i],
                        right: tree.right_children[i],
                    })
                    .collect(),
            };
            tree.validate(features)
                .map_err(|reason| XgboostJsonError::BadTree {
                    tree: index,
                    reason,
                })?;
            trees.push(tree);
        }
        Ok(BoostedTrees {
            params,
            base_score,
            trees,
        })
    }
}

/// The parts of XGBoost's JSON model schema that prediction needs.
mod xgb {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Model {
        pub learner: Learner,
    }

    #[derive(Deserialize)]
    pub struct Learner {
        pub learner_model_param: LearnerModelParam,
        pub objective: Named,
        pub gradient_booster: GradientBooster,
    }

    #[derive(Deserialize)]
    pub struct LearnerModelParam {
        pub base_score: String,
    }

    #[derive(Deserialize)]
    pub struct Named {
        pub name: String,
    }

    #[derive(Deserialize)]
    pub struct GradientBooster {
        pub name: String,
        pub model: TreeModel,
    }

    #[derive(Deserialize)]
    pub struct TreeModel {
        pub trees: Vec<Tree>,
    }

    #[derive(Deserialize)]
    pub struct Tree {
        pub split_indices: Vec<u32>,
        pub split_conditions: Vec<f32>,
        pub left_children: Vec<i32>,
        pub right_children: Vec<i32>,
        pub default_left: Vec<Flag>,
        #[serde(default)]
        pub split_type: Vec<u8>,
    }

    /// XGBoost writes `default_left` as 0/1; some versions wrote booleans.
    pub struct Flag(pub bool);

    impl<'de> Deserialize<'de> for Flag {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Flag, D::Error> {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Raw {
                Bool(bool),
                Int(u8),
            }
            Ok(Flag(match Raw::deserialize(d)? {
                Raw::Bool(b) => b,
                Raw::Int(i) => i != 0,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-split model in XGBoost 1.6's JSON layout (trimmed to what is read).
    const MODEL: &str = r#"{"learner": {
        "learner_model_param": {"base_score": "5E-1", "num_feature": "2"},
        "objective": {"name": "reg:squarederror"},
        "gradient_booster": {"name": "gbtree", "model": {"trees": [
            {"split_indices": [0, 0, 0], "split_conditions": [1.5, -1.0, 2.0],
             "left_children": [1, -1, -1], "right_children": [2, -1, -1],
             "default_left": [1, 0, 0], "split_type": [0, 0, 0]},
            {"split_indices": [1, 0, 0], "split_conditions": [0.0, 0.25, 0.5],
             "left_children": [1, -1, -1], "right_children": [2, -1, -1],
             "default_left": [0, 0, 0], "split_type": [0, 0, 0]}
        ]}}
    }}"#;

    #[test]
    fn walks_trees_as_xgboost_does() {
        let model = BoostedTrees::from_xgboost_json(MODEL, BoostingParams::default(), 2).unwrap();
        assert_eq!(model.base_score, 0.5);
        // x0 < 1.5 → −1; x1 < 0 → 0.25.
        assert_eq!(model.predict_row(&[1.0, -3.0]), 0.5 - 1.0 + 0.25);
        // Equal to the condition goes right (strict <).
        assert_eq!(model.predict_row(&[1.5, 0.0]), 0.5 + 2.0 + 0.5);
        // Missing x0 takes tree 0's default (left); missing x1 tree 1's default (right).
        assert_eq!(model.predict_row(&[f64::NAN, f64::NAN]), 0.5 - 1.0 + 0.5);
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        let other = MODEL.replace("reg:squarederror", "binary:logistic");
        assert!(matches!(
            BoostedTrees::from_xgboost_json(&other, BoostingParams::default(), 2),
            Err(XgboostJsonError::Unsupported(_))
        ));
        // A split on feature 5 of a 2-feature model.
        let bad = MODEL.replace(
            "[1, 0, 0], \"split_conditions\": [0.0",
            "[5, 0, 0], \"split_conditions\": [0.0",
        );
        assert!(matches!(
            BoostedTrees::from_xgboost_json(&bad, BoostingParams::default(), 2),
            Err(XgboostJsonError::BadTree { tree: 1, .. })
        ));
        assert!(BoostedTrees::from_xgboost_json("{}", BoostingParams::default(), 2).is_err());
    }
}
