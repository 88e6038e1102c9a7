//! Logs and metrics, set up once per process.
//!
//! Logs are `tracing` events written to stderr: human-readable by default, one JSON object per
//! line when `LOG_FORMAT=json` (and always on Lambda, where CloudWatch indexes JSON fields).
//! `RUST_LOG` filters them (default `info`). Metrics go through the `metrics` facade into a
//! Prometheus recorder whose text exposition [`render_metrics`] returns for `GET /metrics`.
//!
//! On Lambda nobody scrapes `/metrics`, and a frozen execution environment could not answer
//! anyway: there the same metrics also go to an [`EmfRecorder`](crate::emf::EmfRecorder), and
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

/// Installs the log subscriber and the metrics recorder. Idempotent: calling it again (e.g. from
/// several tests in one process) keeps what the first call installed.
pub fn init(service: &'static str) {
    let json =
        std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json")) || on_lambda();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // `try_init` fails only when a subscriber is already installed, which is fine.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().with_ansi(false).try_init()
    };

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
    // utime + stime are in clock ticks; Linux reports them at 100 Hz (USER_HZ).
    if let (Some(user), Some(system)) = (field(14), field(15)) {
        let _ = writeln!(
            out,
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}",
            (user + system) / 100.0
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
