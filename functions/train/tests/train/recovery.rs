//! The train stage recovering: a training redone after a lost commit keeps its version ids
//! (and its run records the failure, then the success in two attempts),
//! artifacts no model version claims are removed, lost events are caught up, and a batch that
//! is not visible yet is retried rather than rejected.

use appraise_core::{keys, runtime::StageError};
use appraise_testkit::fixtures;
use appraise_train::{Train, TrainReport, config::TrainConfig};

use crate::support::{World, world};

/// Train's run of batch 0 (`ops.stage_runs`): state, attempts, last error.
async fn train_run_of_batch_0(world: &World) -> (String, i32, String) {
    let client = world.db.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT state, attempts, error FROM ops.stage_runs
             WHERE batch_number = 0 AND stage = 'train'",
            &[],
        )
        .await
        .unwrap();
    (
        row.get(0),
        row.get(1),
        row.get::<_, Option<String>>(2).unwrap_or_default(),
    )
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
    // The attempt rolled back, yet its failure is in the batch's run, with the error.
    let (state, attempts, error) = train_run_of_batch_0(&world).await;
    assert_eq!((state.as_str(), attempts), ("failed", 1));
    assert!(error.contains("the commit is lost"), "{error}");

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
    // The redelivery's run: done, in two attempts, the lost commit's error kept.
    let (state, attempts, error) = train_run_of_batch_0(&world).await;
    assert_eq!((state.as_str(), attempts), ("done", 2));
    assert!(error.contains("the commit is lost"), "{error}");
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
