//! Mirroring to a real MLflow tracking server (`mlflow server` from the tools virtualenv,
//! started by each test), with trainings and decisions made by the real train and promote
//! stages, and read back by MLflow's own Python client (`testkit/src/mlflow_read_back.py`): the
//! experiment, one run per training with a nested run per model whose metrics equal
//! `ops.model_versions`, the registered versions, the `champion` alias on the production
//! model, and the artifacts, which download and load (`xgboost.json` into xgboost). Duplicate
//! events and work redone after a lost acknowledgement make nothing twice; an outage fails
//! nothing, and the mirror catches up.
//!
//! Without mlflow in the tools virtualenv the tests say so and pass, except in CI (`CI=true`).

use std::collections::HashMap;

use appraise_core::{db::DbPool, keys, objects::ObjectStore};
use appraise_mlflow::{Drained, Mirror, MlflowSettings};
use appraise_promote::{Promote, PromoteConfig, PromoteReport};
use appraise_testkit::{
    fixtures::{self, query_column, query_value},
    mlflow_server::{MlflowServer, mlflow_command},
    s3_server::S3Server,
};
use appraise_train::{Train, TrainReport, config::TrainConfig};
use serde_json::Value;

struct World {
    db: DbPool,
    objects: ObjectStore,
    _s3: S3Server,
    mlflow: MlflowServer,
    mirror: Mirror,
}

/// A fresh database, bucket and MLflow server; `None` (the test skips) without mlflow.
async fn world() -> Option<World> {
    if mlflow_command().is_none() {
        fixtures::skip_without_tool("no mlflow in target/tools-venv: run scripts/setup-tools.sh");
        return None;
    }
    let (_, db) = fixtures::fresh_database().await.unwrap();
    let (s3, objects) = fixtures::s3_server(vec![]).await.unwrap();
    let mlflow = MlflowServer::start_in_temp_dir().await.unwrap();
    let settings = MlflowSettings::for_server(&mlflow.url()).unwrap();
    let mirror = Mirror::new(settings, db.clone(), objects.clone()).unwrap();
    Some(World {
        db,
        objects,
        _s3: s3,
        mlflow,
        mirror,
    })
}

impl World {
    fn train(&self) -> Train {
        Train::with_mlflow(
            TrainConfig::small(),
            self.db.clone(),
            self.objects.clone(),
            Some(self.mirror.clone()),
        )
    }

    fn promote(&self) -> Promote {
        Promote::with_mlflow(
            PromoteConfig::default(),
            self.db.clone(),
            self.objects.clone(),
            Some(self.mirror.clone()),
        )
    }

    /// A clean batch, its train event and its candidates event, as the pipeline delivers them.
    async fn batch(&self, batch: i32, scale: f64) -> (TrainReport, PromoteReport) {
        fixtures::insert_clean_batch(&self.db, batch, 11_000, scale)
            .await
            .unwrap();
        let trained = self.train_event(batch).await;
        let promoted = self.promote_event(i64::from(batch)).await;
        (trained, promoted)
    }

    /// A train event; what the stage queued is mirrored before this returns.
    async fn train_event(&self, batch: i32) -> TrainReport {
        let report = self
            .train()
            .train_object(&fixtures::object_created(&keys::batch_manifest(
                "clean", batch,
            )))
            .await
            .unwrap();
        self.drain().await;
        report
    }

    /// A promote event; what the stage queued is mirrored before this returns.
    async fn promote_event(&self, training: i64) -> PromoteReport {
        let report = self
            .promote()
            .promote_object(&fixtures::object_created(&keys::candidates(training)))
            .await
            .unwrap();
        self.drain().await;
        report
    }

    /// A drain of everything queued so far (the stages' own drains run in the background).
    async fn drain(&self) -> Drained {
        self.mirror.drain_when_free().await
    }

    /// What MLflow's Python client reads back.
    fn read_back(&self) -> Value {
        self.mlflow.read_back("appraise", "appraise").unwrap()
    }

    async fn pending(&self) -> i64 {
        query_value(
            &self.db,
            "SELECT count(*) FROM ops.mlflow_outbox WHERE mirrored_at IS NULL",
        )
        .await
    }
}

fn by<'a>(items: &'a Value, field: &str) -> HashMap<String, &'a Value> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item[field].as_str().unwrap().to_owned(), item))
        .collect()
}

