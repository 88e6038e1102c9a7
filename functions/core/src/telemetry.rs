//! Logs and metrics, set up once per process.
//!
//! Logs are `tracing` events written to stderr, in the format and at the level
//! [`LogSettings::from_vars`] reads from the environment:
//!
//! - format: `LOG_FORMAT` (`json` or `text`) when set; otherwise Lambda's
//!   `AWS_LAMBDA_LOG_FORMAT` (`JSON` or `Text`, the function's logging configuration); otherwise
//!   one JSON object per line on Lambda (CloudWatch indexes JSON fields) and human-readable
//!   lines elsewhere;
//! - level: `RUST_LOG` (an `EnvFilter` directive such as `info,appraise_train=debug`) when
//!   set, so a deployment can always be more specific; otherwise Lambda's
//!   `AWS_LAMBDA_LOG_LEVEL` (`TRACE` and `DEBUG` for appraise's own crates only, the others
//!   staying at `info`: at trace the AWS request signer logs what it signs, session token
//!   included; `INFO`, `WARN`, `ERROR`, or `FATAL`, which is `error`: tracing has no level
//!   above it); otherwise `info`.
//!
//! A value that is not one of these is reported (a warning naming the variable, once the
//! logger is up) and the next source in its list is used: a logging setting never stops a
//! function. Metrics go through the `metrics` facade into a
//! Prometheus recorder whose text exposition [`render_metrics`] returns for `GET /metrics`.
//!
//! On Lambda nobody scrapes `/metrics`, and a frozen execution environment could not answer
//! anyway: there the same metrics also go to an [`crate::emf::EmfRecorder`], and
//! the runtime calls [`flush_emf`] at the end of every invocation, which writes CloudWatch
//! embedded-metric-format lines to stdout (CloudWatch Logs turns them into metrics in the
//! namespace `$APPRAISE_METRICS_NAMESPACE`, default `appraise`).

use std::{sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::{
    emf::{EmfHandle, EmfRecorder},
    platform::on_lambda,
};

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();
static EMF: OnceLock<EmfHandle> = OnceLock::new();

/// Histogram buckets in seconds, from 50 µs to 10 min: wide enough for both a prediction and a
/// training run.
const SECONDS_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// How logs are written: the format and the level filter, and what was wrong with the
/// variables they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSettings {
    /// One JSON object per line (otherwise compact text).
    pub json: bool,
    /// An `EnvFilter` directive, e.g. `info` or `warn,appraise_ingest=debug`.
    pub filter: String,
    /// One sentence per variable whose value was not understood (and so not used).
    pub warnings: Vec<String>,
}

impl LogSettings {
    /// The settings from environment variables as `var` reads them (unset or blank: `None`),
    /// for a process that runs on Lambda or not; see the module documentation for the order.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, lambda: bool) -> LogSettings {
        let mut warnings = Vec::new();
        let mut format = |name: &str| -> Option<bool> {
            let value = var(name)?;
            match value.trim().to_ascii_lowercase().as_str() {
                "json" => Some(true),
                "text" => Some(false),
                _ => {
                    warnings.push(format!("{name}={value:?} is not JSON or Text; ignored"));
                    None
                }
            }
        };
        let json = format("LOG_FORMAT")
            .or_else(|| format("AWS_LAMBDA_LOG_FORMAT"))
            .unwrap_or(lambda);
        let rust_log = var("RUST_LOG").filter(|value| match EnvFilter::try_new(value) {
            Ok(_) => true,
            Err(error) => {
                warnings.push(format!(
                    "RUST_LOG={value:?} is not a filter ({error}); ignored"
                ));
                false
            }
        });
        let lambda_level = var("AWS_LAMBDA_LOG_LEVEL").and_then(|value| {
            // Below info, only appraise's own crates: at trace the AWS signer logs the request it
            // signs, session token included.
            let level = match value.trim().to_ascii_uppercase().as_str() {
                "TRACE" => "info,appraise=trace",
                "DEBUG" => "info,appraise=debug",
                "INFO" => "info",
                "WARN" => "warn",
                "ERROR" | "FATAL" => "error",
                _ => {
                    warnings.push(format!(
                        "AWS_LAMBDA_LOG_LEVEL={value:?} is not one of TRACE, DEBUG, INFO, \
                         WARN, ERROR, FATAL; ignored"
                    ));
                    return None;
                }
            };
            Some(level.to_owned())
        });
        LogSettings {
            json,
            filter: rust_log
                .or(lambda_level)
                .unwrap_or_else(|| "info".to_owned()),
            warnings,
        }
    }
}

