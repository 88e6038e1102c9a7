//! Drift detection: has the distribution of a numeric feature moved between the rows the
//! production model was trained on (the *reference*) and the newly cleaned rows (the *current*)?
//!
//! DESIGN §6 asks for a two-sample Kolmogorov–Smirnov (KS) test per numeric feature, a stored
//! report (statistic and p-value per feature) and a decision whose thresholds are configuration.
//! This module provides both layers:
//!
//! - [`ks_two_sample`] is the test itself. The statistic is `D = sup |F_ref − F_cur|`, the largest
//!   gap between the two empirical CDFs, found by sorting each sample once and walking both in
//!   step; equal values are stepped past together on both sides, so ties are counted correctly.
//!   `D` is computed exactly, as an integer multiple of `1 / lcm(n, m)`. The p-value reproduces
//!   SciPy's `scipy.stats.ks_2samp(a, b)` (defaults: `method='auto'`, `alternative='two-sided'`):
//!   - when both samples hold at most [`EXACT_MAX_SAMPLE`] (10,000) values, the *exact*
//!     distribution of `D` under the null hypothesis: for equal sizes the closed alternating
//!     series of Hodges (1958), otherwise a lattice-path recursion that counts the paths leaving
//!     the band `|x/n − y/m| < D`, written so that it yields the exit probability directly
//!     (Viehmann 2021) and stays in `[0, 1]`;
//!   - otherwise the *asymptotic* one, `kstwo.sf(D, round(n·m/(n+m)))`: the exact distribution of
//!     the one-sample Kolmogorov statistic for an effective sample size, evaluated with the
//!     algorithm selection of Simard & L'Ecuyer (2011) that SciPy uses (see [`kolmogorov`]).
//!
//!   Like SciPy, an exact result that comes out outside `[0, 1]` through rounding falls back to
//!   the asymptotic value. Every computation is bounded by the sample sizes; in particular two
//!   identical samples (`D = 0`) return `p = 1` at once. (statrs 0.19's `ks_twosample` loops for
//!   ever there, DESIGN §10, which is why the project carries its own.) NaN and empty samples
//!   are errors: a p-value for them would be meaningless.
//!
//! - [`drift_report`] applies the test to every feature and decides. With large samples any
//!   harmless shift gets a tiny p-value, so a feature counts as drifted only when
//!   `p < p_value_threshold` **and** `D ≥ min_statistic` (an effect-size floor), and each side
//!   is first cut down to at most `max_sample` values by a seeded, deterministic subsample
//!   (the same inputs and seed always give the same report). NaN values are treated as missing
//!   and dropped before the test (infinities are kept: they are ordinary extreme values for a
//!   rank-based test). A feature with no values left on one side cannot be tested: it is
//!   reported with no statistic and no p-value and is never counted as drifted, so one empty
//!   column does not stop the report for the others.

use std::collections::HashSet;

use appraise_core::rng::{SplitMix64, sample_indices};
use serde::{Deserialize, Serialize};

/// Largest sample size for which [`ks_two_sample`] uses the exact null distribution (SciPy's
/// `MAX_AUTO_N`); above it on either side the asymptotic distribution is used.
pub const EXACT_MAX_SAMPLE: usize = 10_000;

/// Why a test or a report could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriftError {
    #[error("the {sample} sample is empty: the KS test needs at least one value on each side")]
    EmptySample { sample: &'static str },
    #[error("the {sample} sample holds NaN at index {index}: drop missing values before testing")]
    NotANumber { sample: &'static str, index: usize },
    #[error(
        "feature {feature:?} is among the {present_in} columns but not the {missing_from} ones"
    )]
    UnmatchedFeature {
        feature: String,
        present_in: &'static str,
        missing_from: &'static str,
    },
    #[error("feature {feature:?} appears more than once among the {side} columns")]
    DuplicateFeature { feature: String, side: &'static str },
    #[error("invalid drift configuration: {0}")]
    InvalidConfig(String),
}

// ---------------------------------------------------------------------------------------------
// The two-sample Kolmogorov–Smirnov test
// ---------------------------------------------------------------------------------------------

/// Which null distribution gave the p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KsMethod {
    Exact,
    Asymptotic,
}

/// The outcome of a two-sided two-sample KS test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KsTest {
    /// `D = sup |F_a − F_b|`, in `[0, 1]`.
    pub statistic: f64,
    /// Probability, if both samples came from one continuous distribution, of a `D` at least
    /// this large.
    pub p_value: f64,
    pub method: KsMethod,
}

/// Two-sided two-sample Kolmogorov–Smirnov test of `a` against `b`, agreeing with SciPy's
/// `scipy.stats.ks_2samp(a, b)`; see the module documentation for the method.
///
/// Cost: two sorts plus, on the exact path with unequal sizes, at most `n·m` cheap steps (in
/// practice `~2·D·n·m`); equal sizes and the asymptotic path are linear after sorting.
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> Result<KsTest, DriftError> {
    let a = sorted_sample(a, "first")?;
    let b = sorted_sample(b, "second")?;
    let (n, m) = (a.len() as u64, b.len() as u64);
    let common = gcd(n, m);
    // Gaps between the ECDFs are measured in units of 1/lcm(n, m), where they are integers.
    let lcm = (n / common) as f64 * m as f64;
    let gap = largest_ecdf_gap(&a, &b);
    let statistic = gap as f64 / lcm;

    let exact_allowed = a.len().max(b.len()) <= EXACT_MAX_SAMPLE;
    if gap == 0 {
        // Identical ECDFs: no sample can be further apart, whatever the method.
        let method = if exact_allowed {
            KsMethod::Exact
        } else {
            KsMethod::Asymptotic
        };
        return Ok(KsTest {
            statistic: 0.0,
            p_value: 1.0,
            method,
        });
    }
    if exact_allowed && let Some(p_value) = exact_p_value(n, m, common, gap) {
        return Ok(KsTest {
            statistic,
            p_value,
            method: KsMethod::Exact,
        });
    }
    // SciPy's effective size: round(n·m/(n+m)) in floating point, ties to even.
    let (nf, mf) = (n as f64, m as f64);
    let effective_size = (nf * mf / (nf + mf)).round_ties_even() as u64;
    Ok(KsTest {
        statistic,
        p_value: kolmogorov::sf(effective_size, statistic),
        method: KsMethod::Asymptotic,
    })
}

