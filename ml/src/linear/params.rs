//! Hyper-parameters shared by linear and logistic regression, with Spark MLlib's names and
//! defaults.

use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::optim::StepSchedule;
use crate::params::{ParamMap, ParamValue};

/// How the objective is minimized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub enum Solver {
    /// L-BFGS, or OWL-QN when the penalty has an L1 part (Spark's `l-bfgs`). Default.
    #[default]
    Lbfgs,
    /// Mini-batch stochastic gradient descent with soft thresholding for the L1 part (Spark's
    /// `mllib` `GradientDescent`). Steps are taken in the standardized parametrization (see
    /// [`crate::linear`]), where a step size around `1` is reasonable.
    Sgd {
        /// Expected fraction of rows in each mini-batch, in `(0, 1]` (default `1.0`).
        mini_batch_fraction: f64,
        /// Initial step size `η > 0` (default `1.0`, Spark's `stepSize`).
        step_size: f64,
        /// How the step decays (default [`StepSchedule::InverseSqrt`]: `η / √t`, Spark's).
        schedule: StepSchedule,
    },
}

impl Solver {
    /// SGD with Spark's defaults: full batches, `step_size = 1.0`, `η / √t` decay.
    pub fn sgd() -> Self {
        Solver::Sgd {
            mini_batch_fraction: 1.0,
            step_size: 1.0,
            schedule: StepSchedule::InverseSqrt,
        }
    }
}

/// The hyper-parameters both linear models have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Common {
    pub(crate) max_iter: usize,
    pub(crate) reg_param: f64,
    pub(crate) elastic_net_param: f64,
    pub(crate) tol: f64,
    pub(crate) fit_intercept: bool,
    pub(crate) standardization: bool,
    pub(crate) solver: Solver,
    pub(crate) seed: u64,
    /// scikit-learn's `C`: when set, the strength is `λ = 1 / (n · C)` for `n` training rows
    /// and `reg_param` is not used.
    #[serde(default)]
    pub(crate) inverse_strength: Option<f64>,
}

impl Default for Common {
    fn default() -> Self {
        Self {
            max_iter: 100,
            reg_param: 0.0,
            elastic_net_param: 0.0,
            tol: 1e-6,
            fit_intercept: true,
            standardization: true,
            solver: Solver::Lbfgs,
            seed: 0,
            inverse_strength: None,
        }
    }
}

impl Common {
    /// Checks ranges before any data moves.
    pub(crate) fn check(&self) -> Result<()> {
        if !(self.reg_param >= 0.0 && self.reg_param.is_finite()) {
            return Err(MlError::param(
                "reg_param",
                format!("reg_param must be >= 0, got {}", self.reg_param),
            ));
        }
        if let Some(c) = self.inverse_strength {
            if !(c > 0.0 && c.is_finite()) {
                return Err(MlError::param("C", format!("C must be > 0, got {c}")));
            }
        }
        if !(0.0..=1.0).contains(&self.elastic_net_param) {
            return Err(MlError::param(
                "elastic_net_param",
                format!(
                    "elastic_net_param must be in [0, 1], got {}",
                    self.elastic_net_param
                ),
            ));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(MlError::param(
                "tol",
                format!("tol must be >= 0, got {}", self.tol),
            ));
        }
        if let Solver::Sgd {
            mini_batch_fraction,
            step_size,
            ..
        } = self.solver
        {
            if !(mini_batch_fraction > 0.0 && mini_batch_fraction <= 1.0) {
                return Err(MlError::param(
                    "mini_batch_fraction",
                    format!("mini_batch_fraction must be in (0, 1], got {mini_batch_fraction}"),
                ));
            }
            if !(step_size > 0.0 && step_size.is_finite()) {
                return Err(MlError::param(
                    "step_size",
                    format!("step_size must be > 0, got {step_size}"),
                ));
            }
        }
        Ok(())
    }
}

