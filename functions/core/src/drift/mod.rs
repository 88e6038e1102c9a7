//! Drift detection: has the distribution of a feature moved between a *reference* sample and a
//! *current* one? The statistics live here, in core, because two stages use them: train compares
//! the rows the production model was trained on with the newly cleaned rows (and stores the
//! report), the predictor compares those training rows with the inputs it has served
//! (`GET /drift/predictions`). Each stage chooses what it compares; the tests, the thresholds
//! and the `DRIFT_*` settings are the same for both.
//!
//! DESIGN §6 asks for a two-sample Kolmogorov–Smirnov (KS) test per numeric feature, a stored
//! report (statistic and p-value per feature) and a decision whose thresholds are configuration.
//! This module is the policy, [`drift_report`]; the test itself is [`ks`] (SciPy's `ks_2samp`),
//! and [`kolmogorov`] the distribution its asymptotic p-value comes from (SciPy's `kstwo`).
//! Categorical features get the population stability index ([`mod@psi`]), with `psi_min` as their
//! floor ([`DriftReport::with_categorical`]).
//!
//! [`drift_report`] applies the test to every feature and decides. With large samples any
//! harmless shift gets a tiny p-value, so a feature counts as drifted only when
//! `p < p_value_threshold` **and** `D ≥ min_statistic` (an effect-size floor), and each side is
//! first cut down to at most `max_sample` values by a seeded, deterministic subsample (the same
//! inputs and seed always give the same report). NaN values are treated as missing and dropped
//! before the test (infinities are kept: they are ordinary extreme values for a rank-based
//! test). A feature with no values left on one side cannot be tested: it is reported with no
//! statistic and no p-value and is never counted as drifted, so one empty column does not stop
//! the report for the others.

pub mod kolmogorov;
pub mod ks;
pub mod psi;

use std::collections::HashSet;

use crate::rng::{SplitMix64, sample_indices};
use serde::{Deserialize, Serialize};

pub use ks::{EXACT_MAX_SAMPLE, KsMethod, KsTest, ks_two_sample};
pub use psi::psi;

/// Why a test or a report could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriftError {
    #[error("the {sample} sample is empty: the KS test needs at least one value on each side")]
    EmptySample { sample: &'static str },
    #[error("the {sample} sample holds NaN at index {index}: drop missing values before testing")]
    NotANumber { sample: &'static str, index: usize },
    #[error(
        "feature {feature:?} is among the {present_in} columns but not the {missing_from} ones"
    )]
    UnmatchedFeature {
        feature: String,
        present_in: &'static str,
        missing_from: &'static str,
    },
    #[error("feature {feature:?} appears more than once among the {side} columns")]
    DuplicateFeature { feature: String, side: &'static str },
    #[error("invalid drift configuration: {0}")]
    InvalidConfig(String),
}

/// What counts as drift. Missing fields in a stored configuration take the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriftConfig {
    /// A feature can only drift when its p-value is below this (default 0.05, the
    /// conventional 5 % false-alarm rate per feature).
    pub p_value_threshold: f64,
    /// Effect-size floor: a feature can only drift when `D` is at least this (default 0.1: at
    /// some value the two ECDFs differ by 10 percentage points, e.g. a mean shift of about a
    /// quarter of a standard deviation for a normal feature). With 10,000 values a side,
    /// `D ≈ 0.02` is already significant at 5 %, so the floor is what keeps harmless shifts quiet.
    pub min_statistic: f64,
    /// Each side is cut down to at most this many values by a deterministic subsample before the
    /// test (default 10,000: the largest size whose p-value is still exact, and milliseconds of
    /// work). It bounds the cost and stops p-values from vanishing merely because a batch is big.
    pub max_sample: usize,
    /// Seed of the subsample; the same data and seed always give the same report.
    pub seed: u64,
    /// A categorical feature drifts when its [`psi()`] is at least this (default 0.2, the usual
    /// "significant shift" rule of thumb).
    pub psi_min: f64,
}

