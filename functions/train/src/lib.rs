//! The train stage: on a `clean/batch-NNNNNN/manifest.json` object event, decide whether to
//! retrain and, if so, train.
//!
//! 0. Repair first, under the global train advisory lock (trainings happen one at a time, so
//!    nothing else is uploading): delete every object under `models/` whose version has no
//!    `ops.model_versions` row (a training that uploaded its artifacts and then never
//!    committed; counted in the report's `orphan_artifacts_removed` and the metric
//!    `train_orphan_artifacts_removed_total`), then decide, oldest first, every clean batch
//!    older than the event's that has no decision yet: its event was lost (a dropped
//!    in-memory delivery, a Lambda event in the failure queue). The report's `caught_up` lists
//!    them. Each decision is its own transaction under the lock.
//! 1. Under the lock, skip a batch that was decided before (a redelivered or concurrent event).
//! 2. Count the clean rows that arrived since the last training; when a production model
//!    exists, test the new rows for drift ([`appraise_core::drift`]) against the rows it was trained on (two-sample
//!    KS per numeric column; PSI for state, status and the city's first three letters, which
//!    is reported but not counted by the retrain rule) and store the report.
//! 3. Apply the [`decision`] rule — `new rows ≥ TRAIN_MIN_NEW_ROWS AND (drift OR no
//!    production model)` — and record the decision and its reason either way, in
//!    `ops.trainings`, whose id **is the batch's number** (one decision per clean batch). A
//!    training redone after a lost commit therefore keeps its id and its version names.
//! 4. When it trains: the clean rows of the most recent batches, as many whole batches as fit
//!    in `TRAIN_WINDOW_ROWS` rows (default 1,000,000; the event's batch always) and
//!    `TRAIN_WINDOW_BATCHES` batches (default: no bound), recorded as the training's
//!    `first_batch`..`last_batch`, split 70 / 15 / 15 into train, validation and
//!    test by each listing's fingerprint (so a listing stays on its side as data grows); the
//!    [`appraise_core::features::FeatureSpec`] fitted on the training rows (cross-fitted
//!    encodings for the rows it is fitted on); Ridge, a random forest and XGBoost ([`fit`]);
//!    their validation and test metrics; each model's artifact (`models/<version>/model.json`
//!    with `<version>` = `t{batch:06}-{algorithm}`: the spec and the model; for XGBoost also
//!    `models/<version>/xgboost.json`, XGBoost's own format, which Python's `xgboost` loads)
//!    and its row in `ops.model_versions`; then `candidates/training-{batch:06}.json`, queued
//!    in the same transaction and written after the commit, which wakes `promote`.
//!
//! When an MLflow [`Mirror`] is configured (`MLFLOW_TRACKING_URI`), a training also queues
//! its [`appraise_mlflow::TrainingRun`] in `ops.mlflow_outbox`, in the same transaction, and
//! every invocation starts a drain of that queue after its work
//! ([`Mirror::drain_after_commit`]: in the background, or on Lambda within the invocation's
//! deadline): MLflow's state never decides the answer, nor does its speed hold it off Lambda.
//!
//! An event for a batch that is not in `ops.clean_batches` is answered 503 (the platform
//! retries) while its manifest exists and was written less than `STAGE_PENDING_WINDOW_SECS`
//! (default 600) ago, by the manifest's `Last-Modified`: the rows it announces may not be
//! visible yet (a commit seen late, or redone after it was lost). When the manifest is older,
//! or absent, the answer is a final 400.

pub mod config;
pub mod decision;
pub mod fit;
pub mod store;

pub use appraise_core::reports::{Candidate, DriftSummary, TrainReport};

use std::sync::Arc;

use anyhow::Context;
use appraise_core::{
    catch_up,
    clean::{self, CleanRow},
    db::DbPool,
    drift::{self, DriftReport, drift_report},
    events::{ObjectCreated, Trigger},
    model::ModelArtifact,
    objects::ObjectStore,
    outbox,
    runs::{Attempt, Stage},
    runtime::{self, StageError, StageResult},
};
use appraise_mlflow::Mirror;
use bytes::Bytes;
use tokio_postgres::Transaction;

use crate::{
    config::TrainConfig,
    decision::{Decision, Situation},
};

/// The short account of a drift report that the train report carries.
fn drift_summary(report: &DriftReport) -> DriftSummary {
    let worst = report
        .worst
        .as_ref()
        .and_then(|w| report.features.iter().find(|f| &f.feature == w));
    DriftSummary {
        drifted: report.drifted,
        worst_feature: report.worst.clone(),
        worst_statistic: worst.and_then(|f| f.statistic),
    }
}

