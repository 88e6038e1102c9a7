//! The fault suite: the whole pipeline, run for real (PostgreSQL, the embedded S3 server, the
//! batch source and every function binary in its HTTP mode), once cleanly as the reference and
//! once per kind of fault, each faulty run compared with the reference row by row:
//!
//! - `kill -9`: each stage's function is killed at several moments after an event reaches it,
//!   started again, and the event delivered again, as a platform does after a crash;
//! - PostgreSQL outages: the server is stopped as a crash stops it (`pg_ctl stop -m immediate`)
//!   at different moments, for seconds, then started again;
//! - concurrent copies: every event is delivered three times at once;
//! - fuzzed predictor bodies and model swaps under load, against the reference's predictor.
//!
//! Each kind prints one line, `N injected · L lost rows · D duplicated rows · O orphan objects ·
//! F 5xx`, and the test fails on anything but zeros. "Lost" counts rows, decisions, model
//! versions and promotions of the reference that the faulty run lacks, plus announcements never
//! written; "duplicated" the rows it has that the reference lacks, plus clean listings kept
//! twice; "orphan" objects no database row accounts for (a model artifact without its version,
//! a manifest without its batch); "5xx" answers other than the retryable 503 a function gives
//! while its database is away, and 503s that outlasted the redelivery patience.
//!
//! `FAULTS=full` (what `bash bench/faults.sh` sets) runs the long version: more kill points,
//! outages of 1 to 10 s, larger batches. The default is the short version CI runs.

mod predictor;
mod snapshot;

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use appraise_core::{db::DbPool, objects::ObjectStore};
use appraise_source::{DataConfig, Dataset, SourceState, plan::Scale, router};
use appraise_testkit::{
    fixtures::BUCKET,
    postgres::Postgres,
    processes::{FunctionProcess, binary},
    s3_server::{S3Server, minio_event},
};
use serde_json::{Value, json};

/// How hard the suite pushes.
#[derive(Clone, Copy)]
struct Intensity {
    scale: f64,
    /// Moments after an event reaches a stage at which it is killed, one kill each.
    kill_delays_ms: &'static [u64],
    /// (stage slot, seconds down) of each PostgreSQL outage.
    outages: &'static [(Slot, f64)],
    fuzzed_bodies: usize,
    swaps: usize,
}

/// Where in a run an outage begins: the n-th delivery to a stage (0-based).
#[derive(Clone, Copy, Debug)]
struct Slot {
    stage: Stage,
    delivery: usize,
}

const SHORT: Intensity = Intensity {
    scale: 0.01,
    kill_delays_ms: &[0, 15, 40, 90, 250],
    outages: &[
        (slot(Stage::Ingest, 1), 1.0),
        (slot(Stage::Process, 2), 1.5),
        (slot(Stage::Train, 0), 2.0),
        (slot(Stage::Promote, 0), 1.0),
        (slot(Stage::Ingest, 4), 3.0),
    ],
    fuzzed_bodies: 2_000,
    swaps: 20,
};

const FULL: Intensity = Intensity {
    scale: 0.05,
    kill_delays_ms: &[0, 10, 25, 50, 100, 200, 400, 800],
    outages: &[
        (slot(Stage::Ingest, 0), 1.0),
        (slot(Stage::Process, 1), 3.0),
        (slot(Stage::Train, 0), 5.0),
        (slot(Stage::Promote, 0), 2.0),
        (slot(Stage::Ingest, 3), 10.0),
        (slot(Stage::Process, 4), 7.0),
        (slot(Stage::Train, 1), 4.0),
    ],
    fuzzed_bodies: 10_000,
    swaps: 50,
};

const fn slot(stage: Stage, delivery: usize) -> Slot {
    Slot { stage, delivery }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Ingest,
    Process,
    Train,
    Promote,
}

impl Stage {
    const ALL: [Stage; 4] = [Stage::Ingest, Stage::Process, Stage::Train, Stage::Promote];

    fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Process => "process",
            Stage::Train => "train",
            Stage::Promote => "promote",
        }
    }
}

/// What a run applies.
#[derive(Clone, Copy, PartialEq)]
enum Faults {
    None,
    Kills,
    Outages,
    ConcurrentCopies,
}

/// What happened to deliveries in a run.
#[derive(Default)]
struct Tally {
    injected: AtomicUsize,
    /// 5xx other than 503, and 503s that outlasted the patience.
    five_xx: AtomicUsize,
    /// Retryable answers (503, connection refused or reset) that a redelivery got past.
    retried: AtomicUsize,
}

/// A function binary the run can kill and start again.
struct Function {
    name: &'static str,
    env: Vec<(String, String)>,
    process: Option<FunctionProcess>,
}