/// A sorted copy of a sample, or the reason it cannot be tested.
fn sorted_sample(values: &[f64], sample: &'static str) -> Result<Vec<f64>, DriftError> {
    if values.is_empty() {
        return Err(DriftError::EmptySample { sample });
    }
    if let Some(index) = values.iter().position(|v| v.is_nan()) {
        return Err(DriftError::NotANumber { sample, index });
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    Ok(sorted)
}

fn gcd(mut x: u64, mut y: u64) -> u64 {
    while y != 0 {
        (x, y) = (y, x % y);
    }
    x
}

/// `max |F_a − F_b|` over all values, in units of `1 / lcm(n, m)`, for two sorted samples.
///
/// After `i` values of `a` and `j` of `b` the ECDF gap is `i/n − j/m = (i·m/g − j·n/g) / lcm`,
/// so integer arithmetic gives it exactly. Equal values are consumed together on both sides
/// before the gap is measured (`==` also merges `-0.0` with `0.0`). Each round consumes at least
/// one value, so the walk ends after at most `n + m` rounds; once either sample is used up the
/// gap can only shrink, so the walk stops there.
fn largest_ecdf_gap(a: &[f64], b: &[f64]) -> u64 {
    let common = gcd(a.len() as u64, b.len() as u64);
    let step_a = (b.len() as u64 / common) as u128; // 1/n in units of 1/lcm
    let step_b = (a.len() as u64 / common) as u128; // 1/m in units of 1/lcm
    let (mut i, mut j) = (0usize, 0usize);
    let mut largest = 0u128;
    while i < a.len() && j < b.len() {
        let value = if a[i] <= b[j] { a[i] } else { b[j] };
        while i < a.len() && a[i] == value {
            i += 1;
        }
        while j < b.len() && b[j] == value {
            j += 1;
        }
        let gap = (i as u128 * step_a).abs_diff(j as u128 * step_b);
        largest = largest.max(gap);
    }
    largest as u64
}

/// The exact two-sided p-value `P(D ≥ gap/lcm)`, or `None` when rounding pushed it outside
/// `[0, 1]` (SciPy then falls back to the asymptotic distribution, and so does the caller).
fn exact_p_value(n: u64, m: u64, common: u64, gap: u64) -> Option<f64> {
    let p = if n == m {
        prob_outside_square(n, gap)
    } else {
        prob_outside_band(n.max(m), n.min(m), common, gap)
    };
    (0.0..=1.0).contains(&p).then_some(p)
}

/// `P(D ≥ h/n)` for two samples of size `n` (Hodges 1958):
/// `2 Σ_{k≥1} (−1)^(k−1) C(2n, n−kh) / C(2n, n)`. Each term is written as the previous one times
/// a ratio `r_k = C(2n, n−(k+1)h) / C(2n, n−kh)` of `h` factors, and the alternating sum is
/// evaluated in nested form `r_0 (1 − r_1 (1 − r_2 (…)))` from the innermost term outwards,
/// which avoids subtracting large binomial coefficients.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let (n, h) = (n as i64, h as i64);
    let mut nested = 0.0;
    for k in (0..=n / h).rev() {
        let mut ratio = 1.0;
        for j in 0..h {
            let numerator = n - k * h - j;
            if numerator <= 0 {
                ratio = 0.0;
                break;
            }
            ratio = numerator as f64 * ratio / (n + k * h + j + 1) as f64;
        }
        nested = ratio * (1.0 - nested);
    }
    2.0 * nested
}

/// `P(D ≥ h/lcm)` for sample sizes `m ≥ n` with greatest common divisor `common`.
///
/// Merging the two sorted samples is a lattice path from `(0, 0)` to `(m, n)`, all
/// `C(m+n, n)` paths equally likely under the null hypothesis; `D ≥ h/lcm` exactly when the path
/// visits a point with `|x·n/g − y·m/g| ≥ h`, outside the band. Let `E(x, y)` be the fraction of
/// the paths from the origin to `(x, y)` that have already left the band: it is 1 outside, and
/// inside, since a fraction `x/(x+y)` of those paths arrive from the left and `y/(x+y)` from
/// below, `E(x, y) = (x·E(x−1, y) + y·E(x, y−1)) / (x + y)`. The answer is `E(m, n)`. Only the
/// points of one column inside the band are kept, a window that slides up as `x` grows.
fn prob_outside_band(m: u64, n: u64, common: u64, h: u64) -> f64 {
    let (m, n, h) = (m as i64, n as i64, h as i64);
    let (step_x, step_y) = ((n / common as i64), (m / common as i64));
    // Rows y of column x strictly inside the band: (step_x·x − h)/step_y < y < (step_x·x + h)/step_y.
    let window = |x: i64| {
        let low = ((step_x * x - h).div_euclid(step_y) + 1).clamp(0, n);
        let high = ((step_x * x + h + step_y - 1) / step_y).min(n + 1);
        (low, high)
    };

    // Column 0: the single path up the y axis has not left the band while it stays inside it.
    let (mut previous_low, mut previous_high) = window(0);
    let mut previous = vec![0.0; (previous_high - previous_low) as usize];
    let mut column = Vec::with_capacity(previous.capacity());
    for x in 1..=m {
        let (low, high) = window(x);
        if high <= low {
            return 1.0; // no point of this column is inside the band: every path has left it
        }
        column.clear();
        // E(x, low − 1): outside the band (1) unless there is no such point (then unused).
        let mut below = if low == 0 { 0.0 } else { 1.0 };
        for y in low..high {
            let left = if (previous_low..previous_high).contains(&y) {
                previous[(y - previous_low) as usize]
            } else {
                1.0
            };
            below = (left * x as f64 + below * y as f64) / (x + y) as f64;
            column.push(below);
        }
        std::mem::swap(&mut previous, &mut column);
        (previous_low, previous_high) = (low, high);
    }
    // (m, n) is on the centre line, hence inside the last window, and is its top row.
    previous[(n - previous_low) as usize]
}

/// The distribution of the one-sample two-sided Kolmogorov statistic `D_n`, as SciPy's
/// `scipy.stats.kstwo` computes its survival function.
///
/// `kstwo.sf(x, n) = P(D_n ≥ x)` is evaluated with the algorithm selection of Simard & L'Ecuyer
/// (2011), "Computing the Two-Sided Kolmogorov-Smirnov Distribution", J. Stat. Softw. 39(11),
/// which SciPy implements in `scipy/stats/_ksstats.py`:
///
/// - closed forms of Ruben & Gambino (1982) when `n·x ≤ 1` or `n·x ≥ n − 1`;
/// - `2 · P(D_n⁺ ≥ x)` (the exact one-sided Smirnov tail, from the Birnbaum–Tingey sum) when
///   `x ≥ 1/2`, where the two one-sided events cannot both happen, and as Miller's
///   approximation when `n·x²` is large enough that both happening is negligible;
/// - the Durbin matrix, computed as Marsaglia, Tsang & Wang (2003), for small `n·x²`;
/// - the Pelz & Good (1976) asymptotic series for large `n` and small `n·x²`.
///
/// One deliberate difference: for `n ≤ 140` and `0.754693 < n·x² ≤ 4` SciPy uses Pomeranz's
/// recursion; this module uses the Durbin matrix there too. Both are exact, and they agree to
/// rounding (checked against SciPy in the tests).
pub mod kolmogorov {
    use std::f64::consts::{LN_2, PI};

    /// `ln` of the smallest normal `f64`: `exp` of anything below underflows to zero.
    const LN_SMALLEST_NORMAL: f64 = -708.396_418_532_264_1;

