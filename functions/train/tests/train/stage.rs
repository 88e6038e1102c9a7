//! The train stage against a real PostgreSQL and S3: the retrain decision in every case,
//! idempotency, artifacts that predict after a round trip exactly as right after training, and
//! recovery: a training redone after a lost commit keeps its version ids, artifacts no model
//! version claims are removed, lost events are caught up, and a batch that is not visible yet
//! is retried rather than rejected.

use appraise_core::{
    clean,
    db::DbPool,
    keys,
    model::{
        ModelArtifact, TrainedModel, boosted::BoostedTrees, boosted::BoostingParams,
        forest::ForestParams, metrics::Metrics,
    },
    objects::ObjectStore,
    runtime::StageError,
};
use appraise_testkit::{fixtures, s3_server::S3Server};
use appraise_train::{Train, TrainReport, config::TrainConfig};

struct World {
    db: DbPool,
    objects: ObjectStore,
    _s3: S3Server,
    train: Train,
}

async fn world() -> World {
    world_with(TrainConfig::small()).await
}

async fn world_with(config: TrainConfig) -> World {
    let (_, db) = fixtures::fresh_database().await.unwrap();
    let (s3, objects) = fixtures::s3_server(vec![]).await.unwrap();
    World {
        train: Train::new(config, db.clone(), objects.clone()),
        db,
        objects,
        _s3: s3,
    }
}

impl World {
    /// Adds a processed batch of `rows` clean listings (see `fixtures::insert_clean_batch`).
    async fn clean_batch(&self, batch: i32, rows: usize, scale: f64) {
        fixtures::insert_clean_batch(&self.db, batch, rows, scale)
            .await
            .unwrap();
    }

    async fn event(&self, batch: i32) -> TrainReport {
        self.try_event(batch).await.unwrap()
    }

    async fn try_event(&self, batch: i32) -> Result<TrainReport, StageError> {
        let object = fixtures::object_created(&format!("clean/batch-{batch:06}/manifest.json"));
        self.train.train_object(&object).await
    }

    async fn count(&self, sql: &str) -> i64 {
        fixtures::query_value(&self.db, sql).await
    }

    async fn put(&self, key: &str) {
        self.objects
            .put(key, bytes::Bytes::from_static(b"{}"), "application/json")
            .await
            .unwrap();
    }

