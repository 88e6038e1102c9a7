//! Mirroring to MLflow: every training a run (one nested run per model), every model a version
//! of a registered model, every promotion the `champion` alias and a decision tag, every
//! rollback by hand the `champion` alias back on the version put back.
//!
//! appraise's own record stays in PostgreSQL; MLflow gets a copy for the users who know its UI.
//! The copy must never hold the pipeline up and never duplicate anything, so:
//!
//! - train, promote and the predictor's rollback [`work::queue`] a [`Work`] in
//!   `ops.mlflow_outbox`, in the same transaction as their result: it exists exactly when the
//!   result does;
//! - after their commit ([`Mirror::drain_after_commit`]: in the background off Lambda, within
//!   the invocation's deadline on Lambda), and every `MLFLOW_RETRY_SECS` in the background off
//!   Lambda, a [`Mirror`] drains the queue in order, one drainer at a time (a session-level
//!   advisory lock, tried, on a connection of its own: no transaction waits on MLflow, each
//!   piece is marked done as soon as MLflow has it), stopping at the first failure: the work
//!   waits and is retried, a promotion or rollback never overtakes its training (nor a rollback
//!   the promotions before it), and the stage's answer does not depend on MLflow at all;
//! - every write looks up first (experiment by name, runs by the tag `appraise.key`, model
//!   versions by run) and logs values with fixed timestamps, so work done twice (a retry after
//!   a crash, a redelivered event) leaves one run and one version.
//!
//! Metrics: `mlflow_pending_writes` (work queued and not mirrored yet, after each drain) and
//! `mlflow_writes_total{outcome="mirrored"|"skipped"|"failed"}`, both registered at 0 by
//! train, promote and predict, mirroring or not ([`Mirror::start_from_env`]).
//!
//! The REST calls are in [`client`]; what is queued is in [`work`].

pub mod client;
pub mod work;

pub use work::{DriftVerdict, ModelRun, PromotionVerdict, RollbackDone, TrainingRun, Work, queue};

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use appraise_core::{
    config::{self, ConfigError},
    db::{DbPool, PooledClient, locks},
    deadline,
    objects::ObjectStore,
    platform,
};

use crate::client::{Connection, Credentials, Metric, MlflowClient, ModelVersion, Run, Tag};

/// The tag whose value identifies a run: a training's `training-NNNNNN`, or a model's version
/// name.
pub const KEY_TAG: &str = "appraise.key";
/// The alias promote (and a rollback) moves to the production model.
pub const CHAMPION: &str = "champion";

/// Where and how to mirror, from the environment.
#[derive(Debug, Clone)]
pub struct MlflowSettings {
    /// `MLFLOW_TRACKING_URI` (`http://host:port`), and the credentials MLflow's clients read.
    pub connection: Connection,
    /// `MLFLOW_EXPERIMENT_NAME` (default `appraise`).
    pub experiment: String,
    /// `MLFLOW_REGISTERED_MODEL` (default `appraise`).
    pub registered_model: String,
    /// `MLFLOW_RETRY_SECS` (default 60): how often waiting work is retried in the background.
    pub retry_every: Duration,
}

impl MlflowSettings {
    /// `None` when `MLFLOW_TRACKING_URI` is unset or empty: nothing is mirrored or queued.
    pub fn from_env() -> Result<Option<MlflowSettings>, ConfigError> {
        let Some(uri) = config::maybe::<String>("MLFLOW_TRACKING_URI")? else {
            return Ok(None);
        };
        let credentials = match (
            config::maybe_secret::<String>("MLFLOW_TRACKING_TOKEN")?,
            config::maybe::<String>("MLFLOW_TRACKING_USERNAME")?,
        ) {
            (Some(token), _) => Some(Credentials::Bearer(token)),
            (None, Some(username)) => Some(Credentials::Basic {
                username,
                password: config::required_secret(
                    "MLFLOW_TRACKING_PASSWORD",
                    "the password for MLFLOW_TRACKING_USERNAME",
                )?,
            }),
            (None, None) => None,
        };
        Ok(Some(MlflowSettings {
            connection: Connection {
                base_url: tracking_base_url(&uri)?,
                credentials,
                timeout: config::seconds("MLFLOW_TIMEOUT_SECS", Duration::from_secs(30))?,
            },
            experiment: config::optional("MLFLOW_EXPERIMENT_NAME", "appraise".to_owned())?,
            registered_model: config::optional("MLFLOW_REGISTERED_MODEL", "appraise".to_owned())?,
            retry_every: config::seconds("MLFLOW_RETRY_SECS", Duration::from_secs(60))?,
        }))
    }

