//! What a session has done, built from its events: the jobs with their stages and task
//! attempts, the executors, the fits with their iterations. The web UI renders it; the same
//! store replays an event log for `kiln history`, so a finished session looks as it did live.

use std::sync::Mutex;

use kiln_ml::TrainingReport;

use crate::scheduler::{Event, Listener, Operator, Stamped};

/// Jobs kept: older ones are forgotten first (Spark's `spark.ui.retainedJobs`).
const RETAINED_JOBS: usize = 1000;

/// One task attempt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AttemptView {
    pub(crate) partition: u32,
    pub(crate) attempt: u32,
    pub(crate) executor: String,
    /// When it started (seconds since the epoch).
    pub(crate) started: f64,
    pub(crate) seconds: f64,
    pub(crate) failure: Option<String>,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
}

/// One stage of a job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StageView {
    pub(crate) id: u32,
    pub(crate) tasks: usize,
    pub(crate) parents: Vec<u32>,
    pub(crate) plan: String,
    pub(crate) submitted: f64,
    pub(crate) finished: Option<f64>,
    pub(crate) attempts: Vec<AttemptView>,
    /// The operators with their metrics summed over the successful attempts.
    pub(crate) operators: Vec<Operator>,
}

impl StageView {
    /// Tasks with a successful attempt.
    pub(crate) fn tasks_done(&self) -> usize {
        let mut done: Vec<u32> = self
            .attempts
            .iter()
            .filter(|a| a.failure.is_none())
            .map(|a| a.partition)
            .collect();
        done.sort_unstable();
        done.dedup();
        done.len()
    }

    /// Rows and bytes written by the successful attempts (one per partition).
    pub(crate) fn output(&self) -> (u64, u64) {
        let mut seen = std::collections::HashSet::new();
        self.attempts
            .iter()
            .filter(|a| a.failure.is_none() && seen.insert(a.partition))
            .fold((0, 0), |(r, b), a| (r + a.rows, b + a.bytes))
    }

    /// The stage's plan with its tasks' metrics, once a task reported them; the plan alone
    /// before.
    pub(crate) fn plan_text(&self) -> String {
        if self.operators.is_empty() {
            self.plan.clone()
        } else {
            plan_with_metrics(&self.operators)
        }
    }

    /// A metric summed over the stage's operators (`spilled_bytes`, ...).
    pub(crate) fn metric(&self, name: &str) -> u64 {
        self.operators
            .iter()
            .flat_map(|o| o.metrics.iter())
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .sum()
    }

    /// Rows the stage's leaf operators (its scans) produced.
    pub(crate) fn leaf_rows(&self) -> u64 {
        let ops = &self.operators;
        ops.iter()
            .enumerate()
            .filter(|(i, o)| ops.get(i + 1).is_none_or(|next| next.depth <= o.depth))
            .flat_map(|(_, o)| o.metrics.iter())
            .filter(|(n, _)| n == "output_rows")
            .map(|(_, v)| v)
            .sum()
    }

    /// Seconds from submission to the last task's end (so far, while running).
    pub(crate) fn seconds(&self, now: f64) -> f64 {
        self.finished.unwrap_or(now) - self.submitted
    }
}

/// One job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobView {
    pub(crate) id: String,
    pub(crate) description: String,
    pub(crate) stages_planned: usize,
    pub(crate) started: f64,
    pub(crate) seconds: Option<f64>,
    pub(crate) error: Option<String>,
    pub(crate) stages: Vec<StageView>,
}

impl JobView {
    /// `running`, `succeeded` or `failed`.
    pub(crate) fn status(&self) -> &'static str {
        match (&self.seconds, &self.error) {
            (None, _) => "running",
            (Some(_), None) => "succeeded",
            (Some(_), Some(_)) => "failed",
        }
    }

    pub(crate) fn stage(&self, id: u32) -> Option<&StageView> {
        self.stages.iter().find(|s| s.id == id)
    }
}

