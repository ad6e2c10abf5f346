//! First-order optimizers as step machines: they *ask* for the objective and its gradient at
//! a point and are *told* the answer, so that the answer can come from a kernel run over
//! partitions cached on many executors.
//!
//! ```text
//!  start(x₀) ─▶ Ask::Evaluate(x) ─▶ caller computes f(x), ∇f(x) (a distributed kernel)
//!                     ▲                        │
//!                     └──── tell(f, ∇f) ◀──────┘        ... until Ask::Done(Solution)
//! ```
//!
//! The caller always supplies the *smooth* part `f` of the objective. [`OwlQn`] and [`Sgd`]
//! also know per-coordinate L1 weights `c` and minimize `F(x) = f(x) + Σⱼ cⱼ |xⱼ|` themselves.
//!
//! # L-BFGS ([`Lbfgs`])
//!
//! Nocedal (1980), "Updating quasi-Newton matrices with limited storage"; Nocedal & Wright,
//! *Numerical Optimization* (2nd ed.), algorithms 7.4, 7.5, 3.5 and 3.6.
//!
//! With the last `m` pairs `sᵢ = xᵢ₊₁ − xᵢ`, `yᵢ = ∇f(xᵢ₊₁) − ∇f(xᵢ)` (kept only when
//! `sᵢᵀyᵢ > 0`), the direction `d = −H∇f` comes from the two-loop recursion:
//!
//! ```text
//!  q ← ∇f
//!  for i = newest … oldest:  ρᵢ = 1 / yᵢᵀsᵢ;  aᵢ = ρᵢ sᵢᵀq;  q ← q − aᵢ yᵢ
//!  r ← γ q,  γ = sᵀy / yᵀy of the newest pair (1 with no pairs)
//!  for i = oldest … newest:  b = ρᵢ yᵢᵀr;  r ← r + sᵢ (aᵢ − b)
//!  d ← −r
//! ```
//!
//! The step `x ← x + t d` satisfies the strong Wolfe conditions
//! `f(x + t d) ≤ f(x) + c₁ t ∇fᵀd` and `|∇f(x + t d)ᵀd| ≤ c₂ |∇fᵀd|` (`c₁ = 10⁻⁴`,
//! `c₂ = 0.9`), found by bracketing (doubling `t`) and zooming with safeguarded cubic
//! interpolation; each trial `t` is one evaluation asked of the caller. Where `f(x + t d)` is
//! within `10⁻¹² |f(x)|` of `f(x)`, rounding hides the decrease, and sufficient decrease is
//! taken in the approximate form `∇f(x + t d)ᵀd ≤ (2c₁ − 1) ∇fᵀd` of Hager & Zhang (2005),
//! "A new conjugate gradient method with guaranteed descent and an efficient line search"
//! (exact for a quadratic), so that iterations keep refining below `√ε`. The first trial is
//! `t = 1`, or `1/‖d‖` while the memory is empty. A failed search is retried once along
//! `−∇f` with the memory cleared; a second failure stops at the best point found.
//!
//! # OWL-QN ([`OwlQn`])
//!
//! Andrew & Gao (2007), "Scalable training of L1-regularized log-linear models", ICML.
//! For `F = f + Σ cⱼ|xⱼ|` the pseudo-gradient is
//!
//! ```text
//!  ⋄ⱼF = ∂ⱼf + cⱼ sign(xⱼ)          if xⱼ ≠ 0
//!       = ∂ⱼf + cⱼ                   if xⱼ = 0 and ∂ⱼf + cⱼ < 0
//!       = ∂ⱼf − cⱼ                   if xⱼ = 0 and ∂ⱼf − cⱼ > 0
//!       = 0                          otherwise
//! ```
//!
//! The L-BFGS two-loop recursion (with pairs built from the smooth gradients `∇f`) is applied
//! to `⋄F`, and the direction is constrained to agree in sign with `−⋄F` (`dⱼ ← 0` where
//! `dⱼ ⋄ⱼF ≥ 0`). The orthant is `ξⱼ = sign(xⱼ)`, or `sign(−⋄ⱼF)` where `xⱼ = 0`; trial points
//! are projected on it, `π(x + t d)ⱼ = 0` where the sign leaves `ξⱼ`, and accepted when
//! `F(π(x + t d)) ≤ F(x) + γ ⋄Fᵀ(π(x + t d) − x)` with `γ = 10⁻⁴`, halving `t` otherwise
//! (within rounding of `F`, the slope of `F` on the orthant decides, as for L-BFGS above).
//! Coordinates with `cⱼ = 0` (intercepts) are neither constrained nor projected. Iterates land
//! on exact zeros.
//!
//! # Stochastic gradient descent ([`Sgd`])
//!
//! Proximal (sub)gradient steps, the L1 part by soft thresholding as Spark's `L1Updater`:
//! `xₜ₊₁ = S(xₜ − ηₜ ∇f(xₜ), ηₜ c)` with `S(v, τ)ⱼ = sign(vⱼ) max(|vⱼ| − τⱼ, 0)` and
//! `ηₜ = η` ([`StepSchedule::Constant`]) or `η / √t`, `t = 1, 2, …`
//! ([`StepSchedule::InverseSqrt`], Spark's `GradientDescent`).
//!
//! # Stopping
//!
//! L-BFGS and OWL-QN stop after `max_iter` iterations (accepted steps), or when
//! `|Fₖ₋₁ − Fₖ| ≤ tol · max(|Fₖ₋₁|, |Fₖ|)` (relative function change, Spark's `tol`), or when
//! the (pseudo-)gradient is exactly zero, or when no step decreases `F` any more, or when over
//! [`STALL_ITERATIONS`] iterations neither `F` (beyond rounding) nor `max |∇F|` improved. The function
//! test cannot see changes below rounding, which limits the solution to about `√ε ≈ 10⁻⁸`
//! relative accuracy; `tol = 0` disables it so that iterations continue, guided by the
//! gradient, until no step helps or `max_iter` is reached. SGD stops after `max_iter` steps or when
//! `‖xₜ₊₁ − xₜ‖ ≤ tol · max(‖xₜ₊₁‖, 1)` (Spark's `convergenceTol`).
//!
//! ```
//! use kiln_ml::optim::{minimize_local, Lbfgs, StopReason};
//!
//! # fn main() -> kiln_ml::Result<()> {
//! // f(x) = (x₀ − 3)² + 10 (x₁ + 1)²
//! let solution = minimize_local(Lbfgs::new().tol(1e-12), vec![0.0, 0.0], |x| {
//!     let f = (x[0] - 3.0).powi(2) + 10.0 * (x[1] + 1.0).powi(2);
//!     (f, vec![2.0 * (x[0] - 3.0), 20.0 * (x[1] + 1.0)])
//! })?;
//! assert!((solution.x[0] - 3.0).abs() < 1e-6 && (solution.x[1] + 1.0).abs() < 1e-6);
//! assert_ne!(solution.stop, StopReason::MaxIter);
//! # Ok(())
//! # }
//! ```

