//! What the scheduler's two kinds of work share — query jobs (`crate::job`: stages of tasks)
//! and training (`crate::ml::training_data`: kernel rounds over cached partitions): the
//! executors and their task slots ([`Pool`]), one policy for running a failed attempt again
//! ([`RetryPolicy`]), and the stream of what happened ([`Event`], [`crate::Session::events`]),
//! from which progress displays, metrics and logs can be built without hooks at each call
//! site.

use std::sync::Arc;

use kiln_executor::Executor;
use kiln_planner::task::FailureKind;
use tokio::sync::{broadcast, Semaphore};

use crate::error::{EngineError, Result};

/// One executor of a session and its free task slots.
#[derive(Clone)]
pub(crate) struct Member {
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) slots: Arc<Semaphore>,
}

/// The executors a session has had, in the order they joined, each with its free task slots.
/// Executors only join: a lost one stays, dead, so an index names one executor for the
/// session's life, and a replacement (a restarted process, a new pod) joins as a new member.
/// The scheduler reads a snapshot at each decision, so slots that appear are used at once.
#[derive(Default)]
pub(crate) struct Pool {
    members: std::sync::RwLock<Vec<Member>>,
}

impl Pool {
    /// A pool of `executors`.
    pub(crate) fn new(executors: Vec<Arc<dyn Executor>>) -> Self {
        let pool = Self::default();
        for e in executors {
            pool.join(e);
        }
        pool
    }

    /// Every member, in joining order.
    pub(crate) fn members(&self) -> Vec<Member> {
        self.members.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// Every executor, in joining order.
    pub(crate) fn executors(&self) -> Vec<Arc<dyn Executor>> {
        self.members().into_iter().map(|m| m.executor).collect()
    }

    /// Executor `index`.
    pub(crate) fn executor(&self, index: usize) -> Result<Arc<dyn Executor>> {
        self.members
            .read()
            .ok()
            .and_then(|m| m.get(index).map(|m| Arc::clone(&m.executor)))
            .ok_or_else(|| EngineError::Internal(format!("no executor {index}")))
    }

    /// How many executors joined.
    pub(crate) fn len(&self) -> usize {
        self.members.read().map(|m| m.len()).unwrap_or_default()
    }

    /// Adds `executor` unless it is a member already (the same object); whether it joined.
    pub(crate) fn join(&self, executor: Arc<dyn Executor>) -> bool {
        let Ok(mut members) = self.members.write() else {
            return false;
        };
        let same = |m: &Member| std::ptr::addr_eq(Arc::as_ptr(&m.executor), Arc::as_ptr(&executor));
        if members.iter().any(same) {
            return false;
        }
        let slots = Arc::new(Semaphore::new(executor.slots()));
        members.push(Member { executor, slots });
        true
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Run it again.
    Again,
    /// Fail the job or the fit.
    GiveUp,
}

/// When a failed task attempt or kernel round runs again: a failure in the data or the query
/// (`UserError`) never; any other after fewer than `max_attempts` attempts. An executor that
/// is lost costs no attempt (its work moves elsewhere), so it is not asked here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Attempts before giving up (the session's `kiln.max_task_attempts`).
    pub(crate) max_attempts: u32,
}

impl RetryPolicy {
    /// After `attempts` attempts, the last of which failed with `kind`.
    pub(crate) fn after(&self, kind: FailureKind, attempts: u32) -> Retry {
        match kind {
            FailureKind::UserError => Retry::GiveUp,
            _ if attempts < self.max_attempts => Retry::Again,
            _ => Retry::GiveUp,
        }
    }
}

/// Something the scheduler did. Receive them with [`crate::Session::events`]; serialized
/// with serde as one JSON object per event, tagged by `"event"`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A job (one query, write or cached dataset) started with `stages` stages.
    JobStarted {
        /// The job's id (`job-N-…`).
        job: String,
        /// Its stages.
        stages: usize,
    },
    /// A stage's parents are done: its tasks are queued.
    StageSubmitted {
        /// The job.
        job: String,
        /// The stage.
        stage: u32,
        /// Its tasks (partitions).
        tasks: usize,
    },
    /// An attempt of a task ended.
    TaskFinished {
        /// The job.
        job: String,
        /// The stage.
        stage: u32,
        /// The partition.
        partition: u32,
        /// The attempt (0 first).
        attempt: u32,
        /// The executor that ran it.
        executor: String,
        /// Seconds from launch to answer.
        seconds: f64,
        /// Why it failed, if it did.
        failure: Option<String>,
    },
    /// Every task of a stage has an accepted output.
    StageFinished {
        /// The job.
        job: String,
        /// The stage.
        stage: u32,
    },
    /// A job ended.
    JobFinished {
        /// The job.
        job: String,
        /// Seconds it ran.
        seconds: f64,
        /// Why it failed, if it did.
        error: Option<String>,
    },
    /// An executor joined the session (at its start, or later).
    ExecutorJoined {
        /// Its name.
        executor: String,
        /// Its task slots.
        slots: usize,
    },
    /// An executor was lost (its tasks and partitions move to the others).
    ExecutorLost {
        /// Its name.
        executor: String,
    },
    /// A training round ran on the executors holding a cached dataset's partitions.
    KernelRound {
        /// The cached dataset (`ds-…`).
        dataset: String,
        /// Seconds from the first request to the merged answer.
        seconds: f64,
        /// Attempts it took (1 without failures).
        attempts: u32,
        /// Partitions that answered.
        partitions: usize,
    },
}

/// The session's event stream: a broadcast channel whose slow receivers miss old events
/// rather than slow the scheduler down.
pub(crate) struct Events(broadcast::Sender<Event>);

impl Default for Events {
    fn default() -> Self {
        Self(broadcast::channel(4096).0)
    }
}

impl Events {
    /// Tells every receiver (none: nothing happens).
    pub(crate) fn emit(&self, event: Event) {
        let _ = self.0.send(event);
    }

    /// A receiver of the events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.subscribe()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_policy_for_tasks_and_rounds() {
        let p = RetryPolicy { max_attempts: 3 };
        assert_eq!(p.after(FailureKind::TaskFailed, 1), Retry::Again);
        assert_eq!(p.after(FailureKind::TaskFailed, 2), Retry::Again);
        assert_eq!(p.after(FailureKind::TaskFailed, 3), Retry::GiveUp);
        assert_eq!(p.after(FailureKind::UserError, 1), Retry::GiveUp);
    }

    #[test]
    fn events_serialize_as_tagged_json() {
        let e = Event::ExecutorLost {
            executor: "exec-1".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"executor_lost","executor":"exec-1"}"#
        );
    }
}