    /// `P(D_n ≥ x)`: SciPy's `scipy.stats.kstwo.sf(x, n)`. `n` must be at least 1.
    pub fn sf(n: u64, x: f64) -> f64 {
        assert!(n >= 1, "the Kolmogorov distribution needs n >= 1");
        if x.is_nan() {
            return f64::NAN;
        }
        if x >= 1.0 {
            return 0.0;
        }
        if x <= 0.0 {
            return 1.0;
        }
        let nf = n as f64;
        let t = nf * x;
        if t <= 1.0 {
            if t <= 0.5 {
                return 1.0; // D_n ≥ 1/(2n) always
            }
            // Ruben–Gambino: P(D_n ≤ x) = n!/nⁿ · (2t − 1)ⁿ for 1/(2n) ≤ x ≤ 1/n.
            let cdf = (ln_factorial_over_power(n) + nf * (2.0 * t - 1.0).ln()).exp();
            return clip_probability(1.0 - cdf);
        }
        if t >= nf - 1.0 {
            // Ruben–Gambino: P(D_n ≥ x) = 2(1 − x)ⁿ for 1 − 1/n ≤ x ≤ 1.
            return clip_probability(2.0 * (1.0 - x).powf(nf));
        }
        if x >= 0.5 {
            return clip_probability(2.0 * smirnov_sf(n, x));
        }
        let nx_squared = t * x;
        if n <= 140 {
            if nx_squared <= 4.0 {
                return clip_probability(1.0 - durbin_cdf(n, x));
            }
            return clip_probability(2.0 * smirnov_sf(n, x));
        }
        if nx_squared >= 370.0 {
            return 0.0;
        }
        if nx_squared >= 2.2 {
            return clip_probability(2.0 * smirnov_sf(n, x));
        }
        let cdf = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
            durbin_cdf(n, x)
        } else {
            pelz_good_cdf(n, x)
        };
        clip_probability(1.0 - clip_probability(cdf))
    }

    fn clip_probability(p: f64) -> f64 {
        p.clamp(0.0, 1.0)
    }

    /// The one-sided Smirnov tail `P(D_n⁺ ≥ x)`: SciPy's `scipy.special.smirnov(n, x)`.
    ///
    /// Birnbaum & Tingey (1951): `P(D_n⁺ ≥ x) = x Σ_{v=0}^{⌊n(1−x)⌋} C(n, v) (x + v/n)^(v−1)
    /// (1 − x − v/n)^(n−v)`, a sum of positive terms, each evaluated through its logarithm.
    /// `n·x` is split exactly into whole and fractional parts so that `1 − x − v/n`, which can
    /// be tiny, keeps full relative precision.
    pub fn smirnov_sf(n: u64, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        if x <= 0.0 {
            return 1.0;
        }
        if x >= 1.0 {
            return 0.0;
        }
        let nf = n as f64;
        if n == 1 {
            return 1.0 - x;
        }
        let (whole, fraction) = split_product(n, x);
        if whole == 0 || (whole == 1 && fraction == 0.0) {
            // x ≤ 1/n: P(D_n⁺ < x) = x (1 + x)^(n−1).
            return clip_probability(1.0 - x * (1.0 + x).powf(nf - 1.0));
        }
        if -2.0 * nf * x * x < LN_SMALLEST_NORMAL {
            return 0.0;
        }
        if whole >= n - 1 {
            return (1.0 - x).powf(nf);
        }
        if n > 1_000_000 {
            // SciPy's approximation for very large n: exp(−(6nx + 1)² / 18n).
            return (-(6.0 * nf * x + 1.0).powi(2) / 18.0 / nf).exp();
        }
        let ln_factorial_n = ln_factorial(n);
        let term_count = n - whole; // v = 0 ..= n − whole − 1
        let mut sum = 0.0;
        for v in 0..term_count {
            let x_plus = ((whole + v) as f64 + fraction) / nf; // x + v/n
            let one_minus = ((n - whole - v) as f64 - fraction) / nf; // 1 − x − v/n
            let ln_binomial = ln_factorial_n - ln_factorial(v) - ln_factorial(n - v);
            let ln_term =
                ln_binomial + (v as f64 - 1.0) * x_plus.ln() + (n - v) as f64 * one_minus.ln();
            let term = ln_term.exp();
            sum += term;
            // Stop once the remaining terms cannot change the sum (SciPy's rule).
            if term != 0.0 {
                let remaining = (term_count - v) as f64;
                if v > 0 && v + 1 < term_count && 4.0 * remaining * term < f64::EPSILON * sum {
                    break;
                }
            } else if v > n / 2 {
                break;
            }
        }
        clip_probability(x * sum)
    }

    /// `n·x = whole + fraction` with `0 ≤ fraction < 1`, exact even where `n·x` rounds.
    fn split_product(n: u64, x: f64) -> (u64, f64) {
        let nf = n as f64;
        let product = nf * x;
        let rounding_error = nf.mul_add(x, -product); // exact: product + error == n·x
        let mut whole = product.floor();
        let mut fraction = (product - whole) + rounding_error;
        if fraction < 0.0 {
            whole -= 1.0;
            fraction += 1.0;
        }
        if fraction >= 1.0 {
            whole += 1.0;
            fraction -= 1.0;
        }
        (whole as u64, fraction)
    }

    /// `P(D_n ≤ x)` from Durbin's matrix, evaluated as Marsaglia, Tsang & Wang (2003),
    /// "Evaluating Kolmogorov's Distribution", J. Stat. Softw. 8(18).
    ///
    /// With `n·x = k − h` (`k` an integer, `0 ≤ h < 1`), `P(D_n < x) = n!/nⁿ · (Hⁿ)[k−1][k−1]`
    /// for a `(2k−1)`-square matrix `H` whose entries are `1/(i−j+1)!` below the superdiagonal,
    /// adjusted in the first column and the last row. Work `O(k³ log n)`; powers of two keep the
    /// matrix powers in range.
    fn durbin_cdf(n: u64, x: f64) -> f64 {
        let nx = n as f64 * x;
        let k = nx.ceil() as usize;
        let h = k as f64 - nx;
        let size = 2 * k - 1;
        let mut inverse_factorial = vec![1.0; size + 1]; // inverse_factorial[i] = 1/i!
        for i in 1..=size {
            inverse_factorial[i] = inverse_factorial[i - 1] / i as f64;
        }

        let mut durbin = Matrix::zeros(size);
        for row in 0..size {
            for col in 0..size.min(row + 2) {
                durbin.set(row, col, inverse_factorial[row + 1 - col]);
            }
        }
        for row in 0..size {
            let value = (1.0 - h.powi(row as i32 + 1)) * inverse_factorial[row + 1];
            durbin.set(row, 0, value);
            durbin.set(size - 1, size - 1 - row, value);
        }
        let corner = 1.0 - 2.0 * h.powi(size as i32) + (2.0 * h - 1.0).max(0.0).powi(size as i32);
        durbin.set(size - 1, 0, corner * inverse_factorial[size]);

        let (power, power_exponent) = durbin.power(n);
        let diagonal = power.get(k - 1, k - 1);
        if diagonal <= 0.0 {
            return 0.0;
        }
        let ln_cdf = diagonal.ln() + power_exponent as f64 * LN_2 + ln_factorial_over_power(n);
        clip_probability(ln_cdf.exp())
    }

    /// A square matrix, row-major.
    struct Matrix {
        size: usize,
        cells: Vec<f64>,
    }

    impl Matrix {
        fn zeros(size: usize) -> Self {
            Matrix {
                size,
                cells: vec![0.0; size * size],
            }
        }

        fn identity(size: usize) -> Self {
            let mut identity = Matrix::zeros(size);
            for i in 0..size {
                identity.set(i, i, 1.0);
            }
            identity
        }

        fn get(&self, row: usize, col: usize) -> f64 {
            self.cells[row * self.size + col]
        }

        fn set(&mut self, row: usize, col: usize, value: f64) {
            self.cells[row * self.size + col] = value;
        }

        fn times(&self, other: &Matrix) -> Matrix {
            let size = self.size;
            let mut product = Matrix::zeros(size);
            for row in 0..size {
                let out = &mut product.cells[row * size..(row + 1) * size];
                for mid in 0..size {
                    let left = self.cells[row * size + mid];
                    if left == 0.0 {
                        continue;
                    }
                    let right = &other.cells[mid * size..(mid + 1) * size];
                    for (o, r) in out.iter_mut().zip(right) {
                        *o += left * r;
                    }
                }
            }
            product
        }

        /// Divides by 2²⁵⁶ while the largest entry exceeds it, counting the divisions in
        /// `exponent` (the true matrix is `self · 2^exponent`).
        fn rescale(&mut self, exponent: &mut i64) {
            const LIMIT: f64 = 1.157_920_892_373_162e77; // 2^256
            const SHRINK: f64 = 8.636_168_555_094_445e-78; // 2^-256
            while self.cells.iter().fold(0.0f64, |m, c| m.max(c.abs())) > LIMIT {
                self.cells.iter_mut().for_each(|c| *c *= SHRINK);
                *exponent += 256;
            }
        }

        /// `self^n` by repeated squaring, as `(mantissa matrix, power-of-two exponent)`.
        fn power(self, mut n: u64) -> (Matrix, i64) {
            let mut result = Matrix::identity(self.size);
            let mut result_exponent = 0i64;
            let mut base = self;
            let mut base_exponent = 0i64;
            loop {
                if n & 1 == 1 {
                    result = result.times(&base);
                    result_exponent += base_exponent;
                    result.rescale(&mut result_exponent);
                }
                n >>= 1;
                if n == 0 {
                    return (result, result_exponent);
                }
                base = base.times(&base);
                base_exponent *= 2;
                base.rescale(&mut base_exponent);
            }
        }
    }

    /// `P(D_n ≤ x)` by the asymptotic series of Pelz & Good (1976), "Approximating the Lower
    /// Tail-areas of the Kolmogorov-Smirnov One-sample Statistic", JRSS B 38(2), as given by
    /// Simard & L'Ecuyer (2011, eq. 10): `K₀(z) + K₁(z)/√n + K₂(z)/n + K₃(z)/n^(3/2)`,
    /// `z = x√n`, each `Kᵢ` a rapidly converging theta-like series.
    fn pelz_good_cdf(n: u64, x: f64) -> f64 {
        let z = (n as f64).sqrt() * x;
        if -PI * PI / 8.0 / (z * z) < -708.0 {
            return 0.0;
        }
        let (z2, z4, z6) = (z * z, z.powi(4), z.powi(6));
        let (pi2, pi4, pi6) = (PI * PI, PI.powi(4), PI.powi(6));
        let sqrt_2pi = (2.0 * PI).sqrt();
        let terms = (16.0 * z / PI).ceil() as u64;

        // Sums over odd multiples w = (2k − 1) of π/2: weights e^(−w²π²/(8z²)).
        let (mut s0, mut s1, mut s2, mut s3) = (0.0, 0.0, 0.0, 0.0);
        // Sums over all multiples k of π: weights e^(−k²π²/(2z²)).
        let (mut t2, mut t3) = (0.0, 0.0);
        for k in 1..=terms {
            let w = (2 * k - 1) as f64;
            let (w2, w4, w6) = (w * w, w.powi(4), w.powi(6));
            let odd_weight = (-w2 * pi2 / (8.0 * z2)).exp();
            s0 += odd_weight;
            s1 += (pi2 * w2 / 4.0 - z2) * odd_weight;
            s2 += (6.0 * z6
                + 2.0 * z4
                + (2.0 * z4 - 5.0 * z2) * pi2 * w2 / 4.0
                + (1.0 - 2.0 * z2) * pi4 * w4 / 16.0)
                * odd_weight;
            s3 += (-30.0 * z6 - 90.0 * z6 * z2
                + (135.0 * z4 - 96.0 * z6) * pi2 * w2 / 4.0
                + (212.0 * z4 - 60.0 * z2) * pi4 * w4 / 16.0
                + (5.0 - 30.0 * z2) * pi6 * w6 / 64.0)
                * odd_weight;
            let kf = k as f64;
            let all_weight = (-kf * kf * pi2 / (2.0 * z2)).exp();
            t2 += kf * kf * all_weight;
            t3 += (3.0 * z2 - pi2 * kf * kf) * kf * kf * all_weight;
        }
        let k0 = sqrt_2pi / z * s0;
        let k1 = sqrt_2pi / (6.0 * z4) * s1;
        let k2 = sqrt_2pi / (72.0 * z6 * z) * s2 - pi2 * sqrt_2pi / (36.0 * z2 * z) * t2;
        let k3 = sqrt_2pi / (6480.0 * z6 * z4) * s3 + pi2 * sqrt_2pi / (216.0 * z6) * t3;
        let root_n = (n as f64).sqrt();
        k0 + k1 / root_n + k2 / (root_n * root_n) + k3 / (root_n * root_n * root_n)
    }

    /// `ln(k!)`: exact products below 30, Stirling's series above (error below 1e-15).
    fn ln_factorial(k: u64) -> f64 {
        if k < 30 {
            return (2..=k).map(|i| i as f64).product::<f64>().ln();
        }
        let kf = k as f64;
        (kf + 0.5) * kf.ln() - kf + 0.5 * (2.0 * PI).ln() + stirling_correction(kf)
    }

    /// `ln(n!/nⁿ)`, without the cancellation of `ln n! − n ln n` for large `n`.
    fn ln_factorial_over_power(n: u64) -> f64 {
        let nf = n as f64;
        if n < 30 {
            return (1..=n).map(|i| (i as f64 / nf).ln()).sum();
        }
        0.5 * nf.ln() - nf + 0.5 * (2.0 * PI).ln() + stirling_correction(nf)
    }

    /// `ln k! − ((k + ½) ln k − k + ½ ln 2π)`: the first four terms of Stirling's series.
    fn stirling_correction(k: f64) -> f64 {
        let inverse = 1.0 / k;
        let inverse_squared = inverse * inverse;
        inverse
            * (1.0 / 12.0
                - inverse_squared
                    * (1.0 / 360.0 - inverse_squared * (1.0 / 1260.0 - inverse_squared / 1680.0)))
    }
}

