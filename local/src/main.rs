//! `appraise`: runs the whole system on one machine.
//!
//! `appraise run` starts PostgreSQL (a throw-away cluster, or `DATABASE_URL`), the embedded S3
//! server (or `S3_ENDPOINT`), the batch `source` and the stage functions as child processes in
//! their HTTP mode, then plays the schedule: it fires `ingest` until the source has nothing
//! left, prints what each firing did, and stops everything it started, on Ctrl-C too.
//!
//! `appraise bridge` and `appraise job` are the Knative deployment's two adapters (MinIO webhooks
//! to CloudEvents, and a JobSink's event file through a function): see [`appraise_local::bridge`].

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use appraise_core::objects::{ObjectStore, ObjectStoreConfig};
use appraise_local::{
    postgres::Postgres,
    processes::FunctionProcess,
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

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Multiplies every batch size of the built-in generator (1.0 = the course API's sizes).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Seed of the built-in generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Serve this Kaggle-format CSV instead of generated data.
    #[arg(long, conflicts_with = "source_url")]
    csv: Option<PathBuf>,
    /// Take batches from this batch API (e.g. the course's) instead of starting `source`.
    #[arg(long, value_name = "URL")]
    source_url: Option<String>,
    /// `group_number` sent to the batch API.
    #[arg(long, default_value_t = 9)]
    group: u32,
    /// `day` sent to the batch API (e.g. Tuesday).
    #[arg(long)]
    day: Option<String>,
    /// Records kept from the first batch.
    #[arg(long, default_value_t = 145_000)]
    first_sample: usize,
    /// Records kept from each later batch.
    #[arg(long, default_value_t = 10_000)]
    later_sample: usize,
    /// Seconds between schedule firings (0: fire again as soon as one is done).
    #[arg(long, default_value_t = 0.0)]
    interval_secs: f64,
    /// Clean rows that must arrive before train retrains (`TRAIN_MIN_NEW_ROWS`).
    #[arg(long, default_value_t = 10_000)]
    min_new_rows: u64,
    /// Trees of the random forest (`TRAIN_RF_TREES`).
    #[arg(long, default_value_t = 100)]
    trees: usize,
    /// Keep the predictor serving after the run, until Ctrl-C.
    #[arg(long)]
    serve: bool,
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

/// One batch's line in the summary, read from the database.
struct BatchLine {
    batch: i64,
    received: i64,
    sampled: i64,
    flagged: i64,
    stored: i64,
    kept: i64,
    /// Seconds the harness spent on the batch (ingest to promote), when it saw it arrive.
    seconds: Option<f64>,
}

/// Everything a run starts; dropping it stops all of it.
struct Stack {
    _postgres: Option<Postgres>,
    /// The embedded S3 server, unless `S3_ENDPOINT` names another.
    s3: Option<S3Server>,
    deliveries: Option<tokio::sync::broadcast::Receiver<Delivery>>,
    /// The built-in batch API, unless `--source-url` names another.
    source: Option<FunctionProcess>,
    /// What the batch API says it serves (`GET /health`'s `dataset`), if it says.
    served: Value,
    /// The pipeline's database, which the summary is read from.
    db: appraise_core::db::DbPool,
    ingest: FunctionProcess,
    process: FunctionProcess,
    train: FunctionProcess,
    promote: FunctionProcess,
    predict: FunctionProcess,
}

async fn start_stack(
    args: &RunArgs,
    log_dir: &std::path::Path,
    run_dir: &std::path::Path,
) -> anyhow::Result<Stack> {
    let step = |message: &str| println!("==> {message}");

    // PostgreSQL.
    let (postgres, database_url) = match std::env::var("DATABASE_URL") {
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

    // The bucket.
    let (s3, s3_env) = match std::env::var("S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            step("S3: using S3_ENDPOINT (the harness delivers the object events itself)");
            let config = ObjectStoreConfig::from_env()?;
            ObjectStore::new(&config).ensure_bucket().await?;
            let env = [
                "S3_ENDPOINT",
                "S3_BUCKET",
                "AWS_REGION",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
            ]
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
            .collect::<Vec<_>>();
            (None, env)
        }
        _ => {
            let root = run_dir.join("s3");
            let server = S3Server::start(root.clone(), 0, Vec::new()).await?;
            step(&format!(
                "S3: embedded server at {} (objects in {})",
                server.endpoint(),
                root.display()
            ));
            let env = server.env(BUCKET);
            ObjectStore::new(&server.object_store_config(BUCKET))
                .ensure_bucket()
                .await?;
            (Some(server), env)
        }
    };

    // The batch API and the functions.
    let (source, source_url) = match &args.source_url {
        Some(url) => {
            step(&format!("source: using the batch API at {url}"));
            (None, url.trim_end_matches('/').to_owned())
        }
        None => {
            let source_env = match &args.csv {
                Some(csv) => {
                    let csv = std::fs::canonicalize(csv)
                        .with_context(|| format!("--csv {}", csv.display()))?;
                    vec![("SOURCE_CSV".to_owned(), csv.display().to_string())]
                }
                None => vec![
                    ("SOURCE_SCALE".to_owned(), args.scale.to_string()),
                    ("SOURCE_SEED".to_owned(), args.seed.to_string()),
                ],
            };
            let source = FunctionProcess::start_logged("source", &source_env, log_dir).await?;
            step(&format!("source: batch API at {}", source.url()));
            let url = source.url();
            (Some(source), url)
        }
    };
    let served = describe_source(&source_url).await;

    let mut stage_env = s3_env;
    let db = appraise_core::db::pool(&database_url, 2)?;
    stage_env.push(("DATABASE_URL".to_owned(), database_url));
    // The functions' shared settings, so another function (e.g. a second predictor for a
    // benchmark) can join this run: `set -a; . <run>/functions.env; set +a`.
    let env_file = run_dir.join("functions.env");
    std::fs::write(
        &env_file,
        stage_env
            .iter()
            .map(|(k, v)| format!("{k}='{v}'\n"))
            .collect::<String>(),
    )
    .with_context(|| format!("writing {}", env_file.display()))?;
    let mut ingest_env = stage_env.clone();
    ingest_env.extend([
        ("SOURCE_URL".to_owned(), source_url),
        ("SOURCE_GROUP".to_owned(), args.group.to_string()),
        (
            "INGEST_FIRST_SAMPLE".to_owned(),
            args.first_sample.to_string(),
        ),
        (
            "INGEST_LATER_SAMPLE".to_owned(),
            args.later_sample.to_string(),
        ),
    ]);
    if let Some(day) = &args.day {
        ingest_env.push(("SOURCE_DAY".to_owned(), day.clone()));
    }
    let ingest = FunctionProcess::start_logged("ingest", &ingest_env, log_dir).await?;
    step(&format!("ingest: listening at {}", ingest.url()));
    let process = FunctionProcess::start_logged("process", &stage_env, log_dir).await?;
    step(&format!("process: listening at {}", process.url()));
    let mut train_env = stage_env.clone();
    train_env.extend([
        (
            "TRAIN_MIN_NEW_ROWS".to_owned(),
            args.min_new_rows.to_string(),
        ),
        ("TRAIN_RF_TREES".to_owned(), args.trees.to_string()),
    ]);
    let train = FunctionProcess::start_logged("train", &train_env, log_dir).await?;
    step(&format!("train: listening at {}", train.url()));
    let promote = FunctionProcess::start_logged("promote", &stage_env, log_dir).await?;
    step(&format!("promote: listening at {}", promote.url()));
    let predict = FunctionProcess::start_logged("predict", &stage_env, log_dir).await?;
    step(&format!("predict: listening at {}", predict.url()));

    // Who hears about new objects: raw/ manifests wake process, clean/ manifests wake train,
    // candidates/ wake promote, and production/ wakes the predictor.
    let deliveries = s3.as_ref().map(|server| {
        server.set_rules(vec![
            NotificationRule {
                prefix: "raw/".into(),
                suffix: "manifest.json".into(),
                target: Some(format!("{}/", process.url())),
            },
            NotificationRule {
                prefix: "clean/".into(),
                suffix: "manifest.json".into(),
                target: Some(format!("{}/", train.url())),
            },
            NotificationRule {
                prefix: "candidates/".into(),
                suffix: ".json".into(),
                target: Some(format!("{}/", promote.url())),
            },
            NotificationRule {
                prefix: "production/".into(),
                suffix: ".json".into(),
                target: Some(format!("{}/", predict.url())),
            },
        ]);
        server.deliveries()
    });
    println!(
        "    logs in {}; the functions' settings in {}",
        log_dir.display(),
        env_file.display()
    );
    Ok(Stack {
        _postgres: postgres,
        s3,
        deliveries,
        source,
        served,
        db,
        ingest,
        process,
        train,
        promote,
        predict,
    })
}

/// The bucket the harness uses.
const BUCKET: &str = "appraise";

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
    let mut stack = start_stack(&args, &log_dir, &run_dir).await?;

    // The schedule.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30 * 60))
        .build()?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("template is valid"),
    );
    spinner.enable_steady_tick(Duration::from_millis(120));
    // Seconds the harness spent on each batch, from ingest to promote.
    let mut seconds: std::collections::HashMap<i64, f64> = std::collections::HashMap::new();
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
        let report = fire_schedule(&client, &spinner, &stack.ingest.url(), firing)
            .await
            .map_err(|error| anyhow::anyhow!("{error:#}{}", stack.ingest.log_excerpt()))?;
        let result = &report["results"][0];
        if let Some(keys) = result["reannounced"].as_array()
            && !keys.is_empty()
        {
            say(
                &spinner,
                format!("catch-up announced again work whose event was lost: {keys:?}"),
            );
        }
        match result["outcome"].as_str() {
            Some("stored") => {
                let batch = result["batch_number"].as_i64().unwrap_or(-1);
                say(
                    &spinner,
                    format!(
                        "ingest   batch {batch:>3}  received {:>9}  sampled {:>9}  flagged {:>7}  stored {:>9}",
                        thousands(result["rows_received"].as_i64().unwrap_or(0)),
                        thousands(result["rows_sampled"].as_i64().unwrap_or(0)),
                        thousands(result["rows_flagged"].as_i64().unwrap_or(0)),
                        thousands(result["rows_stored"].as_i64().unwrap_or(0)),
                    ),
                );
                let rewinds = result["rewinds"].as_i64().unwrap_or(0);
                if rewinds > 0 {
                    say(
                        &spinner,
                        format!(
                            "         recovered an answer lost in flight: rewound the batch API {rewinds}× (re-fetched and dropped: {})",
                            result["skipped_batches"]
                        ),
                    );
                }
                let manifest = result["manifest_key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                spinner.set_message(format!("process is cleaning batch {batch}"));
                await_stage(&client, &spinner, &mut stack, Stage::Process, &manifest).await?;
                // What process did, as recorded (a redelivered event's answer says only
                // "duplicate").
                say(&spinner, describe_cleaning(&stack.db, batch).await?);
                let clean_manifest = format!("clean/batch-{batch:06}/manifest.json");
                spinner.set_message(format!("train is deciding on batch {batch}"));
                let trained =
                    await_stage(&client, &spinner, &mut stack, Stage::Train, &clean_manifest)
                        .await?;
                for report_line in describe_training(batch, &trained) {
                    say(&spinner, report_line);
                }
                if let Some(training_id) = training_of(&stack.db, batch).await? {
                    spinner.set_message(format!("promote is judging training {training_id}"));
                    let candidates = appraise_core::keys::candidates(training_id);
                    let promoted =
                        await_stage(&client, &spinner, &mut stack, Stage::Promote, &candidates)
                            .await?;
                    say(&spinner, describe_promotion(batch, &promoted));
                }
                seconds.insert(batch, tick_started.elapsed().as_secs_f64());
                // Show the clean/ announcement that followed, if it is already out.
                if let Some(deliveries) = stack.deliveries.as_mut() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    while let Ok(delivery) = deliveries.try_recv() {
                        report_delivery(&spinner, &delivery);
                    }
                }
            }
            Some("exhausted") => {
                say(&spinner, "ingest   the source has nothing left");
                break;
            }
            _ => say(&spinner, format!("ingest   {result}")),
        }
        if args.interval_secs > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(args.interval_secs)).await;
        }
    }
    // The last events (clean/ manifests) may still be on their way.
    if let Some(deliveries) = stack.deliveries.as_mut() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok(delivery) = deliveries.try_recv() {
            report_delivery(&spinner, &delivery);
        }
    }
    spinner.finish_and_clear();

    print_summary(
        &summary_lines(&stack.db, &seconds).await?,
        started.elapsed(),
    );
    let dropped_by_source = stack.served["dropped_ragged_rows"].as_i64().unwrap_or(0);
    if dropped_by_source > 0 {
        println!(
            "the source dropped {} malformed CSV {} before serving (see the notice at start)",
            thousands(dropped_by_source),
            plural(dropped_by_source as usize, "row", "rows")
        );
    }
    let peaks: Vec<String> = [
        &stack.ingest,
        &stack.process,
        &stack.train,
        &stack.promote,
        &stack.predict,
    ]
    .iter()
    .filter_map(|f| {
        f.peak_rss_bytes()
            .map(|b| format!("{} {} MB", f.name, thousands((b / 1_000_000) as i64)))
    })
    .collect();
    if !peaks.is_empty() {
        println!("peak resident memory: {}", peaks.join(" · "));
    }
    show_predictor(&client, &stack.predict.url()).await?;
    if args.serve {
        println!("serving until Ctrl-C");
        std::future::pending::<()>().await;
    }
    stack.predict.stop().await;
    stack.promote.stop().await;
    stack.train.stop().await;
    stack.process.stop().await;
    stack.ingest.stop().await;
    if let Some(source) = stack.source {
        source.stop().await;
    }
    drop(stack.s3);
    Ok(())
}