impl DriftConfig {
    /// Reads `DRIFT_P_VALUE`, `DRIFT_MIN_STATISTIC`, `DRIFT_MAX_SAMPLE`, `DRIFT_SEED` and
    /// `DRIFT_PSI_MIN` (each defaulting to [`DriftConfig::default`]'s): train's drift test and
    /// the predictor's test of served inputs share them.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        use crate::config::optional;
        let defaults = DriftConfig::default();
        let config = DriftConfig {
            p_value_threshold: optional("DRIFT_P_VALUE", defaults.p_value_threshold)?,
            min_statistic: optional("DRIFT_MIN_STATISTIC", defaults.min_statistic)?,
            max_sample: optional("DRIFT_MAX_SAMPLE", defaults.max_sample)?,
            seed: optional("DRIFT_SEED", defaults.seed)?,
            psi_min: optional("DRIFT_PSI_MIN", defaults.psi_min)?,
        };
        // Refused at start, naming the variable, rather than failing every report later.
        match config.problem() {
            None => Ok(config),
            Some((field, value, reason)) => {
                let name = match field {
                    "p_value_threshold" => "DRIFT_P_VALUE",
                    "min_statistic" => "DRIFT_MIN_STATISTIC",
                    "psi_min" => "DRIFT_PSI_MIN",
                    _ => "DRIFT_MAX_SAMPLE",
                };
                Err(crate::config::ConfigError::invalid(name, value, reason))
            }
        }
    }
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            p_value_threshold: 0.05,
            min_statistic: 0.1,
            max_sample: EXACT_MAX_SAMPLE,
            seed: 0,
            psi_min: 0.2,
        }
    }
}

impl DriftConfig {
    fn validate(&self) -> Result<(), DriftError> {
        match self.problem() {
            None => Ok(()),
            Some((field, value, reason)) => Err(DriftError::InvalidConfig(format!(
                "{field} {reason}, got {value}"
            ))),
        }
    }

    /// The first setting out of its range: (field, value, what it must be).
    fn problem(&self) -> Option<(&'static str, String, &'static str)> {
        if !(0.0..=1.0).contains(&self.p_value_threshold) {
            return Some((
                "p_value_threshold",
                self.p_value_threshold.to_string(),
                "must be in [0, 1]",
            ));
        }
        if !(0.0..=1.0).contains(&self.min_statistic) {
            return Some((
                "min_statistic",
                self.min_statistic.to_string(),
                "must be in [0, 1]",
            ));
        }
        if !(self.psi_min.is_finite() && self.psi_min >= 0.0) {
            return Some((
                "psi_min",
                self.psi_min.to_string(),
                "must be a number, 0 or more",
            ));
        }
        if self.max_sample == 0 {
            return Some(("max_sample", "0".to_owned(), "must be at least 1"));
        }
        None
    }
}

/// The test result and decision for one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    pub feature: String,
    /// KS statistic `D`; `None` when the feature could not be tested (no values on a side).
    pub statistic: Option<f64>,
    /// KS p-value; `None` when the feature could not be tested.
    pub p_value: Option<f64>,
    /// Values that entered the test: non-missing, then subsampled to at most `max_sample`.
    pub reference_size: usize,
    pub current_size: usize,
    /// Non-missing values available before subsampling.
    pub reference_available: usize,
    pub current_available: usize,
    /// `p_value < p_value_threshold && statistic >= min_statistic`; false when not tested.
    pub drifted: bool,
}

impl FeatureDrift {
    pub fn tested(&self) -> bool {
        self.statistic.is_some()
    }
}

/// Drift of every feature, stored as JSON and shown on the web page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// One entry per feature, in the order of the reference columns.
    pub features: Vec<FeatureDrift>,
    /// Whether any feature drifted.
    pub drifted: bool,
    /// The tested feature with the largest `D` (the first of equals), drifted or not.
    pub worst: Option<String>,
    /// The configuration that made the decisions.
    pub config: DriftConfig,
    /// The categorical features' PSI (state, status, city prefix, in train's report), shown
    /// with the numeric ones; absent from reports stored before they were tested.
    #[serde(default)]
    pub categorical: Vec<CategoricalDrift>,
    /// Whether any categorical feature drifted. Reported, not counted in [`Self::drifted`]:
    /// the retrain rule counts the numeric features only (see the README).
    #[serde(default)]
    pub categorical_drifted: bool,
}

/// One categorical feature's values: `(name, reference, current)`, `None` for a missing value.
pub type CategoricalColumn<'a> = (&'a str, Vec<Option<String>>, Vec<Option<String>>);

