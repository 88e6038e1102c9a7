//! The process stage's settings, read once at start from the environment.

use std::time::Duration;

use appraise_core::config::{self, ConfigError};

use crate::rules::CleaningRules;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessConfig {
    /// The thresholds of the cleaning rules (`PROCESS_*`).
    pub rules: CleaningRules,
    /// `STAGE_PENDING_WINDOW_SECS` (default 600): how long after its manifest was written an
    /// event for a batch that is not in `ops.batches` yet is answered "not visible yet" (503,
    /// retried) rather than rejected for good (400).
    pub pending_window: Duration,
}

impl ProcessConfig {
    pub const DEFAULT_PENDING_WINDOW: Duration = Duration::from_secs(600);

    /// The cleaning rules' variables and `STAGE_PENDING_WINDOW_SECS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(ProcessConfig {
            rules: CleaningRules::from_env()?,
            pending_window: config::seconds(
                "STAGE_PENDING_WINDOW_SECS",
                Self::DEFAULT_PENDING_WINDOW,
            )?,
        })
    }
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            rules: CleaningRules::default(),
            pending_window: Self::DEFAULT_PENDING_WINDOW,
        }
    }
}
