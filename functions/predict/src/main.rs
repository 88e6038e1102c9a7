//! The predict function: `DATABASE_URL`, the S3 variables and the `PREDICT_*` settings in;
//! an HTTP API on `$PORT` out, or, on Lambda (`AWS_LAMBDA_RUNTIME_API` set), the same API behind
//! a function URL. With `MLFLOW_TRACKING_URI` set, rollbacks are mirrored to MLflow too.

use std::time::Duration;

use appraise_core::{db, objects::ObjectStore, platform, runtime, telemetry};
use appraise_mlflow::Mirror;
use appraise_predict::{
    Predictor, config::PredictConfig, input_drift, lambda_router, memory, pipeline_gauges, router,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before any request: large batches' buffers then go back to the system when freed.
    let bounded = memory::bound_allocator_retention();
    telemetry::init("predict");
    if !bounded {
        tracing::debug!("the allocator's mmap threshold was left as it is (not glibc)");
    }
    let config = PredictConfig::from_env().await?;
    let pool = db::pool_from_env().await?;
    let objects = ObjectStore::from_env()?;
    // Rollbacks are queued for MLflow and drained after their commit (inside the request on
    // Lambda); off Lambda, what waits is also retried every MLFLOW_RETRY_SECS, as in train
    // and promote.
    let mirror = Mirror::start_from_env(&pool, &objects)?;
    if platform::on_lambda() {
        // Nothing runs between invocations on Lambda: migrate and load the model during init,
        // then poll and write the inference log inside each request (see the crate docs).
        if let Err(error) = db::connect_and_migrate(&pool, Duration::from_secs(5)).await {
            tracing::error!(error = format!("{error:#}"), "database unavailable");
        }
        let predictor = Predictor::for_lambda(config, pool, objects, mirror);
        predictor.poll_if_due().await;
        return runtime::serve_http("predict", lambda_router(predictor)).await;
    }
    // Serve at once: the model loads in the background (readiness says when), and the
    // migrations the inference log needs run alongside.
    tokio::spawn({
        let pool = pool.clone();
        async move {
            if let Err(error) = db::connect_and_migrate(&pool, Duration::from_secs(60)).await {
                tracing::error!(error = format!("{error:#}"), "database unavailable");
            }
        }
    });
    pipeline_gauges::export_forever(pool.clone(), config.pipeline_gauges_interval);
    input_drift::export_forever(
        pool.clone(),
        config.input_drift.clone(),
        config.input_drift_interval,
    );
    let predictor = Predictor::new(config, pool, objects, mirror);
    predictor.watch();
    runtime::serve_http("predict", router(predictor)).await
}
