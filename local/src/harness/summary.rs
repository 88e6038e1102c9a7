//! `appraise run --summary-json PATH`: what each stage did over the whole run, machine-readable,
//! for benchmarks (bench/scale.sh): per stage its invocations, the wall seconds of its work,
//! its CPU seconds, rows in and out, peak resident memory and rows per second; and each
//! training's report (rows, and every model's fit seconds and test metrics).
//!
//! Wall seconds, invocations and rows come from the stages' own records in `ops.stage_runs`
//! (one record per stage and batch, holding the duration of its last attempt, measured by the
//! function from the event's arrival to its result: a retried batch counts its last try only);
//! memory and CPU from `/proc` for each function's process, read before the harness stops it.
//! The source records no runs: its row counts what ingest received from it, and has no wall
//! seconds of its own (its answers are inside ingest's).

use std::{collections::HashMap, path::Path};

use anyhow::Context;
use appraise_core::{reports::TrainReport, runs::Stage as RunStage};
use appraise_testkit::processes::FunctionProcess;
use serde::Serialize;

use super::stack::Stack;

/// The file `--summary-json` writes.
#[derive(Serialize)]
pub(crate) struct RunSummary {
    /// Seconds from the harness's start to the end of the last batch.
    pub(crate) run_seconds: f64,
    /// Rows the batch API said it would serve (`GET /health`), when it says.
    pub(crate) rows_planned: Option<u64>,
    /// The source, then ingest, process, train and promote.
    pub(crate) stages: Vec<StageSummary>,
    /// Every training's report (`outcome` `trained`), in the order they happened.
    pub(crate) trainings: Vec<TrainReport>,
}

/// One stage over the run.
#[derive(Serialize)]
pub(crate) struct StageSummary {
    pub(crate) stage: &'static str,
    /// Attempts that did the work or failed trying (the source: batches it served).
    pub(crate) invocations: u64,
    /// The sum over batches of each one's last attempt's duration; `None` for the source.
    pub(crate) wall_seconds: Option<f64>,
    /// CPU seconds (user and system, all threads) of the function's process over its life.
    pub(crate) cpu_seconds: Option<f64>,
    /// ingest: rows received; process: rows in; train: rows of its trainings (training,
    /// validation and test); promote: rows it evaluated on. `None` for the source.
    pub(crate) rows_in: Option<u64>,
    /// ingest: rows sampled; process: rows kept; the source: rows served. `None` otherwise.
    pub(crate) rows_out: Option<u64>,
    /// The function process's peak resident memory (VmHWM).
    pub(crate) peak_rss_bytes: Option<u64>,
    /// `rows_in / wall_seconds`.
    pub(crate) rows_per_second: Option<f64>,
    /// Rows handled (`rows_in`, the source's `rows_out`) per CPU second.
    pub(crate) rows_per_cpu_second: Option<f64>,
}

/// What `ops.stage_runs` holds of one stage.
#[derive(Default, Clone, Copy)]
struct Recorded {
    runs: u64,
    attempts: u64,
    wall_seconds: f64,
    rows_in: Option<u64>,
    rows_out: Option<u64>,
}

/// Reads the stages' records and the processes' figures and writes them to `path` as JSON.
pub(crate) async fn write_summary(
    path: &Path,
    stack: &Stack,
    trainings: Vec<TrainReport>,
    run_seconds: f64,
) -> anyhow::Result<()> {
    let recorded = recorded_runs(&stack.db).await?;
    let of = |stage: RunStage| recorded.get(stage.as_str()).copied().unwrap_or_default();
    let ingest = of(RunStage::Ingest);
    let mut stages = Vec::new();
    if let Some(source) = &stack.source {
        let rows = ingest.rows_in;
        let cpu = source.cpu_seconds();
        stages.push(StageSummary {
            stage: "source",
            invocations: ingest.runs,
            wall_seconds: None,
            cpu_seconds: cpu,
            rows_in: None,
            rows_out: rows,
            peak_rss_bytes: source.peak_rss_bytes(),
            rows_per_second: None,
            rows_per_cpu_second: per_second(rows, cpu),
        });
    }
    for (stage, function) in [
        (RunStage::Ingest, &stack.ingest),
        (RunStage::Process, &stack.process),
        (RunStage::Train, &stack.train),
        (RunStage::Promote, &stack.promote),
    ] {
        stages.push(stage_summary(stage, of(stage), function));
    }
    let summary = RunSummary {
        run_seconds,
        rows_planned: stack.served["rows"].as_u64(),
        stages,
        trainings,
    };
    let json = serde_json::to_string_pretty(&summary)?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
}

fn stage_summary(stage: RunStage, recorded: Recorded, function: &FunctionProcess) -> StageSummary {
    let cpu = function.cpu_seconds();
    StageSummary {
        stage: stage.as_str(),
        invocations: recorded.attempts,
        wall_seconds: Some(recorded.wall_seconds),
        cpu_seconds: cpu,
        rows_in: recorded.rows_in,
        rows_out: recorded.rows_out,
        peak_rss_bytes: function.peak_rss_bytes(),
        rows_per_second: per_second(recorded.rows_in, Some(recorded.wall_seconds)),
        rows_per_cpu_second: per_second(recorded.rows_in, cpu),
    }
}

/// `rows / seconds`, when both are known and the seconds are not zero.
fn per_second(rows: Option<u64>, seconds: Option<f64>) -> Option<f64> {
    match (rows, seconds) {
        (Some(rows), Some(seconds)) if seconds > 0.0 => Some(rows as f64 / seconds),
        _ => None,
    }
}

/// Each stage's runs, attempts, summed durations and rows, from `ops.stage_runs`.
async fn recorded_runs(
    db: &appraise_core::db::DbPool,
) -> anyhow::Result<HashMap<String, Recorded>> {
    let client = db
        .get()
        .await
        .context("reading the stage runs for the summary")?;
    let rows = client
        .query(
            "SELECT stage, count(*), sum(attempts)::bigint,
                    coalesce(sum(duration_seconds), 0)::float8,
                    sum(rows_in)::bigint, sum(rows_out)::bigint
             FROM ops.stage_runs GROUP BY stage",
            &[],
        )
        .await
        .context("reading the stage runs for the summary")?;
    let count = |value: Option<i64>| value.map(|v| v.max(0) as u64);
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get::<_, String>(0),
                Recorded {
                    runs: count(Some(row.get(1))).unwrap_or(0),
                    attempts: count(row.get(2)).unwrap_or(0),
                    wall_seconds: row.get(3),
                    rows_in: count(row.get(4)),
                    rows_out: count(row.get(5)),
                },
            )
        })
        .collect())
}
