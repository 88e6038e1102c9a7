//! The main job, `appraise run`: starts everything ([`stack`]), plays the schedule, waits for
//! each stage's answer to each announcement, and reports on the console ([`console`]) and,
//! with `--summary-json`, in a file ([`summary`]).

pub(crate) mod console;
pub(crate) mod stack;
pub(crate) mod summary;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use appraise_core::reports::{
    FiringReport, IngestReport, ProcessReport, PromoteReport, StoredBatch, TrainReport,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use self::{
    console::{
        describe_cleaning, describe_promotion, describe_training, plural, print_summary,
        report_delivery, say, show_input_drift, show_mlflow, show_predictor, show_runs,
        summary_lines, thousands, training_of,
    },
    stack::{Stack, start_stack},
    summary::write_summary,
};

#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// Multiplies every batch size of the built-in generator (1.0 = the course API's sizes).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Seed of the built-in generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Serve this Kaggle-format CSV instead of generated data.
    #[arg(long, conflicts_with = "source_url")]
    pub csv: Option<PathBuf>,
    /// Take batches from this batch API (e.g. the course's) instead of starting `source`.
    #[arg(long, value_name = "URL")]
    pub source_url: Option<String>,
    /// `group_number` sent to the batch API.
    #[arg(long, default_value_t = 9)]
    pub group: u32,
    /// `day` sent to the batch API (e.g. Tuesday).
    #[arg(long)]
    pub day: Option<String>,
    /// Records kept from the first batch.
    #[arg(long, default_value_t = 145_000)]
    pub first_sample: usize,
    /// Records kept from each later batch.
    #[arg(long, default_value_t = 10_000)]
    pub later_sample: usize,
    /// Seconds between schedule firings (0: fire again as soon as one is done).
    #[arg(long, default_value_t = 0.0)]
    pub interval_secs: f64,
    /// Clean rows that must arrive before train retrains (`TRAIN_MIN_NEW_ROWS`).
    #[arg(long, default_value_t = 10_000)]
    pub min_new_rows: u64,
    /// Trees of the random forest (`TRAIN_RF_TREES`).
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// Keep the predictor (and MLflow, with --mlflow) serving after the run, until Ctrl-C.
    #[arg(long)]
    pub serve: bool,
    /// Start a local MLflow server (from the tools virtualenv: SQLite, local artifacts,
    /// loopback) and have train and promote mirror their runs, versions and promotions to it.
    #[arg(long)]
    pub mlflow: bool,
    /// Stop after this many firings even if the source has more.
    #[arg(long)]
    pub max_firings: Option<u32>,
    /// Where run files go: the S3 server's objects and the functions' logs.
    #[arg(long, default_value = ".appraise")]
    pub work_dir: PathBuf,
    /// After the run, write what each stage did to this JSON file: invocations, wall and CPU
    /// seconds, rows in and out, peak memory, rows per second, and each training's report.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,
}

