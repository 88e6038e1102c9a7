//! The promotion rule: whether a candidate replaces the production model, given both models'
//! test RMSE on the same held-out rows, and the sentence that explains the decision.

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
