//! The task runtime: decode a task, resolve its shuffle reads, run it, write its output.

use std::sync::Arc;

use arrow::error::ArrowError;
use std::panic::AssertUnwindSafe;

use arrow::array::{RecordBatch, UInt64Array};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::TaskContext;
use datafusion::parquet::errors::ParquetError;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    replace_children_if_necessary, ExecutionPlan, ExecutionPlanProperties,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use futures::FutureExt;
use kiln_ml::step::Block;
use kiln_ml::{CachedPartition, Kernel, MlError, Precision};
use kiln_planner::functions::kiln_udfs;
use kiln_planner::task::{
    CacheSpec, ErrorClass, ErrorDetail, FailureKind, KernelPartial, KernelRequest, KernelResponse,
    MapStatus, MetricValue, OperatorMetrics, StageInput, TaskDefinition, TaskFailure, TaskOutcome,
    TaskStatus,
};
use kiln_planner::{plan_from_bytes, ReadMode, UnresolvedShuffleExec};

use crate::cache::{partition_path, write_partition, PartitionCache};
use crate::codec::executor_codec;
use crate::error::{panic_message, ExecError, Result};
use crate::shuffle::{
    new_partitioner, write_task_output, MapOutputId, ReadLocation, ShuffleReaderExec, StoreRoot,
};
use crate::source::CachedScanExec;
use crate::write::write_sink_partition;

/// Runs tasks for one executor. Holds the executor's DataFusion context (its memory pool,
/// object stores and functions).
pub struct ExecutorRuntime {
    id: String,
    ctx: SessionContext,
    codec: Arc<dyn PhysicalExtensionCodec>,
    cache: Arc<PartitionCache>,
    stats: Arc<RuntimeStats>,
}

/// What an executor has run, for its own `/metrics` (`kiln executor --metrics-port`).
#[derive(Debug, Default)]
pub struct RuntimeStats {
    /// Task attempts that succeeded.
    pub tasks_succeeded: std::sync::atomic::AtomicU64,
    /// Task attempts that failed.
    pub tasks_failed: std::sync::atomic::AtomicU64,
    /// Nanoseconds spent running tasks.
    pub task_nanos: std::sync::atomic::AtomicU64,
    /// Kernel rounds run (one request of the driver's).
    pub kernel_rounds: std::sync::atomic::AtomicU64,
    /// Nanoseconds spent in kernels.
    pub kernel_nanos: std::sync::atomic::AtomicU64,
    /// The cached training partitions (their count, bytes and reloads).
    pub cache: Arc<PartitionCache>,
}

impl std::fmt::Debug for ExecutorRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorRuntime")
            .field("id", &self.id)
            .finish()
    }
}

impl ExecutorRuntime {
    /// An executor runtime with id `id`, running plans with `config` in `runtime`.
    pub fn new(id: impl Into<String>, config: SessionConfig, runtime: Arc<RuntimeEnv>) -> Self {
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        for udf in kiln_udfs() {
            ctx.register_udf(udf.as_ref().clone());
        }
        let cache = Arc::new(PartitionCache::default());
        Self {
            id: id.into(),
            ctx,
            codec: executor_codec(),
            stats: Arc::new(RuntimeStats {
                cache: Arc::clone(&cache),
                ..RuntimeStats::default()
            }),
            cache,
        }
    }

    /// What this executor has run so far (shared: it keeps counting).
    pub fn stats(&self) -> Arc<RuntimeStats> {
        Arc::clone(&self.stats)
    }

    /// This executor's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The cached training partitions this executor holds.
    pub fn cache(&self) -> &PartitionCache {
        &self.cache
    }

    /// Runs a kernel round: the kernel on every requested cached partition (reloading from the
    /// cache store what is not in memory), one partial per partition. Never panics: failures,
    /// and panics of the code it runs, come back typed in [`KernelResponse::failure`].
    pub async fn run_kernel(&self, request: &KernelRequest) -> KernelResponse {
        let result = AssertUnwindSafe(self.try_run_kernel(request))
            .catch_unwind()
            .await
            .unwrap_or_else(|payload| {
                Err(ExecError::Panicked {
                    during: format!("kernel round on dataset {}", request.dataset_id),
                    files: Vec::new(),
                    format: String::new(),
                    message: panic_message(payload.as_ref()),
                })
            });
        match result {
            Ok(response) => response,
            Err(e) => KernelResponse {
                failure: Some(failure_of(&e)),
                ..Default::default()
            },
        }
    }

