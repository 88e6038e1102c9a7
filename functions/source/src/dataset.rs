//! The listings the source serves, whichever way they were made: generated
//! ([`SyntheticListings`]) or read from a CSV file ([`CsvListings`]). The API only asks how many
//! batches there are, how long one is, for a range of its rows as JSON, and for a
//! [`DatasetSummary`] to answer `GET /health` with. Batches are numbered from 0 everywhere.

use std::{collections::BTreeMap, ops::Range};

use anyhow::Context;
use appraise_core::listing::Listing;
use serde::Serialize;

use crate::{
    config::DataConfig, csv_source::CsvListings, generator::SyntheticListings, plan::BatchPlan,
};

/// The batches a source serves.
#[derive(Debug, Clone)]
pub enum Dataset {
    Synthetic(SyntheticListings),
    Csv(CsvListings),
}

/// What a source serves, as `GET /health` reports it under `"dataset"`:
/// `{"kind": "generated", "batches": N, "rows": R}` or `{"kind": "csv", "batches": N,
/// "rows": R, "dropped_ragged_rows": K, "missing_optional_columns": [...],
/// "unparsed_values": {"column": n}}`. The local harness reads these keys; keep them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DatasetSummary {
    Generated {
        batches: u64,
        /// Rows over every batch.
        rows: u64,
    },
    Csv {
        batches: u64,
        /// Rows served over every batch (dropped rows excluded).
        rows: u64,
        /// Rows of the file dropped because their field count differs from the header's.
        dropped_ragged_rows: usize,
        /// Optional columns the file lacks, served as null.
        missing_optional_columns: Vec<&'static str>,
        /// Per column, values that did not parse and are served as null.
        unparsed_values: BTreeMap<&'static str, usize>,
    },
}

impl Dataset {
    /// Builds the dataset a configuration names: prepares the generator, or reads the CSV file,
    /// logging a warning for each thing loading had to work around (absent optional columns,
    /// dropped ragged rows, values that did not parse).
    pub fn from_config(config: &DataConfig) -> anyhow::Result<Dataset> {
        match config {
            DataConfig::Synthetic { seed, scale } => {
                let listings = SyntheticListings::new(*seed, &BatchPlan::course(), *scale)
                    .context("the built-in batch plan cannot be generated")?;
                tracing::info!(
                    seed,
                    scale = scale.value(),
                    batches = listings.batch_count(),
                    "serving generated listings"
                );
                Ok(Dataset::Synthetic(listings))
            }
            DataConfig::Csv { path, batch_rows } => {
                let (listings, report) = CsvListings::open(path, *batch_rows)?;
                if !report.missing_optional_columns.is_empty() {
                    tracing::warn!(
                        path = %path.display(),
                        missing = ?report.missing_optional_columns,
                        "the CSV file has no column {}: served as null in every row",
                        report.missing_optional_columns.join(", ")
                    );
                }
                if report.ragged_rows > 0 {
                    tracing::warn!(
                        path = %path.display(),
                        ragged_rows = report.ragged_rows,
                        first_lines = ?report.first_ragged_lines,
                        "CSV rows whose number of fields differs from the header's were dropped"
                    );
                }
                let unparsed: usize = report.unparsed_values.values().sum();
                if unparsed > 0 {
                    tracing::warn!(
                        path = %path.display(),
                        unparsed_values = unparsed,
                        per_column = ?report.unparsed_values,
                        "some CSV values did not parse and are served as null"
                    );
                }
                tracing::info!(
                    path = %path.display(),
                    rows = report.rows,
                    delimiter = ?report.delimiter,
                    batch_rows = batch_rows.get(),
                    batches = listings.batch_count(),
                    "serving listings from a CSV file"
                );
                Ok(Dataset::Csv(listings))
            }
        }
    }

    /// How many batches there are; batch numbers run from 0 to this minus one.
    pub fn batch_count(&self) -> u64 {
        match self {
            Dataset::Synthetic(listings) => listings.batch_count(),
            Dataset::Csv(listings) => listings.batch_count(),
        }
    }

    /// How many rows batch `batch_number` (0-based) has, or `None` past the last batch.
    pub fn batch_rows(&self, batch_number: u64) -> Option<u64> {
        match self {
            Dataset::Synthetic(listings) => listings.batch(batch_number).map(|batch| batch.rows()),
            Dataset::Csv(listings) => listings.batch(batch_number).map(|rows| rows.len() as u64),
        }
    }

    /// Appends rows `rows` of batch `batch_number` (0-based) to `out` as JSON objects in the
    /// API's wire format, each preceded by a comma except row 0. Rows outside the batch are
    /// skipped. `scratch` is a reusable listing buffer for generated rows.
    pub fn write_rows(
        &self,
        batch_number: u64,
        rows: Range<u64>,
        scratch: &mut Listing,
        out: &mut Vec<u8>,
    ) {
        let mut write = |row: u64, listing: &Listing| {
            if row > 0 {
                out.push(b',');
            }
            listing.write_api_json(out);
        };
        match self {
            Dataset::Synthetic(listings) => {
                let Some(batch) = listings.batch(batch_number) else {
                    return;
                };
                for row in rows.start..rows.end.min(batch.rows()) {
                    batch.fill_listing(row, scratch);
                    write(row, scratch);
                }
            }
            Dataset::Csv(listings) => {
                let Some(batch) = listings.batch(batch_number) else {
                    return;
                };
                let end = rows.end.min(batch.len() as u64);
                for row in rows.start..end {
                    write(row, &batch[row as usize]);
                }
            }
        }
    }

    /// What is served, for `GET /health`.
    pub fn summary(&self) -> DatasetSummary {
        let batches = self.batch_count();
        let rows = (0..batches)
            .map(|number| self.batch_rows(number).unwrap_or(0))
            .sum();
        match self {
            Dataset::Synthetic(_) => DatasetSummary::Generated { batches, rows },
            Dataset::Csv(listings) => {
                let report = listings.report();
                DatasetSummary::Csv {
                    batches,
                    rows,
                    dropped_ragged_rows: report.ragged_rows,
                    missing_optional_columns: report.missing_optional_columns.clone(),
                    unparsed_values: report.unparsed_values.clone(),
                }
            }
        }
    }
}
