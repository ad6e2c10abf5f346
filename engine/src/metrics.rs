//! Counters a session keeps, readable as a [`Metrics`] snapshot so tests and tools assert
//! numbers rather than log lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The live counters of a session.
#[derive(Debug, Default)]
pub(crate) struct SessionMetrics {
    pub(crate) kernel_rounds: AtomicU64,
    pub(crate) partitions_reloaded: AtomicU64,
    pub(crate) executors_lost: AtomicU64,
    pub(crate) task_retries: AtomicU64,
    pub(crate) stage_resubmits: AtomicU64,
    pub(crate) fetch_failures: AtomicU64,
    pub(crate) bytes_shuffled: AtomicU64,
    pub(crate) stages_planned: AtomicU64,
    pub(crate) stages_finished: AtomicU64,
    pub(crate) tasks_planned: AtomicU64,
    pub(crate) tasks_finished: AtomicU64,
    /// The running fit's progress (the last one when several run at once).
    pub(crate) training: Mutex<Option<kiln_ml::Progress>>,
}

/// What a session is doing now, for progress displays: counters since the session started
/// (take the difference of two readings for one statement) and the running fit, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Activity {
    /// Stages of query jobs started so far.
    pub stages_planned: u64,
    /// Stages whose every task has finished.
    pub stages_finished: u64,
    /// Tasks of the started stages (first attempts).
    pub tasks_planned: u64,
    /// Tasks finished successfully.
    pub tasks_finished: u64,
    /// The running fit: iterations done, the limit and the current loss.
    pub training: Option<kiln_ml::Progress>,
}

impl Activity {
    /// One line of progress since `before` (a reading taken when the work started), `elapsed`
    /// later: `stages 2/3 | tasks 5/8 | training iteration 4/20 loss 0.512 | 1.2 s`. The
    /// shell draws it while a statement runs; programs may too.
    pub fn progress_line(&self, before: &Activity, elapsed: std::time::Duration) -> String {
        let mut line = format!(
            "stages {}/{} | tasks {}/{}",
            self.stages_finished - before.stages_finished,
            self.stages_planned - before.stages_planned,
            self.tasks_finished - before.tasks_finished,
            self.tasks_planned - before.tasks_planned
        );
        if let Some(t) = &self.training {
            line.push_str(&format!(
                " | training iteration {}/{}",
                t.iteration, t.max_iter
            ));
            if let Some(loss) = t.loss {
                line.push_str(&format!(" loss {loss:.6}"));
            }
        }
        line.push_str(&format!(" | {:.1} s", elapsed.as_secs_f64()));
        line
    }
}

/// A snapshot of a session's counters since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Kernel rounds run by training algorithms (one per iteration step).
    pub kernel_rounds: u64,
    /// Cached training partitions reloaded from the cache store because the executor running
    /// a kernel did not hold them in memory.
    pub partitions_reloaded: u64,
    /// Executors found unreachable.
    pub executors_lost: u64,
    /// Task attempts run again after a retryable failure (not counting tasks moved off a lost
    /// executor).
    pub task_retries: u64,
    /// Map outputs computed again because a reader could not fetch them.
    pub stage_resubmits: u64,
    /// Shuffle reads that found an object missing, truncated or corrupt.
    pub fetch_failures: u64,
    /// Bytes written by map tasks for downstream stages (accepted outputs).
    pub bytes_shuffled: u64,
}

impl SessionMetrics {
    pub(crate) fn activity(&self) -> Activity {
        Activity {
            stages_planned: self.stages_planned.load(Ordering::Relaxed),
            stages_finished: self.stages_finished.load(Ordering::Relaxed),
            tasks_planned: self.tasks_planned.load(Ordering::Relaxed),
            tasks_finished: self.tasks_finished.load(Ordering::Relaxed),
            training: self.training.lock().map_or(None, |t| *t),
        }
    }

    /// Records the running fit's progress (`None` when it ends).
    pub(crate) fn set_training(&self, progress: Option<kiln_ml::Progress>) {
        if let Ok(mut t) = self.training.lock() {
            *t = progress;
        }
    }

    pub(crate) fn snapshot(&self) -> Metrics {
        Metrics {
            kernel_rounds: self.kernel_rounds.load(Ordering::Relaxed),
            partitions_reloaded: self.partitions_reloaded.load(Ordering::Relaxed),
            executors_lost: self.executors_lost.load(Ordering::Relaxed),
            task_retries: self.task_retries.load(Ordering::Relaxed),
            stage_resubmits: self.stage_resubmits.load(Ordering::Relaxed),
            fetch_failures: self.fetch_failures.load(Ordering::Relaxed),
            bytes_shuffled: self.bytes_shuffled.load(Ordering::Relaxed),
        }
    }
}
