//! Stage runs: what each stage did with each batch, as the operator sees it (the predictor's
//! `GET /runs` and the page's Runs grid, like Airflow's grid view).
//!
//! `ops.stage_runs` holds one row per batch and stage (a training's id is its batch's number,
//! so train and promote are keyed by the batch too):
//!
//! - a stage that finished its work writes the row with [`Attempt::finished`] **in the same
//!   transaction as its result**, as `done` or `skipped` (with why), with the attempt's start,
//!   duration and rows in and out: the row exists exactly when the result does;
//! - an attempt that failed writes it with [`Attempt::failed`] after its transaction rolled
//!   back, in a short transaction of its own, as `failed` with the error. That write never
//!   overwrites a `done` or `skipped` row (a failure after the work was committed, such as an
//!   announcement that could not be written, leaves the result's row as it is);
//! - `attempts` counts the attempts that did the work or failed trying: a retry after a failure
//!   adds one. A duplicate event that finds the work already done is a no-op and changes
//!   nothing, so the same event twice leaves the same rows as once;
//! - a stage with no row is `waiting` (promote after a train that skipped is `skipped`), which
//!   [`recent`] works out when it reads.
//!
//! Each stage derives its row from the report it returns ([`RunOutcome`]), so what the grid
//! shows is what the stage answered.
//!
//! [`rerun`] asks a stage to redo a batch whose last attempt failed, through the event the
//! platforms already deliver: the object that announced the work to the stage is written
//! again from `ops.outbox` (as [`crate::catch_up`] does for lost events), so it works the same
//! on the harness, Knative and Lambda.

use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_postgres::{GenericClient, Transaction};

use crate::{
    catch_up,
    db::DbPool,
    keys,
    objects::ObjectStore,
    outbox,
    reports::{IngestReport, ProcessReport, ProcessedBatch, PromoteReport, TrainReport},
};

/// A stage of the pipeline, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Ingest,
    Process,
    Train,
    Promote,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Ingest, Stage::Process, Stage::Train, Stage::Promote];

    /// The stages an announcement wakes (those with an [`Stage::announcement`]), in order.
    pub const ANNOUNCED: [Stage; 3] = [Stage::Process, Stage::Train, Stage::Promote];

    /// The name stored in `ops.stage_runs.stage` and shown by `GET /runs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Process => "process",
            Stage::Train => "train",
            Stage::Promote => "promote",
        }
    }
}

impl Stage {
    /// The object whose creation wakes this stage for `batch_number`: the raw manifest for
    /// process, the clean manifest for train, the training's candidates for promote. Ingest
    /// runs on the schedule, not on an object: `None`.
    pub fn announcement(self, batch_number: i32) -> Option<String> {
        match self {
            Stage::Ingest => None,
            Stage::Process => Some(keys::batch_manifest("raw", batch_number)),
            Stage::Train => Some(keys::batch_manifest("clean", batch_number)),
            Stage::Promote => Some(keys::candidates(i64::from(batch_number))),
        }
    }
}

impl std::str::FromStr for Stage {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == name)
            .ok_or_else(|| format!("stage {name:?} is not one of ingest, process, train, promote"))
    }
}

/// How an attempt that finished its work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Done,
    Skipped,
}

/// What a finished attempt did with its batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub batch_number: i32,
    pub finish: Finish,
    /// Why it skipped, or what it decided.
    pub note: Option<String>,
    pub rows_in: Option<u64>,
    pub rows_out: Option<u64>,
}

/// A report that says what its stage did with a batch: `None` when it did nothing that makes
/// or changes a run (a duplicate event, an ignored object, an exhausted batch API).
pub trait RunOutcome {
    fn run_outcome(&self) -> Option<Finished>;
}

impl RunOutcome for IngestReport {
    fn run_outcome(&self) -> Option<Finished> {
        match self {
            IngestReport::Stored(batch) => Some(Finished {
                batch_number: batch.batch_number,
                finish: Finish::Done,
                note: None,
                rows_in: Some(batch.rows_received as u64),
                rows_out: Some(batch.rows_sampled as u64),
            }),
            IngestReport::Exhausted | IngestReport::Duplicate { .. } => None,
        }
    }
}

