//! Regression metrics and their mergeable summary.

use serde::{Deserialize, Serialize};

use super::check_pair;
use crate::error::Result;

/// What RMSE, MSE, MAE and R² need, computed per partition and merged on the driver.
///
/// The spread of `y_true` is kept as a mean and a sum of squared deviations (`m2`) and merged
/// with Chan et al.'s pairwise update, so R² does not suffer the cancellation of
/// `Σy² − (Σy)²/n` when the labels have a large mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RegressionSummary {
    /// Number of rows.
    pub count: u64,
    /// Mean of `y_true`.
    pub mean_true: f64,
    /// `Σ (y_true − mean_true)²`.
    pub m2_true: f64,
    /// `Σ (y_true − y_pred)²`.
    pub sum_squared_error: f64,
    /// `Σ |y_true − y_pred|`.
    pub sum_absolute_error: f64,
}

impl RegressionSummary {
    /// The summary of one set of rows.
    ///
    /// # Errors
    /// When the slices are empty, of different lengths or hold a non-finite value.
    pub fn from_slices(y_true: &[f64], y_pred: &[f64]) -> Result<Self> {
        check_pair("y_true", y_true, "y_pred", y_pred)?;
        let n = y_true.len() as f64;
        let mean = y_true.iter().sum::<f64>() / n;
        let m2 = y_true.iter().map(|y| (y - mean) * (y - mean)).sum();
        let (mut sse, mut sae) = (0.0, 0.0);
        for (t, p) in y_true.iter().zip(y_pred) {
            let e = t - p;
            sse += e * e;
            sae += e.abs();
        }
        Ok(Self {
            count: y_true.len() as u64,
            mean_true: mean,
            m2_true: m2,
            sum_squared_error: sse,
            sum_absolute_error: sae,
        })
    }

    /// The summary of both sets of rows. Associative (up to rounding); the empty summary
    /// (`Default`) is its identity.
    pub fn merge(self, other: Self) -> Self {
        if self.count == 0 {
            return other;
        }
        if other.count == 0 {
            return self;
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let delta = other.mean_true - self.mean_true;
        Self {
            count: self.count + other.count,
            mean_true: self.mean_true + delta * nb / n,
            m2_true: self.m2_true + other.m2_true + delta * delta * na * nb / n,
            sum_squared_error: self.sum_squared_error + other.sum_squared_error,
            sum_absolute_error: self.sum_absolute_error + other.sum_absolute_error,
        }
    }

    /// Mean squared error (NaN for the empty summary).
    pub fn mse(&self) -> f64 {
        self.sum_squared_error / self.count as f64
    }

    /// Root mean squared error.
    pub fn rmse(&self) -> f64 {
        self.mse().sqrt()
    }

    /// Mean absolute error.
    pub fn mae(&self) -> f64 {
        self.sum_absolute_error / self.count as f64
    }

    /// Coefficient of determination `1 − SS_res / SS_tot`. When `y_true` is constant
    /// (`SS_tot = 0`) it is 1 for a perfect prediction and 0 otherwise, as in scikit-learn
    /// (`force_finite=True`).
    pub fn r2(&self) -> f64 {
        if self.m2_true == 0.0 {
            return if self.sum_squared_error == 0.0 {
                1.0
            } else {
                0.0
            };
        }
        1.0 - self.sum_squared_error / self.m2_true
    }
}

/// Mean squared error `(1/n) Σ (y − ŷ)²`.
///
/// # Errors
/// When the slices are empty, of different lengths or hold a non-finite value.
pub fn mse(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    RegressionSummary::from_slices(y_true, y_pred).map(|s| s.mse())
}

/// Root mean squared error `√mse`.
///
/// # Errors
/// As [`mse`].
pub fn rmse(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    RegressionSummary::from_slices(y_true, y_pred).map(|s| s.rmse())
}

/// Mean absolute error `(1/n) Σ |y − ŷ|`.
///
/// # Errors
/// As [`mse`].
pub fn mae(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    RegressionSummary::from_slices(y_true, y_pred).map(|s| s.mae())
}

/// R², see [`RegressionSummary::r2`].
///
/// # Errors
/// As [`mse`].
pub fn r2(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    RegressionSummary::from_slices(y_true, y_pred).map(|s| s.r2())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn small_example_by_hand() {
        let (t, p) = ([3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0]);
        assert!((mse(&t, &p).unwrap() - 0.375).abs() < 1e-15);
        assert!((mae(&t, &p).unwrap() - 0.5).abs() < 1e-15);
        // scikit-learn's r2_score docstring example.
        assert!((r2(&t, &p).unwrap() - 0.948_608_137_044_967_9).abs() < 1e-15);
        assert_eq!(r2(&[1.0, 1.0], &[1.0, 1.0]).unwrap(), 1.0);
        assert_eq!(r2(&[1.0, 1.0], &[1.0, 2.0]).unwrap(), 0.0);
    }

    #[test]
    fn merged_summaries_match_the_whole_even_with_a_large_mean() {
        let t: Vec<f64> = (0..1000).map(|i| 1e9 + f64::from(i % 17)).collect();
        let p: Vec<f64> = t
            .iter()
            .enumerate()
            .map(|(i, y)| y + (i % 5) as f64 - 2.0)
            .collect();
        let whole = RegressionSummary::from_slices(&t, &p).unwrap();
        let parts: Vec<RegressionSummary> = t
            .chunks(300)
            .zip(p.chunks(300))
            .map(|(a, b)| RegressionSummary::from_slices(a, b).unwrap())
            .collect();
        let merged = parts
            .iter()
            .fold(RegressionSummary::default(), |acc, s| acc.merge(*s));
        assert_eq!(merged.count, 1000);
        assert!((merged.r2() - whole.r2()).abs() < 1e-9);
        assert!((merged.mse() - whole.mse()).abs() < 1e-12);
        assert!((merged.m2_true - whole.m2_true).abs() <= 1e-9 * whole.m2_true);
    }

    #[test]
    fn bad_input_is_named() {
        let e = mse(&[1.0, 2.0], &[1.0]).unwrap_err().to_string();
        assert!(e.contains("`y_pred`: has 1 values but y_true has 2"), "{e}");
        let e = mse(&[], &[]).unwrap_err().to_string();
        assert!(e.contains("`y_true`: is empty"), "{e}");
        let e = r2(&[1.0, f64::NAN], &[1.0, 2.0]).unwrap_err().to_string();
        assert!(e.contains("NaN at index 1"), "{e}");
    }
}
