//! Bench only (no function depends on this crate): the libraries the design card named —
//! smartcore, linfa and statrs — fitted against appraise's own replacements on identical
//! matrices, for fit time, test RMSE and peak memory (`compare-libs`; see bench/README.md,
//! "The replaced libraries", and docs/decisions.md). xgboost-rs is not built here: its
//! measurement is in docs/decisions.md, and building it costs a C++ toolchain and minutes.
//!
//! - ridge: appraise's `fit_ridge` (StandardScaler + Ridge(alpha)), smartcore's
//!   `RidgeRegression` (standardizes by default), linfa's elastic net with `l1_ratio = 0`
//!   (`penalty = alpha / n` on standardized features; see [`jobs`]);
//! - random forest: appraise's `fit_forest` and smartcore's `RandomForestRegressor` with the
//!   same trees, depth 10, every feature at each split, one row per leaf and seed; appraise's
//!   grows trees on every core, smartcore's on one (it has no threads);
//! - boosted trees: appraise's only (for scale);
//! - two-sample KS per feature: appraise's `ks_two_sample` and statrs's `ks_twosample`.
//!
//! Cold build cost: see `COLD_BUILD` in bench/README.md's "The replaced libraries" (the
//! figures are measured there, with the machine's load).

pub mod data;
pub mod jobs;
pub mod report;