/// The stage, with its clients built once. Cheap to clone.
#[derive(Clone)]
pub struct Train {
    inner: Arc<Inner>,
}

struct Inner {
    config: TrainConfig,
    db: DbPool,
    objects: ObjectStore,
    mirror: Option<Mirror>,
}

/// The numeric columns tested for drift.
pub const DRIFT_COLUMNS: [&str; 5] = ["price", "bed", "bath", "acre_lot", "house_size"];

fn drift_columns(rows: &[&CleanRow]) -> Vec<(&'static str, Vec<f64>)> {
    let column = |f: fn(&CleanRow) -> f64| rows.iter().map(|r| f(r)).collect::<Vec<f64>>();
    vec![
        (DRIFT_COLUMNS[0], column(|r| r.price)),
        (DRIFT_COLUMNS[1], column(|r| r.bed)),
        (DRIFT_COLUMNS[2], column(|r| r.bath)),
        (DRIFT_COLUMNS[3], column(|r| r.acre_lot)),
        (DRIFT_COLUMNS[4], column(|r| r.house_size)),
    ]
}

/// The categorical columns of clean rows, as [`drift::categorical_values`] reads them.
fn categorical_inputs(rows: &[CleanRow]) -> [Vec<Option<String>>; 3] {
    drift::categorical_values(rows.iter().map(|row| drift::CategoricalInputs {
        state: Some(row.state.as_str()),
        status: row.status.map(|status| status.as_str()),
        city: row.city.as_deref(),
    }))
}

const CODE_VERSION: &str = env!("CARGO_PKG_VERSION");

impl Train {
    pub fn new(config: TrainConfig, db: DbPool, objects: ObjectStore) -> Self {
        Train::with_mlflow(config, db, objects, None)
    }

    /// The stage, mirroring its trainings to MLflow through `mirror` when there is one.
    pub fn with_mlflow(
        config: TrainConfig,
        db: DbPool,
        objects: ObjectStore,
        mirror: Option<Mirror>,
    ) -> Self {
        Train {
            inner: Arc::new(Inner {
                config,
                db,
                objects,
                mirror,
            }),
        }
    }

    /// The entry point the runtime calls.
    pub async fn handle(&self, trigger: Trigger) -> StageResult {
        let object = runtime::object_event(trigger, "train runs on clean/ object events")?;
        runtime::report(&self.train_object(&object).await?)
    }

    /// Handles one `clean/batch-NNNNNN/manifest.json` event for batch `N`:
    ///
    /// 1. under the train lock, deletes the objects under `models/` that no
    ///    `ops.model_versions` row claims (nothing else uploads while the lock is held) and
    ///    lists the clean batches older than `N` that have no decision (their events were lost);
    /// 2. decides those, oldest first, each in its own transaction under the lock;
    /// 3. decides `N`.
    ///
    /// A batch missing from `ops.clean_batches` is retried (503) while its manifest is younger
    /// than `STAGE_PENDING_WINDOW_SECS` (its rows may not be visible yet), and rejected (400)
    /// otherwise.
    pub async fn train_object(&self, object: &ObjectCreated) -> Result<TrainReport, StageError> {
        let outcome = self.decide_object(object).await;
        // After the work, whatever its outcome: this training's runs and any that still wait.
        if let Some(mirror) = &self.inner.mirror {
            mirror.drain_after_commit().await;
        }
        outcome
    }

    async fn decide_object(&self, object: &ObjectCreated) -> Result<TrainReport, StageError> {
        let Some(batch_number) = appraise_core::keys::batch_of_manifest("clean", &object.key)
        else {
            return Ok(TrainReport::Ignored {
                key: object.key.clone(),
                reason: "not a clean/batch-NNNNNN/manifest.json key".to_owned(),
            });
        };
        let (removed, pending) =
            outbox::commit_then_flush(&self.inner.db, &self.inner.objects, async |transaction| {
                self.prepare(transaction, batch_number)
                    .await
                    .map_err(StageError::from)
            })
            .await?;
        let mut caught_up = Vec::new();
        for batch in pending {
            let report = self.decide(batch).await.map_err(|error| {
                let (StageError::Rejected(reason) | StageError::Unavailable(reason)) = error;
                // Deciding in order matters more than this event: retry it.
                StageError::Unavailable(format!(
                    "catching up on batch {batch}, whose event never came, before batch \
                     {batch_number}: {reason}"
                ))
            })?;
            match report {
                Some(TrainReport::Duplicate { .. }) | None => {}
                Some(report) => {
                    tracing::info!(
                        batch,
                        ?report,
                        "caught up on a batch whose event never came"
                    );
                    caught_up.push(batch);
                }
            }
        }
        match self.decide(batch_number).await? {
            Some(report) => Ok(report.after(caught_up, removed)),
            None => Err(self
                .not_visible(batch_number, &object.key, &caught_up)
                .await),
        }
    }

