//! What every appraise function shares.
//!
//! - [`auth`]: bearer-token checks in constant time;
//! - [`catch_up`]: announcing again the work a lost event left undone;
//! - [`clean`]: clean listings as training and evaluation read them, and the split;
//! - [`config`]: typed configuration from environment variables, with errors naming the variable;
//! - [`db`]: the PostgreSQL pool (TLS by rustls) and the embedded migrations;
//! - [`drift`]: drift statistics (KS with an effect floor, PSI) that train and the predictor share;
//! - [`deadline`]: how long the current invocation may still run;
//! - [`objects`]: the S3 bucket (AWS S3, MinIO, or the harness's embedded server);
//! - [`outbox`]: objects written only after the transaction that announces them commits;
//! - [`events`]: every platform's event shapes turned into one [`events::Trigger`];
//! - [`features`]: the feature transformation fitted at training and applied at serving;
//! - [`keys`]: the object keys functions must agree on;
//! - [`model`]: fitted models and their artifacts, for scoring and serving;
//! - [`platform`]: whether the process runs on Lambda, which the runtime and telemetry both ask;
//! - [`runtime`]: serving a function on Lambda or over HTTP, unchanged;
//! - [`lambda_streaming`]: an HTTP API whose Lambda answers are streamed (beyond 6 MB);
//! - [`telemetry`]: structured logs and Prometheus metrics;
//! - [`emf`]: metrics as CloudWatch embedded metric format, for Lambda;
//! - [`listing`]: the twelve fields of a listing as the batch API sends them;
//! - [`reports`]: what each stage answers for one trigger, typed for the stages and the harness;
//! - [`runs`]: each batch's state in each stage, recorded as the stages work (`GET /runs`);
//! - [`rng`]: the seeded generator behind every reproducible random choice;
//! - [`secrets`]: secret variables read at start from the environment, Secrets Manager or SSM.

pub mod auth;
pub mod catch_up;
pub mod clean;
pub mod config;
pub mod db;
pub mod deadline;
pub mod drift;
pub mod emf;
pub mod events;
pub mod features;
pub mod keys;
pub mod lambda_streaming;
pub mod listing;
pub mod model;
pub mod objects;
pub mod outbox;
pub mod platform;
pub mod reports;
pub mod rng;
pub mod runs;
pub mod runtime;
pub mod secrets;
pub mod telemetry;
