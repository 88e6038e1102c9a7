//! Object keys that more than one function must agree on.
//!
//! A stage announces a batch with `<stage>/batch-NNNNNN/manifest.json` (`raw/` by ingest,
//! `clean/` by process); the next stage reads the batch number back from the key of the
//! object event that woke it. Train announces a training's models with
//! `candidates/training-NNNNNN.json`; promote moves `production/current.json`. An operator's
//! request for an ingest outside the schedule is an object under `triggers/ingest/`.

/// Where promote writes the production pointer (a [`crate::model::ProductionPointer`]).
pub const PRODUCTION_POINTER: &str = "production/current.json";

/// Where the predictor's `POST /runs/ingest` writes a request for an ingest, whose
/// object-created event fires ingest as a schedule firing would (its key is the firing's id).
pub const INGEST_REQUESTS: &str = "triggers/ingest/";

/// `triggers/ingest/<id>.json`: an ingest request.
pub fn ingest_request(id: &str) -> String {
    format!("{INGEST_REQUESTS}{id}.json")
}

/// Whether `key` is an ingest request ([`ingest_request`]).
pub fn is_ingest_request(key: &str) -> bool {
    key.strip_prefix(INGEST_REQUESTS)
        .and_then(|rest| rest.strip_suffix(".json"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// `candidates/training-000003.json` for training 3 (a training's id is the number of the clean
/// batch it decided).
pub fn candidates(training_id: i64) -> String {
    format!("candidates/training-{training_id:06}.json")
}

/// The training id of a `candidates/training-NNNNNN.json` key; `None` for any other key.
pub fn training_of_candidates(key: &str) -> Option<i64> {
    let number = key
        .strip_prefix("candidates/training-")?
        .strip_suffix(".json")?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse().ok()
}

/// `raw/batch-000012/manifest.json` for `("raw", 12)`.
pub fn batch_manifest(stage: &str, batch_number: i32) -> String {
    format!("{stage}/batch-{batch_number:06}/manifest.json")
}

/// The batch number of a `<stage>/batch-NNNNNN/manifest.json` key; `None` for any other key.
pub fn batch_of_manifest(stage: &str, key: &str) -> Option<i32> {
    let number = key
        .strip_prefix(stage)?
        .strip_prefix("/batch-")?
        .strip_suffix("/manifest.json")?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_requests_are_json_objects_directly_under_their_prefix() {
        let key = ingest_request("1764590000000000000");
        assert_eq!(key, "triggers/ingest/1764590000000000000.json");
        assert!(is_ingest_request(&key));
        for other in [
            "triggers/ingest/.json",
            "triggers/ingest/a/b.json",
            "triggers/ingest/x.txt",
            "raw/batch-000001/manifest.json",
        ] {
            assert!(!is_ingest_request(other), "{other}");
        }
    }

    #[test]
    fn candidate_keys_round_trip() {
        assert_eq!(candidates(3), "candidates/training-000003.json");
        assert_eq!(
            training_of_candidates(&candidates(1_234_567)),
            Some(1_234_567)
        );
        assert_eq!(training_of_candidates("candidates/training-.json"), None);
        assert_eq!(
            training_of_candidates("candidates/training-12.json.tmp"),
            None
        );
        assert_eq!(training_of_candidates("production/current.json"), None);
    }

    #[test]
    fn manifest_keys_round_trip_and_nothing_else_parses() {
        assert_eq!(batch_manifest("raw", 12), "raw/batch-000012/manifest.json");
        assert_eq!(
            batch_of_manifest("raw", &batch_manifest("raw", 12)),
            Some(12)
        );
        assert_eq!(
            batch_of_manifest("clean", "clean/batch-000007/manifest.json"),
            Some(7)
        );
        assert_eq!(
            batch_of_manifest("raw", "raw/batch-000012/response.json.gz"),
            None
        );
        assert_eq!(
            batch_of_manifest("raw", "clean/batch-000012/manifest.json"),
            None
        );
        assert_eq!(batch_of_manifest("raw", "raw/batch-/manifest.json"), None);
        assert_eq!(batch_of_manifest("raw", "raw/batch-+1/manifest.json"), None);
        assert_eq!(
            batch_of_manifest("raw", "rawx/batch-000001/manifest.json"),
            None
        );
    }
}
