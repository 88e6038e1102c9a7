//! Runs the comparison at smoke-test size through the real binary (every job in its own child
//! process) and checks what the numbers must say whatever the machine: each library's model
//! beats predicting the mean, the ridges that solve the same problem agree, and statrs's KS
//! statistic is appraise's.

use std::path::Path;

use appraise_bench_libs::{
    data::{Matrices, RowSource},
    jobs::{Job, Kind, Settings},
    report::Comparison,
};

#[test]
fn every_library_beats_the_mean_and_the_ridges_and_ks_statistics_agree() {
    let m = Matrices::load(&RowSource::Generated {
        rows: 3_000,
        seed: 42,
    })
    .unwrap();
    let settings = Settings {
        trees: 10,
        rounds: 10,
        ..Settings::default()
    };
    let exe = Path::new(env!("CARGO_BIN_EXE_compare-libs"));
    let comparison = Comparison::run(exe, &m, &settings, &Job::ALL).unwrap();
    println!("{}", comparison.markdown());

    for job in Job::ALL.into_iter().filter(|j| j.kind() == Kind::Model) {
        let rmse = comparison.metrics(job).unwrap().rmse;
        assert!(
            rmse < comparison.mean_rmse,
            "{job:?}: test RMSE {rmse} does not beat the mean's {}",
            comparison.mean_rmse
        );
    }
    // smartcore's ridge standardizes exactly as appraise's does and solves the same normal
    // equations: the same predictions up to rounding.
    let smartcore = comparison.largest_differences(Job::SmartcoreRidge).unwrap()[0];
    assert!(
        smartcore < 1e-6 * comparison.mean_rmse,
        "smartcore's ridge differs by up to {smartcore}"
    );
    // linfa's coordinate descent stops at its default tolerance (1e-4): close, not exact.
    let linfa = comparison.largest_differences(Job::LinfaRidge).unwrap()[0];
    assert!(
        linfa < 5e-3 * comparison.mean_rmse,
        "linfa's ridge differs by up to {linfa}"
    );
    for job in [Job::StatrsKs, Job::StatrsKsSample] {
        let [statistic, p_value] = comparison.largest_differences(job).unwrap()[..] else {
            unreachable!()
        };
        assert!(
            statistic < 1e-9,
            "{job:?}: statistics differ by up to {statistic}"
        );
        // Different p-value methods at these sizes (appraise exact, statrs asymptotic): close.
        assert!(
            p_value < 0.05,
            "{job:?}: p-values differ by up to {p_value}"
        );
    }
    for measured in &comparison.measured {
        assert!(
            measured.peak_mib >= measured.rss_before_mib && measured.rss_before_mib > 0.0,
            "{:?}: RSS before {} MiB, peak {} MiB",
            measured.job,
            measured.rss_before_mib,
            measured.peak_mib
        );
        assert_eq!(
            measured.values.len(),
            match measured.job.kind() {
                Kind::DriftTest => 2 * m.train_x.cols,
                Kind::Model => m.test_x.rows,
            }
        );
    }
}

#[test]
fn the_matrices_a_child_reads_are_the_ones_the_parent_made() {
    let m = Matrices::load(&RowSource::Generated { rows: 400, seed: 7 }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    m.save(&path).unwrap();
    assert_eq!(Matrices::read(&path).unwrap(), m);
    std::fs::write(&path, [0u8; 12]).unwrap();
    let error = format!("{:#}", Matrices::read(&path).unwrap_err());
    assert!(error.contains("truncated"), "{error}");
}
