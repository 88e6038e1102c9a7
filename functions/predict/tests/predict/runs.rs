//! Stage runs (`ops.stage_runs`, `GET /runs`, `POST /runs/{stage}/{batch}`): the real ingest,
//! process, train and promote stages driven in order as the harness drives them (ingest from
//! the course-API double, each next stage on the object its predecessor wrote), with a promote
//! attempt that fails, is re-run from the real predictor binary's API and reaches done through
//! the S3 server's notification to the promote stage's event endpoint (as on the harness),
//! duplicates of every event, an ingest fired from the API (`POST /runs/ingest`) the same way,
//! and `GET /runs`, checked against the OpenAPI document's schema by Python's jsonschema.

use std::{collections::HashMap, future::Future};

use appraise_core::{
    db::DbPool,
    events::{ObjectCreated, ScheduleTick, Trigger},
    keys,
    objects::ObjectStore,
    runtime::{self, StageResult},
};
use appraise_ingest::{
    Ingest, IngestReport,
    config::{IngestConfig, SamplingConfig, SourceConfig},
};
use appraise_process::{Process, ProcessReport, rules::CleaningRules};
use appraise_promote::{Promote, PromoteConfig, PromoteReport};
use appraise_testkit::{
    course_api_double::{CourseApi, Plan},
    fixtures,
    processes::FunctionProcess,
    s3_server::NotificationRule,
};
use appraise_train::{Train, TrainReport, config::TrainConfig, decision::RetrainRule};
use serde_json::Value;

const TOKEN: &str = "operator-token";

/// The four stages over one database and bucket, as the harness runs them.
struct Pipeline {
    db: DbPool,
    ingest: Ingest,
    process: Process,
    train: Train,
    promote: Promote,
}

impl Pipeline {
    fn new(db: &DbPool, objects: &ObjectStore, course_api: &CourseApi) -> Pipeline {
        let config = IngestConfig {
            source: SourceConfig {
                base_url: course_api.url(),
                extra_roots: Vec::new(),
                group_number: 9,
                day: None,
                timeout: std::time::Duration::from_secs(5),
                retries: 3,
                backoff: std::time::Duration::from_millis(20),
            },
            sampling: SamplingConfig {
                first_batch: 3_000,
                later_batches: 200,
                seed: 7,
            },
        };
        let train = TrainConfig {
            rule: RetrainRule { min_new_rows: 500 },
            ..TrainConfig::small()
        };
        Pipeline {
            db: db.clone(),
            ingest: Ingest::new(config, db.clone(), objects.clone()).unwrap(),
            process: Process::new(CleaningRules::default(), db.clone(), objects.clone()),
            train: Train::new(train, db.clone(), objects.clone()),
            promote: Promote::new(PromoteConfig::default(), db.clone(), objects.clone()),
        }
    }

    async fn fire(&self, id: &str) -> IngestReport {
        let tick = ScheduleTick {
            id: Some(id.to_owned()),
            time: None,
            payload: Value::Null,
        };
        self.ingest.ingest_tick(&tick).await.unwrap()
    }

    async fn process(&self, batch: i32) -> ProcessReport {
        self.process
            .process_object(&event(&keys::batch_manifest("raw", batch)))
            .await
            .unwrap()
    }

    async fn train(&self, batch: i32) -> TrainReport {
        self.train
            .train_object(&event(&keys::batch_manifest("clean", batch)))
            .await
            .unwrap()
    }

    async fn promote(&self, batch: i32) -> Result<PromoteReport, String> {
        self.promote
            .promote_object(&event(&keys::candidates(i64::from(batch))))
            .await
            .map_err(|error| error.to_string())
    }

