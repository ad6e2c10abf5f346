//! The parts L-BFGS and OWL-QN share: the iterate, the phases of the step machine, the
//! descent direction safeguard and the stopping tests (see the [module docs](super)).

use super::memory::Memory;
use super::{
    check_gradient, function_converged, out_of_turn, Ask, Limits, Solution, StallWatch, StopReason,
};
use crate::error::{MlError, Result};
use crate::linalg::{dot, norm};

/// Where the step machine of a quasi-Newton method is; `S` is the state of its line search.
#[derive(Debug, Clone)]
pub(super) enum Phase<S> {
    Idle,
    /// Waiting for `f(x₀)`.
    Initial(Vec<f64>),
    /// Waiting for a trial of the line search.
    Searching(S),
    Finished,
}

/// The current iterate.
#[derive(Debug, Clone)]
pub(super) struct Iterate {
    pub(super) x: Vec<f64>,
    /// Smooth gradient `∇f`.
    pub(super) g: Vec<f64>,
    /// The minimized objective (`f`, or `f + Σ cⱼ|xⱼ|` for OWL-QN).
    pub(super) value: f64,
    pub(super) iteration: usize,
    pub(super) history: Vec<f64>,
    stall: StallWatch,
}

impl Iterate {
    /// The starting iterate, from `f(x₀) = smooth` and `∇f(x₀) = g` (checked to be finite);
    /// `value` is the minimized objective at `x₀` computed from `smooth`.
    pub(super) fn first(
        x: Vec<f64>,
        smooth: f64,
        g: Vec<f64>,
        value: impl FnOnce(&[f64]) -> f64,
    ) -> Result<Self> {
        check_gradient(x.len(), &g)?;
        if !smooth.is_finite() || g.iter().any(|v| !v.is_finite()) {
            return Err(MlError::Internal(format!(
                "the objective is not finite at the starting point ({smooth})"
            )));
        }
        let value = value(&x);
        Ok(Self {
            x,
            g,
            value,
            iteration: 0,
            history: vec![value],
            stall: StallWatch::default(),
        })
    }

    /// Moves to an accepted point, keeping the curvature pair in `memory`; returns the value
    /// before the move.
    pub(super) fn advance(
        &mut self,
        memory: &mut Memory,
        x: Vec<f64>,
        g: Vec<f64>,
        value: f64,
    ) -> f64 {
        let sv: Vec<f64> = x.iter().zip(&self.x).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = g.iter().zip(&self.g).map(|(a, b)| a - b).collect();
        memory.push(sv, yv);
        let previous = self.value;
        self.x = x;
        self.g = g;
        self.value = value;
        self.iteration += 1;
        self.history.push(value);
        previous
    }

    /// Why to stop after a step from `previous`, if at all: the function change, no progress
    /// (judged by `gradient`, the smooth gradient if `None`) or the iteration limit.
    pub(super) fn stop_after_step(
        &mut self,
        previous: f64,
        limits: Limits,
        gradient: Option<&[f64]>,
    ) -> Option<StopReason> {
        if function_converged(previous, self.value, limits.tol) {
            return Some(StopReason::Converged);
        }
        if self
            .stall
            .stalled(gradient.unwrap_or(&self.g), &self.history)
        {
            return Some(StopReason::NoProgress);
        }
        (self.iteration >= limits.max_iter).then_some(StopReason::MaxIter)
    }

    fn solution(&self, stop: StopReason) -> Solution {
        Solution {
            x: self.x.clone(),
            value: self.value,
            iterations: self.iteration,
            objective_history: self.history.clone(),
            stop,
        }
    }
}

/// What L-BFGS and OWL-QN both keep: their limits, the curvature memory, the iterate and
/// the phase of the step machine (`S` being the state of their line search).
#[derive(Debug, Clone)]
pub(super) struct Core<S> {
    pub(super) limits: Limits,
    pub(super) memory: Memory,
    pub(super) state: Option<Iterate>,
    pub(super) phase: Phase<S>,
}

impl<S> Core<S> {
    /// Spark's defaults: `m = 10` pairs, `max_iter = 100`, `tol = 1e-6`.
    pub(super) fn new() -> Self {
        Self {
            limits: Limits {
                max_iter: 100,
                tol: 1e-6,
            },
            memory: Memory::new(10),
            state: None,
            phase: Phase::Idle,
        }
    }

    /// Starts over from `x0`: asks for `f(x₀)`.
    pub(super) fn restart(&mut self, x0: Vec<f64>) -> Ask {
        self.phase = Phase::Initial(x0.clone());
        self.state = None;
        Ask::Evaluate(x0)
    }

    /// The phase to act on, leaving [`Phase::Idle`] until the next is set.
    pub(super) fn take_phase(&mut self) -> Phase<S> {
        std::mem::replace(&mut self.phase, Phase::Idle)
    }

    /// Ends the minimization at the current iterate.
    pub(super) fn finish(&mut self, stop: StopReason) -> Result<Ask> {
        self.phase = Phase::Finished;
        let s = self.state.as_ref().ok_or_else(out_of_turn)?;
        Ok(Ask::Done(s.solution(stop)))
    }

    /// Iterations (accepted steps) so far.
    pub(super) fn iteration(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.iteration)
    }

    /// The objective at the start and after each iteration.
    pub(super) fn objective_history(&self) -> &[f64] {
        self.state.as_ref().map_or(&[], |s| &s.history)
    }
}

/// The builder methods of an optimizer (in a sibling module) with a `core: Core<_>` field:
/// `memory`, `max_iter` and `tol`.
macro_rules! core_builders {
    () => {
        /// Curvature pairs kept (`m`, at least 1).
        pub fn memory(mut self, m: usize) -> Self {
            self.core.memory = super::memory::Memory::new(m);
            self
        }

        super::limit_builders!(
            core.limits,
            "Relative function change below which the minimization has converged."
        );
    };
}
pub(super) use core_builders;

/// `direction` and its slope `gᵀd` along the (pseudo-)gradient `g`, or `−g` with the memory
/// cleared where rounding made `direction` useless (not a descent direction).
pub(super) fn descent(memory: &mut Memory, g: &[f64], direction: Vec<f64>) -> (Vec<f64>, f64) {
    let slope = dot(g, &direction);
    if slope.is_nan() || slope >= 0.0 {
        memory.clear();
        (g.iter().map(|v| -v).collect(), -dot(g, g))
    } else {
        (direction, slope)
    }
}

/// The first trial step: `1`, or `1/‖d‖` (at most 1) while the memory is empty.
pub(super) fn first_step(memory: &Memory, direction: &[f64]) -> f64 {
    if memory.is_empty() {
        (1.0 / norm(direction)).min(1.0)
    } else {
        1.0
    }
}
