//! How long the current invocation may still run, for stage code that must stop in time.
//!
//! The runtime knows when an invocation ends: on Lambda from the invocation's deadline
//! (`lambda-runtime-deadline-ms`, the function's timeout), over HTTP from `STAGE_DEADLINE_SECS`
//! when it is set (e.g. Knative's request timeout), counted from the request's arrival. It runs
//! the stage [`within`] that deadline minus a safety margin (`STAGE_DEADLINE_MARGIN_SECS`,
//! default 20 s) left for the stage to finish after its last long wait: storing what it got,
//! committing, answering. Stage code asks [`remaining`] and never learns the platform; outside
//! such a scope (tests, a platform with no limit) there is no deadline and `remaining` is `None`.
//!
//! The deadline is a tokio task-local: it holds for the stage's own task, not for tasks the
//! stage spawns.

use std::{
    future::Future,
    time::{Duration, Instant, SystemTime},
};

use crate::config::{self, ConfigError};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The default of `STAGE_DEADLINE_MARGIN_SECS`.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(20);

/// Runs `work` with `deadline` as the time by which it must be done; with `None`, without one.
pub async fn within<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    match deadline {
        Some(deadline) => DEADLINE.scope(deadline, work).await,
        None => work.await,
    }
}

/// Time left before the current invocation's deadline (zero once it has passed); `None` when
/// the invocation has no deadline.
pub fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// How the runtime turns a platform's limits into the deadline a stage sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeadlinePolicy {
    /// Left free before the platform's deadline for the stage to finish its work.
    pub margin: Duration,
    /// Over HTTP: how long a request may take (`STAGE_DEADLINE_SECS`); `None` for no limit.
    pub http_limit: Option<Duration>,
}

impl DeadlinePolicy {
    /// `STAGE_DEADLINE_MARGIN_SECS` (default 20) and `STAGE_DEADLINE_SECS` (unset: no limit
    /// over HTTP), which must be longer than the margin.
    pub fn from_env() -> Result<Self, ConfigError> {
        let margin = config::seconds("STAGE_DEADLINE_MARGIN_SECS", DEFAULT_MARGIN)?;
        let http_limit = match config::maybe::<f64>("STAGE_DEADLINE_SECS")? {
            None => None,
            Some(secs)
                if secs > margin.as_secs_f64() && Duration::try_from_secs_f64(secs).is_ok() =>
            {
                Duration::try_from_secs_f64(secs).ok()
            }
            Some(secs) => {
                return Err(ConfigError::invalid(
                    "STAGE_DEADLINE_SECS",
                    secs,
                    format!(
                        "must be a number of seconds longer than the margin \
                         STAGE_DEADLINE_MARGIN_SECS ({} s)",
                        margin.as_secs_f64()
                    ),
                ));
            }
        };
        Ok(DeadlinePolicy { margin, http_limit })
    }

    /// The stage's deadline for a Lambda invocation that must end by `platform_deadline`;
    /// `None` when that is already past as the invocation arrives, which Lambda never does but
    /// emulators may (`cargo lambda watch` 1.9 sends its timeout, `600000`, where the runtime
    /// API has a time in milliseconds since 1970): no deadline rather than none left.
    pub fn for_lambda(&self, platform_deadline: SystemTime) -> Option<Instant> {
        let left = platform_deadline.duration_since(SystemTime::now()).ok()?;
        Some(Instant::now() + left.saturating_sub(self.margin))
    }

    /// The stage's deadline for an HTTP request that arrived at `arrived`, if there is a limit.
    pub fn for_http(&self, arrived: Instant) -> Option<Instant> {
        self.http_limit
            .map(|limit| arrived + limit.saturating_sub(self.margin))
    }
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        DeadlinePolicy {
            margin: DEFAULT_MARGIN,
            http_limit: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remaining_is_none_outside_a_deadline_and_counts_down_inside() {
        assert_eq!(remaining(), None);
        let left = within(Some(Instant::now() + Duration::from_secs(60)), async {
            remaining()
        })
        .await
        .unwrap();
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(30));
        let past = within(Some(Instant::now()), async { remaining() }).await;
        assert_eq!(past, Some(Duration::ZERO), "a passed deadline leaves zero");
        assert_eq!(within(None, async { remaining() }).await, None);
    }

    #[test]
    fn the_margin_is_taken_off_the_platform_deadline() {
        let policy = DeadlinePolicy {
            margin: Duration::from_secs(20),
            http_limit: Some(Duration::from_secs(300)),
        };
        let now = Instant::now();
        let lambda = policy
            .for_lambda(SystemTime::now() + Duration::from_secs(300))
            .unwrap();
        let after = Instant::now();
        // 300 s from a moment between `now` and `after`, less the 20 s margin.
        assert!(lambda <= after + Duration::from_secs(280), "{lambda:?}");
        assert!(lambda > now + Duration::from_secs(270), "{lambda:?}");
        // A platform deadline closer than the margin leaves nothing.
        let late = policy
            .for_lambda(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        assert!(late <= Instant::now());
        // A deadline already past on arrival is no deadline (an emulator's, not Lambda's).
        let bogus = SystemTime::UNIX_EPOCH + Duration::from_millis(600_000);
        assert_eq!(policy.for_lambda(bogus), None);
        assert_eq!(policy.for_http(now), Some(now + Duration::from_secs(280)));
        assert_eq!(DeadlinePolicy::default().for_http(now), None);
    }

    #[test]
    fn an_http_limit_within_the_margin_is_refused_naming_the_variable() {
        // Variable names are process-wide; this test is the only one setting these.
        unsafe { std::env::set_var("STAGE_DEADLINE_SECS", "10") };
        let error = DeadlinePolicy::from_env().unwrap_err().to_string();
        unsafe { std::env::remove_var("STAGE_DEADLINE_SECS") };
        assert!(error.contains("STAGE_DEADLINE_SECS"), "{error}");
        assert!(error.contains("margin"), "{error}");
    }
}