impl Function {
    async fn start(
        name: &'static str,
        env: Vec<(String, String)>,
        logs: &std::path::Path,
    ) -> Function {
        let process = FunctionProcess::start_logged(name, &env, logs)
            .await
            .unwrap();
        Function {
            name,
            env,
            process: Some(process),
        }
    }

    fn url(&self) -> String {
        self.process.as_ref().expect("running").url()
    }

    /// `kill -9`, then the platform starts a new instance.
    async fn crash_and_restart(&mut self, logs: &std::path::Path) {
        if let Some(process) = self.process.take() {
            process.kill().await;
        }
        let log = logs.join(format!("{}-restarted.log", self.name));
        let process = FunctionProcess::start(
            self.name,
            &binary(self.name).unwrap(),
            &self.env,
            std::fs::File::create(log).unwrap().into(),
        )
        .await
        .unwrap();
        self.process = Some(process);
    }
}

/// One pipeline on its own PostgreSQL cluster and bucket.
struct Run {
    intensity: Intensity,
    faults: Faults,
    postgres: Arc<Mutex<Postgres>>,
    db: DbPool,
    _s3: S3Server,
    objects: ObjectStore,
    functions: BTreeMap<Stage, Function>,
    predict: Function,
    logs: tempfile::TempDir,
    client: reqwest::Client,
    tally: Arc<Tally>,
    /// Deliveries made so far to each stage (fault slots count them).
    deliveries: BTreeMap<Stage, usize>,
    firing: usize,
}

/// How long a delivery is retried while a function is down or answers 503.
const PATIENCE: Duration = Duration::from_secs(90);

