//! The source's configuration, read once from the environment into types that cannot hold an
//! invalid value.
//!
//! | variable                | default | meaning                                                     |
//! |-------------------------|---------|-------------------------------------------------------------|
//! | `SOURCE_CSV`            | unset   | serve this Kaggle-format CSV instead of generated listings  |
//! | `SOURCE_CSV_BATCH_ROWS` | 2000    | rows per batch when serving a CSV (a positive integer)      |
//! | `SOURCE_SCALE`          | 1.0     | multiplies every batch size of the generator's plan (0–100] |
//! | `SOURCE_SEED`           | 42      | seed of the generator (a u64); same seed, same rows          |
//!
//! `SOURCE_CSV` may name any of the variants of the Kaggle file in circulation: 10, 11 or 12
//! columns (`brokered_by`, `street` and `prev_sold_date` may be absent), comma, semicolon or
//! tab separated, re-saved by Excel (BOM, CRLF, `M/D/YYYY` dates, zip codes without leading
//! zeros); it must be UTF-8. Rows whose field count differs from the header's are dropped.
//! See [`crate::csv_source`] for the details.
//!
//! `PORT` (default 8080) and `HOST` (default 0.0.0.0) are read by
//! `appraise_core::runtime::serve_http`. Setting a generator variable together with
//! `SOURCE_CSV`, or `SOURCE_CSV_BATCH_ROWS` without it, is an error rather than silently
//! ignored: it means the deployment is not doing what its author thinks.

use std::{num::NonZeroUsize, path::PathBuf};

use appraise_core::config::{ConfigError, maybe};

use crate::plan::Scale;

/// Rows per batch when serving a CSV file, unless `SOURCE_CSV_BATCH_ROWS` says otherwise.
pub const DEFAULT_CSV_BATCH_ROWS: usize = 2_000;
/// The generator's seed unless `SOURCE_SEED` says otherwise.
pub const DEFAULT_SEED: u64 = 42;

/// Everything the source needs to know at start.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub data: DataConfig,
}

/// Where the listings come from.
#[derive(Debug, Clone, PartialEq)]
pub enum DataConfig {
    /// The built-in generator, following [`crate::plan::BatchPlan::course`].
    Synthetic { seed: u64, scale: Scale },
    /// A Kaggle-format CSV file (any variant [`crate::csv_source`] reads) cut into batches of
    /// `batch_rows` rows.
    Csv {
        path: PathBuf,
        batch_rows: NonZeroUsize,
    },
}

impl SourceConfig {
    /// Reads the variables in the table above.
    pub fn from_env() -> Result<SourceConfig, ConfigError> {
        let csv: Option<PathBuf> = maybe("SOURCE_CSV")?;
        let batch_rows: Option<NonZeroUsize> = maybe("SOURCE_CSV_BATCH_ROWS")?;
        let seed: Option<u64> = maybe("SOURCE_SEED")?;
        let scale: Option<Scale> = maybe("SOURCE_SCALE")?;
        let data = match csv {
            Some(path) => {
                for (name, set) in [
                    ("SOURCE_SEED", seed.is_some()),
                    ("SOURCE_SCALE", scale.is_some()),
                ] {
                    if set {
                        return Err(ConfigError::invalid(
                            name,
                            std::env::var(name).unwrap_or_default(),
                            "configures the built-in generator and has no effect with SOURCE_CSV; unset one of them",
                        ));
                    }
                }
                DataConfig::Csv {
                    path,
                    batch_rows: batch_rows.unwrap_or(
                        NonZeroUsize::new(DEFAULT_CSV_BATCH_ROWS).expect("a positive default"),
                    ),
                }
            }
            None => {
                if let Some(rows) = batch_rows {
                    return Err(ConfigError::invalid(
                        "SOURCE_CSV_BATCH_ROWS",
                        rows,
                        "only applies when SOURCE_CSV names a file",
                    ));
                }
                DataConfig::Synthetic {
                    seed: seed.unwrap_or(DEFAULT_SEED),
                    scale: scale.unwrap_or(Scale::ONE),
                }
            }
        };
        Ok(SourceConfig { data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Environment variables are process-wide, so every case runs in this one test.
    #[test]
    fn reads_defaults_modes_and_rejects_nonsense() {
        let vars = [
            "SOURCE_CSV",
            "SOURCE_CSV_BATCH_ROWS",
            "SOURCE_SEED",
            "SOURCE_SCALE",
        ];
        let with = |settings: &[(&str, &str)]| {
            for var in vars {
                // SAFETY: no other test in this crate reads or writes these variables.
                unsafe { std::env::remove_var(var) };
            }
            for (name, value) in settings {
                unsafe { std::env::set_var(name, value) };
            }
            SourceConfig::from_env()
        };

        assert_eq!(
            with(&[]).unwrap().data,
            DataConfig::Synthetic {
                seed: 42,
                scale: Scale::ONE
            }
        );
        assert_eq!(
            with(&[("SOURCE_SEED", "7"), ("SOURCE_SCALE", "0.01")])
                .unwrap()
                .data,
            DataConfig::Synthetic {
                seed: 7,
                scale: Scale::new(0.01).unwrap()
            }
        );
        assert_eq!(
            with(&[
                ("SOURCE_CSV", "data/x.csv"),
                ("SOURCE_CSV_BATCH_ROWS", "500")
            ])
            .unwrap()
            .data,
            DataConfig::Csv {
                path: "data/x.csv".into(),
                batch_rows: NonZeroUsize::new(500).unwrap()
            }
        );
        for (settings, named) in [
            (&[("SOURCE_SCALE", "0")][..], "SOURCE_SCALE"),
            (&[("SOURCE_SCALE", "big")][..], "SOURCE_SCALE"),
            (&[("SOURCE_SEED", "-1")][..], "SOURCE_SEED"),
            (
                &[("SOURCE_CSV", "x.csv"), ("SOURCE_CSV_BATCH_ROWS", "0")][..],
                "SOURCE_CSV_BATCH_ROWS",
            ),
            (
                &[("SOURCE_CSV_BATCH_ROWS", "10")][..],
                "SOURCE_CSV_BATCH_ROWS",
            ),
            (
                &[("SOURCE_CSV", "x.csv"), ("SOURCE_SEED", "1")][..],
                "SOURCE_SEED",
            ),
        ] {
            let error = with(settings).unwrap_err().to_string();
            assert!(error.contains(named), "{settings:?}: {error}");
        }
        with(&[]).unwrap();
    }
}
