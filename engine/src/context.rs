//! The state a session's jobs share ([`SessionInner`]), below everything that runs a job:
//! the scheduler, the writers and the planners take it, the [`crate::Session`] handle owns it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;
use kiln_planner::predict::ModelRegistry;
use kiln_planner::task::ShuffleCompression;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use url::Url;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::error::{EngineError, Result};
use crate::metrics::SessionMetrics;
use crate::scheduler::{Events, Pool, RetryPolicy};

/// A process-unique short id.
pub(crate) fn short_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..12].to_string()
}

/// Work that a plan holding Kiln's own logical nodes (lazy training) needs before it is
/// optimized and cut into stages, given by the module that makes those nodes. It sits above
/// the [`crate::DataFrame`] that plans, which calls it through this trait.
pub(crate) trait PlanHook: Send + Sync {
    /// `plan` with its nodes replaced by what DataFusion plans (training run first).
    fn resolve<'a>(
        &'a self,
        session: &'a Arc<SessionInner>,
        plan: LogicalPlan,
    ) -> BoxFuture<'a, Result<LogicalPlan>>;

    /// What `EXPLAIN` says of the nodes' work, empty when `plan` has none.
    fn explain<'a>(
        &'a self,
        session: &'a Arc<SessionInner>,
        plan: &'a LogicalPlan,
    ) -> BoxFuture<'a, Result<String>>;
}

/// Creates object stores on demand for the URLs a session touches.
#[derive(Debug, Clone)]
pub(crate) struct StoreResolver {
    pub(crate) registry: Arc<DefaultObjectStoreRegistry>,
    /// Retries of the cloud stores it creates.
    pub(crate) retry: object_store::RetryConfig,
}

impl StoreResolver {
    /// Makes sure a store is registered for `location` (a URL or a local path).
    pub(crate) fn ensure(&self, location: &str) -> Result<()> {
        let Some((scheme, _)) = location.split_once("://") else {
            return Ok(()); // a local path: served by the default file store
        };
        let url = Url::parse(location).map_err(|e| EngineError::Read {
            format: "object store",
            path: location.to_string(),
            reason: format!("not a valid URL: {e}"),
        })?;
        let base = format!("{scheme}://{}", url.authority());
        let base_url = Url::parse(&base).map_err(|e| EngineError::Internal(e.to_string()))?;
        if self.registry.get_store(&base_url).is_ok() {
            return Ok(());
        }
        let store: Arc<dyn ObjectStore> = match scheme {
            "memory" => Arc::new(InMemory::new()),
            "file" => return Ok(()),
            _ => kiln_executor::store::store_from_env_with(&base_url, self.retry.clone()).map_err(
                |reason| EngineError::Read {
                    format: "object store",
                    path: location.to_string(),
                    reason,
                },
            )?,
        };
        self.registry.register_store(&base_url, store);
        Ok(())
    }

    /// Checks that the store under `root` (a URL of a directory) answers a listing: a missing
    /// bucket or refused credentials then fail the session's start, named, rather than its
    /// first job after the store's retries.
    pub(crate) async fn check_root(&self, what: &'static str, root: &str) -> Result<()> {
        let Some((scheme, _)) = root.split_once("://") else {
            return Ok(());
        };
        if matches!(scheme, "file" | "memory") {
            return Ok(());
        }
        let url = Url::parse(root).map_err(|e| EngineError::Internal(e.to_string()))?;
        let store = self
            .registry
            .get_store(&url)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let prefix = object_store::path::Path::from(url.path());
        let refused = |reason: String| EngineError::InvalidParameter {
            name: what,
            reason: format!("'{root}': {reason}"),
        };
        match store.list_with_delimiter(Some(&prefix)).await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(e, object_store::Error::NotFound { .. })
                    || crate::error::store_bucket_missing(&e) =>
            {
                Err(refused(format!(
                    "the bucket '{}' does not exist",
                    url.host_str().unwrap_or_default()
                )))
            }
            Err(e) => Err(refused(crate::error::store_error_text(&e))),
        }
    }
}

