//! A trained linear regression.

use serde::{Deserialize, Serialize};

use crate::data::Features;
use crate::error::{MlError, Result};
use crate::linear::params::{check_finite, model_getters};
use crate::linear::predict::margins;
use crate::linear::summary::TrainingSummary;
use crate::linear::trainer::Fitted;

use super::ValidLinearRegression;

/// A trained linear regression `ŷ = wᵀx + b`, on the original feature scale, with the
/// hyper-parameters it was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearRegressionModel {
    features: Vec<String>,
    label: String,
    coefficients: Vec<f64>,
    intercept: f64,
    summary: TrainingSummary,
    params: ValidLinearRegression,
}

impl LinearRegressionModel {
    /// A model from its parts (e.g. read from a model file or trained elsewhere).
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`] (`coefficients`) when there is not one coefficient per
    /// feature, no feature, or a coefficient or the intercept is not finite.
    pub fn try_new(
        features: Vec<String>,
        label: String,
        coefficients: Vec<f64>,
        intercept: f64,
        summary: TrainingSummary,
        params: ValidLinearRegression,
    ) -> Result<Self> {
        if features.is_empty() || coefficients.len() != features.len() {
            return Err(MlError::param(
                "coefficients",
                format!(
                    "{} coefficients for {} features (at least one is needed)",
                    coefficients.len(),
                    features.len()
                ),
            ));
        }
        check_finite(coefficients.iter().chain([&intercept]))?;
        Ok(Self {
            features,
            label,
            coefficients,
            intercept,
            summary,
            params,
        })
    }

    pub(crate) fn from_fitted(fitted: Fitted, params: ValidLinearRegression) -> Result<Self> {
        let [intercept] = fitted.intercepts[..] else {
            return Err(MlError::Internal(format!(
                "linear regression fitted {} intercepts",
                fitted.intercepts.len()
            )));
        };
        Ok(Self {
            features: fitted.features,
            label: fitted.label,
            coefficients: fitted.coefficients,
            intercept,
            summary: fitted.summary,
            params,
        })
    }

    /// The hyper-parameters the model was trained with.
    pub fn params(&self) -> &ValidLinearRegression {
        &self.params
    }

    /// The coefficients `w`, one per feature in training order.
    pub fn coefficients(&self) -> &[f64] {
        &self.coefficients
    }

    /// The intercept `b` (`0` when none was fitted).
    pub fn intercept(&self) -> f64 {
        self.intercept
    }

    /// Number of features.
    pub fn num_features(&self) -> usize {
        self.coefficients.len()
    }

    model_getters!();

    /// `wᵀx + b` for every row.
    ///
    /// # Errors
    /// [`MlError::InvalidData`] when `features` has another number of columns than the model
    /// was trained on.
    pub fn predict(&self, features: &Features) -> Result<Vec<f64>> {
        let mut m = margins(features, &self.coefficients, &[self.intercept])?;
        m.pop()
            .ok_or_else(|| MlError::Internal("no margins for a linear regression".into()))
    }
}
