//! One job per (library, model): each fits on the [`Matrices`] and returns its predictions on
//! the test rows (or, for the drift tests, the statistic and p-value per feature), with the
//! seconds the library's own call took. The parent runs every job in a child process of its
//! own ([`crate::report`]), so each job's peak memory is its own.

use std::time::Instant;

use anyhow::{Context, anyhow};
use appraise_core::{
    drift::ks::ks_two_sample,
    model::{Matrix, TrainedModel, boosted::BoostingParams},
};
use appraise_train::{
    config::TrainConfig,
    fit::{boosting::fit_boosting, forest::fit_forest, ridge::fit_ridge},
};
use linfa::traits::{Fit, Predict};
use smartcore::{
    ensemble::random_forest_regressor::{RandomForestRegressor, RandomForestRegressorParameters},
    linalg::basic::matrix::DenseMatrix,
    linear::ridge_regression::{RidgeRegression, RidgeRegressionParameters},
};
use statrs::stats_tests::{
    NaNPolicy,
    ks_test::{KSTwoSampleAlternativeMethod, ks_twosample},
};

use crate::data::Matrices;

/// A (library, model) pair to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Job {
    AppraiseRidge,
    SmartcoreRidge,
    LinfaRidge,
    AppraiseForest,
    SmartcoreForest,
    AppraiseBoosting,
    AppraiseKs,
    StatrsKs,
    /// The KS tests on the first [`DRIFT_SAMPLE`] values of each side: the drift check's
    /// default sample size, where appraise's p-value is exact.
    AppraiseKsSample,
    StatrsKsSample,
}

/// The drift check's default sample size per side (`DRIFT_MAX_SAMPLE`).
pub const DRIFT_SAMPLE: usize = appraise_core::drift::ks::EXACT_MAX_SAMPLE;

/// What a job produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Predictions on the test rows.
    Model,
    /// `[D, p]` per feature column, train side against test side (NaN where not computed).
    DriftTest,
}

impl Job {
    pub const ALL: [Job; 10] = [
        Job::AppraiseRidge,
        Job::SmartcoreRidge,
        Job::LinfaRidge,
        Job::AppraiseForest,
        Job::SmartcoreForest,
        Job::AppraiseBoosting,
        Job::AppraiseKs,
        Job::StatrsKs,
        Job::AppraiseKsSample,
        Job::StatrsKsSample,
    ];

    pub fn library(self) -> &'static str {
        match self {
            Job::AppraiseRidge
            | Job::AppraiseForest
            | Job::AppraiseBoosting
            | Job::AppraiseKs
            | Job::AppraiseKsSample => "appraise",
            Job::SmartcoreRidge | Job::SmartcoreForest => "smartcore 0.7",
            Job::LinfaRidge => "linfa-elasticnet 0.8",
            Job::StatrsKs | Job::StatrsKsSample => "statrs 0.19",
        }
    }

    pub fn model(self) -> &'static str {
        match self {
            Job::AppraiseRidge | Job::SmartcoreRidge | Job::LinfaRidge => "ridge",
            Job::AppraiseForest | Job::SmartcoreForest => "random forest",
            Job::AppraiseBoosting => "boosted trees",
            Job::AppraiseKs | Job::StatrsKs => "two-sample KS",
            Job::AppraiseKsSample | Job::StatrsKsSample => "two-sample KS, 10,000 a side",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Job::AppraiseKs | Job::StatrsKs | Job::AppraiseKsSample | Job::StatrsKsSample => {
                Kind::DriftTest
            }
            _ => Kind::Model,
        }
    }

    /// appraise's own job for the same model (itself for appraise's jobs).
    pub fn appraise_counterpart(self) -> Job {
        match self.model() {
            "ridge" => Job::AppraiseRidge,
            "random forest" => Job::AppraiseForest,
            "two-sample KS" => Job::AppraiseKs,
            "two-sample KS, 10,000 a side" => Job::AppraiseKsSample,
            _ => self,
        }
    }

    /// The name on the command line (`--child`).
    pub fn arg(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .expect("no job is skipped")
            .get_name()
            .to_owned()
    }
}

/// The model settings every library gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Ridge's penalty on standardized features (train's `ridge_alpha`, 1).
    pub alpha: f64,
    /// Forest trees (train's 100; fewer in `--quick`).
    pub trees: usize,
    /// Boosting rounds (train's 100; fewer in `--quick`).
    pub rounds: usize,
}

impl Default for Settings {
    fn default() -> Self {
        let train = TrainConfig::default();
        Settings {
            alpha: train.ridge_alpha,
            trees: train.forest.trees,
            rounds: train.boosting.rounds,
        }
    }
}

/// A job's result: the seconds its fit (or test) took, on the clock and in CPU time of all the
/// process's threads, and its values (see [`Kind`]).
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutput {
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub values: Vec<f64>,
}

