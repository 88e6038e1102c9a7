//! The ingest stage: on each schedule firing, take the next batch from the batch API, sample
//! it, and store it.
//!
//! One firing stores at most one batch, in this order:
//!
//! 1. under a PostgreSQL advisory lock (the API's cursor is global, so one ingest talks to it at
//!    a time), skip the firing if its id was handled before: a redelivery does nothing;
//! 2. note which batch number is wanted next (`last stored + 1`; before anything is stored,
//!    whatever the sequence starts with), then follow the API's cursor to it, rewinding when an
//!    answer may have been lost in flight (see [`cursor`]: the base of the numbering is learned,
//!    and a lost first, middle or last batch is fetched again); the API's `400` end-of-data
//!    answer is a normal outcome;
//! 3. sample the records (seeded: the sample of batch `b` depends only on the seed and `b`),
//!    read each sampled record into typed fields, flagging but keeping those with missing or
//!    wrong-typed fields;
//! 4. write the response as received to `raw/batch-NNNNNN/response.json.gz`, then COPY the
//!    sampled listings and the batch's row in one transaction and commit;
//! 5. only then write `raw/batch-NNNNNN/manifest.json`, whose creation wakes `process`: it is
//!    queued in the same transaction (core's outbox) and written after the commit; a crash
//!    in between is repaired by the next firing, which flushes the outbox first.
//!
//! Besides the schedule, an operator can ask for a firing: the predictor's `POST /runs/ingest`
//! writes `triggers/ingest/<id>.json`, whose object-created event ingest takes as a firing with
//! that key for its id (so a redelivery of it does nothing).
//!
//! After its own work, whatever came of it (a batch stored, the API exhausted, a redelivered
//! firing, a failure), every firing runs the pipeline's catch-up
//! ([`appraise_core::catch_up`]): work announced more than `CATCH_UP_AFTER_SECS` ago (default
//! 60) that the next stage never acted on, because its event was lost, is announced again. The
//! report lists those keys under `reannounced`.

pub mod config;
pub mod cursor;
pub mod source_client;
pub mod store;

pub use appraise_core::reports::{FiringReport, IngestReport, StoredBatch};

use std::sync::Arc;

use anyhow::Context;
use appraise_core::{
    catch_up::{self, CatchUpConfig},
    db::{DbPool, locks},
    events::{ScheduleTick, Trigger},
    keys,
    listing::parse_api_record,
    objects::ObjectStore,
    outbox,
    rng::{SplitMix64, sample_indices},
    runs::{self, Attempt, Stage},
    runtime::{StageError, StageResult},
};
use tokio_postgres::Transaction;

use crate::{
    config::IngestConfig,
    cursor::{Taken, Wanted},
    source_client::SourceClient,
    store::{BatchRow, SampledRecord},
};

/// The stage, with its clients built once. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
    catch_up: CatchUpConfig,
}

struct Inner {
    config: IngestConfig,
    db: DbPool,
    objects: ObjectStore,
    source: SourceClient,
}

impl Ingest {
    pub fn new(config: IngestConfig, db: DbPool, objects: ObjectStore) -> anyhow::Result<Self> {
        let source = SourceClient::new(config.source.clone())?;
        Ok(Ingest {
            inner: Arc::new(Inner {
                config,
                db,
                objects,
                source,
            }),
            catch_up: CatchUpConfig::default(),
        })
    }

    /// The same stage with these catch-up settings (the default: `CATCH_UP_AFTER_SECS` 60).
    pub fn with_catch_up(self, catch_up: CatchUpConfig) -> Self {
        Ingest { catch_up, ..self }
    }

    /// The entry point the runtime calls.
    pub async fn handle(&self, trigger: Trigger) -> StageResult {
        match trigger {
            Trigger::Schedule(tick) => {
                let report = self.fire(&tick).await?;
                Ok(serde_json::to_value(report).expect("a report serializes"))
            }
            // An operator's request (the predictor's POST /runs/ingest): a firing whose id is
            // the request's key, so a redelivered request does nothing.
            Trigger::ObjectCreated(object) if keys::is_ingest_request(&object.key) => {
                if object.bucket != self.inner.objects.bucket() {
                    return Err(StageError::Rejected(format!(
                        "ingest request in bucket {:?}, but this function works on {:?}",
                        object.bucket,
                        self.inner.objects.bucket()
                    )));
                }
                let tick = ScheduleTick {
                    id: Some(object.key),
                    time: None,
                    payload: serde_json::Value::Null,
                };
                let report = self.fire(&tick).await?;
                Ok(serde_json::to_value(report).expect("a report serializes"))
            }
            Trigger::ObjectCreated(object) => Err(StageError::Rejected(format!(
                "ingest runs on the schedule and on triggers/ingest/ requests, and takes no \
                 other object events (got {})",
                object.key
            ))),
        }
    }

