//! Writing files from tasks: the executor's half of the commit protocol.
//!
//! ```text
//!  stage root DataSinkExec(input) ──task p, attempt a──▶ input partition p written by the
//!      sink into   {target dir}.kiln-staging/{job}/{stage}-{p}-{a}/   (never the target)
//!  driver, when the job succeeded: for each partition, the accepted attempt's files are
//!      moved into the target (job commit); the job's staging prefix is then deleted, with
//!      every other attempt's files. A failed or cancelled job deletes it too (abort).
//! ```
//!
//! A retried or duplicated task therefore never adds rows twice: only the attempt the driver
//! accepted is published, once. The staging directory is hidden (`.`-prefixed) and nested, so
//! a listing table over the target directory does not read it.

use std::any::Any;
use std::sync::Arc;

use datafusion::datasource::file_format::csv::CsvSink;
use datafusion::datasource::file_format::json::JsonSink;
use datafusion::datasource::file_format::parquet::ParquetSink;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::datasource::physical_plan::{FileOutputMode, FileSink, FileSinkConfig};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::execute_input_stream;

/// The hidden directory, beside a write's output, where task attempts write.
pub const STAGING_DIR: &str = ".kiln-staging";

/// Where a file write publishes its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteTarget {
    /// The directory the files go to (a URL ending in `/`).
    pub dir: String,
    /// For a single-file write, the file's name in `dir`; `None` for a directory of files.
    pub file: Option<String>,
}

impl WriteTarget {
    /// The target of a file sink.
    ///
    /// # Errors
    /// A sink without an output path.
    pub fn of(config: &FileSinkConfig) -> DfResult<Self> {
        let url = config.table_paths.first().ok_or_else(|| {
            DataFusionError::Plan(format!(
                "the write to '{}' has no path",
                config.original_url
            ))
        })?;
        let text = url.as_str();
        // A write partitioned by columns is a directory of `col=value/` directories, whatever
        // its path looks like (`out.parquet` included), as DataFusion writes it.
        if config.table_partition_cols.is_empty() && config.file_output_mode.single_file_output(url)
        {
            let (dir, file) = text.rsplit_once('/').ok_or_else(|| {
                DataFusionError::Plan(format!("'{text}' is not a file path to write"))
            })?;
            Ok(Self {
                dir: format!("{dir}/"),
                file: Some(file.to_string()),
            })
        } else {
            let dir = if text.ends_with('/') {
                text.to_string()
            } else {
                format!("{text}/")
            };
            Ok(Self { dir, file: None })
        }
    }

    /// The staging prefix of one job: every attempt of its tasks writes below it.
    pub fn job_staging(&self, job_id: &str) -> String {
        format!("{}{STAGING_DIR}/{job_id}/", self.dir)
    }

    /// The directory one task attempt writes into.
    pub fn attempt_dir(&self, job_id: &str, stage: u32, partition: u32, attempt: u32) -> String {
        format!("{}{stage}-{partition}-{attempt}/", self.job_staging(job_id))
    }
}

/// The file sink behind a [`DataSink`], if Kiln can write it from tasks (Parquet, CSV, JSON).
pub fn file_sink(sink: &dyn DataSink) -> Option<&dyn FileSink> {
    let any: &dyn Any = sink;
    if let Some(s) = any.downcast_ref::<ParquetSink>() {
        Some(s)
    } else if let Some(s) = any.downcast_ref::<CsvSink>() {
        Some(s)
    } else {
        any.downcast_ref::<JsonSink>().map(|s| s as &dyn FileSink)
    }
}

/// The same sink writing into `dir` (a single file named as the target's, or a directory of
/// files) instead of its own output.
fn staged(sink: &dyn DataSink, target: &WriteTarget, dir: &str) -> DfResult<Arc<dyn DataSink>> {
    let any: &dyn Any = sink;
    let config = file_sink(sink)
        .map(|s| s.config().clone())
        .ok_or_else(|| unsupported(sink))?;
    let (path, mode) = match &target.file {
        Some(file) => (format!("{dir}{file}"), FileOutputMode::SingleFile),
        None => (dir.to_string(), FileOutputMode::Directory),
    };
    let config = FileSinkConfig {
        original_url: path.clone(),
        table_paths: vec![ListingTableUrl::parse(&path)?],
        file_output_mode: mode,
        ..config
    };
    if let Some(s) = any.downcast_ref::<ParquetSink>() {
        Ok(Arc::new(ParquetSink::new(
            config,
            s.parquet_options().clone(),
        )))
    } else if let Some(s) = any.downcast_ref::<CsvSink>() {
        Ok(Arc::new(CsvSink::new(config, s.writer_options().clone())))
    } else if let Some(s) = any.downcast_ref::<JsonSink>() {
        Ok(Arc::new(JsonSink::new(config, s.writer_options().clone())))
    } else {
        Err(unsupported(sink))
    }
}

/// The error for a sink tasks cannot write.
pub fn unsupported(sink: &dyn DataSink) -> DataFusionError {
    DataFusionError::NotImplemented(format!(
        "Kiln writes Parquet, CSV and JSON files and memory tables; this write goes to a sink it \
         cannot run on executors ({sink:?})"
    ))
}

/// Runs partition `partition` of a write stage (`sink` over its input) as attempt `attempt`
/// of job `job_id`: writes the partition's rows into the attempt's staging directory and
/// returns how many it wrote.
///
/// # Errors
/// A sink Kiln cannot write from tasks, or any error of the input or the writer.
pub async fn write_sink_partition(
    exec: &DataSinkExec,
    ids: (&str, u32, u32, u32),
    context: Arc<TaskContext>,
) -> DfResult<u64> {
    let (job_id, stage, partition, attempt) = ids;
    let config = file_sink(exec.sink())
        .map(|s| s.config().clone())
        .ok_or_else(|| unsupported(exec.sink()))?;
    let target = WriteTarget::of(&config)?;
    let dir = target.attempt_dir(job_id, stage, partition, attempt);
    let sink = staged(exec.sink(), &target, &dir)?;
    let data = execute_input_stream(
        Arc::clone(exec.input()),
        Arc::clone(sink.schema()),
        partition as usize,
        Arc::clone(&context),
    )?;
    sink.write_all(data, &context).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn attempts_write_beside_the_target_never_into_it() {
        let dir = WriteTarget {
            dir: "file:///data/out/".into(),
            file: None,
        };
        assert_eq!(
            dir.attempt_dir("job-1", 2, 3, 4),
            "file:///data/out/.kiln-staging/job-1/2-3-4/"
        );
        assert!(dir
            .attempt_dir("job-1", 2, 3, 4)
            .starts_with(&dir.job_staging("job-1")));
        // Each attempt of each partition has its own directory.
        assert_ne!(dir.attempt_dir("j", 1, 0, 0), dir.attempt_dir("j", 1, 0, 1));
        assert_ne!(dir.attempt_dir("j", 1, 0, 0), dir.attempt_dir("j", 1, 1, 0));
    }
}
