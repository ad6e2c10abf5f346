//! The job scheduler: runs a [`StageGraph`] as tasks on executor slots and collects the result.
//!
//! ```text
//!  physical plan ─cut_stages─▶ stages ─▶ ready stages' tasks ─▶ free slots ─▶ executors
//!                                   ▲                                             │
//!                                   └──── MapStatus accepted per (stage, partition)┘
//! ```
//!
//! A stage becomes ready when every stage it reads has all its map outputs accepted. A failed
//! task is retried (a new attempt writes a new object) up to the session's attempt limit; only
//! the accepted attempt's output is ever read. When the job ends, its shuffle prefix is deleted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::physical_plan::ExecutionPlan;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use kiln_executor::codec::executor_codec;
use kiln_executor::shuffle::{ReadLocation, ShuffleReaderExec, StoreRoot};
use kiln_planner::task::{
    CacheSpec, FailureKind, MapStatus, StageInput, TaskDefinition, TaskFailure, TaskOutcome,
    TaskStatus,
};
use kiln_planner::{plan_to_bytes, StageGraph};
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, warn, Instrument};

use crate::context::SessionInner;
use crate::error::{EngineError, Result};
use crate::scheduler::{Event, Retry};

/// Runs a stage graph to completion and collects its result.
pub(crate) async fn run_graph(
    session: &SessionInner,
    graph: &StageGraph,
) -> Result<Vec<RecordBatch>> {
    run_graph_as(session, graph, session.next_job_id()).await
}

/// As [`run_graph`], as the job `job_id` (from [`SessionInner::next_job_id`]), so that a
/// caller can pick the job's events out of the session's stream.
pub(crate) async fn run_graph_as(
    session: &SessionInner,
    graph: &StageGraph,
    job_id: String,
) -> Result<Vec<RecordBatch>> {
    run_job(session, graph, None, job_id, |root, maps| async move {
        read_result(session, graph, &root, maps).await
    })
    .await
}

/// Runs a stage graph whose result stage is a cache stage: each result task keeps its
/// partition as dense training data on its executor. Returns the accepted cache outputs in
/// partition order.
pub(crate) async fn run_cache(
    session: &SessionInner,
    graph: &StageGraph,
    spec: CacheSpec,
) -> Result<Vec<MapStatus>> {
    run_job(
        session,
        graph,
        Some(spec),
        session.next_job_id(),
        |_, maps| async move { Ok(maps) },
    )
    .await
}

/// Runs the job `job_id` (from [`SessionInner::next_job_id`]), hands the result stage's
/// outputs to `finish`, then deletes the job's shuffle prefix whatever happened.
pub(crate) async fn run_job<'a, T, F, Fut>(
    session: &'a SessionInner,
    graph: &'a StageGraph,
    cache: Option<CacheSpec>,
    job_id: String,
    finish: F,
) -> Result<T>
where
    F: FnOnce(StoreRoot, Vec<MapStatus>) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + 'a,
{
    let root = StoreRoot::resolve(&session.shuffle_root, &session.ctx.runtime_env())?;
    // If this future is dropped mid-job (a timeout, a `select!`), the guard still removes the
    // job's shuffle objects; running tasks are aborted by their executors' handles.
    let mut cleanup = CleanupGuard {
        root: root.clone(),
        job_id: job_id.clone(),
        armed: !session.keep_shuffle_files(),
    };
    let span = tracing::info_span!("job", job = %job_id, stages = graph.stages.len());
    let started = std::time::Instant::now();
    session.events.emit(Event::JobStarted {
        job: job_id.clone(),
        stages: graph.stages.len(),
        description: crate::scheduler::description().unwrap_or_else(|| {
            graph
                .result_stage()
                .filter(|_| session.events.watched())
                .map(|s| {
                    datafusion::physical_plan::displayable(s.plan.as_ref())
                        .one_line()
                        .to_string()
                })
                .unwrap_or_default()
        }),
    });
    let outcome = match Job::new(session, graph, job_id.clone(), cache) {
        Ok(job) => job.run().instrument(span).await,
        Err(e) => Err(e),
    };
    session.events.emit(Event::JobFinished {
        job: job_id.clone(),
        seconds: started.elapsed().as_secs_f64(),
        error: outcome.as_ref().err().map(ToString::to_string),
    });
    let result = match outcome {
        Ok(result_maps) => finish(root.clone(), result_maps).await,
        Err(e) => Err(e),
    };
    if cleanup.armed {
        cleanup.armed = false;
        if let Err(e) = delete_job(&root, &job_id).await {
            warn!(job = %job_id, error = %e, "could not delete shuffle prefix");
        }
    }
    result
}