impl RunOutcome for ProcessedBatch {
    fn run_outcome(&self) -> Option<Finished> {
        Some(Finished {
            batch_number: self.batch_number,
            finish: Finish::Done,
            note: None,
            rows_in: Some(self.rows_in),
            rows_out: Some(self.rows_kept),
        })
    }
}

impl RunOutcome for ProcessReport {
    fn run_outcome(&self) -> Option<Finished> {
        match self {
            ProcessReport::Processed(batch) => batch.run_outcome(),
            ProcessReport::Duplicate { .. } | ProcessReport::Ignored { .. } => None,
        }
    }
}

impl RunOutcome for TrainReport {
    fn run_outcome(&self) -> Option<Finished> {
        match self {
            TrainReport::Trained {
                batch_number,
                reason,
                rows_train,
                rows_validation,
                rows_test,
                candidates,
                ..
            } => Some(Finished {
                batch_number: *batch_number,
                finish: Finish::Done,
                note: Some(format!("{reason}; {} candidates", candidates.len())),
                rows_in: Some((rows_train + rows_validation + rows_test) as u64),
                rows_out: None,
            }),
            TrainReport::Skipped {
                batch_number,
                reason,
                ..
            } => Some(Finished {
                batch_number: *batch_number,
                finish: Finish::Skipped,
                note: Some(reason.clone()),
                rows_in: None,
                rows_out: None,
            }),
            TrainReport::Duplicate { .. } | TrainReport::Ignored { .. } => None,
        }
    }
}

impl RunOutcome for PromoteReport {
    fn run_outcome(&self) -> Option<Finished> {
        match self {
            PromoteReport::Decided {
                training_id,
                promoted,
                reason,
                evaluation_rows,
                ..
            } => Some(Finished {
                batch_number: i32::try_from(*training_id).ok()?,
                finish: Finish::Done,
                note: Some(format!(
                    "{}: {reason}",
                    if *promoted { "promoted" } else { "rejected" }
                )),
                rows_in: Some(*evaluation_rows as u64),
                rows_out: None,
            }),
            PromoteReport::Duplicate { .. } | PromoteReport::Ignored { .. } => None,
        }
    }
}

/// The longest error text kept (the rest is cut, on a character boundary).
const ERROR_CHARS: usize = 4000;

/// One attempt of a stage at a batch, from its start: [`Attempt::finished`] or
/// [`Attempt::failed`] records how it ended.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    stage: Stage,
    started_at: OffsetDateTime,
    clock: Instant,
}

impl Attempt {
    /// An attempt starting now.
    pub fn start(stage: Stage) -> Self {
        Attempt {
            stage,
            started_at: OffsetDateTime::now_utc(),
            clock: Instant::now(),
        }
    }

    fn elapsed_seconds(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    /// Records, in the transaction that holds the stage's result, what the report says the
    /// attempt did (nothing when it did nothing: see [`RunOutcome`]).
    pub async fn finished(
        &self,
        transaction: &impl GenericClient,
        report: &impl RunOutcome,
    ) -> anyhow::Result<()> {
        let Some(run) = report.run_outcome() else {
            return Ok(());
        };
        let state = match run.finish {
            Finish::Done => "done",
            Finish::Skipped => "skipped",
        };
        let rows = |rows: Option<u64>| rows.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        transaction
            .execute(
                "INSERT INTO ops.stage_runs (batch_number, stage, state, note, started_at,
                                             duration_seconds, rows_in, rows_out)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (batch_number, stage) DO UPDATE
                 SET state = excluded.state, note = excluded.note,
                     started_at = excluded.started_at,
                     duration_seconds = excluded.duration_seconds,
                     rows_in = excluded.rows_in, rows_out = excluded.rows_out,
                     attempts = ops.stage_runs.attempts + 1, updated_at = clock_timestamp()",
                &[
                    &run.batch_number,
                    &self.stage.as_str(),
                    &state,
                    &run.note,
                    &self.started_at,
                    &self.elapsed_seconds(),
                    &rows(run.rows_in),
                    &rows(run.rows_out),
                ],
            )
            .await
            .with_context(|| {
                format!(
                    "recording {} of batch {} in ops.stage_runs",
                    self.stage.as_str(),
                    run.batch_number
                )
            })?;
        Ok(())
    }

