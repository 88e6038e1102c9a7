//! The promote stage against a real PostgreSQL and S3, with candidates made by the real train
//! stage: the first model is promoted, a candidate that does not beat production is rejected
//! with both scores recorded, and duplicate or concurrent events decide once.

use appraise_core::{db::DbPool, keys, model::ProductionPointer, objects::ObjectStore};
use appraise_local::{s3_server::S3Server, testkit};
use appraise_promote::{Promote, PromoteConfig, PromoteReport, PromotionRule};
use appraise_train::{Train, TrainReport, config::TrainConfig};

struct World {
    db: DbPool,
    objects: ObjectStore,
    _s3: S3Server,
}

async fn world() -> World {
    let (_, db) = testkit::fresh_database().await.unwrap();
    let (s3, objects) = testkit::s3_server(vec![]).await.unwrap();
    World {
        db,
        objects,
        _s3: s3,
    }
}

impl World {
    /// A clean batch trained by the real train stage; returns the training id.
    async fn training(&self, batch: i32, scale: f64) -> i64 {
        testkit::insert_clean_batch(&self.db, batch, 11_000, scale)
            .await
            .unwrap();
        let train = Train::new(TrainConfig::small(), self.db.clone(), self.objects.clone());
        let report = train
            .train_object(&testkit::object_created(&keys::batch_manifest(
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
        Promote::new(
            PromoteConfig { rule },
            self.db.clone(),
            self.objects.clone(),
        )
        .promote_object(&testkit::object_created(&keys::candidates(training_id)))
        .await
        .unwrap()
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
        testkit::query_value(&self.db, sql).await
    }
}

#[tokio::test]
async fn promotes_the_first_model_then_rejects_one_that_is_not_better() {
    let world = world().await;
    let first = world.training(1, 1.0).await;
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
    .promote_object(&testkit::object_created("candidates/notes.txt"))
    .await
    .unwrap();
    assert!(matches!(ignored, PromoteReport::Ignored { .. }));
    assert!(
        Promote::new(
            PromoteConfig::default(),
            world.db.clone(),
            world.objects.clone()
        )
        .promote_object(&testkit::object_created(&keys::candidates(99)))
        .await
        .is_err()
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
            training_id: training
        }
    );
    assert_eq!(world.count("SELECT count(*) FROM ops.promotions").await, 1);
}
