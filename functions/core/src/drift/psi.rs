//! The population stability index (PSI) of a categorical feature: how far the shares of its
//! categories moved between a reference and a current sample. PSI = Σ (c − r)·ln(c / r) over
//! bins, r and c a bin's share of each sample. Every reference category with at least 1 % of
//! the reference values is its own bin; the rest, and categories the reference never saw, share
//! one `(other)` bin; a missing value is the category `(missing)`. Shares are smoothed by half a
//! count per bin, so an empty bin does not make the index infinite. PSI is an effect size, and
//! large samples do not inflate it, so a threshold on it ([`super::DriftConfig::psi_min`]) is
//! the floor the KS test gets from `min_statistic`.

use std::collections::BTreeMap;

/// A reference category with at least this share of the reference values is its own bin.
const OWN_BIN_SHARE: f64 = 0.01;

/// The population stability index of `current` against `reference` (see the module docs for
/// the bins and the smoothing); `None` when either side is empty.
pub fn psi(reference: &[Option<String>], current: &[Option<String>]) -> Option<f64> {
    if reference.is_empty() || current.is_empty() {
        return None;
    }
    let name = |value: &Option<String>| value.as_deref().unwrap_or("(missing)").to_owned();
    let mut reference_counts: BTreeMap<String, usize> = BTreeMap::new();
    for value in reference {
        *reference_counts.entry(name(value)).or_default() += 1;
    }
    let floor = OWN_BIN_SHARE * reference.len() as f64;
    let own_bin = |category: &str| {
        reference_counts
            .get(category)
            .is_some_and(|&count| count as f64 >= floor)
    };
    let bin = |category: String| {
        if own_bin(&category) {
            category
        } else {
            "(other)".to_owned()
        }
    };
    let mut bins: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (category, count) in &reference_counts {
        bins.entry(bin(category.clone())).or_default().0 += *count as f64;
    }
    for value in current {
        bins.entry(bin(name(value))).or_default().1 += 1.0;
    }
    let size = bins.len() as f64;
    let (reference_total, current_total) = (reference.len() as f64, current.len() as f64);
    Some(
        bins.values()
            .map(|(r, c)| {
                let r = (r + 0.5) / (reference_total + 0.5 * size);
                let c = (c + 0.5) / (current_total + 0.5 * size);
                (c - r) * (c / r).ln()
            })
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(spec: &[(&str, usize)]) -> Vec<Option<String>> {
        spec.iter()
            .flat_map(|(name, count)| {
                std::iter::repeat_n((!name.is_empty()).then(|| (*name).to_owned()), *count)
            })
            .collect()
    }

    #[test]
    fn psi_is_zero_for_the_same_shares_and_grows_with_the_shift() {
        let reference = values(&[("TX", 500), ("OH", 500)]);
        assert!(
            psi(&reference, &values(&[("TX", 50), ("OH", 50)]))
                .unwrap()
                .abs()
                < 1e-3
        );
        // By hand: shares 0.5/0.5 against 0.9/0.1 (smoothing aside):
        // (0.9 − 0.5)·ln(0.9/0.5) + (0.1 − 0.5)·ln(0.1/0.5) = 0.2351 + 0.6438 = 0.8789.
        let shifted = psi(&reference, &values(&[("TX", 9000), ("OH", 1000)])).unwrap();
        assert!((shifted - 0.8789).abs() < 0.01, "{shifted}");
        let small = psi(&reference, &values(&[("TX", 52), ("OH", 48)])).unwrap();
        assert!(small < 0.01, "{small}");
    }

    #[test]
    fn unseen_rare_and_missing_categories_have_their_bins() {
        let reference = values(&[("TX", 990), ("AK", 5), ("", 5)]);
        // AK (0.5 %) and anything unseen share (other); missing is a category of its own,
        // but too rare here for its own bin, so it is (other) too.
        let unseen = psi(&reference, &values(&[("TX", 50), ("Nowhere", 50)])).unwrap();
        assert!(unseen > 1.0, "{unseen}");
        assert_eq!(psi(&[], &reference), None);
        assert_eq!(psi(&reference, &[]), None);
    }
}
