//! The `bridge` binary: `bridge serve` (the default) turns MinIO webhook bodies into
//! CloudEvents sent to `$K_SINK` and stores Knative's dead letters, serving `$PORT`;
//! `bridge job` runs a JobSink's event file through a function binary, then stops it. See the
//! library's docs.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bridge",
    about = "Knative's adapters between the platform and the appraise functions"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Turns MinIO webhook bodies into CloudEvents sent to `$K_SINK` and stores Knative's dead
    /// letters (serves `$PORT`).
    Serve,
    /// Knative JobSink: runs one event file through a function binary, then stops it.
    Job(JobArgs),
}

#[derive(clap::Args)]
struct JobArgs {
    /// The CloudEvent, in structured JSON mode (a JobSink mounts it here).
    #[arg(long, default_value = "/etc/jobsink-event/event")]
    event_file: PathBuf,
    /// The port the function listens on while it runs.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Seconds the function keeps serving `/metrics` after the event, for Prometheus.
    #[arg(long, default_value_t = 0.0)]
    linger_secs: f64,
    /// The function binary, e.g. `/usr/local/bin/train`.
    binary: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => appraise_bridge::serve().await,
        Command::Job(args) => {
            appraise_core::telemetry::init("job");
            let outcome = appraise_bridge::run_job(&appraise_bridge::JobRun {
                event_file: args.event_file,
                binary: args.binary,
                port: args.port,
                linger: Duration::from_secs_f64(args.linger_secs.max(0.0)),
            })
            .await?;
            println!("{outcome:?}");
            std::process::exit(outcome.exit_code());
        }
    }
}
