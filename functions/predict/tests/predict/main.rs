//! The predictor's tests, one binary: its HTTP API against a real PostgreSQL and S3 (`api`), its web page in headless Chromium (`browser`), its pipeline gauges (`pipeline`), its OpenAPI document (`openapi`), the stage runs and `GET /runs` (`runs`), drift in served inputs (`input_drift`), memory returned after large batches (`memory`), rollbacks mirrored to a real MLflow server (`mlflow`), and its secrets from Secrets Manager and SSM (`secrets`); models come from the real train and promote stages (`support`).

mod api;
mod browser;
mod input_drift;
mod memory;
mod mlflow;
mod openapi;
mod pipeline;
mod runs;
mod secrets;
mod support;
