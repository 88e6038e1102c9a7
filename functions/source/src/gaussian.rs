//! The standard normal distribution: its CDF, its inverse, and sampling it inside an interval.
//!
//! The generator draws each price from a normal distribution of log-prices *restricted to the
//! batch's price band* (see [`crate::generator`]). Sampling a truncated normal by inversion needs
//! Φ and Φ⁻¹; neither is in `std`, and pulling in a statistics crate for two functions is not
//! worth it. Both approximations below are textbook ones, accurate far beyond what synthetic
//! listings need (relative error about 1e-7, the same for both since Φ⁻¹ is polished against
//! Φ), and both stay accurate deep in the tails, which is where a high price band lives.

/// Φ(x), the probability that a standard normal deviate is at most `x`.
///
/// Computed as `erfc(-x / √2) / 2`, which keeps full relative precision in the lower tail
/// (Φ(-30) is about 5e-198, not 0).
pub fn cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function, by the Chebyshev-fitted formula of Press et al.
/// (*Numerical Recipes*, `erfcc`): fractional error below 1.2e-7 for every argument.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let series = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let tail = t * (-z * z + series).exp();
    if x >= 0.0 { tail } else { 2.0 - tail }
}

/// Coefficients of Acklam's lower-tail rational function (numerator, then denominator).
const C: [f64; 6] = [
    -7.784_894_002_430_293e-3,
    -3.223_964_580_411_365e-1,
    -2.400_758_277_161_838,
    -2.549_671_010_050_882,
    4.374_664_141_464_968,
    2.938_163_982_698_783,
];

const D: [f64; 4] = [
    7.784_695_709_041_462e-3,
    3.224_671_290_700_398e-1,
    2.445_134_137_142_996,
    3.754_408_661_907_416,
];

/// Φ⁻¹(p) for `p` in (0, 1): P. J. Acklam's rational approximation, polished by one Halley
/// step against [`cdf`], so `cdf(inverse_cdf(p))` is `p` to within `cdf`'s own accuracy even at
/// `p = 1e-300`. `p` of 0 or 1 gives -∞ or +∞.
pub fn inverse_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const LOW_REGION: f64 = 0.024_25;

    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let rational = if p < LOW_REGION {
        tail_rational((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW_REGION {
        -tail_rational((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        let numerator = (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q;
        let denominator = ((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0;
        numerator / denominator
    };
    // One step of Halley's method on Φ(x) = p polishes the tails (where the rational
    // approximation alone is off by ~1e-6 relative) down to the accuracy of `cdf` itself.
    let density = (-0.5 * rational * rational).exp() / (2.0 * std::f64::consts::PI).sqrt();
    if density > 0.0 && density.is_finite() {
        let step = (cdf(rational) - p) / density;
        rational - step / (1.0 + 0.5 * rational * step)
    } else {
        rational
    }
}

/// The lower-tail rational function of Acklam's approximation, in `q = √(−2 ln p)`.
fn tail_rational(q: f64) -> f64 {
    let numerator = ((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5];
    let denominator = (((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0;
    numerator / denominator
}

/// The probability that a standard normal deviate falls in `[lower, upper]` (either bound may
/// be infinite). Intervals above zero are measured in the mirrored lower tail, where Φ keeps
/// its precision, so a band far out in the upper tail still gets a positive mass.
pub fn mass_between(lower: f64, upper: f64) -> f64 {
    if lower >= upper {
        return 0.0;
    }
    if lower > 0.0 {
        cdf(-lower) - cdf(-upper)
    } else {
        cdf(upper) - cdf(lower)
    }
}

/// A standard normal deviate conditioned on lying in `[lower, upper]`, made from one uniform
/// number `uniform` in (0, 1) by inverting Φ. The result is always inside the interval (it is
/// clamped against rounding); an empty interval gives `lower`.
pub fn truncated(lower: f64, upper: f64, uniform: f64) -> f64 {
    if lower >= upper {
        return lower;
    }
    let deviate = if lower > 0.0 {
        // Sample the mirror image [-upper, -lower] in the lower tail, then flip it back.
        let (low, high) = (cdf(-upper), cdf(-lower));
        -inverse_cdf(low + uniform * (high - low))
    } else {
        let (low, high) = (cdf(lower), cdf(upper));
        inverse_cdf(low + uniform * (high - low))
    };
    deviate.clamp(lower, upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_matches_known_values_and_is_symmetric() {
        assert!((cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((cdf(1.959_963_985) - 0.975).abs() < 2e-7);
        assert!((cdf(-1.0) - 0.158_655_253_9).abs() < 1e-7);
        for x in [-5.0, -2.5, -0.3, 0.7, 3.1] {
            assert!((cdf(x) + cdf(-x) - 1.0).abs() < 1e-7, "symmetry at {x}");
        }
        // Deep lower tail keeps relative precision: Φ(-10) ≈ 7.6199e-24.
        let relative = (cdf(-10.0) / 7.619_853_024e-24 - 1.0).abs();
        assert!(relative < 1e-6, "relative error {relative}");
    }

    #[test]
    fn inverse_cdf_inverts_cdf_across_the_range() {
        for p in [
            1e-300, 1e-12, 1e-4, 0.01, 0.024, 0.3, 0.5, 0.8, 0.976, 0.999_9,
        ] {
            let x = inverse_cdf(p);
            let back = cdf(x);
            assert!((back / p - 1.0).abs() < 1e-9, "p {p}: x {x}, Φ(x) {back}");
        }
        // Against reference quantiles (Wichura's AS241, 16 digits), within cdf's accuracy.
        for (p, expected) in [
            (1e-12, -7.034_483_825_301_132),
            (0.01, -2.326_347_874_040_841),
        ] {
            let x = inverse_cdf(p);
            assert!(
                (x / expected - 1.0).abs() < 1e-7,
                "p {p}: x {x}, expected {expected}"
            );
        }
        assert_eq!(inverse_cdf(0.0), f64::NEG_INFINITY);
        assert_eq!(inverse_cdf(1.0), f64::INFINITY);
    }

    #[test]
    fn truncated_deviates_stay_inside_and_follow_the_conditional_law() {
        // Far in the upper tail: [6, 7] has mass ~1e-9, sampled without rejection.
        assert!(mass_between(6.0, 7.0) > 0.0);
        let mut below_median = 0;
        let n = 10_000;
        for k in 0..n {
            let u = (k as f64 + 0.5) / n as f64;
            let x = truncated(6.0, 7.0, u);
            assert!((6.0..=7.0).contains(&x), "{x}");
            // The conditional median of N(0,1) on [6, 7] is about 6.115.
            if x < 6.115 {
                below_median += 1;
            }
        }
        let share = below_median as f64 / n as f64;
        assert!(
            (share - 0.5).abs() < 0.02,
            "share below conditional median {share}"
        );
        // Unbounded on both sides is the plain normal.
        assert!((truncated(f64::NEG_INFINITY, f64::INFINITY, 0.975) - 1.96).abs() < 1e-3);
        assert_eq!(
            truncated(2.0, 2.0, 0.5),
            2.0,
            "an empty interval gives its lower bound"
        );
    }
}
