//! What the train tests stand on: a fresh database and bucket with the train stage over them,
//! clean batches to feed it, and a promotion by hand.

#![allow(dead_code)] // each test module uses a different part

use appraise_core::{db::DbPool, objects::ObjectStore, runtime::StageError};
use appraise_testkit::{fixtures, s3_server::S3Server};
use appraise_train::{Train, TrainReport, config::TrainConfig};

pub struct World {
    pub db: DbPool,
    pub objects: ObjectStore,
    pub _s3: S3Server,
    pub train: Train,
}

pub async fn world() -> World {
    world_with(TrainConfig::small()).await
}

pub async fn world_with(config: TrainConfig) -> World {
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
    pub async fn clean_batch(&self, batch: i32, rows: usize, scale: f64) {
        fixtures::insert_clean_batch(&self.db, batch, rows, scale)
            .await
            .unwrap();
    }

    pub async fn event(&self, batch: i32) -> TrainReport {
        self.try_event(batch).await.unwrap()
    }

    pub async fn try_event(&self, batch: i32) -> Result<TrainReport, StageError> {
        let object = fixtures::object_created(&format!("clean/batch-{batch:06}/manifest.json"));
        self.train.train_object(&object).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        fixtures::query_value(&self.db, sql).await
    }

    pub async fn put(&self, key: &str) {
        self.objects
            .put(key, bytes::Bytes::from_static(b"{}"), "application/json")
            .await
            .unwrap();
    }

    /// The objects under `models/` whose version (the key's second segment) has no
    /// `ops.model_versions` row.
    pub async fn unclaimed_artifacts(&self) -> Vec<String> {
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

    /// Puts `version` in production (in place of the one there, if any).
    pub async fn promote(&self, version: &str) {
        self.db
            .get()
            .await
            .unwrap()
            .execute(
                "INSERT INTO ops.production (version) VALUES ($1)
                 ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
                &[&version],
            )
            .await
            .unwrap();
    }
}