/// The bucket the harness uses.
pub(crate) const BUCKET: &str = "appraise";

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        bail!("--scale must be a positive number, got {}", args.scale);
    }
    if let Some(path) = &args.summary_json {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if parent.is_some_and(|dir| !dir.is_dir()) {
            bail!(
                "--summary-json {}: its directory does not exist",
                path.display()
            );
        }
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
    // Every training's report, for --summary-json.
    let mut trainings: Vec<TrainReport> = Vec::new();
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
        if !report.reannounced.is_empty() {
            say(
                &spinner,
                format!(
                    "catch-up announced again work whose event was lost: {:?}",
                    report.reannounced
                ),
            );
        }
        match &report.ingest {
            IngestReport::Stored(stored) => {
                let batch =
                    follow_batch(&client, &spinner, &mut stack, stored, &mut trainings).await?;
                seconds.insert(batch, tick_started.elapsed().as_secs_f64());
            }
            IngestReport::Exhausted => {
                say(&spinner, "ingest   the source has nothing left");
                break;
            }
            IngestReport::Duplicate {
                trigger_id,
                previous_outcome,
                ..
            } => say(
                &spinner,
                format!("ingest   firing {trigger_id} was handled before ({previous_outcome})"),
            ),
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
    let elapsed = started.elapsed();
    print_ending(&stack, &seconds, elapsed).await?;
    if let Some(path) = &args.summary_json {
        write_summary(path, &stack, trainings, elapsed.as_secs_f64()).await?;
        println!("summary of each stage in {}", path.display());
    }
    show_predictor(&client, &stack.predict.url()).await?;
    // Informational: a failed GET is reported, and the run's outcome stands.
    if let Err(error) = show_runs(&client, &stack.predict.url()).await {
        println!("warning: could not show the runs: {error:#}");
    }
    if let Err(error) = show_input_drift(&client, &stack.predict.url()).await {
        println!("warning: could not show the drift in served inputs: {error:#}");
    }
    if let Some(mlflow) = &stack.mlflow {
        show_mlflow(&stack.db, &mlflow.url()).await?;
    }
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

/// Follows a stored batch through the pipeline: ingest's line, then process, train and promote
/// as each answers its announcement. Returns the batch's number; a training's report is added
/// to `trainings`.
async fn follow_batch(
    client: &reqwest::Client,
    spinner: &ProgressBar,
    stack: &mut Stack,
    stored: &StoredBatch,
    trainings: &mut Vec<TrainReport>,
) -> anyhow::Result<i64> {
    let batch = i64::from(stored.batch_number);
    say(
        spinner,
        format!(
            "ingest   batch {batch:>3}  received {:>9}  sampled {:>9}  flagged {:>7}  stored {:>9}",
            thousands(stored.rows_received as i64),
            thousands(stored.rows_sampled as i64),
            thousands(stored.rows_flagged as i64),
            thousands(stored.rows_stored as i64),
        ),
    );
    if stored.rewinds > 0 {
        say(
            spinner,
            format!(
                "         recovered an answer lost in flight: rewound the batch API {}× (re-fetched and dropped: {:?})",
                stored.rewinds, stored.skipped_batches
            ),
        );
    }
    let manifest = stored.manifest_key.clone();
    spinner.set_message(format!("process is cleaning batch {batch}"));
    await_stage::<ProcessReport>(client, spinner, stack, Stage::Process, &manifest).await?;
    // What process did, as recorded (a redelivered event's answer says only
    // "duplicate").
    say(spinner, describe_cleaning(&stack.db, batch).await?);
    let clean_manifest = format!("clean/batch-{batch:06}/manifest.json");
    spinner.set_message(format!("train is deciding on batch {batch}"));
    let trained: TrainReport =
        await_stage(client, spinner, stack, Stage::Train, &clean_manifest).await?;
    for report_line in describe_training(batch, &trained) {
        say(spinner, report_line);
    }
    if matches!(trained, TrainReport::Trained { .. }) {
        trainings.push(trained);
    }
    if let Some(training_id) = training_of(&stack.db, batch).await? {
        spinner.set_message(format!("promote is judging training {training_id}"));
        let candidates = appraise_core::keys::candidates(training_id);
        let promoted: PromoteReport =
            await_stage(client, spinner, stack, Stage::Promote, &candidates).await?;
        say(spinner, describe_promotion(batch, &promoted));
    }
    // Show the clean/ announcement that followed, if it is already out.
    if let Some(deliveries) = stack.deliveries.as_mut() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Ok(delivery) = deliveries.try_recv() {
            report_delivery(spinner, &delivery);
        }
    }
    Ok(batch)
}

/// The summary table, what the source dropped, and each function's peak memory.
async fn print_ending(
    stack: &Stack,
    seconds: &std::collections::HashMap<i64, f64>,
    elapsed: Duration,
) -> anyhow::Result<()> {
    print_summary(&summary_lines(&stack.db, seconds).await?, elapsed);
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
    Ok(())
}

/// The stages the harness waits for.
#[derive(Clone, Copy)]
pub(crate) enum Stage {
    Process,
    Train,
    Promote,
}

/// Waits until a stage has handled the manifest `key` and returns its report. With the
/// embedded S3 server that is the notification's answer; with another S3 server the harness
/// delivers the event itself, as a MinIO webhook would.
pub(crate) async fn await_stage<Report: DeserializeOwned>(
    client: &reqwest::Client,
    spinner: &ProgressBar,
    stack: &mut Stack,
    stage: Stage,
    key: &str,
) -> anyhow::Result<Report> {
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
            let body =
                appraise_testkit::s3_server::minio_event(BUCKET, key, "ObjectCreated:Put", 0);
            let response = client.post(format!("{url}/")).json(&body).send().await?;
            let status = response.status();
            let text = response.text().await?;
            if !status.is_success() {
                bail!("{name} failed on {key} (HTTP {status}): {text}{excerpt}");
            }
            text
        }
    };
    first_result(&answer).with_context(|| format!("reading {name}'s report"))
}

/// What a function answers for a delivery: one report per trigger it carried.
#[derive(serde::Deserialize)]
struct Results<Report> {
    results: Vec<Report>,
}

/// The report of the one trigger a delivery carried.
fn first_result<Report: DeserializeOwned>(answer: &str) -> anyhow::Result<Report> {
    let Results { results } = serde_json::from_str::<Results<Report>>(answer)?;
    results
        .into_iter()
        .next()
        .context("the answer holds no report")
}

/// Sends one schedule firing to ingest the way a Knative PingSource does (a binary-mode
/// CloudEvent) and returns ingest's report. Like the platforms, it delivers the same firing
/// again (same id) while ingest answers 503 or cannot be reached, backing off from 0.5 s to
/// 8 s, for up to [`REDELIVERY_PATIENCE`].
pub(crate) async fn fire_schedule(
    client: &reqwest::Client,
    spinner: &ProgressBar,
    url: &str,
    firing: u32,
) -> anyhow::Result<FiringReport> {
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
                let body = response.text().await.context("reading ingest's answer")?;
                if !status.is_success() {
                    bail!("ingest failed (HTTP {status}): {body}");
                }
                return first_result(&body).context("reading ingest's report");
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
pub(crate) const REDELIVERY_PATIENCE: Duration = Duration::from_secs(120);