    /// Settings for the server at `base_url`, with the defaults.
    pub fn for_server(base_url: &str) -> Result<MlflowSettings, ConfigError> {
        Ok(MlflowSettings {
            connection: Connection {
                base_url: tracking_base_url(base_url)?,
                credentials: None,
                timeout: Duration::from_secs(30),
            },
            experiment: "appraise".to_owned(),
            registered_model: "appraise".to_owned(),
            retry_every: Duration::from_secs(60),
        })
    }
}

/// The tracking URI as a base URL: `http://…` or `https://…` (rustls, the system's roots),
/// without a trailing slash. Anything else (`databricks`, a file path) is refused at start, and
/// so is a URI with credentials in it (`https://user:pass@host`): they belong in
/// `MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD` or `MLFLOW_TRACKING_TOKEN`, and the
/// error does not repeat them. Every URL the client calls starts with this one, so no error
/// text (reqwest's name the URL) stored in `ops.mlflow_outbox.last_error` or logged can carry
/// credentials.
fn tracking_base_url(uri: &str) -> Result<String, ConfigError> {
    let uri = uri.trim().trim_end_matches('/');
    let Some((scheme @ ("http" | "https"), rest)) =
        uri.split_once("://").filter(|(_, rest)| !rest.is_empty())
    else {
        return Err(ConfigError::invalid(
            "MLFLOW_TRACKING_URI",
            uri,
            "must be an http:// or https:// URL of an MLflow tracking server",
        ));
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if let Some((_, host)) = rest[..authority_end].rsplit_once('@') {
        return Err(ConfigError::invalid(
            "MLFLOW_TRACKING_URI",
            format!("{scheme}://<credentials>@{host}{}", &rest[authority_end..]),
            "must not hold credentials: set MLFLOW_TRACKING_USERNAME and \
             MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) instead",
        ));
    }
    Ok(uri.to_owned())
}

/// Registers the mirror's metrics at 0. [`Mirror::start_from_env`] calls it at start whether or
/// not the function mirrors, so dashboards find the series (0 waiting, nothing written) either way.
pub fn register_metrics() {
    for outcome in ["mirrored", "skipped", "failed"] {
        metrics::counter!("mlflow_writes_total", "outcome" => outcome).increment(0);
    }
    metrics::gauge!("mlflow_pending_writes").set(0.0);
}

/// The longest a Lambda invocation waits for MLflow after its commit.
pub const LAMBDA_DRAIN_CAP: Duration = Duration::from_secs(60);
/// Left free before a Lambda invocation's deadline when it drains after its commit, for the
/// stage to answer.
pub const LAMBDA_DRAIN_MARGIN: Duration = Duration::from_secs(2);

/// What one drain did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drained {
    /// Work written to MLflow.
    pub mirrored: usize,
    /// Work passed over because what it refers to was never mirrored (e.g. a promotion of a
    /// training made before mirroring was turned on).
    pub skipped: usize,
    /// Work still waiting (`None` when the queue could not be read).
    pub pending: Option<i64>,
    /// Why the drain stopped early, if it did.
    pub error: Option<String>,
    /// Another process was draining: this one left the queue to it.
    pub busy: bool,
}

/// Writes queued work to MLflow. Cheap to clone.
#[derive(Clone)]
pub struct Mirror {
    inner: Arc<Inner>,
}

struct Inner {
    settings: MlflowSettings,
    client: MlflowClient,
    db: DbPool,
    objects: ObjectStore,
}

enum Outcome {
    Mirrored,
    Skipped(String),
}

impl Mirror {
    pub fn new(
        settings: MlflowSettings,
        db: DbPool,
        objects: ObjectStore,
    ) -> anyhow::Result<Mirror> {
        register_metrics();
        Ok(Mirror {
            inner: Arc::new(Inner {
                client: MlflowClient::new(settings.connection.clone())?,
                settings,
                db,
                objects,
            }),
        })
    }

    /// A mirror when `MLFLOW_TRACKING_URI` is set, `None` otherwise.
    pub fn from_env(db: &DbPool, objects: &ObjectStore) -> anyhow::Result<Option<Mirror>> {
        MlflowSettings::from_env()?
            .map(|settings| Mirror::new(settings, db.clone(), objects.clone()))
            .transpose()
    }

