//! The two-sample Kolmogorov–Smirnov test, [`ks_two_sample`], as SciPy's
//! `scipy.stats.ks_2samp(a, b)` computes it (defaults: `method='auto'`,
//! `alternative='two-sided'`).
//!
//! The statistic is `D = sup |F_a − F_b|`, the largest gap between the two empirical CDFs,
//! found by sorting each sample once and walking both in step; equal values are stepped past
//! together on both sides, so ties are counted correctly. `D` is computed exactly, as an
//! integer multiple of `1 / lcm(n, m)`. The p-value:
//!
//! - when both samples hold at most [`EXACT_MAX_SAMPLE`] (10,000) values, the *exact*
//!   distribution of `D` under the null hypothesis: for equal sizes the closed alternating
//!   series of Hodges (1958), otherwise a lattice-path recursion that counts the paths leaving
//!   the band `|x/n − y/m| < D`, written so that it yields the exit probability directly
//!   (Viehmann 2021) and stays in `[0, 1]`;
//! - otherwise the *asymptotic* one, `kstwo.sf(D, round(n·m/(n+m)))`: the exact distribution of
//!   the one-sample Kolmogorov statistic for an effective sample size, evaluated with the
//!   algorithm selection of Simard & L'Ecuyer (2011) that SciPy uses (see [`kolmogorov`]).
//!
//! Like SciPy, an exact result that comes out outside `[0, 1]` through rounding falls back to
//! the asymptotic value. Every computation is bounded by the sample sizes; in particular two
//! identical samples (`D = 0`) return `p = 1` at once. (statrs 0.19's `ks_twosample` loops for
//! ever there, DESIGN §10, which is why the project carries its own.) NaN and empty samples are
//! errors: a p-value for them would be meaningless.

use serde::{Deserialize, Serialize};

use super::{DriftError, kolmogorov};

/// Largest sample size for which [`ks_two_sample`] uses the exact null distribution (SciPy's
/// `MAX_AUTO_N`); above it on either side the asymptotic distribution is used.
pub const EXACT_MAX_SAMPLE: usize = 10_000;

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

#[cfg(test)]
pub(super) mod tests {
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
    use crate::rng::SplitMix64;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Bell-shaped values (a sum of four uniforms, sd ≈ 0.577) plus `shift`, floored to
    /// `decimals` places so that ties occur; identical to `sample` in the script above.
    pub(in crate::drift) fn bell_sample(
        seed: u64,
        n: usize,
        shift: f64,
        decimals: i32,
    ) -> Vec<f64> {
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
    fn ten_thousand_a_side_matches_scipy_exact() {
        let a = bell_sample(3, 10_000, 0.0, 2);
        let b = bell_sample(4, 10_000, 0.02, 2);
        let p = 0.0001043687301288486;
        check_against_scipy(&a, &b, 0.0314, p, KsMethod::Exact, "10000 v 10000");

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

    /// Runs `work` on a thread and fails, instead of hanging, if it takes more than 10 s: a guard
    /// against the endless loop statrs has on identical samples (DESIGN.md §10), not a timing.
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
}