    /// Does a stage's `work` in one transaction, committed and its announcements written
    /// ([`outbox::commit_then_flush`]), recording the attempt in that transaction when the
    /// report says it did something, and recording a failure after the rollback when
    /// `batch_number` is known (`None`: the event names no batch a run could be kept for).
    pub async fn commit_then_flush<R: RunOutcome>(
        self,
        db: &DbPool,
        objects: &ObjectStore,
        batch_number: Option<i32>,
        work: impl AsyncFnOnce(&Transaction<'_>) -> Result<Option<R>, crate::runtime::StageError>,
    ) -> Result<Option<R>, crate::runtime::StageError> {
        let outcome = outbox::commit_then_flush(db, objects, async |transaction| {
            let report = work(transaction).await?;
            if let Some(report) = &report {
                self.finished(transaction, report).await?;
            }
            Ok(report)
        })
        .await;
        if let (Err(error), Some(batch_number)) = (&outcome, batch_number) {
            self.failed(db, batch_number, error).await;
        }
        outcome
    }

    /// Records that the attempt at `batch_number` failed with `error`, in a transaction of its
    /// own (the attempt's rolled back). A `done` or `skipped` row is left as it is. The record
    /// is a courtesy to the operator: when it cannot be written, the reason is logged and the
    /// stage's own error stays the answer.
    pub async fn failed(&self, db: &DbPool, batch_number: i32, error: &impl std::fmt::Display) {
        let mut error = error.to_string();
        if let Some((cut, _)) = error.char_indices().nth(ERROR_CHARS) {
            error.truncate(cut);
        }
        let written: anyhow::Result<()> = async {
            let client = db.get().await.context("getting a database connection")?;
            client
                .execute(
                    "INSERT INTO ops.stage_runs (batch_number, stage, state, error, started_at,
                                                 duration_seconds)
                     VALUES ($1, $2, 'failed', $3, $4, $5)
                     ON CONFLICT (batch_number, stage) DO UPDATE
                     SET error = excluded.error, started_at = excluded.started_at,
                         duration_seconds = excluded.duration_seconds,
                         attempts = ops.stage_runs.attempts + 1, updated_at = clock_timestamp()
                     WHERE ops.stage_runs.state = 'failed'",
                    &[
                        &batch_number,
                        &self.stage.as_str(),
                        &error,
                        &self.started_at,
                        &self.elapsed_seconds(),
                    ],
                )
                .await?;
            Ok(())
        }
        .await;
        if let Err(record_error) = written {
            tracing::warn!(
                stage = self.stage.as_str(),
                batch = batch_number,
                error = format!("{record_error:#}"),
                "could not record a failed attempt in ops.stage_runs"
            );
        }
    }
}

/// Forgets the failed ingest attempts recorded against batches from `batch_number` on, in the
/// caller's transaction: the batch API answered that it has nothing left, so those batches
/// never existed, and the grid must not show them. (Ingest records a failure against the batch
/// it was after before it knows whether there is one.)
pub async fn forget_failed_ingests_from(
    transaction: &impl GenericClient,
    batch_number: i32,
) -> anyhow::Result<()> {
    transaction
        .execute(
            "DELETE FROM ops.stage_runs
             WHERE stage = 'ingest' AND state = 'failed' AND batch_number >= $1
               AND NOT EXISTS (SELECT 1 FROM ops.batches b
                               WHERE b.batch_number = ops.stage_runs.batch_number)",
            &[&batch_number],
        )
        .await
        .context("forgetting failed ingests of batches that do not exist")?;
    Ok(())
}

/// The state of a batch in a stage, as `GET /runs` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Done,
    Skipped,
    Failed,
    /// No attempt has finished yet (or none started: the stage before has not finished).
    Waiting,
}

/// One batch in one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRun {
    pub stage: Stage,
    pub state: RunState,
    /// Why it skipped, or what it decided.
    pub note: Option<String>,
    /// The last failed attempt's error (kept once a later attempt succeeded).
    pub error: Option<String>,
    /// The last attempt's start, RFC 3339.
    pub started_at: Option<String>,
    /// How long the last attempt took (unknown for work done before runs were recorded).
    pub duration_seconds: Option<f64>,
    pub rows_in: Option<i64>,
    pub rows_out: Option<i64>,
    /// Attempts that did the work or failed trying (0 while waiting).
    pub attempts: i32,
}