/// One executor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExecutorView {
    pub(crate) id: String,
    pub(crate) slots: usize,
    pub(crate) address: String,
    pub(crate) memory_limit: Option<u64>,
    /// Seconds since its last heartbeat (live sessions, remote executors).
    pub(crate) heard: Option<f64>,
    pub(crate) joined: f64,
    pub(crate) lost: Option<f64>,
    /// Times it joined again after being lost.
    pub(crate) rejoined: u32,
    pub(crate) tasks_done: u64,
    pub(crate) tasks_failed: u64,
    pub(crate) task_seconds: f64,
    pub(crate) kernel_seconds: f64,
    pub(crate) kernel_rows: u64,
    /// Cached partitions it holds: `(dataset, partitions, bytes)`.
    pub(crate) cached: Vec<(String, u64, u64)>,
}

/// One iteration of a fit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IterationView {
    pub(crate) round: usize,
    pub(crate) iteration: usize,
    pub(crate) loss: Option<f64>,
    /// The kernel round's wall time.
    pub(crate) seconds: f64,
    /// The slowest executor's kernel time.
    pub(crate) compute: f64,
    /// Decoding and merging the partials on the driver.
    pub(crate) merge: f64,
    /// The algorithm's update on the driver.
    pub(crate) update: f64,
    pub(crate) bytes: u64,
}

impl IterationView {
    /// Encoding, sending and receiving: the round's time outside the kernel and the merge.
    pub(crate) fn network(&self) -> f64 {
        (self.seconds - self.compute - self.merge).max(0.0)
    }
}

/// One fit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FitView {
    pub(crate) id: String,
    pub(crate) algorithm: String,
    pub(crate) dataset: String,
    pub(crate) rows: u64,
    pub(crate) partitions: usize,
    pub(crate) max_iter: usize,
    pub(crate) started: f64,
    pub(crate) seconds: Option<f64>,
    pub(crate) error: Option<String>,
    pub(crate) iterations: Vec<IterationView>,
    pub(crate) report: Option<TrainingReport>,
    /// The last kernel round, until its iteration ends.
    pending: Option<IterationView>,
}

impl FitView {
    /// `running`, `succeeded` or `failed`.
    pub(crate) fn status(&self) -> &'static str {
        match (&self.seconds, &self.error) {
            (None, _) => "running",
            (Some(_), None) => "succeeded",
            (Some(_), Some(_)) => "failed",
        }
    }
}

/// Everything the UI shows of one session.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct State {
    pub(crate) session: String,
    pub(crate) mode: String,
    pub(crate) kiln: String,
    pub(crate) started: f64,
    pub(crate) ended: Option<f64>,
    /// The last event's time (a finished log's "now").
    pub(crate) last: f64,
    pub(crate) jobs: Vec<JobView>,
    pub(crate) executors: Vec<ExecutorView>,
    pub(crate) fits: Vec<FitView>,
}

impl State {
    pub(crate) fn job(&self, id: &str) -> Option<&JobView> {
        self.jobs.iter().find(|j| j.id == id)
    }

    pub(crate) fn fit(&self, id: &str) -> Option<&FitView> {
        self.fits.iter().find(|f| f.id == id)
    }

    fn job_mut(&mut self, id: &str) -> Option<&mut JobView> {
        self.jobs.iter_mut().rev().find(|j| j.id == id)
    }

    fn executor_mut(&mut self, id: &str) -> Option<&mut ExecutorView> {
        self.executors.iter_mut().find(|e| e.id == id)
    }

    fn fit_mut(&mut self, id: &str) -> Option<&mut FitView> {
        self.fits.iter_mut().rev().find(|f| f.id == id)
    }

