//! The ingest function: `SOURCE_URL`, `DATABASE_URL`, the S3 variables and
//! `CATCH_UP_AFTER_SECS` in; batches, and the announcements lost events left unanswered, out.

use std::time::Duration;

use appraise_core::{catch_up::CatchUpConfig, db, objects::ObjectStore, runtime, telemetry};
use appraise_ingest::{Ingest, config::IngestConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("ingest");
    let config = IngestConfig::from_env()?;
    let pool = db::pool_from_env().await?;
    db::connect_and_migrate(&pool, Duration::from_secs(30)).await?;
    let ingest = Ingest::new(config, pool, ObjectStore::from_env()?)?
        .with_catch_up(CatchUpConfig::from_env()?);
    runtime::serve("ingest", move |trigger| {
        let ingest = ingest.clone();
        async move { ingest.handle(trigger).await }
    })
    .await
}
