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
/// with serde as one JSON object per event, tagged by `"event"` (the event log's lines, see
/// `docs/eventlog.md`). Fields added in later versions of the log default when absent.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The session started: always the first event of a session's log.
    SessionStarted {
        /// The session's id (`kiln-…`).
        session: String,
        /// The event log format's version ([`EVENT_LOG_VERSION`]).
        version: u32,
        /// The Kiln version that wrote it.
        #[serde(default)]
        kiln: String,
        /// Where it runs: `embedded`, `local-cluster`, `cluster` or `kubernetes`.
        #[serde(default)]
        mode: String,
    },
    /// The session ended (dropped).
    SessionEnded {
        /// The session's id.
        session: String,
    },
    /// A job (one query, write or cached dataset) started with `stages` stages.
    JobStarted {
        /// The job's id (`job-N-…`).
        job: String,
        /// Its stages.
        stages: usize,
        /// What it runs: the SQL text, or the DataFrame plan's root.
        #[serde(default)]
        description: String,
    },
    /// A stage's parents are done: its tasks are queued.
    StageSubmitted {
        /// The job.
        job: String,
        /// The stage.
        stage: u32,
        /// Its tasks (partitions).
        tasks: usize,
        /// The stages whose output it reads.
        #[serde(default)]
        parents: Vec<u32>,
        /// Its physical plan, one operator per line.
        #[serde(default)]
        plan: String,
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
        /// Rows it wrote (for a map stage, to the shuffle; 0 when it failed).
        #[serde(default)]
        rows: u64,
        /// Bytes it wrote.
        #[serde(default)]
        bytes: u64,
        /// Its operators with their metrics, in pre-order (empty when it failed).
        #[serde(default)]
        operators: Vec<Operator>,
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
        /// Where it listens (`in-process` for an embedded executor).
        #[serde(default)]
        address: String,
        /// Its memory limit for tasks, in bytes, if it has one.
        #[serde(default)]
        memory_limit: Option<u64>,
    },
    /// An executor was lost (its tasks and partitions move to the others).
    ExecutorLost {
        /// Its name.
        executor: String,
    },
    /// A dataset was cached on the executors for training (or a persisted DataFrame).
    DatasetCached {
        /// The dataset (`ds-…`).
        dataset: String,
        /// Its partitions by executor: `(executor, partitions, rows, bytes)`.
        placements: Vec<(String, u64, u64, u64)>,
    },
    /// A cached dataset was freed on the executors.
    DatasetReleased {
        /// The dataset.
        dataset: String,
    },
    /// A fit started on a cached dataset.
    FitStarted {
        /// The fit's id (`fit-N`), unique in the session.
        fit: String,
        /// The algorithm (`kmeans`, `logistic_regression`, ...).
        algorithm: String,
        /// The cached dataset it trains on.
        dataset: String,
        /// Rows of the dataset.
        rows: u64,
        /// Its partitions.
        partitions: usize,
        /// The iteration limit.
        max_iter: usize,
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
        /// Partials the driver received: the executors merged the rest themselves (one per
        /// whole node of the merge tree they hold; `partitions` when none could).
        #[serde(default)]
        partials: usize,
        /// The fit it belongs to (empty for a round run outside a fit).
        #[serde(default)]
        fit: String,
        /// Seconds the slowest executor spent in the kernel itself (its critical path).
        #[serde(default)]
        compute_seconds: f64,
        /// Thread-seconds the executors spent in the kernel, summed over partitions.
        #[serde(default)]
        busy_seconds: f64,
        /// Seconds the driver spent decoding and merging the partials.
        #[serde(default)]
        merge_seconds: f64,
        /// Bytes sent to executors (kernels) and received from them (partials).
        #[serde(default)]
        bytes: u64,
        /// Rows each executor ran the kernel over, by executor name.
        #[serde(default)]
        rows_by_executor: Vec<(String, u64)>,
        /// Kernel seconds each executor spent, by executor name.
        #[serde(default)]
        compute_by_executor: Vec<(String, f64)>,
    },
    /// A kernel round of a fit ended with the algorithm's update.
    FitIteration {
        /// The fit.
        fit: String,
        /// The fit's kernel rounds so far (from 1).
        #[serde(default)]
        round: usize,
        /// The algorithm's iterations completed (seeding rounds leave it at 0).
        iteration: usize,
        /// The objective (loss, cost) after it, once known.
        loss: Option<f64>,
        /// Seconds the algorithm's update took on the driver.
        #[serde(default)]
        update_seconds: f64,
    },
    /// A fit ended.
    FitFinished {
        /// The fit.
        fit: String,
        /// Seconds from start to model.
        seconds: f64,
        /// Why it failed, if it did.
        error: Option<String>,
        /// Its training report (figures measured during the fit), when it succeeded.
        #[serde(default)]
        report: Option<kiln_ml::TrainingReport>,
    },
}

