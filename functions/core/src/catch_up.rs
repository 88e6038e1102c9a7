//! Catch-up: announcing again the work that a lost event left undone.
//!
//! Stages are chained by object-created events, and platforms lose some: a Knative in-memory
//! channel drops one, a Lambda asynchronous event ends in the failure queue after its retries.
//! The stage that should have acted then never learns of the work. A later event repairs most
//! of it (process cleans every older unprocessed batch before its own), but nothing follows
//! the announcement of the *last* batch, clean batch or training. So the schedule repairs it:
//! on every firing, ingest calls [`reannounce_stalled`], which finds work announced more than
//! [`CatchUpConfig::after`] ago that the next stage never acted on,
//!
//! | announced work | acted on when there is | re-announced object |
//! |---|---|---|
//! | a raw batch (`ops.batches`) | its `ops.clean_batches` report | `raw/batch-NNNNNN/manifest.json` |
//! | a clean batch (`ops.clean_batches`) | its `ops.trainings` decision | `clean/batch-NNNNNN/manifest.json` |
//! | a training that trained (`ops.trainings`, decision `train`) | its `ops.promotions` decision | `candidates/training-NNNNNN.json` |
//!
//! and writes its announcement again: the object's row in `ops.outbox` (which keeps every
//! announcement's key and body) is marked unwritten and the outbox is flushed, which writes
//! the very same bytes and so emits a new object-created event. Each re-announcement is
//! logged and counted in `catch_up_reannounced_total{stage}` (the stage it wakes).
//!
//! Work a stage is doing right now is left alone: a stage at work holds its advisory lock
//! (process the batch's, train and promote their global one), and `pg_locks` shows it, so a
//! training that runs for minutes is not announced again while it runs. Re-announcing is
//! safe anyway, because every stage is idempotent: if the work was only slow, not lost, the
//! second event finds it done (or waits on the stage's lock and then finds it done).
//! The outbox row's `written_at` is the clock: a re-announced object is written again, so it
//! is announced at most once per [`CatchUpConfig::after`], and two firings at once cannot both
//! re-announce it (the second's update finds the row already unwritten).

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::{
    config::{self, ConfigError},
    db::{DbPool, locks},
    objects::ObjectStore,
    outbox,
    runs::Stage,
};

/// How long an announcement may go unanswered before it is made again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CatchUpConfig {
    /// `CATCH_UP_AFTER_SECS` (default 60): the time since an announcement was written after
    /// which work no stage acted on counts as lost. It should exceed the time a stage may
    /// take to start on an event (the platform's delivery delay and retries); too short only
    /// costs events the stages answer with `duplicate`.
    pub after: Duration,
}

impl CatchUpConfig {
    pub const DEFAULT_AFTER: Duration = Duration::from_secs(60);

    /// Reads `CATCH_UP_AFTER_SECS` (seconds, fractions allowed; default 60).
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(CatchUpConfig {
            after: config::seconds("CATCH_UP_AFTER_SECS", Self::DEFAULT_AFTER)?,
        })
    }
}

impl Default for CatchUpConfig {
    fn default() -> Self {
        CatchUpConfig {
            after: Self::DEFAULT_AFTER,
        }
    }
}

/// One announcement made again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reannounced {
    /// The stage the object wakes: `process`, `train` or `promote`.
    pub stage: String,
    pub key: String,
}

/// Finds work announced at least `after` ago that the next stage never acted on, and
/// announces it again (see the module docs). Returns what was re-announced, in pipeline
/// order, oldest first within a stage.
pub async fn reannounce_stalled(
    db: &DbPool,
    objects: &ObjectStore,
    config: CatchUpConfig,
) -> anyhow::Result<Vec<Reannounced>> {
    let client = db.get().await.context("getting a database connection")?;
    let mut reannounced = Vec::new();
    for stage in Stage::ANNOUNCED {
        let name = stage.as_str();
        // Registered at 0, so a first increment shows in Prometheus's `increase()`.
        metrics::counter!("catch_up_reannounced_total", "stage" => name).increment(0);
        let candidates = unanswered(&**client, stage).await?;
        if candidates.is_empty() {
            continue;
        }
        let requeued = requeue(&**client, &candidates, Some(config.after))
            .await
            .with_context(|| format!("re-queueing announcements for {name}"))?;
        for key in candidates.into_iter().filter(|key| requeued.contains(key)) {
            tracing::warn!(
                stage = name,
                key,
                after_secs = config.after.as_secs_f64(),
                "no stage acted on this announcement: announcing it again"
            );
            metrics::counter!("catch_up_reannounced_total", "stage" => name).increment(1);
            reannounced.push(Reannounced {
                stage: name.to_owned(),
                key,
            });
        }
    }
    if !reannounced.is_empty() {
        outbox::flush(&**client, objects).await?;
    }
    Ok(reannounced)
}

