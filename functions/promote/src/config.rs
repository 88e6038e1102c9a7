//! The promote stage's settings, read once at start from the environment.

use std::time::Duration;

use appraise_core::config::{self, ConfigError};

use crate::decision::PromotionRule;

/// The default of `STAGE_PENDING_WINDOW_SECS`: ten minutes.
pub const DEFAULT_PENDING_WINDOW: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct PromoteConfig {
    pub rule: PromotionRule,
    /// `STAGE_PENDING_WINDOW_SECS` (seconds, fractions allowed; default 600): how long after
    /// a candidates object was written an event for a training that is not recorded is
    /// answered 503 (retry: the training's commit may not be visible yet) rather than 400
    /// (final).
    pub pending_window: Duration,
}

impl Default for PromoteConfig {
    fn default() -> Self {
        PromoteConfig {
            rule: PromotionRule::default(),
            pending_window: DEFAULT_PENDING_WINDOW,
        }
    }
}

impl PromoteConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let min_improvement: f64 = config::optional("PROMOTE_MIN_IMPROVEMENT", 0.0)?;
        if !(0.0..1.0).contains(&min_improvement) {
            return Err(ConfigError::invalid(
                "PROMOTE_MIN_IMPROVEMENT",
                min_improvement,
                "must be a fraction in [0, 1)",
            ));
        }
        Ok(PromoteConfig {
            rule: PromotionRule { min_improvement },
            pending_window: config::seconds("STAGE_PENDING_WINDOW_SECS", DEFAULT_PENDING_WINDOW)?,
        })
    }
}
