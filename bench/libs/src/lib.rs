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
//! Every job runs in a child process of its own (this binary re-executed with hidden
//! arguments), which reports its fit's wall-clock and CPU seconds, `VmRSS` before the fit and
//! `VmHWM` at its end (see [`report`]).
//!
//! Cold build cost of the four libraries (smartcore, linfa, linfa-elasticnet and statrs,
//! with ndarray 0.16): 40 crates with their dependencies, 22 of them new to the workspace
//! (ndarray, matrixmultiply, smartcore, linfa, linfa-linalg, sprs, statrs, num, rand 0.8, …);
//! the other 18 (syn, num-traits, thiserror 2, rand 0.10, …) the functions already build.
//! Measured 2026-12-01 on the shared 2-core machine (load average 7–10) in a scratch crate with
//! the workspace's lock file and profiles and a target directory of its own, so all 40 built:
//! debug 1 min 13 s (45 CPU s), release 46 s (28 CPU s). In this workspace,
//! `cargo build -p appraise-bench-libs` with the functions already built took 2 min 15 s (48 CPU
//! s), which includes rebuilding the workspace's own crates that it depends on.

pub mod data;
pub mod jobs;
pub mod report;
