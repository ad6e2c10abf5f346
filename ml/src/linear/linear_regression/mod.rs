//! Linear regression: least squares with an elastic net penalty, trained by L-BFGS, OWL-QN or
//! SGD as Spark MLlib's `LinearRegression`.
//!
//! # Objective
//!
//! Over `n` rows, with `σⱼ` the sample standard deviation (`n − 1`) of feature `j`, Kiln
//! minimizes
//!
//! ```text
//!  1/(2n) Σᵢ (yᵢ − wᵀxᵢ − b)²  +  λ ( α Σⱼ pⱼ |wⱼ|  +  (1 − α)/2 Σⱼ pⱼ² wⱼ² )
//! ```
//!
//! with `λ` = `reg_param`, `α` = `elastic_net_param`, `pⱼ = σⱼ` when `standardization` is on
//! (the penalty is on the coefficients of standardized features) and `pⱼ = 1` when off. The
//! intercept `b` is not penalized (and is `0` without `fit_intercept`). A constant feature
//! (`σⱼ = 0`) gets coefficient `0`, as in Spark and glmnet.
//!
//! In scikit-learn terms, with `standardization = false` and `fit_intercept = true`:
//! `λ = 0` is `LinearRegression()`, `α = 0` is `Ridge(alpha = n·λ)`, and otherwise
//! `ElasticNet(alpha = λ, l1_ratio = α)` (`Lasso(alpha = λ)` for `α = 1`). With
//! `standardization = true`, fit those on `(x − μ)/σ` (`σ` with `ddof = 1`) and divide the
//! coefficients by `σ`.
//!
//! **Difference from Spark.** Spark's L-BFGS path also divides the label by its standard
//! deviation `σ_y` before optimizing with `λ/σ_y` (glmnet's convention for the Gaussian
//! family), which leaves the L1 term as above but turns the L2 term into
//! `(λ/σ_y)(1 − α)/2 Σ pⱼ² wⱼ²`. Kiln does not rescale the penalty: to reproduce a Spark ridge
//! model, use `reg_param = λ_Spark / σ_y`. Spark's `solver = "auto"`/`"normal"` closed form is
//! not offered; L-BFGS reaches the same optimum.
//!
//! # Training
//!
//! One [`StatsKernel::Summary`](crate::stats::StatsKernel::Summary) pass gives `μ`, `σ` and
//! `ȳ`; then every evaluation is one [`LinearKernel::LossGradient`](crate::linear::LinearKernel)
//! pass. The optimizer works on `βⱼ = σⱼ wⱼ` for centred features (see
//! [`crate::linear`]), starting from `β = 0`, `b = ȳ`, and the gradient is
//!
//! ```text
//!  ∂/∂w = −1/n Σᵢ rᵢ xᵢ + λ(1 − α) p² w,    ∂/∂b = −1/n Σᵢ rᵢ,    rᵢ = yᵢ − wᵀxᵢ − b
//! ```
//!
//! (plus the L1 part, handled by OWL-QN or soft thresholding).
//!
//! ```
//! use kiln_ml::data::{CachedPartition, DenseMatrix, Features};
//! use kiln_ml::fit_local;
//! use kiln_ml::linear::LinearRegression;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // y = 1 + 2 x₀ − x₁, exactly.
//! let rows = [[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 3.0], [4.0, 2.0]];
//! let y: Vec<f64> = rows.iter().map(|r| 1.0 + 2.0 * r[0] - r[1]).collect();
//! let flat: Vec<f64> = rows.iter().flatten().copied().collect();
//! let x = DenseMatrix::from_row_major(5, 2, &flat).map_err(|n| format!("{n} values"))?;
//! let part = CachedPartition::new(0, Features::F64(x), Some(y))?;
//!
//! let names = vec!["x0".to_string(), "x1".to_string()];
//! let model = fit_local(LinearRegression::new().tol(1e-12), &[part], &names, Some("y"))?;
//! assert!((model.coefficients()[0] - 2.0).abs() < 1e-6);
//! assert!((model.coefficients()[1] + 1.0).abs() < 1e-6);
//! assert!((model.intercept() - 1.0).abs() < 1e-6);
//! # Ok(())
//! # }
//! ```

mod algorithm;
mod hyperparams;
mod model;

pub use hyperparams::{LinearRegression, ValidLinearRegression, PARAMS};
pub use model::LinearRegressionModel;