    /// What a function that mirrors does at start: registers the metrics at 0 (mirroring or
    /// not), builds the mirror from the environment ([`Mirror::from_env`]) and, off Lambda,
    /// spawns [`Mirror::retry_forever`] (Lambda freezes the process between invocations, so
    /// there each invocation drains after its commit: [`Mirror::drain_after_commit`]).
    pub fn start_from_env(db: &DbPool, objects: &ObjectStore) -> anyhow::Result<Option<Mirror>> {
        register_metrics();
        let mirror = Mirror::from_env(db, objects)?;
        if let Some(mirror) = &mirror
            && !platform::on_lambda()
        {
            tokio::spawn(mirror.clone().retry_forever());
        }
        Ok(mirror)
    }

    /// Drains after a stage committed work, without holding the stage's answer on MLflow: off
    /// Lambda the drain runs in the background; on Lambda (which runs nothing after the answer)
    /// inside the invocation, for at most [`LAMBDA_DRAIN_CAP`] and never past the invocation's
    /// deadline ([`deadline::remaining`], less [`LAMBDA_DRAIN_MARGIN`]). A drain cut short
    /// leaves what it did not mark for the next one, which redoes it to the same effect.
    pub async fn drain_after_commit(&self) {
        if !platform::on_lambda() {
            let mirror = self.clone();
            tokio::spawn(async move { mirror.drain().await });
            return;
        }
        let budget = deadline::remaining().map_or(LAMBDA_DRAIN_CAP, |left| {
            left.saturating_sub(LAMBDA_DRAIN_MARGIN)
                .min(LAMBDA_DRAIN_CAP)
        });
        if tokio::time::timeout(budget, self.drain()).await.is_err() {
            tracing::warn!(
                seconds = budget.as_secs_f64(),
                "MLflow mirroring cut short by the invocation's time: the rest waits"
            );
        }
    }

    pub fn settings(&self) -> &MlflowSettings {
        &self.inner.settings
    }

    /// Retries waiting work every `MLFLOW_RETRY_SECS`, forever (spawn it).
    pub async fn retry_forever(self) {
        let mut tick =
            tokio::time::interval(self.inner.settings.retry_every.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.drain().await;
        }
    }

    /// Writes every queued piece of work to MLflow, oldest first, until one fails. Never fails
    /// itself: what could not be written waits for the next drain, and the answer says why.
    pub async fn drain(&self) -> Drained {
        let started = std::time::Instant::now();
        let drained = match self.try_drain().await {
            Ok(drained) => drained,
            Err(error) => Drained {
                error: Some(format!("{error:#}")),
                ..Drained::default()
            },
        };
        if let Some(pending) = drained.pending {
            metrics::gauge!("mlflow_pending_writes").set(pending as f64);
        }
        if let Some(error) = &drained.error {
            tracing::warn!(error, pending = ?drained.pending, "MLflow mirroring waits");
        } else if drained.mirrored > 0 {
            tracing::info!(
                mirrored = drained.mirrored,
                seconds = started.elapsed().as_secs_f64(),
                "mirrored to MLflow"
            );
        }
        drained
    }