    /// `ops.stage_runs` of `batch`, by stage: (state, attempts, rows_in, rows_out, error).
    async fn runs(&self, batch: i32) -> HashMap<String, Row> {
        let client = self.db.get().await.unwrap();
        client
            .query(
                "SELECT stage, state, attempts, rows_in, rows_out, error, note,
                        duration_seconds IS NOT NULL
                 FROM ops.stage_runs WHERE batch_number = $1",
                &[&batch],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row.get(0),
                    Row {
                        state: row.get(1),
                        attempts: row.get(2),
                        rows_in: row.get(3),
                        rows_out: row.get(4),
                        error: row.get(5),
                        note: row.get(6),
                        timed: row.get(7),
                    },
                )
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Row {
    state: String,
    attempts: i32,
    rows_in: Option<i64>,
    rows_out: Option<i64>,
    error: Option<String>,
    note: Option<String>,
    timed: bool,
}

/// Serves a stage's event endpoint (`POST /`, every event shape) on a free port, as the
/// harness serves each stage; returns its URL.
async fn serve_stage<H, F>(handler: H) -> String
where
    H: Fn(Trigger) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = StageResult> + Send + 'static,
{
    let endpoint = runtime::event_endpoint(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(
        async move { axum::serve(listener, axum::Router::new().route("/", endpoint)).await },
    );
    url
}

fn event(key: &str) -> ObjectCreated {
    fixtures::object_created(key)
}

#[tokio::test]
async fn each_stage_records_its_run_once_counts_retries_and_keeps_the_error_of_a_failure() {
    let (db_url, db) = fixtures::fresh_database().await.unwrap();
    let (s3, objects) = fixtures::s3_server(vec![]).await.unwrap();
    let course_api = CourseApi::start(Plan::from_sample(1, &[3_000, 200, 200])).await;
    let pipeline = Pipeline::new(&db, &objects, &course_api);

    // Batch 1 through ingest, process and train, which trains (no production model yet).
    let IngestReport::Stored(stored) = pipeline.fire("tick-1").await else {
        panic!("batch 1 was not stored");
    };
    assert_eq!(stored.batch_number, 1);
    let ProcessReport::Processed(processed) = pipeline.process(1).await else {
        panic!("batch 1 was not processed");
    };
    let TrainReport::Trained {
        rows_train,
        rows_validation,
        rows_test,
        ..
    } = pipeline.train(1).await
    else {
        panic!("batch 1 did not train");
    };

    // Promote's first attempt fails: the candidates' artifacts are not in the bucket (yet).
    let mut artifacts = Vec::new();
    for key in objects.list("models/").await.unwrap() {
        if key.ends_with("/model.json") {
            artifacts.push((key.clone(), objects.get(&key).await.unwrap().unwrap()));
            objects.delete(&key).await.unwrap();
        }
    }
    assert!(!artifacts.is_empty());
    let failure = pipeline.promote(1).await.unwrap_err();
    assert!(failure.contains("is not in the bucket"), "{failure}");
    let runs = pipeline.runs(1).await;
    let promote = &runs["promote"];
    assert_eq!(promote.state, "failed");
    assert_eq!(promote.attempts, 1);
    assert!(
        promote
            .error
            .as_deref()
            .is_some_and(|e| e.contains("is not in the bucket")),
        "{promote:?}"
    );
    // Its transaction rolled back: no decision was recorded.
    assert_eq!(
        fixtures::query_value::<i64>(&db, "SELECT count(*) FROM ops.promotions").await,
        0
    );

    // The predictor, with an operator token; candidates/ objects now wake the promote stage
    // through its event endpoint, as the harness routes them.
    let mut env = s3.env(fixtures::BUCKET);
    env.extend([
        ("DATABASE_URL".to_owned(), db_url),
        ("PREDICT_RELOAD_TOKEN".to_owned(), TOKEN.to_owned()),
    ]);
    let predict = crate::support::start_predictor(&env).await;
    let promote = pipeline.promote.clone();
    let promote_url = serve_stage(move |trigger| {
        let promote = promote.clone();
        async move { promote.handle(trigger).await }
    })
    .await;
    s3.set_rules(vec![NotificationRule {
        prefix: "candidates/".into(),
        suffix: String::new(),
        target: Some(promote_url),
    }]);
    let client = reqwest::Client::new();
    let rerun = async |path: &str, token: Option<&str>| -> (u16, Value) {
        let mut request = client.post(format!("{}{path}", predict.url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    // Without the token, or with a wrong one, nothing is asked.
    assert_eq!(rerun("/runs/promote/1", None).await.0, 401);
    assert_eq!(rerun("/runs/promote/1", Some("wrong")).await.0, 401);
    // Bad names are named.
    let (status, body) = rerun("/runs/deploy/x", Some(TOKEN)).await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["stage", "batch"]);
    // Only a failed attempt is re-run: any other is a conflict with the run's state.
    let (status, body) = rerun("/runs/train/1", Some(TOKEN)).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("did not fail (done)"),
        "{body}"
    );

    // A failed attempt whose announcement is gone has nothing to write again: 404.
    let hide = async |from: String, to: String| {
        let client = db.get().await.unwrap();
        let moved = client
            .execute(
                "UPDATE ops.outbox SET key = $2 WHERE key = $1",
                &[&from, &to],
            )
            .await
            .unwrap();
        assert_eq!(moved, 1, "{from}");
    };
    let hidden = format!("{}.hidden", keys::candidates(1));
    hide(keys::candidates(1), hidden.clone()).await;
    let (status, body) = rerun("/runs/promote/1", Some(TOKEN)).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no announcement"),
        "{body}"
    );
    hide(hidden, keys::candidates(1)).await;

    // The artifacts are back; the operator re-runs promote on batch 1: its candidates object
    // is written again, its event reaches promote, and the run is done, in two attempts.
    for (key, body) in artifacts {
        objects.put(&key, body, "application/json").await.unwrap();
    }
    let mut deliveries = s3.deliveries();
    let (status, body) = rerun("/runs/promote/1", Some(TOKEN)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["reannounced"], keys::candidates(1));
    let delivery = loop {
        let delivery = deliveries.recv().await.unwrap();
        if delivery.key == keys::candidates(1) {
            break delivery;
        }
    };
    assert_eq!(delivery.status, Some(200), "{}", delivery.response);
    let answer: Value = serde_json::from_str(&delivery.response).unwrap();
    let report: PromoteReport = serde_json::from_value(answer["results"][0].clone()).unwrap();
    assert!(
        matches!(report, PromoteReport::Decided { promoted: true, .. }),
        "{report:?}"
    );
    s3.set_rules(Vec::new());

    // Duplicates of every event of batch 1 change nothing.
    let before = pipeline.runs(1).await;
    assert!(matches!(
        pipeline.fire("tick-1").await,
        IngestReport::Duplicate { .. }
    ));
    assert!(matches!(
        pipeline.process(1).await,
        ProcessReport::Duplicate { .. }
    ));
    assert!(matches!(
        pipeline.train(1).await,
        TrainReport::Duplicate { .. }
    ));
    assert!(matches!(
        pipeline.promote(1).await,
        Ok(PromoteReport::Duplicate { .. })
    ));
    let runs = pipeline.runs(1).await;
    assert_eq!(runs, before);

    // One row per stage, with what each stage reported.
    assert_eq!(runs.len(), 4, "{runs:?}");
    let ingest = &runs["ingest"];
    assert_eq!(
        (ingest.state.as_str(), ingest.attempts),
        ("done", 1),
        "{ingest:?}"
    );
    assert_eq!(ingest.rows_in, Some(stored.rows_received as i64));
    assert_eq!(ingest.rows_out, Some(stored.rows_sampled as i64));
    let process = &runs["process"];
    assert_eq!((process.state.as_str(), process.attempts), ("done", 1));
    assert_eq!(process.rows_in, Some(processed.rows_in as i64));
    assert_eq!(process.rows_out, Some(processed.rows_kept as i64));
    let train = &runs["train"];
    assert_eq!((train.state.as_str(), train.attempts), ("done", 1));
    assert_eq!(
        train.rows_in,
        Some((rows_train + rows_validation + rows_test) as i64)
    );
    let promote = &runs["promote"];
    assert_eq!((promote.state.as_str(), promote.attempts), ("done", 2));
    assert!(
        promote.note.as_deref().unwrap().starts_with("promoted: "),
        "{promote:?}"
    );
    // The failure that came before is kept for the operator.
    assert!(
        promote
            .error
            .as_deref()
            .unwrap()
            .contains("not in the bucket")
    );
    assert!(runs.values().all(|row| row.timed), "{runs:?}");

    // Batch 2 is small: train skips it, and promote is left with nothing to do.
    assert!(matches!(
        pipeline.fire("tick-2").await,
        IngestReport::Stored(_)
    ));
    pipeline.process(2).await;
    assert!(matches!(
        pipeline.train(2).await,
        TrainReport::Skipped { .. }
    ));
    let runs = pipeline.runs(2).await;
    assert_eq!(runs["train"].state, "skipped");
    assert!(
        runs["train"]
            .note
            .as_deref()
            .unwrap()
            .contains("too few rows")
    );
    assert!(!runs.contains_key("promote"));

    // The predictor answers it, newest batch first, each batch with its four stages.
    let response = client
        .get(format!("{}/runs", predict.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let batches = answer["batches"].as_array().unwrap();
    let numbers: Vec<i64> = batches
        .iter()
        .map(|b| b["batch_number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);
    let states = |batch: &Value| -> Vec<(String, String)> {
        batch["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["stage"].as_str().unwrap().to_owned(),
                    s["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let pairs = |list: [(&str, &str); 4]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        states(&batches[0]),
        pairs([
            ("ingest", "done"),
            ("process", "done"),
            ("train", "skipped"),
            ("promote", "skipped"),
        ])
    );
    assert_eq!(
        states(&batches[1]),
        pairs([
            ("ingest", "done"),
            ("process", "done"),
            ("train", "done"),
            ("promote", "done"),
        ])
    );
    let promote = &batches[1]["stages"][3];
    assert_eq!(promote["attempts"], 2);
    assert!(
        promote["error"]
            .as_str()
            .unwrap()
            .contains("not in the bucket")
    );
    assert_eq!(batches[1]["stages"][0]["rows_in"], stored.rows_received);
    assert!(promote["duration_seconds"].as_f64().unwrap() >= 0.0);

    // The operator fires an ingest from the API: the request object's event reaches ingest
    // (routed as the harness routes it), which stores batch 3.
    let ingest = pipeline.ingest.clone();
    let ingest_url = serve_stage(move |trigger| {
        let ingest = ingest.clone();
        async move { ingest.handle(trigger).await }
    })
    .await;
    s3.set_rules(vec![NotificationRule {
        prefix: keys::INGEST_REQUESTS.into(),
        suffix: ".json".into(),
        target: Some(ingest_url),
    }]);
    let mut deliveries = s3.deliveries();
    assert_eq!(rerun("/runs/ingest", None).await.0, 401);
    let (status, body) = rerun("/runs/ingest", Some(TOKEN)).await;
    assert_eq!(status, 202, "{body}");
    let requested = body["requested"].as_str().unwrap().to_owned();
    assert!(keys::is_ingest_request(&requested), "{requested}");
    let delivery = loop {
        let delivery = deliveries.recv().await.unwrap();
        if delivery.key == requested {
            break delivery;
        }
    };
    assert_eq!(delivery.status, Some(200), "{}", delivery.response);
    let answer: Value = serde_json::from_str(&delivery.response).unwrap();
    assert_eq!(answer["results"][0]["outcome"], "stored", "{answer}");
    assert_eq!(answer["results"][0]["batch_number"], 3, "{answer}");
    s3.set_rules(Vec::new());

    // A batch that process has not cleaned yet is waiting there, and in the stages after.
    let answer: Value =
        crate::support::get_json(&client, format!("{}/runs?limit=1", predict.url())).await;
    let batches = answer["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0]["batch_number"], 3);
    assert_eq!(
        states(&batches[0]),
        pairs([
            ("ingest", "done"),
            ("process", "waiting"),
            ("train", "waiting"),
            ("promote", "waiting"),
        ])
    );
    assert_eq!(batches[0]["stages"][1]["attempts"], 0);
    assert_eq!(batches[0]["stages"][1]["started_at"], Value::Null);
    // The whole answer, as the OpenAPI document describes it.
    let answer: Value = crate::support::get_json(&client, format!("{}/runs", predict.url())).await;
    assert_schema(&answer, "Runs", &client, &predict).await;

    // A bad limit names the field.
    let response = client
        .get(format!("{}/runs?limit=0", predict.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["problems"][0]["field"], "limit");
}

/// Checks `value` against the OpenAPI document's schema `name`, as the predictor serves the
/// document, with Python's jsonschema (OpenAPI 3.0's `nullable: true` read as JSON Schema's
/// `"type": [type, "null"]`).
async fn assert_schema(
    value: &Value,
    name: &str,
    client: &reqwest::Client,
    predict: &FunctionProcess,
) {
    let python = fixtures::tools_venv().join("bin/python");
    if !python.exists() {
        fixtures::skip_without_tool("the tools venv (scripts/setup-tools.sh) for jsonschema");
        return;
    }
    let document: Value =
        crate::support::get_json(client, format!("{}/openapi.json", predict.url())).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openapi.json"), document.to_string()).unwrap();
    std::fs::write(dir.path().join("value.json"), value.to_string()).unwrap();
    let script = format!(
        "import json, sys, jsonschema\n\
         def nullable(node):\n\
         \x20   if isinstance(node, dict):\n\
         \x20       if node.pop('nullable', False) and 'type' in node:\n\
         \x20           node['type'] = [node['type'], 'null']\n\
         \x20           if 'enum' in node: node['enum'].append(None)\n\
         \x20       for child in node.values(): nullable(child)\n\
         \x20   elif isinstance(node, list):\n\
         \x20       for child in node: nullable(child)\n\
         document = json.load(open(sys.argv[1]))\n\
         nullable(document)\n\
         schema = dict(document['components']['schemas']['{name}'])\n\
         schema['components'] = document['components']\n\
         jsonschema.Draft7Validator(schema).validate(json.load(open(sys.argv[2])))\n"
    );
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(dir.path().join("openapi.json"))
        .arg(dir.path().join("value.json"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
