//! The promote stage against a real PostgreSQL and S3, with candidates made by the real train
//! stage: the first model is promoted, a candidate that does not beat production is rejected
//! with both scores recorded, duplicate or concurrent events decide once, lost events are
//! caught up, and a training that is not visible yet is retried rather than refused.

use std::time::{Duration, SystemTime};

use appraise_core::{
    db::DbPool, keys, model::ProductionPointer, objects::ObjectStore, runtime::StageError,
};
use appraise_promote::{Promote, PromoteConfig, PromoteReport, PromotionRule};
use appraise_testkit::{fixtures, s3_server::S3Server};
use appraise_train::{Train, TrainReport, config::TrainConfig};

struct World {
    db: DbPool,
    objects: ObjectStore,
    _s3: S3Server,
}

async fn world() -> World {
    let (_, db) = fixtures::fresh_database().await.unwrap();
    let (s3, objects) = fixtures::s3_server(vec![]).await.unwrap();
    World {
        db,
        objects,
        _s3: s3,
    }
}

impl World {
    /// A clean batch trained by the real train stage; returns the training id.
    async fn training(&self, batch: i32, scale: f64) -> i64 {
        fixtures::insert_clean_batch(&self.db, batch, 11_000, scale)
            .await
            .unwrap();
        let train = Train::new(TrainConfig::small(), self.db.clone(), self.objects.clone());
        let report = train
            .train_object(&fixtures::object_created(&keys::batch_manifest(
                "clean", batch,
            )))
            .await
            .unwrap();
        let TrainReport::Trained { training_id, .. } = report else {
            panic!("expected a training, got {report:?}")
        };
        training_id
    }

    async fn promote(&self, rule: PromotionRule, training_id: i64) -> PromoteReport {
        self.try_promote(
            PromoteConfig {
                rule,
                ..PromoteConfig::default()
            },
            training_id,
        )
        .await
        .unwrap()
    }

    async fn try_promote(
        &self,
        config: PromoteConfig,
        training_id: i64,
    ) -> Result<PromoteReport, StageError> {
        Promote::new(config, self.db.clone(), self.objects.clone())
            .promote_object(&fixtures::object_created(&keys::candidates(training_id)))
            .await
    }

    async fn put(&self, key: &str) {
        self.objects
            .put(key, bytes::Bytes::from_static(b"{}"), "application/json")
            .await
            .unwrap();
    }

    async fn pointer(&self) -> ProductionPointer {
        let bytes = self
            .objects
            .get(keys::PRODUCTION_POINTER)
            .await
            .unwrap()
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        fixtures::query_value(&self.db, sql).await
    }
}