    /// The objects under `models/` whose version (the key's second segment) has no
    /// `ops.model_versions` row.
    async fn unclaimed_artifacts(&self) -> Vec<String> {
        let versions: Vec<String> = self
            .db
            .get()
            .await
            .unwrap()
            .query("SELECT version FROM ops.model_versions", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        self.objects
            .list("models/")
            .await
            .unwrap()
            .into_iter()
            .filter(|key| {
                !versions
                    .iter()
                    .any(|v| key.starts_with(&format!("models/{v}/")))
            })
            .collect()
    }

    async fn promote(&self, version: &str) {
        self.db
            .get()
            .await
            .unwrap()
            .execute(
                "INSERT INTO ops.production (version) VALUES ($1)",
                &[&version],
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_retrain_rule_in_every_case() {
    let world = world().await;

    // Too few rows, no production model: skip.
    world.clean_batch(0, 4_000, 1.0).await;
    let TrainReport::Skipped { reason, .. } = world.event(0).await else {
        panic!("expected a skip")
    };
    assert!(reason.contains("too few rows"), "{reason}");

    // Enough rows since the last training (none; batch 0 counts), no production model: first
    // training.
    world.clean_batch(1, 7_000, 1.0).await;
    let TrainReport::Trained {
        training_id,
        reason,
        candidates,
        rows_train,
        ..
    } = world.event(1).await
    else {
        panic!("expected a training")
    };
    assert!(reason.contains("no production model"), "{reason}");
    // A training's id is its batch's number, and names its versions.
    assert_eq!(training_id, 1);
    assert_eq!(
        candidates
            .iter()
            .map(|c| (c.version.as_str(), c.artifact_key.as_str()))
            .collect::<Vec<_>>(),
        [
            ("t000001-ridge", "models/t000001-ridge/model.json"),
            (
                "t000001-random_forest",
                "models/t000001-random_forest/model.json"
            ),
            ("t000001-xgboost", "models/t000001-xgboost/model.json")
        ]
    );
    assert!(
        rows_train > 7_000 && rows_train < 8_500,
        "70 % of 11,000: {rows_train}"
    );
    assert!(
        world
            .objects
            .get("candidates/training-000001.json")
            .await
            .unwrap()
            .is_some()
    );
    world.promote(&candidates[0].version).await;

    // Enough new rows, same market: no drift, skip.
    world.clean_batch(2, 11_000, 1.0).await;
    let TrainReport::Skipped { reason, drift, .. } = world.event(2).await else {
        panic!("expected a skip")
    };
    assert!(reason.starts_with("no drift"), "{reason}");
    assert!(!drift.unwrap().drifted);

    // Enough new rows, a market twice as large and expensive: drift, train.
    world.clean_batch(3, 11_000, 2.0).await;
    let TrainReport::Trained { reason, drift, .. } = world.event(3).await else {
        panic!("expected a training")
    };
    assert!(reason.starts_with("drift"), "{reason}");
    assert!(drift.unwrap().drifted);

    let client = world.db.get().await.unwrap();
    let decisions: Vec<(i64, i32, String)> = client
        .query(
            "SELECT id, batch_number, decision FROM ops.trainings ORDER BY batch_number",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        decisions,
        vec![
            (0, 0, "skip".into()),
            (1, 1, "train".into()),
            (2, 2, "skip".into()),
            (3, 3, "train".into())
        ],
        "one decision per clean batch, its id the batch's number"
    );
    let reports: i64 = client
        .query_one("SELECT count(*) FROM ops.drift_reports", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reports, 2, "drift is tested once a production model exists");
}

#[tokio::test]
async fn artifacts_predict_after_a_round_trip_exactly_as_after_training() {
    let export = tempfile::tempdir().unwrap();
    let world = world_with(TrainConfig {
        export_dir: Some(export.path().to_path_buf()),
        ..TrainConfig::small()
    })
    .await;
    world.clean_batch(1, 12_000, 1.0).await;
    let TrainReport::Trained {
        candidates,
        rows_train,
        rows_test,
        ..
    } = world.event(1).await
    else {
        panic!("expected a training")
    };
    // The exact rows were exported for the peer comparison: a header and one line per row.
    for (side, rows) in [("train", rows_train), ("test", rows_test)] {
        let path = export.path().join(format!("training-000001-{side}.csv"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("brokered_by,status,price,"), "{side}");
        assert_eq!(text.lines().count(), rows + 1, "{side}");
    }
    // Recompute each model's test metrics from its stored artifact, on the test rows.
    let mut client = world.db.get().await.unwrap();
    let transaction = tokio_postgres::Client::transaction(&mut client)
        .await
        .unwrap();
    let rows = clean::clean_rows(&transaction, 1, 1).await.unwrap();
    for candidate in &candidates {
        let bytes = world
            .objects
            .get(&candidate.artifact_key)
            .await
            .unwrap()
            .unwrap();
        let artifact = ModelArtifact::from_json(&bytes).unwrap();
        assert_eq!(artifact.version, candidate.version);
        assert_eq!(artifact.model.algorithm(), candidate.algorithm);
        if let TrainedModel::Xgboost(trees) = &artifact.model {
            // XGBoost's own JSON sits next to the artifact and holds the same trees.
            let key = candidate.artifact_key.replace("model.json", "xgboost.json");
            let native = world.objects.get(&key).await.unwrap().unwrap();
            let native = std::str::from_utf8(&native).unwrap();
            let reread = BoostedTrees::from_xgboost_json(native, trees.params, 16).unwrap();
            assert_eq!(&reread, trees);
        }
        let test_rows: Vec<_> = rows
            .iter()
            .filter(|r| {
                clean::split_side(r.row_hash, TrainConfig::default().split_seed)
                    == clean::Side::Test
            })
            .collect();
        let predicted: Vec<f64> = test_rows
            .iter()
            .map(|r| artifact.predict(&r.input()))
            .collect();
        let actual: Vec<f64> = test_rows.iter().map(|r| r.price).collect();
        let metrics = Metrics::compute(&actual, &predicted).unwrap();
        assert_eq!(
            metrics, candidate.test,
            "{}: bit-for-bit the same predictions",
            candidate.algorithm
        );
        assert!(
            candidate.test.r2 > 0.5,
            "{}: {:?}",
            candidate.algorithm,
            candidate.test
        );
    }
    // Unseen categories fall back instead of failing.
    let bytes = world
        .objects
        .get(&candidates[1].artifact_key)
        .await
        .unwrap()
        .unwrap();
    let artifact = ModelArtifact::from_json(&bytes).unwrap();
    let mut unseen = rows[0].input();
    unseen.state = Some("Atlantis");
    unseen.zip_code = None;
    assert!(artifact.predict(&unseen).is_finite());
}

#[tokio::test]
async fn a_window_trains_on_the_last_batches_only() {
    let world = world_with(TrainConfig {
        forest: ForestParams {
            trees: 2,
            max_depth: 4,
            ..ForestParams::default()
        },
        boosting: BoostingParams {
            rounds: 5,
            ..BoostingParams::default()
        },
        // Batches 1 and 2 (3,000 rows) are too few; batch 3 makes 4,500.
        rule: appraise_train::decision::RetrainRule {
            min_new_rows: 3_500,
        },
        window_batches: 2,
        ..TrainConfig::default()
    })
    .await;
    for batch in 1..=3 {
        world.clean_batch(batch, 1_500, 1.0).await;
    }
    for batch in 1..=2 {
        assert!(matches!(
            world.event(batch).await,
            TrainReport::Skipped { .. }
        ));
    }
    let TrainReport::Trained {
        rows_train,
        rows_validation,
        rows_test,
        ..
    } = world.event(3).await
    else {
        panic!("expected a training")
    };
    assert_eq!(
        rows_train + rows_validation + rows_test,
        3_000,
        "batches 2 and 3 only"
    );
    let first: i32 = world
        .db
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT first_batch FROM ops.trainings WHERE batch_number = 3",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(first, 2);
}

#[tokio::test]
async fn duplicate_and_concurrent_events_decide_once() {
    let world = world().await;
    world.clean_batch(1, 10_500, 1.0).await;
    let (a, b) = tokio::join!(world.event(1), world.event(1));
    let trained = [&a, &b]
        .iter()
        .filter(|r| matches!(r, TrainReport::Trained { .. }))
        .count();
    assert_eq!(trained, 1, "{a:?} / {b:?}");
    assert_eq!(
        world.event(1).await,
        TrainReport::Duplicate {
            batch_number: 1,
            caught_up: vec![],
            orphan_artifacts_removed: 0
        }
    );
    let client = world.db.get().await.unwrap();
    let versions: i64 = client
        .query_one("SELECT count(*) FROM ops.model_versions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, 3, "ridge, random forest and XGBoost, once");
}

/// Train killed between its uploads and its commit: the artifacts are in the bucket, the rows
/// are not. The commit really fails (a deferred constraint trigger raises at COMMIT, after
/// every statement succeeded); the redelivered event trains again under the same version ids,
/// and every object under `models/` ends with its row.
#[tokio::test]
async fn a_training_redone_after_a_lost_commit_keeps_its_version_ids() {
    let world = world().await;
    world.clean_batch(0, 11_000, 1.0).await;
    let client = world.db.get().await.unwrap();
    client
        .batch_execute(
            "CREATE FUNCTION public.lose_the_commit() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN RAISE EXCEPTION 'the commit is lost'; END $$;
             CREATE CONSTRAINT TRIGGER lose_the_commit AFTER INSERT ON ops.trainings
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.lose_the_commit();",
        )
        .await
        .unwrap();
    let error = world.try_event(0).await.unwrap_err();
    assert!(
        matches!(&error, StageError::Unavailable(m) if m.contains("committing")),
        "a lost commit is retried: {error:?}"
    );
    let uploaded = world.objects.list("models/").await.unwrap();
    assert_eq!(
        uploaded,
        [
            "models/t000000-random_forest/model.json",
            "models/t000000-ridge/model.json",
            "models/t000000-xgboost/model.json",
            "models/t000000-xgboost/xgboost.json",
        ],
        "uploaded before the commit"
    );
    assert_eq!(world.count("SELECT count(*) FROM ops.trainings").await, 0);
    assert_eq!(
        world.count("SELECT count(*) FROM ops.model_versions").await,
        0
    );
    assert_eq!(world.unclaimed_artifacts().await.len(), 4);
    assert!(world.objects.list("candidates/").await.unwrap().is_empty());

    // The redelivery, with the database working again.
    client
        .batch_execute("DROP TRIGGER lose_the_commit ON ops.trainings")
        .await
        .unwrap();
    let TrainReport::Trained {
        training_id,
        candidates,
        orphan_artifacts_removed,
        ..
    } = world.event(0).await
    else {
        panic!("expected a training")
    };
    assert_eq!(training_id, 0, "batch 0 is a batch like any other");
    assert_eq!(
        orphan_artifacts_removed, 4,
        "the first attempt's artifacts, removed before training again"
    );
    assert_eq!(
        candidates
            .iter()
            .map(|c| &c.version[..])
            .collect::<Vec<_>>(),
        ["t000000-ridge", "t000000-random_forest", "t000000-xgboost"]
    );
    assert_eq!(world.objects.list("models/").await.unwrap(), uploaded);
    assert_eq!(world.unclaimed_artifacts().await, Vec::<String>::new());
    for candidate in &candidates {
        assert!(
            world
                .objects
                .head(&candidate.artifact_key)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert_eq!(
        world.objects.list("candidates/").await.unwrap(),
        ["candidates/training-000000.json"]
    );
}

#[tokio::test]
async fn artifacts_no_model_version_claims_are_removed_at_the_next_invocation() {
    let world = world().await;
    world.clean_batch(1, 11_000, 1.0).await;
    let TrainReport::Trained {
        orphan_artifacts_removed: 0,
        ..
    } = world.event(1).await
    else {
        panic!("expected a training that removed nothing")
    };
    let registered = world.objects.list("models/").await.unwrap();
    assert_eq!(registered.len(), 4);

    // What trainings that never committed could leave behind.
    let strays = [
        "models/t000007-ridge/model.json",
        "models/t000007-xgboost/xgboost.json",
        "models/stray.json",
    ];
    for key in strays {
        world.put(key).await;
    }
    world.clean_batch(2, 1_000, 1.0).await;
    let TrainReport::Skipped {
        orphan_artifacts_removed,
        caught_up,
        ..
    } = world.event(2).await
    else {
        panic!("expected a skip")
    };
    assert_eq!(orphan_artifacts_removed, strays.len());
    assert!(caught_up.is_empty());
    assert_eq!(
        world.objects.list("models/").await.unwrap(),
        registered,
        "the registered models' artifacts stay"
    );

    // Every invocation cleans, even one whose own event is then refused.
    world.put("models/t000009-ridge/model.json").await;
    assert!(matches!(
        world.try_event(9).await,
        Err(StageError::Rejected(_))
    ));
    assert_eq!(world.objects.list("models/").await.unwrap(), registered);
    assert_eq!(
        world.event(2).await,
        TrainReport::Duplicate {
            batch_number: 2,
            caught_up: vec![],
            orphan_artifacts_removed: 0
        }
    );
}

/// What a run left: every decision, every model version and every artifact and candidates
/// object, byte for byte (fit times aside, which no two runs share).
async fn state(world: &World) -> Vec<String> {
    let client = world.db.get().await.unwrap();
    let mut state = Vec::new();
    for sql in [
        "SELECT id, batch_number, decision, reason, new_rows, drift_report_id, first_batch,
                last_batch, split_seed, rows_train, rows_validation, rows_test, feature_spec::text
         FROM ops.trainings ORDER BY id",
        "SELECT version, training_id, algorithm, params::text, validation::text, test::text,
                artifact_key
         FROM ops.model_versions ORDER BY version",
    ] {
        for row in client
            .query(&format!("SELECT row_to_json(r)::text FROM ({sql}) r"), &[])
            .await
            .unwrap()
        {
            state.push(row.get(0));
        }
    }
    for key in world.objects.list("").await.unwrap() {
        let body = world.objects.get(&key).await.unwrap().unwrap();
        if key.starts_with("candidates/") {
            let mut candidates: serde_json::Value = serde_json::from_slice(&body).unwrap();
            for candidate in candidates["candidates"].as_array_mut().unwrap() {
                candidate["fit_seconds"] = serde_json::Value::Null;
            }
            state.push(format!("{key}: {candidates}"));
        } else {
            state.push(format!("{key}: {} bytes", body.len()));
            if key.starts_with("models/") {
                state.push(String::from_utf8_lossy(&body).into_owned());
            }
        }
    }
    state
}

#[tokio::test]
async fn lost_events_are_caught_up_by_the_next_one() {
    let (every, lost) = tokio::join!(world(), world());
    for world in [&every, &lost] {
        // 0: too few rows; 1: 11,000 rows with batch 0, the first training; 2: too few rows
        // since that training. Were batches 0 and 1 never decided, batch 2 would train.
        world.clean_batch(0, 4_000, 1.0).await;
        world.clean_batch(1, 7_000, 1.0).await;
        world.clean_batch(2, 4_000, 1.0).await;
    }
    for batch in 0..=2 {
        every.event(batch).await;
    }

    // The events of batches 0 and 1 are lost; batch 2's decides them first, oldest first.
    let TrainReport::Skipped {
        caught_up, reason, ..
    } = lost.event(2).await
    else {
        panic!("expected a skip")
    };
    assert_eq!(caught_up, [0, 1]);
    assert!(reason.contains("too few rows"), "{reason}");
    let order: Vec<i32> = fixtures::query_column(
        &lost.db,
        "SELECT batch_number FROM ops.trainings ORDER BY created_at",
    )
    .await;
    assert_eq!(order, [0, 1, 2], "decided in batch order");
    assert_eq!(
        state(&lost).await,
        state(&every).await,
        "the same state as without the lost events"
    );

    // A lost event that turns up late changes nothing.
    assert_eq!(
        lost.event(1).await,
        TrainReport::Duplicate {
            batch_number: 1,
            caught_up: vec![],
            orphan_artifacts_removed: 0
        }
    );
}

#[tokio::test]
async fn a_batch_not_visible_yet_is_retried_and_a_missing_or_old_one_refused() {
    let world = world().await;

    // The manifest is in the bucket, the rows it announces are not visible (yet): retry.
    world.put(&keys::batch_manifest("clean", 5)).await;
    let error = world.try_event(5).await.unwrap_err();
    assert!(
        matches!(&error, StageError::Unavailable(m) if m.contains("not visible yet")),
        "{error:?}"
    );
    // Once they are, the retry decides the batch.
    world.clean_batch(5, 1_000, 1.0).await;
    assert!(matches!(
        world.event(5).await,
        TrainReport::Skipped {
            batch_number: 5,
            ..
        }
    ));

    // No manifest at all: it can never become valid.
    let error = world.try_event(6).await.unwrap_err();
    assert!(
        matches!(&error, StageError::Rejected(m) if m.contains("does not exist")),
        "{error:?}"
    );

    // A manifest written longer ago than the window (600 s by default): refused.
    let key = keys::batch_manifest("clean", 7);
    world.put(&key).await;
    let file = world._s3.root().join(fixtures::BUCKET).join(&key);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(601))
        .unwrap();
    let head = world.objects.head(&key).await.unwrap().unwrap();
    assert!(
        head.last_modified.unwrap().elapsed().unwrap() > std::time::Duration::from_secs(600),
        "the server reports the file's time: {head:?}"
    );
    let error = world.try_event(7).await.unwrap_err();
    assert!(
        matches!(&error, StageError::Rejected(m) if m.contains("nothing to train on")),
        "{error:?}"
    );

    // With a window of 0 even a fresh manifest is too old.
    world.put(&keys::batch_manifest("clean", 8)).await;
    let impatient = Train::new(
        TrainConfig {
            pending_window: std::time::Duration::ZERO,
            ..TrainConfig::small()
        },
        world.db.clone(),
        world.objects.clone(),
    );
    let error = impatient
        .train_object(&fixtures::object_created(&keys::batch_manifest("clean", 8)))
        .await
        .unwrap_err();
    assert!(matches!(error, StageError::Rejected(_)), "{error:?}");
}