/// Builder methods for the [`Common`] parameters of a type with a `common` field.
macro_rules! common_setters {
    () => {
        /// Maximum number of iterations (Spark's `maxIter`; default `100`).
        pub fn max_iter(mut self, max_iter: usize) -> Self {
            self.common.max_iter = max_iter;
            self
        }

        /// Regularization strength `λ ≥ 0` (Spark's `regParam`; default `0.0`).
        pub fn reg_param(mut self, reg_param: f64) -> Self {
            self.common.reg_param = reg_param;
            self
        }

        /// scikit-learn's inverse strength `C > 0`: the penalty weight becomes
        /// `λ = 1 / (n · C)` for the `n` training rows, the same objective as scikit-learn's
        /// `C · Σ loss + penalty`. Replaces [`reg_param`](Self::reg_param).
        pub fn inverse_strength(mut self, c: f64) -> Self {
            self.common.inverse_strength = Some(c);
            self
        }

        /// As [`inverse_strength`](Self::inverse_strength) when `Some`; `None` keeps
        /// [`reg_param`](Self::reg_param) in use.
        pub fn inverse_strength_opt(mut self, c: Option<f64>) -> Self {
            self.common.inverse_strength = c;
            self
        }

        /// Elastic net mixing `α ∈ [0, 1]`: `0` is a pure L2 penalty, `1` pure L1 (Spark's
        /// `elasticNetParam`; default `0.0`).
        pub fn elastic_net_param(mut self, alpha: f64) -> Self {
            self.common.elastic_net_param = alpha;
            self
        }

        /// Convergence tolerance: relative change of the objective for L-BFGS/OWL-QN, relative
        /// step length for SGD (Spark's `tol`; default `1e-6`).
        pub fn tol(mut self, tol: f64) -> Self {
            self.common.tol = tol;
            self
        }

        /// Whether to fit an intercept (default `true`).
        pub fn fit_intercept(mut self, fit_intercept: bool) -> Self {
            self.common.fit_intercept = fit_intercept;
            self
        }

        /// Whether the penalty applies to the coefficients of standardized features (Spark's
        /// `standardization`; default `true`). Coefficients are returned on the original
        /// scale either way.
        pub fn standardization(mut self, standardization: bool) -> Self {
            self.common.standardization = standardization;
            self
        }

        /// The optimizer (default [`Solver::Lbfgs`](crate::linear::Solver::Lbfgs)).
        pub fn solver(mut self, solver: $crate::linear::Solver) -> Self {
            self.common.solver = solver;
            self
        }

        /// Seed of the SGD mini-batch sampling (default `0`).
        pub fn seed(mut self, seed: u64) -> Self {
            self.common.seed = seed;
            self
        }
    };
}

/// Getters for the [`Common`] parameters of a validated parameter set.
macro_rules! common_getters {
    () => {
        /// Maximum number of iterations.
        pub fn max_iter(&self) -> usize {
            self.common.max_iter
        }

        /// Regularization strength `λ`.
        pub fn reg_param(&self) -> f64 {
            self.common.reg_param
        }

        /// scikit-learn's `C`, when the strength was given that way.
        pub fn inverse_strength(&self) -> Option<f64> {
            self.common.inverse_strength
        }

        /// Elastic net mixing `α`.
        pub fn elastic_net_param(&self) -> f64 {
            self.common.elastic_net_param
        }

        /// Convergence tolerance.
        pub fn tol(&self) -> f64 {
            self.common.tol
        }

        /// Whether an intercept is fitted.
        pub fn fit_intercept(&self) -> bool {
            self.common.fit_intercept
        }

        /// Whether the penalty applies to standardized coefficients.
        pub fn standardization(&self) -> bool {
            self.common.standardization
        }

        /// The optimizer.
        pub fn solver(&self) -> $crate::linear::Solver {
            self.common.solver
        }

        /// Seed of the SGD mini-batch sampling.
        pub fn seed(&self) -> u64 {
            self.common.seed
        }
    };
}

/// The getters every trained linear model has, over its fields `features`, `label` and
/// `summary`.
macro_rules! model_getters {
    () => {
        /// The feature columns, in coefficient order.
        pub fn feature_names(&self) -> &[String] {
            &self.features
        }

        /// The label column trained on.
        pub fn label(&self) -> &str {
            &self.label
        }

        /// What training recorded.
        pub fn summary(&self) -> &$crate::linear::summary::TrainingSummary {
            &self.summary
        }

        /// The objective at the start and after each iteration (see
        /// [`TrainingSummary`](crate::linear::TrainingSummary)).
        pub fn objective_history(&self) -> &[f64] {
            self.summary.objective_history()
        }

        /// Iterations run.
        pub fn total_iterations(&self) -> usize {
            self.summary.total_iterations()
        }
    };
}

/// [`MlError::InvalidParameter`] (`coefficients`) naming the first value of a model's
/// coefficients and intercepts that is not finite.
pub(crate) fn check_finite<'a>(values: impl IntoIterator<Item = &'a f64>) -> Result<()> {
    match values.into_iter().find(|v| !v.is_finite()) {
        Some(v) => Err(MlError::param(
            "coefficients",
            format!("the non-finite value {v} is not a coefficient"),
        )),
        None => Ok(()),
    }
}

pub(crate) use {common_getters, common_setters, model_getters};