#[tokio::test]
async fn trainings_versions_and_the_champion_read_back_from_a_real_mlflow_server() {
    let Some(world) = world().await else { return };
    let (first, _) = world.batch(0, 1.0).await;
    assert!(matches!(first, TrainReport::Trained { .. }), "{first:?}");
    // A drifted market: a second training, judged against the first model.
    let (second, _) = world.batch(1, 2.0).await;
    assert!(matches!(second, TrainReport::Trained { .. }), "{second:?}");
    assert_eq!(
        world.pending().await,
        0,
        "everything was mirrored after each event"
    );

    let mlflow = world.read_back();
    assert!(mlflow["experiment"].is_string(), "{mlflow}");

    // One finished run per training, tagged with what ops.trainings recorded.
    let trainings = by(&mlflow["trainings"], "key");
    let recorded = world
        .db
        .get()
        .await
        .unwrap()
        .query(
            "SELECT t.id, t.batch_number, t.reason, t.rows_train, d.drifted, d.id
             FROM ops.trainings t LEFT JOIN ops.drift_reports d ON d.id = t.drift_report_id
             WHERE t.decision = 'train' ORDER BY t.id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(trainings.len(), recorded.len(), "{:?}", trainings.keys());
    for row in &recorded {
        let id: i64 = row.get(0);
        let run = trainings[&format!("training-{id:06}")];
        let tags = &run["tags"];
        assert_eq!(run["status"], "FINISHED");
        assert_eq!(tags["appraise.training_id"], id.to_string());
        assert_eq!(
            tags["appraise.batch_number"],
            row.get::<_, i32>(1).to_string()
        );
        assert_eq!(tags["appraise.reason"], row.get::<_, &str>(2));
        assert_eq!(
            tags["appraise.rows_train"],
            row.get::<_, i64>(3).to_string()
        );
        assert_eq!(tags["appraise.code_version"], env!("CARGO_PKG_VERSION"));
        match row.get::<_, Option<bool>>(4) {
            Some(drifted) => {
                assert_eq!(
                    tags["appraise.drift"],
                    if drifted { "drifted" } else { "no drift" }
                );
                assert_eq!(
                    tags["appraise.drift_report_id"],
                    row.get::<_, i64>(5).to_string()
                );
            }
            None => assert!(
                tags["appraise.drift"]
                    .as_str()
                    .unwrap()
                    .starts_with("not tested")
            ),
        }
    }

    // A nested run per model, with ops.model_versions' metrics and parameters, and artifacts
    // that load.
    let models = by(&mlflow["models"], "version");
    let versions = world
        .db
        .get()
        .await
        .unwrap()
        .query(
            "SELECT version, training_id, algorithm, params, validation, test, fit_seconds
             FROM ops.model_versions ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(models.len(), versions.len(), "{:?}", models.keys());
    assert_eq!(versions.len(), 6);
    for row in &versions {
        let version: &str = row.get(0);
        let training: i64 = row.get(1);
        let algorithm: &str = row.get(2);
        let run = models[version];
        assert_eq!(run["status"], "FINISHED");
        assert_eq!(
            run["parent"],
            trainings[&format!("training-{training:06}")]["run_id"],
            "{version} is nested in its training's run"
        );
        for (side, metrics) in [("validation", row.get::<_, Value>(4)), ("test", row.get(5))] {
            for name in ["rmse", "mae", "r2", "mape"] {
                assert_eq!(
                    run["metrics"][format!("{side}_{name}")].as_f64(),
                    metrics[name].as_f64(),
                    "{version} {side}_{name}"
                );
            }
        }
        assert_eq!(run["metrics"]["fit_seconds"].as_f64(), Some(row.get(6)));
        let params: Value = row.get(3);
        for (name, value) in params.as_object().unwrap() {
            let expected = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            assert_eq!(run["params"][name], expected, "{version} parameter {name}");
        }
        // Every artifact stored under the version is logged: model.json, and xgboost.json for
        // XGBoost.
        let has_artifact = |name: &str| run["artifacts"].as_array().unwrap().contains(&name.into());
        assert!(has_artifact("model.json"), "{}", run["artifacts"]);
        assert_eq!(
            run["loaded"]["model.json"], version,
            "model.json downloads and parses"
        );
        if algorithm == "xgboost" {
            assert!(has_artifact("xgboost.json"), "{}", run["artifacts"]);
            let loaded = &run["loaded"]["xgboost.json"];
            assert_eq!(loaded["rounds"], 30, "xgboost loads all the rounds");
            assert!(
                loaded["predictions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|p| p.as_f64().is_some_and(|p| p.is_finite() && p > 0.0)),
                "{loaded}"
            );
        } else {
            assert!(!has_artifact("xgboost.json"), "{}", run["artifacts"]);
        }
    }

    // A registered version per model, made from its run; the judged ones tagged with the
    // decision; champion on the production model.
    let registered = mlflow["versions"].as_array().unwrap();
    assert_eq!(registered.len(), versions.len());
    for version in registered {
        let name = version["tags"]["appraise.version"].as_str().unwrap();
        assert_eq!(version["run_id"], models[name]["run_id"]);
        assert!(
            version["source"]
                .as_str()
                .unwrap()
                .contains(models[name]["run_id"].as_str().unwrap()),
            "{version}"
        );
    }
    let registered: HashMap<&str, &Value> = registered
        .iter()
        .map(|v| (v["tags"]["appraise.version"].as_str().unwrap(), v))
        .collect();
    let decisions = world
        .db
        .get()
        .await
        .unwrap()
        .query(
            "SELECT candidate_version, decision, reason FROM ops.promotions",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(decisions.len(), 2);
    for row in &decisions {
        let tags = &registered[row.get::<_, &str>(0)]["tags"];
        assert_eq!(tags["appraise.decision"], row.get::<_, &str>(1));
        assert_eq!(tags["appraise.reason"], row.get::<_, &str>(2));
    }
    let production: String = query_value(&world.db, "SELECT version FROM ops.production").await;
    assert_eq!(mlflow["champion"], production.as_str());
    assert_eq!(
        mlflow["aliases"],
        serde_json::json!({ "champion": registered[production.as_str()]["version"] }),
        "one alias, on the production model's version"
    );
}

#[tokio::test]
async fn duplicate_events_and_redone_work_make_no_second_run_or_version() {
    let Some(world) = world().await else { return };
    world.batch(0, 1.0).await;
    // Redelivered events, and every piece of work done again as after a crash that lost the
    // queue's acknowledgement, drained by two processes at once.
    assert!(matches!(
        world.train_event(0).await,
        TrainReport::Duplicate { .. }
    ));
    assert!(matches!(
        world.promote_event(0).await,
        PromoteReport::Duplicate { .. }
    ));
    world
        .db
        .get()
        .await
        .unwrap()
        .execute("UPDATE ops.mlflow_outbox SET mirrored_at = NULL", &[])
        .await
        .unwrap();
    let (one, two) = tokio::join!(world.mirror.drain(), world.mirror.drain());
    assert_eq!((&one.error, &two.error), (&None, &None));
    assert_eq!(
        one.mirrored + two.mirrored,
        2,
        "each piece once: {one:?} {two:?}"
    );
    world.drain().await;
    assert_eq!(world.pending().await, 0);

    let mlflow = world.read_back();
    assert_eq!(mlflow["trainings"].as_array().unwrap().len(), 1, "{mlflow}");
    assert_eq!(mlflow["models"].as_array().unwrap().len(), 3, "{mlflow}");
    assert_eq!(mlflow["versions"].as_array().unwrap().len(), 3, "{mlflow}");
    for model in mlflow["models"].as_array().unwrap() {
        assert_eq!(
            model["metrics"].as_object().unwrap().len(),
            11,
            "each metric logged once: {model}"
        );
    }
    let production: String = query_value(&world.db, "SELECT version FROM ops.production").await;
    assert_eq!(mlflow["champion"], production.as_str());
    let keys: Vec<String> = query_column(
        &world.db,
        "SELECT work_key FROM ops.mlflow_outbox ORDER BY id",
    )
    .await;
    assert_eq!(keys, ["training-000000", "promotion-000000"]);
}

#[tokio::test]
async fn an_mlflow_outage_fails_nothing_and_the_mirror_catches_up() {
    let Some(mut world) = world().await else {
        return;
    };
    world.mlflow.stop();

    let (trained, promoted) = world.batch(0, 1.0).await;
    assert!(
        matches!(trained, TrainReport::Trained { .. }),
        "{trained:?}"
    );
    assert!(
        matches!(promoted, PromoteReport::Decided { promoted: true, .. }),
        "{promoted:?}"
    );
    assert_eq!(world.pending().await, 2, "the work waits");
    let error: String = query_value(
        &world.db,
        "SELECT last_error FROM ops.mlflow_outbox WHERE work_key = 'training-000000'",
    )
    .await;
    assert!(error.contains("no answer from the server"), "{error}");
    let drained = world.drain().await;
    assert_eq!((drained.mirrored, drained.pending), (0, Some(2)));

    world.mlflow.restart().await.unwrap();
    let drained = world.drain().await;
    assert_eq!(
        (drained.mirrored, drained.pending),
        (2, Some(0)),
        "{drained:?}"
    );
    let mlflow = world.read_back();
    assert_eq!(mlflow["trainings"].as_array().unwrap().len(), 1, "{mlflow}");
    assert_eq!(mlflow["versions"].as_array().unwrap().len(), 3, "{mlflow}");
    let production: String = query_value(&world.db, "SELECT version FROM ops.production").await;
    assert_eq!(mlflow["champion"], production.as_str());
}

#[tokio::test]
async fn a_promotion_whose_training_was_never_mirrored_is_passed_over_with_a_note() {
    let Some(world) = world().await else { return };
    // A decision on a training made before MLFLOW_TRACKING_URI was set: nothing to tag.
    let work = appraise_mlflow::Work::Promotion(appraise_mlflow::PromotionVerdict {
        training_id: 7,
        candidate_version: "t000007-xgboost".to_owned(),
        promoted: true,
        reason: "no production model yet".to_owned(),
    });
    appraise_mlflow::queue(&**world.db.get().await.unwrap(), &work)
        .await
        .unwrap();
    let drained = world.drain().await;
    assert_eq!(
        (drained.mirrored, drained.skipped, drained.pending),
        (0, 1, Some(0)),
        "{drained:?}"
    );
    let note: String = query_value(
        &world.db,
        "SELECT last_error FROM ops.mlflow_outbox WHERE work_key = 'promotion-000007'",
    )
    .await;
    assert!(note.contains("t000007-xgboost"), "{note}");
    let mlflow = world.read_back();
    assert_eq!(mlflow["aliases"], serde_json::json!({}), "{mlflow}");
}
