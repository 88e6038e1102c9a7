//! The predictor: serves the production model over HTTP.
//!
//! - `POST /predict` prices one listing (the seed's body, see [`request`]) and answers
//!   `{predicted_price, model_version, model_rmse, prediction_id}`; `POST /predict/batch` prices
//!   `{"listings": [...]}` at once (with `"explain": true`, each price with its explanation).
//! - `POST /explain` takes the `/predict` body and answers the price taken apart: a base value
//!   and each input field's exact contribution ([`explanation`]).
//! - `GET /lineage/model/{version}` and `GET /lineage/prediction/{id}` (every answer carries
//!   a `prediction_id`, [`prediction_id`]) walk from a prediction or a model back to the data
//!   ([`lineage`]).
//! - `GET /health` (liveness) and `GET /ready` (503 until a model is loaded).
//! - `POST /models/{version}/promote` (bearer token) puts a model that was in production before
//!   back in production, as a promotion would ([`rollback`]); with `MLFLOW_TRACKING_URI` set,
//!   MLflow's `champion` alias follows, through `appraise_mlflow`'s queue.
//! - `POST /reload_model` (bearer token) re-reads the production pointer; so do `production/`
//!   object events on `POST /`, and a poll every few seconds ([`model_slot`]).
//! - `GET /metrics`: `predictions_total{model_version}`, `prediction_latency_seconds`,
//!   `explanation_latency_seconds` (`/explain`, and batches with `"explain": true`),
//!   `prediction_errors_total{reason}`, `prediction_input_drift{field}` and
//!   `prediction_input_drifted{field}` ([`input_drift`]), `model_rmse`, the inference log's counters, and the
//!   process's own (memory, CPU); and the pipeline's progress read from PostgreSQL
//!   ([`pipeline_gauges`]), for the alerts the stages that scale to zero cannot feed.
//! - The Open Inference Protocol v2 subset KServe clients use ([`oip`]).
//! - `GET /runs`: each batch's state in each stage, newest first ([`runs`]).
//! - `GET /drift/predictions`: the last predictions' inputs against the production model's
//!   training rows, per field ([`input_drift`]).
//! - `GET /openapi.json` describes all of it; `GET /` is the web page (prediction form with the
//!   price's waterfall, model history with feature importance and lineage, RMSE chart, drift
//!   reports, drift in served inputs, the runs grid), fed by `GET /api/models`,
//!   `GET /api/drift`, `GET /drift/predictions` and `GET /runs`.
//!
//! The process gives back the memory a large batch took once it is answered, by fixing
//! glibc's mmap threshold at start ([`memory`]).
//!
//! Every prediction is logged to PostgreSQL off the request path ([`inference_log`]). Bad input
//! gets a 4xx naming each field and the reason; the server never answers 5xx for it. Every
//! error is an [`ApiError`], which renders its status and JSON body itself.
//!
//! The [`routes`] parse requests ([`request`], [`oip`]) and answer from the [`Predictor`]
//! state ([`state`]), which holds the [`model_slot`] and the inference log.
//!
//! # On AWS Lambda
//!
//! The same routes are served through a function URL ([`lambda_router`]). Lambda runs one
//! request at a time per execution environment and freezes it between requests, so the two
//! background tasks of the server would stall, and the log could sit unwritten in a frozen
//! buffer until the environment is recycled and it is lost. Both are done inside the request
//! instead, which is simple and needs no Lambda extension:
//!
//! - the pointer poll is lazy: a request first re-reads `production/current.json` when
//!   `PREDICT_POLL_SECONDS` have passed since the last read ([`Predictor::poll_if_due`]; one
//!   small GET every few seconds of traffic, and the model itself is fetched only when the
//!   version changed). The model is loaded during the function's init, before the first request.
//!   No `production/` notification is routed to the predictor on Lambda: it would reach one
//!   environment out of many, and the lazy poll already covers all of them;
//! - the inference log is written before the answer leaves ([`inference_log::InferenceLog::flush`],
//!   one `COPY` of that request's rows): a few milliseconds per request, and nothing is lost
//!   when Lambda freezes or recycles the environment;
//! - a rollback's MLflow work is drained before its answer leaves, for as long as the
//!   invocation's deadline allows and at most a minute
//!   ([`appraise_mlflow::Mirror::drain_after_commit`]), and nothing retries it in the background: what fails waits for the next rollback's drain
//!   or train's and promote's, which mirror every kind of work.

pub mod config;
pub mod error;
pub mod explanation;
pub mod history;
pub mod inference_log;
pub mod input_drift;
pub mod lineage;
pub mod memory;
pub mod model_slot;
pub mod oip;
pub mod pipeline_gauges;
pub mod prediction_id;
pub mod request;
pub mod rollback;
pub mod routes;
pub mod runs;
pub mod state;

pub use error::ApiError;
pub use routes::{Prediction, lambda_router, router};
pub use state::Predictor;