/// The stages the harness waits for.
#[derive(Clone, Copy)]
enum Stage {
    Process,
    Train,
    Promote,
}

/// Waits until a stage has handled the manifest `key` and returns its report. With the
/// embedded S3 server that is the notification's answer; with another S3 server the harness
/// delivers the event itself, as a MinIO webhook would.
async fn await_stage(
    client: &reqwest::Client,
    spinner: &ProgressBar,
    stack: &mut Stack,
    stage: Stage,
    key: &str,
) -> anyhow::Result<Value> {
    let function = match stage {
        Stage::Process => &stack.process,
        Stage::Train => &stack.train,
        Stage::Promote => &stack.promote,
    };
    let (name, url, excerpt) = (
        function.name.clone(),
        function.url(),
        function.log_excerpt(),
    );
    let answer = match stack.deliveries.as_mut() {
        Some(deliveries) => loop {
            let delivery = tokio::time::timeout(Duration::from_secs(30 * 60), deliveries.recv())
                .await
                .with_context(|| format!("no event for {key} within 30 minutes"))??;
            report_delivery(spinner, &delivery);
            if delivery.key == key {
                if delivery.status != Some(200) {
                    bail!("{name} failed on {key}: {}{excerpt}", delivery.response);
                }
                break delivery.response;
            }
        },
        None => {
            let body = appraise_local::s3_server::minio_event(BUCKET, key, "ObjectCreated:Put", 0);
            let response = client.post(format!("{url}/")).json(&body).send().await?;
            let status = response.status();
            let text = response.text().await?;
            if !status.is_success() {
                bail!("{name} failed on {key} (HTTP {status}): {text}{excerpt}");
            }
            text
        }
    };
    let report: Value =
        serde_json::from_str(&answer).with_context(|| format!("reading {name}'s report"))?;
    Ok(report["results"][0].clone())
}

