//! Linear regression's hyper-parameters: the builder and its validated form.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::linear::params::{common_getters, common_setters, linear_param_specs, Common};
use crate::linear::trainer::Trainer;
use crate::params::{ParamMap, ParamSpec, ParamType};

/// Least-squares linear regression with an elastic net penalty: the builder, and the
/// [`Algorithm`](crate::Algorithm) that trains a
/// [`LinearRegressionModel`](super::LinearRegressionModel) (see the
/// [module docs](super) for the objective).
///
/// Parameters and defaults are Spark MLlib's: `max_iter = 100`, `reg_param = 0.0`,
/// `elastic_net_param = 0.0`, `tol = 1e-6`, `fit_intercept = true`,
/// `standardization = true`, `solver = Solver::Lbfgs`, `seed = 0`.
#[derive(Debug, Clone, Default)]
pub struct LinearRegression {
    pub(crate) common: Common,
    pub(crate) trainer: Option<Trainer>,
}

/// Checked [`LinearRegression`] parameters (kept in the trained model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidLinearRegression {
    pub(crate) common: Common,
}

impl LinearRegression {
    /// Linear regression with Spark's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    common_setters!();

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`](crate::MlError::InvalidParameter) naming the parameter
    /// and its allowed range, e.g. `reg_param must be >= 0, got -1`.
    pub fn check(&self) -> Result<ValidLinearRegression> {
        self.common.check()?;
        Ok(ValidLinearRegression {
            common: self.common.clone(),
        })
    }
}

impl ValidLinearRegression {
    common_getters!();

    /// Every parameter's value, by the registry's names and in its order (see [`PARAMS`]).
    pub fn values(&self) -> Vec<(&'static str, crate::params::ParamValue)> {
        self.common.values()
    }
}

/// Linear regression's parameters, as the registry lists them (Spark's names and defaults).
pub const PARAMS: &[ParamSpec] = linear_param_specs!();

impl LinearRegression {
    /// Linear regression from the registry's checked values (defaults for the rest), not yet
    /// range checked (see [`LinearRegression::check`]).
    ///
    /// # Errors
    /// An SGD setting without `solver = 'sgd'`, or an integer too large.
    pub fn from_params(map: &ParamMap) -> Result<Self> {
        Ok(Self {
            common: Common::from_params(map)?,
            trainer: None,
        })
    }
}
