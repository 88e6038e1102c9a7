//! Whether to retrain: `new clean rows since the last training ≥ min_new_rows AND (drift OR no
//! production model)`, the seed project's rule, with the reason written out either way.

use serde::{Deserialize, Serialize};

use appraise_core::drift::DriftReport;

/// The rule's one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrainRule {
    /// Clean rows that must have arrived since the last training (default 10,000).
    pub min_new_rows: u64,
}

impl Default for RetrainRule {
    fn default() -> Self {
        RetrainRule {
            min_new_rows: 10_000,
        }
    }
}

/// What the rule looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Situation<'a> {
    pub new_rows: u64,
    pub has_production_model: bool,
    /// Drift of the new rows against the production model's training rows; `None` when there
    /// is no production model to compare with.
    pub drift: Option<&'a DriftReport>,
}

/// The decision and, always, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Train { reason: String },
    Skip { reason: String },
}

impl Decision {
    pub fn trains(&self) -> bool {
        matches!(self, Decision::Train { .. })
    }

    pub fn reason(&self) -> &str {
        match self {
            Decision::Train { reason } | Decision::Skip { reason } => reason,
        }
    }
}

fn describe_worst(report: &DriftReport) -> String {
    let Some(worst) = &report.worst else {
        return "no feature could be tested".to_owned();
    };
    match report.features.iter().find(|f| &f.feature == worst) {
        Some(feature) => format!(
            "{worst} D={:.3} p={:.3e}",
            feature.statistic.unwrap_or(0.0),
            feature.p_value.unwrap_or(1.0)
        ),
        None => worst.clone(),
    }
}

impl RetrainRule {
    pub fn decide(&self, situation: &Situation<'_>) -> Decision {
        let rows = format!(
            "{} new clean rows (threshold {})",
            situation.new_rows, self.min_new_rows
        );
        if situation.new_rows < self.min_new_rows {
            return Decision::Skip {
                reason: format!("too few rows: {rows}"),
            };
        }
        if !situation.has_production_model {
            return Decision::Train {
                reason: format!("no production model yet; {rows}"),
            };
        }
        match situation.drift {
            Some(report) if report.drifted => Decision::Train {
                reason: format!("drift ({}); {rows}", describe_worst(report)),
            },
            Some(report) => Decision::Skip {
                reason: format!(
                    "no drift (largest: {}) though {rows}",
                    describe_worst(report)
                ),
            },
            None => Decision::Skip {
                reason: format!("no drift report to judge by; {rows}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use appraise_core::drift::{DriftConfig, drift_report};

    fn report(shift: f64) -> DriftReport {
        let reference: Vec<f64> = (0..2_000).map(|i| f64::from(i) / 2_000.0).collect();
        let current: Vec<f64> = reference.iter().map(|v| v + shift).collect();
        drift_report(
            &[("price", reference)],
            &[("price", current)],
            &DriftConfig::default(),
        )
        .unwrap()
    }

    #[test]
    fn the_rule_in_every_case() {
        let rule = RetrainRule::default();
        let drifted = report(0.5);
        let steady = report(0.0);
        assert!(drifted.drifted && !steady.drifted);

        let first = rule.decide(&Situation {
            new_rows: 12_000,
            has_production_model: false,
            drift: None,
        });
        assert!(first.trains());
        assert!(first.reason().contains("no production model"), "{first:?}");

        let too_few = rule.decide(&Situation {
            new_rows: 9_999,
            has_production_model: false,
            drift: Some(&drifted),
        });
        assert!(!too_few.trains());
        assert!(too_few.reason().contains("too few rows"), "{too_few:?}");

        let drift = rule.decide(&Situation {
            new_rows: 10_000,
            has_production_model: true,
            drift: Some(&drifted),
        });
        assert!(drift.trains());
        assert!(drift.reason().contains("drift (price D=0.500"), "{drift:?}");

        let no_drift = rule.decide(&Situation {
            new_rows: 50_000,
            has_production_model: true,
            drift: Some(&steady),
        });
        assert!(!no_drift.trains());
        assert!(no_drift.reason().starts_with("no drift"), "{no_drift:?}");
    }
}
