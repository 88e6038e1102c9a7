//! The `source` binary: the stand-in batch API on `$PORT`, or on Lambda behind a function URL
//! in `RESPONSE_STREAM` mode (its batches are far above a buffered URL's 6 MB).

use appraise_source::{Dataset, SourceConfig, SourceState, router};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logging first, so loading the dataset can report what it found.
    appraise_core::telemetry::init("source");
    let config = SourceConfig::from_env()?;
    let dataset = Dataset::from_config(&config.data)?;
    let router = router(SourceState::new(dataset));
    appraise_core::lambda_streaming::serve_http_streaming("source", router).await
}
