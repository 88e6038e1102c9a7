//! The process stage: on a `raw/batch-NNNNNN/manifest.json` object event, clean that batch,
//! after every earlier batch a lost event left uncleaned.
//!
//! 1. **Catch-up.** Events get lost (a Knative in-memory channel drops one; a Lambda
//!    asynchronous event ends in the failure queue). So before its own batch, every invocation
//!    cleans each raw batch numbered below it that has no `ops.clean_batches` report, oldest
//!    first (the order matters: a listing is a duplicate of the *earlier* batch that kept it),
//!    each exactly as its own event would have (steps 2–5). The report lists them under
//!    `caught_up`. The last batch's lost event is repaired by the schedule (core's
//!    [`appraise_core::catch_up`], called by every ingest firing).
//! 2. Under a per-batch advisory lock, skip the batch if it was processed before (a redelivered
//!    or concurrent event), re-announcing it if a crash had left it unannounced.
//! 3. Read the batch's raw listings and apply the [`rules`] in order; count the rows each rule
//!    drops; drop exact duplicates within the batch and of listings kept from earlier batches.
//! 4. In one transaction: the batch's report (`ops.clean_batches`: counts per rule, statistics,
//!    the thresholds used) and the kept listings (`clean.listings`, by COPY).
//! 5. After commit, write `clean/batch-NNNNNN/manifest.json`, which wakes `train`.
//!
//! An event for a batch that is not in `ops.batches` is answered according to its manifest
//! object: written less than `STAGE_PENDING_WINDOW_SECS` ago (default 600), the batch's rows
//! are not visible yet (a commit seen late, a batch being ingested again), and the answer is
//! 503, which the platform retries; when it is older, or there is no such object, the event
//! can never succeed, and the answer is a final 400.
//!
//! Configuration ([`config::ProcessConfig::from_env`]): `PROCESS_PRICE_MIN`/`_MAX`,
//! `PROCESS_HOUSE_SIZE_MIN`/`_MAX`, `PROCESS_MAX_ROOMS` (the [`rules`]),
//! `STAGE_PENDING_WINDOW_SECS` (seconds, default 600; 0 rejects at once), `DATABASE_URL` and
//! the S3 variables.

pub mod config;
pub mod rules;
pub mod store;

pub use appraise_core::reports::{ProcessReport, ProcessedBatch};

use std::{collections::BTreeMap, collections::HashSet, sync::Arc, time::Duration};

use anyhow::Context;
use appraise_core::{
    catch_up,
    db::{DbPool, locks},
    events::{ObjectCreated, Trigger},
    runs::{Attempt, Stage},
    runtime::{self, StageError, StageResult},
};

use crate::{
    config::ProcessConfig,
    rules::{CleaningRules, Rule},
};

/// What cleaning one batch did (`None` from [`Process::clean_batch`]: no such batch).
enum Cleaned {
    Processed(ProcessedBatch),
    Duplicate,
}

/// The stage, with its clients built once. Cheap to clone.
#[derive(Clone)]
pub struct Process {
    inner: Arc<Inner>,
}

struct Inner {
    rules: CleaningRules,
    pending_window: Duration,
    db: DbPool,
    objects: appraise_core::objects::ObjectStore,
}

impl Process {
    /// The stage with these rules and the default pending window.
    pub fn new(
        rules: CleaningRules,
        db: DbPool,
        objects: appraise_core::objects::ObjectStore,
    ) -> Self {
        Self::from_config(
            ProcessConfig {
                rules,
                ..ProcessConfig::default()
            },
            db,
            objects,
        )
    }

    pub fn from_config(
        config: ProcessConfig,
        db: DbPool,
        objects: appraise_core::objects::ObjectStore,
    ) -> Self {
        Process {
            inner: Arc::new(Inner {
                rules: config.rules,
                pending_window: config.pending_window,
                db,
                objects,
            }),
        }
    }