/// Marks announcements (their `ops.outbox` rows, by key) unwritten, so the next
/// [`outbox::flush`] writes them again and their object-created events wake their stages
/// again. With `min_age`, only those written at least that long ago (how catch-up re-announces
/// lost work, and why two firings at once cannot both re-announce it); without, whatever their
/// age (how an operator re-runs a failed stage, [`crate::runs::rerun`]). Returns the keys
/// marked, each of `keys` that has such an announcement.
pub async fn requeue(
    client: &impl tokio_postgres::GenericClient,
    keys: &[String],
    min_age: Option<Duration>,
) -> anyhow::Result<Vec<String>> {
    let min_age_secs = min_age.map(|age| age.as_secs_f64());
    let rows = client
        .query(
            "UPDATE ops.outbox SET written_at = NULL
             WHERE key = ANY($1)
               AND ($2::float8 IS NULL OR written_at <= now() - make_interval(secs => $2))
             RETURNING key",
            &[&keys, &min_age_secs],
        )
        .await
        .with_context(|| format!("re-queueing the announcements {keys:?}"))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// `pg_locks` rows of granted advisory locks in this database, as `l`.
const ADVISORY_LOCKS: &str = "pg_locks l WHERE l.locktype = 'advisory' AND l.granted
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// Whether a one-key advisory lock (`pg_advisory_xact_lock(bigint)`) is held, given its key
/// as `$1`: `pg_locks` shows it as the key's high half, its low half, and `objsubid` 1.
fn one_key_lock_held() -> String {
    format!(
        "EXISTS (SELECT 1 FROM {ADVISORY_LOCKS}
                 AND l.classid = ($1::bigint >> 32)::oid
                 AND l.objid = ($1::bigint & 4294967295)::oid
                 AND l.objsubid = 1)"
    )
}

/// The announcement keys ([`Stage::announcement`]) of the work `stage` has not acted on and is
/// not acting on now (a stage at work holds its advisory lock: a long training is not
/// announced again while it runs), oldest first.
async fn unanswered(
    client: &impl tokio_postgres::GenericClient,
    stage: Stage,
) -> anyhow::Result<Vec<String>> {
    let batch_numbers: Vec<i32> = match stage {
        Stage::Ingest => Vec::new(),
        Stage::Process => client
            .query(
                &format!(
                    "SELECT b.batch_number FROM ops.batches b
                     WHERE NOT EXISTS (SELECT 1 FROM ops.clean_batches c
                                       WHERE c.batch_number = b.batch_number)
                       AND NOT EXISTS (SELECT 1 FROM {ADVISORY_LOCKS}
                                       AND l.classid = ($1::bigint)::oid
                                       AND l.objid = (b.batch_number::bigint)::oid
                                       AND l.objsubid = 2)
                     ORDER BY b.batch_number"
                ),
                &[&i64::from(locks::PROCESS_CLASS)],
            )
            .await
            .context("looking for raw batches no process acted on")?
            .iter()
            .map(|row| row.get(0))
            .collect(),
        Stage::Train => client
            .query(
                &format!(
                    "SELECT c.batch_number FROM ops.clean_batches c
                     WHERE NOT EXISTS (SELECT 1 FROM ops.trainings t
                                       WHERE t.batch_number = c.batch_number)
                       AND NOT {}
                     ORDER BY c.batch_number",
                    one_key_lock_held()
                ),
                &[&locks::TRAIN],
            )
            .await
            .context("looking for clean batches no train acted on")?
            .iter()
            .map(|row| row.get(0))
            .collect(),
        Stage::Promote => client
            .query(
                &format!(
                    // A training's id is its batch's number.
                    "SELECT t.batch_number FROM ops.trainings t
                     WHERE t.decision = 'train'
                       AND NOT EXISTS (SELECT 1 FROM ops.promotions p WHERE p.training_id = t.id)
                       AND NOT {}
                     ORDER BY t.id",
                    one_key_lock_held()
                ),
                &[&locks::PROMOTE],
            )
            .await
            .context("looking for trainings no promote acted on")?
            .iter()
            .map(|row| row.get(0))
            .collect(),
    };
    Ok(batch_numbers
        .into_iter()
        .filter_map(|batch_number| stage.announcement(batch_number))
        .collect())
}

/// The answer to an event whose work the stage cannot see (no row for the batch or training
/// it names): while the object that announced it is younger than `window`
/// (`STAGE_PENDING_WINDOW_SECS`), a retryable [`StageError::Unavailable`](crate::runtime::StageError::Unavailable) (503), since its rows
/// may still become visible (a commit seen late, or redone after it was lost); once the object
/// is older, or when there is no such object, a final [`StageError::Rejected`](crate::runtime::StageError::Rejected) (400).
/// `subject` names the work (`batch 3`); `missing` says what is missing, as a sentence
/// (`batch 3 is not in ops.batches: nothing to process`). An object whose write time the
/// bucket does not give, or gives in the future, counts as just written.
pub async fn not_visible_yet(
    objects: &ObjectStore,
    key: &str,
    window: Duration,
    subject: &str,
    missing: &str,
) -> crate::runtime::StageError {
    use crate::runtime::StageError;
    let head = match objects.head(key).await {
        Ok(head) => head,
        Err(error) => {
            return StageError::Unavailable(format!(
                "{missing}, and whether {key} is recent could not be read: {error:#}"
            ));
        }
    };
    let Some(head) = head else {
        return StageError::Rejected(format!(
            "{missing}, and there is no object {key} (it does not exist)"
        ));
    };
    let age = head.last_modified.map(|written| {
        std::time::SystemTime::now()
            .duration_since(written)
            .unwrap_or_default()
    });
    let written = age.map_or_else(
        || "at a time the bucket does not give".to_owned(),
        |age| format!("{}s ago", age.as_secs()),
    );
    match age {
        Some(age) if age >= window => StageError::Rejected(format!(
            "{missing}: {key} was written {written}, longer ago than the {}s \
             STAGE_PENDING_WINDOW_SECS waits for it",
            window.as_secs_f64()
        )),
        _ => StageError::Unavailable(format!(
            "{subject} is not visible yet ({missing}); {key} was written {written}: retry (for \
             up to STAGE_PENDING_WINDOW_SECS = {}s after it was written)",
            window.as_secs_f64()
        )),
    }
}
