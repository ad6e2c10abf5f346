//! L-BFGS with a strong Wolfe line search, as a step machine.

use super::line_search::{Decision, StrongWolfe};
use super::quasi_newton::{core_builders, descent, first_step, Core, Iterate, Phase};
use super::{check_gradient, check_start, out_of_turn, Ask, Minimizer, StopReason};
use crate::error::{MlError, Result};
use crate::linalg::dot;

/// Limited-memory BFGS (see the [module docs](super) for the update rule).
///
/// Defaults are Spark's: `m = 10` pairs, `max_iter = 100`, `tol = 1e-6`.
#[derive(Debug, Clone)]
pub struct Lbfgs {
    /// Limits, memory, iterate and phase.
    core: Core<Search>,
}

/// A trial point of the line search.
#[derive(Debug, Clone)]
struct Trial {
    x: Vec<f64>,
    f: f64,
    g: Vec<f64>,
}

/// A line search along `direction`, waiting for a trial.
#[derive(Debug, Clone)]
struct Search {
    direction: Vec<f64>,
    search: StrongWolfe,
    trials: Vec<Trial>,
    /// Whether this is the steepest descent retry after a failed search.
    retry: bool,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Self::new()
    }
}

impl Lbfgs {
    /// L-BFGS with Spark's defaults.
    pub fn new() -> Self {
        Self { core: Core::new() }
    }

    core_builders!();

    /// Starts an iteration from the current state: direction, then the first trial.
    fn begin_iteration(&mut self, retry: bool) -> Result<Ask> {
        let s = self.core.state.as_ref().ok_or_else(out_of_turn)?;
        let direction = self.core.memory.direction(&s.g);
        let (direction, dg) = descent(&mut self.core.memory, &s.g, direction);
        let t0 = first_step(&self.core.memory, &direction);
        let (search, decision) = StrongWolfe::new(s.value, dg, t0);
        let Decision::Try(t) = decision else {
            return Err(MlError::Internal("line search did not start".into()));
        };
        let x = step(&s.x, t, &direction);
        self.core.phase = Phase::Searching(Search {
            direction,
            search,
            trials: Vec::new(),
            retry,
        });
        Ok(Ask::Evaluate(x))
    }

    /// Moves to an accepted trial and decides whether to go on.
    fn accept(&mut self, trial: Trial) -> Result<Ask> {
        let s = self.core.state.as_mut().ok_or_else(out_of_turn)?;
        let previous = s.advance(&mut self.core.memory, trial.x, trial.g, trial.f);
        if s.g.iter().all(|v| *v == 0.0) {
            return self.core.finish(StopReason::GradientZero);
        }
        match s.stop_after_step(previous, self.core.limits, None) {
            Some(stop) => self.core.finish(stop),
            None => self.begin_iteration(false),
        }
    }
}

/// `x + t d`.
fn step(x: &[f64], t: f64, d: &[f64]) -> Vec<f64> {
    x.iter().zip(d).map(|(xi, di)| xi + t * di).collect()
}

impl Minimizer for Lbfgs {
    fn start(&mut self, x0: Vec<f64>) -> Result<Ask> {
        check_start(&x0, None)?;
        Ok(self.core.restart(x0))
    }

    fn tell(&mut self, value: f64, gradient: Vec<f64>) -> Result<Ask> {
        match self.core.take_phase() {
            Phase::Initial(x) => {
                let s = Iterate::first(x, value, gradient, |_| value)?;
                let zero = s.g.iter().all(|v| *v == 0.0);
                self.core.state = Some(s);
                if zero {
                    return self.core.finish(StopReason::GradientZero);
                }
                if self.core.limits.max_iter == 0 {
                    return self.core.finish(StopReason::MaxIter);
                }
                self.begin_iteration(false)
            }
            Phase::Searching(Search {
                direction,
                mut search,
                mut trials,
                retry,
            }) => {
                let s = self.core.state.as_ref().ok_or_else(out_of_turn)?;
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
                        self.core.phase = Phase::Searching(Search {
                            direction,
                            search,
                            trials,
                            retry,
                        });
                        Ok(Ask::Evaluate(x))
                    }
                    Decision::Accept(i) => {
                        let trial = trials.swap_remove(i);
                        self.accept(trial)
                    }
                    Decision::Fail => {
                        if retry {
                            self.core.finish(StopReason::NoProgress)
                        } else {
                            self.core.memory.clear();
                            self.begin_iteration(true)
                        }
                    }
                }
            }
            Phase::Idle | Phase::Finished => Err(out_of_turn()),
        }
    }

    fn iteration(&self) -> usize {
        self.core.iteration()
    }

    fn objective_history(&self) -> &[f64] {
        self.core.objective_history()
    }
}
