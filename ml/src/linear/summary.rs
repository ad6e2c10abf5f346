//! What training recorded, kept with the model.

use serde::{Deserialize, Serialize};

use crate::optim::StopReason;

/// The objective per iteration and why training stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub(crate) objective_history: Vec<f64>,
    pub(crate) total_iterations: usize,
    pub(crate) stop: StopReason,
}

impl TrainingSummary {
    /// A summary from its parts (e.g. read from a model file).
    pub fn new(objective_history: Vec<f64>, total_iterations: usize, stop: StopReason) -> Self {
        Self {
            objective_history,
            total_iterations,
            stop,
        }
    }

    /// The objective (mean loss plus penalty) at the start and after each iteration:
    /// [`total_iterations`](Self::total_iterations)` + 1` values. Non-increasing for L-BFGS
    /// and OWL-QN (up to rounding, `10⁻¹²` relative); mini-batch estimates for SGD.
    pub fn objective_history(&self) -> &[f64] {
        &self.objective_history
    }

    /// Iterations run (accepted optimizer steps).
    pub fn total_iterations(&self) -> usize {
        self.total_iterations
    }

    /// Why the optimizer stopped.
    pub fn stop_reason(&self) -> StopReason {
        self.stop
    }
}
