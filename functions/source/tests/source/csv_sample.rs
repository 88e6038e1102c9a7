//! The CSV reader on the real sample, `data/realtor-sample.csv`, checked against an independent
//! plain read of the same file.

use std::{num::NonZeroUsize, path::PathBuf};

use appraise_core::listing::FIELDS;
use appraise_source::csv_source::CsvListings;

fn sample_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/realtor-sample.csv")
}

/// Every row of the sample as plain strings, without any interpretation.
fn raw_rows() -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_path(sample_path()).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header, FIELDS,
        "the sample's columns are the API's, in order"
    );
    reader
        .records()
        .map(|record| record.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

#[test]
fn reads_every_row_and_keeps_leading_zero_zips_and_nulls() {
    let (listings, report) =
        CsvListings::open(&sample_path(), NonZeroUsize::new(2_000).unwrap()).unwrap();
    let raw = raw_rows();
    assert_eq!(listings.rows().len(), 12_885);
    assert_eq!(listings.rows().len(), raw.len());
    assert_eq!(report.rows, raw.len());
    assert_eq!(report.ragged_rows, 0);
    assert!(report.missing_optional_columns.is_empty());
    assert_eq!(report.delimiter, ',');
    assert!(
        report.unparsed_values.is_empty(),
        "{:?}",
        report.unparsed_values
    );

    for (index, (listing, raw)) in listings.rows().iter().zip(&raw).enumerate() {
        // Empty in the file ⇔ null in the listing, for every column.
        let present = [
            listing.brokered_by.is_some(),
            listing.status.is_some(),
            listing.price.is_some(),
            listing.bed.is_some(),
            listing.bath.is_some(),
            listing.acre_lot.is_some(),
            listing.street.is_some(),
            listing.city.is_some(),
            listing.state.is_some(),
            listing.zip_code.is_some(),
            listing.house_size.is_some(),
            listing.prev_sold_date.is_some(),
        ];
        for (column, is_present) in present.iter().enumerate() {
            assert_eq!(
                *is_present,
                !raw[column].is_empty(),
                "row {index}, {}: {:?}",
                FIELDS[column],
                raw[column]
            );
        }
        // Zip codes read back as the file wrote them, leading zeros included.
        if let Some(zip) = listing.zip_code {
            assert_eq!(zip.to_string(), raw[9], "row {index}");
        }
        if let Some(date) = listing.prev_sold_date {
            assert_eq!(date.to_string(), raw[11], "row {index}");
        }
    }

    let first = &listings.rows()[0];
    assert_eq!(first.zip_code.unwrap().value(), 601);
    assert_eq!(first.state.as_deref(), Some("Puerto Rico"));
    assert_eq!(first.prev_sold_date, None);
    assert!(
        raw.iter().filter(|row| row[9].starts_with('0')).count() > 10_000,
        "the sample is mostly New England and Puerto Rico, whose zips start with 0"
    );
}

#[test]
fn batches_cover_the_file_in_order() {
    let (listings, _) =
        CsvListings::open(&sample_path(), NonZeroUsize::new(5_000).unwrap()).unwrap();
    assert_eq!(listings.batch_count(), 3);
    let joined: Vec<_> = (0..3)
        .flat_map(|n| listings.batch(n).unwrap().to_vec())
        .collect();
    assert_eq!(joined, listings.rows());
    assert_eq!(listings.batch(0).unwrap().len(), 5_000);
    assert_eq!(listings.batch(2).unwrap().len(), 2_885);
    assert!(listings.batch(3).is_none());
}