/// Wall-clock and CPU time from one point. CPU time is the process's user + system time from
/// `/proc/self/stat` (every thread's, in 1/100 s ticks; NaN off Linux): on a shared machine
/// it says what a fit cost better than the clock does.
struct Stopwatch {
    wall: Instant,
    cpu: f64,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch {
            wall: Instant::now(),
            cpu: process_cpu_seconds(),
        }
    }

    /// Wall and CPU seconds since the start (what comes after, e.g. predicting, is not timed).
    fn stop(&self) -> Timed {
        Timed {
            seconds: self.wall.elapsed().as_secs_f64(),
            cpu_seconds: process_cpu_seconds() - self.cpu,
        }
    }
}

/// A fit's [`Stopwatch`] reading.
struct Timed {
    seconds: f64,
    cpu_seconds: f64,
}

impl Timed {
    /// The job's output: these times and the test predictions.
    fn output(self, values: Vec<f64>) -> JobOutput {
        JobOutput {
            seconds: self.seconds,
            cpu_seconds: self.cpu_seconds,
            values,
        }
    }
}

fn process_cpu_seconds() -> f64 {
    appraise_core::proc_stats::cpu_seconds("self").unwrap_or(f64::NAN)
}

/// Runs `job` in this process.
pub fn run(job: Job, m: &Matrices, settings: &Settings) -> anyhow::Result<JobOutput> {
    match job {
        Job::AppraiseRidge => appraise_model(m, || {
            Ok(TrainedModel::Ridge(fit_ridge(
                &m.train_x,
                &m.train_y,
                settings.alpha,
            )?))
        }),
        Job::AppraiseForest => appraise_model(m, || {
            let params = appraise_core::model::forest::ForestParams {
                trees: settings.trees,
                ..TrainConfig::default().forest
            };
            Ok(TrainedModel::RandomForest(fit_forest(
                &m.train_x, &m.train_y, params,
            )?))
        }),
        Job::AppraiseBoosting => appraise_model(m, || {
            let params = BoostingParams {
                rounds: settings.rounds,
                ..TrainConfig::default().boosting
            };
            Ok(TrainedModel::Xgboost(
                fit_boosting(&m.train_x, &m.train_y, params)?.model,
            ))
        }),
        Job::SmartcoreRidge => smartcore_ridge(m, settings.alpha),
        Job::SmartcoreForest => smartcore_forest(m, settings.trees),
        Job::LinfaRidge => linfa_ridge(m, settings.alpha),
        Job::AppraiseKs => ks_per_feature(m, usize::MAX, appraise_ks),
        Job::StatrsKs => ks_per_feature(m, usize::MAX, statrs_ks),
        Job::AppraiseKsSample => ks_per_feature(m, DRIFT_SAMPLE, appraise_ks),
        Job::StatrsKsSample => ks_per_feature(m, DRIFT_SAMPLE, statrs_ks),
    }
}

fn appraise_ks(a: &[f64], b: &[f64]) -> anyhow::Result<[f64; 2]> {
    let test = ks_two_sample(a, b)?;
    Ok([test.statistic, test.p_value])
}

/// statrs's exact p-value where it offers one (m·n ≤ 10,000), else its asymptotic one.
fn statrs_ks(a: &[f64], b: &[f64]) -> anyhow::Result<[f64; 2]> {
    let method = if a.len() * b.len() <= 10_000 {
        KSTwoSampleAlternativeMethod::TwoSidedExact
    } else {
        KSTwoSampleAlternativeMethod::TwoSidedAsymptotic
    };
    let (statistic, p_value) = ks_twosample(a.to_vec(), b.to_vec(), method, NaNPolicy::Error)
        .map_err(|e| anyhow!("statrs ks_twosample: {e:?}"))?;
    Ok([statistic, p_value])
}

fn appraise_model(
    m: &Matrices,
    fit: impl FnOnce() -> anyhow::Result<TrainedModel>,
) -> anyhow::Result<JobOutput> {
    let watch = Stopwatch::start();
    let model = fit()?;
    let timed = watch.stop();
    Ok(timed.output(model.predict(&m.test_x)))
}

/// Columns that are not constant on the training rows. smartcore's ridge refuses a constant
/// column ("Cannot rescale constant column"); appraise's gives it weight 0, so leaving it out
/// fits the same model.
fn varying_columns(x: &Matrix) -> Vec<usize> {
    (0..x.cols)
        .filter(|&f| {
            let first = x.data[f];
            (0..x.rows).any(|i| x.data[i * x.cols + f] != first)
        })
        .collect()
}

fn dense(x: &Matrix, columns: &[usize]) -> anyhow::Result<DenseMatrix<f64>> {
    let mut values = Vec::with_capacity(x.rows * columns.len());
    for i in 0..x.rows {
        values.extend(columns.iter().map(|&f| x.data[i * x.cols + f]));
    }
    DenseMatrix::new(x.rows, columns.len(), values, false).map_err(|e| anyhow!("smartcore: {e}"))
}