    /// Removes orphan artifacts and lists the undecided batches older than `batch_number`, under
    /// the train lock.
    async fn prepare(
        &self,
        transaction: &Transaction<'_>,
        batch_number: i32,
    ) -> anyhow::Result<(usize, Vec<i32>)> {
        store::lock_train(transaction).await?;
        let removed = self.remove_orphan_artifacts(transaction).await?;
        let pending = store::undecided_batches_before(transaction, batch_number).await?;
        Ok((removed, pending))
    }

    /// Deletes every object under `models/` whose version (the key's second segment) has no
    /// `ops.model_versions` row: what a training uploaded before a commit that never happened.
    /// Called under the train lock, so no training is uploading meanwhile.
    async fn remove_orphan_artifacts(
        &self,
        transaction: &Transaction<'_>,
    ) -> anyhow::Result<usize> {
        let versions = store::model_versions(transaction).await?;
        let mut removed = 0;
        for key in self.inner.objects.list(MODELS_PREFIX).await? {
            let version = key[MODELS_PREFIX.len()..]
                .split('/')
                .next()
                .unwrap_or_default();
            if !versions.contains(version) {
                self.inner.objects.delete(&key).await?;
                tracing::warn!(key, "removed an artifact no model version claims");
                removed += 1;
            }
        }
        ::metrics::counter!("train_orphan_artifacts_removed_total").increment(removed as u64);
        Ok(removed)
    }

    /// Decides one batch in its own transaction; `None` when the batch is not in
    /// `ops.clean_batches`.
    /// The decision is recorded in `ops.stage_runs` in its transaction, a failure after it.
    async fn decide(&self, batch_number: i32) -> Result<Option<TrainReport>, StageError> {
        let report = Attempt::start(Stage::Train)
            .commit_then_flush(
                &self.inner.db,
                &self.inner.objects,
                Some(batch_number),
                async |transaction| self.decide_and_train(transaction, batch_number).await,
            )
            .await?;
        if let Some(TrainReport::Trained { candidates, .. }) = &report {
            for candidate in candidates {
                ::metrics::gauge!("model_test_rmse", "algorithm" => candidate.algorithm.clone())
                    .set(candidate.test.rmse);
            }
        }
        Ok(report)
    }

    /// The answer for an event whose batch is not in `ops.clean_batches`: retryable while its
    /// manifest is recent (see [`catch_up::not_visible_yet`]).
    async fn not_visible(&self, batch_number: i32, key: &str, caught_up: &[i32]) -> StageError {
        let mut missing =
            format!("batch {batch_number} is not in ops.clean_batches: nothing to train on");
        if !caught_up.is_empty() {
            missing.push_str(&format!(" (caught up on batches {caught_up:?} first)"));
        }
        catch_up::not_visible_yet(
            &self.inner.objects,
            key,
            self.inner.config.pending_window,
            &format!("batch {batch_number}"),
            &missing,
        )
        .await
    }