impl StageRun {
    fn waiting(stage: Stage) -> Self {
        StageRun {
            stage,
            state: RunState::Waiting,
            note: None,
            error: None,
            started_at: None,
            duration_seconds: None,
            rows_in: None,
            rows_out: None,
            attempts: 0,
        }
    }
}

/// A batch and its four stages, in pipeline order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRuns {
    pub batch_number: i32,
    pub stages: Vec<StageRun>,
}

/// The `limit` newest batches (by number, newest first), each with its four stages: every
/// batch ingest stored, and any batch a stage recorded a failure for.
pub async fn recent(client: &impl GenericClient, limit: i64) -> anyhow::Result<Vec<BatchRuns>> {
    let rows = client
        .query(
            "WITH recent AS (
                 SELECT batch_number FROM ops.batches
                 UNION SELECT batch_number FROM ops.stage_runs
                 ORDER BY batch_number DESC LIMIT $1
             )
             SELECT r.batch_number, s.stage, s.state, s.note, s.error, s.started_at,
                    s.duration_seconds, s.rows_in, s.rows_out, s.attempts
             FROM recent r LEFT JOIN ops.stage_runs s USING (batch_number)
             ORDER BY r.batch_number DESC",
            &[&limit],
        )
        .await
        .context("reading ops.stage_runs")?;
    let mut batches: Vec<BatchRuns> = Vec::new();
    for row in rows {
        let batch_number: i32 = row.get(0);
        if batches.last().map(|b| b.batch_number) != Some(batch_number) {
            batches.push(BatchRuns {
                batch_number,
                stages: Stage::ALL.into_iter().map(StageRun::waiting).collect(),
            });
        }
        let Some(stage) = row.get::<_, Option<&str>>(1) else {
            continue;
        };
        let stage: Stage = stage.parse().map_err(anyhow::Error::msg)?;
        let state = match row.get::<_, &str>(2) {
            "done" => RunState::Done,
            "skipped" => RunState::Skipped,
            "failed" => RunState::Failed,
            other => anyhow::bail!("ops.stage_runs holds an unknown state {other:?}"),
        };
        let started_at: OffsetDateTime = row.get(5);
        let batch = batches.last_mut().expect("pushed above");
        batch.stages[stage as usize] = StageRun {
            stage,
            state,
            note: row.get(3),
            error: row.get(4),
            started_at: Some(
                started_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .context("formatting started_at")?,
            ),
            duration_seconds: row.get(6),
            rows_in: row.get(7),
            rows_out: row.get(8),
            attempts: row.get(9),
        };
    }
    for batch in &mut batches {
        let train_skipped = batch.stages[Stage::Train as usize].state == RunState::Skipped;
        let promote = &mut batch.stages[Stage::Promote as usize];
        if train_skipped && promote.state == RunState::Waiting {
            promote.state = RunState::Skipped;
            promote.note = Some("train did not train on this batch: nothing to promote".into());
        }
    }
    Ok(batches)
}

/// Why a re-run was refused.
#[derive(Debug, thiserror::Error)]
pub enum RerunError {
    /// Ingest takes the next batch on each schedule firing; it is not re-run by batch.
    #[error(
        "ingest is not re-run by batch: each schedule firing takes the next batch the pipeline \
         lacks, a failed one included"
    )]
    NotByBatch,
    /// Only a stage whose last attempt failed is re-run.
    #[error(
        "the last {stage} attempt at batch {batch_number} did not fail ({state}): only a failed attempt is re-run"
    )]
    NotFailed {
        stage: &'static str,
        batch_number: i32,
        /// `done`, `skipped`, or `no attempt yet`.
        state: String,
    },
    /// The work was never announced (or its announcement is gone).
    #[error("no announcement {key} to write again")]
    NoAnnouncement { key: String },
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

/// What a re-run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rerun {
    pub stage: Stage,
    pub batch_number: i32,
    /// The object written again, whose event wakes the stage.
    pub reannounced: String,
}