/// Deletes a job's shuffle objects when dropped while still armed.
struct CleanupGuard {
    root: StoreRoot,
    job_id: String,
    armed: bool,
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let root = self.root.clone();
            let job_id = self.job_id.clone();
            handle.spawn(async move {
                if let Err(e) = delete_job(&root, &job_id).await {
                    warn!(job = %job_id, error = %e, "could not delete shuffle prefix");
                }
            });
        }
    }
}

/// Reads the result stage's outputs on the driver, in partition order.
pub(crate) async fn read_result(
    session: &SessionInner,
    graph: &StageGraph,
    root: &StoreRoot,
    maps: Vec<MapStatus>,
) -> Result<Vec<RecordBatch>> {
    let Some(result_stage) = graph.result_stage() else {
        return Ok(Vec::new());
    };
    let schema = result_stage.plan.schema();
    let locations = maps
        .iter()
        .map(|m| {
            m.ranges
                .first()
                .cloned()
                .map(|range| {
                    vec![ReadLocation {
                        stage_id: m.stage_id,
                        map_partition: m.map_partition,
                        object: m.object.clone(),
                        range,
                    }]
                })
                .ok_or_else(|| EngineError::Internal(format!("result {} has no range", m.object)))
        })
        .collect::<Result<Vec<_>>>()?;
    let reader = ShuffleReaderExec::new(
        root.url.clone(),
        locations.clone(),
        Arc::new(datafusion::physical_plan::PlanProperties::new(
            datafusion::physical_expr::EquivalenceProperties::new(schema),
            datafusion::physical_plan::Partitioning::UnknownPartitioning(locations.len()),
            datafusion::physical_plan::execution_plan::EmissionType::Incremental,
            datafusion::physical_plan::execution_plan::Boundedness::Bounded,
        )),
    );
    let reader: Arc<dyn ExecutionPlan> = Arc::new(reader);
    let ctx = session.ctx.task_ctx();
    let mut out = Vec::new();
    // Partition order is the result order (a sorted result has one partition).
    for p in 0..locations.len() {
        let stream = reader.execute(p, Arc::clone(&ctx))?;
        let batches: Vec<RecordBatch> = datafusion::physical_plan::common::collect(stream)
            .await
            .map_err(|e| fetch_error(&e, session).unwrap_or_else(|| e.into()))?;
        out.extend(batches.into_iter().filter(|b| b.num_rows() > 0));
    }
    Ok(out)
}

fn fetch_error(
    err: &datafusion::error::DataFusionError,
    session: &SessionInner,
) -> Option<EngineError> {
    match kiln_executor::ExecError::find_in(err) {
        Some(kiln_executor::ExecError::FetchFailed {
            stage_id,
            map_partition,
            object,
            reason,
        }) => Some(session.fetch_failed(*stage_id, *map_partition, object.clone(), reason)),
        _ => None,
    }
}

/// Deletes every object under the job's prefix (and, on a local file system, the directories
/// that held them).
async fn delete_job(root: &StoreRoot, job_id: &str) -> Result<()> {
    crate::orphans::delete_prefix(root, &root.job_prefix(job_id)).await
}

struct Job<'a> {
    session: &'a SessionInner,
    graph: &'a StageGraph,
    job_id: String,
    /// Encoded plan per stage id.
    plans: HashMap<u32, Arc<Vec<u8>>>,
    /// Accepted outputs per stage id, indexed by partition.
    outputs: HashMap<u32, Vec<Option<MapStatus>>>,
    /// Attempt ids handed out per (stage, partition): every launch gets a new one, so two
    /// runs of a task (a retry, or a rerun after its executor was lost) never write to the
    /// same object or staging directory.
    attempt_ids: HashMap<(u32, u32), u32>,
    /// Failed attempts per (stage, partition), against the session's attempt limit (a task
    /// moved off a lost executor has not failed).
    failures: HashMap<(u32, u32), u32>,
    queue: VecDeque<TaskDefinition>,
    started: Vec<u32>,
    /// The last executor loss, for the error when none is left.
    lost_reason: Option<String>,
    /// Set when the result stage caches its partitions instead of writing them.
    cache: Option<CacheSpec>,
    /// The first definition of every queued task, to run a map task again when its output
    /// cannot be fetched.
    definitions: HashMap<(u32, u32), TaskDefinition>,
    /// Tasks that could not fetch an upstream output, waiting for it to be computed again.
    waiting: Vec<TaskDefinition>,
    /// Recomputations per map output, bounded by the session's attempts.
    recomputed: HashMap<(u32, u32), u32>,
}

