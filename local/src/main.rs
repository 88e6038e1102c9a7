//! `appraise`: runs the whole system on one machine.
//!
//! `appraise run` starts PostgreSQL (a throw-away cluster, or `DATABASE_URL`), the embedded S3
//! server (or `S3_ENDPOINT`), the batch `source` and the stage functions as child processes in
//! their HTTP mode, then plays the schedule: it fires `ingest` until the source has nothing
//! left, prints what each firing did, and stops everything it started, on Ctrl-C too.

use std::{
    fs::File,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use appraise_core::objects::{ObjectStore, ObjectStoreConfig};
use appraise_local::{
    postgres::Postgres,
    processes::{self, FunctionProcess},
    s3_server::{Delivery, NotificationRule, S3Server},
};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

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
    Run(RunArgs),
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Multiplies every batch size of the built-in generator (1.0 = the course API's sizes).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Seed of the built-in generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Serve this Kaggle-format CSV instead of generated data.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Records kept from the first batch.
    #[arg(long, default_value_t = 145_000)]
    first_sample: usize,
    /// Records kept from each later batch.
    #[arg(long, default_value_t = 10_000)]
    later_sample: usize,
    /// Seconds between schedule firings (0: fire again as soon as one is done).
    #[arg(long, default_value_t = 0.0)]
    interval_secs: f64,
    /// Stop after this many firings even if the source has more.
    #[arg(long)]
    max_firings: Option<u32>,
    /// Where run files go: the S3 server's objects and the functions' logs.
    #[arg(long, default_value = ".appraise")]
    work_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            tokio::select! {
                result = run(args) => result,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("\ninterrupted: stopping everything this run started");
                    Ok(())
                }
            }
        }
    }
}

/// One batch's line in the report.
struct BatchLine {
    batch: i64,
    received: i64,
    sampled: i64,
    flagged: i64,
    stored: i64,
    seconds: f64,
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        bail!("--scale must be a positive number, got {}", args.scale);
    }
    let started = Instant::now();
    let run_dir = args.work_dir.join(format!(
        "run-{}",
        time::OffsetDateTime::now_utc().unix_timestamp()
    ));
    let log_dir = run_dir.join("logs");
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let step = |message: &str| println!("==> {message}");

    // PostgreSQL.
    let (_postgres, database_url) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            step("PostgreSQL: using DATABASE_URL");
            (None, url)
        }
        _ => {
            step("PostgreSQL: starting a throw-away cluster");
            let cluster = tokio::task::spawn_blocking(Postgres::start).await??;
            let url = cluster.create_database("appraise").await?;
            println!("    {url}");
            (Some(cluster), url)
        }
    };

    // The bucket, and who hears about new objects in it.
    let rules = vec![NotificationRule {
        prefix: "raw/".into(),
        suffix: "manifest.json".into(),
        // `process` takes raw/ events once it exists; until then the harness only reports them.
        target: None,
    }];
    let (_s3, s3_env, mut deliveries) = match std::env::var("S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            step("S3: using S3_ENDPOINT (its own notifications apply)");
            let config = ObjectStoreConfig::from_env()?;
            ObjectStore::new(&config).ensure_bucket().await?;
            let env = [
                "S3_ENDPOINT",
                "S3_BUCKET",
                "AWS_REGION",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
            ]
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
            .collect::<Vec<_>>();
            (None, env, None)
        }
        _ => {
            let root = run_dir.join("s3");
            let server = S3Server::start(root.clone(), 0, rules).await?;
            step(&format!(
                "S3: embedded server at {} (objects in {})",
                server.endpoint(),
                root.display()
            ));
            let env = server.env("appraise");
            ObjectStore::new(&server.object_store_config("appraise"))
                .ensure_bucket()
                .await?;
            let deliveries = server.deliveries();
            (Some(server), env, Some(deliveries))
        }
    };

    // The batch source and the functions.
    let log = |name: &str| -> anyhow::Result<Stdio> {
        Ok(File::create(log_dir.join(format!("{name}.log")))?.into())
    };
    let mut source_env = vec![
        ("SOURCE_SCALE".to_owned(), args.scale.to_string()),
        ("SOURCE_SEED".to_owned(), args.seed.to_string()),
    ];
    if let Some(csv) = &args.csv {
        let csv = std::fs::canonicalize(csv).with_context(|| format!("--csv {}", csv.display()))?;
        source_env.push(("SOURCE_CSV".to_owned(), csv.display().to_string()));
    }
    let source = FunctionProcess::start(
        "source",
        &processes::binary("source")?,
        &source_env,
        log("source")?,
    )
    .await?;
    step(&format!("source: batch API at {}", source.url()));

    let mut ingest_env = s3_env.clone();
    ingest_env.extend([
        ("DATABASE_URL".to_owned(), database_url.clone()),
        ("SOURCE_URL".to_owned(), source.url()),
        (
            "INGEST_FIRST_SAMPLE".to_owned(),
            args.first_sample.to_string(),
        ),
        (
            "INGEST_LATER_SAMPLE".to_owned(),
            args.later_sample.to_string(),
        ),
    ]);
    let ingest = FunctionProcess::start(
        "ingest",
        &processes::binary("ingest")?,
        &ingest_env,
        log("ingest")?,
    )
    .await?;
    step(&format!("ingest: listening at {}", ingest.url()));
    println!("    logs in {}", log_dir.display());

    // The schedule.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30 * 60))
        .build()?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("template is valid"),
    );
    spinner.enable_steady_tick(Duration::from_millis(120));
    let mut lines: Vec<BatchLine> = Vec::new();
    let mut firing = 0u32;
    loop {
        if args.max_firings.is_some_and(|max| firing >= max) {
            say(
                &spinner,
                format!("stopping after {firing} firings (--max-firings)"),
            );
            break;
        }
        firing += 1;
        spinner.set_message(format!(
            "schedule firing {firing}: ingest is fetching a batch"
        ));
        let tick_started = Instant::now();
        let report = fire_schedule(&client, &ingest.url(), firing).await?;
        let seconds = tick_started.elapsed().as_secs_f64();
        let result = &report["results"][0];
        match result["outcome"].as_str() {
            Some("stored") => {
                let line = BatchLine {
                    batch: result["batch_number"].as_i64().unwrap_or(-1),
                    received: result["rows_received"].as_i64().unwrap_or(0),
                    sampled: result["rows_sampled"].as_i64().unwrap_or(0),
                    flagged: result["rows_flagged"].as_i64().unwrap_or(0),
                    stored: result["rows_stored"].as_i64().unwrap_or(0),
                    seconds,
                };
                say(
                    &spinner,
                    format!(
                        "ingest  batch {:>3}  received {:>9}  sampled {:>9}  flagged {:>7}  stored {:>9}  {:>6.1} s",
                        line.batch,
                        thousands(line.received),
                        thousands(line.sampled),
                        thousands(line.flagged),
                        thousands(line.stored),
                        line.seconds
                    ),
                );
                if let Some(skipped) = result["skipped_batches"].as_array()
                    && !skipped.is_empty()
                {
                    say(
                        &spinner,
                        format!(
                            "        recovered a batch lost in flight (re-fetched and dropped: {skipped:?})"
                        ),
                    );
                }
                lines.push(line);
            }
            Some("exhausted") => {
                say(&spinner, "ingest  the source has nothing left");
                break;
            }
            _ => say(&spinner, format!("ingest  {result}")),
        }
        if let Some(deliveries) = deliveries.as_mut() {
            report_deliveries(&spinner, deliveries);
        }
        if args.interval_secs > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(args.interval_secs)).await;
        }
    }
    // Give the last notification a moment to be dispatched, then report it.
    if let Some(deliveries) = deliveries.as_mut() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        report_deliveries(&spinner, deliveries);
    }
    spinner.finish_and_clear();

    print_summary(&lines, started.elapsed());
    ingest.stop().await;
    source.stop().await;
    Ok(())
}

