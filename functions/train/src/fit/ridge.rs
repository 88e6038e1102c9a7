//! Ridge regression on standardized features: scikit-learn's
//! `make_pipeline(StandardScaler(), Ridge(alpha))`, solved exactly.
//!
//! Minimizes ‖y − b − Zw‖² + α‖w‖² where Z is X standardized by the training means and
//! (population) standard deviations; the intercept is not penalized. With centred data the
//! solution is (ZᵀZ + αI) w = Zᵀ(y − ȳ), a p×p system (p = the feature count, 16) solved by
//! Cholesky. A constant feature (σ = 0) is left unscaled, as scikit-learn does, and its weight
//! is driven to zero by the penalty.

use appraise_core::model::{Matrix, ridge::Ridge};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RidgeError {
    #[error("no rows to fit on")]
    NoRows,
    #[error("alpha must be positive and finite, got {0}")]
    BadAlpha(f64),
    #[error("the system is not positive definite (non-finite features?)")]
    NotPositiveDefinite,
}

/// Fits ridge regression with penalty `alpha` on standardized features.
pub fn fit_ridge(x: &Matrix, y: &[f64], alpha: f64) -> Result<Ridge, RidgeError> {
    if x.rows == 0 || y.len() != x.rows {
        return Err(RidgeError::NoRows);
    }
    if !(alpha > 0.0 && alpha.is_finite()) {
        return Err(RidgeError::BadAlpha(alpha));
    }
    let (n, p) = (x.rows as f64, x.cols);
    let mut means = vec![0.0; p];
    for i in 0..x.rows {
        for (mean, value) in means.iter_mut().zip(x.row(i)) {
            *mean += value;
        }
    }
    means.iter_mut().for_each(|m| *m /= n);
    let mut scales = vec![0.0; p];
    for i in 0..x.rows {
        for ((scale, value), mean) in scales.iter_mut().zip(x.row(i)).zip(&means) {
            *scale += (value - mean) * (value - mean);
        }
    }
    for scale in &mut scales {
        *scale = (*scale / n).sqrt();
        if *scale == 0.0 {
            *scale = 1.0;
        }
    }
    let y_mean = y.iter().sum::<f64>() / n;

    // Normal equations on standardized, centred data.
    let mut gram = vec![0.0; p * p];
    let mut rhs = vec![0.0; p];
    let mut z = vec![0.0; p];
    for (i, &target) in y.iter().enumerate() {
        for (k, value) in x.row(i).iter().enumerate() {
            z[k] = (value - means[k]) / scales[k];
        }
        let centred = target - y_mean;
        for a in 0..p {
            rhs[a] += z[a] * centred;
            for b in 0..=a {
                gram[a * p + b] += z[a] * z[b];
            }
        }
    }
    for a in 0..p {
        gram[a * p + a] += alpha;
        for b in 0..a {
            gram[b * p + a] = gram[a * p + b];
        }
    }
    let weights = solve_cholesky(&mut gram, rhs, p).ok_or(RidgeError::NotPositiveDefinite)?;
    Ok(Ridge {
        alpha,
        means,
        scales,
        weights,
        intercept: y_mean,
    })
}
/// Solves A x = b for symmetric positive definite A (row-major p×p, overwritten).
fn solve_cholesky(a: &mut [f64], mut b: Vec<f64>, p: usize) -> Option<Vec<f64>> {
    // A = L Lᵀ, L stored in the lower triangle.
    for j in 0..p {
        let mut diagonal = a[j * p + j];
        for k in 0..j {
            diagonal -= a[j * p + k] * a[j * p + k];
        }
        if !(diagonal > 0.0 && diagonal.is_finite()) {
            return None;
        }
        let diagonal = diagonal.sqrt();
        a[j * p + j] = diagonal;
        for i in j + 1..p {
            let mut value = a[i * p + j];
            for k in 0..j {
                value -= a[i * p + k] * a[j * p + k];
            }
            a[i * p + j] = value / diagonal;
        }
    }
    for i in 0..p {
        for k in 0..i {
            b[i] -= a[i * p + k] * b[k];
        }
        b[i] /= a[i * p + i];
    }
    for i in (0..p).rev() {
        for k in i + 1..p {
            b[i] -= a[k * p + i] * b[k];
        }
        b[i] /= a[i * p + i];
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_linear_law_and_matches_sklearn_on_a_small_case() {
        // y = 3 + 2·x0 − x1, no noise, tiny alpha: the weights come back.
        let rows: Vec<[f64; 2]> = (0..50)
            .map(|i| [f64::from(i), f64::from((i * 7) % 11)])
            .collect();
        let y: Vec<f64> = rows.iter().map(|r| 3.0 + 2.0 * r[0] - r[1]).collect();
        let x = Matrix::from_rows(&rows).unwrap();
        let model = fit_ridge(&x, &y, 1e-9).unwrap();
        for (row, target) in rows.iter().zip(&y) {
            assert!((model.predict_row(row) - target).abs() < 1e-6);
        }

        // sklearn: make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(X, y) with
        // X = [[1, 0], [2, 1], [3, 1], [4, 3]], y = [1, 3, 4, 8] predicts
        // [1.16589435, 3.24559778, 4.18350324, 7.40500463] (pipeline.predict(X); scikit-learn
        // 1.9.1 in the peer benchmark's virtualenv).
        let x = Matrix::from_rows(&[[1.0, 0.0], [2.0, 1.0], [3.0, 1.0], [4.0, 3.0]]).unwrap();
        let model = fit_ridge(&x, &[1.0, 3.0, 4.0, 8.0], 1.0).unwrap();
        let expected = [1.165_894_35, 3.245_597_78, 4.183_503_24, 7.405_004_63];
        for (i, want) in expected.iter().enumerate() {
            let got = model.predict_row(x.row(i));
            assert!((got - want).abs() < 1e-7, "row {i}: {got} vs {want}");
        }
        assert_eq!(fit_ridge(&x, &[1.0], 1.0), Err(RidgeError::NoRows));
    }
}