/// The categorical features tested with PSI, by train and the predictor alike, in report
/// order: the state, the status, and the city's first three letters (a bounded stand-in for
/// thousands of city names, whose PSI would be mostly noise). Built by
/// [`categorical_columns`].
pub const CATEGORICAL_FEATURES: [&str; 3] = ["state", "status", "city_prefix"];

/// The fields of one listing that [`categorical_columns`] reads; `None` for a missing value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CategoricalInputs<'a> {
    pub state: Option<&'a str>,
    pub status: Option<&'a str>,
    pub city: Option<&'a str>,
}

/// The city's category for drift: its first three letters, upper-cased.
pub fn city_prefix(city: &str) -> String {
    city.chars().take(3).collect::<String>().to_uppercase()
}

/// The values of each of [`CATEGORICAL_FEATURES`] (in that order) over `rows`.
pub fn categorical_values<'a>(
    rows: impl IntoIterator<Item = CategoricalInputs<'a>>,
) -> [Vec<Option<String>>; 3] {
    let mut columns: [Vec<Option<String>>; 3] = Default::default();
    for row in rows {
        columns[0].push(row.state.map(str::to_owned));
        columns[1].push(row.status.map(str::to_owned));
        columns[2].push(row.city.map(city_prefix));
    }
    columns
}

/// `(name, reference, current)` for each of [`CATEGORICAL_FEATURES`], from the columns
/// [`categorical_values`] built on each side, ready for [`DriftReport::with_categorical`].
pub fn categorical_columns(
    reference: [Vec<Option<String>>; 3],
    current: [Vec<Option<String>>; 3],
) -> Vec<CategoricalColumn<'static>> {
    CATEGORICAL_FEATURES
        .into_iter()
        .zip(reference)
        .zip(current)
        .map(|((name, reference), current)| (name, reference, current))
        .collect()
}

/// The PSI of one categorical feature and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalDrift {
    pub feature: String,
    /// `None` when a side has no values.
    pub psi: Option<f64>,
    pub reference_size: usize,
    pub current_size: usize,
    /// `psi >= psi_min`; false when not tested.
    pub drifted: bool,
}

impl DriftReport {
    /// Adds the categorical features' PSI to the report, each `(name, reference, current)`.
    pub fn with_categorical(mut self, columns: Vec<CategoricalColumn<'_>>) -> Self {
        self.categorical = columns
            .into_iter()
            .map(|(feature, reference, current)| {
                let psi = psi(&reference, &current);
                CategoricalDrift {
                    feature: feature.to_owned(),
                    psi,
                    reference_size: reference.len(),
                    current_size: current.len(),
                    drifted: psi.is_some_and(|value| value >= self.config.psi_min),
                }
            })
            .collect();
        self.categorical_drifted = self.categorical.iter().any(|c| c.drifted);
        self
    }
}

/// Tests every feature of `reference` against the column of the same name in `current`.
///
/// Columns are `(name, values)` pairs, e.g. `("house_size", vec![…])` or `(String, &[f64])`.
/// Both sides must name the same features, each once (anything else is an error: it means the
/// caller paired the wrong data). NaN values are dropped as missing; a feature left with no values
/// on either side is reported as not tested. See [`DriftConfig`] for the decision.
pub fn drift_report<N, V>(
    reference: &[(N, V)],
    current: &[(N, V)],
    config: &DriftConfig,
) -> Result<DriftReport, DriftError>
where
    N: AsRef<str>,
    V: AsRef<[f64]>,
{
    config.validate()?;
    check_names(reference, "reference")?;
    check_names(current, "current")?;
    if let Some((name, _)) = current
        .iter()
        .find(|(name, _)| !reference.iter().any(|(r, _)| r.as_ref() == name.as_ref()))
    {
        return Err(DriftError::UnmatchedFeature {
            feature: name.as_ref().to_string(),
            present_in: "current",
            missing_from: "reference",
        });
    }

    let mut features = Vec::with_capacity(reference.len());
    for (name, reference_values) in reference {
        let name = name.as_ref();
        let current_values = current
            .iter()
            .find(|(c, _)| c.as_ref() == name)
            .map(|(_, values)| values.as_ref())
            .ok_or_else(|| DriftError::UnmatchedFeature {
                feature: name.to_string(),
                present_in: "reference",
                missing_from: "current",
            })?;
        features.push(feature_drift(
            name,
            reference_values.as_ref(),
            current_values,
            config,
        )?);
    }

    let worst = features
        .iter()
        .filter_map(|f| f.statistic.map(|d| (d, &f.feature)))
        .fold(None::<(f64, &String)>, |best, (d, name)| match best {
            Some((best_d, _)) if best_d >= d => best,
            _ => Some((d, name)),
        })
        .map(|(_, name)| name.clone());
    Ok(DriftReport {
        drifted: features.iter().any(|f| f.drifted),
        features,
        worst,
        config: *config,
        categorical: Vec::new(),
        categorical_drifted: false,
    })
}