/// Sends one schedule firing to ingest the way a Knative PingSource does (a binary-mode
/// CloudEvent) and returns ingest's report.
async fn fire_schedule(client: &reqwest::Client, url: &str, firing: u32) -> anyhow::Result<Value> {
    let id = format!("harness-{}-{firing}", std::process::id());
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let response = client
        .post(url)
        .header("ce-specversion", "1.0")
        .header("ce-type", appraise_core::events::PING_CLOUD_EVENT_TYPE)
        .header("ce-source", "appraise-local/schedule")
        .header("ce-id", &id)
        .header("ce-time", now)
        .header("content-type", "application/json")
        .body(json!({ "schedule": "ingest" }).to_string())
        .send()
        .await
        .context("calling ingest")?;
    let status = response.status();
    let body: Value = response.json().await.context("reading ingest's report")?;
    if !status.is_success() {
        bail!("ingest failed (HTTP {status}): {}", body["error"]);
    }
    Ok(body)
}

/// Prints a line above the spinner (and plainly when output is not a terminal, where
/// indicatif hides the spinner and everything it prints).
fn say(spinner: &ProgressBar, line: impl AsRef<str>) {
    spinner.suspend(|| println!("{}", line.as_ref()));
}

fn report_deliveries(
    spinner: &ProgressBar,
    deliveries: &mut tokio::sync::broadcast::Receiver<Delivery>,
) {
    while let Ok(delivery) = deliveries.try_recv() {
        match &delivery.target {
            None => say(
                spinner,
                format!("event   s3:ObjectCreated:Put {}", delivery.key),
            ),
            Some(target) => say(
                spinner,
                format!(
                    "event   {} -> {target}: HTTP {}",
                    delivery.key,
                    delivery
                        .status
                        .map_or("unreachable".to_owned(), |s| s.to_string())
                ),
            ),
        }
    }
}

fn print_summary(lines: &[BatchLine], elapsed: Duration) {
    println!();
    println!("batch  received    sampled    flagged     stored   seconds");
    for line in lines {
        println!(
            "{:>5} {:>9} {:>10} {:>10} {:>10} {:>9.1}",
            line.batch,
            thousands(line.received),
            thousands(line.sampled),
            thousands(line.flagged),
            thousands(line.stored),
            line.seconds
        );
    }
    let total = |f: fn(&BatchLine) -> i64| lines.iter().map(f).sum::<i64>();
    println!(
        "total {:>9} {:>10} {:>10} {:>10} {:>9.1}",
        thousands(total(|l| l.received)),
        thousands(total(|l| l.sampled)),
        thousands(total(|l| l.flagged)),
        thousands(total(|l| l.stored)),
        elapsed.as_secs_f64()
    );
}

fn thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if value < 0 { format!("-{out}") } else { out }
}
