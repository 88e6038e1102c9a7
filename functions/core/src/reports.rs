//! What each stage answers for one trigger: the reports the runtime returns as JSON, the
//! platforms log, and the harness reads back. They live here, beside the other types the
//! stages share, so the harness (and any other reader) deserializes the very types the stages
//! serialize instead of picking fields out of untyped JSON.
//!
//! Every report is tagged by `outcome` (`stored`, `processed`, `trained`, `decided`, …).

use serde::{Deserialize, Serialize};

use crate::model::metrics::Metrics;

// ---- ingest ----

/// What one schedule firing did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IngestReport {
    /// A batch was stored and announced.
    Stored(StoredBatch),
    /// The batch API has nothing left.
    Exhausted,
    /// This firing was handled before; nothing was done.
    Duplicate {
        trigger_id: String,
        previous_outcome: String,
        batch_number: Option<i32>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredBatch {
    pub batch_number: i32,
    /// Records in the batch as received.
    pub rows_received: usize,
    /// Records kept by sampling (and stored in `raw.listings`).
    pub rows_sampled: usize,
    /// Stored records with at least one missing or wrong-typed field.
    pub rows_flagged: usize,
    /// Rows COPY wrote.
    pub rows_stored: u64,
    /// Size of the compressed response object.
    pub response_bytes: u64,
    /// Batches fetched and dropped on the way to this one (already stored, or fetched while
    /// recovering from an answer lost in flight).
    pub skipped_batches: Vec<i32>,
    /// How many times the batch API was rewound to recover a lost answer.
    pub rewinds: u32,
    pub manifest_key: String,
}

/// What one schedule firing did: its own work, then the catch-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiringReport {
    #[serde(flatten)]
    pub ingest: IngestReport,
    /// Announcements made again because no stage acted on them (their events were lost);
    /// left out of the JSON when there were none, so a firing's report reads as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reannounced: Vec<String>,
    /// Why the catch-up failed, if it did (the next firing tries again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_error: Option<String>,
}

// ---- process ----

/// What one object event did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ProcessReport {
    /// The batch was cleaned and announced.
    Processed(ProcessedBatch),
    /// The batch had been processed before; nothing was done (but announcing it, if needed,
    /// and catching up earlier batches).
    Duplicate {
        batch_number: i32,
        /// Earlier batches a lost event had left uncleaned, cleaned first, in order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        caught_up: Vec<i32>,
    },
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
    /// Earlier batches a lost event had left uncleaned, cleaned first, in order (left out of
    /// the JSON when there were none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caught_up: Vec<i32>,
}

// ---- train ----

/// A short account of a drift report, for logs and the harness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftSummary {
    pub drifted: bool,
    pub worst_feature: Option<String>,
    pub worst_statistic: Option<f64>,
}

/// One trained model, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub version: String,
    pub algorithm: String,
    pub validation: Metrics,
    pub test: Metrics,
    pub fit_seconds: f64,
    pub artifact_key: String,
}

/// What one object event did: the decision on its batch, and what the invocation repaired
/// before taking it.
///
/// `caught_up` lists the older clean batches this invocation decided first because their own
/// events never came (oldest first); `orphan_artifacts_removed` counts the objects under
/// `models/` it deleted because no `ops.model_versions` row claims them (left by a training
/// that uploaded and then never committed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TrainReport {
    Trained {
        /// The training's id, which is its batch's number.
        training_id: i64,
        batch_number: i32,
        reason: String,
        drift: Option<DriftSummary>,
        rows_train: usize,
        rows_validation: usize,
        rows_test: usize,
        candidates: Vec<Candidate>,
        #[serde(default)]
        caught_up: Vec<i32>,
        #[serde(default)]
        orphan_artifacts_removed: usize,
    },
    Skipped {
        batch_number: i32,
        reason: String,
        drift: Option<DriftSummary>,
        #[serde(default)]
        caught_up: Vec<i32>,
        #[serde(default)]
        orphan_artifacts_removed: usize,
    },
    Duplicate {
        batch_number: i32,
        #[serde(default)]
        caught_up: Vec<i32>,
        #[serde(default)]
        orphan_artifacts_removed: usize,
    },
    Ignored {
        key: String,
        reason: String,
    },
}

impl TrainReport {
    /// Records what the invocation did before deciding the event's own batch.
    pub fn after(mut self, batches: Vec<i32>, removed: usize) -> Self {
        match &mut self {
            TrainReport::Trained {
                caught_up,
                orphan_artifacts_removed,
                ..
            }
            | TrainReport::Skipped {
                caught_up,
                orphan_artifacts_removed,
                ..
            }
            | TrainReport::Duplicate {
                caught_up,
                orphan_artifacts_removed,
                ..
            } => {
                *caught_up = batches;
                *orphan_artifacts_removed = removed;
            }
            TrainReport::Ignored { .. } => {}
        }
        self
    }
}

// ---- promote ----

/// A model version and its score on the evaluation rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelScore {
    pub version: String,
    pub metrics: Metrics,
}

/// What one object event did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PromoteReport {
    /// A decision was taken (promoted or rejected).
    Decided {
        training_id: i64,
        promoted: bool,
        reason: String,
        candidate: ModelScore,
        production: Option<ModelScore>,
        evaluation_rows: usize,
        /// Older trainings this invocation decided first, oldest first: their candidates
        /// events never came.
        #[serde(default)]
        caught_up: Vec<i64>,
    },
    Duplicate {
        training_id: i64,
        #[serde(default)]
        caught_up: Vec<i64>,
    },
    Ignored {
        key: String,
        reason: String,
    },
}

impl PromoteReport {
    /// Records the trainings the invocation decided before the event's own.
    pub fn after(mut self, trainings: Vec<i64>) -> Self {
        match &mut self {
            PromoteReport::Decided { caught_up, .. }
            | PromoteReport::Duplicate { caught_up, .. } => {
                *caught_up = trainings;
            }
            PromoteReport::Ignored { .. } => {}
        }
        self
    }
}
