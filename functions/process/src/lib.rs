//! The process stage: on a `raw/batch-NNNNNN/manifest.json` object event, clean that batch.
//!
//! 1. Under a per-batch advisory lock, skip the batch if it was processed before (a redelivered
//!    or concurrent event), re-announcing it if a crash had left it unannounced.
//! 2. Read the batch's raw listings and apply the [`rules`] in order; count the rows each rule
//!    drops; drop exact duplicates within the batch and of listings kept from earlier batches.
//! 3. In one transaction: the batch's report (`ops.clean_batches`: counts per rule, statistics,
//!    the thresholds used) and the kept listings (`clean.listings`, by COPY).
//! 4. After commit, write `clean/batch-NNNNNN/manifest.json`, which wakes `train`.

pub mod rules;
pub mod store;

use std::{collections::BTreeMap, collections::HashSet, sync::Arc};

use anyhow::Context;
use appraise_core::{
    db::{DbPool, locks},
    events::{ObjectCreated, Trigger},
    runtime::{self, StageError, StageResult},
};
use serde::{Deserialize, Serialize};

use crate::rules::{CleaningRules, Rule};

/// What one object event did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ProcessReport {
    /// The batch was cleaned and announced.
    Processed(ProcessedBatch),
    /// The batch had been processed before; nothing was done (but announcing it, if needed).
    Duplicate { batch_number: i32 },
    /// The object is not a batch manifest; nothing to do.
    Ignored { key: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessedBatch {
    pub batch_number: i32,
    pub rows_in: u64,
    pub rows_kept: u64,
    /// Rows dropped per rule (every rule, zeros included).
    pub dropped: serde_json::Map<String, serde_json::Value>,
    pub manifest_key: String,
}

/// The stage, with its clients built once. Cheap to clone.
#[derive(Clone)]
pub struct Process {
    inner: Arc<Inner>,
}

struct Inner {
    rules: CleaningRules,
    db: DbPool,
    objects: appraise_core::objects::ObjectStore,
}

impl Process {
    pub fn new(
        rules: CleaningRules,
        db: DbPool,
        objects: appraise_core::objects::ObjectStore,
    ) -> Self {
        Process {
            inner: Arc::new(Inner { rules, db, objects }),
        }
    }

    /// The entry point the runtime calls.
    pub async fn handle(&self, trigger: Trigger) -> StageResult {
        let object = runtime::object_event(trigger, "process runs on raw/ object events")?;
        runtime::report(&self.process_object(&object).await?)
    }

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
        let report = self.process_batch(batch_number).await?;
        if let ProcessReport::Processed(batch) = &report {
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
        Ok(report)
    }

    /// Cleans one batch (idempotent).
    pub async fn process_batch(&self, batch_number: i32) -> Result<ProcessReport, StageError> {
        let inner = &self.inner;
        let mut client =
            inner.db.get().await.map_err(|e| {
                StageError::Unavailable(format!("getting a database connection: {e}"))
            })?;
        let outcome: anyhow::Result<Option<ProcessReport>> = async {
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
            if store::already_processed(&transaction, batch_number).await? {
                return Ok(Some(ProcessReport::Duplicate { batch_number }));
            }
            let raw = store::read_raw(&transaction, batch_number).await?;
            let rows_in = raw.len() as u64;
            let mut dropped: BTreeMap<Rule, u64> = BTreeMap::new();
            let mut kept = Vec::with_capacity(raw.len());
            let mut seen = HashSet::with_capacity(raw.len());
            for row in raw {
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
            }
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
            transaction
                .commit()
                .await
                .context("committing the clean batch")?;
            Ok(Some(ProcessReport::Processed(ProcessedBatch {
                batch_number,
                rows_in,
                rows_kept: inserted,
                dropped: rules::drop_counts(&dropped),
                manifest_key: store::manifest_key(batch_number),
            })))
        }
        .await;
        let report = match outcome {
            Ok(Some(report)) => report,
            Ok(None) => {
                return Err(StageError::Rejected(format!(
                    "batch {batch_number} is not in ops.batches: nothing to process"
                )));
            }
            Err(error) => return Err(error.into()),
        };
        // Committed: announce (this also repairs an announcement a crash prevented).
        appraise_core::outbox::flush(&**client, &inner.objects)
            .await
            .map_err(StageError::from)?;
        Ok(report)
    }
}
