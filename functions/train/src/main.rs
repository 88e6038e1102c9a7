//! The train function: `DATABASE_URL`, the S3 variables and the training settings in;
//! decisions, models and candidates out.

use std::time::Duration;

use appraise_core::{db, objects::ObjectStore, runtime, telemetry};
use appraise_train::{Train, config::TrainConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("train");
    let config = TrainConfig::from_env()?;
    let pool = db::pool_from_env().await?;
    db::connect_and_migrate(&pool, Duration::from_secs(30)).await?;
    let train = Train::new(config, pool, ObjectStore::from_env()?);
    runtime::serve("train", move |trigger| {
        let train = train.clone();
        async move { train.handle(trigger).await }
    })
    .await
}
