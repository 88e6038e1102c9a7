//! The body of a `GET /data` response, produced a chunk at a time.
//!
//! A full batch is up to 361,457 rows, 79 MB of JSON. Building it whole would cost that much
//! memory per request, so the body is an iterator of [`Bytes`] chunks of [`CHUNK_ROWS`] rows
//! each (about half a megabyte), each generated only when the connection asks for more. The
//! first chunk opens the envelope (`{"group_number":…,"day":…,"batch_number":…,"data":[`), the
//! last one closes it (`]}`).

use std::sync::Arc;

use appraise_core::listing::Listing;
use bytes::Bytes;

use crate::dataset::Dataset;

/// Rows per chunk of the response body.
pub const CHUNK_ROWS: u64 = 2_048;

/// Roughly how many bytes one row takes in JSON; only sizes the buffers.
const ROW_BYTES_ESTIMATE: usize = 260;

/// The chunks of one batch's JSON response, in order.
pub struct BatchChunks {
    dataset: Arc<Dataset>,
    batch_number: u64,
    rows: u64,
    next_row: u64,
    /// The envelope's opening, until the first chunk has been produced.
    opening: Option<Vec<u8>>,
    closed: bool,
    scratch: Listing,
}

impl BatchChunks {
    /// The body of batch `batch_number` as served to `group_number` for `day`.
    pub fn new(
        dataset: Arc<Dataset>,
        group_number: i64,
        day: Option<&str>,
        batch_number: u64,
    ) -> BatchChunks {
        let rows = dataset.batch_rows(batch_number).unwrap_or(0);
        let mut opening = Vec::with_capacity(96);
        opening.extend_from_slice(b"{\"group_number\":");
        opening.extend_from_slice(itoa::Buffer::new().format(group_number).as_bytes());
        opening.extend_from_slice(b",\"day\":");
        match day {
            // A JSON string with every escape JSON needs; serializing a &str cannot fail.
            Some(day) => serde_json::to_writer(&mut opening, day).expect("a string serializes"),
            None => opening.extend_from_slice(b"null"),
        }
        opening.extend_from_slice(b",\"batch_number\":");
        opening.extend_from_slice(itoa::Buffer::new().format(batch_number).as_bytes());
        opening.extend_from_slice(b",\"data\":[");
        BatchChunks {
            dataset,
            batch_number,
            rows,
            next_row: 0,
            opening: Some(opening),
            closed: false,
            scratch: Listing::default(),
        }
    }
}

impl Iterator for BatchChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.closed {
            return None;
        }
        let end = (self.next_row + CHUNK_ROWS).min(self.rows);
        let mut chunk = self.opening.take().unwrap_or_default();
        chunk.reserve((end - self.next_row) as usize * ROW_BYTES_ESTIMATE + 2);
        self.dataset.write_rows(
            self.batch_number,
            self.next_row..end,
            &mut self.scratch,
            &mut chunk,
        );
        self.next_row = end;
        if self.next_row >= self.rows {
            chunk.extend_from_slice(b"]}");
            self.closed = true;
        }
        Some(Bytes::from(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        generator::SyntheticListings,
        plan::{BatchPlan, Scale},
    };

    #[test]
    fn a_batch_streams_in_bounded_chunks_that_join_into_one_document() {
        let listings =
            SyntheticListings::new(42, &BatchPlan::course(), Scale::new(0.1).unwrap()).unwrap();
        let rows = listings.batch(0).unwrap().rows();
        let dataset = Arc::new(Dataset::Synthetic(listings));
        let chunks: Vec<Bytes> = BatchChunks::new(dataset, 5, Some("Tuesday"), 0).collect();
        assert_eq!(chunks.len() as u64, rows.div_ceil(CHUNK_ROWS));
        let largest = chunks.iter().map(Bytes::len).max().unwrap();
        assert!(
            largest < CHUNK_ROWS as usize * 400,
            "a chunk of {largest} bytes"
        );

        let whole: Vec<u8> = chunks.concat();
        let body: serde_json::Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(body["data"].as_array().unwrap().len() as u64, rows);
        assert_eq!(
            (
                body["group_number"].as_i64(),
                body["day"].as_str(),
                body["batch_number"].as_u64()
            ),
            (Some(5), Some("Tuesday"), Some(0))
        );
    }

    #[test]
    fn a_batch_past_the_end_is_an_empty_document_not_a_panic() {
        let listings = SyntheticListings::new(1, &BatchPlan::course(), Scale::ONE).unwrap();
        let chunks: Vec<Bytes> =
            BatchChunks::new(Arc::new(Dataset::Synthetic(listings)), 1, None, 6).collect();
        let body: serde_json::Value = serde_json::from_slice(&chunks.concat()).unwrap();
        assert_eq!(body["data"], serde_json::json!([]));
    }
}