    /// [`Mirror::drain`], after any drain another task or process is running: when the queue
    /// is busy, waits for that drain to end (polling every 50 ms) and drains again, so what was
    /// queued before this call has been tried when it returns. For tests and tools that must
    /// see the queue settled; the stages themselves never wait for one another's drains.
    pub async fn drain_when_free(&self) -> Drained {
        loop {
            let drained = self.drain().await;
            if !drained.busy {
                return drained;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn try_drain(&self) -> anyhow::Result<Drained> {
        drain_queue(&self.inner.db, LockSession::DEFAULT, |work| async move {
            self.mirror(&work).await
        })
        .await
    }

    async fn mirror(&self, work: &Work) -> anyhow::Result<Outcome> {
        match work {
            Work::Training(training) => self.mirror_training(training).await,
            Work::Promotion(promotion) => self.mirror_promotion(promotion).await,
            Work::Rollback(rollback) => self.mirror_rollback(rollback).await,
        }
    }

    /// The training's run, a nested run per model (parameters, metrics, artifacts) and a
    /// registered version per model.
    async fn mirror_training(&self, training: &TrainingRun) -> anyhow::Result<Outcome> {
        let client = &self.inner.client;
        let settings = &self.inner.settings;
        let experiment = client.ensure_experiment(&settings.experiment).await?;
        let key = work::training_key(training.training_id);
        let training_tags = training_tags(training);
        let mut tags = vec![
            Tag::new(KEY_TAG, &key),
            Tag::new("appraise.kind", "training"),
        ];
        tags.extend(training_tags.iter().cloned());
        let parent = self
            .find_or_create_run(
                &experiment.experiment_id,
                &key,
                training.trained_at_ms,
                &tags,
            )
            .await?;
        let parent_id = parent.info.run_id.clone();
        if parent.info.status != "FINISHED" {
            client
                .log_batch(&parent_id, &[], &training_params(training), &tags)
                .await?;
        }
        client
            .ensure_registered_model(&settings.registered_model)
            .await?;
        for model in &training.models {
            let mut tags = vec![
                Tag::new(KEY_TAG, &model.version),
                Tag::new("appraise.kind", "model"),
                Tag::new("mlflow.parentRunId", &parent_id),
                Tag::new("appraise.version", &model.version),
                Tag::new("appraise.algorithm", &model.algorithm),
            ];
            tags.extend(training_tags.iter().cloned());
            let run = self
                .find_or_create_run(
                    &experiment.experiment_id,
                    &model.version,
                    training.trained_at_ms,
                    &tags,
                )
                .await?;
            if run.info.status != "FINISHED" {
                client
                    .log_batch(
                        &run.info.run_id,
                        &model_metrics(model, training.trained_at_ms),
                        &flatten_params(&model.params),
                        &tags,
                    )
                    .await?;
                for artifact_key in &model.artifact_keys {
                    let body = self
                        .inner
                        .objects
                        .get(artifact_key)
                        .await?
                        .with_context(|| format!("artifact {artifact_key} is not in the bucket"))?;
                    let name = artifact_key.rsplit('/').next().unwrap_or(artifact_key);
                    client
                        .upload_artifact(&run.info.artifact_uri, name, body)
                        .await?;
                }
                // The run lasts the model's fit, for MLflow's duration column.
                let end_ms = training.trained_at_ms + (model.fit_seconds * 1000.0).round() as i64;
                client.finish_run(&run.info.run_id, end_ms).await?;
            }
            let versions = client
                .versions_of_run(&settings.registered_model, &run.info.run_id)
                .await?;
            if versions.is_empty() {
                client
                    .create_model_version(
                        &settings.registered_model,
                        &run.info.artifact_uri,
                        &run.info.run_id,
                        &[
                            Tag::new("appraise.version", &model.version),
                            Tag::new("appraise.algorithm", &model.algorithm),
                            Tag::new("appraise.training_id", training.training_id),
                        ],
                    )
                    .await?;
            }
        }
        if parent.info.status != "FINISHED" {
            client
                .finish_run(&parent_id, training.trained_at_ms)
                .await?;
        }
        Ok(Outcome::Mirrored)
    }

    /// The decision and reason as tags of the judged version; the `champion` alias on it when
    /// promoted.
    async fn mirror_promotion(&self, promotion: &PromotionVerdict) -> anyhow::Result<Outcome> {
        let client = &self.inner.client;
        let registered = match self
            .registered_version(&promotion.candidate_version)
            .await?
        {
            Ok(registered) => registered,
            Err(why) => return Ok(Outcome::Skipped(why)),
        };
        let decision = if promotion.promoted {
            "promoted"
        } else {
            "rejected"
        };
        for tag in [
            Tag::new("appraise.decision", decision),
            Tag::new("appraise.reason", &promotion.reason),
        ] {
            client
                .set_model_version_tag(&registered.name, &registered.version, &tag)
                .await?;
        }
        if promotion.promoted {
            client
                .set_alias(&registered.name, CHAMPION, &registered.version)
                .await?;
        }
        Ok(Outcome::Mirrored)
    }

    /// The `champion` alias on the version put back, and the rollback's reason and audit row
    /// as its tags (set again, they stay one tag each).
    async fn mirror_rollback(&self, rollback: &RollbackDone) -> anyhow::Result<Outcome> {
        let client = &self.inner.client;
        let registered = match self.registered_version(&rollback.version).await? {
            Ok(registered) => registered,
            Err(why) => return Ok(Outcome::Skipped(why)),
        };
        let mut tags = vec![
            Tag::new("appraise.rollback_reason", &rollback.reason),
            Tag::new("appraise.rollback_promotion_id", rollback.promotion_id),
        ];
        if let Some(previous) = &rollback.previous_version {
            tags.push(Tag::new("appraise.rollback_replaced", previous));
        }
        for tag in &tags {
            client
                .set_model_version_tag(&registered.name, &registered.version, tag)
                .await?;
        }
        client
            .set_alias(&registered.name, CHAMPION, &registered.version)
            .await?;
        Ok(Outcome::Mirrored)
    }

    /// The registered model version of appraise's `version`, found through its run (tagged
    /// `appraise.key = version`); `Err` with why when it was never mirrored.
    async fn registered_version(
        &self,
        version: &str,
    ) -> anyhow::Result<Result<ModelVersion, String>> {
        let client = &self.inner.client;
        let settings = &self.inner.settings;
        let Some(experiment) = client.experiment_by_name(&settings.experiment).await? else {
            return Ok(Err(format!(
                "experiment {} does not exist: {version}'s training was never mirrored",
                settings.experiment
            )));
        };
        let runs = client
            .runs_tagged(&experiment.experiment_id, KEY_TAG, version)
            .await?;
        let Some(run) = runs.first() else {
            return Ok(Err(format!("{version} has no MLflow run")));
        };
        let versions = client
            .versions_of_run(&settings.registered_model, &run.info.run_id)
            .await?;
        match versions.into_iter().next() {
            Some(registered) => Ok(Ok(registered)),
            None => Ok(Err(format!(
                "{version} is not a version of {}",
                settings.registered_model
            ))),
        }
    }

    /// The run tagged `appraise.key = key`, created with `tags` when there is none.
    async fn find_or_create_run(
        &self,
        experiment_id: &str,
        key: &str,
        start_time_ms: i64,
        tags: &[Tag],
    ) -> anyhow::Result<Run> {
        let client = &self.inner.client;
        if let Some(run) = client
            .runs_tagged(experiment_id, KEY_TAG, key)
            .await?
            .into_iter()
            .next()
        {
            return Ok(run);
        }
        Ok(client
            .create_run(experiment_id, key, start_time_ms, tags)
            .await?)
    }
}

/// How the drainer's session holds the queue's lock. No transaction stays open while MLflow
/// answers (a slow server would otherwise have the session ended mid-drain, again and again);
/// instead a session-level advisory lock is held on a connection of its own, which says
/// `SELECT 1` every `heartbeat` while the drain waits on MLflow, and which the server ends
/// after `idle_limit` without a word (`idle_session_timeout`, PostgreSQL 14 or later). A
/// drainer that stops answering (a frozen Lambda environment, a stalled process) thus loses its
/// session, and with it the lock, instead of holding the queue; what it did is redone, to the
/// same effect.
#[derive(Debug, Clone, Copy)]
struct LockSession {
    heartbeat: Duration,
    idle_limit: Duration,
}

impl LockSession {
    const DEFAULT: LockSession = LockSession {
        heartbeat: Duration::from_secs(10),
        idle_limit: Duration::from_secs(60),
    };
}

/// Drains `ops.mlflow_outbox` in id order under the queue's lock, with `mirror` doing each
/// piece of work, until one fails. Each piece is marked done (or its failure recorded) in a
/// statement of its own as soon as `mirror` answers, so what was mirrored stays mirrored
/// whatever happens later in the drain.
async fn drain_queue<F, Fut>(
    db: &DbPool,
    session: LockSession,
    mut mirror: F,
) -> anyhow::Result<Drained>
where
    F: FnMut(Work) -> Fut,
    Fut: Future<Output = anyhow::Result<Outcome>>,
{
    let Some(lock) = QueueLock::try_take(db, session).await? else {
        return Ok(Drained {
            busy: true,
            ..Drained::default()
        });
    };
    let drained = tokio::select! {
        drained = drain_locked(lock.client(), &mut mirror) => drained,
        lost = lock.keep_alive() => Err(lost),
    };
    lock.release().await;
    drained
}

async fn drain_locked<F, Fut>(
    client: &tokio_postgres::Client,
    mirror: &mut F,
) -> anyhow::Result<Drained>
where
    F: FnMut(Work) -> Fut,
    Fut: Future<Output = anyhow::Result<Outcome>>,
{
    let rows = client
        .query(
            "SELECT id, work_key, work FROM ops.mlflow_outbox WHERE mirrored_at IS NULL
             ORDER BY id",
            &[],
        )
        .await
        .context("reading ops.mlflow_outbox")?;
    let mut drained = Drained::default();
    let mut done = 0;
    for row in &rows {
        let id: i64 = row.get(0);
        let key: String = row.get(1);
        let outcome = match serde_json::from_value::<Work>(row.get(2)) {
            Ok(work) => mirror(work).await,
            Err(error) => Err(anyhow::anyhow!(
                "{key} is not work this version knows: {error}"
            )),
        };
        match outcome {
            Ok(outcome) => {
                let note = match &outcome {
                    Outcome::Mirrored => {
                        drained.mirrored += 1;
                        metrics::counter!("mlflow_writes_total", "outcome" => "mirrored")
                            .increment(1);
                        None
                    }
                    Outcome::Skipped(why) => {
                        drained.skipped += 1;
                        metrics::counter!("mlflow_writes_total", "outcome" => "skipped")
                            .increment(1);
                        tracing::warn!(key, why, "MLflow work passed over");
                        Some(why.clone())
                    }
                };
                client
                    .execute(
                        "UPDATE ops.mlflow_outbox SET mirrored_at = now(), attempts = attempts + 1,
                             last_attempt_at = now(), last_error = $2
                         WHERE id = $1",
                        &[&id, &note],
                    )
                    .await
                    .with_context(|| format!("marking {key} mirrored"))?;
                done += 1;
            }
            Err(error) => {
                let error = format!("{key}: {error:#}");
                metrics::counter!("mlflow_writes_total", "outcome" => "failed").increment(1);
                client
                    .execute(
                        "UPDATE ops.mlflow_outbox SET attempts = attempts + 1,
                             last_attempt_at = now(), last_error = $2
                         WHERE id = $1",
                        &[&id, &error],
                    )
                    .await
                    .with_context(|| format!("recording why {key} failed"))?;
                drained.error = Some(error);
                break;
            }
        }
    }
    drained.pending = Some((rows.len() - done) as i64);
    Ok(drained)
}

/// The queue's session-level advisory lock, on a pooled connection of its own. Released on
/// every path: [`QueueLock::release`] unlocks it and hands the connection back to the pool;
/// dropped without that (the drain cancelled, e.g. by a deadline, or the unlock failing), the
/// connection is taken out of the pool and closed, and the session's lock dies with it.
struct QueueLock {
    client: Option<PooledClient>,
    session: LockSession,
}

impl QueueLock {
    /// The lock, or `None` when another session holds it.
    async fn try_take(db: &DbPool, session: LockSession) -> anyhow::Result<Option<QueueLock>> {
        let client = db.get().await.context("getting a database connection")?;
        let lock = QueueLock {
            client: Some(client),
            session,
        };
        let idle_limit_ms = session.idle_limit.as_millis().min(i32::MAX as u128);
        let locked: bool = lock
            .client()
            .query_one(
                &format!(
                    "SELECT pg_try_advisory_lock($1), set_config('idle_session_timeout', '{idle_limit_ms}', false)"
                ),
                &[&locks::MLFLOW],
            )
            .await
            .context("taking the MLflow queue's lock")?
            .get(0);
        if locked {
            Ok(Some(lock))
        } else {
            lock.hand_back("RESET idle_session_timeout").await;
            Ok(None)
        }
    }

    fn client(&self) -> &tokio_postgres::Client {
        self.client
            .as_ref()
            .expect("the lock's connection until it is released")
    }

    /// Says `SELECT 1` every heartbeat, so the server does not end a drain that waits on
    /// MLflow; returns only when the session is gone, and the lock with it.
    async fn keep_alive(&self) -> anyhow::Error {
        loop {
            tokio::time::sleep(self.session.heartbeat).await;
            if let Err(error) = self.client().simple_query("SELECT 1").await {
                return anyhow::Error::new(error)
                    .context("the session holding the MLflow queue's lock ended");
            }
        }
    }

    async fn release(self) {
        self.hand_back(&format!(
            "SELECT pg_advisory_unlock({}); RESET idle_session_timeout",
            locks::MLFLOW
        ))
        .await;
    }

    /// Runs `sql` (undoing what the lock set on the session) and gives the connection back to
    /// the pool; closes it instead when that fails.
    async fn hand_back(mut self, sql: &str) {
        let Some(client) = self.client.take() else {
            return;
        };
        if let Err(error) = client.batch_execute(sql).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "closing the MLflow queue lock's connection"
            );
            drop(PooledClient::take(client));
        }
    }
}

impl Drop for QueueLock {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(PooledClient::take(client));
        }
    }
}

