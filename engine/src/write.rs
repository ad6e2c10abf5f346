//! Writes on the distributed path: `INSERT INTO`, `COPY ... TO`, `write_parquet` /
//! `write_csv` / `write_json`, with Spark's commit protocol.
//!
//! ```text
//!  DataSinkExec(file sink) over the query ──cut_stages──▶ write stage, one task per input
//!    partition: attempt a of task p writes {dir}.kiln-staging/{job}/{stage}-{p}-{a}/
//!  job succeeded ──▶ commit: each partition's accepted attempt's files are moved to
//!                    {dir}/part-{p}-{n}-{job}.{ext} (or to the single output file)
//!  always        ──▶ the job's staging prefix is deleted (other attempts, aborted jobs)
//!
//!  DataSinkExec(memory table) ──▶ the query runs on the executors; its rows are appended to
//!                                 the table on the driver (where memory tables live) once
//!                                 the job has succeeded
//! ```
//!
//! A task retried after a failure or moved off a lost executor writes under a new attempt id;
//! only one attempt per partition is ever published, so each output file exists once. A job
//! that fails or is cancelled publishes nothing. Publishing is a rename per file (atomic on a
//! local file system, copy-and-delete on object stores): a driver that dies mid-commit can
//! leave part of the output published, as Spark's v1 committer can.

use std::any::Any;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, UInt64Array};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::{replace_children_if_necessary, ExecutionPlan};
use datafusion_datasource::memory::{MemSink, MemorySourceConfig};
use datafusion_datasource::sink::DataSinkExec;
use futures::StreamExt;
use kiln_executor::shuffle::StoreRoot;
use kiln_executor::write::{file_sink, WriteTarget, STAGING_DIR};
use kiln_planner::cut_stages;
use kiln_planner::task::MapStatus;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use tracing::warn;

use crate::context::SessionInner;
use crate::error::{EngineError, Result};
use crate::job;

/// Runs a plan whose root is a sink: writes its input where the sink says and returns the
/// number of rows written (one `count` row, as DataFusion does).
pub(crate) async fn run_write(
    session: &SessionInner,
    plan: Arc<dyn ExecutionPlan>,
) -> Result<Vec<RecordBatch>> {
    let Some(exec) = plan.downcast_ref::<DataSinkExec>() else {
        return Err(EngineError::Internal("run_write without a sink".into()));
    };
    let any: &dyn Any = exec.sink();
    if any.downcast_ref::<MemSink>().is_some() {
        return write_on_driver(session, plan).await;
    }
    match file_sink(exec.sink()) {
        Some(sink) => {
            let target = WriteTarget::of(sink.config())?;
            write_files(session, plan, target).await
        }
        // Arrow IPC files, streams: sinks Kiln cannot rebuild to write an attempt's staging
        // directory. The query still runs on the executors; the driver writes its rows.
        None => write_on_driver(session, plan).await,
    }
}

/// A write the driver does: the query runs on the executors, then its rows go through the
/// sink in the driver's process — an append to a memory table (memory tables live on the
/// driver), or a sink Kiln cannot run in tasks. Nothing is written unless the whole query
/// succeeded.
async fn write_on_driver(
    session: &SessionInner,
    plan: Arc<dyn ExecutionPlan>,
) -> Result<Vec<RecordBatch>> {
    let Some(input) = plan.children().first().map(|c| Arc::clone(c)) else {
        return Err(EngineError::Internal("a sink without input".into()));
    };
    let batches = if crate::distributed::runs_on_driver(&input) {
        crate::distributed::collect_on_driver(session, Arc::clone(&input)).await?
    } else {
        let graph = cut_stages(Arc::clone(&input))?;
        job::run_graph(session, &graph).await?
    };
    let rows = MemorySourceConfig::try_new_exec(&[batches], input.schema(), None)?;
    let local = replace_children_if_necessary(plan, vec![rows])?;
    crate::distributed::collect_on_driver(session, local).await
}

