//! A small, seeded, portable pseudo-random generator.
//!
//! Sampling in `ingest` and the synthetic data in `source` must produce the same values on every
//! machine and every release, forever: a run is reproducible from its seed. General-purpose RNG
//! crates reserve the right to change their streams between versions, so the project carries its
//! own: SplitMix64 (Steele, Lea & Flood, 2014), which passes BigCrush and is a few lines long.

/// SplitMix64: a 64-bit state advanced by a Weyl sequence and mixed by a finalizer.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Mixes a 64-bit value into a well-distributed one (the SplitMix64 finalizer).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// A generator for one item of a keyed family, e.g. (seed, batch, row): the same keys always
    /// give the same stream, and neighbouring keys give unrelated streams.
    pub fn keyed(seed: u64, keys: &[u64]) -> Self {
        let state = keys.iter().fold(mix64(seed), |acc, key| {
            mix64(acc ^ mix64(key.wrapping_add(GOLDEN_GAMMA)))
        });
        SplitMix64 { state }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, bound); `bound` must be positive. Lemire's multiply-shift, whose
    /// bias (< bound / 2^64) is far below anything the project could observe.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "below(0) has no value to return");
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// A standard normal deviate (Box–Muller; one of the pair is discarded for simplicity).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // in (0, 1], so ln is finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// `count` distinct indices out of `0..population`, in increasing order, chosen uniformly and
/// deterministically from `rng`. When `count >= population` every index is returned.
pub fn sample_indices(rng: &mut SplitMix64, population: usize, count: usize) -> Vec<usize> {
    if count >= population {
        return (0..population).collect();
    }
    // Partial Fisher–Yates over an index table: O(population) memory, O(count) swaps.
    let mut table: Vec<u32> = (0..population as u32).collect();
    for i in 0..count {
        let j = i + rng.below((population - i) as u64) as usize;
        table.swap(i, j);
    }
    let mut chosen: Vec<usize> = table[..count].iter().map(|&i| i as usize).collect();
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_stream() {
        // Reference values of SplitMix64 seeded with 0 (from the published C implementation).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn samples_are_distinct_sorted_and_seed_stable() {
        let a = sample_indices(&mut SplitMix64::keyed(42, &[1]), 1000, 100);
        let b = sample_indices(&mut SplitMix64::keyed(42, &[1]), 1000, 100);
        let c = sample_indices(&mut SplitMix64::keyed(42, &[2]), 1000, 100);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 100);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            sample_indices(&mut SplitMix64::new(1), 5, 9),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn normal_deviates_have_unit_moments() {
        let mut rng = SplitMix64::new(7);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }
}
