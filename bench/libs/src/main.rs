//! `compare-libs`: fits smartcore's, linfa's and appraise's models (and runs statrs's and
//! appraise's KS tests) on identical matrices, each in a child process of its own, and prints
//! a markdown table of fit seconds, test RMSE, R² and peak RSS (see the crate documentation).
//!
//! `compare-libs --rows 100000` generates the rows; `compare-libs --train T.csv --test S.csv`
//! reads realtor-format CSVs (`bench/split_for_peer.py`). `--quick` is the smoke test's size.

use std::path::PathBuf;

use anyhow::Context;
use appraise_bench_libs::{
    data::{Matrices, RowSource},
    jobs::{Job, Settings},
    report::{Comparison, run_child},
};
use clap::Parser;

#[derive(Parser)]
#[command(
    about = "Fits the design card's libraries against appraise's own code on identical matrices"
)]
struct Args {
    /// Generate this many clean listings (the source function's synthetic data).
    #[arg(long, conflicts_with_all = ["train", "test"])]
    rows: Option<usize>,
    /// Realtor-format training CSV (with --test).
    #[arg(long, requires = "test")]
    train: Option<PathBuf>,
    /// Realtor-format test CSV (with --train).
    #[arg(long, requires = "train")]
    test: Option<PathBuf>,
    /// Seed of the generated rows and of their split.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Smoke-test size: 3,000 rows unless --rows or CSVs say otherwise, 10 trees, 10 rounds.
    #[arg(long)]
    quick: bool,
    /// Forest trees (default 100, 10 with --quick).
    #[arg(long)]
    trees: Option<usize>,
    /// Boosting rounds (default 100, 10 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Ridge's alpha on standardized features.
    #[arg(long)]
    alpha: Option<f64>,
    /// Only these jobs (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    jobs: Vec<Job>,
    /// Internal: run one job in this process (the parent re-executes itself with it).
    #[arg(long, hide = true, value_enum, requires_all = ["matrices", "out"])]
    child: Option<Job>,
    #[arg(long, hide = true)]
    matrices: Option<PathBuf>,
    #[arg(long, hide = true)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let defaults = Settings::default();
    let settings = Settings {
        alpha: args.alpha.unwrap_or(defaults.alpha),
        trees: args
            .trees
            .unwrap_or(if args.quick { 10 } else { defaults.trees }),
        rounds: args
            .rounds
            .unwrap_or(if args.quick { 10 } else { defaults.rounds }),
    };
    if let (Some(job), Some(matrices), Some(out)) = (args.child, &args.matrices, &args.out) {
        return run_child(job, matrices, &settings, out);
    }
    let source = match (args.train, args.test, args.rows) {
        (Some(train), Some(test), _) => RowSource::Csv { train, test },
        (_, _, Some(rows)) => RowSource::Generated {
            rows,
            seed: args.seed,
        },
        _ if args.quick => RowSource::Generated {
            rows: 3_000,
            seed: args.seed,
        },
        _ => anyhow::bail!("give --rows N, or --train and --test CSVs (or --quick)"),
    };
    let m = Matrices::load(&source)?;
    let jobs = if args.jobs.is_empty() {
        Job::ALL.to_vec()
    } else {
        args.jobs
    };
    let exe = std::env::current_exe().context("finding this binary")?;
    let comparison = Comparison::run(&exe, &m, &settings, &jobs)?;
    print!("{}", comparison.markdown());
    Ok(())
}
