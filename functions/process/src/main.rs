//! The process function: `DATABASE_URL`, the S3 variables, the cleaning thresholds and
//! `STAGE_PENDING_WINDOW_SECS` in; clean batches out.

use std::time::Duration;

use appraise_core::{db, objects::ObjectStore, runtime, telemetry};
use appraise_process::{Process, config::ProcessConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("process");
    let config = ProcessConfig::from_env()?;
    let pool = db::pool_from_env().await?;
    db::connect_and_migrate(&pool, Duration::from_secs(30)).await?;
    let process = Process::from_config(config, pool, ObjectStore::from_env()?);
    runtime::serve("process", move |trigger| {
        let process = process.clone();
        async move { process.handle(trigger).await }
    })
    .await
}