    async fn try_run_kernel(&self, request: &KernelRequest) -> Result<KernelResponse> {
        let kernel = Kernel::from_bytes(&request.kernel)?;
        let root = StoreRoot::resolve(&request.cache_root, &self.ctx.runtime_env())?;
        let mut partitions = Vec::with_capacity(request.partitions.len());
        let mut reloaded = 0;
        for p in &request.partitions {
            let (part, was_reloaded) = self
                .cache
                .get_or_load(&root, &request.dataset_id, p.partition, &p.object)
                .await?;
            reloaded += u32::from(was_reloaded);
            partitions.push(part);
        }
        let rows = partitions.iter().map(|p| p.rows() as u64).sum();
        // Kernels are CPU-bound (rayon inside): keep them off the async workers.
        let total = request.partitions_total;
        let (blocks, compute_seconds, busy_seconds) = tokio::task::spawn_blocking(move || {
            let refs: Vec<&CachedPartition> = partitions.iter().map(Arc::as_ref).collect();
            let started = std::time::Instant::now();
            let partials = kiln_ml::step::run_on_partitions_timed(&kernel, &refs)?;
            let busy: f64 = partials.iter().map(|(_, _, s)| s).sum();
            let blocks: Vec<Block> = partials
                .into_iter()
                .map(|(partition, partial, _)| Block::one(partition, partial))
                .collect();
            // Merged here as far as the fixed tree allows: fewer, not larger, partials to send.
            let blocks = if total > 0 {
                kiln_ml::step::merge_blocks(total, blocks)?
            } else {
                blocks
            };
            Ok::<_, MlError>((blocks, started.elapsed().as_secs_f64(), busy))
        })
        .await
        .map_err(|e| joined("kernel", e))??;
        self.stats
            .kernel_rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.stats.kernel_nanos.fetch_add(
            (compute_seconds * 1e9) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(KernelResponse {
            partials: blocks
                .into_iter()
                .map(|b| KernelPartial {
                    partition: b.start,
                    count: b.len,
                    partial: b.partial.to_bytes(),
                })
                .collect(),
            failure: None,
            reloaded,
            compute_seconds,
            busy_seconds,
            rows,
        })
    }

    /// Runs one partition of a cache stage: collects the partition's rows, builds the dense
    /// training partition, writes it to the cache store and keeps it in memory.
    async fn run_cache_task(
        &self,
        task: &TaskDefinition,
        spec: &CacheSpec,
        plan: Arc<dyn ExecutionPlan>,
        task_ctx: Arc<TaskContext>,
    ) -> Result<MapStatus> {
        let stream = plan.execute(task.partition as usize, task_ctx)?;
        let batches = datafusion::physical_plan::common::collect(stream).await?;
        let precision = if spec.f32 {
            Precision::F32
        } else {
            Precision::F64
        };
        let (index, features, label) = (task.partition, spec.features.clone(), spec.label.clone());
        let part = tokio::task::spawn_blocking(move || {
            CachedPartition::from_batches(index, &batches, &features, label.as_deref(), precision)
        })
        .await
        .map_err(|e| joined("building the cached partition", e))??;
        let root = StoreRoot::resolve(&spec.cache_root, &self.ctx.runtime_env())?;
        let path = partition_path(&root, &spec.dataset_id, task.partition, task.attempt);
        let rows = part.rows() as u64;
        let bytes = write_partition(&root, &path, part.to_bytes()).await?;
        self.cache.insert(&spec.dataset_id, Arc::new(part));
        Ok(MapStatus {
            stage_id: task.stage_id,
            map_partition: task.partition,
            attempt: task.attempt,
            object: path.to_string(),
            ranges: Vec::new(),
            rows,
            bytes,
            executor_id: self.id.clone(),
            operators: if task.report_operators {
                operator_metrics(&plan)
            } else {
                Vec::new()
            },
        })
    }

    /// Runs one task to completion and reports how it ended. Never panics on bad input: every
    /// failure becomes a typed [`TaskFailure`], and a panic of the code the task runs (a
    /// library crashing on a corrupt file, say) is caught here and reported naming the task
    /// and the files it was reading.
    pub async fn run_task(&self, task: &TaskDefinition) -> TaskStatus {
        let started = std::time::Instant::now();
        let result = AssertUnwindSafe(self.try_run(task))
            .catch_unwind()
            .await
            .unwrap_or_else(|payload| {
                // Naming the files decodes the plan again: if that is what panicked, name none.
                let (files, format) =
                    std::panic::catch_unwind(AssertUnwindSafe(|| self.files_of(task)))
                        .unwrap_or_default();
                Err(ExecError::Panicked {
                    during: format!("stage {} task {}", task.stage_id, task.partition),
                    files,
                    format,
                    message: panic_message(payload.as_ref()),
                })
            });
        let counter = if result.is_ok() {
            &self.stats.tasks_succeeded
        } else {
            &self.stats.tasks_failed
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.stats.task_nanos.fetch_add(
            u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        let outcome = match result {
            Ok(status) => TaskOutcome::Success(status),
            Err(e) => TaskOutcome::Failure(failure_of(&e)),
        };
        TaskStatus {
            job_id: task.job_id.clone(),
            stage_id: task.stage_id,
            partition: task.partition,
            attempt: task.attempt,
            outcome: Some(outcome),
        }
    }

    /// The files `task`'s partition scans and their format (the first scan's), for naming
    /// them when the task fails without saying which it was reading.
    fn files_of(&self, task: &TaskDefinition) -> (Vec<String>, String) {
        let task_ctx = self.ctx.task_ctx();
        let Ok(plan) = plan_from_bytes(&task.plan, &task_ctx, self.codec.as_ref()) else {
            return (Vec::new(), String::new());
        };
        let mut files = Vec::new();
        let mut format = String::new();
        let partitions = plan.output_partitioning().partition_count();
        let _ = plan.apply(|node| {
            let scan = node
                .downcast_ref::<DataSourceExec>()
                .and_then(|d| d.data_source().downcast_ref::<FileScanConfig>());
            if let Some(scan) = scan {
                if format.is_empty() {
                    format = scan.file_source().file_type().to_string();
                }
                // Within a stage a scan usually has the task's partitioning: then the task
                // reads its own group. Otherwise any of the scan's files may be the one.
                let groups: Vec<_> = if scan.file_groups.len() == partitions {
                    scan.file_groups
                        .get(task.partition as usize)
                        .into_iter()
                        .collect()
                } else {
                    scan.file_groups.iter().collect()
                };
                let url = scan.object_store_url.as_str().trim_end_matches('/');
                files.extend(
                    groups
                        .into_iter()
                        .flat_map(|g| g.iter())
                        .map(|f| format!("{url}/{}", f.path())),
                );
            }
            Ok(TreeNodeRecursion::Continue)
        });
        (files, format)
    }

    async fn try_run(&self, task: &TaskDefinition) -> Result<MapStatus> {
        let injected = || {
            ExecError::Internal(format!(
                "injected failure (stage {} task {} attempt {})",
                task.stage_id, task.partition, task.attempt
            ))
        };
        let task_ctx: Arc<TaskContext> = self.ctx.task_ctx();
        let plan = plan_from_bytes(&task.plan, &task_ctx, self.codec.as_ref())?;
        // An injected failure ends a write task after it has written its files (the worst
        // moment for the commit protocol), any other task before it starts.
        if task.inject_failure && plan.downcast_ref::<DataSinkExec>().is_none() {
            return Err(injected());
        }
        let root = StoreRoot::resolve(&task.shuffle_root, &self.ctx.runtime_env())?;
        let plan = resolve_shuffle_reads(plan, &task.inputs, &root)?;
        let plan = bind_cached_scans(plan, &self.cache)?;
        let plan = cooperative_inputs(plan)?;
        if let Some(spec) = &task.cache {
            return self.run_cache_task(task, spec, plan, task_ctx).await;
        }
        let partition = task.partition as usize;
        let id = MapOutputId {
            job_id: task.job_id.clone(),
            stage_id: task.stage_id,
            map_partition: task.partition,
            attempt: task.attempt,
            executor_id: self.id.clone(),
            compression: task.shuffle_compression(),
        };
        if let Some(sink) = plan.downcast_ref::<DataSinkExec>() {
            // A write stage: the partition goes to this attempt's staging directory; the
            // driver publishes the accepted attempt (see `crate::write`).
            let ids = (
                task.job_id.as_str(),
                task.stage_id,
                task.partition,
                task.attempt,
            );
            let rows = write_sink_partition(sink, ids, Arc::clone(&task_ctx)).await?;
            if task.inject_failure {
                return Err(injected());
            }
            let schema = plan.schema();
            let count = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(UInt64Array::from(vec![rows]))],
            )?;
            let stream = Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::iter([Ok(count)]),
            ));
            let mut status = write_task_output(stream, None, 1, &root, &id).await?;
            if task.report_operators {
                status.operators = operator_metrics(&plan);
            }
            return Ok(status);
        }
        let (mut status, ran) = if let Some(repartition) = plan.downcast_ref::<RepartitionExec>() {
            let input = Arc::clone(repartition.input());
            let input_partitions = input.output_partitioning().partition_count();
            let partitioning = repartition.partitioning().clone();
            let reduce = partitioning.partition_count();
            let partitioner = new_partitioner(partitioning, partition, input_partitions)?;
            let stream = input.execute(partition, task_ctx)?;
            let status = write_task_output(stream, Some(partitioner), reduce, &root, &id).await?;
            (status, input)
        } else {
            let stream = plan.execute(partition, task_ctx)?;
            let status = write_task_output(stream, None, 1, &root, &id).await?;
            (status, plan)
        };
        if task.report_operators {
            status.operators = operator_metrics(&ran);
        }
        Ok(status)
    }
}