/// What a session's parts share: the driver's DataFusion context, the executors and their
/// slots, the stores, the model registry and the settings. [`crate::Session`] is a handle on
/// it; the modules that run jobs take it directly, so they sit below the session.
pub(crate) struct SessionInner {
    pub(crate) id: String,
    pub(crate) ctx: SessionContext,
    /// The executors and their free task slots, shared by every job of the session.
    pub(crate) pool: Pool,
    pub(crate) shuffle_root: String,
    pub(crate) shuffle_compression: ShuffleCompression,
    pub(crate) keep_shuffle_files: AtomicBool,
    pub(crate) max_task_attempts: AtomicU32,
    pub(crate) stores: StoreResolver,
    pub(crate) jobs: AtomicU64,
    /// Fits started (names them `fit-N`).
    pub(crate) fits: AtomicU64,
    /// Root URL of the cache store (always ends in `/`).
    pub(crate) cache_root: String,
    pub(crate) metrics: SessionMetrics,
    /// Models callable through `predict(...)`.
    pub(crate) models: Arc<ModelRegistry>,
    /// The driver endpoint and executor processes in cluster mode.
    pub(crate) cluster: Option<Cluster>,
    /// Attempts of every task made to fail (fault injection).
    pub(crate) inject_failures: u32,
    /// Executors (by index) already counted as lost.
    pub(crate) lost: std::sync::Mutex<std::collections::HashSet<usize>>,
    pub(crate) owned_dir: Option<PathBuf>,
    /// The model catalog's directory, if the session has one.
    pub(crate) models_dir: Option<PathBuf>,
    /// The settings the session runs with (see [`crate::config`]).
    pub(crate) settings: std::sync::Mutex<Config>,
    /// What plans with Kiln's own logical nodes need before they are optimized: installed by
    /// the module that makes those nodes when it first makes one.
    pub(crate) plan_hook: std::sync::OnceLock<Arc<dyn PlanHook>>,
    /// The session's leases on its prefixes of the shuffle and cache roots, given up when the
    /// session is dropped.
    #[expect(dead_code, reason = "held for its Drop")]
    pub(crate) leases: Vec<crate::orphans::Lease>,
    /// The roots holding those leases, where killed sessions' prefixes are looked for.
    pub(crate) orphan_roots: Vec<String>,
    pub(crate) orphan_ttl: std::time::Duration,
    /// The pass over the roots started with the session, until someone waits for it.
    pub(crate) orphan_pass:
        std::sync::Mutex<Option<tokio::task::JoinHandle<crate::orphans::OrphanReport>>>,
    /// What the scheduler did, for whoever listens ([`crate::Session::events`]).
    pub(crate) events: Events,
    /// The web UI's server, when the session serves one.
    pub(crate) ui: std::sync::OnceLock<crate::ui::UiServer>,
}

impl SessionInner {
    /// Whether jobs keep their shuffle files.
    pub(crate) fn keep_shuffle_files(&self) -> bool {
        self.keep_shuffle_files.load(Ordering::Relaxed)
    }

    /// Attempts of a task before its job fails.
    pub(crate) fn max_task_attempts(&self) -> u32 {
        self.max_task_attempts.load(Ordering::Relaxed)
    }

    /// When a failed task or kernel round runs again (see [`RetryPolicy`]).
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_task_attempts(),
        }
    }

    /// A shuffle output that could not be read; when executors started elsewhere share a
    /// shuffle root that is a directory of one machine, the error names that as the cause.
    pub(crate) fn fetch_failed(
        &self,
        stage: u32,
        map_partition: u32,
        object: String,
        message: &str,
    ) -> EngineError {
        EngineError::FetchFailed {
            stage,
            map_partition,
            object,
            message: format!("{message}{}", self.local_root_hint()),
        }
    }

    fn local_root_hint(&self) -> String {
        let elsewhere = self
            .cluster
            .as_ref()
            .is_some_and(|c| c.executors_elsewhere());
        if elsewhere && self.shuffle_root.starts_with("file://") {
            format!(
                " (the shuffle root '{}' is a directory of one machine; executors on other \
                 machines or containers each write to their own: give every process one root \
                 they all reach, e.g. kiln.shuffle.root = s3://bucket/shuffle/)",
                self.shuffle_root
            )
        } else {
            String::new()
        }
    }

    pub(crate) fn next_job_id(&self) -> String {
        let n = self.jobs.fetch_add(1, Ordering::Relaxed);
        format!("job-{n}-{}", short_id())
    }
}

impl SessionInner {
    /// Counts executor `index` as lost (once, however many jobs notice).
    pub(crate) fn note_executor_lost(&self, index: usize) {
        let new = self
            .lost
            .lock()
            .map(|mut l| l.insert(index))
            .unwrap_or(false);
        if new {
            self.metrics.executors_lost.fetch_add(1, Ordering::Relaxed);
            if let Ok(executor) = self.pool.executor(index) {
                self.events.emit(crate::Event::ExecutorLost {
                    executor: executor.id().to_string(),
                });
            }
        }
    }
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        self.events.emit(crate::Event::SessionEnded {
            session: self.id.clone(),
        });
        if let Some(dir) = &self.owned_dir {
            // Best effort: the jobs already removed their own prefixes.
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl std::fmt::Debug for SessionInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("executors", &self.pool.len())
            .field("shuffle_root", &self.shuffle_root)
            .finish()
    }
}
