//! The comparison: each job in a child process of its own (this binary run again with the
//! hidden `--child` arguments), its peak memory read from `/proc/self/status` in that child,
//! and the markdown table.

use std::{fmt::Write as _, path::Path, process::Command};

use anyhow::{Context, bail, ensure};
use appraise_core::model::metrics::Metrics;

use crate::{
    data::Matrices,
    jobs::{self, Job, Kind, Settings},
};

/// What one child measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub job: Job,
    pub seconds: f64,
    /// CPU seconds of the fit, every thread's.
    pub cpu_seconds: f64,
    /// `VmRSS` once the matrices were read, before the fit (MiB).
    pub rss_before_mib: f64,
    /// `VmHWM` at the end of the child: the peak resident set of the whole child (MiB).
    pub peak_mib: f64,
    pub values: Vec<f64>,
}

/// A `/proc/self/status` field in MiB (`None` off Linux).
pub fn proc_status_mib(field: &str) -> Option<f64> {
    appraise_core::proc_stats::status_bytes("self", field).map(|bytes| bytes as f64 / 1_048_576.0)
}

/// The child's side: reads the matrices, runs `job`, writes `seconds cpu_seconds rss_before
/// peak` and then
/// one value per line to `out`.
pub fn run_child(job: Job, matrices: &Path, settings: &Settings, out: &Path) -> anyhow::Result<()> {
    let m = Matrices::read(matrices)?;
    let rss_before = proc_status_mib("VmRSS").unwrap_or(f64::NAN);
    let output = jobs::run(job, &m, settings)?;
    let peak = proc_status_mib("VmHWM").unwrap_or(f64::NAN);
    let mut text = format!(
        "{} {} {rss_before} {peak}\n",
        output.seconds, output.cpu_seconds
    );
    for value in &output.values {
        writeln!(text, "{value}")?;
    }
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))
}

/// Runs `job` as a child of `exe` (this binary) on the saved matrices.
pub fn measure(
    exe: &Path,
    job: Job,
    matrices: &Path,
    settings: &Settings,
) -> anyhow::Result<Measured> {
    let out = matrices.with_extension(job.arg());
    let status = Command::new(exe)
        .arg("--child")
        .arg(job.arg())
        .arg("--matrices")
        .arg(matrices)
        .arg("--out")
        .arg(&out)
        .arg("--alpha")
        .arg(settings.alpha.to_string())
        .arg("--trees")
        .arg(settings.trees.to_string())
        .arg("--rounds")
        .arg(settings.rounds.to_string())
        .status()
        .with_context(|| format!("starting {}", exe.display()))?;
    ensure!(status.success(), "the {} child failed: {status}", job.arg());
    let text =
        std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    let mut lines = text.lines();
    let head: Vec<f64> = lines
        .next()
        .unwrap_or_default()
        .split(' ')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: first line", out.display()))?;
    let [seconds, cpu_seconds, rss_before_mib, peak_mib] = head[..] else {
        bail!("{}: first line needs four numbers", out.display());
    };
    let values = lines
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: values", out.display()))?;
    Ok(Measured {
        job,
        seconds,
        cpu_seconds,
        rss_before_mib,
        peak_mib,
        values,
    })
}

/// Every job measured on one set of matrices.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub train_rows: usize,
    pub test_rows: usize,
    pub features: usize,
    pub settings: Settings,
    /// Test RMSE of predicting the training mean for every row.
    pub mean_rmse: f64,
    pub test_y: Vec<f64>,
    pub measured: Vec<Measured>,
}

impl Comparison {
    /// Saves `m` in a temporary directory and measures each of `jobs` in its own child.
    pub fn run(
        exe: &Path,
        m: &Matrices,
        settings: &Settings,
        jobs: &[Job],
    ) -> anyhow::Result<Comparison> {
        let dir = tempfile::tempdir().context("a temporary directory")?;
        let path = dir.path().join("matrices");
        m.save(&path)?;
        let measured = jobs
            .iter()
            .map(|&job| measure(exe, job, &path, settings))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mean = m.train_y.iter().sum::<f64>() / m.train_y.len() as f64;
        let mean_rmse = Metrics::compute(&m.test_y, &vec![mean; m.test_y.len()])
            .context("no test rows")?
            .rmse;
        Ok(Comparison {
            train_rows: m.train_x.rows,
            test_rows: m.test_x.rows,
            features: m.train_x.cols,
            settings: *settings,
            mean_rmse,
            test_y: m.test_y.clone(),
            measured,
        })
    }