mod lbfgs;
mod line_search;
mod memory;
mod owlqn;
mod quasi_newton;
mod sgd;

use serde::{Deserialize, Serialize};

pub use lbfgs::Lbfgs;
pub use owlqn::OwlQn;
pub use sgd::{Sgd, StepSchedule};

use crate::error::{MlError, Result};

/// What an optimizer wants next.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// Evaluate the smooth objective and its gradient at this point and [`Minimizer::tell`]
    /// the answer.
    Evaluate(Vec<f64>),
    /// Minimization is over.
    Done(Solution),
}

/// Why an optimizer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// The relative function change (L-BFGS, OWL-QN) or the step (SGD) fell below `tol`.
    Converged,
    /// The (pseudo-)gradient is exactly zero.
    GradientZero,
    /// `max_iter` iterations ran.
    MaxIter,
    /// No step decreased the objective, even along the steepest descent direction, or neither
    /// the objective nor the largest gradient component improved over the last
    /// [`STALL_ITERATIONS`] iterations: the point is optimal to the precision the objective is
    /// computed with.
    NoProgress,
}

/// The result of a minimization.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// The minimizer found.
    pub x: Vec<f64>,
    /// The objective `F` at `x` (smooth part plus L1 part).
    pub value: f64,
    /// Iterations run (accepted steps).
    pub iterations: usize,
    /// `F` at the start and after each iteration: `iterations + 1` values.
    pub objective_history: Vec<f64>,
    /// Why it stopped.
    pub stop: StopReason,
}

/// An optimizer driven by evaluations it asks for.
pub trait Minimizer: Send + std::fmt::Debug {
    /// Starts from `x0`; the answer is the first point to evaluate.
    ///
    /// # Errors
    /// [`MlError::Internal`] when `x0` is empty or the L1 weights do not match its length.
    fn start(&mut self, x0: Vec<f64>) -> Result<Ask>;