tokio::task_local! {
    /// What the jobs started inside [`described`] run for.
    static DESCRIPTION: Arc<str>;
}

/// Runs `work` with its jobs described as `text` (the SQL statement, the DataFrame's plan),
/// unless an outer call described them already (a `TRAIN` statement's jobs keep its text).
pub(crate) async fn described<F: std::future::Future>(text: Arc<str>, work: F) -> F::Output {
    if DESCRIPTION.try_with(|_| ()).is_ok() {
        work.await
    } else {
        DESCRIPTION.scope(text, work).await
    }
}

/// The description of the jobs started now, if [`described`] set one.
pub(crate) fn description() -> Option<String> {
    DESCRIPTION.try_with(|d| d.to_string()).ok()
}

impl Event {
    /// `executor` joining the session.
    pub(crate) fn joined(executor: &dyn Executor) -> Self {
        Event::ExecutorJoined {
            executor: executor.id().to_string(),
            slots: executor.slots(),
            address: executor.address(),
            memory_limit: executor.memory_limit(),
        }
    }
}

/// One operator of a task's plan with what it measured, as executors report it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Operator {
    /// Depth in the plan (0: the root).
    pub depth: u32,
    /// The operator as one line.
    pub name: String,
    /// Metric values by name (times in nanoseconds, sizes in bytes).
    pub metrics: Vec<(String, u64)>,
}

impl Operator {
    /// The operators of a task's status.
    pub(crate) fn of(reported: &[kiln_planner::task::OperatorMetrics]) -> Vec<Self> {
        reported
            .iter()
            .map(|o| Operator {
                depth: o.depth,
                name: o.name.clone(),
                metrics: o
                    .metrics
                    .iter()
                    .map(|m| (m.name.clone(), m.value))
                    .collect(),
            })
            .collect()
    }
}

/// The version of the event log's format: its first line is a `session_started` event
/// carrying it. Readers accept logs of this version or older.
pub const EVENT_LOG_VERSION: u32 = 1;

/// An event with the time it happened, as the event log stores it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stamped {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

impl Stamped {
    /// `event`, now.
    pub fn now(event: Event) -> Self {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Self { time, event }
    }
}

/// Something that sees every event as it happens, in order (the status store behind the UI,
/// the metrics, the event log). Called on the scheduler's path: it must only record.
pub(crate) trait Listener: Send + Sync {
    fn on_event(&self, event: &Stamped);
}

/// The session's event stream: listeners that see every event, then a broadcast channel
/// whose slow receivers miss old events rather than slow the scheduler down.
pub(crate) struct Events {
    sender: broadcast::Sender<Event>,
    listeners: Vec<Arc<dyn Listener>>,
}

impl Default for Events {
    fn default() -> Self {
        Self::with_listeners(Vec::new())
    }
}

impl Events {
    /// A stream that tells `listeners` first.
    pub(crate) fn with_listeners(listeners: Vec<Arc<dyn Listener>>) -> Self {
        Self {
            sender: broadcast::channel(4096).0,
            listeners,
        }
    }

    /// Tells every listener and receiver (none: nothing happens).
    pub(crate) fn emit(&self, event: Event) {
        if !self.listeners.is_empty() {
            let stamped = Stamped::now(event.clone());
            for listener in &self.listeners {
                listener.on_event(&stamped);
            }
        }
        let _ = self.sender.send(event);
    }

    /// Whether anyone sees the events (a listener, or a receiver of
    /// [`crate::Session::events`]): what only they need is not computed otherwise.
    pub(crate) fn watched(&self) -> bool {
        !self.listeners.is_empty() || self.sender.receiver_count() > 0
    }

    /// A receiver of the events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
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