/// The operators of a plan that ran, in pre-order, with their metrics summed by name (the
/// `CooperativeExec` wrappers this executor adds are left out).
fn operator_metrics(plan: &Arc<dyn ExecutionPlan>) -> Vec<OperatorMetrics> {
    fn visit(node: &Arc<dyn ExecutionPlan>, depth: u32, out: &mut Vec<OperatorMetrics>) {
        if node.downcast_ref::<CooperativeExec>().is_some() {
            for child in node.children() {
                visit(child, depth, out);
            }
            return;
        }
        let mut metrics: Vec<MetricValue> = node
            .metrics()
            .map(|set| {
                set.aggregate_by_name()
                    .iter()
                    .filter(|m| !m.value().name().ends_with("_timestamp"))
                    .map(|m| MetricValue {
                        name: m.value().name().to_string(),
                        value: m.value().as_usize() as u64,
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Rows and compute time first, then by name: the same order from every task.
        let rank = |name: &str| match name {
            "output_rows" => 0,
            "elapsed_compute" => 1,
            _ => 2,
        };
        metrics.sort_by(|a, b| (rank(&a.name), &a.name).cmp(&(rank(&b.name), &b.name)));
        out.push(OperatorMetrics {
            depth,
            name: datafusion::physical_plan::displayable(node.as_ref())
                .one_line()
                .to_string()
                .trim_end()
                .to_string(),
            metrics,
        });
        for child in node.children() {
            visit(child, depth + 1, out);
        }
    }
    let mut out = Vec::new();
    visit(plan, 0, &mut out);
    out
}

/// `plan` with a [`CooperativeExec`] on every operator's input, so that a task hands its
/// thread back to the runtime every so many batches wherever in the plan it computes.
///
/// A task is cancelled by aborting it, which takes effect only when it yields. Operators that
/// consume a whole input before returning anything (an aggregate over a join, say) would
/// otherwise never yield while their input is CPU-bound, and a cancelled task would compute on
/// to the end of its partition. Each wrapper draws on Tokio's per-task budget once per batch,
/// which costs nothing measurable beside the batch's own work.
fn cooperative_inputs(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let plan = plan.transform_up(|node| {
        let children = node.children();
        if children.is_empty() || node.downcast_ref::<CooperativeExec>().is_some() {
            return Ok(Transformed::no(node));
        }
        let wrapped = children
            .into_iter()
            .map(|child| -> Arc<dyn ExecutionPlan> {
                if child.downcast_ref::<CooperativeExec>().is_some() {
                    Arc::clone(child)
                } else {
                    Arc::new(CooperativeExec::new(Arc::clone(child)))
                }
            })
            .collect();
        Ok(Transformed::yes(replace_children_if_necessary(
            node, wrapped,
        )?))
    })?;
    Ok(plan.data)
}

/// Replaces every [`UnresolvedShuffleExec`] with a [`ShuffleReaderExec`] over the accepted map
/// outputs the task was given.
fn resolve_shuffle_reads(
    plan: Arc<dyn ExecutionPlan>,
    inputs: &[StageInput],
    root: &StoreRoot,
) -> Result<Arc<dyn ExecutionPlan>> {
    let resolved = plan.transform_up(|node| {
        let Some(read) = node.downcast_ref::<UnresolvedShuffleExec>() else {
            return Ok(Transformed::no(node));
        };
        let input = inputs
            .iter()
            .find(|i| i.stage_id == read.stage_id())
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "task has no map outputs for stage {}",
                    read.stage_id()
                ))
            })?;
        let partitions = read.partition_count();
        let locations = match read.mode() {
            ReadMode::Shuffle => (0..partitions)
                .map(|p| {
                    input
                        .maps
                        .iter()
                        .map(|m| location(m, p))
                        .collect::<datafusion::error::Result<Vec<_>>>()
                })
                .collect::<datafusion::error::Result<Vec<_>>>()?,
            ReadMode::PerMap => {
                if input.maps.len() != partitions {
                    return Err(DataFusionError::Internal(format!(
                        "stage {} has {} map outputs, reader expects {partitions}",
                        read.stage_id(),
                        input.maps.len()
                    )));
                }
                input
                    .maps
                    .iter()
                    .map(|m| location(m, 0).map(|l| vec![l]))
                    .collect::<datafusion::error::Result<Vec<_>>>()?
            }
            // The maps arrive in partition order; one partition reads them all in that order.
            ReadMode::Concat => vec![input
                .maps
                .iter()
                .map(|m| location(m, 0))
                .collect::<datafusion::error::Result<Vec<_>>>()?],
        };
        let reader =
            ShuffleReaderExec::new(root.url.clone(), locations, Arc::clone(read.properties()));
        Ok(Transformed::yes(Arc::new(reader) as Arc<dyn ExecutionPlan>))
    })?;
    Ok(resolved.data)
}

