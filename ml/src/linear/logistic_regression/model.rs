//! A trained logistic regression.

use serde::{Deserialize, Serialize};

use crate::data::{DenseMatrix, Features};
use crate::error::{MlError, Result};
use crate::linear::params::{check_finite, model_getters};
use crate::linear::predict::margins;
use crate::linear::summary::TrainingSummary;
use crate::linear::trainer::Fitted;

use super::ValidLogisticRegression;

/// A trained logistic regression, on the original feature scale.
///
/// Binomial models have a `1 × d` coefficient matrix and one intercept:
/// `P(y = 1 | x) = σ(wᵀx + b)`. Multinomial models have `K × d` coefficients and `K`
/// intercepts: `P(y = k | x) = softmax(Wx + b)ₖ`, with centred intercepts (`Σₖ bₖ = 0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticRegressionModel {
    features: Vec<String>,
    label: String,
    coefficients: DenseMatrix<f64>,
    intercepts: Vec<f64>,
    num_classes: usize,
    threshold: f64,
    summary: TrainingSummary,
    params: ValidLogisticRegression,
}

impl LogisticRegressionModel {
    /// A model from its parts (e.g. read from a model file or trained elsewhere). The
    /// decision threshold is `params.threshold()`.
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`] naming `num_classes` (below 2) or `coefficients`: not one
    /// column per feature, no feature, not one row (binomial, two classes) or `num_classes`
    /// rows (multinomial), not one intercept per row, or a value that is not finite.
    pub fn try_new(
        features: Vec<String>,
        label: String,
        coefficients: DenseMatrix<f64>,
        intercepts: Vec<f64>,
        num_classes: usize,
        summary: TrainingSummary,
        params: ValidLogisticRegression,
    ) -> Result<Self> {
        if num_classes < 2 {
            return Err(MlError::param(
                "num_classes",
                format!("a classifier needs at least 2 classes, got {num_classes}"),
            ));
        }
        let (rows, d) = (coefficients.rows(), coefficients.cols());
        if d == 0 || d != features.len() {
            return Err(MlError::param(
                "coefficients",
                format!(
                    "{d} coefficient columns for {} features (at least one is needed)",
                    features.len()
                ),
            ));
        }
        if !(rows == num_classes || (rows == 1 && num_classes == 2)) {
            return Err(MlError::param(
                "coefficients",
                format!(
                    "{rows} coefficient rows for {num_classes} classes: a binomial model has 1, \
                     a multinomial model one per class"
                ),
            ));
        }
        if intercepts.len() != rows {
            return Err(MlError::param(
                "coefficients",
                format!(
                    "{} intercepts for {rows} coefficient rows",
                    intercepts.len()
                ),
            ));
        }
        check_finite(coefficients.as_slice().iter().chain(&intercepts))?;
        Ok(Self {
            features,
            label,
            coefficients,
            intercepts,
            num_classes,
            threshold: params.threshold(),
            summary,
            params,
        })
    }

    pub(crate) fn from_fitted(fitted: Fitted, params: ValidLogisticRegression) -> Result<Self> {
        let rows = fitted.intercepts.len();
        let d = fitted.features.len();
        let coefficients = DenseMatrix::from_row_major(rows, d, &fitted.coefficients)
            .map_err(|n| MlError::Internal(format!("{n} coefficients for {rows} x {d}")))?;
        Ok(Self {
            features: fitted.features,
            label: fitted.label,
            coefficients,
            intercepts: fitted.intercepts,
            num_classes: fitted.num_classes,
            threshold: params.threshold(),
            summary: fitted.summary,
            params,
        })
    }

    /// The hyper-parameters the model was trained with.
    pub fn params(&self) -> &ValidLogisticRegression {
        &self.params
    }

    /// The coefficients: `1 × d` for a binomial model, `K × d` for a multinomial one.
    pub fn coefficient_matrix(&self) -> &DenseMatrix<f64> {
        &self.coefficients
    }

    /// The intercepts: one for a binomial model, `K` (centred) for a multinomial one.
    pub fn intercepts(&self) -> &[f64] {
        &self.intercepts
    }

    /// Number of classes `K` (2 for a binomial model).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Whether the model is a softmax over `K` coefficient rows.
    pub fn is_multinomial(&self) -> bool {
        self.coefficients.rows() > 1
    }

    /// Probability of class 1 above which a two-class model predicts 1.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    model_getters!();

    fn row_major_coefficients(&self) -> Vec<f64> {
        let (rows, d) = (self.coefficients.rows(), self.coefficients.cols());
        (0..rows)
            .flat_map(|k| (0..d).map(move |j| (k, j)))
            .map(|(k, j)| self.coefficients.get(k, j))
            .collect()
    }

    /// Class probabilities: an `n × K` matrix, column `k` holding `P(y = k | x)`.
    ///
    /// # Errors
    /// [`MlError::InvalidData`] when `features` has another number of columns than the model
    /// was trained on.
    pub fn predict_proba(&self, features: &Features) -> Result<DenseMatrix<f64>> {
        let m = margins(features, &self.row_major_coefficients(), &self.intercepts)?;
        let n = features.rows();
        let k = self.num_classes;
        let mut out = vec![0.0; n * k];
        if let [m] = &m[..] {
            for (i, v) in m.iter().enumerate() {
                let p1 = sigmoid(*v);
                out[i] = 1.0 - p1;
                out[n + i] = p1;
            }
        } else {
            for i in 0..n {
                let max = m.iter().map(|c| c[i]).fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = m.iter().map(|c| (c[i] - max).exp()).sum();
                for (c, margins) in m.iter().enumerate() {
                    out[c * n + i] = (margins[i] - max).exp() / z;
                }
            }
        }
        DenseMatrix::from_column_major(n, k, out)
            .map_err(|len| MlError::Internal(format!("{len} probabilities for {n} x {k}")))
    }

    /// Predicted classes as `f64` (Spark's convention): for two classes `1` when
    /// `P(y = 1 | x) > threshold`, else the most probable class (the lowest on ties).
    ///
    /// # Errors
    /// As [`predict_proba`](Self::predict_proba).
    pub fn predict(&self, features: &Features) -> Result<Vec<f64>> {
        let p = self.predict_proba(features)?;
        if self.num_classes == 2 {
            return Ok(p
                .col(1)
                .iter()
                .map(|p1| f64::from(u8::from(*p1 > self.threshold)))
                .collect());
        }
        Ok((0..p.rows())
            .map(|i| {
                let mut best = 0;
                for k in 1..self.num_classes {
                    if p.get(i, k) > p.get(i, best) {
                        best = k;
                    }
                }
                best as f64
            })
            .collect())
    }
}

fn sigmoid(m: f64) -> f64 {
    if m >= 0.0 {
        1.0 / (1.0 + (-m).exp())
    } else {
        let e = m.exp();
        e / (1.0 + e)
    }
}
