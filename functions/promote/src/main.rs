//! The promote function: `DATABASE_URL`, the S3 variables and `PROMOTE_MIN_IMPROVEMENT` (and
//! `MLFLOW_TRACKING_URI`, optional) in;
//! promotion decisions and the production pointer out.

use std::time::Duration;

use appraise_core::{db, objects::ObjectStore, runtime, telemetry};
use appraise_mlflow::Mirror;
use appraise_promote::{Promote, config::PromoteConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("promote");
    let config = PromoteConfig::from_env()?;
    let pool = db::pool_from_env().await?;
    db::connect_and_migrate(&pool, Duration::from_secs(30)).await?;
    let objects = ObjectStore::from_env()?;
    // With MLFLOW_TRACKING_URI set: mirror to MLflow (retrying in the background off Lambda).
    let mirror = Mirror::start_from_env(&pool, &objects)?;
    let promote = Promote::with_mlflow(config, pool, objects, mirror);
    runtime::serve("promote", move |trigger| {
        let promote = promote.clone();
        async move { promote.handle(trigger).await }
    })
    .await
}