/// Lets every [`CachedScanExec`] read this executor's in-memory partitions first.
fn bind_cached_scans(
    plan: Arc<dyn ExecutionPlan>,
    cache: &Arc<PartitionCache>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let bound = plan.transform_up(|node| {
        let Some(scan) = node.downcast_ref::<CachedScanExec>() else {
            return Ok(Transformed::no(node));
        };
        let bound: Arc<dyn ExecutionPlan> = Arc::new(scan.with_cache(Arc::clone(cache)));
        Ok(Transformed::yes(bound))
    })?;
    Ok(bound.data)
}

fn location(map: &MapStatus, reduce: usize) -> datafusion::error::Result<ReadLocation> {
    let range = map.ranges.get(reduce).cloned().ok_or_else(|| {
        DataFusionError::Internal(format!(
            "map output {} has {} ranges, reduce partition {reduce} requested",
            map.object,
            map.ranges.len()
        ))
    })?;
    Ok(ReadLocation {
        stage_id: map.stage_id,
        map_partition: map.map_partition,
        object: map.object.clone(),
        range,
    })
}

/// Classifies an error for the scheduler.
fn failure_of(err: &ExecError) -> TaskFailure {
    let fetch = match err {
        ExecError::FetchFailed { .. } => Some(err),
        ExecError::DataFusion(df) => ExecError::find_in(df),
        _ => None,
    };
    if let Some(ExecError::FetchFailed {
        stage_id,
        map_partition,
        object,
        ..
    }) = fetch
    {
        return TaskFailure {
            kind: FailureKind::FetchFailed as i32,
            message: fetch.map(|e| e.to_string()).unwrap_or_default(),
            fetch_stage_id: *stage_id,
            fetch_map_partition: *map_partition,
            fetch_object: object.clone(),
            error: None,
        };
    }
    let kind = kind_of(err);
    TaskFailure {
        kind: kind as i32,
        message: err.to_string(),
        error: detail_of(err),
        ..Default::default()
    }
}

