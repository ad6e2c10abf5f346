//! The executor's error type.

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;

/// Errors raised while running a task.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A shuffle object an upstream task wrote is missing or unreadable.
    #[error("shuffle fetch failed: object '{object}' of stage {stage_id} map partition {map_partition}: {reason}")]
    FetchFailed {
        /// Upstream stage.
        stage_id: u32,
        /// Upstream map partition.
        map_partition: u32,
        /// Object path in the shuffle store.
        object: String,
        /// What went wrong.
        reason: String,
    },
    /// A malformed record in an input file (fail-fast mode).
    #[error("malformed {format} record in '{path}' at line {line}: {reason}")]
    MalformedRecord {
        /// The file format.
        format: &'static str,
        /// The file as the user named it.
        path: String,
        /// 1-based line of the record.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The shuffle root or an object path could not be understood.
    #[error("invalid object store location '{url}': {reason}")]
    InvalidLocation {
        /// The URL or path.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Local I/O failed (shuffle spill files).
    #[error("local I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The object store failed.
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
    /// Arrow failed (IPC encoding or decoding).
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    /// DataFusion failed while running the plan.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// The plan or task could not be decoded or planned.
    #[error(transparent)]
    Plan(#[from] kiln_planner::PlanError),
    /// A cached training partition is neither in memory nor readable from the cache store.
    #[error(
        "cached partition {partition} of dataset {dataset} is lost (object '{object}'): {reason}"
    )]
    CacheLost {
        /// The cached dataset.
        dataset: String,
        /// The partition.
        partition: u32,
        /// The object that should hold it.
        object: String,
        /// What went wrong.
        reason: String,
    },
    /// A training kernel or the training data failed (bad column, invalid label, ...).
    #[error(transparent)]
    Ml(#[from] kiln_ml::MlError),
    /// An executor in another process stopped answering or closed its connection.
    #[error("executor {executor} lost: {reason}")]
    ExecutorLost {
        /// The executor's id.
        executor: String,
        /// What the driver saw.
        reason: String,
    },
    /// Code that a task ran panicked: a bug in Kiln or in a library it uses, reached by this
    /// task's input. The panic is caught at the task boundary, so the executor lives on.
    #[error("{during} panicked{}: {message}", files_text(.files))]
    Panicked {
        /// What was running (`stage 2 task 0`, `kernel round`).
        during: String,
        /// The files the task was reading, when its plan scans files.
        files: Vec<String>,
        /// Their format (`parquet`, `csv`, ...), when known.
        format: String,
        /// The panic's message.
        message: String,
    },
    /// A bug in Kiln.
    #[error("internal executor error: {0}")]
    Internal(String),
}

/// ` while reading 'f'` / ` while reading one of 'f', 'g'`, or nothing: how errors name the
/// files a panicking task was reading.
pub fn files_text(files: &[String]) -> String {
    match files {
        [] => String::new(),
        [one] => format!(" while reading '{one}'"),
        many => format!(" while reading one of '{}'", many.join("', '")),
    }
}

/// The message of a caught panic's payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Result alias for the executor.
pub type Result<T, E = ExecError> = std::result::Result<T, E>;

impl ExecError {
    /// Finds a Kiln executor error inside a DataFusion error chain (DataFusion wraps errors
    /// raised by Kiln operators as `External`, sometimes behind `Shared` or `Context`).
    pub fn find_in(err: &DataFusionError) -> Option<&ExecError> {
        match err {
            DataFusionError::External(e) => e.downcast_ref::<ExecError>(),
            DataFusionError::Shared(inner) => Self::find_in(inner),
            DataFusionError::Context(_, inner) => Self::find_in(inner),
            DataFusionError::Diagnostic(_, inner) => Self::find_in(inner),
            DataFusionError::Collection(errs) => errs.iter().find_map(Self::find_in),
            DataFusionError::ArrowError(e, _) => match e.as_ref() {
                ArrowError::ExternalError(inner) => {
                    if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                        Self::find_in(df)
                    } else {
                        inner.downcast_ref::<ExecError>()
                    }
                }
                _ => None,
            },
            _ => None,
        }
    }
}