/// Asks the batch API what it serves (`GET /health`, whose `dataset` appraise's `source`
/// fills in) and prints it, with a notice for each thing in a CSV it could not serve as is.
/// `Value::Null` when the API does not say (the course API does not).
async fn describe_source(url: &str) -> Value {
    let health: Value = match reqwest::get(format!("{url}/health")).await {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let dataset = health["dataset"].clone();
    let count = |field: &str| dataset[field].as_i64().unwrap_or(0);
    match dataset["kind"].as_str() {
        Some("csv") => {
            println!(
                "    serving {} rows of the CSV in {} batches",
                thousands(count("rows")),
                count("batches")
            );
            let missing: Vec<&str> = dataset["missing_optional_columns"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !missing.is_empty() {
                println!(
                    "    notice: the CSV has no {} {}: null in every row",
                    missing.join(", "),
                    plural(missing.len(), "column", "columns")
                );
            }
            if count("dropped_ragged_rows") > 0 {
                let dropped = count("dropped_ragged_rows");
                println!(
                    "    notice: {} malformed {} (a number of fields unlike the header's) dropped, not served",
                    thousands(dropped),
                    plural(dropped as usize, "row", "rows")
                );
            }
            let unparsed = describe_drops(&dataset["unparsed_values"]);
            if unparsed != "nothing" {
                println!("    notice: values that did not parse are served as null: {unparsed}");
            }
        }
        Some(_) => println!(
            "    serving {} generated rows in {} batches",
            thousands(count("rows")),
            count("batches")
        ),
        None => {}
    }
    dataset
}

/// Every batch the database holds, with what ingest and process recorded of it, and the
/// seconds the harness saw it take.
async fn summary_lines(
    db: &appraise_core::db::DbPool,
    seconds: &std::collections::HashMap<i64, f64>,
) -> anyhow::Result<Vec<BatchLine>> {
    let client = db
        .get()
        .await
        .context("reading the summary from the database")?;
    let rows = client
        .query(
            "SELECT b.batch_number, b.rows_received, b.rows_sampled, b.rows_flagged,
                    (SELECT count(*) FROM raw.listings l WHERE l.batch_number = b.batch_number),
                    coalesce(c.rows_kept, 0)
             FROM ops.batches b LEFT JOIN ops.clean_batches c USING (batch_number)
             ORDER BY b.batch_number",
            &[],
        )
        .await
        .context("reading the summary from the database")?;
    Ok(rows
        .iter()
        .map(|row| {
            let batch = i64::from(row.get::<_, i32>(0));
            BatchLine {
                batch,
                received: row.get::<_, i32>(1).into(),
                sampled: row.get::<_, i32>(2).into(),
                flagged: row.get::<_, i32>(3).into(),
                stored: row.get(4),
                kept: row.get::<_, i32>(5).into(),
                seconds: seconds.get(&batch).copied(),
            }
        })
        .collect())
}

/// Process's line for `batch`, from its report in `ops.clean_batches`.
async fn describe_cleaning(db: &appraise_core::db::DbPool, batch: i64) -> anyhow::Result<String> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            "SELECT rows_in, rows_kept, dropped FROM ops.clean_batches WHERE batch_number = $1",
            &[&(batch as i32)],
        )
        .await?;
    Ok(match row {
        Some(row) => format!(
            "process  batch {batch:>3}  kept {:>9} of {:>9}  dropped: {}",
            thousands(row.get::<_, i32>(1).into()),
            thousands(row.get::<_, i32>(0).into()),
            describe_drops(&row.get::<_, Value>(2)),
        ),
        None => format!("process  batch {batch:>3}  not processed"),
    })
}