impl<'a> Job<'a> {
    fn new(
        session: &'a SessionInner,
        graph: &'a StageGraph,
        job_id: String,
        cache: Option<CacheSpec>,
    ) -> Result<Self> {
        let codec = executor_codec();
        let mut plans = HashMap::new();
        let mut outputs = HashMap::new();
        for stage in &graph.stages {
            let bytes = plan_to_bytes(Arc::clone(&stage.plan), codec.as_ref())?;
            plans.insert(stage.id, Arc::new(bytes));
            outputs.insert(stage.id, vec![None; stage.tasks]);
        }
        Ok(Self {
            session,
            graph,
            job_id,
            plans,
            outputs,
            attempt_ids: HashMap::new(),
            failures: HashMap::new(),
            queue: VecDeque::new(),
            started: Vec::new(),
            lost_reason: None,
            cache,
            definitions: HashMap::new(),
            waiting: Vec::new(),
            recomputed: HashMap::new(),
        })
    }

    /// A fresh attempt id for a task (its first launch took 0).
    fn next_attempt(&mut self, stage: u32, partition: u32) -> u32 {
        let used = self.attempt_ids.entry((stage, partition)).or_insert(0);
        *used += 1;
        *used
    }

    fn stage_done(&self, id: u32) -> bool {
        self.outputs
            .get(&id)
            .is_some_and(|o| o.iter().all(Option::is_some))
    }

    /// Queues the tasks of every stage whose parents are all done.
    fn start_ready_stages(&mut self) -> Result<()> {
        let ready: Vec<u32> = self
            .graph
            .stages
            .iter()
            .filter(|s| !self.started.contains(&s.id))
            .filter(|s| s.parents.iter().all(|p| self.stage_done(*p)))
            .map(|s| s.id)
            .collect();
        for id in ready {
            self.started.push(id);
            let stage = self
                .graph
                .stage(id)
                .ok_or_else(|| EngineError::Internal(format!("stage {id} vanished")))?;
            let metrics = &self.session.metrics;
            metrics.stages_planned.fetch_add(1, AtomicOrdering::Relaxed);
            metrics
                .tasks_planned
                .fetch_add(stage.tasks as u64, AtomicOrdering::Relaxed);
            let inputs = self.inputs_of(id);
            let plan = self
                .plans
                .get(&id)
                .ok_or_else(|| EngineError::Internal(format!("stage {id} has no plan")))?;
            debug!(job = %self.job_id, stage = id, tasks = stage.tasks, "stage ready");
            let watched = self.session.events.watched();
            self.session.events.emit(Event::StageSubmitted {
                job: self.job_id.clone(),
                stage: id,
                tasks: stage.tasks,
                parents: stage.parents.clone(),
                plan: if watched {
                    datafusion::physical_plan::displayable(stage.plan.as_ref())
                        .indent(true)
                        .to_string()
                } else {
                    String::new()
                },
            });
            let is_result = self.graph.result_stage().is_some_and(|r| r.id == id);
            let cache = self.cache.clone().filter(|_| is_result);
            for partition in 0..stage.tasks as u32 {
                let task = TaskDefinition {
                    job_id: self.job_id.clone(),
                    stage_id: id,
                    partition,
                    attempt: 0,
                    plan: plan.as_ref().clone(),
                    shuffle_root: self.session.shuffle_root.clone(),
                    inputs: inputs.clone(),
                    compression: self.session.shuffle_compression as i32,
                    cache: cache.clone(),
                    inject_failure: false,
                    report_operators: watched,
                };
                self.definitions.insert((id, partition), task.clone());
                self.queue.push_back(task);
            }
        }
        Ok(())
    }

