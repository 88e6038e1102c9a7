//! What the predictor's tests stand on: a real production model made by the real train and
//! promote stages, and the predict binary started with a test's environment.

use anyhow::Context;
use appraise_core::{db::DbPool, keys, objects::ObjectStore};
use appraise_mlflow::Mirror;
use appraise_promote::{Promote, PromoteConfig};
use appraise_testkit::{fixtures, processes::FunctionProcess};
use appraise_train::{Train, TrainReport, config::TrainConfig};

/// Runs train then promote on clean batch `batch` (already in the database), both mirroring
/// through `mirror` when there is one (and that mirrored when this returns: the stages drain
/// in the background); returns the training id, if it trained.
async fn train_and_promote(
    db: &DbPool,
    objects: &ObjectStore,
    batch: i32,
    mirror: Option<&Mirror>,
) -> anyhow::Result<Option<i64>> {
    let train = Train::with_mlflow(
        TrainConfig::small(),
        db.clone(),
        objects.clone(),
        mirror.cloned(),
    );
    let report = train
        .train_object(&fixtures::object_created(&keys::batch_manifest(
            "clean", batch,
        )))
        .await?;
    if let Some(mirror) = mirror {
        mirror.drain_when_free().await;
    }
    let TrainReport::Trained { training_id, .. } = report else {
        return Ok(None);
    };
    Promote::with_mlflow(
        PromoteConfig::default(),
        db.clone(),
        objects.clone(),
        mirror.cloned(),
    )
    .promote_object(&fixtures::object_created(&keys::candidates(training_id)))
    .await?;
    if let Some(mirror) = mirror {
        mirror.drain_when_free().await;
    }
    Ok(Some(training_id))
}

/// Two batches through train and promote: the first trains and is promoted; the second is
/// drifted (prices and sizes doubled), so it gets a drift report, trains again and is judged
/// against production. Returns the production version.
pub async fn seed_production_model(db: &DbPool, objects: &ObjectStore) -> anyhow::Result<String> {
    seed_mirrored_production_model(db, objects, None).await
}

/// [`seed_production_model`], with train and promote mirroring to MLflow through `mirror`.
pub async fn seed_mirrored_production_model(
    db: &DbPool,
    objects: &ObjectStore,
    mirror: Option<&Mirror>,
) -> anyhow::Result<String> {
    fixtures::insert_clean_batch(db, 1, 12_000, 1.0).await?;
    train_and_promote(db, objects, 1, mirror)
        .await?
        .context("the first batch did not train")?;
    fixtures::insert_clean_batch(db, 2, 12_000, 2.0).await?;
    train_and_promote(db, objects, 2, mirror).await?;
    let version: String = db
        .get()
        .await?
        .query_one("SELECT version FROM ops.production", &[])
        .await?
        .get(0);
    Ok(version)
}

/// Starts the predict binary with `env` (its output discarded); returns once it is up.
pub async fn start_predictor(env: &[(String, String)]) -> FunctionProcess {
    FunctionProcess::start(
        "predict",
        env!("CARGO_BIN_EXE_predict").as_ref(),
        env,
        std::process::Stdio::null(),
    )
    .await
    .expect("the predictor starts")
}

/// `GET url`, its body read as JSON (panics on a transport error or a body that is not `T`).
pub async fn get_json<T: serde::de::DeserializeOwned>(client: &reqwest::Client, url: String) -> T {
    client.get(url).send().await.unwrap().json().await.unwrap()
}