fn smartcore_ridge(m: &Matrices, alpha: f64) -> anyhow::Result<JobOutput> {
    let columns = varying_columns(&m.train_x);
    let (x, test_x) = (dense(&m.train_x, &columns)?, dense(&m.test_x, &columns)?);
    let y = m.train_y.clone();
    let watch = Stopwatch::start();
    // `with_normalize(true)` is smartcore's default, spelled out: it standardizes by the
    // population standard deviation, as scikit-learn's StandardScaler and appraise do.
    let params = RidgeRegressionParameters::default()
        .with_alpha(alpha)
        .with_normalize(true);
    let model = RidgeRegression::fit(&x, &y, params).map_err(|e| anyhow!("smartcore: {e}"))?;
    let timed = watch.stop();
    let values = model
        .predict(&test_x)
        .map_err(|e| anyhow!("smartcore: {e}"))?;
    Ok(timed.output(values))
}

fn smartcore_forest(m: &Matrices, trees: usize) -> anyhow::Result<JobOutput> {
    let appraise = TrainConfig::default().forest;
    let all: Vec<usize> = (0..m.train_x.cols).collect();
    let (x, test_x) = (dense(&m.train_x, &all)?, dense(&m.test_x, &all)?);
    let y = m.train_y.clone();
    let watch = Stopwatch::start();
    let params = RandomForestRegressorParameters::default()
        .with_n_trees(trees)
        .with_max_depth(u16::try_from(appraise.max_depth).context("max_depth")?)
        .with_m(m.train_x.cols)
        .with_min_samples_leaf(appraise.min_samples_leaf)
        .with_seed(appraise.seed);
    let model: RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>> =
        RandomForestRegressor::fit(&x, &y, params).map_err(|e| anyhow!("smartcore: {e}"))?;
    let timed = watch.stop();
    let values = model
        .predict(&test_x)
        .map_err(|e| anyhow!("smartcore: {e}"))?;
    Ok(timed.output(values))
}

/// linfa's ridge is its elastic net with `l1_ratio = 0`, which minimizes
/// `1/(2n)·‖y − b − Xw‖² + ½·penalty·‖w‖²` and centres `y` but not `X`. Multiplied by `2n`
/// this is `‖y − b − Xw‖² + n·penalty·‖w‖²`, scikit-learn's and appraise's ridge with
/// `alpha = n·penalty`: so `penalty = alpha / n`, on `X` standardized here (training means,
/// population standard deviations, a constant column left unscaled, as appraise does), which
/// also centres it. The standardization is inside the timed region: the other two ridges do it
/// inside their fit.
fn linfa_ridge(m: &Matrices, alpha: f64) -> anyhow::Result<JobOutput> {
    let (x, n) = (&m.train_x, m.train_x.rows as f64);
    let watch = Stopwatch::start();
    let mut means = vec![0.0; x.cols];
    let mut scales = vec![0.0; x.cols];
    for i in 0..x.rows {
        for (mean, value) in means.iter_mut().zip(x.row(i)) {
            *mean += value / n;
        }
    }
    for i in 0..x.rows {
        for ((scale, value), mean) in scales.iter_mut().zip(x.row(i)).zip(&means) {
            *scale += (value - mean) * (value - mean) / n;
        }
    }
    let scales: Vec<f64> = scales
        .into_iter()
        .map(|v| if v > 0.0 { v.sqrt() } else { 1.0 })
        .collect();
    let standardize = |x: &Matrix| {
        let data = (0..x.rows * x.cols)
            .map(|at| (x.data[at] - means[at % x.cols]) / scales[at % x.cols])
            .collect();
        ndarray::Array2::from_shape_vec((x.rows, x.cols), data)
    };
    let dataset = linfa::Dataset::new(
        standardize(x)?,
        ndarray::Array1::from_vec(m.train_y.clone()),
    );
    let model = linfa_elasticnet::ElasticNet::params()
        .l1_ratio(0.0)
        .penalty(alpha / n)
        .fit(&dataset)
        .map_err(|e| anyhow!("linfa: {e}"))?;
    let timed = watch.stop();
    let values = model.predict(&standardize(&m.test_x)?).to_vec();
    Ok(timed.output(values))
}

/// The test on every feature column, the first `limit` training rows against the first
/// `limit` test rows. Columns where the two sides have identical distributions (`D = 0` by
/// appraise's test) get NaN and are not run: statrs 0.19 never returns on them (DESIGN.md
/// §10). That check is outside the timed region.
fn ks_per_feature(
    m: &Matrices,
    limit: usize,
    test: impl Fn(&[f64], &[f64]) -> anyhow::Result<[f64; 2]>,
) -> anyhow::Result<JobOutput> {
    let column = |x: &Matrix, f: usize| -> Vec<f64> {
        (0..x.rows.min(limit))
            .map(|i| x.data[i * x.cols + f])
            .collect()
    };
    let columns: Vec<(Vec<f64>, Vec<f64>)> = (0..m.train_x.cols)
        .map(|f| (column(&m.train_x, f), column(&m.test_x, f)))
        .collect();
    let mut runnable = Vec::with_capacity(columns.len());
    for (a, b) in &columns {
        runnable.push(ks_two_sample(a, b)?.statistic > 0.0);
    }
    let watch = Stopwatch::start();
    let mut values = Vec::with_capacity(2 * columns.len());
    for ((a, b), run) in columns.iter().zip(runnable) {
        values.extend(if run { test(a, b)? } else { [f64::NAN; 2] });
    }
    let timed = watch.stop();
    Ok(timed.output(values))
}