/// A write of files: one task per input partition (unless the output is a single file or
/// must keep a global order), each attempt into its own staging directory; the accepted
/// attempts are published when the job has succeeded.
async fn write_files(
    session: &SessionInner,
    plan: Arc<dyn ExecutionPlan>,
    target: WriteTarget,
) -> Result<Vec<RecordBatch>> {
    if plan
        .children()
        .first()
        .is_some_and(|input| crate::distributed::runs_on_driver(input))
    {
        return write_on_driver(session, plan).await;
    }
    // DataFusion gathers a sink's input into one partition; for a directory of files each
    // partition can write its own (a sort-preserving merge stays: the order is the point).
    let plan = match plan.children().first() {
        Some(child) if target.file.is_none() => {
            match child.downcast_ref::<CoalescePartitionsExec>() {
                // A gather with a limit (`COPY (... LIMIT n)`) stays: each task would apply it.
                Some(gather) if gather.fetch().is_none() => {
                    let input = Arc::clone(gather.input());
                    replace_children_if_necessary(Arc::clone(&plan), vec![input])?
                }
                _ => plan,
            }
        }
        _ => plan,
    };
    let graph = cut_stages(plan)?;
    let stage = graph
        .result_stage()
        .map(|s| s.id)
        .ok_or_else(|| EngineError::Internal("a write without stages".into()))?;
    let job_id = session.next_job_id();
    // A `COPY ... TO 's3://...'` may be the first the session hears of that store.
    session.stores.ensure(&target.dir)?;
    let staging = StoreRoot::resolve(&target.job_staging(&job_id), &session.ctx.runtime_env())?;
    let mut guard = StagingGuard {
        root: Some(staging.clone()),
    };
    let (graph_ref, target_ref, job_ref) = (&graph, &target, job_id.as_str());
    let result = job::run_job(
        session,
        &graph,
        None,
        job_id.clone(),
        move |root, maps| async move {
            let counts = job::read_result(session, graph_ref, &root, maps.clone()).await?;
            commit(session, target_ref, job_ref, stage, &maps).await?;
            Ok(counts)
        },
    )
    .await;
    guard.root = None;
    // Whether committed or aborted, the staging prefix goes: the files of the published
    // attempts were moved out of it, everything else in it was never accepted.
    if let Err(e) = remove_staging(&staging).await {
        warn!(job = %job_id, error = %e, "could not delete the write's staging files");
    }
    let counts = result?;
    let total: u64 = counts
        .iter()
        .filter_map(|b| b.column(0).as_any().downcast_ref::<UInt64Array>().cloned())
        .flat_map(|a| a.iter().flatten().collect::<Vec<_>>())
        .sum();
    let schema = graph
        .result_stage()
        .map(|s| s.plan.schema())
        .ok_or_else(|| EngineError::Internal("a write without stages".into()))?;
    Ok(vec![RecordBatch::try_new(
        schema,
        vec![Arc::new(UInt64Array::from(vec![total]))],
    )?])
}

/// Job commit: moves each partition's accepted attempt's files into the target.
async fn commit(
    session: &SessionInner,
    target: &WriteTarget,
    job_id: &str,
    stage: u32,
    accepted: &[MapStatus],
) -> Result<()> {
    let out = StoreRoot::resolve(&target.dir, &session.ctx.runtime_env())?;
    for m in accepted {
        let dir = target.attempt_dir(job_id, stage, m.map_partition, m.attempt);
        let attempt = StoreRoot::resolve(&dir, &session.ctx.runtime_env())?;
        let mut files: Vec<Path> = attempt
            .store
            .list(Some(&attempt.prefix))
            .map(|meta| meta.map(|m| m.location))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<std::result::Result<_, _>>()?;
        files.sort();
        for (n, from) in files.iter().enumerate() {
            let to = match &target.file {
                Some(file) => out.prefix.clone().join(file.as_str()),
                None => published_path(
                    &out.prefix,
                    &attempt.prefix,
                    from,
                    m.map_partition,
                    n,
                    job_id,
                ),
            };
            out.store.rename(from, &to).await?;
        }
    }
    Ok(())
}

/// Where a staged file is published: under the target, in the same subdirectory (hive
/// partitions), named `part-{partition}-{n}-{job}.{ext}`.
fn published_path(
    out: &Path,
    staged_root: &Path,
    file: &Path,
    partition: u32,
    n: usize,
    job_id: &str,
) -> Path {
    let parts: Vec<String> = file
        .prefix_match(staged_root)
        .map(|rest| rest.map(|p| p.as_ref().to_string()).collect())
        .unwrap_or_default();
    let (dirs, name) = match parts.split_last() {
        Some((name, dirs)) => (dirs.to_vec(), name.clone()),
        None => (Vec::new(), file.filename().unwrap_or_default().to_string()),
    };
    let ext = name.split_once('.').map(|(_, e)| e).unwrap_or("");
    let base = format!("part-{partition:05}-{n:03}-{job_id}");
    let name = if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    };
    dirs.iter()
        .fold(out.clone(), |p, d| p.join(d.as_str()))
        .join(name.as_str())
}

/// Deletes a job's staging prefix, and the staging directory itself when it is left empty on
/// a local file system.
async fn remove_staging(staging: &StoreRoot) -> Result<()> {
    crate::orphans::delete_prefix(staging, &staging.prefix).await?;
    if staging.url.as_str().starts_with("file://") {
        let job_dir = std::path::PathBuf::from(format!("/{}", staging.prefix));
        if let Some(parent) = job_dir.parent() {
            if parent.ends_with(STAGING_DIR) {
                // Fails (and is meant to) while another job still stages writes there.
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
    Ok(())
}

/// Aborts a write whose future is dropped mid-job (a cancelled statement): its staging files
/// are deleted in the background.
struct StagingGuard {
    root: Option<StoreRoot>,
}

impl Drop for StagingGuard {
    fn drop(&mut self) {
        let Some(root) = self.root.take() else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = remove_staging(&root).await {
                    warn!(error = %e, "could not delete a cancelled write's staging files");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_names_keep_subdirectories_and_extensions() {
        let out = Path::from("data/out");
        let staged = Path::from("data/out/.kiln-staging/job-1/2-3-0");
        let file = Path::from("data/out/.kiln-staging/job-1/2-3-0/year=2024/abc_0.csv.gz");
        assert_eq!(
            published_path(&out, &staged, &file, 3, 1, "job-1").as_ref(),
            "data/out/year=2024/part-00003-001-job-1.csv.gz"
        );
        let flat = Path::from("data/out/.kiln-staging/job-1/2-3-0/abc_0.parquet");
        assert_eq!(
            published_path(&out, &staged, &flat, 3, 0, "job-1").as_ref(),
            "data/out/part-00003-000-job-1.parquet"
        );
    }
}
