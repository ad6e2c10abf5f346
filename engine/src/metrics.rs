//! Counters a session keeps, readable as a [`Metrics`] snapshot so tests and tools assert
//! numbers rather than log lines.

use std::sync::atomic::{AtomicU64, Ordering};

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
