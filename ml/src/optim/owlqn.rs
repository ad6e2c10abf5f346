//! OWL-QN (Andrew & Gao 2007): L-BFGS for `f(x) + Σ cⱼ|xⱼ|`, as a step machine.

use super::quasi_newton::{core_builders, descent, first_step, Core, Iterate, Phase};
use super::{check_gradient, check_start, l1_norm, out_of_turn, Ask, Minimizer, StopReason};
use crate::error::{MlError, Result};
use crate::linalg::dot;

/// Sufficient decrease constant of the projected backtracking search.
const GAMMA: f64 = 1e-4;
/// Halvings per search before giving up.
const MAX_TRIALS: usize = 40;
/// Relative size of `F` within which values are taken as equal (see `approximately_decreases`).
const NOISE: f64 = 1e-12;

/// Orthant-wise limited-memory quasi-Newton (see the [module docs](super) for the update
/// rule): minimizes `f(x) + Σ cⱼ |xⱼ|` where the caller evaluates the smooth `f`.
///
/// Defaults as [`Lbfgs`](super::Lbfgs): `m = 10`, `max_iter = 100`, `tol = 1e-6`.
#[derive(Debug, Clone)]
pub struct OwlQn {
    l1: Vec<f64>,
    /// Limits, memory, iterate and phase.
    core: Core<Search>,
}

/// A projected backtracking search along `direction` in `orthant`, waiting for `trial_x`.
#[derive(Debug, Clone)]
struct Search {
    direction: Vec<f64>,
    orthant: Vec<f64>,
    pseudo_gradient: Vec<f64>,
    t: f64,
    trial_x: Vec<f64>,
    trials: usize,
    retry: bool,
}

impl OwlQn {
    /// OWL-QN with L1 weights `cⱼ ≥ 0`, one per variable (`0` leaves a variable, such as an
    /// intercept, unpenalized and unconstrained).
    pub fn new(l1: Vec<f64>) -> Self {
        Self {
            l1,
            core: Core::new(),
        }
    }

    core_builders!();

    fn begin_iteration(&mut self, retry: bool) -> Result<Ask> {
        let s = self.core.state.as_ref().ok_or_else(out_of_turn)?;
        let pg = pseudo_gradient(&s.x, &s.g, &self.l1);
        if pg.iter().all(|v| *v == 0.0) {
            return self.core.finish(StopReason::GradientZero);
        }
        let mut direction = self.core.memory.direction(&pg);
        for ((d, p), c) in direction.iter_mut().zip(&pg).zip(&self.l1) {
            if *c > 0.0 && *d * *p >= 0.0 {
                *d = 0.0;
            }
        }
        let (direction, _) = descent(&mut self.core.memory, &pg, direction);
        let orthant: Vec<f64> =
            s.x.iter()
                .zip(&pg)
                .map(|(x, p)| if *x != 0.0 { sign(*x) } else { sign(-*p) })
                .collect();
        let t = first_step(&self.core.memory, &direction);
        let trial_x = self.project(&s.x, t, &direction, &orthant);
        self.core.phase = Phase::Searching(Search {
            direction,
            orthant,
            pseudo_gradient: pg,
            t,
            trial_x: trial_x.clone(),
            trials: 1,
            retry,
        });
        Ok(Ask::Evaluate(trial_x))
    }

    /// `π(x + t d; ξ)`: penalized coordinates that leave their orthant become zero.
    fn project(&self, x: &[f64], t: f64, d: &[f64], orthant: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(d)
            .zip(orthant)
            .zip(&self.l1)
            .map(|(((xi, di), o), c)| {
                let v = xi + t * di;
                if *c > 0.0 && sign(v) != *o {
                    0.0
                } else {
                    v
                }
            })
            .collect()
    }
}