    /// Handles one schedule firing: [`Ingest::ingest_tick`], then the catch-up, which runs
    /// whatever the firing's own outcome; a failure of the firing's own work is still the
    /// answer (so the platform retries it), a failure of the catch-up only goes in the report.
    pub async fn fire(&self, tick: &ScheduleTick) -> Result<FiringReport, StageError> {
        let own = self.ingest_tick(tick).await;
        let (reannounced, catch_up_error) =
            match catch_up::reannounce_stalled(&self.inner.db, &self.inner.objects, self.catch_up)
                .await
            {
                Ok(done) => (done.into_iter().map(|r| r.key).collect(), None),
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "catch-up failed");
                    (Vec::new(), Some(format!("{error:#}")))
                }
            };
        Ok(FiringReport {
            ingest: own?,
            reannounced,
            catch_up_error,
        })
    }

    /// Handles one schedule firing's own work (no catch-up).
    pub async fn ingest_tick(&self, tick: &ScheduleTick) -> Result<IngestReport, StageError> {
        let attempt = Attempt::start(Stage::Ingest);
        let mut batch_number = None;
        let report = match self
            .ingest_tick_inner(tick, &attempt, &mut batch_number)
            .await
        {
            Ok(report) => report,
            Err(error) => {
                // The batch it was after, once known (not for the very first batch, whose
                // number only the batch API's answer tells).
                if let Some(batch_number) = batch_number {
                    attempt
                        .failed(&self.inner.db, batch_number, &format!("{error:#}"))
                        .await;
                }
                return Err(error.into());
            }
        };
        let outcome = match &report {
            IngestReport::Stored(_) => "stored",
            IngestReport::Exhausted => "exhausted",
            IngestReport::Duplicate { .. } => "duplicate",
        };
        metrics::counter!("ingest_firings_total", "outcome" => outcome).increment(1);
        if let IngestReport::Stored(batch) = &report {
            metrics::counter!("ingest_rows_received_total").increment(batch.rows_received as u64);
            metrics::counter!("ingest_rows_sampled_total").increment(batch.rows_sampled as u64);
            metrics::counter!("ingest_rows_flagged_total").increment(batch.rows_flagged as u64);
            tracing::info!(
                batch = batch.batch_number,
                received = batch.rows_received,
                sampled = batch.rows_sampled,
                flagged = batch.rows_flagged,
                "batch stored"
            );
        }
        Ok(report)
    }

    /// The firing's work; `batch_number` is set to the batch it is after as soon as that is
    /// known, so a failure can be recorded against it.
    async fn ingest_tick_inner(
        &self,
        tick: &ScheduleTick,
        attempt: &Attempt,
        batch_number: &mut Option<i32>,
    ) -> anyhow::Result<IngestReport> {
        let inner = &self.inner;
        let mut client = inner
            .db
            .get()
            .await
            .context("getting a database connection")?;
        let transaction = tokio_postgres::Client::transaction(&mut client).await?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&locks::INGEST])
            .await
            .context("taking the ingest lock")?;

        if let Some(id) = &tick.id {
            let previous = transaction
                .query_opt(
                    "SELECT outcome, batch_number FROM ops.schedule_ticks WHERE trigger_id = $1",
                    &[id],
                )
                .await?;
            if let Some(row) = previous {
                transaction.commit().await?;
                return Ok(IngestReport::Duplicate {
                    trigger_id: id.clone(),
                    previous_outcome: row.get(0),
                    batch_number: row.get(1),
                });
            }
        }

        let last_stored: Option<i32> = transaction
            .query_one("SELECT max(batch_number) FROM ops.batches", &[])
            .await?
            .get(0);
        let in_flight: Option<i32> = transaction
            .query_one("SELECT fetch_in_flight_for FROM ops.ingest_cursor", &[])
            .await?
            .get(0);
        let wanted = match last_stored {
            None => Wanted::First,
            Some(last) => Wanted::Number(last + 1),
        };
        let earlier_loss = match wanted {
            Wanted::Number(number) => in_flight == Some(number),
            Wanted::First => false,
        };
        if let Wanted::Number(number) = wanted {
            *batch_number = Some(number);
        }
        self.mark_in_flight(wanted).await?;

        let taken = cursor::take_batch(&inner.source, wanted, earlier_loss).await?;
        if let Some(taken) = &taken {
            *batch_number = Some(taken.batch.batch_number);
        }
        let report = match taken {
            None => {
                record_tick(&transaction, tick, "exhausted", None).await?;
                // Failures recorded against the batch this firing was after: there is none.
                if let Wanted::Number(number) = wanted {
                    runs::forget_failed_ingests_from(&transaction, number).await?;
                }
                IngestReport::Exhausted
            }
            Some(taken) => {
                let first = last_stored.is_none();
                let stored = self.store_batch(&transaction, taken, first).await?;
                record_tick(&transaction, tick, "stored", Some(stored.batch_number)).await?;
                IngestReport::Stored(stored)
            }
        };
        transaction
            .execute(
                "UPDATE ops.ingest_cursor SET fetch_in_flight_for = NULL, updated_at = now()",
                &[],
            )
            .await?;
        attempt.finished(&transaction, &report).await?;
        transaction.commit().await.context("committing the batch")?;
        // The rows are committed: now announce them (and anything a crash left unannounced).
        outbox::flush(&**client, &inner.objects).await?;
        Ok(report)
    }

    /// Notes, in its own committed write, that a fetch for `wanted` is about to start, so a
    /// later firing knows the batch may have been lost in flight if this one never stores it.
    /// (Before anything is stored there is nothing to note: every such firing rewinds first.)
    async fn mark_in_flight(&self, wanted: Wanted) -> anyhow::Result<()> {
        let number = match wanted {
            Wanted::Number(number) => Some(number),
            Wanted::First => None,
        };
        let client = self.inner.db.get().await?;
        client
            .execute(
                "UPDATE ops.ingest_cursor SET fetch_in_flight_for = $1, updated_at = now()",
                &[&number],
            )
            .await?;
        Ok(())
    }

    async fn store_batch(
        &self,
        transaction: &Transaction<'_>,
        taken: Taken,
        first: bool,
    ) -> anyhow::Result<StoredBatch> {
        let inner = &self.inner;
        let Taken {
            batch,
            skipped: skipped_batches,
            rewinds,
        } = taken;
        let sampling = inner.config.sampling;
        let rows_received = batch.record_count();
        let sample_size = if first {
            sampling.first_batch
        } else {
            sampling.later_batches
        };
        let mut rng = SplitMix64::keyed(sampling.seed, &[batch.batch_number as u64]);
        let chosen = sample_indices(&mut rng, rows_received, sample_size);
        let sampled: Vec<SampledRecord> = chosen
            .iter()
            .map(|&index| {
                let original = batch.record(index);
                SampledRecord {
                    row_index: index as i32,
                    parsed: parse_api_record(original),
                    original,
                }
            })
            .collect();
        let rows_flagged = sampled
            .iter()
            .filter(|record| !record.parsed.problems.is_empty())
            .count();

        let response_key = store::response_key(batch.batch_number);
        let response_bytes =
            store::put_response(&inner.objects, &response_key, batch.body.clone()).await?;
        let group_number = batch
            .group_number
            .map_or(inner.config.source.group_number as i32, |g| g as i32);
        store::insert_batch(
            transaction,
            &BatchRow {
                batch_number: batch.batch_number,
                group_number,
                day: batch
                    .day
                    .clone()
                    .or_else(|| inner.config.source.day.clone()),
                rows_received: rows_received as i32,
                rows_sampled: sampled.len() as i32,
                rows_flagged: rows_flagged as i32,
                sample_seed: sampling.seed as i64,
                response_bytes: response_bytes as i64,
            },
        )
        .await?;
        let rows_stored = store::copy_listings(transaction, batch.batch_number, &sampled).await?;
        Ok(StoredBatch {
            batch_number: batch.batch_number,
            rows_received,
            rows_sampled: sampled.len(),
            rows_flagged,
            rows_stored,
            response_bytes,
            skipped_batches,
            rewinds,
            manifest_key: store::manifest_key(batch.batch_number),
        })
    }
}

async fn record_tick(
    transaction: &Transaction<'_>,
    tick: &ScheduleTick,
    outcome: &str,
    batch_number: Option<i32>,
) -> anyhow::Result<()> {
    if let Some(id) = &tick.id {
        transaction
            .execute(
                "INSERT INTO ops.schedule_ticks (trigger_id, outcome, batch_number)
                 VALUES ($1, $2, $3)",
                &[id, &outcome, &batch_number],
            )
            .await
            .context("recording the schedule firing")?;
    }
    Ok(())
}