fn check_names<N: AsRef<str>, V>(columns: &[(N, V)], side: &'static str) -> Result<(), DriftError> {
    let mut seen = HashSet::new();
    for (name, _) in columns {
        if !seen.insert(name.as_ref()) {
            return Err(DriftError::DuplicateFeature {
                feature: name.as_ref().to_string(),
                side,
            });
        }
    }
    Ok(())
}

const REFERENCE_SIDE: u64 = 0;
const CURRENT_SIDE: u64 = 1;

fn feature_drift(
    name: &str,
    reference: &[f64],
    current: &[f64],
    config: &DriftConfig,
) -> Result<FeatureDrift, DriftError> {
    let reference_present = present_values(reference);
    let current_present = present_values(current);
    let reference_tested = subsample(reference_present.clone(), name, REFERENCE_SIDE, config);
    let current_tested = subsample(current_present.clone(), name, CURRENT_SIDE, config);
    let mut drift = FeatureDrift {
        feature: name.to_string(),
        statistic: None,
        p_value: None,
        reference_size: reference_tested.len(),
        current_size: current_tested.len(),
        reference_available: reference_present.len(),
        current_available: current_present.len(),
        drifted: false,
    };
    if reference_tested.is_empty() || current_tested.is_empty() {
        return Ok(drift);
    }
    let test = ks_two_sample(&reference_tested, &current_tested)?;
    drift.statistic = Some(test.statistic);
    drift.p_value = Some(test.p_value);
    drift.drifted =
        test.p_value < config.p_value_threshold && test.statistic >= config.min_statistic;
    Ok(drift)
}

fn present_values(values: &[f64]) -> Vec<f64> {
    values.iter().copied().filter(|v| !v.is_nan()).collect()
}

/// At most `max_sample` of `values`, chosen uniformly by a generator keyed on the seed, the
/// feature name and the side, so each feature and side gets its own reproducible choice.
fn subsample(values: Vec<f64>, feature: &str, side: u64, config: &DriftConfig) -> Vec<f64> {
    if values.len() <= config.max_sample {
        return values;
    }
    let mut rng = SplitMix64::keyed(config.seed, &[stable_name_hash(feature), side]);
    sample_indices(&mut rng, values.len(), config.max_sample)
        .into_iter()
        .map(|i| values[i])
        .collect()
}