// ---------------------------------------------------------------------------------------------
// The drift decision
// ---------------------------------------------------------------------------------------------

/// What counts as drift. Missing fields in a stored configuration take the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriftConfig {
    /// A feature can only drift when its p-value is below this (default 0.05, the
    /// conventional 5 % false-alarm rate per feature).
    pub p_value_threshold: f64,
    /// Effect-size floor: a feature can only drift when `D` is at least this (default 0.1: at
    /// some value the two ECDFs differ by 10 percentage points, e.g. a mean shift of about a
    /// quarter of a standard deviation for a normal feature). With 10,000 values a side,
    /// `D ≈ 0.02` is already significant at 5 %, so the floor is what keeps harmless shifts quiet.
    pub min_statistic: f64,
    /// Each side is cut down to at most this many values by a deterministic subsample before the
    /// test (default 10,000: the largest size whose p-value is still exact, and milliseconds of
    /// work). It bounds the cost and stops p-values from vanishing merely because a batch is big.
    pub max_sample: usize,
    /// Seed of the subsample; the same data and seed always give the same report.
    pub seed: u64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            p_value_threshold: 0.05,
            min_statistic: 0.1,
            max_sample: EXACT_MAX_SAMPLE,
            seed: 0,
        }
    }
}

impl DriftConfig {
    fn validate(&self) -> Result<(), DriftError> {
        if !(0.0..=1.0).contains(&self.p_value_threshold) {
            return Err(DriftError::InvalidConfig(format!(
                "p_value_threshold must be in [0, 1], got {}",
                self.p_value_threshold
            )));
        }
        if !(0.0..=1.0).contains(&self.min_statistic) {
            return Err(DriftError::InvalidConfig(format!(
                "min_statistic must be in [0, 1], got {}",
                self.min_statistic
            )));
        }
        if self.max_sample == 0 {
            return Err(DriftError::InvalidConfig(
                "max_sample must be at least 1".to_string(),
            ));
        }
        Ok(())
    }
}