/// The tags every run of a training carries.
fn training_tags(training: &TrainingRun) -> Vec<Tag> {
    let mut tags = vec![
        Tag::new("appraise.training_id", training.training_id),
        Tag::new("appraise.batch_number", training.batch_number),
        Tag::new(
            "appraise.batches",
            format!("{}..={}", training.first_batch, training.last_batch),
        ),
        Tag::new("appraise.new_rows", training.new_rows),
        Tag::new("appraise.rows_train", training.rows_train),
        Tag::new("appraise.rows_validation", training.rows_validation),
        Tag::new("appraise.rows_test", training.rows_test),
        Tag::new("appraise.reason", &training.reason),
        Tag::new("appraise.code_version", &training.code_version),
    ];
    match &training.drift {
        Some(drift) => {
            tags.push(Tag::new(
                "appraise.drift",
                if drift.drifted { "drifted" } else { "no drift" },
            ));
            tags.push(Tag::new("appraise.drift_report_id", drift.report_id));
            if let Some(feature) = &drift.worst_feature {
                tags.push(Tag::new("appraise.drift_worst_feature", feature));
            }
        }
        None => tags.push(Tag::new(
            "appraise.drift",
            "not tested (no production model)",
        )),
    }
    tags
}

fn training_params(training: &TrainingRun) -> Vec<Tag> {
    vec![
        Tag::new("first_batch", training.first_batch),
        Tag::new("last_batch", training.last_batch),
        Tag::new("split_seed", training.split_seed),
    ]
}

