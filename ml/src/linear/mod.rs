//! Linear models: [`LinearRegression`] and [`LogisticRegression`], with Spark MLlib's
//! parameters, defaults and objectives, trained as step machines over cached partitions.
//!
//! ```text
//!  start ─▶ Kernel::Stats(Summary)          μ, σ per feature; label moments and classes
//!        ─▶ Kernel::Linear(LossGradient)    Σ loss, Σ gradient at the optimizer's point
//!        ─▶ ... L-BFGS / OWL-QN / SGD asks for more points ...
//!        ─▶ Done(model)                     coefficients on the original feature scale
//! ```
//!
//! # Objective
//!
//! Both models minimize, over coefficients `W` (`K × d`, `K = 1` except for multinomial
//! logistic regression) and unpenalized intercepts `b`,
//!
//! ```text
//!  F(W, b) = 1/n Σᵢ ℓ(W xᵢ + b, yᵢ)  +  λ ( α Σₖⱼ pⱼ |wₖⱼ|  +  (1 − α)/2 Σₖⱼ pⱼ² wₖⱼ² )
//! ```
//!
//! `λ` = `reg_param`, `α` = `elastic_net_param`, `pⱼ = σⱼ` (sample standard deviation of
//! feature `j`) with `standardization` and `1` without, `ℓ` the per-row [`Loss`]. Each model's
//! page gives the losses, the gradient and the scikit-learn equivalent.
//!
//! # Parametrization
//!
//! Like Spark, the optimizer always works on standardized coordinates, whatever
//! `standardization` says (that flag only decides where the penalty applies): with
//! `sⱼ = 1/σⱼ` and, when an intercept is fitted, centres `μⱼ`,
//!
//! ```text
//!  mₖ = Σⱼ βₖⱼ sⱼ (xⱼ − μⱼ) + b'ₖ,      wₖⱼ = βₖⱼ sⱼ,      bₖ = b'ₖ − Σⱼ wₖⱼ μⱼ
//! ```
//!
//! and the penalty becomes `λ(α Σ qⱼ|βₖⱼ| + (1 − α)/2 Σ qⱼ² βₖⱼ²)` with `qⱼ = 1` under
//! `standardization`, `qⱼ = sⱼ` otherwise. This makes the problem well conditioned for
//! features of any scale and offset. The scale and centre are applied on the fly by the
//! [`LinearKernel`]: the cached data is never copied or rewritten.
//!
//! The loss-and-gradient kernel is a single streaming pass per block (see [`LinearKernel`]);
//! blocks are folded in order and partitions merged in index order, so a model is the same
//! bit for bit on any number of threads for a given partitioning.
//!
//! # References
//!
//! - Spark MLlib, "Classification and regression" and "Linear methods" guides, and
//!   `org.apache.spark.ml.regression.LinearRegression` /
//!   `org.apache.spark.ml.classification.LogisticRegression` (objective, parameters,
//!   defaults, standardization and intercept initialization).
//! - Friedman, Hastie & Tibshirani (2010), "Regularization paths for generalized linear
//!   models via coordinate descent", J. Stat. Softw. 33(1): the elastic net parametrization
//!   Spark follows.
//! - Optimizers: see [`crate::optim`].

mod kernel;
pub mod linear_regression;
pub mod logistic_regression;
mod loss;
mod params;
mod predict;
mod sample;
mod summary;
mod trainer;

pub use kernel::{LinearKernel, LinearPartial, LossGradientSums};
pub use linear_regression::{LinearRegression, LinearRegressionModel, ValidLinearRegression};
pub use logistic_regression::{
    Family, LogisticRegression, LogisticRegressionModel, ValidLogisticRegression,
};
pub use loss::Loss;
pub use params::Solver;
pub use sample::Sample;
pub use summary::TrainingSummary;

pub use crate::optim::StepSchedule;

#[cfg(test)]
mod tests;
