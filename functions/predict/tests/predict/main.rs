//! The predictor's tests, one binary: its HTTP API against a real PostgreSQL and S3 (`api`), its web page in headless Chromium (`browser`) and its pipeline gauges (`pipeline`); models come from the real train and promote stages (`support`).

mod api;
mod browser;
mod pipeline;
mod support;
