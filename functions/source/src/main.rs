//! The `source` binary: the stand-in batch API on `$PORT`.

use appraise_source::{Dataset, SourceConfig, SourceState, router};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logging first, so loading the dataset can report what it found.
    appraise_core::telemetry::init("source");
    let config = SourceConfig::from_env()?;
    let dataset = Dataset::from_config(&config.data)?;
    appraise_core::runtime::serve_http("source", router(SourceState::new(dataset))).await
}
