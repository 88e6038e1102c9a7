//! Typed configuration read from environment variables.
//!
//! Every function is configured the same way on Lambda, Knative and the local harness: by
//! environment variables. These helpers turn a variable into a typed value and, when that
//! fails, into a [`ConfigError`] that names the variable and says what was wrong with it, so a
//! misconfigured deployment stops at start with a message a human can act on.
//!
//! Secret variables (tokens, passwords, secret keys) are read with [`required_secret`] and
//! [`maybe_secret`]: their errors name the variable and the reason but never show the value,
//! since start-up errors end up in logs.

use std::{fmt::Display, str::FromStr, time::Duration};

/// A variable that is missing or does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is required but not set{hint}")]
    Missing { name: String, hint: String },
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    #[error("environment variable {name} (value not shown) is invalid: {reason}")]
    InvalidSecret { name: String, reason: String },
}

impl ConfigError {
    /// An invalid value with a reason written by the caller (e.g. a range check).
    pub fn invalid(name: &str, value: impl Display, reason: impl Display) -> Self {
        ConfigError::Invalid {
            name: name.to_owned(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
}

fn raw(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Whether an error may show the value it is about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Value,
    NotTheValue,
}

fn parse<T>(name: &str, value: String, shown: Shown) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    value.trim().parse().map_err(|error: T::Err| match shown {
        Shown::Value => ConfigError::invalid(name, &value, error),
        Shown::NotTheValue => ConfigError::InvalidSecret {
            name: name.to_owned(),
            reason: error.to_string(),
        },
    })
}

fn read_required<T>(name: &str, hint: &str, shown: Shown) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match raw(name) {
        Some(value) => parse(name, value, shown),
        None => Err(ConfigError::Missing {
            name: name.to_owned(),
            hint: if hint.is_empty() {
                String::new()
            } else {
                format!(" ({hint})")
            },
        }),
    }
}

/// A variable that must be set. `hint` says what it is for, e.g. "the PostgreSQL URL".
pub fn required<T>(name: &str, hint: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    read_required(name, hint, Shown::Value)
}

/// Like [`required`] for a secret: an error names the variable and the reason, not the value.
pub fn required_secret<T>(name: &str, hint: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    read_required(name, hint, Shown::NotTheValue)
}

/// A variable with a default used when it is unset or empty.
pub fn optional<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    raw(name).map_or(Ok(default), |value| parse(name, value, Shown::Value))
}

/// A variable that may be absent, without a default.
pub fn maybe<T>(name: &str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    raw(name)
        .map(|value| parse(name, value, Shown::Value))
        .transpose()
}

/// Like [`maybe`] for a secret: an error names the variable and the reason, not the value.
pub fn maybe_secret<T>(name: &str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    raw(name)
        .map(|value| parse(name, value, Shown::NotTheValue))
        .transpose()
}

/// A duration given in (possibly fractional) seconds, e.g. `SOURCE_TIMEOUT_SECS=2.5`.
pub fn seconds(name: &str, default: Duration) -> Result<Duration, ConfigError> {
    match maybe::<f64>(name)? {
        None => Ok(default),
        Some(secs) if secs.is_finite() && secs >= 0.0 => Ok(Duration::from_secs_f64(secs)),
        Some(secs) => Err(ConfigError::invalid(
            name,
            secs,
            "must be a non-negative number of seconds",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable_and_the_reason() {
        // Variable names unique to this test so parallel tests cannot interfere.
        unsafe { std::env::set_var("APPRAISE_TEST_BAD_NUMBER", "twelve") };
        let error = optional::<u32>("APPRAISE_TEST_BAD_NUMBER", 1).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("APPRAISE_TEST_BAD_NUMBER"), "{text}");
        assert!(text.contains("twelve"), "{text}");

        let error = required::<String>("APPRAISE_TEST_UNSET", "the answer").unwrap_err();
        assert!(error.to_string().contains("APPRAISE_TEST_UNSET"));
        assert!(error.to_string().contains("the answer"));

        unsafe { std::env::set_var("APPRAISE_TEST_NEG_SECS", "-1") };
        assert!(seconds("APPRAISE_TEST_NEG_SECS", Duration::ZERO).is_err());
        assert_eq!(
            optional::<u32>("APPRAISE_TEST_UNSET_TOO", 7).unwrap(),
            7,
            "unset falls back to the default"
        );
    }

    #[test]
    fn a_secret_that_does_not_parse_is_named_but_not_shown() {
        unsafe { std::env::set_var("APPRAISE_TEST_BAD_SECRET", "hunter2-not-a-number") };
        for error in [
            required_secret::<u32>("APPRAISE_TEST_BAD_SECRET", "a secret").unwrap_err(),
            maybe_secret::<u32>("APPRAISE_TEST_BAD_SECRET").unwrap_err(),
        ] {
            let text = error.to_string();
            assert!(text.contains("APPRAISE_TEST_BAD_SECRET"), "{text}");
            assert!(text.contains("value not shown"), "{text}");
            assert!(text.contains("invalid digit"), "the reason is kept: {text}");
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
        }
        let error = required_secret::<String>("APPRAISE_TEST_UNSET_SECRET", "a token").unwrap_err();
        assert!(error.to_string().contains("APPRAISE_TEST_UNSET_SECRET"));
    }
}
