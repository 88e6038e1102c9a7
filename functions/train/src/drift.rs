//! Drift detection (being written).