/// A spawned thread's failure: its panic, or its cancellation.
fn joined(what: &str, err: tokio::task::JoinError) -> ExecError {
    if err.is_panic() {
        ExecError::Panicked {
            during: what.to_string(),
            files: Vec::new(),
            format: String::new(),
            message: panic_message(err.into_panic().as_ref()),
        }
    } else {
        ExecError::Internal(format!("{what} was cancelled"))
    }
}

/// The class and details of an error, so that the driver raises it as the type it is (see
/// [`ErrorDetail`]).
pub fn detail_of(err: &ExecError) -> Option<ErrorDetail> {
    match err {
        ExecError::Ml(ml) => ErrorDetail::of_ml(ml),
        ExecError::MalformedRecord {
            format,
            path,
            line,
            reason,
        } => Some(ErrorDetail {
            format: (*format).to_string(),
            line: *line,
            ..ErrorDetail::new(ErrorClass::MalformedRecord, path, reason)
        }),
        ExecError::Panicked {
            during,
            files,
            format,
            message,
        } => Some(ErrorDetail {
            format: format.clone(),
            files: files.clone(),
            ..ErrorDetail::new(ErrorClass::Panic, during, message)
        }),
        ExecError::ObjectStore(e) => Some(store_detail(e)),
        ExecError::Io(e) => Some(ErrorDetail::new(ErrorClass::Io, "", e.to_string())),
        ExecError::DataFusion(e) => datafusion_detail(e),
        ExecError::Arrow(ArrowError::ExternalError(inner)) => external_detail(inner.as_ref()),
        _ => None,
    }
}

