//! `appraise`: runs the whole system on one machine.
//!
//! `appraise run` starts PostgreSQL (a throw-away cluster, or `DATABASE_URL`), the embedded S3
//! server (or `S3_ENDPOINT`), the batch `source` and the stage functions as child processes in
//! their HTTP mode, then plays the schedule: it fires `ingest` until the source has nothing
//! left, prints what each firing did, and stops everything it started, on Ctrl-C too.
//!
//! `appraise bridge` and `appraise job` are the Knative deployment's two adapters (MinIO webhooks
//! to CloudEvents, and a JobSink's event file through a function): see [`appraise_local::bridge`].

mod harness;

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "appraise",
    about = "Runs the appraise pipeline on this machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drains the batch source through the pipeline and reports what each stage did.
    Run(harness::RunArgs),
    /// Knative: turns MinIO webhook bodies into CloudEvents sent to `$K_SINK` (serves `$PORT`).
    Bridge,
    /// Knative JobSink: runs one event file through a function binary, then stops it.
    Job(JobArgs),
}

#[derive(clap::Args, Clone)]
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
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            tokio::select! {
                result = harness::run(args) => result,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("\ninterrupted: stopping everything this run started");
                    Ok(())
                }
            }
        }
        Command::Bridge => appraise_local::bridge::serve().await,
        Command::Job(args) => {
            appraise_core::telemetry::init("job");
            let outcome = appraise_local::bridge::run_job(&appraise_local::bridge::JobRun {
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