/// FNV-1a of the name: unlike `std`'s hasher, fixed across Rust releases and platforms.
fn stable_name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::ks::tests::bell_sample;
    use super::*;

    fn columns<'a>(pairs: &[(&'a str, Vec<f64>)]) -> Vec<(&'a str, Vec<f64>)> {
        pairs.to_vec()
    }

    #[test]
    fn a_shifted_feature_drifts_and_is_the_worst() {
        let reference = columns(&[
            ("house_size", bell_sample(31, 3_000, 0.0, 2)),
            ("price", bell_sample(32, 3_000, 0.0, 2)),
        ]);
        let current = columns(&[
            ("price", bell_sample(33, 2_000, 0.5, 2)),
            ("house_size", bell_sample(34, 2_000, 0.0, 2)),
        ]);
        let report = drift_report(&reference, &current, &DriftConfig::default()).unwrap();
        assert!(report.drifted);
        assert_eq!(report.worst.as_deref(), Some("price"));
        let names: Vec<&str> = report.features.iter().map(|f| f.feature.as_str()).collect();
        assert_eq!(names, ["house_size", "price"], "reference order");
        let (size, price) = (&report.features[0], &report.features[1]);
        assert!(!size.drifted && price.drifted, "{report:#?}");
        assert!(price.p_value.unwrap() < 1e-12 && price.statistic.unwrap() > 0.2);
        assert!(size.p_value.unwrap() > 0.05);
        assert_eq!((price.reference_size, price.current_size), (3_000, 2_000));
        // The report's numbers are those of the plain test on the same columns.
        let direct = ks_two_sample(&reference[1].1, &current[0].1).unwrap();
        assert_eq!(price.statistic, Some(direct.statistic));
        assert_eq!(price.p_value, Some(direct.p_value));
    }

    #[test]
    fn the_effect_size_floor_keeps_a_significant_but_small_shift_quiet() {
        // 50,000 rows a side, shifted by ~0.1 sd: subsampled to 10,000 a side, p is far below
        // 0.05 but D stays under the 0.1 floor.
        let reference = columns(&[("price", bell_sample(21, 50_000, 0.0, 3))]);
        let current = columns(&[("price", bell_sample(22, 50_000, 0.06, 3))]);
        let config = DriftConfig::default();
        let report = drift_report(&reference, &current, &config).unwrap();
        let price = &report.features[0];
        assert!(price.p_value.unwrap() < 1e-4, "{price:?}");
        assert!(price.statistic.unwrap() < config.min_statistic, "{price:?}");
        assert!(!price.drifted && !report.drifted);
        assert_eq!((price.reference_size, price.current_size), (10_000, 10_000));
        assert_eq!(price.reference_available, 50_000);

        // Without the floor the same shift is flagged.
        let no_floor = DriftConfig {
            min_statistic: 0.0,
            ..config
        };
        assert!(
            drift_report(&reference, &current, &no_floor)
                .unwrap()
                .drifted
        );
    }

    #[test]
    fn subsampling_is_deterministic_for_a_seed() {
        let reference = columns(&[("price", bell_sample(41, 30_000, 0.0, 3))]);
        let current = columns(&[("price", bell_sample(42, 25_000, 0.0, 3))]);
        let config = DriftConfig {
            seed: 7,
            ..DriftConfig::default()
        };
        let first = drift_report(&reference, &current, &config).unwrap();
        let second = drift_report(&reference, &current, &config).unwrap();
        assert_eq!(first, second);
        let other_seed = DriftConfig { seed: 8, ..config };
        let third = drift_report(&reference, &current, &other_seed).unwrap();
        assert_ne!(
            first.features[0].statistic, third.features[0].statistic,
            "another seed picks other rows"
        );
    }

    #[test]
    fn missing_values_are_dropped_and_an_empty_side_is_not_tested() {
        let clean = bell_sample(51, 400, 0.0, 2);
        let with_gaps: Vec<f64> = clean
            .iter()
            .enumerate()
            .flat_map(|(i, &v)| {
                if i % 3 == 0 {
                    vec![f64::NAN, v]
                } else {
                    vec![v]
                }
            })
            .collect();
        let current_values = bell_sample(52, 300, 0.3, 2);
        let reference = columns(&[("price", with_gaps), ("bed", vec![2.0, 3.0, 3.0])]);
        let current = columns(&[
            ("price", current_values.clone()),
            ("bed", vec![f64::NAN; 5]),
        ]);
        let report = drift_report(&reference, &current, &DriftConfig::default()).unwrap();

        let (price, bed) = (&report.features[0], &report.features[1]);
        let direct = ks_two_sample(&clean, &current_values).unwrap();
        assert_eq!(price.statistic, Some(direct.statistic));
        assert_eq!(price.reference_size, 400);
        assert!(price.drifted);

        assert!(!bed.tested() && !bed.drifted);
        assert_eq!((bed.statistic, bed.p_value), (None, None));
        assert_eq!((bed.reference_size, bed.current_size), (3, 0));
        assert_eq!(report.worst.as_deref(), Some("price"));
    }

    #[test]
    fn mismatched_features_and_bad_configuration_are_errors() {
        let config = DriftConfig::default();
        let reference = columns(&[("price", vec![1.0]), ("bed", vec![1.0])]);
        let current = columns(&[("price", vec![1.0])]);
        assert_eq!(
            drift_report(&reference, &current, &config),
            Err(DriftError::UnmatchedFeature {
                feature: "bed".to_string(),
                present_in: "reference",
                missing_from: "current",
            })
        );
        assert!(matches!(
            drift_report(&current, &reference, &config),
            Err(DriftError::UnmatchedFeature {
                present_in: "current",
                ..
            })
        ));
        let twice = columns(&[("price", vec![1.0]), ("price", vec![2.0])]);
        assert!(matches!(
            drift_report(&twice, &current, &config),
            Err(DriftError::DuplicateFeature {
                side: "reference",
                ..
            })
        ));
        for bad in [
            DriftConfig {
                max_sample: 0,
                ..config
            },
            DriftConfig {
                p_value_threshold: f64::NAN,
                ..config
            },
            DriftConfig {
                min_statistic: 1.5,
                ..config
            },
        ] {
            assert!(matches!(
                drift_report(&current, &current, &bad),
                Err(DriftError::InvalidConfig(_))
            ));
        }
    }

    #[test]
    fn the_report_round_trips_through_json() {
        let reference = columns(&[("price", vec![1.0, 2.0, 3.0]), ("bed", vec![1.0])]);
        let current = columns(&[("price", vec![2.5, 3.5]), ("bed", vec![])]);
        let report = drift_report(&reference, &current, &DriftConfig::default()).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["features"][1]["statistic"], serde_json::Value::Null);
        assert_eq!(json["config"]["max_sample"], 10_000);
        let back: DriftReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
        // A stored configuration may name only what it changes.
        let config: DriftConfig = serde_json::from_str(r#"{"min_statistic": 0.2}"#).unwrap();
        assert_eq!(config.min_statistic, 0.2);
        assert_eq!(config.p_value_threshold, 0.05);
    }

    #[test]
    fn categorical_features_are_reported_beside_and_not_counted_in_the_numeric_verdict() {
        let steady: Vec<f64> = (0..1_000).map(|i| f64::from(i) / 1_000.0).collect();
        let numeric = drift_report(
            &[("price", steady.clone())],
            &[("price", steady)],
            &DriftConfig::default(),
        )
        .unwrap();
        let states = |texas: usize, ohio: usize| -> Vec<Option<String>> {
            std::iter::repeat_n(Some("Texas".to_owned()), texas)
                .chain(std::iter::repeat_n(Some("Ohio".to_owned()), ohio))
                .collect()
        };
        let report = numeric.with_categorical(vec![
            ("state", states(500, 500), states(900, 100)),
            ("status", states(500, 500), states(510, 490)),
        ]);
        assert!(
            !report.drifted,
            "the retrain verdict counts numeric features only"
        );
        assert!(report.categorical_drifted);
        assert!(report.categorical[0].drifted && !report.categorical[1].drifted);
        assert!(report.categorical[0].psi.unwrap() > 0.8);
        // A report stored before categorical features were tested still reads.
        let mut stored = serde_json::to_value(&report).unwrap();
        stored.as_object_mut().unwrap().remove("categorical");
        stored
            .as_object_mut()
            .unwrap()
            .remove("categorical_drifted");
        let old: DriftReport = serde_json::from_value(stored).unwrap();
        assert!(old.categorical.is_empty() && !old.categorical_drifted);
    }

    #[test]
    fn categorical_columns_name_state_status_and_the_city_prefix() {
        let rows = [
            CategoricalInputs {
                state: Some("Texas"),
                status: Some("for_sale"),
                city: Some("san antonio"),
            },
            CategoricalInputs {
                state: Some("Ohio"),
                status: None,
                city: Some("Sa"),
            },
            CategoricalInputs::default(),
        ];
        let reference = categorical_values(rows);
        let current = categorical_values(rows[..1].iter().copied());
        let columns = categorical_columns(reference, current);
        let names: Vec<&str> = columns.iter().map(|(name, _, _)| *name).collect();
        assert_eq!(names, CATEGORICAL_FEATURES);
        let some = |values: &[Option<&str>]| -> Vec<Option<String>> {
            values.iter().map(|v| v.map(str::to_owned)).collect()
        };
        assert_eq!(columns[0].1, some(&[Some("Texas"), Some("Ohio"), None]));
        assert_eq!(columns[1].1, some(&[Some("for_sale"), None, None]));
        assert_eq!(columns[2].1, some(&[Some("SAN"), Some("SA"), None]));
        assert_eq!(columns[2].2, some(&[Some("SAN")]));
    }
}