    /// The entry point the runtime calls.
    pub async fn handle(&self, trigger: Trigger) -> StageResult {
        let object = runtime::object_event(trigger, "process runs on raw/ object events")?;
        runtime::report(&self.process_object(&object).await?)
    }

    /// Cleans the batch the object announces, after every earlier batch not cleaned yet.
    pub async fn process_object(
        &self,
        object: &ObjectCreated,
    ) -> Result<ProcessReport, StageError> {
        let Some(batch_number) = appraise_core::keys::batch_of_manifest("raw", &object.key) else {
            return Ok(ProcessReport::Ignored {
                key: object.key.clone(),
                reason: "not a raw/batch-NNNNNN/manifest.json key".to_owned(),
            });
        };
        if object.bucket != self.inner.objects.bucket() {
            return Err(StageError::Rejected(format!(
                "event for bucket {:?}, but this function works on {:?}",
                object.bucket,
                self.inner.objects.bucket()
            )));
        }
        let caught_up = self.catch_up(batch_number).await?;
        match self.clean_batch(batch_number).await? {
            Some(Cleaned::Processed(batch)) => Ok(ProcessReport::Processed(ProcessedBatch {
                caught_up,
                ..batch
            })),
            Some(Cleaned::Duplicate) => Ok(ProcessReport::Duplicate {
                batch_number,
                caught_up,
            }),
            None => Err(self
                .not_in_batches(batch_number, &object.key, &caught_up)
                .await),
        }
    }

    /// Cleans, oldest first, every raw batch below `batch_number` that has no report yet;
    /// returns those this invocation cleaned (a concurrent one may have cleaned others).
    async fn catch_up(&self, batch_number: i32) -> Result<Vec<i32>, StageError> {
        let pending = {
            let client = self.inner.db.get().await.map_err(|e| {
                StageError::Unavailable(format!("getting a database connection: {e}"))
            })?;
            store::unprocessed_before(&**client, batch_number).await?
        };
        let mut caught_up = Vec::with_capacity(pending.len());
        for earlier in pending {
            match self.clean_batch(earlier).await? {
                Some(Cleaned::Processed(_)) => {
                    metrics::counter!("process_batches_caught_up_total").increment(1);
                    tracing::warn!(
                        batch = earlier,
                        event_batch = batch_number,
                        "caught up a batch whose event never came"
                    );
                    caught_up.push(earlier);
                }
                Some(Cleaned::Duplicate) | None => {}
            }
        }
        Ok(caught_up)
    }

    /// The answer to an event for a batch that is not in `ops.batches`: retryable while its
    /// manifest is recent (see [`catch_up::not_visible_yet`]).
    async fn not_in_batches(&self, batch_number: i32, key: &str, caught_up: &[i32]) -> StageError {
        let mut missing = format!("batch {batch_number} is not in ops.batches: nothing to process");
        if !caught_up.is_empty() {
            missing.push_str(&format!(" (earlier batches {caught_up:?} were caught up)"));
        }
        let error = catch_up::not_visible_yet(
            &self.inner.objects,
            key,
            self.inner.pending_window,
            &format!("batch {batch_number}"),
            &missing,
        )
        .await;
        if matches!(error, StageError::Unavailable(_)) {
            metrics::counter!("process_not_visible_yet_total").increment(1);
        }
        error
    }