/// `−1`, `0` or `1` (unlike `f64::signum`, `0` for zero).
fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The pseudo-gradient `⋄F` of `f + Σ cⱼ|xⱼ|`.
fn pseudo_gradient(x: &[f64], g: &[f64], l1: &[f64]) -> Vec<f64> {
    x.iter()
        .zip(g)
        .zip(l1)
        .map(|((xi, gi), c)| {
            if *c == 0.0 {
                *gi
            } else if *xi > 0.0 {
                gi + c
            } else if *xi < 0.0 {
                gi - c
            } else if gi + c < 0.0 {
                gi + c
            } else if gi - c > 0.0 {
                gi - c
            } else {
                0.0
            }
        })
        .collect()
}

impl Minimizer for OwlQn {
    fn start(&mut self, x0: Vec<f64>) -> Result<Ask> {
        check_start(&x0, Some(&self.l1))?;
        if let Some(c) = self.l1.iter().find(|c| !(**c >= 0.0 && c.is_finite())) {
            return Err(MlError::Internal(format!("L1 weight {c} is not >= 0")));
        }
        Ok(self.core.restart(x0))
    }

    fn tell(&mut self, value: f64, gradient: Vec<f64>) -> Result<Ask> {
        match self.core.take_phase() {
            Phase::Initial(x) => {
                let l1 = &self.l1;
                let s = Iterate::first(x, value, gradient, |x| value + l1_norm(l1, x))?;
                self.core.state = Some(s);
                if self.core.limits.max_iter == 0 {
                    return self.core.finish(StopReason::MaxIter);
                }
                self.begin_iteration(false)
            }
            Phase::Searching(Search {
                direction,
                orthant,
                pseudo_gradient,
                t,
                trial_x,
                trials,
                retry,
            }) => {
                let s = self.core.state.as_ref().ok_or_else(out_of_turn)?;
                check_gradient(s.x.len(), &gradient)?;
                let total = value + l1_norm(&self.l1, &trial_x);
                let moved: Vec<f64> = trial_x.iter().zip(&s.x).map(|(a, b)| a - b).collect();
                let slope = dot(&pseudo_gradient, &moved);
                let bound = s.value + GAMMA * slope;
                let exact = total.is_finite() && total <= bound;
                // Hager & Zhang's approximate sufficient decrease (as in the L-BFGS line
                // search): within rounding of F, judge by the slope of F restricted to the
                // orthant at the end of the step, F being smooth there.
                let approximate = total <= s.value + NOISE * s.value.abs() && {
                    let end_slope: f64 = gradient
                        .iter()
                        .zip(&orthant)
                        .zip(&self.l1)
                        .zip(&moved)
                        .map(|(((g, o), c), p)| (g + c * o) * p)
                        .sum();
                    end_slope <= (2.0 * GAMMA - 1.0) * slope
                };
                if exact || approximate {
                    return self.accept(trial_x, gradient, total);
                }
                if trials >= MAX_TRIALS {
                    if retry {
                        return self.core.finish(StopReason::NoProgress);
                    }
                    self.core.memory.clear();
                    return self.begin_iteration(true);
                }
                let t = 0.5 * t;
                let next = self.project(&s.x, t, &direction, &orthant);
                self.core.phase = Phase::Searching(Search {
                    direction,
                    orthant,
                    pseudo_gradient,
                    t,
                    trial_x: next.clone(),
                    trials: trials + 1,
                    retry,
                });
                Ok(Ask::Evaluate(next))
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

impl OwlQn {
    fn accept(&mut self, x: Vec<f64>, g: Vec<f64>, total: f64) -> Result<Ask> {
        let s = self.core.state.as_mut().ok_or_else(out_of_turn)?;
        let previous = s.advance(&mut self.core.memory, x, g, total);
        let pg = pseudo_gradient(&s.x, &s.g, &self.l1);
        match s.stop_after_step(previous, self.core.limits, Some(&pg)) {
            Some(stop) => self.core.finish(stop),
            None => self.begin_iteration(false),
        }
    }
}