impl Run {
    async fn start(intensity: Intensity, faults: Faults) -> Run {
        let postgres = tokio::task::spawn_blocking(Postgres::start)
            .await
            .unwrap()
            .unwrap();
        let db_url = postgres.create_database("appraise").await.unwrap();
        let db = appraise_core::db::pool(&db_url, 4).unwrap();
        let s3 = S3Server::start_in_temp_dir(Vec::new()).await.unwrap();
        let objects = ObjectStore::new(&s3.object_store_config(BUCKET));
        objects.ensure_bucket().await.unwrap();
        let dataset = Dataset::from_config(&DataConfig::Synthetic {
            seed: 42,
            scale: Scale::new(intensity.scale).unwrap(),
        })
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let source = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router(SourceState::new(dataset))).await });

        let logs = tempfile::tempdir().unwrap();
        let mut env = s3.env(BUCKET);
        env.extend([
            ("DATABASE_URL".to_owned(), db_url),
            ("DATABASE_POOL_SIZE".to_owned(), "4".to_owned()),
            ("SOURCE_URL".to_owned(), source),
            ("SOURCE_TIMEOUT_SECS".to_owned(), "20".to_owned()),
            ("INGEST_FIRST_SAMPLE".to_owned(), "600".to_owned()),
            ("INGEST_LATER_SAMPLE".to_owned(), "150".to_owned()),
            ("TRAIN_MIN_NEW_ROWS".to_owned(), "100".to_owned()),
            ("TRAIN_RF_TREES".to_owned(), "5".to_owned()),
            ("PREDICT_RELOAD_TOKEN".to_owned(), "faults".to_owned()),
            ("PREDICT_POLL_SECONDS".to_owned(), "0".to_owned()),
        ]);
        let mut functions = BTreeMap::new();
        for stage in Stage::ALL {
            functions.insert(
                stage,
                Function::start(stage.name(), env.clone(), logs.path()).await,
            );
        }
        let predict = Function::start("predict", env, logs.path()).await;
        Run {
            intensity,
            faults,
            postgres: Arc::new(Mutex::new(postgres)),
            db,
            _s3: s3,
            objects,
            functions,
            predict,
            logs,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()
                .unwrap(),
            tally: Arc::default(),
            deliveries: BTreeMap::new(),
            firing: 0,
        }
    }

    /// Drives the pipeline until the source is exhausted and every stage has caught up.
    async fn drive(&mut self) {
        loop {
            self.firing += 1;
            let firing = ping_event(self.firing);
            let report = self.deliver(Stage::Ingest, firing).await;
            let outcome = report["results"][0]["outcome"]
                .as_str()
                .unwrap_or("?")
                .to_owned();
            // Whatever ingest said (a redelivered firing answers "duplicate"), the database
            // says what is left to do downstream.
            self.downstream().await;
            if outcome == "exhausted" {
                break;
            }
            assert!(self.firing < 60, "the source never ran out");
        }
        // The production pointer reaches the predictor (its event, delivered once).
        let production = minio_event(BUCKET, "production/current.json", "ObjectCreated:Put", 0);
        let _ = self
            .client
            .post(format!("{}/", self.predict.url()))
            .json(&production)
            .send()
            .await;
    }

    /// Delivers each pending object event, oldest first, as the platform would.
    async fn downstream(&mut self) {
        loop {
            let pending = self
                .query_keys(
                    "SELECT 'process', manifest_key FROM ops.batches b
                     WHERE NOT EXISTS (SELECT 1 FROM ops.clean_batches c WHERE c.batch_number = b.batch_number)
                     UNION ALL
                     SELECT 'train', manifest_key FROM ops.clean_batches c
                     WHERE NOT EXISTS (SELECT 1 FROM ops.trainings t WHERE t.batch_number = c.batch_number)
                     UNION ALL
                     SELECT 'promote', 'candidates/training-' || lpad(t.id::text, 6, '0') || '.json'
                     FROM ops.trainings t
                     WHERE decision = 'train'
                       AND EXISTS (SELECT 1 FROM ops.model_versions v WHERE v.training_id = t.id)
                       AND NOT EXISTS (SELECT 1 FROM ops.promotions p WHERE p.training_id = t.id)",
                )
                .await;
            let Some((stage, key)) = pending.into_iter().min_by_key(|(stage, key)| {
                let order = ["process", "train", "promote"]
                    .iter()
                    .position(|s| s == stage)
                    .unwrap_or(9);
                (order, key.clone())
            }) else {
                return;
            };
            let stage = match stage.as_str() {
                "process" => Stage::Process,
                "train" => Stage::Train,
                _ => Stage::Promote,
            };
            self.deliver(stage, minio_event(BUCKET, &key, "ObjectCreated:Put", 0))
                .await;
        }
    }

    /// `(text, text)` rows of a query, retried while the database is down.
    async fn query_keys(&self, sql: &str) -> Vec<(String, String)> {
        let started = Instant::now();
        loop {
            let attempt = async {
                let client = self.db.get().await?;
                let rows = client.query(sql, &[]).await?;
                anyhow::Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            };
            match attempt.await {
                Ok(rows) => return rows,
                Err(error) if started.elapsed() < PATIENCE => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("{sql}: {error}"),
            }
        }
    }

    /// Delivers one event to a stage with this run's faults, and redelivers it until it is
    /// answered 200; returns the answer.
    async fn deliver(&mut self, stage: Stage, body: Value) -> Value {
        let index = *self.deliveries.entry(stage).or_default();
        *self.deliveries.get_mut(&stage).unwrap() += 1;
        match self.faults {
            Faults::Kills => {
                // The stage's first delivery meets the even-numbered kill points, its second
                // the odd-numbered ones: every stage gets them all, even promote, which sees
                // only a few events in a run.
                let delays: Vec<u64> = self
                    .intensity
                    .kill_delays_ms
                    .iter()
                    .skip(index)
                    .step_by(2)
                    .copied()
                    .take(if index < 2 { usize::MAX } else { 0 })
                    .collect();
                for delay in delays {
                    self.tally.injected.fetch_add(1, Ordering::SeqCst);
                    let url = self.functions[&stage].url();
                    let client = self.client.clone();
                    let doomed = body.clone();
                    let first = tokio::spawn(async move {
                        client.post(format!("{url}/")).json(&doomed).send().await
                    });
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let logs = self.logs.path().to_owned();
                    self.functions
                        .get_mut(&stage)
                        .unwrap()
                        .crash_and_restart(&logs)
                        .await;
                    let _ = first.await;
                }
            }
            Faults::Outages => {
                let outage = self
                    .intensity
                    .outages
                    .iter()
                    .find(|(slot, _)| slot.stage == stage && slot.delivery == index);
                if let Some(&(_, seconds)) = outage {
                    self.tally.injected.fetch_add(1, Ordering::SeqCst);
                    let postgres = self.postgres.clone();
                    // The outage begins shortly after the event reaches the stage.
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        tokio::task::spawn_blocking(move || {
                            let mut postgres = postgres.lock().unwrap();
                            postgres.crash().unwrap();
                            std::thread::sleep(Duration::from_secs_f64(seconds));
                            postgres.restart().unwrap();
                        })
                        .await
                        .unwrap();
                    });
                }
            }
            Faults::ConcurrentCopies => {
                self.tally.injected.fetch_add(1, Ordering::SeqCst);
                let url = self.functions[&stage].url();
                let copies: Vec<_> = (0..3)
                    .map(|_| {
                        let (client, url, body, tally) = (
                            self.client.clone(),
                            url.clone(),
                            body.clone(),
                            self.tally.clone(),
                        );
                        tokio::spawn(
                            async move { post_until_ok(&client, &url, &body, &tally).await },
                        )
                    })
                    .collect();
                let mut answers = Vec::new();
                for copy in copies {
                    answers.push(copy.await.unwrap());
                }
                return answers.into_iter().next().unwrap();
            }
            Faults::None => {}
        }
        let url = self.functions[&stage].url();
        post_until_ok(&self.client, &url, &body, &self.tally).await
    }
}

