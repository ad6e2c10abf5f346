//! Logistic regression: binomial (sigmoid) or multinomial (softmax) with an elastic net
//! penalty, trained by L-BFGS, OWL-QN or SGD as Spark MLlib's `LogisticRegression`.
//!
//! # Objective
//!
//! Over `n` rows with labels `yᵢ ∈ {0, …, K−1}` and `σⱼ` the sample standard deviation
//! (`n − 1`) of feature `j`, Kiln minimizes the mean negative log-likelihood plus Spark's
//! elastic net penalty
//!
//! ```text
//!  1/n Σᵢ ℓᵢ  +  λ ( α Σₖⱼ pⱼ |wₖⱼ|  +  (1 − α)/2 Σₖⱼ pⱼ² wₖⱼ² )
//!
//!  binomial:     ℓᵢ = log(1 + e^{mᵢ}) − yᵢ mᵢ,         mᵢ = wᵀxᵢ + b
//!  multinomial:  ℓᵢ = log Σₖ e^{mᵢₖ} − mᵢ,yᵢ,          mᵢₖ = wₖᵀxᵢ + bₖ
//! ```
//!
//! with `λ` = `reg_param`, `α` = `elastic_net_param`, `pⱼ = σⱼ` when `standardization` is on
//! and `1` when off; intercepts are not penalized. The gradient is
//! `1/n Σᵢ (pᵢₖ − [yᵢ = k]) xᵢ + λ(1 − α) p² wₖ` (plus the L1 part), `pᵢₖ` the predicted
//! probability. This is Spark's objective exactly (unlike linear regression, Spark does not
//! rescale the penalty here).
//!
//! In scikit-learn terms (`standardization = false`, `α = 0`):
//! `LogisticRegression(C = 1/(n·λ))` (its loss is summed, not averaged), for more than two
//! classes with its default multinomial loss. scikit-learn's multinomial coefficients and
//! intercepts are not centred; subtract each column's mean over classes to compare. With
//! `standardization = true`, fit on `(x − μ)/σ` (`ddof = 1`) and divide by `σ`.
//!
//! Labels must be class indices `0, 1, …, K−1` (`K = max + 1 ≤ 1000`); anything else is an
//! error naming the value and where it is. [`Family::Auto`] is binomial for `K = 2`. The
//! optimizer starts from zero coefficients and Spark's intercepts: `log(n₁/n₀)` (binomial) or
//! centred `log(1 + nₖ)` (multinomial). Without a penalty, multinomial coefficients are
//! centred over classes (the likelihood does not pin them down); intercepts always are.
//!
//! ```
//! use kiln_ml::data::{CachedPartition, DenseMatrix, Features};
//! use kiln_ml::fit_local;
//! use kiln_ml::linear::LogisticRegression;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let x = DenseMatrix::from_row_major(6, 1, &[-2.0, -1.0, 0.5, -0.5, 1.0, 2.0])
//!     .map_err(|n| format!("{n} values"))?;
//! let y = vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
//! let part = CachedPartition::new(0, Features::F64(x), Some(y))?;
//!
//! let names = vec!["x".to_string()];
//! let model = fit_local(LogisticRegression::new().reg_param(0.01), &[part.clone()], &names, Some("y"))?;
//! assert_eq!(model.num_classes(), 2);
//! assert!(model.coefficient_matrix().get(0, 0) > 0.0);
//! assert_eq!(model.predict(part.features())?, vec![0.0, 0.0, 1.0, 0.0, 1.0, 1.0]);
//! # Ok(())
//! # }
//! ```

mod algorithm;
mod hyperparams;
mod model;

pub use hyperparams::{Family, LogisticRegression, ValidLogisticRegression, PARAMS};
pub use model::LogisticRegressionModel;
