//! Logistic regression's hyper-parameters: the builder and its validated form.

use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::linear::params::{common_getters, common_setters, linear_param_specs, Common};
use crate::linear::trainer::Trainer;
use crate::params::{ParamMap, ParamSpec, ParamType, ParamValue};

/// Binary or multiclass logistic regression (Spark's `family`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// Binomial for labels `{0, 1}`, multinomial for more classes (default).
    #[default]
    Auto,
    /// Sigmoid model with `d` coefficients and one intercept; labels must be `0` and `1`.
    Binomial,
    /// Softmax model with `K × d` coefficients and `K` intercepts, also for two classes.
    Multinomial,
}

/// Logistic regression with an elastic net penalty: the builder, and the
/// [`Algorithm`](crate::Algorithm) that trains a
/// [`LogisticRegressionModel`](super::LogisticRegressionModel) (see the
/// [module docs](super) for the objective).
///
/// Parameters and defaults are Spark MLlib's: `max_iter = 100`, `reg_param = 0.0`,
/// `elastic_net_param = 0.0`, `tol = 1e-6`, `fit_intercept = true`,
/// `standardization = true`, `solver = Solver::Lbfgs`, `seed = 0`, `family = Auto`,
/// `threshold = 0.5`.
#[derive(Debug, Clone)]
pub struct LogisticRegression {
    pub(crate) common: Common,
    pub(crate) family: Family,
    pub(crate) threshold: f64,
    pub(crate) trainer: Option<Trainer>,
}

impl Default for LogisticRegression {
    fn default() -> Self {
        Self {
            common: Common::default(),
            family: Family::Auto,
            threshold: 0.5,
            trainer: None,
        }
    }
}

/// Checked [`LogisticRegression`] parameters (kept in the trained model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidLogisticRegression {
    pub(crate) common: Common,
    pub(crate) family: Family,
    pub(crate) threshold: f64,
}

impl LogisticRegression {
    /// Logistic regression with Spark's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    common_setters!();

    /// Binomial, multinomial, or chosen from the number of classes (default
    /// [`Family::Auto`]).
    pub fn family(mut self, family: Family) -> Self {
        self.family = family;
        self
    }

    /// Probability of class 1 above which a two-class model predicts 1 (default `0.5`).
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`] naming the parameter and its allowed range, e.g.
    /// `elastic_net_param must be in [0, 1], got 2`.
    pub fn check(&self) -> Result<ValidLogisticRegression> {
        self.common.check()?;
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(MlError::param(
                "threshold",
                format!("threshold must be in [0, 1], got {}", self.threshold),
            ));
        }
        Ok(ValidLogisticRegression {
            common: self.common.clone(),
            family: self.family,
            threshold: self.threshold,
        })
    }
}

impl ValidLogisticRegression {
    common_getters!();

    /// Every parameter's value, by the registry's names and in its order (see [`PARAMS`]).
    pub fn values(&self) -> Vec<(&'static str, ParamValue)> {
        let mut out = self.common.values();
        out.push((
            "family",
            ParamValue::Text(
                match self.family {
                    Family::Auto => "auto",
                    Family::Binomial => "binomial",
                    Family::Multinomial => "multinomial",
                }
                .into(),
            ),
        ));
        out.push(("threshold", ParamValue::Float(self.threshold)));
        out
    }

    /// The family asked for.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The decision threshold of two-class models.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }
}

/// Logistic regression's parameters, as the registry lists them (Spark's names and defaults).
pub const PARAMS: &[ParamSpec] = linear_param_specs!(
    ParamSpec {
        name: "family",
        ty: ParamType::Choice(&["auto", "binomial", "multinomial"]),
        default: "'auto'",
        doc: "Sigmoid for two classes, softmax for more ('auto'), or forced.",
    },
    ParamSpec {
        name: "threshold",
        ty: ParamType::Float,
        default: "0.5",
        doc: "Probability of class 1 above which a two-class model predicts 1, in [0, 1].",
    },
);

impl LogisticRegression {
    /// Logistic regression from the registry's checked values (defaults for the rest), not
    /// yet range checked (see [`LogisticRegression::check`]).
    ///
    /// # Errors
    /// An SGD setting without `solver = 'sgd'`, or an integer too large.
    pub fn from_params(map: &ParamMap) -> Result<Self> {
        let mut e = LogisticRegression {
            common: Common::from_params(map)?,
            ..LogisticRegression::default()
        };
        e.family = match map.choice("family") {
            Some("binomial") => Family::Binomial,
            Some("multinomial") => Family::Multinomial,
            _ => Family::Auto,
        };
        if let Some(t) = map.float("threshold") {
            e.threshold = t;
        }
        Ok(e)
    }
}