fn store_detail(err: &object_store::Error) -> ErrorDetail {
    match err {
        object_store::Error::NotFound { path, .. } => {
            ErrorDetail::new(ErrorClass::NotFound, path, err.to_string())
        }
        _ => ErrorDetail::new(ErrorClass::Io, "", err.to_string()),
    }
}

fn external_detail(err: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<ErrorDetail> {
    if let Some(e) = err.downcast_ref::<ExecError>() {
        detail_of(e)
    } else if let Some(e) = err.downcast_ref::<MlError>() {
        ErrorDetail::of_ml(e)
    } else if let Some(e) = err.downcast_ref::<DataFusionError>() {
        datafusion_detail(e)
    } else {
        err.downcast_ref::<object_store::Error>().map(store_detail)
    }
}

fn datafusion_detail(err: &DataFusionError) -> Option<ErrorDetail> {
    match err {
        DataFusionError::External(inner) => external_detail(inner.as_ref()),
        DataFusionError::ArrowError(e, _) => match e.as_ref() {
            ArrowError::ExternalError(inner) => external_detail(inner.as_ref()),
            _ => None,
        },
        DataFusionError::ParquetError(e) => match e.as_ref() {
            ParquetError::External(inner) => external_detail(inner.as_ref()),
            _ => None,
        },
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            datafusion_detail(inner)
        }
        DataFusionError::Shared(inner) => datafusion_detail(inner),
        DataFusionError::Collection(errs) => errs.first().and_then(datafusion_detail),
        DataFusionError::ObjectStore(e) => Some(store_detail(e)),
        DataFusionError::IoError(e) => Some(ErrorDetail::new(ErrorClass::Io, "", e.to_string())),
        DataFusionError::Plan(m) | DataFusionError::NotImplemented(m) => {
            Some(ErrorDetail::new(ErrorClass::Plan, "", m))
        }
        DataFusionError::SchemaError(e, _) => {
            Some(ErrorDetail::new(ErrorClass::Plan, "", e.to_string()))
        }
        DataFusionError::Configuration(m) => {
            Some(ErrorDetail::new(ErrorClass::Configuration, "", m))
        }
        DataFusionError::ResourcesExhausted(m) => {
            Some(ErrorDetail::new(ErrorClass::ResourcesExhausted, "", m))
        }
        _ => None,
    }
}

