//! The train stage against a real PostgreSQL and S3: the retrain decision in every case,
//! idempotency, windows, and artifacts that predict after a round trip exactly as right after
//! training.

use appraise_core::{
    clean,
    model::{
        ModelArtifact, TrainedModel, boosted::BoostedTrees, boosted::BoostingParams,
        forest::ForestParams, metrics::Metrics,
    },
};
use appraise_train::{TrainReport, config::TrainConfig};

use crate::support::{world, world_with};

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
    // The categorical features are stored with the numeric ones: the same states, status and
    // city in every batch, so none shifted (the numeric drift alone decided).
    let categorical: serde_json::Value = client
        .query_one(
            "SELECT report->'categorical' FROM ops.drift_reports WHERE batch_number = 3",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let entries = categorical.as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|c| c["feature"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["state", "status", "city_prefix"]);
    assert!(
        entries
            .iter()
            .all(|c| c["drifted"] == false && c["psi"].as_f64().unwrap() < 0.2),
        "{categorical}"
    );
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

/// `TRAIN_WINDOW_ROWS`: a training takes the most recent whole batches that fit in the window
/// (the event's own batch even when it alone is larger), recorded in `ops.trainings`, and the
/// retrain rule and the drift test still work as without a window.
#[tokio::test]
async fn a_row_window_trains_on_the_most_recent_rows_only() {
    let world = world_with(TrainConfig {
        rule: appraise_train::decision::RetrainRule {
            min_new_rows: 1_000,
        },
        window_rows: 3_200,
        ..TrainConfig::small()
    })
    .await;
    let window_of = async |batch: i32| -> (i32, i32) {
        let row = world
            .db
            .get()
            .await
            .unwrap()
            .query_one(
                "SELECT first_batch, last_batch FROM ops.trainings WHERE batch_number = $1",
                &[&batch],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    let rows_of = |report: &TrainReport| match report {
        TrainReport::Trained {
            rows_train,
            rows_validation,
            rows_test,
            ..
        } => rows_train + rows_validation + rows_test,
        other => panic!("expected a training, got {other:?}"),
    };

    // No production model: the first training, on batch 1 alone (1,500 rows fit).
    world.clean_batch(1, 1_500, 1.0).await;
    let first = world.event(1).await;
    assert_eq!(rows_of(&first), 1_500);
    let TrainReport::Trained { candidates, .. } = first else {
        unreachable!()
    };
    world.promote(&candidates[0].version).await;

    // The same market: no drift, no training.
    world.clean_batch(2, 1_500, 1.0).await;
    let TrainReport::Skipped { reason, .. } = world.event(2).await else {
        panic!("expected a skip")
    };
    assert!(reason.starts_with("no drift"), "{reason}");

    // A drifted market: a training on batches 2 and 3 (3,000 rows); batch 1 would make 4,500.
    world.clean_batch(3, 1_500, 2.0).await;
    let drifted = world.event(3).await;
    let TrainReport::Trained {
        reason, candidates, ..
    } = &drifted
    else {
        panic!("expected a training, got {drifted:?}")
    };
    assert!(reason.starts_with("drift"), "{reason}");
    assert_eq!(rows_of(&drifted), 3_000, "batches 2 and 3 only");
    assert_eq!(window_of(3).await, (2, 3));
    world.promote(&candidates[0].version).await;

    // Drift is tested against the rows the production model was trained on (batches 2 and 3);
    // a batch larger than the window is trained on alone.
    world.clean_batch(4, 4_000, 4.0).await;
    let alone = world.event(4).await;
    assert_eq!(rows_of(&alone), 4_000, "the event's own batch, alone");
    assert_eq!(window_of(4).await, (4, 4));
    let reference: i64 = world
        .count("SELECT reference_training FROM ops.drift_reports WHERE batch_number = 4")
        .await;
    assert_eq!(reference, 3);
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