    /// Cleans one batch (idempotent) and announces it; `None` when it is not in
    /// `ops.batches`.
    async fn clean_batch(&self, batch_number: i32) -> Result<Option<Cleaned>, StageError> {
        let inner = &self.inner;
        let attempt = Attempt::start(Stage::Process);
        // Every failure from here on is recorded (on a connection of its own, when the database
        // answers again), so the Runs grid says "failed" rather than "waiting".
        let mut client = match inner.db.get().await {
            Ok(client) => client,
            Err(error) => {
                let error = format!("getting a database connection: {error}");
                attempt.failed(&inner.db, batch_number, &error).await;
                return Err(StageError::Unavailable(error));
            }
        };
        let outcome: anyhow::Result<Option<Cleaned>> = async {
            let transaction = tokio_postgres::Client::transaction(&mut client).await?;
            transaction
                .execute(
                    "SELECT pg_advisory_xact_lock($1, $2)",
                    &[&locks::PROCESS_CLASS, &batch_number],
                )
                .await
                .context("taking the batch lock")?;
            let batch_date = match store::batch_date(&transaction, batch_number).await? {
                Some(date) => date,
                None => return Ok(None),
            };
            if appraise_core::clean::is_cleaned(&transaction, batch_number).await? {
                return Ok(Some(Cleaned::Duplicate));
            }
            let mut dropped: BTreeMap<Rule, u64> = BTreeMap::new();
            let mut kept = Vec::new();
            let mut seen = HashSet::new();
            // Each raw row is checked as it is read, and only the kept ones are held.
            let rows_in = store::for_each_raw(&transaction, batch_number, |row| {
                match inner.rules.check(&row.listing, row.malformed, batch_date) {
                    Ok(clean) => {
                        let fingerprint = clean.fingerprint();
                        if seen.insert(fingerprint) {
                            kept.push((row.row_index, fingerprint, clean));
                        } else {
                            *dropped.entry(Rule::Duplicate).or_default() += 1;
                        }
                    }
                    Err(rule) => *dropped.entry(rule).or_default() += 1,
                }
            })
            .await?;
            let stats = store::statistics(kept.iter().map(|(_, _, listing)| listing));
            store::insert_report(
                &transaction,
                batch_number,
                rows_in,
                &dropped,
                &stats,
                &inner.rules,
            )
            .await?;
            let inserted = store::insert_listings(&transaction, batch_number, &kept).await?;
            // Listings kept by an earlier batch are duplicates too.
            let earlier_duplicates = kept.len() as u64 - inserted;
            if earlier_duplicates > 0 {
                *dropped.entry(Rule::Duplicate).or_default() += earlier_duplicates;
            }
            store::finish_report(&transaction, batch_number, inserted, &dropped).await?;
            let processed = ProcessedBatch {
                batch_number,
                rows_in,
                rows_kept: inserted,
                dropped: rules::drop_counts(&dropped),
                manifest_key: store::manifest_key(batch_number),
                caught_up: Vec::new(),
            };
            attempt.finished(&transaction, &processed).await?;
            transaction
                .commit()
                .await
                .context("committing the clean batch")?;
            Ok(Some(Cleaned::Processed(processed)))
        }
        .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                // Rolled back: the failure is recorded on its own.
                attempt
                    .failed(&inner.db, batch_number, &format!("{error:#}"))
                    .await;
                return Err(error.into());
            }
        };
        let cleaned = match outcome {
            Some(cleaned) => cleaned,
            None => return Ok(None),
        };
        // Committed: announce (this also repairs an announcement a crash prevented).
        appraise_core::outbox::flush(&**client, &inner.objects)
            .await
            .map_err(StageError::from)?;
        if let Cleaned::Processed(batch) = &cleaned {
            record(batch);
        }
        Ok(Some(cleaned))
    }
}

/// Counts and logs a cleaned batch.
fn record(batch: &ProcessedBatch) {
    metrics::counter!("process_rows_in_total").increment(batch.rows_in);
    metrics::counter!("process_rows_kept_total").increment(batch.rows_kept);
    for (rule, count) in &batch.dropped {
        let count = count.as_u64().unwrap_or(0);
        if count > 0 {
            metrics::counter!("process_rows_dropped_total", "rule" => rule.clone())
                .increment(count);
        }
    }
    tracing::info!(
        batch = batch.batch_number,
        rows_in = batch.rows_in,
        kept = batch.rows_kept,
        "batch cleaned"
    );
}
