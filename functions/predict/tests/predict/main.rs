//! The predictor's tests, one binary: its HTTP API against a real PostgreSQL and S3 (`api`) and its web page in headless Chromium (`browser`); models come from the real train and promote stages (`support`).

mod api;
mod browser;
mod support;