/// `validation_rmse`, …, `test_mape` and `fit_seconds`.
fn model_metrics(model: &ModelRun, timestamp: i64) -> Vec<Metric> {
    let mut metrics = Vec::new();
    for (side, values) in [("validation", &model.validation), ("test", &model.test)] {
        for (name, value) in [
            ("rmse", values.rmse),
            ("mae", values.mae),
            ("r2", values.r2),
            ("mape", values.mape),
            ("rows", values.rows as f64),
        ] {
            metrics.push(Metric {
                key: format!("{side}_{name}"),
                value,
                timestamp,
                step: 0,
            });
        }
    }
    metrics.push(Metric {
        key: "fit_seconds".to_owned(),
        value: model.fit_seconds,
        timestamp,
        step: 0,
    });
    metrics
}

/// A JSON object of parameters as MLflow parameters: nested keys joined with `.`, strings as
/// they are, other values as JSON.
fn flatten_params(params: &serde_json::Value) -> Vec<Tag> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut Vec<Tag>) {
        match value {
            serde_json::Value::Object(fields) => {
                for (name, value) in fields {
                    let key = if prefix.is_empty() {
                        name.clone()
                    } else {
                        format!("{prefix}.{name}")
                    };
                    walk(&key, value, out);
                }
            }
            serde_json::Value::String(text) => out.push(Tag::new(prefix, text)),
            other => out.push(Tag::new(prefix, other)),
        }
    }
    let mut out = Vec::new();
    walk(
        if params.is_object() { "" } else { "params" },
        params,
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use appraise_testkit::fixtures::{fresh_database, query_value};

    /// A lock session whose server gives up after a second without a word.
    const IMPATIENT: LockSession = LockSession {
        heartbeat: Duration::from_millis(200),
        idle_limit: Duration::from_secs(1),
    };

    fn rollback(promotion_id: i64) -> Work {
        Work::Rollback(RollbackDone {
            promotion_id,
            version: format!("t{promotion_id:06}-ridge"),
            previous_version: None,
            reason: "by hand".to_owned(),
        })
    }

    async fn queued(db: &DbPool, works: &[Work]) {
        let client = db.get().await.unwrap();
        for work in works {
            queue(&**client, work).await.unwrap();
        }
    }

    #[tokio::test]
    async fn work_slower_than_the_sessions_idle_limit_is_still_mirrored_and_marked() {
        let (_, db) = fresh_database().await.unwrap();
        queued(&db, &[rollback(1), rollback(2)]).await;
        // The first piece takes three times as long as the server lets a silent session live.
        let drained = drain_queue(&db, IMPATIENT, |work| async move {
            if work.key() == "rollback-000001" {
                tokio::time::sleep(3 * IMPATIENT.idle_limit).await;
            }
            Ok(Outcome::Mirrored)
        })
        .await
        .unwrap();
        assert_eq!(
            (
                drained.mirrored,
                drained.pending,
                &drained.error,
                drained.busy
            ),
            (2, Some(0), &None, false),
            "{drained:?}"
        );
        let marked: i64 = query_value(
            &db,
            "SELECT count(*) FROM ops.mlflow_outbox WHERE mirrored_at IS NOT NULL AND attempts = 1",
        )
        .await;
        assert_eq!(marked, 2);
        // The lock was given back: the next drain is not turned away.
        let again = drain_queue(&db, IMPATIENT, |_| async { Ok(Outcome::Mirrored) })
            .await
            .unwrap();
        assert_eq!(
            (again.busy, again.mirrored, again.pending),
            (false, 0, Some(0))
        );
    }

    #[tokio::test]
    async fn a_drain_stops_at_the_first_failure_and_keeps_what_it_marked_before() {
        let (_, db) = fresh_database().await.unwrap();
        queued(&db, &[rollback(1), rollback(2), rollback(3)]).await;
        let drained = drain_queue(&db, IMPATIENT, |work| async move {
            match work.key().as_str() {
                "rollback-000002" => Err(anyhow::anyhow!("MLflow said no")),
                _ => Ok(Outcome::Mirrored),
            }
        })
        .await
        .unwrap();
        assert_eq!(
            (drained.mirrored, drained.pending),
            (1, Some(2)),
            "{drained:?}"
        );
        let error = drained.error.unwrap();
        assert!(
            error.contains("rollback-000002") && error.contains("MLflow said no"),
            "{error}"
        );
        let rows: Vec<(String, bool, i32, Option<String>)> = db
            .get()
            .await
            .unwrap()
            .query(
                "SELECT work_key, mirrored_at IS NOT NULL, attempts, last_error
                 FROM ops.mlflow_outbox ORDER BY id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
            .collect();
        assert_eq!(
            rows,
            [
                ("rollback-000001".to_owned(), true, 1, None),
                ("rollback-000002".to_owned(), false, 1, Some(error)),
                ("rollback-000003".to_owned(), false, 0, None),
            ]
        );
    }

    #[tokio::test]
    async fn one_drainer_at_a_time_and_a_cancelled_drain_leaves_no_lock_behind() {
        let (_, db) = fresh_database().await.unwrap();
        queued(&db, &[rollback(1)]).await;
        let (started, has_started) = tokio::sync::oneshot::channel::<()>();
        let mut started = Some(started);
        let stuck = drain_queue(&db, IMPATIENT, move |_| {
            let started = started.take();
            async move {
                if let Some(started) = started {
                    let _ = started.send(());
                }
                std::future::pending::<anyhow::Result<Outcome>>().await
            }
        });
        let other = async {
            has_started.await.unwrap();
            drain_queue(&db, IMPATIENT, |_| async { Ok(Outcome::Mirrored) })
                .await
                .unwrap()
        };
        // The second drain runs while the first waits on its work; then the first is dropped,
        // as a deadline drops it.
        let other = tokio::select! {
            _ = stuck => unreachable!("the stuck drain never ends"),
            other = other => other,
        };
        assert!(other.busy, "{other:?}");
        // The dropped drain's connection is closed, and its session's lock dies with it (the
        // server notices the closed connection a moment later: wait for that, at most 30 s).
        let mut next = Drained::default();
        for _ in 0..300 {
            next = drain_queue(&db, IMPATIENT, |_| async { Ok(Outcome::Mirrored) })
                .await
                .unwrap();
            if !next.busy {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            (next.busy, next.mirrored, next.pending),
            (false, 1, Some(0)),
            "{next:?}"
        );
    }

    #[test]
    fn parameters_flatten_to_dotted_keys() {
        let params = serde_json::json!({"alpha": 1.0, "trees": {"count": 100, "kind": "full"}});
        assert_eq!(
            flatten_params(&params),
            [
                Tag::new("alpha", "1.0"),
                Tag::new("trees.count", "100"),
                Tag::new("trees.kind", "full"),
            ]
        );
    }

    #[test]
    fn tracking_uris_must_be_http_or_https() {
        assert_eq!(
            tracking_base_url("http://127.0.0.1:5000/").unwrap(),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            tracking_base_url("https://mlflow.example").unwrap(),
            "https://mlflow.example"
        );
        let error = tracking_base_url("databricks").unwrap_err().to_string();
        assert!(
            error.contains("MLFLOW_TRACKING_URI") && error.contains("http://"),
            "{error}"
        );
    }

    #[test]
    fn tracking_uris_with_credentials_are_refused_without_repeating_them() {
        for uri in [
            "https://alice:s3cret-pw@mlflow.example/",
            "http://s3cret-pw@127.0.0.1:5000/mlflow",
        ] {
            let error = tracking_base_url(uri).unwrap_err().to_string();
            assert!(
                error.contains("MLFLOW_TRACKING_URI")
                    && error.contains("MLFLOW_TRACKING_USERNAME")
                    && error.contains("MLFLOW_TRACKING_PASSWORD"),
                "{error}"
            );
            assert!(!error.contains("s3cret-pw"), "{error}");
        }
        // An @ after the host is part of the path, not credentials.
        assert_eq!(
            tracking_base_url("http://mlflow.example/team@1").unwrap(),
            "http://mlflow.example/team@1"
        );
    }
}
