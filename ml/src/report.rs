//! The training report: the figures a fit is judged by besides the model's quality —
//! training time, communication overhead, resource utilization and throughput — measured
//! while it ran (the executors report their kernel time with each partial).

use serde::{Deserialize, Serialize};

/// What one fit measured. Times are wall-clock seconds on the driver unless named otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingReport {
    /// The algorithm (`kmeans`, `logistic_regression`, ...).
    pub algorithm: String,
    /// The algorithm's iterations (as its progress counts them: Lloyd steps, optimizer
    /// steps).
    pub iterations: usize,
    /// Kernel rounds run over the executors (an iteration runs one or more; seeding and
    /// statistics rounds come before the first).
    pub rounds: usize,
    /// Rows trained on.
    pub rows: u64,
    /// Seconds from the algorithm's start to the model (caching the data not included).
    pub training_seconds: f64,
    /// Seconds spent caching the training data before the first iteration.
    pub cache_seconds: f64,
    /// Seconds of kernel compute on the critical path: per round, the slowest executor's.
    pub compute_seconds: f64,
    /// Seconds spent outside the kernels: encoding, sending and decoding kernels and
    /// partials, merging the partials and the algorithm's update on the driver.
    pub overhead_seconds: f64,
    /// `overhead_seconds` over `training_seconds`, in percent.
    pub communication_overhead_pct: f64,
    /// Bytes sent to and received from the executors over the fit, per iteration.
    pub bytes_per_iteration: f64,
    /// Busy slot-seconds (kernel thread-seconds on the executors) over available
    /// slot-seconds (every executor's slots for the training time), in percent.
    pub utilization_pct: f64,
    /// Task slots across the executors during the fit.
    pub slots: usize,
    /// Rows per second of kernel time, per executor: `(executor, rows/s)`.
    pub rows_per_second: Vec<(String, f64)>,
    /// The objective (loss, cost) after each iteration, where the algorithm reports one.
    pub loss_curve: Vec<f64>,
    /// Quality on a validation set, when one was given: `(metric, value)` pairs as the
    /// model's evaluator computes them — `accuracy`, `roc_auc`, ... for a classifier, `rmse`,
    /// `r2`, ... for a regression. Empty without a validation set.
    pub validation: Vec<(String, f64)>,
}

impl TrainingReport {
    /// The report as `(figure, value)` rows, as `DESCRIBE MODEL` and `EXPLAIN ANALYZE TRAIN`
    /// print it.
    pub fn rows(&self) -> Vec<(String, String)> {
        let mut rows = vec![
            ("algorithm".to_string(), self.algorithm.clone()),
            ("iterations".into(), self.iterations.to_string()),
            ("kernel rounds".into(), self.rounds.to_string()),
            ("rows".into(), self.rows.to_string()),
            (
                "training time".into(),
                format!("{:.3} s", self.training_seconds),
            ),
            (
                "caching time".into(),
                format!("{:.3} s", self.cache_seconds),
            ),
            ("compute".into(), format!("{:.3} s", self.compute_seconds)),
            ("overhead".into(), format!("{:.3} s", self.overhead_seconds)),
            (
                "communication overhead".into(),
                format!("{:.1} %", self.communication_overhead_pct),
            ),
            (
                "bytes per iteration".into(),
                format!("{:.0}", self.bytes_per_iteration),
            ),
            (
                "utilization".into(),
                format!("{:.1} % of {} slots", self.utilization_pct, self.slots),
            ),
        ];
        for (executor, rate) in &self.rows_per_second {
            rows.push((format!("rows/s on {executor}"), format!("{rate:.0}")));
        }
        if let Some(last) = self.loss_curve.last() {
            rows.push(("final loss".into(), format!("{last}")));
        }
        for (metric, value) in &self.validation {
            rows.push((format!("validation {metric}"), format!("{value}")));
        }
        rows
    }
}
