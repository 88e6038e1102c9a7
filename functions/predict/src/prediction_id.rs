//! Prediction ids: every answered prediction gets one, in the answer and in the inference log,
//! so `GET /lineage/prediction/{id}` can find it later.
//!
//! An id is a UUID of version 7 (RFC 9562): 48 bits of Unix time in milliseconds, a 12-bit
//! sequence within the millisecond (RFC 9562 §6.2, method 1), then 62 random bits. Time first
//! keeps the inference log's index on it append-mostly, and the sequence makes one process's
//! ids strictly increasing, so `ORDER BY prediction_id DESC` reads its predictions newest first
//! (the served-input drift test relies on it); past 4,096 ids in a millisecond, or when the
//! clock steps back, the sequence carries into the time, which then runs a little ahead. The
//! random bits come from the project's seeded generator ([`appraise_core::rng`]) keyed by a
//! per-process seed the operating system's randomness gives (std's `RandomState`) and a
//! counter, so replicas never share a stream and an id costs a few nanoseconds, no system call.

use std::{
    fmt,
    hash::{BuildHasher, Hasher},
    sync::atomic::{AtomicU64, Ordering},
};

use appraise_core::rng::SplitMix64;
use serde::{Serialize, Serializer};

/// One prediction's id; shown and stored as the canonical UUID text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PredictionId(u128);

impl PredictionId {
    /// Reads the canonical text form (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits in
    /// either case); `None` for anything else.
    pub fn parse(text: &str) -> Option<PredictionId> {
        let bytes = text.as_bytes();
        if bytes.len() != 36 {
            return None;
        }
        let mut value = 0u128;
        for (i, &b) in bytes.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b != b'-' {
                    return None;
                }
                continue;
            }
            let digit = (b as char).to_digit(16)?;
            value = value << 4 | u128::from(digit);
        }
        Some(PredictionId(value))
    }
}

impl fmt::Display for PredictionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = format!("{:032x}", self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }
}

/// Written to PostgreSQL as a `uuid` (the inference log's `COPY`).
impl tokio_postgres::types::ToSql for PredictionId {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0.to_be_bytes());
        Ok(tokio_postgres::types::IsNull::No)
    }

    tokio_postgres::types::accepts!(UUID);
    tokio_postgres::types::to_sql_checked!();
}

impl Serialize for PredictionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Makes the ids of one process.
pub struct PredictionIds {
    seed: u64,
    counter: AtomicU64,
    /// The last id's time and sequence, `millis << 12 | sequence`.
    last_stamp: AtomicU64,
}

impl Default for PredictionIds {
    fn default() -> Self {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        PredictionIds {
            seed: hasher.finish(),
            counter: AtomicU64::new(0),
            last_stamp: AtomicU64::new(0),
        }
    }
}

impl PredictionIds {
    /// A new id, dated now.
    pub fn next(&self) -> PredictionId {
        let millis = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        self.at(millis.clamp(0, (1 << 48) - 1) as u64)
    }

    /// A new id dated `millis` after the Unix epoch (at most 48 bits).
    fn at(&self, millis: u64) -> PredictionId {
        let stamp = self.stamp(millis & 0xFFFF_FFFF_FFFF);
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let random = SplitMix64::keyed(self.seed, &[count]).next_u64();
        let high = (stamp >> 12) << 16 | 0x7000 | (stamp & 0x0FFF);
        let low = 0x8000_0000_0000_0000 | (random & 0x3FFF_FFFF_FFFF_FFFF);
        PredictionId(u128::from(high) << 64 | u128::from(low))
    }

    /// `millis << 12 | sequence`, greater than every stamp this process gave before.
    fn stamp(&self, millis: u64) -> u64 {
        let mut last = self.last_stamp.load(Ordering::Relaxed);
        loop {
            let stamp = (millis << 12).max(last + 1);
            match self.last_stamp.compare_exchange_weak(
                last,
                stamp,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return stamp,
                Err(actual) => last = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_uuids_that_read_back_and_differ() {
        let ids = PredictionIds::default();
        let first = ids.at(1_764_590_400_000);
        let text = first.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[..13], "019ad9c8-b200", "the time comes first");
        assert_eq!(&text[14..15], "7", "version 7");
        assert!("89ab".contains(&text[19..20]), "RFC 9562 variant: {text}");
        assert_eq!(PredictionId::parse(&text), Some(first));
        assert_eq!(PredictionId::parse(&text.to_uppercase()), Some(first));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(ids.at(1_764_590_400_000)));
        }
        assert_ne!(
            PredictionIds::default().at(1).to_string()[15..],
            PredictionIds::default().at(1).to_string()[15..],
            "two processes draw different bits"
        );
        for bad in [
            "",
            "not-an-id",
            &text[..35],
            &text.replace('-', "_"),
            &format!("{text}0"),
        ] {
            assert_eq!(PredictionId::parse(bad), None, "{bad}");
        }
        // One process's ids increase, within a millisecond, past 4,096 of them, and when the
        // clock steps back.
        let ids = PredictionIds::default();
        let mut previous = ids.at(1_764_590_400_000);
        for millis in std::iter::repeat_n(1_764_590_400_000, 5_000).chain([1_764_590_399_000, 1]) {
            let next = ids.at(millis);
            assert!(next.0 > previous.0, "{next} after {previous}");
            assert_eq!(&next.to_string()[14..15], "7", "version 7");
            previous = next;
        }
        let mut signed = text.clone();
        signed.replace_range(0..1, "+");
        assert_eq!(PredictionId::parse(&signed), None);
    }
}