    /// Applies one event.
    pub(crate) fn apply(&mut self, stamped: &Stamped) {
        let time = stamped.time;
        self.last = self.last.max(time);
        match &stamped.event {
            Event::SessionStarted {
                session,
                kiln,
                mode,
                ..
            } => {
                self.session.clone_from(session);
                self.kiln.clone_from(kiln);
                self.mode.clone_from(mode);
                self.started = time;
            }
            Event::SessionEnded { .. } => self.ended = Some(time),
            Event::JobStarted {
                job,
                stages,
                description,
            } => {
                if self.jobs.len() >= RETAINED_JOBS {
                    self.jobs.remove(0);
                }
                self.jobs.push(JobView {
                    id: job.clone(),
                    description: description.clone(),
                    stages_planned: *stages,
                    started: time,
                    seconds: None,
                    error: None,
                    stages: Vec::new(),
                });
            }
            Event::StageSubmitted {
                job,
                stage,
                tasks,
                parents,
                plan,
            } => {
                if let Some(j) = self.job_mut(job) {
                    j.stages.push(StageView {
                        id: *stage,
                        tasks: *tasks,
                        parents: parents.clone(),
                        plan: plan.clone(),
                        submitted: time,
                        finished: None,
                        attempts: Vec::new(),
                        operators: Vec::new(),
                    });
                }
            }
            Event::TaskFinished {
                job,
                stage,
                partition,
                attempt,
                executor,
                seconds,
                failure,
                rows,
                bytes,
                operators,
            } => {
                if let Some(s) = self
                    .job_mut(job)
                    .and_then(|j| j.stages.iter_mut().rev().find(|s| s.id == *stage))
                {
                    if failure.is_none() {
                        add_operators(&mut s.operators, operators);
                    }
                    s.attempts.push(AttemptView {
                        partition: *partition,
                        attempt: *attempt,
                        executor: executor.clone(),
                        started: time - seconds,
                        seconds: *seconds,
                        failure: failure.clone(),
                        rows: *rows,
                        bytes: *bytes,
                    });
                }
                if let Some(e) = self.executor_mut(executor) {
                    if failure.is_some() {
                        e.tasks_failed += 1;
                    } else {
                        e.tasks_done += 1;
                    }
                    e.task_seconds += seconds;
                }
            }
            Event::StageFinished { job, stage } => {
                if let Some(s) = self
                    .job_mut(job)
                    .and_then(|j| j.stages.iter_mut().rev().find(|s| s.id == *stage))
                {
                    s.finished = Some(time);
                }
            }
            Event::JobFinished {
                job,
                seconds,
                error,
            } => {
                if let Some(j) = self.job_mut(job) {
                    j.seconds = Some(*seconds);
                    j.error.clone_from(error);
                }
            }
            Event::ExecutorJoined {
                executor,
                slots,
                address,
                memory_limit,
            } => match self.executor_mut(executor) {
                Some(e) => {
                    e.rejoined += 1;
                    e.lost = None;
                    e.slots = *slots;
                    e.address.clone_from(address);
                    e.memory_limit = *memory_limit;
                }
                None => self.executors.push(ExecutorView {
                    id: executor.clone(),
                    slots: *slots,
                    address: address.clone(),
                    memory_limit: *memory_limit,
                    heard: None,
                    joined: time,
                    lost: None,
                    rejoined: 0,
                    tasks_done: 0,
                    tasks_failed: 0,
                    task_seconds: 0.0,
                    kernel_seconds: 0.0,
                    kernel_rows: 0,
                    cached: Vec::new(),
                }),
            },
            Event::ExecutorLost { executor } => {
                if let Some(e) = self.executor_mut(executor) {
                    e.lost = Some(time);
                }
            }
            Event::DatasetCached {
                dataset,
                placements,
            } => {
                for (executor, partitions, _, bytes) in placements {
                    if let Some(e) = self.executor_mut(executor) {
                        e.cached.push((dataset.clone(), *partitions, *bytes));
                    }
                }
            }
            Event::DatasetReleased { dataset } => {
                for e in &mut self.executors {
                    e.cached.retain(|(d, ..)| d != dataset);
                }
            }
            Event::FitStarted {
                fit,
                algorithm,
                dataset,
                rows,
                partitions,
                max_iter,
            } => self.fits.push(FitView {
                id: fit.clone(),
                algorithm: algorithm.clone(),
                dataset: dataset.clone(),
                rows: *rows,
                partitions: *partitions,
                max_iter: *max_iter,
                started: time,
                seconds: None,
                error: None,
                iterations: Vec::new(),
                report: None,
                pending: None,
            }),
            Event::KernelRound {
                fit,
                seconds,
                compute_seconds,
                merge_seconds,
                bytes,
                rows_by_executor,
                compute_by_executor,
                ..
            } => {
                for (executor, rows) in rows_by_executor {
                    if let Some(e) = self.executor_mut(executor) {
                        e.kernel_rows += rows;
                    }
                }
                for (executor, seconds) in compute_by_executor {
                    if let Some(e) = self.executor_mut(executor) {
                        e.kernel_seconds += seconds;
                    }
                }
                if let Some(f) = self.fit_mut(fit) {
                    f.pending = Some(IterationView {
                        round: f.iterations.len() + 1,
                        iteration: 0,
                        loss: None,
                        seconds: *seconds,
                        compute: *compute_seconds,
                        merge: *merge_seconds,
                        update: 0.0,
                        bytes: *bytes,
                    });
                }
            }
            Event::FitIteration {
                fit,
                round,
                iteration,
                loss,
                update_seconds,
            } => {
                if let Some(f) = self.fit_mut(fit) {
                    let mut it = f.pending.take().unwrap_or(IterationView {
                        round: *round,
                        iteration: *iteration,
                        loss: None,
                        seconds: 0.0,
                        compute: 0.0,
                        merge: 0.0,
                        update: 0.0,
                        bytes: 0,
                    });
                    it.iteration = *iteration;
                    it.loss = *loss;
                    it.update = *update_seconds;
                    f.iterations.push(it);
                }
            }
            Event::FitFinished {
                fit,
                seconds,
                error,
                report,
            } => {
                if let Some(f) = self.fit_mut(fit) {
                    f.seconds = Some(*seconds);
                    f.error.clone_from(error);
                    f.report.clone_from(report);
                }
            }
        }
    }
}