#[tokio::test]
async fn promotes_the_first_model_then_rejects_one_that_is_not_better() {
    let world = world().await;
    let first = world.training(1, 1.0).await;
    assert_eq!(first, 1, "a training's id is its batch's number");
    let PromoteReport::Decided {
        promoted,
        candidate,
        production,
        evaluation_rows,
        reason,
        ..
    } = world.promote(PromotionRule::default(), first).await
    else {
        panic!("expected a decision")
    };
    assert!(promoted, "{reason}");
    assert!(production.is_none());
    assert!(reason.contains("no production model"), "{reason}");
    assert!(evaluation_rows > 1_000);
    assert!(candidate.version.starts_with("t000001-"), "{candidate:?}");
    // The pointer moved in PostgreSQL and the object says the same.
    let pointer = world.pointer().await;
    assert_eq!(pointer.version, candidate.version);
    assert_eq!(pointer.test, candidate.metrics);
    assert_eq!(
        world
            .count("SELECT count(*) FROM ops.production p JOIN ops.promotions r ON r.id = p.promotion_id")
            .await,
        1
    );

    // The next candidate must beat production by 99 %: rejected, with both scores on the
    // same rows, and production stays.
    // A drifted batch, so train retrains.
    let second = world.training(2, 2.0).await;
    let strict = PromotionRule {
        min_improvement: 0.99,
    };
    let PromoteReport::Decided {
        promoted,
        production,
        reason,
        ..
    } = world.promote(strict, second).await
    else {
        panic!("expected a decision")
    };
    assert!(!promoted);
    let production = production.expect("scored against production");
    assert_eq!(production.version, pointer.version);
    assert!(reason.contains("does not beat"), "{reason}");
    assert_eq!(world.pointer().await.version, pointer.version);
    let recorded = world
        .count(
            "SELECT count(*) FROM ops.promotions
             WHERE decision = 'rejected' AND production_metrics IS NOT NULL",
        )
        .await;
    assert_eq!(recorded, 1);

    // Anything else under candidates/ is ignored; an unknown training is refused.
    let ignored = Promote::new(
        PromoteConfig::default(),
        world.db.clone(),
        world.objects.clone(),
    )
    .promote_object(&fixtures::object_created("candidates/notes.txt"))
    .await
    .unwrap();
    assert!(matches!(ignored, PromoteReport::Ignored { .. }));
    let refused = world.try_promote(PromoteConfig::default(), 99).await;
    assert!(
        matches!(&refused, Err(StageError::Rejected(m)) if m.contains("does not exist")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn duplicate_and_concurrent_events_decide_once() {
    let world = world().await;
    let training = world.training(1, 1.0).await;
    let rule = PromotionRule::default();
    let (a, b) = tokio::join!(world.promote(rule, training), world.promote(rule, training));
    let decided = [&a, &b]
        .iter()
        .filter(|r| matches!(r, PromoteReport::Decided { .. }))
        .count();
    assert_eq!(decided, 1, "{a:?} / {b:?}");
    assert_eq!(
        world.promote(rule, training).await,
        PromoteReport::Duplicate {
            training_id: training,
            caught_up: vec![]
        }
    );
    assert_eq!(world.count("SELECT count(*) FROM ops.promotions").await, 1);
}

/// What promote left: every decision with both scores, the pointer in PostgreSQL and in the
/// bucket (its time aside).
async fn state(world: &World) -> Vec<String> {
    let client = world.db.get().await.unwrap();
    let mut state: Vec<String> = client
        .query(
            "SELECT row_to_json(r)::text FROM (
                 SELECT p.id, training_id, candidate_version, production_version, decision,
                        reason, candidate_metrics, production_metrics, evaluation_rows,
                        o.version AS production
                 FROM ops.promotions p LEFT JOIN ops.production o ON o.promotion_id = p.id
                 ORDER BY p.id) r",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut pointer = world.pointer().await;
    pointer.promoted_at = String::new();
    state.push(serde_json::to_string(&pointer).unwrap());
    state
}

#[tokio::test]
async fn a_lost_event_is_caught_up_by_the_next_one() {
    let (every, lost) = tokio::join!(world(), world());
    let mut trainings = Vec::new();
    for world in [&every, &lost] {
        trainings.push((world.training(1, 1.0).await, world.training(2, 2.0).await));
    }
    assert_eq!(trainings, [(1, 2), (1, 2)]);
    let rule = PromotionRule::default();
    every.promote(rule, 1).await;
    every.promote(rule, 2).await;

    // Training 1's event is lost: training 2's decides it first, then judges 2 against it.
    let PromoteReport::Decided {
        training_id: 2,
        caught_up,
        production,
        ..
    } = lost.promote(rule, 2).await
    else {
        panic!("expected a decision on training 2")
    };
    assert_eq!(caught_up, [1]);
    assert!(
        production.is_some_and(|p| p.version.starts_with("t000001-")),
        "judged against training 1's model"
    );
    let order: Vec<i64> = fixtures::query_column(
        &lost.db,
        "SELECT training_id FROM ops.promotions ORDER BY created_at",
    )
    .await;
    assert_eq!(order, [1, 2], "decided in training order");
    assert_eq!(
        state(&lost).await,
        state(&every).await,
        "the same state as without the lost event"
    );
    assert_eq!(
        lost.promote(rule, 1).await,
        PromoteReport::Duplicate {
            training_id: 1,
            caught_up: vec![]
        },
        "the lost event, turning up late, changes nothing"
    );
}

#[tokio::test]
async fn a_training_that_can_never_be_decided_does_not_hold_up_the_next() {
    let world = world().await;
    let first = world.training(1, 1.0).await;
    // Its artifacts are unreadable: it can never be scored.
    for key in world.objects.list("models/t000001-").await.unwrap() {
        world.put(&key).await;
    }
    let second = world.training(2, 2.0).await;
    let PromoteReport::Decided {
        training_id,
        promoted,
        caught_up,
        ..
    } = world.promote(PromotionRule::default(), second).await
    else {
        panic!("expected a decision")
    };
    assert_eq!((training_id, promoted), (second, true));
    assert!(caught_up.is_empty(), "{caught_up:?}");
    assert_eq!(world.count("SELECT count(*) FROM ops.promotions").await, 1);
    let refused = world
        .try_promote(PromoteConfig::default(), first)
        .await
        .unwrap_err();
    assert!(matches!(refused, StageError::Rejected(_)), "{refused:?}");
}

#[tokio::test]
async fn a_training_not_visible_yet_is_retried_and_a_missing_or_old_one_refused() {
    let world = world().await;
    let config = PromoteConfig::default();

    // The candidates object is in the bucket, the training is not visible (yet): retry.
    world.put(&keys::candidates(5)).await;
    let error = world.try_promote(config.clone(), 5).await.unwrap_err();
    assert!(
        matches!(&error, StageError::Unavailable(m) if m.contains("not visible yet")),
        "{error:?}"
    );
    // Once it is, the retry decides it.
    assert_eq!(world.training(5, 1.0).await, 5);
    assert!(matches!(
        world.try_promote(config.clone(), 5).await,
        Ok(PromoteReport::Decided { training_id: 5, .. })
    ));

    // No candidates object at all: it can never become valid.
    let error = world.try_promote(config.clone(), 6).await.unwrap_err();
    assert!(
        matches!(&error, StageError::Rejected(m) if m.contains("does not exist")),
        "{error:?}"
    );

    // An object written longer ago than the window (600 s by default): refused.
    let key = keys::candidates(7);
    world.put(&key).await;
    std::fs::File::options()
        .write(true)
        .open(world._s3.root().join(fixtures::BUCKET).join(&key))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(601))
        .unwrap();
    let error = world.try_promote(config.clone(), 7).await.unwrap_err();
    assert!(
        matches!(&error, StageError::Rejected(m) if m.contains("not a recorded training")),
        "{error:?}"
    );

    // With a window of 0 even a fresh object is too old.
    world.put(&keys::candidates(8)).await;
    let impatient = PromoteConfig {
        pending_window: Duration::ZERO,
        ..config
    };
    let error = world.try_promote(impatient, 8).await.unwrap_err();
    assert!(matches!(error, StageError::Rejected(_)), "{error:?}");
}
