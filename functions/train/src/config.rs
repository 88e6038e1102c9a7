//! The train stage's settings, read once at start from the environment.

use std::time::Duration;

use appraise_core::{
    config::{self, ConfigError},
    drift::DriftConfig,
};

use appraise_core::model::{boosted::BoostingParams, forest::ForestParams};

use crate::decision::RetrainRule;

/// The default of `TRAIN_WINDOW_ROWS`: one million clean rows (700,000 training rows), which
/// all three models fit in under 10 s on two cores, by the rates measured in bench/README.md
/// (on the dataset's 1,012,277 training rows: Ridge 0.08 s, XGBoost 3.5 s, the forest 8.7 s,
/// the train function at 742 MB), in about 0.5 GB of memory: well inside a Lambda's 900 s and
/// the train function's 4 GB (README, "How much a Lambda can train").
pub const DEFAULT_WINDOW_ROWS: u64 = 1_000_000;

/// The default of `STAGE_PENDING_WINDOW_SECS`: ten minutes.
pub const DEFAULT_PENDING_WINDOW: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub rule: RetrainRule,
    pub drift: DriftConfig,
    pub ridge_alpha: f64,
    pub forest: ForestParams,
    pub boosting: BoostingParams,
    /// Seed of the train / validation / test split (by listing fingerprint: 70 / 15 / 15).
    pub split_seed: u64,
    /// Train on the clean rows of the last this many batches; 0 (the default) means no bound
    /// in batches.
    pub window_batches: u32,
    /// Train on the most recent whole batches whose clean rows add up to at most this many
    /// (the event's own batch always, even when it alone holds more); 0 means no bound in rows.
    /// Both bounds apply together.
    pub window_rows: u64,
    /// When set, each training writes its exact training and test rows here as realtor-data
    /// CSVs (`training-NNNNNN-train.csv`, `-test.csv`), for comparing with other
    /// implementations on identical rows (see bench/README.md).
    pub export_dir: Option<std::path::PathBuf>,
    /// `STAGE_PENDING_WINDOW_SECS` (seconds, fractions allowed; default 600): how long after
    /// a clean manifest was written an event for a batch that is not in `ops.clean_batches`
    /// is answered 503 (retry: the rows it announces may not be visible yet) rather than 400
    /// (final).
    pub pending_window: Duration,
}

impl TrainConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let forest = ForestParams::default();
        let boosting = BoostingParams::default();
        let positive = |name: &str, value: f64| {
            if value > 0.0 && value.is_finite() {
                Ok(value)
            } else {
                Err(ConfigError::invalid(
                    name,
                    value,
                    "must be a positive number",
                ))
            }
        };
        Ok(TrainConfig {
            rule: RetrainRule {
                min_new_rows: config::optional(
                    "TRAIN_MIN_NEW_ROWS",
                    RetrainRule::default().min_new_rows,
                )?,
            },
            drift: DriftConfig::from_env()?,
            ridge_alpha: positive(
                "TRAIN_RIDGE_ALPHA",
                config::optional("TRAIN_RIDGE_ALPHA", 1.0)?,
            )?,
            forest: ForestParams {
                trees: config::optional("TRAIN_RF_TREES", forest.trees)?,
                max_depth: config::optional("TRAIN_RF_MAX_DEPTH", forest.max_depth)?,
                seed: config::optional("TRAIN_SEED", forest.seed)?,
                ..forest
            },
            boosting: BoostingParams {
                rounds: config::optional("TRAIN_XGB_ROUNDS", boosting.rounds)?,
                max_depth: config::optional("TRAIN_XGB_MAX_DEPTH", boosting.max_depth)?,
                learning_rate: positive(
                    "TRAIN_XGB_ETA",
                    config::optional("TRAIN_XGB_ETA", boosting.learning_rate)?,
                )?,
                seed: config::optional("TRAIN_SEED", boosting.seed)?,
            },
            split_seed: config::optional("TRAIN_SPLIT_SEED", 42)?,
            window_batches: config::optional("TRAIN_WINDOW_BATCHES", 0)?,
            window_rows: config::optional("TRAIN_WINDOW_ROWS", DEFAULT_WINDOW_ROWS)?,
            export_dir: config::maybe("TRAIN_EXPORT_DIR")?,
            pending_window: config::seconds("STAGE_PENDING_WINDOW_SECS", DEFAULT_PENDING_WINDOW)?,
        })
    }
}

impl TrainConfig {
    /// The defaults with small models (8 trees of depth 8, 30 boosting rounds): what the tests
    /// of this and later stages train, quick even in a debug build.
    pub fn small() -> Self {
        TrainConfig {
            forest: ForestParams {
                trees: 8,
                max_depth: 8,
                ..ForestParams::default()
            },
            boosting: BoostingParams {
                rounds: 30,
                ..BoostingParams::default()
            },
            ..TrainConfig::default()
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            rule: RetrainRule::default(),
            drift: DriftConfig::default(),
            ridge_alpha: 1.0,
            forest: ForestParams::default(),
            boosting: BoostingParams::default(),
            split_seed: 42,
            window_batches: 0,
            window_rows: DEFAULT_WINDOW_ROWS,
            export_dir: None,
            pending_window: DEFAULT_PENDING_WINDOW,
        }
    }
}