    async fn decide_and_train(
        &self,
        transaction: &Transaction<'_>,
        batch_number: i32,
    ) -> Result<Option<TrainReport>, StageError> {
        let inner = &self.inner;
        let outcome: anyhow::Result<Option<TrainReport>> = async {
            store::lock_train(transaction).await?;
            if !appraise_core::clean::is_cleaned(transaction, batch_number).await? {
                return Ok(None);
            }
            if store::batch_decided(transaction, batch_number).await? {
                return Ok(Some(TrainReport::Duplicate {
                    batch_number,
                    caught_up: Vec::new(),
                    orphan_artifacts_removed: 0,
                }));
            }
            // The first batch no training has used (batch numbers start at 0 or above).
            let first_new_batch = store::last_trained_batch(transaction)
                .await?
                .map_or(0, |last| last + 1);
            let new_rows = store::count_rows(transaction, first_new_batch, batch_number).await?;
            let production = store::production_training(transaction).await?;

            // Drift of the new rows against the production model's training rows.
            let mut drift = None;
            let mut drift_report_id: Option<i64> = None;
            if let Some((training_id, first, last)) = production {
                let reference_rows = clean::clean_rows(transaction, first, last).await?;
                let current_rows =
                    clean::clean_rows(transaction, first_new_batch, batch_number).await?;
                let reference = drift_columns(&reference_rows.iter().collect::<Vec<_>>());
                let current = drift_columns(&current_rows.iter().collect::<Vec<_>>());
                let report = drift_report(&reference, &current, &inner.config.drift)?
                    .with_categorical(drift::categorical_columns(
                        categorical_inputs(&reference_rows),
                        categorical_inputs(&current_rows),
                    ));
                for feature in &report.features {
                    if let Some(statistic) = feature.statistic {
                        ::metrics::gauge!("drift_statistic", "feature" => feature.feature.clone())
                            .set(statistic);
                    }
                }
                drift_report_id = Some(
                    store::insert_drift_report(transaction, batch_number, training_id, &report)
                        .await?,
                );
                drift = Some(report);
            }
            let decision = inner.config.rule.decide(&Situation {
                new_rows: new_rows as u64,
                has_production_model: production.is_some(),
                drift: drift.as_ref(),
            });
            // The most recent batches, at most `window_batches` of them and `window_rows` clean
            // rows (0: no bound), so that a fit's time stays bounded as data grows.
            let window_start = match inner.config.window_batches {
                0 => i32::MIN,
                window => batch_number.saturating_sub(window.min(i32::MAX as u32) as i32) + 1,
            };
            let max_rows = (inner.config.window_rows > 0).then_some(inner.config.window_rows);
            let first_batch =
                store::window_first_batch(transaction, window_start, batch_number, max_rows)
                    .await?;
            // A training's id is its batch's number: a training redone after a lost commit
            // gets the same id, and so the same version names.
            let training_id = i64::from(batch_number);
            store::insert_training(
                transaction,
                &store::TrainingRecord {
                    id: training_id,
                    batch_number,
                    trains: decision.trains(),
                    reason: decision.reason(),
                    new_rows,
                    drift_report_id,
                    first_batch,
                    last_batch: batch_number,
                    split_seed: inner.config.split_seed as i64,
                },
            )
            .await?;
            let drift_summary = drift.as_ref().map(drift_summary);
            let Decision::Train { reason } = decision else {
                return Ok(Some(TrainReport::Skipped {
                    batch_number,
                    reason: decision.reason().to_owned(),
                    drift: drift_summary,
                    caught_up: Vec::new(),
                    orphan_artifacts_removed: 0,
                }));
            };
            let report = self
                .train(
                    transaction,
                    training_id,
                    batch_number,
                    first_batch,
                    reason,
                    drift_summary,
                )
                .await?;
            if self.inner.mirror.is_some() {
                let work = self
                    .mlflow_work(transaction, &report, first_batch, new_rows, drift_report_id)
                    .await?;
                appraise_mlflow::queue(transaction, &work).await?;
            }
            Ok(Some(report))
        }
        .await;
        Ok(outcome?)
    }