    pub fn get(&self, job: Job) -> Option<&Measured> {
        self.measured.iter().find(|m| m.job == job)
    }

    /// Test metrics of a model job.
    pub fn metrics(&self, job: Job) -> Option<Metrics> {
        let measured = self.get(job)?;
        (job.kind() == Kind::Model)
            .then(|| Metrics::compute(&self.test_y, &measured.values))
            .flatten()
    }

    /// The largest absolute difference between `job`'s values and appraise's for the same
    /// model (predictions in dollars; for the KS test, `[largest |ΔD|, largest |Δp|]` over the
    /// features both computed).
    pub fn largest_differences(&self, job: Job) -> Option<Vec<f64>> {
        let (ours, theirs) = (self.get(job.appraise_counterpart())?, self.get(job)?);
        let stride = match job.kind() {
            Kind::Model => 1,
            Kind::DriftTest => 2,
        };
        let mut largest = vec![0.0f64; stride];
        for (at, (a, b)) in ours.values.iter().zip(&theirs.values).enumerate() {
            if a.is_finite() && b.is_finite() {
                largest[at % stride] = largest[at % stride].max((a - b).abs());
            }
        }
        Some(largest)
    }

    /// The two markdown tables (models, then drift tests).
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "{} train rows, {} test rows, {} features; {} forest trees, {} boosting rounds, \
             ridge alpha {}. Predicting the training mean: test RMSE {:.0}.\n\n",
            self.train_rows,
            self.test_rows,
            self.features,
            self.settings.trees,
            self.settings.rounds,
            self.settings.alpha,
            self.mean_rmse
        );
        out.push_str(
            "| library | model | fit s | fit CPU s | test RMSE | R² | RSS before MiB | peak RSS MiB | max abs Δ prediction vs appraise (ridge) |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for m in self.measured.iter().filter(|m| m.job.kind() == Kind::Model) {
            let metrics = self.metrics(m.job);
            // Only the ridges solve one problem; different forests differ by design.
            let difference = match (m.job.library(), m.job.model()) {
                ("appraise", _) | (_, "random forest" | "boosted trees") => "—".to_owned(),
                _ => self
                    .largest_differences(m.job)
                    .map_or("—".to_owned(), |d| format!("{:.3e}", d[0])),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {:.2} | {} | {} | {:.1} | {:.1} | {difference} |",
                m.job.library(),
                m.job.model(),
                m.seconds,
                m.cpu_seconds,
                metrics.map_or("—".to_owned(), |x| format!("{:.0}", x.rmse)),
                metrics.map_or("—".to_owned(), |x| format!("{:.4}", x.r2)),
                m.rss_before_mib,
                m.peak_mib,
            );
        }
        let tests: Vec<_> = self
            .measured
            .iter()
            .filter(|m| m.job.kind() == Kind::DriftTest)
            .collect();
        if !tests.is_empty() {
            out.push_str(
                "\nKS test of each feature, train rows against test rows:\n\n\
                 | library | test | seconds, all features | CPU s | features tested | max abs ΔD vs appraise | max abs Δp vs appraise | RSS before MiB | peak RSS MiB |\n\
                 |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
            );
            for m in tests {
                let tested = m.values.chunks(2).filter(|v| v[0].is_finite()).count();
                let (d, p) = match (m.job.library(), self.largest_differences(m.job)) {
                    ("appraise", _) | (_, None) => ("—".to_owned(), "—".to_owned()),
                    (_, Some(d)) => (format!("{:.3e}", d[0]), format!("{:.3e}", d[1])),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.4} | {:.2} | {tested} | {d} | {p} | {:.1} | {:.1} |",
                    m.job.library(),
                    m.job.model(),
                    m.seconds,
                    m.cpu_seconds,
                    m.rss_before_mib,
                    m.peak_mib,
                );
            }
        }
        out
    }
}