    /// Answers the last [`Ask::Evaluate`] with the smooth objective `f` and its gradient.
    ///
    /// # Errors
    /// [`MlError::Internal`] when called out of turn or with a gradient of the wrong length or
    /// a non-finite value at the starting point; [`MlError::InvalidParameter`] naming
    /// `step_size` when SGD diverges.
    fn tell(&mut self, value: f64, gradient: Vec<f64>) -> Result<Ask>;

    /// Iterations completed so far.
    fn iteration(&self) -> usize;

    /// `F` at the start and after each completed iteration.
    fn objective_history(&self) -> &[f64];
}

/// Runs `minimizer` from `x0` with an in-memory objective `f(x) -> (value, gradient)` of the
/// smooth part: the plain loop distributed callers replace by kernels.
///
/// # Errors
/// Whatever the minimizer reports.
pub fn minimize_local<M, F>(mut minimizer: M, x0: Vec<f64>, mut f: F) -> Result<Solution>
where
    M: Minimizer,
    F: FnMut(&[f64]) -> (f64, Vec<f64>),
{
    let mut ask = minimizer.start(x0)?;
    loop {
        match ask {
            Ask::Done(solution) => return Ok(solution),
            Ask::Evaluate(x) => {
                let (value, gradient) = f(&x);
                ask = minimizer.tell(value, gradient)?;
            }
        }
    }
}

/// The iteration limit and tolerance every optimizer has.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_iter: usize,
    tol: f64,
}

/// The builder methods `max_iter` and `tol` of an optimizer whose [`Limits`] are at the
/// field path given first (as `limits` or `core.limits`); `$tol_doc` says what `tol` bounds.
macro_rules! limit_builders {
    ($($field:ident).+, $tol_doc:literal) => {
        /// Iteration limit.
        pub fn max_iter(mut self, max_iter: usize) -> Self {
            self.$($field).+.max_iter = max_iter;
            self
        }

        #[doc = $tol_doc]
        pub fn tol(mut self, tol: f64) -> Self {
            self.$($field).+.tol = tol;
            self
        }
    };
}
use limit_builders;

/// Iterations without a new smallest gradient and without a decrease of the objective beyond
/// rounding after which L-BFGS and OWL-QN stop ([`StopReason::NoProgress`]).
pub const STALL_ITERATIONS: usize = 10;

/// Tracks whether L-BFGS or OWL-QN still make progress.
#[derive(Debug, Clone)]
struct StallWatch {
    best_gradient: f64,
    since_best: usize,
}

impl Default for StallWatch {
    fn default() -> Self {
        Self {
            best_gradient: f64::INFINITY,
            since_best: 0,
        }
    }
}

impl StallWatch {
    /// Records an iterate's (pseudo-)gradient; `history` holds the objective so far, the
    /// iterate's last. True when the last [`STALL_ITERATIONS`] iterations improved nothing.
    fn stalled(&mut self, gradient: &[f64], history: &[f64]) -> bool {
        let g = gradient.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
        if g < self.best_gradient {
            self.best_gradient = g;
            self.since_best = 0;
            return false;
        }
        self.since_best += 1;
        let n = history.len();
        if self.since_best < STALL_ITERATIONS || n <= STALL_ITERATIONS {
            return false;
        }
        let before = history[n - 1 - STALL_ITERATIONS];
        history[n - 1] >= before - 1e-12 * before.abs()
    }
}

/// The relative function change test shared by L-BFGS and OWL-QN (`tol = 0` disables it).
fn function_converged(previous: f64, current: f64, tol: f64) -> bool {
    tol > 0.0 && (previous - current).abs() <= tol * previous.abs().max(current.abs())
}

/// `Σ cⱼ |xⱼ|`.
fn l1_norm(weights: &[f64], x: &[f64]) -> f64 {
    weights.iter().zip(x).map(|(c, v)| c * v.abs()).sum()
}

fn check_start(x0: &[f64], l1: Option<&[f64]>) -> Result<()> {
    if x0.is_empty() {
        return Err(MlError::Internal(
            "an optimizer needs at least one variable".into(),
        ));
    }
    if let Some(c) = l1 {
        if c.len() != x0.len() {
            return Err(MlError::Internal(format!(
                "{} L1 weights for {} variables",
                c.len(),
                x0.len()
            )));
        }
    }
    Ok(())
}

fn check_gradient(expected: usize, gradient: &[f64]) -> Result<()> {
    if gradient.len() != expected {
        return Err(MlError::Internal(format!(
            "gradient of length {} for {expected} variables",
            gradient.len()
        )));
    }
    Ok(())
}

fn out_of_turn() -> MlError {
    MlError::Internal("optimizer told a value it did not ask for".into())
}

#[cfg(test)]
mod tests;