fn ping_event(firing: usize) -> Value {
    // An EventBridge scheduled event: its id is the firing's, so a redelivery is recognised.
    json!({
        "version": "0", "id": format!("faults-{}-{firing}", std::process::id()),
        "detail-type": "Scheduled Event", "source": "aws.events", "account": "000000000000",
        "time": "2026-12-01T00:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:000000000000:rule/appraise-ingest"],
        "detail": {}
    })
}

/// Posts `body` until it is answered 200, counting what it met on the way. A 4xx is a bug in
/// the suite or the function and fails the test.
async fn post_until_ok(client: &reqwest::Client, url: &str, body: &Value, tally: &Tally) -> Value {
    let started = Instant::now();
    let mut wait = Duration::from_millis(50);
    let mut last: String;
    loop {
        match client.post(format!("{url}/")).json(body).send().await {
            Ok(response) if response.status().is_success() => {
                return response.json().await.unwrap();
            }
            Ok(response) if response.status() == 503 => {
                tally.retried.fetch_add(1, Ordering::SeqCst);
                last = format!("HTTP 503: {}", response.text().await.unwrap_or_default());
            }
            Ok(response) if response.status().is_server_error() => {
                let status = response.status();
                last = format!(
                    "HTTP {status}: {}",
                    response.text().await.unwrap_or_default()
                );
                eprintln!("{url}: {last}");
                tally.five_xx.fetch_add(1, Ordering::SeqCst);
            }
            Ok(response) => {
                let status = response.status();
                panic!(
                    "{url}: HTTP {status}: {} for {body}",
                    response.text().await.unwrap_or_default()
                );
            }
            // Connection refused or reset: the function is restarting.
            Err(error) => {
                tally.retried.fetch_add(1, Ordering::SeqCst);
                last = error.to_string();
            }
        }
        if started.elapsed() > PATIENCE {
            tally.five_xx.fetch_add(1, Ordering::SeqCst);
            panic!("{url}: no 200 within {PATIENCE:?}; last: {last}; event {body}");
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(1));
    }
}

/// Prints the kind's line and says whether it is all zeros.
fn report(
    kind: &str,
    injected: usize,
    lost: usize,
    duplicated: usize,
    orphans: usize,
    five_xx: usize,
) -> bool {
    println!(
        "{kind:<18} {injected:>6} injected · {lost} lost rows · {duplicated} duplicated rows · {orphans} orphan objects · {five_xx} 5xx"
    );
    lost == 0 && duplicated == 0 && orphans == 0 && five_xx == 0
}

fn intensity() -> Intensity {
    match std::env::var("FAULTS").as_deref() {
        Ok("full") => FULL,
        _ => SHORT,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_loses_nothing_to_crashes_outages_and_duplicates() {
    let intensity = intensity();
    eprintln!("faults: the reference run");
    let mut reference = Run::start(intensity, Faults::None).await;
    reference.drive().await;
    let expected = reference.snapshot().await;
    assert!(
        !expected.rows["ops.model_versions"].is_empty(),
        "the reference run trained models"
    );
    assert!(expected.orphans.is_empty(), "{:?}", expected.orphans);

    let mut all_clean = true;
    let mut failures = Vec::new();
    for (kind, faults) in [
        ("kill -9", Faults::Kills),
        ("postgres outage", Faults::Outages),
        ("3 concurrent copies", Faults::ConcurrentCopies),
    ] {
        eprintln!("faults: a run with {kind}");
        let mut run = Run::start(intensity, faults).await;
        run.drive().await;
        let snapshot = run.snapshot().await;
        let (lost, duplicated, differences) = snapshot.compare(&expected);
        let clean = report(
            kind,
            run.tally.injected.load(Ordering::SeqCst),
            lost,
            duplicated,
            snapshot.orphans.len(),
            run.tally.five_xx.load(Ordering::SeqCst),
        );
        if !clean {
            failures.push(format!(
                "{kind}: {differences:?} orphans {:?}",
                snapshot.orphans
            ));
        }
        all_clean &= clean;
    }

    all_clean &= predictor::fuzz(&reference, intensity.fuzzed_bodies).await;
    all_clean &= predictor::swap_models_under_load(&reference, intensity.swaps).await;
    assert!(all_clean, "faults lost or broke something: {failures:#?}");
}
