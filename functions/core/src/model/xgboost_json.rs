//! XGBoost's JSON model format (`Booster.save_model("model.json")`), both ways: reading a model
//! XGBoost saved into [`BoostedTrees`] ([`BoostedTrees::from_xgboost_json`]), and writing the
//! trees the train stage grows ([`XgboostJsonWriter`]), which Python's `xgboost` loads. The
//! reader and the writer sit together so that both sides of the schema stay in step; prediction
//! itself is [`super::boosted`].

use serde_json::json;

use super::boosted::{BoostedNode, BoostedTree, BoostedTrees, BoostingParams, DEFAULT_LEFT};

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

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

impl BoostedTrees {
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
                covers: tree.sum_hessian,
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
        /// The nodes' covers; absent from models written before appraise recorded them.
        #[serde(default)]
        pub sum_hessian: Vec<f32>,
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

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// One node as XGBoost's JSON records it: the node prediction walks, and what training knew
/// about it (XGBoost's own tools show it; prediction ignores it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct XgboostNode {
    pub node: BoostedNode,
    /// The parent's index; negative for the root.
    pub parent: i32,
    /// The node's weight `−η·G/(H+λ)` (its value if it is a leaf).
    pub weight: f32,
    /// The gain of the node's split (0 for a leaf).
    pub gain: f32,
    /// The hessian sum of the node's rows (for squared error, their count).
    pub hessian: f32,
}

/// A model in the JSON layout XGBoost 1.6 saves (`Booster.save_model("….json")`), which later
/// versions load too: a `gbtree` booster with the `reg:squarederror` objective, built one tree
/// at a time.
pub struct XgboostJsonWriter {
    features: usize,
    trees: Vec<serde_json::Value>,
}

impl XgboostJsonWriter {
    /// An empty model over `features` numeric features.
    pub fn new(features: usize) -> Self {
        XgboostJsonWriter {
            features,
            trees: Vec::new(),
        }
    }

    /// Adds the next tree (`learner.gradient_booster.model.trees[i]`); node 0 is its root.
    pub fn push_tree(&mut self, nodes: &[XgboostNode]) {
        let id = self.trees.len();
        let is_leaf = |n: &XgboostNode| n.node.left < 0;
        self.trees.push(json!({
            "base_weights": nodes.iter().map(|n| n.weight).collect::<Vec<_>>(),
            "categories": [],
            "categories_nodes": [],
            "categories_segments": [],
            "categories_sizes": [],
            "default_left": nodes.iter().map(|n| u8::from(n.node.feature & DEFAULT_LEFT != 0)).collect::<Vec<_>>(),
            "id": id,
            "left_children": nodes.iter().map(|n| n.node.left).collect::<Vec<_>>(),
            "loss_changes": nodes.iter().map(|n| n.gain).collect::<Vec<_>>(),
            "parents": nodes.iter().map(|n| if n.parent < 0 { i32::MAX } else { n.parent }).collect::<Vec<_>>(),
            "right_children": nodes.iter().map(|n| n.node.right).collect::<Vec<_>>(),
            "split_conditions": nodes.iter().map(|n| n.node.condition).collect::<Vec<_>>(),
            "split_indices": nodes.iter().map(|n| if is_leaf(n) { 0 } else { n.node.feature & !DEFAULT_LEFT }).collect::<Vec<_>>(),
            "split_type": vec![0; nodes.len()],
            "sum_hessian": nodes.iter().map(|n| n.hessian).collect::<Vec<_>>(),
            "tree_param": {
                "num_deleted": "0",
                "num_feature": self.features.to_string(),
                "num_nodes": nodes.len().to_string(),
                "size_leaf_vector": "0",
            },
        }));
    }

    /// The whole model, with `base_score` added to every prediction.
    pub fn finish(self, base_score: f32) -> String {
        let rounds = self.trees.len();
        json!({
            "learner": {
                "attributes": {},
                "feature_names": [],
                "feature_types": [],
                "gradient_booster": {
                    "model": {
                        "gbtree_model_param": {
                            "num_parallel_tree": "1",
                            "num_trees": rounds.to_string(),
                            "size_leaf_vector": "0",
                        },
                        "tree_info": vec![0; rounds],
                        "trees": self.trees,
                    },
                    "name": "gbtree",
                },
                "learner_model_param": {
                    "base_score": format!("{base_score:E}"),
                    "num_class": "0",
                    "num_feature": self.features.to_string(),
                    "num_target": "1",
                },
                "objective": {
                    "name": "reg:squarederror",
                    "reg_loss_param": {"scale_pos_weight": "1"},
                },
            },
            "version": [1, 6, 2],
        })
        .to_string()
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
             "default_left": [1, 0, 0], "split_type": [0, 0, 0],
             "sum_hessian": [6.0, 3.0, 3.0]},
            {"split_indices": [1, 0, 0], "split_conditions": [0.0, 0.25, 0.5],
             "left_children": [1, -1, -1], "right_children": [2, -1, -1],
             "default_left": [0, 0, 0], "split_type": [0, 0, 0],
             "sum_hessian": [6.0, 3.0, 3.0]}
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

    /// A leaf worth `value` under `parent`.
    fn leaf(parent: i32, value: f32) -> XgboostNode {
        XgboostNode {
            node: BoostedNode {
                condition: value,
                feature: 0,
                left: -1,
                right: -1,
            },
            parent,
            weight: value,
            gain: 0.0,
            hessian: 3.0,
        }
    }

    /// A split of `feature` at `condition` with children 1 and 2, as the root.
    fn root(feature: u32, condition: f32) -> XgboostNode {
        XgboostNode {
            node: BoostedNode {
                condition,
                feature,
                left: 1,
                right: 2,
            },
            parent: -1,
            weight: 0.125,
            gain: 42.0,
            hessian: 6.0,
        }
    }

    #[test]
    fn what_the_writer_writes_the_reader_reads_back() {
        let trees = [
            [root(DEFAULT_LEFT, 1.5), leaf(0, -1.0), leaf(0, 2.0)],
            [root(1, 0.0), leaf(0, 0.25), leaf(0, 0.5)],
        ];
        let mut writer = XgboostJsonWriter::new(2);
        for tree in &trees {
            writer.push_tree(tree);
        }
        let json = writer.finish(0.5);
        let params = BoostingParams::default();
        let read = BoostedTrees::from_xgboost_json(&json, params, 2).unwrap();
        let expected = BoostedTrees {
            params,
            base_score: 0.5,
            trees: trees
                .iter()
                .map(|tree| BoostedTree {
                    nodes: tree.iter().map(|n| n.node).collect(),
                    covers: tree.iter().map(|n| n.hessian).collect(),
                })
                .collect(),
        };
        assert_eq!(read, expected);
        // The same model as the one XGBoost saved above.
        let saved = BoostedTrees::from_xgboost_json(MODEL, params, 2).unwrap();
        assert_eq!(read, saved);

        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let tree = &value["learner"]["gradient_booster"]["model"]["trees"][1];
        assert_eq!(tree["id"], 1);
        assert_eq!(tree["parents"], json!([i32::MAX, 0, 0]));
        assert_eq!(tree["loss_changes"], json!([42.0, 0.0, 0.0]));
        assert_eq!(
            value["learner"]["learner_model_param"]["base_score"],
            "5E-1"
        );
    }
}
