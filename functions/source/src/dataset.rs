//! The listings the source serves, whichever way they were made: generated
//! ([`SyntheticListings`]) or read from a CSV file ([`CsvListings`]). The API only asks how many
//! batches there are, how long one is, and for a range of its rows as JSON.

use std::ops::Range;

use anyhow::Context;
use appraise_core::listing::Listing;

use crate::{
    config::DataConfig, csv_source::CsvListings, generator::SyntheticListings, plan::BatchPlan,
};

/// The batches a source serves.
#[derive(Debug, Clone)]
pub enum Dataset {
    Synthetic(SyntheticListings),
    Csv(CsvListings),
}

impl Dataset {
    /// Builds the dataset a configuration names: prepares the generator, or reads the CSV file
    /// (logging how many of its values did not parse).
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
                let unparsed: usize = report.unparsed_values.values().sum();
                if unparsed > 0 || report.ragged_rows > 0 {
                    tracing::warn!(
                        path = %path.display(),
                        ragged_rows = report.ragged_rows,
                        unparsed_values = unparsed,
                        per_column = ?report.unparsed_values,
                        "some CSV values did not parse and are served as null"
                    );
                }
                tracing::info!(
                    path = %path.display(),
                    rows = report.rows,
                    batch_rows = batch_rows.get(),
                    batches = listings.batch_count(),
                    "serving listings from a CSV file"
                );
                Ok(Dataset::Csv(listings))
            }
        }
    }

    /// How many batches there are; batch numbers run from 1 to this.
    pub fn batch_count(&self) -> u64 {
        match self {
            Dataset::Synthetic(listings) => listings.batch_count(),
            Dataset::Csv(listings) => listings.batch_count(),
        }
    }

    /// How many rows batch `batch_number` has, or `None` past the last batch.
    pub fn batch_rows(&self, batch_number: u64) -> Option<u64> {
        match self {
            Dataset::Synthetic(listings) => listings.batch(batch_number).map(|batch| batch.rows()),
            Dataset::Csv(listings) => listings.batch(batch_number).map(|rows| rows.len() as u64),
        }
    }

    /// Appends rows `rows` of batch `batch_number` to `out` as JSON objects in the API's wire
    /// format, each preceded by a comma except row 0. Rows outside the batch are skipped.
    /// `scratch` is a reusable listing buffer for generated rows.
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
}