    /// The current accepted outputs of every stage `stage` reads.
    fn inputs_of(&self, stage: u32) -> Vec<StageInput> {
        self.graph
            .stage(stage)
            .map(|s| {
                s.parents
                    .iter()
                    .map(|p| StageInput {
                        stage_id: *p,
                        maps: self
                            .outputs
                            .get(p)
                            .map(|o| o.iter().flatten().cloned().collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A reader could not fetch map output `map_partition` of `stage`: forget it, run its
    /// map task again (stages are deterministic, so only the missing output is recomputed),
    /// and park `reader` until the output is back. `false` when that output was already
    /// recomputed as often as a task may be attempted.
    fn recompute(&mut self, stage: u32, map_partition: u32, reader: TaskDefinition) -> bool {
        let metrics = &self.session.metrics;
        metrics.fetch_failures.fetch_add(1, AtomicOrdering::Relaxed);
        let slot = self
            .outputs
            .get_mut(&stage)
            .and_then(|o| o.get_mut(map_partition as usize));
        let Some(slot) = slot else {
            return false;
        };
        if slot.is_some() {
            let count = self.recomputed.entry((stage, map_partition)).or_insert(0);
            *count += 1;
            if *count >= self.session.max_task_attempts() {
                return false;
            }
            *slot = None;
            let Some(mut task) = self.definitions.get(&(stage, map_partition)).cloned() else {
                return false;
            };
            task.attempt = self.next_attempt(stage, map_partition);
            task.inputs = self.inputs_of(stage);
            metrics
                .stage_resubmits
                .fetch_add(1, AtomicOrdering::Relaxed);
            warn!(job = %self.job_id, stage, map_partition, "map output lost, computing it again");
            self.queue.push_front(task);
        }
        self.waiting.push(reader);
        true
    }

    /// Requeues the parked readers whose inputs are all available again.
    fn release_waiting(&mut self) {
        let waiting = std::mem::take(&mut self.waiting);
        for mut task in waiting {
            let ready = self
                .graph
                .stage(task.stage_id)
                .is_some_and(|s| s.parents.iter().all(|p| self.stage_done(*p)));
            if ready {
                task.inputs = self.inputs_of(task.stage_id);
                // A new launch, a new attempt id: the parked attempt may have written some of
                // its output (a write's staging files) before its input failed.
                task.attempt = self.next_attempt(task.stage_id, task.partition);
                self.queue.push_back(task);
            } else {
                self.waiting.push(task);
            }
        }
    }

    /// The next queued task for a free slot on executor `exec`. A cache stage's partitions go
    /// to executors in contiguous runs (partition `p` of `n` to executor `p · executors / n`)
    /// where the slots allow, so that an executor holds whole nodes of the merge tree of
    /// partials and merges them before sending (`kiln_ml::step::merge_blocks`); any other task,
    /// or a cache task no free executor prefers, goes first come first served.
    fn next_task(&mut self, exec: usize) -> Option<TaskDefinition> {
        // Only a cache stage's tasks have a preference: any other queue is first come first
        // served, without a scan per pick.
        if self.queue.front().is_none_or(|t| t.cache.is_none()) {
            return self.queue.pop_front();
        }
        let executors = self.session.pool.len().max(1);
        let preferred = |t: &TaskDefinition| {
            t.cache.is_some() && {
                let tasks = self.graph.stage(t.stage_id).map_or(1, |s| s.tasks.max(1));
                t.partition as usize * executors / tasks == exec
            }
        };
        match self.queue.iter().position(preferred) {
            Some(i) => self.queue.remove(i),
            None => self.queue.pop_front(),
        }
    }

    /// A free slot on the executor with the most free slots, if any. Slots are the session's,
    /// shared by all its jobs.
    fn try_slot(&self) -> Option<(usize, OwnedSemaphorePermit)> {
        let members = self.session.pool.members();
        let mut order: Vec<usize> = (0..members.len())
            .filter(|i| members[*i].executor.is_alive())
            .collect();
        order.sort_by_key(|i| std::cmp::Reverse(members[*i].slots.available_permits()));
        order.into_iter().find_map(|i| {
            Arc::clone(&members[i].slots)
                .try_acquire_owned()
                .ok()
                .map(|p| (i, p))
        })
    }

    /// Waits until any executor has a free slot (all are held by other jobs).
    async fn wait_slot(&self) -> Result<(usize, OwnedSemaphorePermit)> {
        loop {
            let members = self.session.pool.members();
            let alive: Vec<usize> = (0..members.len())
                .filter(|i| members[*i].executor.is_alive())
                .collect();
            if alive.is_empty() {
                return Err(self.all_lost());
            }
            let waits = alive.into_iter().map(|i| {
                let s = Arc::clone(&members[i].slots);
                Box::pin(async move { (i, s.acquire_owned().await) })
            });
            // A lost executor's slots may free up, and executors may join; look again every
            // so often.
            let picked = tokio::time::timeout(
                std::time::Duration::from_millis(250),
                futures::future::select_all(waits),
            )
            .await;
            let Ok(((i, permit), _, _)) = picked else {
                continue;
            };
            let permit =
                permit.map_err(|e| EngineError::Internal(format!("executor slots closed: {e}")))?;
            if members[i].executor.is_alive() {
                return Ok((i, permit));
            }
        }
    }

    fn all_lost(&self) -> EngineError {
        EngineError::AllExecutorsLost {
            executors: self.session.pool.len(),
            last: self
                .lost_reason
                .clone()
                .unwrap_or_else(|| "no executor answers".into()),
        }
    }

    fn launch(
        &self,
        exec_idx: usize,
        permit: OwnedSemaphorePermit,
        task: TaskDefinition,
    ) -> impl std::future::Future<
        Output = (
            usize,
            TaskDefinition,
            kiln_executor::Result<TaskStatus>,
            f64,
        ),
    > {
        let executor = self.session.pool.executor(exec_idx);
        let inject = task.attempt < self.session.inject_failures;
        let span = tracing::info_span!(
            "task",
            job = %task.job_id,
            stage = task.stage_id,
            partition = task.partition,
            attempt = task.attempt,
            executor = %executor.as_ref().map(|e| e.id().to_string()).unwrap_or_default()
        );
        async move {
            let mut sent = task.clone();
            sent.inject_failure = inject;
            let started = std::time::Instant::now();
            let result = match executor {
                Ok(executor) => executor.launch(sent).await,
                Err(e) => Err(kiln_executor::ExecError::Internal(e.to_string())),
            };
            drop(permit);
            (exec_idx, task, result, started.elapsed().as_secs_f64())
        }
        .instrument(span)
    }

    /// Tells the session's listeners that an attempt of `task` ended.
    fn attempt_ended(
        &self,
        task: &TaskDefinition,
        executor: &str,
        seconds: f64,
        outcome: std::result::Result<&MapStatus, String>,
    ) {
        let (rows, bytes, operators) = outcome.as_ref().map_or((0, 0, Vec::new()), |m| {
            (
                m.rows,
                m.bytes,
                crate::scheduler::Operator::of(&m.operators),
            )
        });
        self.session.events.emit(Event::TaskFinished {
            job: self.job_id.clone(),
            stage: task.stage_id,
            partition: task.partition,
            attempt: task.attempt,
            executor: executor.to_string(),
            seconds,
            failure: outcome.err(),
            rows,
            bytes,
            operators,
        });
    }

    /// Runs every stage; returns the result stage's accepted outputs in partition order.
    async fn run(mut self) -> Result<Vec<MapStatus>> {
        let Some(result_id) = self.graph.result_stage().map(|s| s.id) else {
            return Ok(Vec::new());
        };
        let mut failure: Option<EngineError> = self.start_ready_stages().err();
        let mut running = FuturesUnordered::new();
        loop {
            if failure.is_none() {
                while !self.queue.is_empty() {
                    let Some((exec_idx, permit)) = self.try_slot() else {
                        break;
                    };
                    if let Some(task) = self.next_task(exec_idx) {
                        running.push(self.launch(exec_idx, permit, task));
                    }
                }
                if running.is_empty() && !self.queue.is_empty() {
                    match self.wait_slot().await {
                        Ok((exec_idx, permit)) => {
                            if let Some(task) = self.next_task(exec_idx) {
                                running.push(self.launch(exec_idx, permit, task));
                            }
                        }
                        Err(e) => failure = Some(e),
                    }
                    continue;
                }
            }
            // After a failure, keep collecting until the running tasks have finished, so none
            // writes shuffle objects after the job's prefix is deleted.
            let Some((exec_idx, task, result, seconds)) = running.next().await else {
                break;
            };
            if failure.is_some() {
                continue;
            }
            let (stage, partition, attempt) = (task.stage_id, task.partition, task.attempt);
            let executor = match self.session.pool.executor(exec_idx) {
                Ok(e) => e,
                Err(e) => {
                    failure = Some(e);
                    continue;
                }
            };
            if result.is_err() && !executor.is_alive() {
                // The executor is gone, not the task: run it again elsewhere, without counting
                // an attempt (its finished outputs are in the object store and stay valid).
                self.session.note_executor_lost(exec_idx);
                self.attempt_ended(
                    &task,
                    executor.id(),
                    seconds,
                    Err(match &result {
                        Err(e) => format!("executor lost: {e}"),
                        Ok(_) => "executor lost".into(),
                    }),
                );
                if let Err(e) = &result {
                    warn!(job = %self.job_id, stage, partition, executor = %executor.id(), error = %e, "executor lost, rescheduling its task");
                    self.lost_reason = Some(format!("executor {}: {e}", executor.id()));
                }
                if self.session.pool.executors().iter().all(|e| !e.is_alive()) {
                    failure = Some(self.all_lost());
                    continue;
                }
                let mut again = task;
                again.attempt = self.next_attempt(stage, partition);
                self.queue.push_front(again);
                continue;
            }
            let status = match result {
                Ok(status) => status,
                Err(e) => TaskStatus {
                    job_id: self.job_id.clone(),
                    stage_id: stage,
                    partition,
                    attempt,
                    outcome: Some(TaskOutcome::Failure(TaskFailure {
                        kind: FailureKind::TaskFailed as i32,
                        message: format!("executor {}: {e}", executor.id()),
                        ..Default::default()
                    })),
                },
            };
            self.attempt_ended(
                &task,
                executor.id(),
                seconds,
                match &status.outcome {
                    Some(TaskOutcome::Failure(f)) => Err(f.message.clone()),
                    Some(TaskOutcome::Success(map)) => Ok(map),
                    None => Err("no outcome".into()),
                },
            );
            match status.outcome {
                Some(TaskOutcome::Success(mut map)) => {
                    // Reported to the listeners above; downstream tasks need only the output.
                    map.operators = Vec::new();
                    if Some(stage) != self.graph.result_stage().map(|s| s.id) {
                        self.session
                            .metrics
                            .bytes_shuffled
                            .fetch_add(map.bytes, AtomicOrdering::Relaxed);
                    }
                    if let Some(slot) = self
                        .outputs
                        .get_mut(&stage)
                        .and_then(|o| o.get_mut(partition as usize))
                    {
                        if slot.is_none() {
                            self.session
                                .metrics
                                .tasks_finished
                                .fetch_add(1, AtomicOrdering::Relaxed);
                        }
                        slot.get_or_insert(map);
                    }
                    if self.stage_done(stage) {
                        self.session
                            .metrics
                            .stages_finished
                            .fetch_add(1, AtomicOrdering::Relaxed);
                        debug!(job = %self.job_id, stage, "stage done");
                        self.session.events.emit(Event::StageFinished {
                            job: self.job_id.clone(),
                            stage,
                        });
                        self.release_waiting();
                        if let Err(e) = self.start_ready_stages() {
                            failure = Some(e);
                        }
                    }
                }
                Some(TaskOutcome::Failure(f)) => {
                    let made = self.failures.entry((stage, partition)).or_insert(0);
                    *made += 1;
                    let made = *made;
                    let may_retry =
                        self.session.retry_policy().after(f.failure_kind(), made) == Retry::Again;
                    match f.failure_kind() {
                        FailureKind::TaskFailed if may_retry => {
                            self.session
                                .metrics
                                .task_retries
                                .fetch_add(1, AtomicOrdering::Relaxed);
                            warn!(job = %self.job_id, stage, partition, attempt, error = %f.message, "task failed, retrying");
                            let mut retry = task;
                            retry.attempt = self.next_attempt(stage, partition);
                            self.queue.push_back(retry);
                        }
                        FailureKind::TaskFailed => {
                            failure = Some(EngineError::TaskFailed {
                                stage,
                                partition,
                                attempts: made,
                                message: f.message,
                            });
                        }
                        FailureKind::FetchFailed
                            if self.recompute(
                                f.fetch_stage_id,
                                f.fetch_map_partition,
                                task.clone(),
                            ) => {}
                        FailureKind::FetchFailed => {
                            failure = Some(self.session.fetch_failed(
                                f.fetch_stage_id,
                                f.fetch_map_partition,
                                f.fetch_object,
                                &f.message,
                            ));
                        }
                        FailureKind::UserError => {
                            failure = Some(EngineError::from_failure(f));
                        }
                    }
                }
                None => {
                    failure = Some(EngineError::Internal(format!(
                        "task {stage}/{partition} returned no outcome"
                    )));
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let outputs = self.outputs.remove(&result_id).unwrap_or_default();
        outputs
            .into_iter()
            .enumerate()
            .map(|(p, m)| {
                m.ok_or_else(|| EngineError::Internal(format!("result partition {p} never ran")))
            })
            .collect()
    }
}