    async fn train(
        &self,
        transaction: &Transaction<'_>,
        training_id: i64,
        batch_number: i32,
        first_batch: i32,
        reason: String,
        drift: Option<DriftSummary>,
    ) -> anyhow::Result<TrainReport> {
        let inner = &self.inner;
        // Version names are `t{batch:06}-{algorithm}`. Only models of trainings recorded
        // before ids were batch numbers can hold such a name already; never overwrite their
        // artifacts.
        let taken =
            store::model_versions_starting_with(transaction, &format!("t{training_id:06}-"))
                .await?;
        if !taken.is_empty() {
            anyhow::bail!(
                "training {training_id}'s version names are taken by models of an older training \
                 ({taken:?}); not overwriting their artifacts"
            );
        }
        let config = inner.config.clone();
        let rows = clean::clean_rows(transaction, first_batch, batch_number).await?;
        let export = config
            .export_dir
            .as_ref()
            .map(|dir| dir.join(format!("training-{training_id:06}")));
        // Fitting is CPU work: off the async runtime.
        let (spec, fitted, sizes) =
            tokio::task::spawn_blocking(move || fit::fit_all(rows, &config, export.as_deref()))
                .await
                .context("the training task panicked")??;

        let mut candidates = Vec::new();
        for fit::ScoredFit {
            fitted,
            validation,
            test,
            importance,
        } in fitted
        {
            let algorithm = fitted.model.algorithm();
            let fit_seconds = fitted.fit_seconds;
            let version = format!("t{training_id:06}-{algorithm}");
            let artifact_key = format!("models/{version}/model.json");
            if let Some(json) = fitted.xgboost_json {
                inner
                    .objects
                    .put(
                        &format!("models/{version}/xgboost.json"),
                        Bytes::from(json),
                        "application/json",
                    )
                    .await?;
            }
            let artifact = ModelArtifact {
                version: version.clone(),
                algorithm: algorithm.to_owned(),
                feature_spec: spec.clone(),
                model: fitted.model,
            };
            let body = serde_json::to_vec(&artifact)?;
            inner
                .objects
                .put(&artifact_key, Bytes::from(body), "application/json")
                .await?;
            store::insert_model_version(
                transaction,
                &store::ModelVersionRecord {
                    version: &version,
                    training_id,
                    algorithm,
                    params: &artifact.model.params(),
                    validation: &validation,
                    test: &test,
                    fit_seconds,
                    artifact_key: &artifact_key,
                    code_version: CODE_VERSION,
                    importance: importance.as_ref(),
                },
            )
            .await?;
            candidates.push(Candidate {
                version,
                algorithm: algorithm.to_owned(),
                validation,
                test,
                fit_seconds,
                artifact_key,
            });
        }
        store::record_split(
            transaction,
            training_id,
            sizes,
            &serde_json::to_value(&spec)?,
        )
        .await?;
        let best = candidates
            .iter()
            .min_by(|a, b| a.validation.rmse.total_cmp(&b.validation.rmse))
            .map(|c| c.version.clone());
        outbox::enqueue(
            transaction,
            &appraise_core::keys::candidates(training_id),
            &serde_json::json!({
                "training_id": training_id,
                "batch_number": batch_number,
                "best": best,
                "candidates": candidates,
            }),
        )
        .await?;
        Ok(TrainReport::Trained {
            training_id,
            batch_number,
            reason,
            drift,
            rows_train: sizes[0],
            rows_validation: sizes[1],
            rows_test: sizes[2],
            candidates,
            caught_up: Vec::new(),
            orphan_artifacts_removed: 0,
        })
    }
}

impl Train {
    /// What MLflow is to show of a training: the report, the model parameters as recorded, and
    /// every artifact stored under each model's version.
    async fn mlflow_work(
        &self,
        transaction: &Transaction<'_>,
        report: &TrainReport,
        first_batch: i32,
        new_rows: i64,
        drift_report_id: Option<i64>,
    ) -> anyhow::Result<appraise_mlflow::Work> {
        let TrainReport::Trained {
            training_id,
            batch_number,
            reason,
            drift,
            rows_train,
            rows_validation,
            rows_test,
            candidates,
            ..
        } = report
        else {
            anyhow::bail!("only a training that trained is mirrored");
        };
        let params = store::model_params(transaction, *training_id).await?;
        let mut models = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let mut artifact_keys = self
                .inner
                .objects
                .list(&format!("{MODELS_PREFIX}{}/", candidate.version))
                .await?;
            artifact_keys.sort();
            models.push(appraise_mlflow::ModelRun {
                version: candidate.version.clone(),
                algorithm: candidate.algorithm.clone(),
                params: params.get(&candidate.version).cloned().unwrap_or_default(),
                validation: candidate.validation,
                test: candidate.test,
                fit_seconds: candidate.fit_seconds,
                artifact_keys,
            });
        }
        Ok(appraise_mlflow::Work::Training(
            appraise_mlflow::TrainingRun {
                training_id: *training_id,
                batch_number: *batch_number,
                first_batch,
                last_batch: *batch_number,
                new_rows,
                rows_train: *rows_train,
                rows_validation: *rows_validation,
                rows_test: *rows_test,
                split_seed: self.inner.config.split_seed as i64,
                drift: drift
                    .as_ref()
                    .zip(drift_report_id)
                    .map(|(drift, report_id)| appraise_mlflow::DriftVerdict {
                        drifted: drift.drifted,
                        report_id,
                        worst_feature: drift.worst_feature.clone(),
                    }),
                reason: reason.clone(),
                code_version: CODE_VERSION.to_owned(),
                trained_at_ms: (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                    as i64,
                models,
            },
        ))
    }
}

/// Where model artifacts live: `models/<version>/…`.
const MODELS_PREFIX: &str = "models/";
