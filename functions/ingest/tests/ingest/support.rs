//! What the ingest tests stand on: a fresh database, an S3 server, the real batch source
//! (in-process), and a fault-injecting proxy in front of it.

#![allow(dead_code)] // each test file uses a different part

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use appraise_core::{db::DbPool, events::ScheduleTick, objects::ObjectStore};
use appraise_ingest::{
    Ingest, IngestReport, StoredBatch,
    config::{IngestConfig, SamplingConfig, SourceConfig},
};
use appraise_source::{DataConfig, Dataset, SourceState, plan::Scale, router};
use appraise_testkit::{fixtures, s3_server::S3Server};
use axum::{
    Router,
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};

/// Serves a router on 127.0.0.1, any port; returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

/// The real batch source with the generator at `scale`, seed 42.
pub fn dataset(scale: f64) -> Dataset {
    Dataset::from_config(&DataConfig::Synthetic {
        seed: 42,
        scale: Scale::new(scale).unwrap(),
    })
    .unwrap()
}

pub async fn start_source(scale: f64) -> String {
    serve(router(SourceState::new(dataset(scale)))).await
}

/// A database, a bucket, and the ingest stage pointed at `source_url`.
pub struct World {
    pub db: DbPool,
    pub db_url: String,
    pub s3: S3Server,
    pub objects: ObjectStore,
    pub ingest: Ingest,
}

pub fn ingest_config(source_url: &str, first: usize, later: usize) -> IngestConfig {
    IngestConfig {
        source: SourceConfig {
            base_url: source_url.to_owned(),
            extra_roots: Vec::new(),
            group_number: 9,
            day: None,
            timeout: Duration::from_secs(2),
            retries: 3,
            backoff: Duration::from_millis(20),
        },
        sampling: SamplingConfig {
            first_batch: first,
            later_batches: later,
            seed: 7,
        },
    }
}

pub async fn world(config: IngestConfig) -> World {
    let (db_url, db) = fixtures::fresh_database().await.unwrap();
    let (s3, objects) = fixtures::s3_server(vec![]).await.unwrap();
    let ingest = Ingest::new(config, db.clone(), objects.clone()).unwrap();
    World {
        db,
        db_url,
        s3,
        objects,
        ingest,
    }
}

pub fn tick(id: &str) -> ScheduleTick {
    ScheduleTick {
        id: Some(id.to_owned()),
        time: None,
        payload: serde_json::Value::Null,
    }
}

impl World {
    pub async fn fire(&self, id: &str) -> IngestReport {
        self.ingest.ingest_tick(&tick(id)).await.unwrap()
    }

    /// Fires until the source is exhausted; returns the stored batch numbers in order.
    pub async fn drain(&self, prefix: &str) -> Vec<i32> {
        self.drain_reports(prefix)
            .await
            .iter()
            .map(|batch| batch.batch_number)
            .collect()
    }

    /// Fires until the source is exhausted; returns what each stored batch reported.
    pub async fn drain_reports(&self, prefix: &str) -> Vec<StoredBatch> {
        let mut stored = Vec::new();
        for n in 0..100 {
            match self.fire(&format!("{prefix}-{n}")).await {
                IngestReport::Stored(batch) => stored.push(batch),
                IngestReport::Exhausted => return stored,
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("the source never ran out");
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let client = self.db.get().await.unwrap();
        client.query_one(sql, &[]).await.unwrap().get(0)
    }

    pub async fn batch_numbers(&self) -> Vec<i32> {
        let client = self.db.get().await.unwrap();
        client
            .query("SELECT batch_number FROM ops.batches ORDER BY 1", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    }
}

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    Pass,
    /// Answer 500 without asking the source (its cursor does not move).
    Fail500,
    /// Ask the source (its cursor moves), then send half the body and stop.
    Truncate,
    /// Ask the source (its cursor moves), then stall past the client's timeout.
    Stall,
    /// Ask the source, wait a second (within the client's timeout), then answer.
    Slow,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    faults: Arc<dyn Fn(usize) -> Fault + Send + Sync>,
    data_calls: Arc<AtomicUsize>,
}

/// A proxy in front of the real source that injects `faults(n)` into its n-th `/data` call
/// (counted from 0). Returns its URL and the call counter.
pub async fn faulty_proxy(
    upstream: String,
    faults: impl Fn(usize) -> Fault + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let proxy = Proxy {
        upstream,
        client: reqwest::Client::new(),
        faults: Arc::new(faults),
        data_calls: Arc::default(),
    };
    let calls = proxy.data_calls.clone();
    let router = Router::new()
        .route("/data", get(proxy_data))
        .route("/restart_data_generation", get(proxy_pass))
        .with_state(proxy);
    (serve(router).await, calls)
}

async fn forward(proxy: &Proxy, path: &str, query: Option<String>) -> (StatusCode, bytes::Bytes) {
    let url = format!("{}{path}?{}", proxy.upstream, query.unwrap_or_default());
    let response = proxy.client.get(url).send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.bytes().await.unwrap())
}

async fn proxy_pass(State(proxy): State<Proxy>, RawQuery(query): RawQuery) -> Response {
    forward(&proxy, "/restart_data_generation", query)
        .await
        .into_response()
}

async fn proxy_data(State(proxy): State<Proxy>, RawQuery(query): RawQuery) -> Response {
    let call = proxy.data_calls.fetch_add(1, Ordering::SeqCst);
    match (proxy.faults)(call) {
        Fault::Fail500 => (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response(),
        Fault::Pass => forward(&proxy, "/data", query).await.into_response(),
        Fault::Truncate => {
            let (status, body) = forward(&proxy, "/data", query).await;
            (status, body.slice(..body.len() / 2)).into_response()
        }
        Fault::Slow => {
            let answer = forward(&proxy, "/data", query).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            answer.into_response()
        }
        Fault::Stall => {
            let _ = forward(&proxy, "/data", query).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}