/// Installs the log subscriber and the metrics recorder. Idempotent: calling it again (e.g. from
/// several tests in one process) keeps what the first call installed.
pub fn init(service: &'static str) {
    let settings = LogSettings::from_vars(
        |name| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        },
        on_lambda(),
    );
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // `try_init` fails only when a subscriber is already installed, which is fine.
    let installed = if settings.json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().with_ansi(false).try_init()
    };
    if installed.is_ok() {
        for warning in &settings.warnings {
            tracing::warn!("{warning}");
        }
    }

    PROMETHEUS.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .add_global_label("service", service)
            .set_buckets(SECONDS_BUCKETS)
            .expect("bucket list is non-empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests); rendering then shows ours empty.
        if on_lambda() {
            let namespace = std::env::var("APPRAISE_METRICS_NAMESPACE")
                .ok()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| "appraise".to_owned());
            let (emf, emf_handle) = EmfRecorder::new(&namespace, service);
            let fanout = metrics_util::layers::FanoutBuilder::default()
                .add_recorder(recorder)
                .add_recorder(emf)
                .build();
            if metrics::set_global_recorder(fanout).is_ok() {
                let _ = EMF.set(emf_handle);
            }
        } else {
            let _ = metrics::set_global_recorder(recorder);
        }
        handle
    });
}

/// Writes the metrics recorded since the previous flush to stdout as CloudWatch EMF lines;
/// does nothing off Lambda. The Lambda runtime calls it before answering each invocation
/// (after the answer, the execution environment may be frozen before anything is written).
pub fn flush_emf() {
    if let Some(handle) = EMF.get() {
        handle.flush_to_stdout();
    }
}

/// The Prometheus text exposition of every metric recorded so far.
pub fn render_metrics() -> String {
    match PROMETHEUS.get() {
        Some(handle) => {
            handle.run_upkeep();
            let mut text = handle.render();
            text.push_str(&process_metrics());
            text
        }
        None => process_metrics(),
    }
}

/// The process's own metrics, read from `/proc/self` (Linux; empty elsewhere), with the names
/// Prometheus client libraries use.
fn process_metrics() -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return out;
    };
    // Fields after the command name (which may contain spaces) start at field 3.
    let Some(fields) = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect::<Vec<_>>())
    else {
        return out;
    };
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    if let Some(seconds) = crate::proc_stats::cpu_seconds("self") {
        let _ = writeln!(
            out,
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {seconds}"
        );
    }
    if let Some(rss_pages) = field(24) {
        let _ = writeln!(
            out,
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}",
            rss_pages * 4096.0
        );
    }
    if let Some(threads) = field(20) {
        let _ = writeln!(
            out,
            "# TYPE process_threads gauge\nprocess_threads {threads}"
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(
            out,
            "# TYPE process_open_fds gauge\nprocess_open_fds {}",
            fds.count()
        );
    }
    out
}

/// Runs the recorder's housekeeping (histogram bucket rotation) every few seconds; spawned by the
/// HTTP runtime so long-lived servers do not accumulate stale samples.
pub(crate) async fn upkeep_forever() {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        if let Some(handle) = PROMETHEUS.get() {
            handle.run_upkeep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)], lambda: bool) -> LogSettings {
        LogSettings::from_vars(
            |name| {
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            },
            lambda,
        )
    }

    #[test]
    fn the_format_follows_log_format_then_lambdas_setting_then_the_platform() {
        assert!(!settings(&[], false).json, "text off Lambda");
        assert!(settings(&[], true).json, "JSON on Lambda");
        assert!(!settings(&[("AWS_LAMBDA_LOG_FORMAT", "Text")], true).json);
        assert!(settings(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")], false).json);
        let both = [("LOG_FORMAT", "text"), ("AWS_LAMBDA_LOG_FORMAT", "JSON")];
        assert!(!settings(&both, true).json, "LOG_FORMAT wins");
        let bad = settings(&[("AWS_LAMBDA_LOG_FORMAT", "xml")], true);
        assert!(bad.json, "an unknown format falls back to the platform's");
        assert_eq!(bad.warnings.len(), 1);
        assert!(bad.warnings[0].contains("AWS_LAMBDA_LOG_FORMAT"), "{bad:?}");
    }

    #[test]
    fn lambdas_log_levels_map_to_filters_and_rust_log_wins() {
        for (level, filter) in [
            ("TRACE", "info,appraise=trace"),
            ("DEBUG", "info,appraise=debug"),
            ("INFO", "info"),
            ("WARN", "warn"),
            ("ERROR", "error"),
            ("FATAL", "error"),
            ("warn", "warn"),
        ] {
            let got = settings(&[("AWS_LAMBDA_LOG_LEVEL", level)], true);
            assert_eq!(got.filter, filter, "{level}");
            assert!(got.warnings.is_empty());
        }
        assert_eq!(settings(&[], true).filter, "info");
        let both = [
            ("RUST_LOG", "warn,appraise_train=debug"),
            ("AWS_LAMBDA_LOG_LEVEL", "ERROR"),
        ];
        assert_eq!(settings(&both, true).filter, "warn,appraise_train=debug");
        let bad = settings(&[("AWS_LAMBDA_LOG_LEVEL", "LOUD")], true);
        assert_eq!(bad.filter, "info");
        assert!(bad.warnings[0].contains("AWS_LAMBDA_LOG_LEVEL"), "{bad:?}");
        let bad_rust_log = [("RUST_LOG", "=="), ("AWS_LAMBDA_LOG_LEVEL", "DEBUG")];
        let bad = settings(&bad_rust_log, true);
        assert_eq!(
            bad.filter, "info,appraise=debug",
            "a broken RUST_LOG gives way"
        );
        assert!(bad.warnings[0].contains("RUST_LOG"), "{bad:?}");
    }
}
