//! `source`: a stand-in for the course's batch API.
//!
//! The course pipeline pulled its training data from a batch API on a private network, which
//! handed out the Kaggle "USA Real Estate Dataset" in six batches, one per call, cut by status
//! and price range so that each batch drifts from the last. This crate serves the same contract
//! (DESIGN.md §5) so the pipeline can run anywhere, from one of two datasets:
//!
//! - **generated** (the default): deterministic synthetic listings that look like the real file
//!   (nulls, outliers, skewed prices, 50 states, DC, Puerto Rico and the Virgin Islands),
//!   following the course's six-batch plan; see [`plan`] for the plan and [`generator`] for the
//!   model and its comparison with the real data;
//! - **a Kaggle-format CSV** (`SOURCE_CSV`): the real file or a slice of it, in fixed-size
//!   batches, as people's copies of it come (10 to 12 columns, comma, semicolon or tab
//!   separated, re-saved by Excel); see [`csv_source`].
//!
//! Batches are numbered from 0, as the course API numbers them: the first answer after a start
//! or a restart is `"batch_number": 0`. Every type and function here takes and returns those
//! 0-based numbers.
//!
//! Modules:
//! - [`config`]: the environment variables, parsed into [`SourceConfig`];
//! - [`plan`]: batches, their sizes and market segments, and the size [`plan::Scale`];
//! - [`generator`] (with [`geography`] and [`gaussian`]): the synthetic listings;
//! - [`csv_source`]: listings read from a CSV file;
//! - [`csv_variants`]: copies of a CSV file altered the ways real copies are, for tests;
//! - [`dataset`]: either of the two behind one interface;
//! - [`api`] and [`batch_body`]: the HTTP routes, the per-`(group_number, day)` cursors, and the
//!   streamed response body.
//!
//! `main.rs` reads the configuration, builds the dataset and serves [`api::router`] through
//! `appraise_core::runtime::serve_http`, which adds `/healthz` and `/metrics`, listens on
//! `$PORT` and stops gracefully on SIGTERM.
//!
//! # Speed
//!
//! Rows are generated and written as JSON a chunk of 2,048 at a time while the response
//! streams, so memory stays flat whatever the batch size, even for the default plan's largest
//! batch (5), tens of megabytes of JSON. Generating the rows is the smaller part of a batch's
//! time; most of it is writing them out (`Listing::write_api_json`). The measured figures, with
//! their date and machine, are in `bench/README.md`.

pub mod api;
pub mod batch_body;
pub mod config;
pub mod csv_source;
pub mod csv_variants;
pub mod dataset;
pub mod gaussian;
pub mod generator;
pub mod geography;
pub mod plan;

pub use api::{SourceState, router};
pub use config::{DataConfig, SourceConfig};
pub use dataset::{Dataset, DatasetSummary};