/// The live store: a [`Listener`] keeping a [`State`].
#[derive(Debug, Default)]
pub(crate) struct Status {
    state: Mutex<State>,
}

impl Status {
    /// A copy of the state now.
    pub(crate) fn snapshot(&self) -> State {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

impl Listener for Status {
    fn on_event(&self, event: &Stamped) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.apply(event);
    }
}

/// Adds one task's operators to a stage's sums (the same plan: metric by metric, by position).
pub(crate) fn add_operators(sum: &mut Vec<Operator>, task: &[Operator]) {
    if sum.is_empty() || sum.len() != task.len() {
        if sum.is_empty() {
            sum.extend_from_slice(task);
        }
        return;
    }
    for (total, one) in sum.iter_mut().zip(task) {
        for (name, value) in &one.metrics {
            match total.metrics.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => *v += value,
                None => total.metrics.push((name.clone(), *value)),
            }
        }
    }
}

/// A metric value for people: times (nanoseconds) as durations, sizes as bytes.
fn metric_text(name: &str, value: u64) -> String {
    if name.contains("time") || name.contains("elapsed") {
        let ns = value as f64;
        if ns >= 1e9 {
            format!("{:.2}s", ns / 1e9)
        } else if ns >= 1e6 {
            format!("{:.2}ms", ns / 1e6)
        } else {
            format!("{:.2}µs", ns / 1e3)
        }
    } else if name.contains("bytes") {
        if value >= 1 << 20 {
            format!("{:.1} MB", value as f64 / f64::from(1u32 << 20))
        } else if value >= 1 << 10 {
            format!("{:.1} KB", value as f64 / 1024.0)
        } else {
            format!("{value} B")
        }
    } else {
        value.to_string()
    }
}

/// A stage's operators with their metrics, one per line, indented by depth (as DataFusion's
/// `EXPLAIN ANALYZE` prints a plan).
pub(crate) fn plan_with_metrics(operators: &[Operator]) -> String {
    let mut out = String::new();
    for op in operators {
        let metrics: Vec<String> = op
            .metrics
            .iter()
            .map(|(n, v)| format!("{n}={}", metric_text(n, *v)))
            .collect();
        out.push_str(&"  ".repeat(op.depth as usize));
        out.push_str(&op.name);
        out.push_str(", metrics=[");
        out.push_str(&metrics.join(", "));
        out.push_str("]\n");
    }
    out
}