/// Whether a failure is worth retrying: transient I/O, memory pressure and unknown causes are
/// retried; errors that the same input and plan would raise again fail the job at once.
fn kind_of(err: &ExecError) -> FailureKind {
    match err {
        ExecError::FetchFailed { .. } => FailureKind::FetchFailed,
        ExecError::MalformedRecord { .. }
        | ExecError::InvalidLocation { .. }
        | ExecError::Plan(_) => FailureKind::UserError,
        ExecError::ObjectStore(e) => store_kind(e),
        ExecError::Ml(MlError::Internal(_)) | ExecError::CacheLost { .. } => {
            FailureKind::TaskFailed
        }
        ExecError::Ml(_) => FailureKind::UserError,
        ExecError::Arrow(e) => arrow_kind(e),
        ExecError::DataFusion(e) => datafusion_kind(e),
        ExecError::Internal(_) | ExecError::Io(_) | ExecError::ExecutorLost { .. } => {
            FailureKind::TaskFailed
        }
        // The same input reaches the same bug again: retrying only repeats the crash.
        ExecError::Panicked { .. } => FailureKind::UserError,
    }
}

fn store_kind(err: &object_store::Error) -> FailureKind {
    match err {
        object_store::Error::NotFound { .. }
        | object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }
        | object_store::Error::InvalidPath { .. } => FailureKind::UserError,
        _ => FailureKind::TaskFailed,
    }
}

fn arrow_kind(err: &ArrowError) -> FailureKind {
    match err {
        ArrowError::IoError(..) => FailureKind::TaskFailed,
        ArrowError::ExternalError(inner) => external_kind(inner.as_ref()),
        _ => FailureKind::UserError,
    }
}

fn external_kind(err: &(dyn std::error::Error + Send + Sync + 'static)) -> FailureKind {
    if let Some(e) = err.downcast_ref::<ExecError>() {
        kind_of(e)
    } else if let Some(e) = err.downcast_ref::<DataFusionError>() {
        datafusion_kind(e)
    } else if let Some(e) = err.downcast_ref::<object_store::Error>() {
        store_kind(e)
    } else if let Some(e) = err.downcast_ref::<ArrowError>() {
        arrow_kind(e)
    } else {
        FailureKind::TaskFailed
    }
}

fn datafusion_kind(err: &DataFusionError) -> FailureKind {
    match err {
        DataFusionError::ObjectStore(e) => store_kind(e),
        DataFusionError::ArrowError(e, _) => arrow_kind(e),
        DataFusionError::ParquetError(e) => match e.as_ref() {
            ParquetError::External(inner) => external_kind(inner.as_ref()),
            _ => FailureKind::UserError,
        },
        DataFusionError::External(inner) => external_kind(inner.as_ref()),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            datafusion_kind(inner)
        }
        DataFusionError::Shared(inner) => datafusion_kind(inner),
        DataFusionError::Collection(errs) => errs
            .first()
            .map(datafusion_kind)
            .unwrap_or(FailureKind::TaskFailed),
        DataFusionError::IoError(_)
        | DataFusionError::ResourcesExhausted(_)
        | DataFusionError::ExecutionJoin(_)
        | DataFusionError::Internal(_) => FailureKind::TaskFailed,
        _ => FailureKind::UserError,
    }
}