/// The training that batch `batch`'s decision started, if it decided to train.
async fn training_of(db: &appraise_core::db::DbPool, batch: i64) -> anyhow::Result<Option<i64>> {
    let client = db.get().await?;
    Ok(client
        .query_opt(
            "SELECT id FROM ops.trainings WHERE batch_number = $1 AND decision = 'train'",
            &[&(batch as i32)],
        )
        .await?
        .map(|row| row.get(0)))
}

/// Promote's decision with both scores.
fn describe_promotion(batch: i64, report: &Value) -> String {
    match report["outcome"].as_str() {
        Some("decided") => format!(
            "promote  batch {batch:>3}  {} {}: {}",
            if report["promoted"] == true {
                "promoted"
            } else {
                "rejected"
            },
            report["candidate"]["version"].as_str().unwrap_or("?"),
            report["reason"].as_str().unwrap_or_default()
        ),
        _ => format!("promote  batch {batch:>3}  {report}"),
    }
}

/// Waits for the predictor to serve the production model, asks it for one price, and says
/// where it is.
async fn show_predictor(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let mut ready = Value::Null;
    for _ in 0..200 {
        let response = client.get(format!("{url}/ready")).send().await?;
        if response.status().is_success() {
            ready = response.json().await?;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if ready.is_null() {
        println!("predict: no model in production (nothing was promoted)");
        return Ok(());
    }
    let listing = serde_json::json!({
        "brokered_by": 10481, "status": "for_sale", "bed": 3, "bath": 2, "acre_lot": 0.25,
        "city": "Springfield", "state": "Massachusetts", "zip_code": "01103",
        "house_size": 1800, "prev_sold_date": "2015-06-01"
    });
    let answer: Value = client
        .post(format!("{url}/predict"))
        .json(&listing)
        .send()
        .await?
        .json()
        .await?;
    println!(
        "production model: {} ({}, test RMSE {})",
        ready["model_version"].as_str().unwrap_or("?"),
        ready["algorithm"].as_str().unwrap_or("?"),
        thousands(ready["model_rmse"].as_f64().unwrap_or(0.0) as i64)
    );
    println!(
        "a 3 bed, 2 bath, 1,800 sq ft house in Springfield, MA: ${}",
        thousands(answer["predicted_price"].as_f64().unwrap_or(0.0) as i64)
    );
    println!("predictor: {url}/ (web page), {url}/predict, {url}/metrics");
    Ok(())
}

/// The drift verdict, the decision and each model's test metrics, one line each.
fn describe_training(batch: i64, report: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let drift = &report["drift"];
    lines.push(if drift.is_null() {
        format!("drift    batch {batch:>3}  not tested: no production model to compare with")
    } else if drift["worst_feature"].is_null() {
        format!("drift    batch {batch:>3}  not tested: no clean rows to compare")
    } else {
        format!(
            "drift    batch {batch:>3}  {}  (largest: {} D={:.3})",
            if drift["drifted"].as_bool() == Some(true) {
                "DRIFT"
            } else {
                "no drift"
            },
            drift["worst_feature"].as_str().unwrap_or("-"),
            drift["worst_statistic"].as_f64().unwrap_or(0.0)
        )
    });
    let reason = report["reason"].as_str().unwrap_or_default();
    match report["outcome"].as_str() {
        Some("trained") => {
            lines.push(format!(
                "train    batch {batch:>3}  trained (training {}): {reason}",
                report["training_id"]
            ));
            for candidate in report["candidates"].as_array().into_iter().flatten() {
                let test = &candidate["test"];
                lines.push(format!(
                    "model    {:<22} test rmse {:>9}  mae {:>9}  r2 {:.3}  mape {:.3}  fit {:.1} s",
                    candidate["version"].as_str().unwrap_or("?"),
                    thousands(test["rmse"].as_f64().unwrap_or(0.0) as i64),
                    thousands(test["mae"].as_f64().unwrap_or(0.0) as i64),
                    test["r2"].as_f64().unwrap_or(0.0),
                    test["mape"].as_f64().unwrap_or(0.0),
                    candidate["fit_seconds"].as_f64().unwrap_or(0.0),
                ));
            }
        }
        Some("skipped") => lines.push(format!("train    batch {batch:>3}  skipped: {reason}")),
        _ => lines.push(format!("train    batch {batch:>3}  {report}")),
    }
    lines
}

/// `price_out_of_range 1,234 · missing_bed 567`: the rules that dropped rows, most first.
fn describe_drops(dropped: &Value) -> String {
    let mut counts: Vec<(&str, i64)> = dropped
        .as_object()
        .map(|map| {
            map.iter()
                .filter_map(|(rule, count)| Some((rule.as_str(), count.as_i64()?)))
                .filter(|(_, count)| *count > 0)
                .collect()
        })
        .unwrap_or_default();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if counts.is_empty() {
        return "nothing".to_owned();
    }
    counts
        .iter()
        .map(|(rule, count)| format!("{rule} {}", thousands(*count)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Sends one schedule firing to ingest the way a Knative PingSource does (a binary-mode
/// CloudEvent) and returns ingest's report. Like the platforms, it delivers the same firing
/// again (same id) while ingest answers 503 or cannot be reached, backing off from 0.5 s to
/// 8 s, for up to [`REDELIVERY_PATIENCE`].
async fn fire_schedule(
    client: &reqwest::Client,
    spinner: &ProgressBar,
    url: &str,
    firing: u32,
) -> anyhow::Result<Value> {
    let id = format!("harness-{}-{firing}", std::process::id());
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let started = Instant::now();
    let mut wait = Duration::from_millis(500);
    loop {
        let sent = client
            .post(url)
            .header("ce-specversion", "1.0")
            .header("ce-type", appraise_core::events::PING_CLOUD_EVENT_TYPE)
            .header("ce-source", "appraise-local/schedule")
            .header("ce-id", &id)
            .header("ce-time", &now)
            .header("content-type", "application/json")
            .body(json!({ "schedule": "ingest" }).to_string())
            .send()
            .await;
        let retry_reason = match sent {
            Ok(response) if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                format!("ingest answered 503: {}", body["error"])
            }
            Ok(response) => {
                let status = response.status();
                let body: Value = response.json().await.context("reading ingest's report")?;
                if !status.is_success() {
                    bail!("ingest failed (HTTP {status}): {}", body["error"]);
                }
                return Ok(body);
            }
            Err(error) => format!("calling ingest: {error}"),
        };
        if started.elapsed() + wait > REDELIVERY_PATIENCE {
            bail!("{retry_reason}; gave up after {:.0?}", started.elapsed());
        }
        say(
            spinner,
            format!(
                "ingest   {retry_reason}; firing again in {:.1} s",
                wait.as_secs_f64()
            ),
        );
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(8));
    }
}

/// How long the harness keeps redelivering a firing ingest answers 503 to.
const REDELIVERY_PATIENCE: Duration = Duration::from_secs(120);

/// Prints a line above the spinner (and plainly when output is not a terminal, where
/// indicatif hides the spinner and everything it prints).
fn say(spinner: &ProgressBar, line: impl AsRef<str>) {
    spinner.suspend(|| println!("{}", line.as_ref()));
}

fn report_delivery(spinner: &ProgressBar, delivery: &Delivery) {
    let line = match &delivery.target {
        None => format!("event    s3:ObjectCreated:Put {}", delivery.key),
        Some(target) => format!(
            "event    s3:ObjectCreated:Put {} -> {target} (HTTP {})",
            delivery.key,
            delivery
                .status
                .map_or("unreachable".to_owned(), |s| s.to_string())
        ),
    };
    say(spinner, line);
}

fn print_summary(lines: &[BatchLine], elapsed: Duration) {
    println!();
    println!("batch  received    sampled    flagged     stored       kept   seconds");
    for line in lines {
        println!(
            "{:>5} {:>9} {:>10} {:>10} {:>10} {:>10} {:>9}",
            line.batch,
            thousands(line.received),
            thousands(line.sampled),
            thousands(line.flagged),
            thousands(line.stored),
            thousands(line.kept),
            line.seconds
                .map_or("-".to_owned(), |seconds| format!("{seconds:.1}"))
        );
    }
    let total = |f: fn(&BatchLine) -> i64| lines.iter().map(f).sum::<i64>();
    println!(
        "total {:>9} {:>10} {:>10} {:>10} {:>10} {:>9.1}",
        thousands(total(|l| l.received)),
        thousands(total(|l| l.sampled)),
        thousands(total(|l| l.flagged)),
        thousands(total(|l| l.stored)),
        thousands(total(|l| l.kept)),
        elapsed.as_secs_f64()
    );
}

/// `one` when `count` is 1, else `many`.
fn plural(count: usize, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 { one } else { many }
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