/// Asks `stage` to redo `batch_number`, whose last attempt failed: its announcement is marked
/// unwritten in `ops.outbox` and the outbox flushed, which writes the same object again and so
/// delivers the stage a new object-created event. The stage, idempotent, then does the work (or
/// finds it done, if an attempt of its own got there first).
pub async fn rerun(
    db: &DbPool,
    objects: &ObjectStore,
    stage: Stage,
    batch_number: i32,
) -> Result<Rerun, RerunError> {
    let key = stage
        .announcement(batch_number)
        .ok_or(RerunError::NotByBatch)?;
    let mut client = db.get().await.context("getting a database connection")?;
    let transaction = tokio_postgres::Client::transaction(&mut client)
        .await
        .context("starting a transaction")?;
    let state: Option<String> = transaction
        .query_opt(
            "SELECT state FROM ops.stage_runs WHERE batch_number = $1 AND stage = $2 FOR UPDATE",
            &[&batch_number, &stage.as_str()],
        )
        .await
        .context("reading ops.stage_runs")?
        .map(|row| row.get(0));
    if state.as_deref() != Some("failed") {
        return Err(RerunError::NotFailed {
            stage: stage.as_str(),
            batch_number,
            state: state.unwrap_or_else(|| "no attempt yet".to_owned()),
        });
    }
    if catch_up::requeue(&transaction, std::slice::from_ref(&key), None)
        .await?
        .is_empty()
    {
        return Err(RerunError::NoAnnouncement { key });
    }
    transaction
        .commit()
        .await
        .context("committing the re-run")?;
    outbox::flush(&**client, objects).await?;
    tracing::info!(
        stage = stage.as_str(),
        batch = batch_number,
        key,
        "re-run asked: announcement written again"
    );
    Ok(Rerun {
        stage,
        batch_number,
        reannounced: key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::StoredBatch;

    #[test]
    fn stages_parse_from_their_names_and_name_their_announcements() {
        for stage in Stage::ALL {
            assert_eq!(stage.as_str().parse::<Stage>(), Ok(stage));
        }
        let error = "deploy".parse::<Stage>().unwrap_err();
        assert!(error.contains("\"deploy\""), "{error}");
        assert_eq!(Stage::Ingest.announcement(3), None);
        assert_eq!(
            Stage::Process.announcement(3).as_deref(),
            Some("raw/batch-000003/manifest.json")
        );
        assert_eq!(
            Stage::Train.announcement(3).as_deref(),
            Some("clean/batch-000003/manifest.json")
        );
        assert_eq!(
            Stage::Promote.announcement(3).as_deref(),
            Some("candidates/training-000003.json")
        );
        let announced: Vec<Stage> = Stage::ALL
            .into_iter()
            .filter(|stage| stage.announcement(3).is_some())
            .collect();
        assert_eq!(announced, Stage::ANNOUNCED);
    }

    #[test]
    fn only_reports_of_work_done_make_a_run() {
        let stored = IngestReport::Stored(StoredBatch {
            batch_number: 4,
            rows_received: 900,
            rows_sampled: 100,
            rows_flagged: 3,
            rows_stored: 100,
            response_bytes: 1,
            skipped_batches: Vec::new(),
            rewinds: 0,
            manifest_key: "m".into(),
        });
        assert_eq!(
            stored.run_outcome(),
            Some(Finished {
                batch_number: 4,
                finish: Finish::Done,
                note: None,
                rows_in: Some(900),
                rows_out: Some(100),
            })
        );
        let skipped = TrainReport::Skipped {
            batch_number: 5,
            reason: "too few rows".into(),
            drift: None,
            caught_up: Vec::new(),
            orphan_artifacts_removed: 0,
        };
        let run = skipped.run_outcome().unwrap();
        assert_eq!(run.finish, Finish::Skipped);
        assert_eq!(run.note.as_deref(), Some("too few rows"));
        for nothing in [
            IngestReport::Exhausted.run_outcome(),
            ProcessReport::Duplicate {
                batch_number: 1,
                caught_up: Vec::new(),
            }
            .run_outcome(),
            TrainReport::Duplicate {
                batch_number: 1,
                caught_up: Vec::new(),
                orphan_artifacts_removed: 0,
            }
            .run_outcome(),
            PromoteReport::Duplicate {
                training_id: 1,
                caught_up: Vec::new(),
            }
            .run_outcome(),
        ] {
            assert_eq!(nothing, None);
        }
    }
}