/// The registry's table of the [`Common`] parameters, followed by `$extra` specs: one array
/// literal, so each linear model's table is a `static` slice.
macro_rules! linear_param_specs {
    ($($extra:expr),* $(,)?) => {
        &[
            ParamSpec { name: "max_iter", ty: ParamType::Integer, default: "100", doc: "Maximum number of iterations, >= 0." },
            ParamSpec { name: "reg_param", ty: ParamType::Float, default: "0.0", doc: "Regularization strength λ >= 0." },
            ParamSpec { name: "c", ty: ParamType::Float, default: "none", doc: "scikit-learn's inverse strength C > 0: λ = 1 / (n · C) for n training rows; replaces reg_param." },
            ParamSpec { name: "elastic_net_param", ty: ParamType::Float, default: "0.0", doc: "Mix of L1 in the penalty, in [0, 1]: 0 is ridge, 1 is lasso." },
            ParamSpec { name: "tol", ty: ParamType::Float, default: "1e-6", doc: "Convergence tolerance on the relative change of the objective, >= 0." },
            ParamSpec { name: "fit_intercept", ty: ParamType::Bool, default: "true", doc: "Whether to fit an intercept." },
            ParamSpec { name: "standardization", ty: ParamType::Bool, default: "true", doc: "Whether to standardize features before fitting (coefficients are reported on the original scale)." },
            ParamSpec { name: "solver", ty: ParamType::Choice(&["lbfgs", "l-bfgs", "sgd"]), default: "'lbfgs'", doc: "L-BFGS (OWL-QN with an L1 part) or mini-batch SGD." },
            ParamSpec { name: "step_size", ty: ParamType::Float, default: "1.0", doc: "SGD's initial step size > 0; needs solver = 'sgd'." },
            ParamSpec { name: "mini_batch_fraction", ty: ParamType::Float, default: "1.0", doc: "SGD's expected fraction of rows per step, in (0, 1]; needs solver = 'sgd'." },
            ParamSpec { name: "step_schedule", ty: ParamType::Choice(&["inverse_sqrt", "constant"]), default: "'inverse_sqrt'", doc: "SGD's step decay: η / √t or constant; needs solver = 'sgd'." },
            ParamSpec { name: "seed", ty: ParamType::Integer, default: "0", doc: "Seed of SGD's mini-batch sampling." },
            $($extra),*
        ]
    };
}
pub(crate) use linear_param_specs;

impl Common {
    /// The shared parameters' values, by the registry's names and in its order (SGD's settings
    /// only with SGD, `c` only when given).
    pub(crate) fn values(&self) -> Vec<(&'static str, ParamValue)> {
        let mut out = vec![
            ("max_iter", ParamValue::Integer(self.max_iter as i64)),
            ("reg_param", ParamValue::Float(self.reg_param)),
        ];
        if let Some(c) = self.inverse_strength {
            out.push(("c", ParamValue::Float(c)));
        }
        out.extend([
            (
                "elastic_net_param",
                ParamValue::Float(self.elastic_net_param),
            ),
            ("tol", ParamValue::Float(self.tol)),
            ("fit_intercept", ParamValue::Bool(self.fit_intercept)),
            ("standardization", ParamValue::Bool(self.standardization)),
        ]);
        match self.solver {
            Solver::Lbfgs => out.push(("solver", ParamValue::Text("lbfgs".into()))),
            Solver::Sgd {
                mini_batch_fraction,
                step_size,
                schedule,
            } => out.extend([
                ("solver", ParamValue::Text("sgd".into())),
                ("step_size", ParamValue::Float(step_size)),
                (
                    "mini_batch_fraction",
                    ParamValue::Float(mini_batch_fraction),
                ),
                (
                    "step_schedule",
                    ParamValue::Text(
                        match schedule {
                            StepSchedule::Constant => "constant",
                            StepSchedule::InverseSqrt => "inverse_sqrt",
                        }
                        .into(),
                    ),
                ),
            ]),
        }
        out.push(("seed", ParamValue::Integer(self.seed as i64)));
        out
    }

    /// The shared parameters from a registry's checked values (defaults for the rest). The SGD
    /// settings need `solver = 'sgd'`: given with L-BFGS they would silently do nothing.
    pub(crate) fn from_params(map: &ParamMap) -> Result<Self> {
        let mut c = Common::default();
        if let Some(v) = map.integer("max_iter")? {
            c.max_iter = v;
        }
        if let Some(v) = map.float("reg_param") {
            c.reg_param = v;
        }
        c.inverse_strength = map.float("c");
        if let Some(v) = map.float("elastic_net_param") {
            c.elastic_net_param = v;
        }
        if let Some(v) = map.float("tol") {
            c.tol = v;
        }
        if let Some(v) = map.boolean("fit_intercept") {
            c.fit_intercept = v;
        }
        if let Some(v) = map.boolean("standardization") {
            c.standardization = v;
        }
        if let Some(v) = map.integer("seed")? {
            c.seed = v as u64;
        }
        let sgd = map.choice("solver") == Some("sgd");
        if !sgd {
            if let Some(name) = ["step_size", "mini_batch_fraction", "step_schedule"]
                .into_iter()
                .find(|n| map.has(n))
            {
                return Err(MlError::param(name, format!("{name} needs solver = 'sgd'")));
            }
        } else {
            c.solver = Solver::Sgd {
                mini_batch_fraction: map.float("mini_batch_fraction").unwrap_or(1.0),
                step_size: map.float("step_size").unwrap_or(1.0),
                schedule: match map.choice("step_schedule") {
                    Some("constant") => StepSchedule::Constant,
                    _ => StepSchedule::InverseSqrt,
                },
            };
        }
        Ok(c)
    }
}
