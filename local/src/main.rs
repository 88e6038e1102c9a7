//! `appraise`: runs the whole system on one machine.
//!
//! `appraise run` starts PostgreSQL (a throw-away cluster, or `DATABASE_URL`), the embedded S3
//! server (or `S3_ENDPOINT`), the batch `source` and the stage functions as child processes in
//! their HTTP mode, then plays the schedule: it fires `ingest` until the source has nothing
//! left, prints what each firing did, and stops everything it started, on Ctrl-C too.

mod harness;

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
    }
}
