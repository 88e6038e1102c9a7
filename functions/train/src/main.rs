//! The train function: `DATABASE_URL`, the S3 variables and the training settings in
//! (and `MLFLOW_TRACKING_URI`, optional); decisions, models and candidates out.

use std::time::Duration;

use appraise_core::{db, objects::ObjectStore, runtime, telemetry};
use appraise_mlflow::Mirror;
use appraise_train::{Train, config::TrainConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("train");
    let config = TrainConfig::from_env()?;
    let pool = db::pool_from_env().await?;
    db::connect_and_migrate(&pool, Duration::from_secs(30)).await?;
    let objects = ObjectStore::from_env()?;
    // With MLFLOW_TRACKING_URI set: mirror to MLflow (retrying in the background off Lambda).
    let mirror = Mirror::start_from_env(&pool, &objects)?;
    let train = Train::with_mlflow(config, pool, objects, mirror);
    runtime::serve("train", move |trigger| {
        let train = train.clone();
        async move { train.handle(trigger).await }
    })
    .await
}
