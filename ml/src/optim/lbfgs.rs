//! L-BFGS with a strong Wolfe line search, as a step machine.

use super::line_search::{Decision, StrongWolfe};
use super::memory::Memory;
use super::{
    check_gradient, check_start, function_converged, out_of_turn, Ask, Minimizer, Solution,
    StallWatch, StopReason,
};
use crate::error::{MlError, Result};
use crate::linalg::{dot, norm};

/// Limited-memory BFGS (see the [module docs](super) for the update rule).
///
/// Defaults are Spark's: `m = 10` pairs, `max_iter = 100`, `tol = 1e-6`.
#[derive(Debug, Clone)]
pub struct Lbfgs {
    max_iter: usize,
    tol: f64,
    memory: Memory,
    state: Option<State>,
    phase: Phase,
}

/// The current iterate.
#[derive(Debug, Clone)]
struct State {
    x: Vec<f64>,
    f: f64,
    g: Vec<f64>,
    iteration: usize,
    history: Vec<f64>,
    stall: StallWatch,
}

/// A trial point of the line search.
#[derive(Debug, Clone)]
struct Trial {
    x: Vec<f64>,
    f: f64,
    g: Vec<f64>,
}

#[derive(Debug, Clone)]
enum Phase {
    Idle,
    /// Waiting for `f(x₀)`.
    Initial(Vec<f64>),
    /// Waiting for a trial of the line search along `direction`.
    Searching {
        direction: Vec<f64>,
        search: StrongWolfe,
        trials: Vec<Trial>,
        /// Whether this is the steepest descent retry after a failed search.
        retry: bool,
    },
    Finished,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Self::new()
    }
}

impl Lbfgs {
    /// L-BFGS with Spark's defaults.
    pub fn new() -> Self {
        Self {
            max_iter: 100,
            tol: 1e-6,
            memory: Memory::new(10),
            state: None,
            phase: Phase::Idle,
        }
    }

    /// Curvature pairs kept (`m`, at least 1).
    pub fn memory(mut self, m: usize) -> Self {
        self.memory = Memory::new(m);
        self
    }

    /// Iteration limit.
    pub fn max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Relative function change below which the minimization has converged.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    fn finish(&mut self, stop: StopReason) -> Result<Ask> {
        self.phase = Phase::Finished;
        let s = self.state.as_ref().ok_or_else(out_of_turn)?;
        Ok(Ask::Done(Solution {
            x: s.x.clone(),
            value: s.f,
            iterations: s.iteration,
            objective_history: s.history.clone(),
            stop,
        }))
    }

    /// Starts an iteration from the current state: direction, then the first trial.
    fn begin_iteration(&mut self, retry: bool) -> Result<Ask> {
        let s = self.state.as_ref().ok_or_else(out_of_turn)?;
        let mut direction = self.memory.direction(&s.g);
        let mut dg = dot(&s.g, &direction);
        if dg.is_nan() || dg >= 0.0 {
            // Rounding made the quasi-Newton direction useless: start over from −∇f.
            self.memory.clear();
            direction = s.g.iter().map(|v| -v).collect();
            dg = -dot(&s.g, &s.g);
        }
        let t0 = if self.memory.is_empty() {
            (1.0 / norm(&direction)).min(1.0)
        } else {
            1.0
        };
        let (search, decision) = StrongWolfe::new(s.f, dg, t0);
        let Decision::Try(t) = decision else {
            return Err(MlError::Internal("line search did not start".into()));
        };
        let x = step(&s.x, t, &direction);
        self.phase = Phase::Searching {
            direction,
            search,
            trials: Vec::new(),
            retry,
        };
        Ok(Ask::Evaluate(x))
    }

    /// Moves to an accepted trial and decides whether to go on.
    fn accept(&mut self, trial: Trial) -> Result<Ask> {
        let s = self.state.as_mut().ok_or_else(out_of_turn)?;
        let sv: Vec<f64> = trial.x.iter().zip(&s.x).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = trial.g.iter().zip(&s.g).map(|(a, b)| a - b).collect();
        self.memory.push(sv, yv);
        let previous = s.f;
        s.x = trial.x;
        s.f = trial.f;
        s.g = trial.g;
        s.iteration += 1;
        s.history.push(s.f);
        if s.g.iter().all(|v| *v == 0.0) {
            return self.finish(StopReason::GradientZero);
        }
        if function_converged(previous, s.f, self.tol) {
            return self.finish(StopReason::Converged);
        }
        if s.stall.stalled(&s.g, &s.history) {
            return self.finish(StopReason::NoProgress);
        }
        if s.iteration >= self.max_iter {
            return self.finish(StopReason::MaxIter);
        }
        self.begin_iteration(false)
    }
}

/// `x + t d`.
fn step(x: &[f64], t: f64, d: &[f64]) -> Vec<f64> {
    x.iter().zip(d).map(|(xi, di)| xi + t * di).collect()
}

impl Minimizer for Lbfgs {
    fn start(&mut self, x0: Vec<f64>) -> Result<Ask> {
        check_start(&x0, None)?;
        self.phase = Phase::Initial(x0.clone());
        self.state = None;
        Ok(Ask::Evaluate(x0))
    }

    fn tell(&mut self, value: f64, gradient: Vec<f64>) -> Result<Ask> {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Initial(x) => {
                check_gradient(x.len(), &gradient)?;
                if !value.is_finite() || gradient.iter().any(|v| !v.is_finite()) {
                    return Err(MlError::Internal(format!(
                        "the objective is not finite at the starting point ({value})"
                    )));
                }
                let zero = gradient.iter().all(|v| *v == 0.0);
                self.state = Some(State {
                    x,
                    f: value,
                    g: gradient,
                    iteration: 0,
                    history: vec![value],
                    stall: StallWatch::default(),
                });
                if zero {
                    return self.finish(StopReason::GradientZero);
                }
                if self.max_iter == 0 {
                    return self.finish(StopReason::MaxIter);
                }
                self.begin_iteration(false)
            }
            Phase::Searching {
                direction,
                mut search,
                mut trials,
                retry,
            } => {
                let s = self.state.as_ref().ok_or_else(out_of_turn)?;
                check_gradient(s.x.len(), &gradient)?;
                let x = step(&s.x, search.pending(), &direction);
                let dg = dot(&gradient, &direction);
                trials.push(Trial {
                    x,
                    f: value,
                    g: gradient,
                });
                match search.tell(trials.len() - 1, value, dg) {
                    Decision::Try(t) => {
                        let x = step(&s.x, t, &direction);
                        self.phase = Phase::Searching {
                            direction,
                            search,
                            trials,
                            retry,
                        };
                        Ok(Ask::Evaluate(x))
                    }
                    Decision::Accept(i) => {
                        let trial = trials.swap_remove(i);
                        self.accept(trial)
                    }
                    Decision::Fail => {
                        if retry {
                            self.finish(StopReason::NoProgress)
                        } else {
                            self.memory.clear();
                            self.begin_iteration(true)
                        }
                    }
                }
            }
            Phase::Idle | Phase::Finished => Err(out_of_turn()),
        }
    }

    fn iteration(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.iteration)
    }

    fn objective_history(&self) -> &[f64] {
        self.state.as_ref().map_or(&[], |s| &s.history)
    }
}
