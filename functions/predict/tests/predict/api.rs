//! The predict binary over HTTP, with a real model made by the real train and promote stages,
//! a real PostgreSQL and a real S3 server: the API, its errors, metrics, reloads, the inference
//! log, the Open Inference Protocol, and a model swap under load that fails no request.

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use appraise_core::{db::DbPool, keys, model::ProductionPointer, objects::ObjectStore};
use appraise_testkit::{fixtures, processes::FunctionProcess, s3_server::S3Server};
use bytes::Bytes;
use serde_json::{Value, json};

const TOKEN: &str = "test-reload-token";
/// Requests each load-generating worker sends at least, however slow the machine.
const REQUESTS_PER_WORKER: u32 = 10;

pub(crate) struct World {
    pub(crate) db: DbPool,
    objects: ObjectStore,
    production: String,
    pub(crate) predict: FunctionProcess,
    pub(crate) client: reqwest::Client,
    /// The predictor's environment, for starting another replica.
    env: Vec<(String, String)>,
    _s3: S3Server,
}

impl World {
    /// The rows of `ops.inference_log`, once they are `expected` or after `polls` polls 50 ms
    /// apart (the log is written in batches off the request path).
    pub(crate) async fn inference_log_rows_reaching(&self, expected: i64, polls: usize) -> i64 {
        let mut logged = 0i64;
        for _ in 0..polls {
            logged = self
                .db
                .get()
                .await
                .unwrap()
                .query_one("SELECT count(*) FROM ops.inference_log", &[])
                .await
                .unwrap()
                .get(0);
            if logged >= expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        logged
    }

    pub(crate) async fn start() -> World {
        let (db_url, db) = fixtures::fresh_database().await.unwrap();
        let (s3, objects) = fixtures::s3_server(vec![]).await.unwrap();
        let production = crate::support::seed_production_model(&db, &objects)
            .await
            .unwrap();
        let mut env = s3.env(fixtures::BUCKET);
        env.extend([
            ("DATABASE_URL".to_owned(), db_url),
            ("PREDICT_RELOAD_TOKEN".to_owned(), TOKEN.to_owned()),
            // Reloads in these tests come from events and /reload_model, not the poll.
            ("PREDICT_POLL_SECONDS".to_owned(), "0".to_owned()),
        ]);
        let predict = crate::support::start_predictor(&env).await;
        let world = World {
            db,
            objects,
            production,
            predict,
            client: reqwest::Client::new(),
            env,
            _s3: s3,
        };
        // Ready once the model is loaded.
        for _ in 0..500 {
            if world.get("/ready").await.0 == 200 {
                return world;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the predictor never became ready");
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.predict.url())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Points production/current.json at another model version (as promote would).
    async fn point_at(&self, version: &str) {
        let client = self.db.get().await.unwrap();
        let row = client
            .query_one(
                "SELECT algorithm, artifact_key, training_id, test FROM ops.model_versions WHERE version = $1",
                &[&version],
            )
            .await
            .unwrap();
        let pointer = ProductionPointer {
            version: version.to_owned(),
            algorithm: row.get(0),
            artifact_key: row.get(1),
            promotion_id: 0,
            training_id: row.get(2),
            test: serde_json::from_value(row.get(3)).unwrap(),
            promoted_at: "2026-11-27T00:00:00Z".to_owned(),
        };
        self.objects
            .put(
                keys::PRODUCTION_POINTER,
                Bytes::from(serde_json::to_vec(&pointer).unwrap()),
                "application/json",
            )
            .await
            .unwrap();
    }

    /// `POST /reload_model` with the token; its answer.
    async fn reload(&self) -> Value {
        let response = self
            .client
            .post(self.url("/reload_model"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn other_version(&self) -> String {
        self.db
            .get()
            .await
            .unwrap()
            .query_one(
                "SELECT version FROM ops.model_versions WHERE version <> $1 ORDER BY version LIMIT 1",
                &[&self.production],
            )
            .await
            .unwrap()
            .get(0)
    }
}

const SEED_BODY: &str = r#"{"brokered_by": 101, "status": "for_sale", "bed": 3, "bath": 2,
    "acre_lot": 0.25, "city": "Town", "state": "Texas", "zip_code": "12345",
    "house_size": 1800, "prev_sold_date": "2015-06-01", "street": "1 Main St"}"#;

#[tokio::test]
async fn predicts_explains_bad_input_and_logs_every_prediction() {
    let world = World::start().await;

    let (status, answer) = world.post("/predict", SEED_BODY).await;
    assert_eq!(status, 200, "{answer}");
    let price = answer["predicted_price"].as_f64().unwrap();
    assert!(price > 10_000.0 && price < 10_000_000.0, "{answer}");
    assert_eq!(answer["model_version"], world.production.as_str());
    assert!(answer["model_rmse"].as_f64().unwrap() > 0.0);

    // The zip code as a number, and the peer benchmark's shorter body, answer the same way.
    let numeric_zip = SEED_BODY.replace(r#""12345""#, "12345");
    assert_eq!(
        world.post("/predict", numeric_zip).await.1["predicted_price"],
        price
    );
    let peer = r#"{"bed":3,"bath":2,"acre_lot":0.25,"house_size":1800,"zip_code":90210,"state":"California","status":"for_sale"}"#;
    assert_eq!(world.post("/predict", peer).await.0, 200);

    // Bad input: 4xx naming the field and the reason, never 5xx.
    let cases: [(&str, u16, &str); 7] = [
        (r#"{"bath":2,"acre_lot":1,"house_size":1500}"#, 422, "bed"),
        (
            r#"{"bed":"3","bath":2,"acre_lot":1,"house_size":1500}"#,
            422,
            "bed",
        ),
        (
            r#"{"bed":3,"bath":2,"acre_lot":1,"house_size":-4}"#,
            422,
            "house_size",
        ),
        (
            r#"{"bed":3,"bath":2,"acre_lot":1,"house_size":1500,"status":"rented"}"#,
            422,
            "status",
        ),
        (
            r#"{"bed":3,"bath":2,"acre_lot":1,"house_size":1e999}"#,
            422,
            "body",
        ),
        ("not json", 422, "body"),
        ("[1,2,3]", 422, "body"),
    ];
    for (body, want, field) in cases {
        let (status, answer) = world.post("/predict", body).await;
        assert_eq!(status, want, "{body}: {answer}");
        assert_eq!(answer["problems"][0]["field"], field, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    let oversized = format!(r#"{{"bed":3,"pad":"{}"}}"#, "x".repeat(100_000));
    assert_eq!(world.post("/predict", oversized).await.0, 413);

    // The batch form prices in order, with the same model, and names the bad listing.
    let batch = format!(r#"{{"listings": [{SEED_BODY}, {peer}]}}"#);
    let (status, answer) = world.post("/predict/batch", batch).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["predictions"][0], price);
    let bad = format!(r#"{{"listings": [{SEED_BODY}, {{"bed": 1}}]}}"#);
    let (status, answer) = world.post("/predict/batch", bad).await;
    assert_eq!(status, 422);
    assert_eq!(answer["problems"][0]["field"], "listings[1].bath");

    // Metrics name the served version and count what happened.
    let (_, metrics) = world.get("/metrics").await;
    assert!(
        metrics.lines().any(|l| l.starts_with("predictions_total")
            && l.contains(&format!("model_version=\"{}\"", world.production))),
        "{metrics}"
    );
    for name in [
        "prediction_latency_seconds_bucket",
        "prediction_errors_total",
        "model_rmse",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }

    // Every prediction reaches the inference log, in batches off the request path.
    let logged = world.inference_log_rows_reaching(5, 100).await;
    assert_eq!(logged, 5, "3 single predictions and a batch of 2");
    let (zip_code, version): (String, String) = {
        let row = world
            .db
            .get()
            .await
            .unwrap()
            .query_one(
                "SELECT zip_code, model_version FROM ops.inference_log ORDER BY predicted_at LIMIT 1",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(zip_code, "12345");
    assert_eq!(version, world.production);
}

#[tokio::test]
async fn explains_prices_with_each_algorithm_and_the_parts_add_up() {
    let world = World::start().await;
    // One version of each algorithm, served in turn.
    let versions: Vec<(String, String)> = world
        .db
        .get()
        .await
        .unwrap()
        .query(
            "SELECT DISTINCT ON (algorithm) version, algorithm FROM ops.model_versions
             ORDER BY algorithm, version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(versions.len(), 3, "{versions:?}");
    let peer = r#"{"bed":3,"bath":2,"acre_lot":0.25,"house_size":1800,"zip_code":90210,"state":"California","status":"for_sale"}"#;
    for (version, algorithm) in &versions {
        world.point_at(version).await;
        world.reload().await;
        let (_, predicted) = world.post("/predict", SEED_BODY).await;
        assert_eq!(predicted["model_version"], version.as_str());
        let price = predicted["predicted_price"].as_f64().unwrap();

        let (_, before) = world.get("/metrics").await;
        let (status, explained) = world.post("/explain", SEED_BODY).await;
        assert_eq!(status, 200, "{algorithm}: {explained}");
        // An explanation's time is its own histogram's, not a prediction's.
        let (_, after) = world.get("/metrics").await;
        let count = |metrics: &str, name: &str| -> u64 {
            metrics
                .lines()
                .find(|line| line.starts_with(&format!("{name}_count")))
                .and_then(|line| line.rsplit(' ').next())
                .map_or(0, |value| value.parse().unwrap())
        };
        assert_eq!(
            count(&after, "explanation_latency_seconds"),
            count(&before, "explanation_latency_seconds") + 1,
            "{after}"
        );
        assert_eq!(
            count(&after, "prediction_latency_seconds"),
            count(&before, "prediction_latency_seconds"),
            "{after}"
        );
        assert_eq!(explained["model_version"], version.as_str());
        assert_eq!(explained["predicted_price"].as_f64().unwrap(), price);
        let contributions = explained["contributions"].as_array().unwrap();
        let base = explained["base_value"].as_f64().unwrap();
        let total = base
            + contributions
                .iter()
                .map(|c| c["contribution"].as_f64().unwrap())
                .sum::<f64>();
        // Boosted trees predict in f32: their parts add up to within its rounding.
        assert!(
            (total - price).abs() <= 1e-6 * price,
            "{algorithm}: base {base} + contributions = {total}, price {price}"
        );
        let mut fields: Vec<&str> = contributions
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        let sizes: Vec<f64> = contributions
            .iter()
            .map(|c| c["contribution"].as_f64().unwrap().abs())
            .collect();
        assert!(
            sizes.windows(2).all(|w| w[0] >= w[1]),
            "{algorithm}: sorted by size: {explained}"
        );
        assert!(sizes[0] > 0.0, "{algorithm}: something matters");
        fields.sort_unstable();
        let mut expected = appraise_core::features::INPUT_FIELDS.to_vec();
        expected.sort_unstable();
        assert_eq!(fields, expected, "{algorithm}: one entry per input field");
        let value = |field: &str| {
            contributions
                .iter()
                .find(|c| c["field"] == field)
                .map(|c| c["value"].clone())
                .unwrap()
        };
        assert_eq!(value("house_size"), 1800.0);
        assert_eq!(value("state"), "Texas");
        assert_eq!(value("zip_code"), "12345");
        assert_eq!(value("prev_sold_date"), "2015-06-01");
        assert_eq!(value("brokered_by"), 101);

        // The batch form explains each listing the same way, by the same model.
        let batch = format!(r#"{{"listings": [{SEED_BODY}, {peer}], "explain": true}}"#);
        let (status, answer) = world.post("/predict/batch", batch).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["predictions"][0].as_f64().unwrap(), price);
        assert_eq!(
            answer["explanations"][0]["base_value"],
            explained["base_value"]
        );
        assert_eq!(
            answer["explanations"][0]["contributions"],
            explained["contributions"]
        );
        assert_eq!(
            answer["explanations"][1]["contributions"][0]["field"]
                .as_str()
                .map(|f| appraise_core::features::INPUT_FIELDS.contains(&f)),
            Some(true)
        );
        let plain = format!(r#"{{"listings": [{SEED_BODY}]}}"#);
        let (_, answer) = world.post("/predict/batch", plain).await;
        assert!(answer.get("explanations").is_none(), "{answer}");
    }

    // The model history carries each version's global importance, one entry per input field.
    let (_, models) = world.get("/api/models").await;
    let models: Value = serde_json::from_str(&models).unwrap();
    for model in models["models"].as_array().unwrap() {
        let fields = model["importance"]["fields"].as_array().unwrap();
        assert_eq!(fields.len(), 10, "{model}");
        assert!(fields[0]["mean_abs_contribution"].as_f64().unwrap() > 0.0);
    }

    // Bad input is refused as /predict refuses it, naming the field.
    let (status, answer) = world
        .post(
            "/explain",
            r#"{"bed":3,"bath":2,"acre_lot":1,"house_size":-4}"#,
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["problems"][0]["field"], "house_size");
    let bad_flag = format!(r#"{{"listings": [{SEED_BODY}], "explain": "yes"}}"#);
    let (status, answer) = world.post("/predict/batch", bad_flag).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["problems"][0]["field"], "explain");

    // A model saved before trees recorded their covers predicts, and refuses to explain (409).
    let (forest, _) = versions
        .iter()
        .find(|(_, algorithm)| algorithm == "random_forest")
        .unwrap();
    world.point_at(forest).await;
    let pointer: ProductionPointer = serde_json::from_slice(
        &world
            .objects
            .get(keys::PRODUCTION_POINTER)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let mut artifact: Value = serde_json::from_slice(
        &world
            .objects
            .get(&pointer.artifact_key)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    for tree in artifact["model"]["trees"].as_array_mut().unwrap() {
        tree.as_object_mut().unwrap().remove("covers").unwrap();
    }
    artifact["version"] = json!("saved-without-covers");
    let old_key = "models/saved-without-covers/model.json";
    world
        .objects
        .put(
            old_key,
            Bytes::from(serde_json::to_vec(&artifact).unwrap()),
            "application/json",
        )
        .await
        .unwrap();
    let old_pointer = ProductionPointer {
        version: "saved-without-covers".to_owned(),
        artifact_key: old_key.to_owned(),
        ..pointer
    };
    world
        .objects
        .put(
            keys::PRODUCTION_POINTER,
            Bytes::from(serde_json::to_vec(&old_pointer).unwrap()),
            "application/json",
        )
        .await
        .unwrap();
    assert_eq!(world.reload().await["outcome"], "loaded");
    let (status, answer) = world.post("/predict", SEED_BODY).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = world.post("/explain", SEED_BODY).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("covers"),
        "{answer}"
    );
}

#[tokio::test]
async fn lineage_walks_from_a_prediction_back_to_its_model_and_data() {
    let world = World::start().await;
    let (status, answer) = world.post("/predict", SEED_BODY).await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["prediction_id"].as_str().unwrap().to_owned();
    assert_eq!((id.len(), &id[14..15]), (36, "7"), "a version 7 UUID: {id}");
    let price = answer["predicted_price"].as_f64().unwrap();

    // The model's lineage, checked against the tables the stages wrote.
    let (status, body) = world
        .get(&format!("/lineage/model/{}", world.production))
        .await;
    assert_eq!(status, 200, "{body}");
    let model: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(model["model"]["version"], world.production.as_str());
    assert_eq!(model["model"]["in_production"], true);
    assert!(model["model"]["importance"]["fields"].is_array());
    let client = world.db.get().await.unwrap();
    let training = client
        .query_one(
            "SELECT t.id, t.first_batch, t.last_batch, t.drift_report_id FROM ops.trainings t
             JOIN ops.model_versions v ON v.training_id = t.id WHERE v.version = $1",
            &[&world.production],
        )
        .await
        .unwrap();
    let (training_id, first, last): (i64, i32, i32) =
        (training.get(0), training.get(1), training.get(2));
    let drift_report: Option<i64> = training.get(3);
    assert_eq!(model["training"]["id"], training_id);
    let batches = model["batches"].as_array().unwrap();
    let numbers: Vec<i64> = batches
        .iter()
        .map(|b| b["batch_number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, (first..=last).map(i64::from).collect::<Vec<_>>());
    for batch in batches {
        let number = batch["batch_number"].as_i64().unwrap() as i32;
        let row = client
            .query_one(
                "SELECT b.rows_received, b.response_key, b.manifest_key, c.rows_kept, c.manifest_key
                 FROM ops.batches b JOIN ops.clean_batches c USING (batch_number)
                 WHERE batch_number = $1",
                &[&number],
            )
            .await
            .unwrap();
        assert_eq!(batch["rows_received"], row.get::<_, i32>(0));
        assert_eq!(batch["raw_response_key"], row.get::<_, String>(1));
        assert_eq!(batch["raw_manifest_key"], row.get::<_, String>(2));
        assert_eq!(batch["clean_rows_kept"], row.get::<_, i32>(3));
        assert_eq!(batch["clean_manifest_key"], row.get::<_, String>(4));
    }
    assert_eq!(
        model["drift_report"]["id"].as_i64(),
        drift_report,
        "{}",
        model["drift_report"]
    );
    let promotions = model["promotions"].as_array().unwrap();
    assert!(
        promotions
            .iter()
            .any(|p| p["role"] == "candidate" && p["decision"] == "promoted"),
        "{promotions:?}"
    );
    let (status, _) = world.get("/lineage/model/t999999-nothing").await;
    assert_eq!(status, 404);

    // The prediction's lineage: the logged prediction, its model and everything above. The
    // log is written off the request path, within milliseconds.
    let path = format!("/lineage/prediction/{id}");
    let mut found = None;
    for _ in 0..200 {
        let (status, body) = world.get(&path).await;
        if status == 200 {
            found = Some(serde_json::from_str::<Value>(&body).unwrap());
            break;
        }
        assert_eq!(status, 404, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lineage = found.expect("the prediction reaches the inference log");
    assert_eq!(lineage["prediction"]["prediction_id"], id.as_str());
    assert_eq!(lineage["prediction"]["predicted_price"], price);
    assert_eq!(lineage["prediction"]["input"]["house_size"], 1800.0);
    assert_eq!(lineage["prediction"]["input"]["zip_code"], "12345");
    for part in ["model", "training", "batches", "drift_report", "promotions"] {
        assert_eq!(lineage[part], model[part], "{part}");
    }
    let logged: i64 = client
        .query_one(
            "SELECT count(*) FROM ops.inference_log WHERE prediction_id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 1);

    let (status, body) = world.get("/lineage/prediction/not-an-id").await;
    assert_eq!(status, 422, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["problems"][0]["field"], "prediction_id");
    let (status, _) = world
        .get("/lineage/prediction/019ad9c8-b200-7000-8000-000000000000")
        .await;
    assert_eq!(status, 404);

    // Every answered price has its own id: batches and explanations too.
    let batch = format!(r#"{{"listings": [{SEED_BODY}, {SEED_BODY}]}}"#);
    let (_, answer) = world.post("/predict/batch", batch).await;
    let ids = answer["prediction_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[0], id.as_str());
    let (_, answer) = world.post("/explain", SEED_BODY).await;
    assert_eq!(answer["prediction_id"].as_str().map(str::len), Some(36));
}

#[tokio::test]
async fn rolls_back_by_token_under_load_and_every_replica_follows() {
    let world = Arc::new(World::start().await);
    // The first training's promoted model, which the second training's replaced.
    let earlier: String = world
        .db
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT candidate_version FROM ops.promotions
             WHERE decision = 'promoted' AND candidate_version <> $1 ORDER BY id LIMIT 1",
            &[&world.production],
        )
        .await
        .unwrap()
        .get(0);
    // A second replica that notices promotions only by polling the pointer.
    let mut env = world.env.clone();
    env.retain(|(name, _)| name != "PREDICT_POLL_SECONDS");
    env.push(("PREDICT_POLL_SECONDS".to_owned(), "1".to_owned()));
    let replica = FunctionProcess::start(
        "predict-replica",
        env!("CARGO_BIN_EXE_predict").as_ref(),
        &env,
        Stdio::null(),
    )
    .await
    .unwrap();
    let promote = |version: &str, token: Option<&str>, body: &'static str| {
        let mut request = world
            .client
            .post(world.url(&format!("/models/{version}/promote")))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    // Refused without the token, for a version never in production, for the one in production,
    // for an unknown one, and with a reason that is not a string.
    assert_eq!(promote(&earlier, None, "").await.unwrap().status(), 401);
    assert_eq!(
        promote(&earlier, Some("wrong"), "").await.unwrap().status(),
        401
    );
    let never = world.other_version().await;
    let never_promoted: bool = world
        .db
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM ops.promotions WHERE candidate_version = $1)",
            &[&never],
        )
        .await
        .unwrap()
        .get(0);
    if never_promoted {
        let response = promote(&never, Some(TOKEN), "").await.unwrap();
        assert_eq!(response.status(), 409);
    }
    let response = promote(&world.production, Some(TOKEN), "").await.unwrap();
    assert_eq!(response.status(), 409);
    let response = promote("t999999-nothing", Some(TOKEN), "").await.unwrap();
    assert_eq!(response.status(), 404);
    let response = promote(&earlier, Some(TOKEN), r#"{"reason": 7}"#)
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["problems"][0]["field"], "reason");

    // Back and forth while eight clients predict: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let world = world.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut answered, mut failed) = (0u32, Vec::new());
                // At least a few requests each, however slow the machine, then until told.
                while answered < REQUESTS_PER_WORKER || !stop.load(Ordering::Relaxed) {
                    let (status, answer) = world.post("/predict", SEED_BODY).await;
                    answered += 1;
                    if status != 200 {
                        failed.push(format!("{status}: {answer}"));
                    }
                }
                (answered, failed)
            })
        })
        .collect();
    let mut rolled = Vec::new();
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (to, from) = if round % 2 == 0 {
            (&earlier, &world.production)
        } else {
            (&world.production, &earlier)
        };
        let response = promote(to, Some(TOKEN), r#"{"reason": "drill"}"#)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["model_version"], to.as_str());
        assert_eq!(answer["previous_version"], from.as_str());
        assert_eq!(answer["reason"], "drill");
        // The replica that answered serves it at once.
        let (_, predicted) = world.post("/predict", SEED_BODY).await;
        assert_eq!(predicted["model_version"], to.as_str());
        rolled.push(answer["promotion_id"].as_i64().unwrap());
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in load {
        let (answered, failed) = worker.await.unwrap();
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        assert!(
            answered >= REQUESTS_PER_WORKER,
            "a worker ran {answered} requests"
        );
    }

    // One last rollback, without a reason: the audit row, the pointer written through the
    // outbox, and the other replica following by itself.
    let response = promote(&earlier, Some(TOKEN), "").await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let promotion_id = answer["promotion_id"].as_i64().unwrap();
    let audit = world
        .db
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT kind, decision, reason, production_version, candidate_version
             FROM ops.promotions WHERE id = $1",
            &[&promotion_id],
        )
        .await
        .unwrap();
    assert_eq!(audit.get::<_, String>(0), "rollback");
    assert_eq!(audit.get::<_, String>(1), "promoted");
    assert_eq!(audit.get::<_, String>(2), "rolled back by hand");
    assert_eq!(audit.get::<_, String>(3), world.production);
    assert_eq!(audit.get::<_, String>(4), earlier);
    let rollbacks: i64 = fixtures::query_value(
        &world.db,
        "SELECT count(*) FROM ops.promotions WHERE kind = 'rollback'",
    )
    .await;
    assert_eq!(rollbacks, 7);
    let pointer: ProductionPointer = serde_json::from_slice(
        &world
            .objects
            .get(keys::PRODUCTION_POINTER)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (pointer.version.as_str(), pointer.promotion_id),
        (earlier.as_str(), promotion_id)
    );
    let replica_url = format!("{}/predict", replica.url());
    let mut followed = false;
    for _ in 0..300 {
        let answer: Value = world
            .client
            .post(&replica_url)
            .body(SEED_BODY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if answer["model_version"] == earlier.as_str() {
            followed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(followed, "the other replica never served {earlier}");

    // The history and the lineage show it.
    let (_, models) = world.get("/api/models").await;
    let models: Value = serde_json::from_str(&models).unwrap();
    let entry = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["version"] == earlier.as_str())
        .unwrap()
        .clone();
    assert_eq!(models["production"], earlier.as_str());
    assert_eq!(
        entry["decision"], "promoted",
        "its own decision is unchanged"
    );
    assert_eq!(entry["rollbacks"].as_array().unwrap().len(), 4);
    let (_, lineage) = world.get(&format!("/lineage/model/{earlier}")).await;
    let lineage: Value = serde_json::from_str(&lineage).unwrap();
    let kinds: Vec<&str> = lineage["promotions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "candidate")
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["decision", "rollback", "rollback", "rollback", "rollback"]
    );
    replica.stop().await;
}

#[tokio::test]
async fn reloads_on_events_and_by_token_and_speaks_the_inference_protocol() {
    let world = World::start().await;
    let other = world.other_version().await;

    // Reloading by hand needs the token.
    let no_token = world
        .client
        .post(world.url("/reload_model"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    let reload = || {
        world
            .client
            .post(world.url("/reload_model"))
            .bearer_auth(TOKEN)
            .send()
    };
    let answer: Value = reload().await.unwrap().json().await.unwrap();
    assert_eq!(answer["outcome"], "unchanged");

    // A production/ object event (here MinIO's webhook shape) loads the new pointer.
    world.point_at(&other).await;
    let event = json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": format!("{}/{}", fixtures::BUCKET, keys::PRODUCTION_POINTER),
        "Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {
            "bucket": {"name": fixtures::BUCKET},
            "object": {"key": "production/current.json", "size": 10}}}]
    });
    let (status, answer) = world.post("/", event.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["outcome"], "loaded", "{answer}");
    assert_eq!(
        world.post("/predict", SEED_BODY).await.1["model_version"],
        other.as_str()
    );
    world.point_at(&world.production).await;
    let answer: Value = reload().await.unwrap().json().await.unwrap();
    assert_eq!(answer["outcome"], "loaded");
    assert_eq!(answer["model_version"], world.production.as_str());

    // Open Inference Protocol v2.
    assert_eq!(world.get("/v2/health/live").await.0, 200);
    assert_eq!(world.get("/v2/health/ready").await.0, 200);
    let (status, metadata) = world.get("/v2/models/appraise").await;
    assert_eq!(status, 200);
    let metadata: Value = serde_json::from_str(&metadata).unwrap();
    assert_eq!(metadata["versions"][0], world.production.as_str());
    assert_eq!(world.get("/v2/models/other").await.0, 404);
    let infer = json!({"id": "r1", "inputs": [
        {"name": "bed", "datatype": "FP64", "shape": [2], "data": [3, 4]},
        {"name": "bath", "datatype": "FP64", "shape": [2], "data": [2, 3]},
        {"name": "acre_lot", "datatype": "FP64", "shape": [2], "data": [0.25, 0.5]},
        {"name": "house_size", "datatype": "FP64", "shape": [2], "data": [1800, 2600]},
        {"name": "state", "datatype": "BYTES", "shape": [2], "data": ["Texas", "Ohio"]}
    ]});
    let (status, answer) = world
        .post("/v2/models/appraise/infer", infer.to_string())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], "r1");
    assert_eq!(answer["outputs"][0]["shape"], json!([2]));
    let single: Value = world
        .post(
            "/predict",
            r#"{"bed":3,"bath":2,"acre_lot":0.25,"house_size":1800,"state":"Texas"}"#,
        )
        .await
        .1;
    assert_eq!(answer["outputs"][0]["data"][0], single["predicted_price"]);
    let mismatched = json!({"inputs": [
        {"name": "bed", "datatype": "FP64", "shape": [2], "data": [3, 4]},
        {"name": "bath", "datatype": "FP64", "shape": [1], "data": [2]}
    ]});
    let (status, answer) = world
        .post("/v2/models/appraise/infer", mismatched.to_string())
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["problems"][0]["field"], "inputs[bath]");

    // The OpenAPI document describes the endpoints.
    let (status, openapi) = world.get("/openapi.json").await;
    assert_eq!(status, 200);
    let openapi: Value = serde_json::from_str(&openapi).unwrap();
    for path in [
        "/predict",
        "/predict/batch",
        "/explain",
        "/lineage/model/{version}",
        "/lineage/prediction/{id}",
        "/models/{version}/promote",
        "/reload_model",
        "/v2/models/{name}/infer",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path}");
    }
    // The page and its data.
    let (status, page) = world.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains("predict-form"));
    let (_, models) = world.get("/api/models").await;
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["production"], world.production.as_str());
    let (_, drift) = world.get("/api/drift").await;
    let drift: Value = serde_json::from_str(&drift).unwrap();
    assert_eq!(drift["reports"][0]["batch_number"], 2);
}

#[tokio::test]
async fn a_model_swap_under_load_fails_no_request() {
    let world = Arc::new(World::start().await);
    let other = world.other_version().await;
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let world = world.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut answered, mut failed, mut versions) = (0u32, Vec::new(), Vec::new());
                // At least a few requests each, however slow the machine, then until told.
                while answered < REQUESTS_PER_WORKER || !stop.load(Ordering::Relaxed) {
                    let (status, answer) = world.post("/predict", SEED_BODY).await;
                    answered += 1;
                    if status != 200 {
                        failed.push(format!("{status}: {answer}"));
                    } else if let Some(version) = answer["model_version"].as_str()
                        && !versions.iter().any(|v| v == version)
                    {
                        versions.push(version.to_owned());
                    }
                }
                (answered, failed, versions)
            })
        })
        .collect();
    // Swap back and forth while the load runs.
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let version = if round % 2 == 0 {
            &other
        } else {
            &world.production
        };
        world.point_at(version).await;
        let answer: Value = world
            .client
            .post(world.url("/reload_model"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["outcome"], "loaded", "{answer}");
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen: Vec<String> = Vec::new();
    for worker in load {
        let (answered, failed, versions) = worker.await.unwrap();
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        assert!(
            answered >= REQUESTS_PER_WORKER,
            "a worker ran {answered} requests"
        );
        for v in versions {
            if !seen.contains(&v) {
                seen.push(v);
            }
        }
    }
    seen.sort();
    let mut both = vec![other.clone(), world.production.clone()];
    both.sort();
    assert_eq!(seen, both, "requests were answered by both models");
}

#[tokio::test]
async fn refuses_impossible_shapes_and_answers_oversized_bodies_in_json() {
    let world = World::start().await;

    // One listing whose `bed` tensor claims `shape` for `data`.
    let infer = |shape: Value, data: Value| {
        json!({"inputs": [
            {"name": "bed", "datatype": "FP64", "shape": shape, "data": data},
            {"name": "bath", "datatype": "FP64", "shape": [1], "data": [2]},
            {"name": "acre_lot", "datatype": "FP64", "shape": [1], "data": [0.25]},
            {"name": "house_size", "datatype": "FP64", "shape": [1], "data": [1800]}
        ]})
        .to_string()
    };
    // The first two multiply, wrapping in 64 bits, to exactly 1 (i64::MAX is its own inverse):
    // a wrapping product took them for one value.
    let cases = [
        (
            json!([3, -6_148_914_691_236_517_205_i64]),
            json!([3]),
            "negative",
        ),
        (json!([i64::MAX, i64::MAX]), json!([3]), "overflows"),
        (json!([u64::MAX, 2]), json!([3]), "overflows"),
        (json!([-1, -1]), json!([3]), "negative"),
        (json!([1.5]), json!([3]), "not an integer"),
        (json!([1, 1, 1]), json!([3]), "dimensions"),
        (json!([2]), json!([3]), "holds 2 values, but data has 1"),
    ];
    for (shape, data, reason) in cases {
        let (status, answer) = world
            .post("/v2/models/appraise/infer", infer(shape.clone(), data))
            .await;
        assert_eq!(status, 422, "{shape}: {answer}");
        assert_eq!(
            answer["problems"][0]["field"], "inputs[bed].shape",
            "{answer}"
        );
        let given = answer["problems"][0]["reason"].as_str().unwrap();
        assert!(given.contains(reason), "{shape}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("shape"),
            "{answer}"
        );
    }
    // Still serving, and a sound shape ([n, 1] too) still answers.
    let (status, answer) = world
        .post(
            "/v2/models/appraise/infer",
            infer(json!([1, 1]), json!([3])),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outputs"][0]["shape"], json!([1]));

    // A body over a route's limit: 413 with the JSON error body, not axum's plain text.
    let cases = [
        ("/predict", 64 * 1024 + 1),
        ("/predict/batch", 16 * 1024 * 1024 + 1),
        ("/v2/models/appraise/infer", 16 * 1024 * 1024 + 1),
        ("/", 2 * 1024 * 1024 + 1),
    ];
    for (path, size) in cases {
        let mut body = br#"{"pad": ""#.to_vec();
        body.resize(size - 2, b'x');
        body.extend_from_slice(br#""}"#);
        let response = world
            .client
            .post(world.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 413, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{path}"
        );
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["problems"][0]["field"], "body", "{path}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .starts_with("request body too large: body: is larger than"),
            "{path}: {answer}"
        );
    }
    // A body within the limit is read as before.
    let mut within = br#"{"pad": ""#.to_vec();
    within.resize(60 * 1024, b'x');
    within.extend_from_slice(br#"", "bed": 3, "bath": 2, "acre_lot": 0.25, "house_size": 1800}"#);
    assert_eq!(world.post("/predict", within).await.0, 200);
}