/// The test result and decision for one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    pub feature: String,
    /// KS statistic `D`; `None` when the feature could not be tested (no values on a side).
    pub statistic: Option<f64>,
    /// KS p-value; `None` when the feature could not be tested.
    pub p_value: Option<f64>,
    /// Values that entered the test: non-missing, then subsampled to at most `max_sample`.
    pub reference_size: usize,
    pub current_size: usize,
    /// Non-missing values available before subsampling.
    pub reference_available: usize,
    pub current_available: usize,
    /// `p_value < p_value_threshold && statistic >= min_statistic`; false when not tested.
    pub drifted: bool,
}

impl FeatureDrift {
    pub fn tested(&self) -> bool {
        self.statistic.is_some()
    }
}

/// Drift of every feature, stored as JSON and shown on the web page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// One entry per feature, in the order of the reference columns.
    pub features: Vec<FeatureDrift>,
    /// Whether any feature drifted.
    pub drifted: bool,
    /// The tested feature with the largest `D` (the first of equals), drifted or not.
    pub worst: Option<String>,
    /// The configuration that made the decisions.
    pub config: DriftConfig,
}

/// Tests every feature of `reference` against the column of the same name in `current`.
///
/// Columns are `(name, values)` pairs, e.g. `("house_size", vec![…])` or `(String, &[f64])`.
/// Both sides must name the same features, each once (anything else is an error: it means the
/// caller paired the wrong data). NaN values are dropped as missing; a feature left with no values
/// on either side is reported as not tested. See [`DriftConfig`] for the decision.
pub fn drift_report<N, V>(
    reference: &[(N, V)],
    current: &[(N, V)],
    config: &DriftConfig,
) -> Result<DriftReport, DriftError>
where
    N: AsRef<str>,
    V: AsRef<[f64]>,
{
    config.validate()?;
    check_names(reference, "reference")?;
    check_names(current, "current")?;
    if let Some((name, _)) = current
        .iter()
        .find(|(name, _)| !reference.iter().any(|(r, _)| r.as_ref() == name.as_ref()))
    {
        return Err(DriftError::UnmatchedFeature {
            feature: name.as_ref().to_string(),
            present_in: "current",
            missing_from: "reference",
        });
    }

    let mut features = Vec::with_capacity(reference.len());
    for (name, reference_values) in reference {
        let name = name.as_ref();
        let current_values = current
            .iter()
            .find(|(c, _)| c.as_ref() == name)
            .map(|(_, values)| values.as_ref())
            .ok_or_else(|| DriftError::UnmatchedFeature {
                feature: name.to_string(),
                present_in: "reference",
                missing_from: "current",
            })?;
        features.push(feature_drift(
            name,
            reference_values.as_ref(),
            current_values,
            config,
        )?);
    }

    let worst = features
        .iter()
        .filter_map(|f| f.statistic.map(|d| (d, &f.feature)))
        .fold(None::<(f64, &String)>, |best, (d, name)| match best {
            Some((best_d, _)) if best_d >= d => best,
            _ => Some((d, name)),
        })
        .map(|(_, name)| name.clone());
    Ok(DriftReport {
        drifted: features.iter().any(|f| f.drifted),
        features,
        worst,
        config: *config,
    })
}

fn check_names<N: AsRef<str>, V>(columns: &[(N, V)], side: &'static str) -> Result<(), DriftError> {
    let mut seen = HashSet::new();
    for (name, _) in columns {
        if !seen.insert(name.as_ref()) {
            return Err(DriftError::DuplicateFeature {
                feature: name.as_ref().to_string(),
                side,
            });
        }
    }
    Ok(())
}

const REFERENCE_SIDE: u64 = 0;
const CURRENT_SIDE: u64 = 1;

fn feature_drift(
    name: &str,
    reference: &[f64],
    current: &[f64],
    config: &DriftConfig,
) -> Result<FeatureDrift, DriftError> {
    let reference_present = present_values(reference);
    let current_present = present_values(current);
    let reference_tested = subsample(reference_present.clone(), name, REFERENCE_SIDE, config);
    let current_tested = subsample(current_present.clone(), name, CURRENT_SIDE, config);
    let mut drift = FeatureDrift {
        feature: name.to_string(),
        statistic: None,
        p_value: None,
        reference_size: reference_tested.len(),
        current_size: current_tested.len(),
        reference_available: reference_present.len(),
        current_available: current_present.len(),
        drifted: false,
    };
    if reference_tested.is_empty() || current_tested.is_empty() {
        return Ok(drift);
    }
    let test = ks_two_sample(&reference_tested, &current_tested)?;
    drift.statistic = Some(test.statistic);
    drift.p_value = Some(test.p_value);
    drift.drifted =
        test.p_value < config.p_value_threshold && test.statistic >= config.min_statistic;
    Ok(drift)
}

