//! Proximal (mini-batch) stochastic gradient descent, as a step machine.

use serde::{Deserialize, Serialize};

use super::{
    check_gradient, check_start, l1_norm, limit_builders, out_of_turn, Ask, Limits, Minimizer,
    Solution, StopReason,
};
use crate::error::{MlError, Result};
use crate::linalg::norm;

/// An objective this many times its starting value (or `1`, whichever is larger) means the
/// steps diverge.
const DIVERGENCE_FACTOR: f64 = 1e6;

/// How the SGD step size changes with the iteration `t = 1, 2, …`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepSchedule {
    /// `ηₜ = η`.
    Constant,
    /// `ηₜ = η / √t`, Spark's `GradientDescent` (default).
    #[default]
    InverseSqrt,
}

/// Stochastic gradient descent with soft thresholding for the L1 part (see the
/// [module docs](super)). The caller evaluates the smooth objective on a mini-batch chosen by
/// the iteration number ([`Minimizer::iteration`]).
///
/// Stops with an error naming `step_size` when the objective becomes non-finite or grows a
/// million-fold from its starting value, instead of returning diverged coefficients.
#[derive(Debug, Clone)]
pub struct Sgd {
    step_size: f64,
    schedule: StepSchedule,
    l1: Option<Vec<f64>>,
    limits: Limits,
    state: Option<State>,
    waiting: bool,
}

#[derive(Debug, Clone)]
struct State {
    x: Vec<f64>,
    iteration: usize,
    history: Vec<f64>,
    first: f64,
    /// Whether the step that produced `x` was below the tolerance.
    small_step: bool,
}

impl Sgd {
    /// SGD with initial step `step_size`, `max_iter = 100` and `tol = 1e-3` (Spark's
    /// `GradientDescent` defaults).
    pub fn new(step_size: f64, schedule: StepSchedule) -> Self {
        Self {
            step_size,
            schedule,
            l1: None,
            limits: Limits {
                max_iter: 100,
                tol: 1e-3,
            },
            state: None,
            waiting: false,
        }
    }

    /// Per-variable L1 weights `cⱼ ≥ 0`, applied by soft thresholding.
    pub fn l1(mut self, weights: Vec<f64>) -> Self {
        self.l1 = Some(weights);
        self
    }

    limit_builders!(
        limits,
        "Relative step length below which the iterates have converged."
    );

    fn rate(&self, t: usize) -> f64 {
        match self.schedule {
            StepSchedule::Constant => self.step_size,
            StepSchedule::InverseSqrt => self.step_size / (t as f64).sqrt(),
        }
    }
}

impl Minimizer for Sgd {
    fn start(&mut self, x0: Vec<f64>) -> Result<Ask> {
        check_start(&x0, self.l1.as_deref())?;
        self.state = Some(State {
            x: x0.clone(),
            iteration: 0,
            history: Vec::new(),
            first: f64::NAN,
            small_step: false,
        });
        self.waiting = true;
        Ok(Ask::Evaluate(x0))
    }

    fn tell(&mut self, value: f64, gradient: Vec<f64>) -> Result<Ask> {
        if !self.waiting {
            return Err(out_of_turn());
        }
        let rate = self.rate(self.iteration() + 1);
        let (step_size, Limits { max_iter, tol }) = (self.step_size, self.limits);
        let l1 = self.l1.clone();
        let s = self.state.as_mut().ok_or_else(out_of_turn)?;
        check_gradient(s.x.len(), &gradient)?;
        let total = value + l1.as_deref().map_or(0.0, |c| l1_norm(c, &s.x));
        if s.history.is_empty() {
            s.first = total;
        }
        let diverged = !total.is_finite()
            || gradient.iter().any(|g| !g.is_finite())
            || total > DIVERGENCE_FACTOR * s.first.abs().max(1.0);
        if diverged {
            self.waiting = false;
            return Err(MlError::param(
                "step_size",
                format!(
                    "SGD diverged at iteration {}: the objective went from {} to {total} with \
                     step_size {step_size}; use a smaller step_size or the inverse-sqrt schedule",
                    s.iteration, s.first
                ),
            ));
        }
        s.history.push(total);
        if s.iteration >= max_iter || s.small_step {
            self.waiting = false;
            let stop = if s.small_step {
                StopReason::Converged
            } else {
                StopReason::MaxIter
            };
            return Ok(Ask::Done(Solution {
                x: s.x.clone(),
                value: total,
                iterations: s.iteration,
                objective_history: s.history.clone(),
                stop,
            }));
        }
        let mut next: Vec<f64> =
            s.x.iter()
                .zip(&gradient)
                .map(|(x, g)| x - rate * g)
                .collect();
        if let Some(c) = &l1 {
            for (v, c) in next.iter_mut().zip(c) {
                let shrink = rate * c;
                *v = v.signum() * (v.abs() - shrink).max(0.0);
            }
        }
        let moved: Vec<f64> = next.iter().zip(&s.x).map(|(a, b)| a - b).collect();
        s.small_step = norm(&moved) <= tol * norm(&next).max(1.0);
        s.x = next.clone();
        s.iteration += 1;
        Ok(Ask::Evaluate(next))
    }

    fn iteration(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.iteration)
    }

    fn objective_history(&self) -> &[f64] {
        self.state.as_ref().map_or(&[], |s| &s.history)
    }
}
