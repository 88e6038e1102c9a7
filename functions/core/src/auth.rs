//! Shared-secret checks for the routes that take a bearer token (the predictor's
//! `POST /reload_model`, the bridge's MinIO webhook): one comparison, in constant time, so an
//! answer's timing does not reveal how much of a guess was right.

use http::{HeaderMap, header};

/// Whether `Authorization: Bearer <token>` carries exactly `expected`.
pub fn bearer_token_matches(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()))
}

/// Compares secrets without an early exit (only their lengths may differ in time).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_exact_bearer_token_matches() {
        assert!(bearer_token_matches(
            &with_authorization("Bearer s3cret"),
            "s3cret"
        ));
        assert!(!bearer_token_matches(
            &with_authorization("Bearer s3cre"),
            "s3cret"
        ));
        assert!(!bearer_token_matches(
            &with_authorization("Bearer s3cretX"),
            "s3cret"
        ));
        assert!(!bearer_token_matches(
            &with_authorization("Basic s3cret"),
            "s3cret"
        ));
        assert!(!bearer_token_matches(
            &with_authorization("s3cret"),
            "s3cret"
        ));
        assert!(!bearer_token_matches(&HeaderMap::new(), "s3cret"));
    }
}