fn present_values(values: &[f64]) -> Vec<f64> {
    values.iter().copied().filter(|v| !v.is_nan()).collect()
}

/// At most `max_sample` of `values`, chosen uniformly by a generator keyed on the seed, the
/// feature name and the side, so each feature and side gets its own reproducible choice.
fn subsample(values: Vec<f64>, feature: &str, side: u64, config: &DriftConfig) -> Vec<f64> {
    if values.len() <= config.max_sample {
        return values;
    }
    let mut rng = SplitMix64::keyed(config.seed, &[stable_name_hash(feature), side]);
    sample_indices(&mut rng, values.len(), config.max_sample)
        .into_iter()
        .map(|i| values[i])
        .collect()
}

/// FNV-1a of the name: unlike `std`'s hasher, fixed across Rust releases and platforms.
fn stable_name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    //! Reference values come from SciPy 1.17.1 (`pip install scipy` in a throw-away venv), by
    //! this script; `sample` ports `bell_sample` below (and SplitMix64) bit for bit:
    //!
    //! ```python
    //! import math
    //! from scipy import stats
    //! MASK = (1 << 64) - 1
    //! def mix64(z):
    //!     z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    //!     z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    //!     return z ^ (z >> 31)
    //! class SplitMix64:  # port of appraise_core::rng::SplitMix64
    //!     def __init__(self, seed): self.state = seed
    //!     def next_f64(self):
    //!         self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
    //!         return (mix64(self.state) >> 11) * (1.0 / (1 << 53))
    //! def sample(seed, n, shift, decimals):
    //!     rng, scale, out = SplitMix64(seed), 10.0 ** decimals, []
    //!     for _ in range(n):
    //!         v = shift + (rng.next_f64() + rng.next_f64() + rng.next_f64() + rng.next_f64() - 2.0)
    //!         out.append(math.floor(v * scale) / scale)
    //!     return out
    //! def show(name, a, b):
    //!     r = stats.ks_2samp(a, b)
    //!     print(f"{name}: statistic={float(r.statistic)!r} pvalue={float(r.pvalue)!r}")
    //! show("literal unequal", [1.2, 3.4, 3.4, 0.5, 2.2, 5.0, 3.4, 1.2, 4.4, 2.0],
    //!      [3.4, 2.2, 6.1, 4.4, 4.4, 5.5, 7.0, 3.3])
    //! show("literal equal", [1, 2, 2, 3, 3, 3, 4, 5, 5, 6, 7, 8], [2, 3, 4, 4, 5, 5, 6, 6, 7, 8, 8, 9])
    //! show("generated 300 v 200", sample(1, 300, 0.0, 1), sample(2, 200, 0.15, 1))
    //! show("generated 10000 v 10000", sample(3, 10000, 0.0, 2), sample(4, 10000, 0.02, 2))
    //! show("generated 10000 v 7000", sample(13, 10000, 0.0, 2), sample(14, 7000, 0.0, 2))
    //! show("shifted 400 v 300", sample(5, 400, 0.0, 3), sample(6, 300, 1.0, 3))
    //! show("asymptotic 25000 v 15000", sample(7, 25000, 0.0, 2), sample(8, 15000, 0.0, 2))
    //! show("asymptotic shifted 25000 v 15000", sample(9, 25000, 0.0, 2), sample(10, 15000, 0.05, 2))
    //! show("asymptotic 12000 v 9", sample(11, 12000, 0.0, 2), sample(12, 9, 0.3, 2))
    //! show("asymptotic 10001 v 10001", sample(17, 10001, 0.0, 2), sample(18, 10001, 0.02, 2))
    //! for n, x in [(10, 0.08), (10, 0.95), (20, 0.6), (50, 0.1), (10, 0.21), (50, 0.25),
    //!              (100, 0.3), (200, 0.03), (200, 0.0312), (1000, 0.06), (150, 0.1),
    //!              (5000, 0.01), (200000, 0.002), (2000000, 0.0015), (10000, 0.2)]:
    //!     print(f"kstwo.sf({x}, {n}) = {float(stats.kstwo.sf(x, n))!r}")
    //! ```

    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Bell-shaped values (a sum of four uniforms, sd ≈ 0.577) plus `shift`, floored to
    /// `decimals` places so that ties occur; identical to `sample` in the script above.
    fn bell_sample(seed: u64, n: usize, shift: f64, decimals: i32) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        let scale = 10f64.powi(decimals);
        (0..n)
            .map(|_| {
                let v = shift
                    + (rng.next_f64() + rng.next_f64() + rng.next_f64() + rng.next_f64() - 2.0);
                (v * scale).floor() / scale
            })
            .collect()
    }

    /// Relative 1e-6 for ordinary p-values, absolute 1e-12 for tiny ones.
    fn assert_p_close(got: f64, want: f64, what: &str) {
        if want > 1e-12 {
            let relative = (got - want).abs() / want;
            assert!(relative < 1e-6, "{what}: p {got:e}, SciPy {want:e}");
        } else {
            assert!(
                (got - want).abs() < 1e-12,
                "{what}: p {got:e}, SciPy {want:e}"
            );
        }
    }

    fn check_against_scipy(
        a: &[f64],
        b: &[f64],
        statistic: f64,
        p_value: f64,
        method: KsMethod,
        what: &str,
    ) -> KsTest {
        let test = ks_two_sample(a, b).unwrap();
        assert!(
            (test.statistic - statistic).abs() < 1e-12,
            "{what}: D {} vs SciPy {statistic}",
            test.statistic
        );
        assert_p_close(test.p_value, p_value, what);
        assert_eq!(test.method, method, "{what}");
        // The test is symmetric in its samples.
        assert_eq!(ks_two_sample(b, a).unwrap(), test, "{what} swapped");
        test
    }

    #[test]
    fn small_samples_with_ties_match_scipy_exact() {
        let a = [1.2, 3.4, 3.4, 0.5, 2.2, 5.0, 3.4, 1.2, 4.4, 2.0];
        let b = [3.4, 2.2, 6.1, 4.4, 4.4, 5.5, 7.0, 3.3];
        check_against_scipy(
            &a,
            &b,
            0.425,
            0.29553453082864845,
            KsMethod::Exact,
            "10 v 8",
        );

        let a = [1., 2., 2., 3., 3., 3., 4., 5., 5., 6., 7., 8.];
        let b = [2., 3., 4., 4., 5., 5., 6., 6., 7., 8., 8., 9.];
        let equal = 0.5360977695073805;
        check_against_scipy(&a, &b, 1.0 / 3.0, equal, KsMethod::Exact, "12 v 12");

        let a = bell_sample(1, 300, 0.0, 1);
        let b = bell_sample(2, 200, 0.15, 1);
        let p = 0.02624180806284244;
        check_against_scipy(&a, &b, 0.4 / 3.0, p, KsMethod::Exact, "300 v 200");
    }

    #[test]
    fn ten_thousand_a_side_matches_scipy_exact_in_milliseconds() {
        let a = bell_sample(3, 10_000, 0.0, 2);
        let b = bell_sample(4, 10_000, 0.02, 2);
        let started = Instant::now();
        let p = 0.0001043687301288486;
        check_against_scipy(&a, &b, 0.0314, p, KsMethod::Exact, "10000 v 10000");
        // Sorting and one merge walk: a few ms even unoptimised; a quadratic walk takes seconds.
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );

        let a = bell_sample(13, 10_000, 0.0, 2);
        let b = bell_sample(14, 7_000, 0.0, 2);
        let (d, p) = (0.014271428571428572, 0.36749206603696544);
        check_against_scipy(&a, &b, d, p, KsMethod::Exact, "10000 v 7000");
    }

    #[test]
    fn shifted_samples_get_a_tiny_p_value() {
        let a = bell_sample(5, 400, 0.0, 3);
        let b = bell_sample(6, 300, 1.0, 3);
        let (d, p) = (0.5908333333333333, 4.712991165117543e-56);
        let test = check_against_scipy(&a, &b, d, p, KsMethod::Exact, "shifted");
        // The exit-probability recursion keeps its relative precision even this far out.
        assert!((test.p_value - p).abs() / p < 1e-6, "{:e}", test.p_value);
    }

    #[test]
    fn samples_above_ten_thousand_match_scipy_asymptotic() {
        let a = bell_sample(7, 25_000, 0.0, 2);
        let b = bell_sample(8, 15_000, 0.0, 2);
        let (d, p) = (0.011719999999999953, 0.15098353784930751);
        check_against_scipy(&a, &b, d, p, KsMethod::Asymptotic, "25000 v 15000");

        let a = bell_sample(9, 25_000, 0.0, 2);
        let b = bell_sample(10, 15_000, 0.05, 2);
        let (d, p) = (0.03534666666666669, 1.3014362479416871e-10);
        check_against_scipy(&a, &b, d, p, KsMethod::Asymptotic, "25000 v 15000 shifted");

        // Effective size round(12000·9/12009) = 9: the small-n branch of kstwo.
        let a = bell_sample(11, 12_000, 0.0, 2);
        let b = bell_sample(12, 9, 0.3, 2);
        let (d, p) = (0.6081388888888888, 0.001008865952971346);
        check_against_scipy(&a, &b, d, p, KsMethod::Asymptotic, "12000 v 9");

        // Effective size 10001·10001/20002 = 5000.5, which NumPy rounds to even: 5000.
        let a = bell_sample(17, 10_001, 0.0, 2);
        let b = bell_sample(18, 10_001, 0.02, 2);
        let (d, p) = (0.027897210278972184, 0.0008177130787806731);
        check_against_scipy(&a, &b, d, p, KsMethod::Asymptotic, "10001 v 10001");
    }

    #[test]
    fn kolmogorov_distribution_matches_scipy_kstwo_in_every_regime() {
        let cases = [
            (10, 0.08, 0.9999978058034054, "Ruben–Gambino, n·x ≤ 1"),
            (
                10,
                0.95,
                1.9531250000000172e-13,
                "Ruben–Gambino, n·x ≥ n − 1",
            ),
            (
                20,
                0.6,
                2.0483011649719853e-07,
                "x ≥ 1/2: twice the Smirnov tail",
            ),
            (
                50,
                0.1,
                0.6623112704658186,
                "Durbin matrix, small n, n·x whole",
            ),
            (
                10,
                0.21,
                0.6963025889106403,
                "Durbin matrix, small n, n·x = 3 − 0.9",
            ),
            (
                50,
                0.25,
                0.0030657620198693003,
                "SciPy's Pomeranz regime, by Durbin here",
            ),
            (100, 0.3, 1.7719869892662917e-08, "Miller, n ≤ 140"),
            (200, 0.03, 0.991436524714942, "Durbin matrix, n > 140"),
            (
                200,
                0.0312,
                0.9866775627059003,
                "Durbin matrix, n > 140, n·x = 7 − 0.76",
            ),
            (1000, 0.06, 0.001428597887952891, "Miller, n > 140"),
            (150, 0.1, 0.09292132232164585, "Pelz–Good, small n"),
            (5000, 0.01, 0.6954557253913853, "Pelz–Good"),
            (200_000, 0.002, 0.39995085369038097, "Pelz–Good, n > 100000"),
            (
                2_000_000,
                0.0015,
                0.00024657290508461606,
                "Smirnov approximation, n > 10^6",
            ),
            (10_000, 0.2, 0.0, "n·x² ≥ 370"),
        ];
        for (n, x, want, regime) in cases {
            // Same algorithms as SciPy, so far tighter than the 1e-6 asked of the KS p-value.
            let got = kolmogorov::sf(n, x);
            let error = if want > 0.0 {
                (got - want).abs() / want
            } else {
                got
            };
            assert!(
                error < 1e-9,
                "{regime}: kstwo.sf({x}, {n}) = {got:e}, SciPy {want:e}"
            );
        }
    }

    /// Runs `work` on a thread and fails, instead of hanging, if it takes more than 10 s.
    fn within_ten_seconds<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || sender.send(work()));
        receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("did not finish within 10 s")
    }

    #[test]
    fn identical_and_constant_samples_return_p_one_promptly() {
        let results = within_ten_seconds(|| {
            let small = bell_sample(15, 500, 0.0, 1);
            let large = bell_sample(16, 20_000, 0.0, 1);
            [
                ks_two_sample(&small, &small).unwrap(),
                ks_two_sample(&large, &large).unwrap(),
                ks_two_sample(&[3.5; 40], &[3.5; 7]).unwrap(),
                ks_two_sample(&[3.5; 12_000], &[3.5; 30_000]).unwrap(),
                ks_two_sample(&[-0.0, 1.0], &[0.0, 1.0]).unwrap(),
            ]
        });
        for test in results {
            assert_eq!((test.statistic, test.p_value), (0.0, 1.0), "{test:?}");
        }
        assert_eq!(results[1].method, KsMethod::Asymptotic);
    }

    #[test]
    fn disjoint_single_values_are_fully_apart_but_not_significant() {
        // SciPy: ks_2samp([1.0], [2.0]) → statistic 1.0, pvalue 1.0; [1, 2] v [3, 4] → 1/3.
        let test = ks_two_sample(&[1.0], &[2.0]).unwrap();
        assert_eq!((test.statistic, test.p_value), (1.0, 1.0));
        let test = ks_two_sample(&[1.0, 2.0], &[3.0, 4.0]).unwrap();
        assert_eq!(test.statistic, 1.0);
        assert!((test.p_value - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn nan_and_empty_samples_are_rejected() {
        assert_eq!(
            ks_two_sample(&[1.0, 2.0], &[0.5, f64::NAN]),
            Err(DriftError::NotANumber {
                sample: "second",
                index: 1
            })
        );
        assert_eq!(
            ks_two_sample(&[], &[1.0]),
            Err(DriftError::EmptySample { sample: "first" })
        );
        // Infinities are ordinary (extreme) values.
        let test = ks_two_sample(&[f64::NEG_INFINITY, 1.0], &[1.0, f64::INFINITY]).unwrap();
        assert_eq!(test.statistic, 0.5);
    }

    fn columns<'a>(pairs: &[(&'a str, Vec<f64>)]) -> Vec<(&'a str, Vec<f64>)> {
        pairs.to_vec()
    }

    #[test]
    fn a_shifted_feature_drifts_and_is_the_worst() {
        let reference = columns(&[
            ("house_size", bell_sample(31, 3_000, 0.0, 2)),
            ("price", bell_sample(32, 3_000, 0.0, 2)),
        ]);
        let current = columns(&[
            ("price", bell_sample(33, 2_000, 0.5, 2)),
            ("house_size", bell_sample(34, 2_000, 0.0, 2)),
        ]);
        let report = drift_report(&reference, &current, &DriftConfig::default()).unwrap();
        assert!(report.drifted);
        assert_eq!(report.worst.as_deref(), Some("price"));
        let names: Vec<&str> = report.features.iter().map(|f| f.feature.as_str()).collect();
        assert_eq!(names, ["house_size", "price"], "reference order");
        let (size, price) = (&report.features[0], &report.features[1]);
        assert!(!size.drifted && price.drifted, "{report:#?}");
        assert!(price.p_value.unwrap() < 1e-12 && price.statistic.unwrap() > 0.2);
        assert!(size.p_value.unwrap() > 0.05);
        assert_eq!((price.reference_size, price.current_size), (3_000, 2_000));
        // The report's numbers are those of the plain test on the same columns.
        let direct = ks_two_sample(&reference[1].1, &current[0].1).unwrap();
        assert_eq!(price.statistic, Some(direct.statistic));
        assert_eq!(price.p_value, Some(direct.p_value));
    }

    #[test]
    fn the_effect_size_floor_keeps_a_significant_but_small_shift_quiet() {
        // 50,000 rows a side, shifted by ~0.1 sd: subsampled to 10,000 a side, p is far below
        // 0.05 but D stays under the 0.1 floor.
        let reference = columns(&[("price", bell_sample(21, 50_000, 0.0, 3))]);
        let current = columns(&[("price", bell_sample(22, 50_000, 0.06, 3))]);
        let config = DriftConfig::default();
        let report = drift_report(&reference, &current, &config).unwrap();
        let price = &report.features[0];
        assert!(price.p_value.unwrap() < 1e-4, "{price:?}");
        assert!(price.statistic.unwrap() < config.min_statistic, "{price:?}");
        assert!(!price.drifted && !report.drifted);
        assert_eq!((price.reference_size, price.current_size), (10_000, 10_000));
        assert_eq!(price.reference_available, 50_000);

        // Without the floor the same shift is flagged.
        let no_floor = DriftConfig {
            min_statistic: 0.0,
            ..config
        };
        assert!(
            drift_report(&reference, &current, &no_floor)
                .unwrap()
                .drifted
        );
    }

    #[test]
    fn subsampling_is_deterministic_for_a_seed() {
        let reference = columns(&[("price", bell_sample(41, 30_000, 0.0, 3))]);
        let current = columns(&[("price", bell_sample(42, 25_000, 0.0, 3))]);
        let config = DriftConfig {
            seed: 7,
            ..DriftConfig::default()
        };
        let first = drift_report(&reference, &current, &config).unwrap();
        let second = drift_report(&reference, &current, &config).unwrap();
        assert_eq!(first, second);
        let other_seed = DriftConfig { seed: 8, ..config };
        let third = drift_report(&reference, &current, &other_seed).unwrap();
        assert_ne!(
            first.features[0].statistic, third.features[0].statistic,
            "another seed picks other rows"
        );
    }

    #[test]
    fn missing_values_are_dropped_and_an_empty_side_is_not_tested() {
        let clean = bell_sample(51, 400, 0.0, 2);
        let with_gaps: Vec<f64> = clean
            .iter()
            .enumerate()
            .flat_map(|(i, &v)| {
                if i % 3 == 0 {
                    vec![f64::NAN, v]
                } else {
                    vec![v]
                }
            })
            .collect();
        let current_values = bell_sample(52, 300, 0.3, 2);
        let reference = columns(&[("price", with_gaps), ("bed", vec![2.0, 3.0, 3.0])]);
        let current = columns(&[
            ("price", current_values.clone()),
            ("bed", vec![f64::NAN; 5]),
        ]);
        let report = drift_report(&reference, &current, &DriftConfig::default()).unwrap();

        let (price, bed) = (&report.features[0], &report.features[1]);
        let direct = ks_two_sample(&clean, &current_values).unwrap();
        assert_eq!(price.statistic, Some(direct.statistic));
        assert_eq!(price.reference_size, 400);
        assert!(price.drifted);

        assert!(!bed.tested() && !bed.drifted);
        assert_eq!((bed.statistic, bed.p_value), (None, None));
        assert_eq!((bed.reference_size, bed.current_size), (3, 0));
        assert_eq!(report.worst.as_deref(), Some("price"));
    }

    #[test]
    fn mismatched_features_and_bad_configuration_are_errors() {
        let config = DriftConfig::default();
        let reference = columns(&[("price", vec![1.0]), ("bed", vec![1.0])]);
        let current = columns(&[("price", vec![1.0])]);
        assert_eq!(
            drift_report(&reference, &current, &config),
            Err(DriftError::UnmatchedFeature {
                feature: "bed".to_string(),
                present_in: "reference",
                missing_from: "current",
            })
        );
        assert!(matches!(
            drift_report(&current, &reference, &config),
            Err(DriftError::UnmatchedFeature {
                present_in: "current",
                ..
            })
        ));
        let twice = columns(&[("price", vec![1.0]), ("price", vec![2.0])]);
        assert!(matches!(
            drift_report(&twice, &current, &config),
            Err(DriftError::DuplicateFeature {
                side: "reference",
                ..
            })
        ));
        for bad in [
            DriftConfig {
                max_sample: 0,
                ..config
            },
            DriftConfig {
                p_value_threshold: f64::NAN,
                ..config
            },
            DriftConfig {
                min_statistic: 1.5,
                ..config
            },
        ] {
            assert!(matches!(
                drift_report(&current, &current, &bad),
                Err(DriftError::InvalidConfig(_))
            ));
        }
    }

    #[test]
    fn the_report_round_trips_through_json() {
        let reference = columns(&[("price", vec![1.0, 2.0, 3.0]), ("bed", vec![1.0])]);
        let current = columns(&[("price", vec![2.5, 3.5]), ("bed", vec![])]);
        let report = drift_report(&reference, &current, &DriftConfig::default()).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["features"][1]["statistic"], serde_json::Value::Null);
        assert_eq!(json["config"]["max_sample"], 10_000);
        let back: DriftReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
        // A stored configuration may name only what it changes.
        let config: DriftConfig = serde_json::from_str(r#"{"min_statistic": 0.2}"#).unwrap();
        assert_eq!(config.min_statistic, 0.2);
        assert_eq!(config.p_value_threshold, 0.05);
    }
}
