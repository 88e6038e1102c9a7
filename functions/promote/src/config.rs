//! The promote stage's settings, read once at start from the environment, and the promotion
//! rule they configure.

use std::time::Duration;

use appraise_core::config::{self, ConfigError};

/// Promote when there is no production model yet, or when the candidate's test RMSE beats the
/// production model's on the same rows by more than `min_improvement` (a fraction: 0.01
/// demands 1 % lower; the default 0 demands strictly lower).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PromotionRule {
    pub min_improvement: f64,
}

impl Default for PromotionRule {
    fn default() -> Self {
        PromotionRule {
            min_improvement: 0.0,
        }
    }
}

/// A decision and the sentence that explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub promote: bool,
    pub reason: String,
}

impl PromotionRule {
    pub fn decide(&self, candidate_rmse: f64, production_rmse: Option<f64>) -> Verdict {
        let Some(production_rmse) = production_rmse else {
            return Verdict {
                promote: true,
                reason: format!("no production model yet; candidate test RMSE {candidate_rmse:.0}"),
            };
        };
        let bar = production_rmse * (1.0 - self.min_improvement);
        let change = (candidate_rmse - production_rmse) / production_rmse * 100.0;
        if candidate_rmse < bar {
            Verdict {
                promote: true,
                reason: format!(
                    "candidate test RMSE {candidate_rmse:.0} beats production {production_rmse:.0} \
                     ({change:+.2} %) on the same rows"
                ),
            }
        } else {
            let wanted = if self.min_improvement > 0.0 {
                format!(
                    ", and promotion needs {:.2} % lower",
                    self.min_improvement * 100.0
                )
            } else {
                String::new()
            };
            Verdict {
                promote: false,
                reason: format!(
                    "candidate test RMSE {candidate_rmse:.0} does not beat production \
                     {production_rmse:.0} ({change:+.2} %) on the same rows{wanted}"
                ),
            }
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_in_every_case() {
        let rule = PromotionRule::default();
        assert!(rule.decide(100.0, None).promote);
        assert!(rule.decide(99.0, Some(100.0)).promote);
        let tie = rule.decide(100.0, Some(100.0));
        assert!(!tie.promote);
        assert!(tie.reason.contains("does not beat"), "{}", tie.reason);
        assert!(!rule.decide(101.0, Some(100.0)).promote);
        let strict = PromotionRule {
            min_improvement: 0.05,
        };
        assert!(!strict.decide(96.0, Some(100.0)).promote);
        assert!(strict.decide(94.0, Some(100.0)).promote);
        assert!(strict.decide(96.0, Some(100.0)).reason.contains("5.00 %"));
    }
}
