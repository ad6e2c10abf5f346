//! The executor interface the driver schedules onto, and its in-process implementation.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::runtime::SpawnedTask;
use kiln_planner::task::{
    FailureKind, KernelRequest, KernelResponse, TaskDefinition, TaskFailure, TaskOutcome,
    TaskStatus, WireMessage,
};

use crate::error::{ExecError, Result};
use crate::runtime::ExecutorRuntime;

/// An executor as the driver sees it: somewhere to send tasks.
///
/// The in-process executors of the embedded mode and remote executors implement the same
/// trait and exchange the same encoded messages.
#[async_trait]
pub trait Executor: Send + Sync + fmt::Debug {
    /// Executor id, unique within the session.
    fn id(&self) -> &str;

    /// How many tasks it runs at once.
    fn slots(&self) -> usize;

    /// Where it runs, for people: a host and address, or `in-process`.
    fn address(&self) -> String {
        "in-process".to_string()
    }

    /// Its memory limit for running tasks, in bytes, if it has one.
    fn memory_limit(&self) -> Option<u64> {
        None
    }

    /// How long since it was last heard from (its heartbeats); `None` in-process.
    fn last_heard(&self) -> Option<std::time::Duration> {
        None
    }

    /// Whether the executor can still be reached (an in-process one always can).
    fn is_alive(&self) -> bool {
        true
    }

    /// Runs a task and returns its status.
    ///
    /// # Errors
    /// Only when the executor itself cannot be reached (lost); a failing task is an `Ok`
    /// status carrying a [`TaskFailure`].
    async fn launch(&self, task: TaskDefinition) -> Result<TaskStatus>;

    /// Runs one kernel round on cached partitions this executor holds (or reloads).
    ///
    /// # Errors
    /// Only when the executor cannot be reached; a failing kernel is an `Ok` response carrying
    /// a [`TaskFailure`].
    async fn run_kernel(&self, request: KernelRequest) -> Result<KernelResponse>;

    /// Frees the in-memory partitions of a cached dataset.
    ///
    /// # Errors
    /// Only when the executor cannot be reached.
    async fn release_dataset(&self, dataset_id: &str) -> Result<()>;
}

/// An executor running inside the driver's process, on the same tokio runtime.
///
/// Tasks and statuses still cross as encoded bytes, so the embedded mode exercises the same
/// codecs as a cluster.
#[derive(Debug, Clone)]
pub struct InProcessExecutor {
    runtime: Arc<ExecutorRuntime>,
    slots: usize,
    memory_limit: Option<u64>,
}

impl InProcessExecutor {
    /// An in-process executor over `runtime` with `slots` task slots.
    pub fn new(runtime: Arc<ExecutorRuntime>, slots: usize) -> Self {
        Self {
            runtime,
            slots: slots.max(1),
            memory_limit: None,
        }
    }

    /// This executor, reporting `limit` bytes as its memory limit (its runtime enforces it).
    pub fn with_memory_limit(mut self, limit: Option<u64>) -> Self {
        self.memory_limit = limit;
        self
    }
}

#[async_trait]
impl Executor for InProcessExecutor {
    fn id(&self) -> &str {
        self.runtime.id()
    }

    fn slots(&self) -> usize {
        self.slots
    }

    fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    async fn launch(&self, task: TaskDefinition) -> Result<TaskStatus> {
        let wire = task.to_bytes();
        let runtime = Arc::clone(&self.runtime);
        // Aborted when dropped: a cancelled job leaves no task running (and writing shuffle
        // objects) behind.
        let handle = SpawnedTask::spawn(async move {
            let task = TaskDefinition::from_bytes(&wire)?;
            Ok::<_, ExecError>(runtime.run_task(&task).await.to_bytes())
        });
        match handle.await {
            Ok(Ok(status)) => Ok(TaskStatus::from_bytes(&status)?),
            // The task bytes did not decode: the same bytes will not decode on a retry either.
            Ok(Err(e)) => Ok(failed(&task, FailureKind::UserError, e.to_string())),
            Err(join) => Ok(failed(
                &task,
                FailureKind::TaskFailed,
                format!("task aborted: {join}"),
            )),
        }
    }

    async fn run_kernel(&self, request: KernelRequest) -> Result<KernelResponse> {
        let wire = request.to_bytes();
        let runtime = Arc::clone(&self.runtime);
        let handle = SpawnedTask::spawn(async move {
            let request = KernelRequest::from_bytes(&wire)?;
            Ok::<_, ExecError>(runtime.run_kernel(&request).await.to_bytes())
        });
        let failure = |kind: FailureKind, message: String| KernelResponse {
            failure: Some(TaskFailure {
                kind: kind as i32,
                message,
                ..Default::default()
            }),
            ..Default::default()
        };
        match handle.await {
            Ok(Ok(response)) => Ok(KernelResponse::from_bytes(&response)?),
            Ok(Err(e)) => Ok(failure(FailureKind::UserError, e.to_string())),
            Err(join) => Ok(failure(
                FailureKind::TaskFailed,
                format!("kernel aborted: {join}"),
            )),
        }
    }

    async fn release_dataset(&self, dataset_id: &str) -> Result<()> {
        self.runtime.cache().release(dataset_id);
        Ok(())
    }
}

fn failed(task: &TaskDefinition, kind: FailureKind, message: String) -> TaskStatus {
    TaskStatus {
        job_id: task.job_id.clone(),
        stage_id: task.stage_id,
        partition: task.partition,
        attempt: task.attempt,
        outcome: Some(TaskOutcome::Failure(TaskFailure {
            kind: kind as i32,
            message,
            ..Default::default()
        })),
    }
}
