//! Messages exchanged between the driver and executors.
//!
//! A task is one partition of one stage. The driver sends a [`TaskDefinition`]; the executor
//! answers with a [`TaskStatus`]. Both are protobuf messages (via `prost`), so the in-process
//! executors of the embedded mode exchange exactly the bytes that remote executors will.
//!
//! ```text
//!  driver ── TaskDefinition { plan bytes, inputs: MapStatus per upstream map task } ──▶ executor
//!  driver ◀── TaskStatus { MapStatus (object + byte range per reduce partition) | TaskFailure }
//! ```

use kiln_ml::MlError;
use prost::Message;

use crate::error::{PlanError, Result};

/// One task: run `partition` of the stage whose plan fragment is `plan`, write the output to the
/// shuffle store, report a [`MapStatus`].
#[derive(Clone, PartialEq, Message)]
pub struct TaskDefinition {
    /// The job this task belongs to (names the shuffle prefix).
    #[prost(string, tag = "1")]
    pub job_id: String,
    /// The stage within the job.
    #[prost(uint32, tag = "2")]
    pub stage_id: u32,
    /// The partition of the stage's plan this task computes.
    #[prost(uint32, tag = "3")]
    pub partition: u32,
    /// Attempt number, starting at 0; part of the output object name so retries never collide.
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
    /// The stage's plan fragment, encoded with `datafusion-proto` and Kiln's extension codec.
    #[prost(bytes = "vec", tag = "5")]
    pub plan: Vec<u8>,
    /// Root URL of the shuffle store (`file:///...`, `memory://...`, `s3://bucket/prefix`).
    #[prost(string, tag = "6")]
    pub shuffle_root: String,
    /// The accepted outputs of every upstream stage this fragment reads.
    #[prost(message, repeated, tag = "7")]
    pub inputs: Vec<StageInput>,
    /// How the task compresses its shuffle output.
    #[prost(enumeration = "ShuffleCompression", tag = "8")]
    pub compression: i32,
    /// Set on the tasks of a cache stage: instead of writing a shuffle object, the task keeps
    /// its partition as dense training data in executor memory and in the cache store.
    #[prost(message, optional, tag = "9")]
    pub cache: Option<CacheSpec>,
    /// Fault injection for tests: the executor fails this attempt at once with a retryable
    /// `TaskFailed`, exercising the whole retry path.
    #[prost(bool, tag = "10")]
    pub inject_failure: bool,
    /// Whether the executor reports the operators' metrics with the task's status
    /// ([`MapStatus::operators`]): set while someone watches the session (its UI, its event
    /// log, `EXPLAIN ANALYZE`).
    #[prost(bool, tag = "11")]
    pub report_operators: bool,
}

/// How a cache task materializes its partition (see [`TaskDefinition::cache`]).
#[derive(Clone, PartialEq, Message)]
pub struct CacheSpec {
    /// The cached dataset (names its prefix in the cache store).
    #[prost(string, tag = "1")]
    pub dataset_id: String,
    /// Root URL of the cache store; the partition is written under `{root}/{dataset_id}/`.
    #[prost(string, tag = "2")]
    pub cache_root: String,
    /// Feature columns, in matrix column order.
    #[prost(string, repeated, tag = "3")]
    pub features: Vec<String>,
    /// The label column, if any.
    #[prost(string, optional, tag = "4")]
    pub label: Option<String>,
    /// Store features as `f32` instead of `f64`.
    #[prost(bool, tag = "5")]
    pub f32: bool,
}

/// One round of a training algorithm on one executor: run `kernel` on each listed cached
/// partition of a dataset and return one partial per partition.
#[derive(Clone, PartialEq, Message)]
pub struct KernelRequest {
    /// The cached dataset.
    #[prost(string, tag = "1")]
    pub dataset_id: String,
    /// Root URL of the cache store, to reload a partition missing from memory.
    #[prost(string, tag = "2")]
    pub cache_root: String,
    /// The kernel, encoded by `kiln-ml`.
    #[prost(bytes = "vec", tag = "3")]
    pub kernel: Vec<u8>,
    /// The partitions to run on, with the object holding each in the cache store.
    #[prost(message, repeated, tag = "4")]
    pub partitions: Vec<CachedPartitionRef>,
    /// The dataset's partition count: the executor merges its partials along the merge tree
    /// over `0..partitions_total` (`kiln_ml::step::merge_blocks`). `0`: one partial per
    /// partition, unmerged.
    #[prost(uint32, tag = "5")]
    pub partitions_total: u32,
}

/// Where a cached partition's bytes live in the cache store.
#[derive(Clone, PartialEq, Message)]
pub struct CachedPartitionRef {
    /// The partition index.
    #[prost(uint32, tag = "1")]
    pub partition: u32,
    /// Object path inside the cache store.
    #[prost(string, tag = "2")]
    pub object: String,
}

/// The answer to a [`KernelRequest`]: a partial per partition, or why the round failed.
#[derive(Clone, PartialEq, Message)]
pub struct KernelResponse {
    /// The requested partitions' partials, merged as far as the merge tree allows.
    #[prost(message, repeated, tag = "1")]
    pub partials: Vec<KernelPartial>,
    /// Set when the kernel could not run.
    #[prost(message, optional, tag = "2")]
    pub failure: Option<TaskFailure>,
    /// Partitions that were not in memory and were reloaded from the cache store.
    #[prost(uint32, tag = "3")]
    pub reloaded: u32,
    /// Seconds the kernel ran on this executor, from the first partition's start to the last
    /// one's end (loading the partitions and encoding the partials not included).
    #[prost(double, tag = "4")]
    pub compute_seconds: f64,
    /// Thread-seconds the kernel ran, summed over the partitions (several run at once).
    #[prost(double, tag = "5")]
    pub busy_seconds: f64,
    /// Rows the kernel ran over.
    #[prost(uint64, tag = "6")]
    pub rows: u64,
}

/// The merged partial of partitions `partition .. partition + count` of a kernel round.
#[derive(Clone, PartialEq, Message)]
pub struct KernelPartial {
    /// The partition index.
    #[prost(uint32, tag = "1")]
    pub partition: u32,
    /// The partial, encoded by `kiln-ml`.
    #[prost(bytes = "vec", tag = "2")]
    pub partial: Vec<u8>,
    /// How many partitions it covers (`0` reads as `1`).
    #[prost(uint32, tag = "3")]
    pub count: u32,
}

/// Compression of shuffle objects (Arrow IPC buffer compression).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ShuffleCompression {
    /// Uncompressed.
    None = 0,
    /// LZ4 frames: fast, for object stores across a network.
    Lz4 = 1,
    /// Zstandard: smaller, slower.
    Zstd = 2,
}

impl TaskDefinition {
    /// The task's shuffle compression (uncompressed for unknown values).
    pub fn shuffle_compression(&self) -> ShuffleCompression {
        ShuffleCompression::try_from(self.compression).unwrap_or_default()
    }
}

/// The accepted map outputs of one upstream stage, in map-partition order.
#[derive(Clone, PartialEq, Message)]
pub struct StageInput {
    /// The upstream stage.
    #[prost(uint32, tag = "1")]
    pub stage_id: u32,
    /// One accepted [`MapStatus`] per map partition, index = map partition.
    #[prost(message, repeated, tag = "2")]
    pub maps: Vec<MapStatus>,
}

/// Where one map task attempt wrote its output: one object, one byte range per reduce partition.
#[derive(Clone, PartialEq, Message)]
pub struct MapStatus {
    /// The stage that produced it.
    #[prost(uint32, tag = "1")]
    pub stage_id: u32,
    /// The map partition.
    #[prost(uint32, tag = "2")]
    pub map_partition: u32,
    /// The attempt that wrote it.
    #[prost(uint32, tag = "3")]
    pub attempt: u32,
    /// Object path inside the shuffle store.
    #[prost(string, tag = "4")]
    pub object: String,
    /// Byte range per reduce partition, index = reduce partition.
    #[prost(message, repeated, tag = "5")]
    pub ranges: Vec<ShuffleRange>,
    /// Rows written in total.
    #[prost(uint64, tag = "6")]
    pub rows: u64,
    /// Bytes written in total (the object's size).
    #[prost(uint64, tag = "7")]
    pub bytes: u64,
    /// The executor that ran the task.
    #[prost(string, tag = "8")]
    pub executor_id: String,
    /// The task's operators with their metrics, in pre-order. Reported to the driver with the
    /// task's status; the driver takes them out before the status goes to downstream tasks.
    #[prost(message, repeated, tag = "9")]
    pub operators: Vec<OperatorMetrics>,
}

/// One operator of a task's plan and what it measured (DataFusion's metrics, summed over the
/// operator's instances by name).
#[derive(Clone, PartialEq, Message)]
pub struct OperatorMetrics {
    /// Depth in the plan (0: the root).
    #[prost(uint32, tag = "1")]
    pub depth: u32,
    /// The operator, as one line (`AggregateExec: mode=Partial, gby=[...]`).
    #[prost(string, tag = "2")]
    pub name: String,
    /// Metric values by name (`output_rows`, `elapsed_compute` in nanoseconds, ...).
    #[prost(message, repeated, tag = "3")]
    pub metrics: Vec<MetricValue>,
}

/// One named metric value.
#[derive(Clone, PartialEq, Message)]
pub struct MetricValue {
    /// The metric's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its value (times in nanoseconds, sizes in bytes).
    #[prost(uint64, tag = "2")]
    pub value: u64,
}

/// One reduce partition's slice of a map output object: a self-contained Arrow IPC stream.
#[derive(Clone, PartialEq, Message)]
pub struct ShuffleRange {
    /// Offset of the first byte in the object.
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    /// Length in bytes (0 for an empty partition).
    #[prost(uint64, tag = "2")]
    pub len: u64,
    /// Rows in this range.
    #[prost(uint64, tag = "3")]
    pub rows: u64,
    /// CRC-32 of the range's bytes, verified by the reader.
    #[prost(uint32, tag = "4")]
    pub crc32: u32,
}

/// What a task ended with.
#[derive(Clone, PartialEq, Message)]
pub struct TaskStatus {
    /// Job of the task.
    #[prost(string, tag = "1")]
    pub job_id: String,
    /// Stage of the task.
    #[prost(uint32, tag = "2")]
    pub stage_id: u32,
    /// Partition of the task.
    #[prost(uint32, tag = "3")]
    pub partition: u32,
    /// Attempt of the task.
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
    /// Success (the output written) or a typed failure.
    #[prost(oneof = "TaskOutcome", tags = "5, 6")]
    pub outcome: Option<TaskOutcome>,
}

/// The outcome of a task.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum TaskOutcome {
    /// The task wrote its output.
    #[prost(message, tag = "5")]
    Success(MapStatus),
    /// The task failed.
    #[prost(message, tag = "6")]
    Failure(TaskFailure),
}

/// Why a task failed. The kind decides what the scheduler does next.
#[derive(Clone, PartialEq, Message)]
pub struct TaskFailure {
    /// The kind of failure.
    #[prost(enumeration = "FailureKind", tag = "1")]
    pub kind: i32,
    /// Human-readable cause, for the user.
    #[prost(string, tag = "2")]
    pub message: String,
    /// For [`FailureKind::FetchFailed`]: the upstream stage whose output could not be read.
    #[prost(uint32, tag = "3")]
    pub fetch_stage_id: u32,
    /// For [`FailureKind::FetchFailed`]: the upstream map partition.
    #[prost(uint32, tag = "4")]
    pub fetch_map_partition: u32,
    /// For [`FailureKind::FetchFailed`]: the object that was missing or corrupt.
    #[prost(string, tag = "5")]
    pub fetch_object: String,
    /// The class of the error and its details, so that the driver raises the error type it
    /// would have raised had the error happened there (an ML parameter error stays a parameter
    /// error whichever process found it).
    #[prost(message, optional, tag = "6")]
    pub error: Option<ErrorDetail>,
}

/// An error as it crosses the wire: its class plus the fields that class carries. `message`
/// in [`TaskFailure`] keeps the full text; this keeps the type.
#[derive(Clone, PartialEq, Message)]
pub struct ErrorDetail {
    /// What kind of error it is.
    #[prost(enumeration = "ErrorClass", tag = "1")]
    pub class: i32,
    /// What the error names: the parameter, column, file or object (per class).
    #[prost(string, tag = "2")]
    pub subject: String,
    /// Why, in the words of the original error.
    #[prost(string, tag = "3")]
    pub reason: String,
    /// The file format, for [`ErrorClass::MalformedRecord`] and [`ErrorClass::Panic`] while
    /// reading a file.
    #[prost(string, tag = "4")]
    pub format: String,
    /// A 1-based line, for [`ErrorClass::MalformedRecord`].
    #[prost(uint64, tag = "5")]
    pub line: u64,
    /// The files the task was reading, for [`ErrorClass::Panic`].
    #[prost(string, repeated, tag = "6")]
    pub files: Vec<String>,
}

/// The classes of error that keep their type across the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ErrorClass {
    /// Anything else: the driver reports the message as an execution error.
    Other = 0,
    /// [`MlError::InvalidParameter`]: `subject` is the parameter.
    MlInvalidParameter = 1,
    /// [`MlError::InvalidColumn`]: `subject` is the column.
    MlInvalidColumn = 2,
    /// [`MlError::InvalidData`].
    MlInvalidData = 3,
    /// [`MlError::InvalidInput`].
    MlInvalidInput = 4,
    /// [`MlError::ModelFile`]: `subject` is the file.
    MlModelFile = 5,
    /// A malformed record in an input file: `subject` is the file, with `format` and `line`.
    MalformedRecord = 6,
    /// The task panicked (a bug in Kiln or a library): `files` are what it was reading.
    Panic = 7,
    /// DataFusion refused the plan (a planning or schema error).
    Plan = 8,
    /// A memory limit was reached.
    ResourcesExhausted = 9,
    /// An object was not found in a store: `subject` is its path.
    NotFound = 10,
    /// Reading or writing a file or object failed.
    Io = 11,
    /// A setting or option has a bad value.
    Configuration = 12,
}

impl ErrorDetail {
    /// A detail of `class` about `subject`.
    pub fn new(class: ErrorClass, subject: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            class: class as i32,
            subject: subject.into(),
            reason: reason.into(),
            ..Default::default()
        }
    }

    /// The class, [`ErrorClass::Other`] for values this build does not know.
    pub fn error_class(&self) -> ErrorClass {
        ErrorClass::try_from(self.class).unwrap_or(ErrorClass::Other)
    }

    /// The detail of an ML error, `None` for classes that do not cross as themselves
    /// (Arrow, codec and internal errors).
    pub fn of_ml(err: &MlError) -> Option<Self> {
        Some(match err {
            MlError::InvalidParameter { name, reason } => {
                Self::new(ErrorClass::MlInvalidParameter, name.as_ref(), reason)
            }
            MlError::InvalidColumn { column, reason } => {
                Self::new(ErrorClass::MlInvalidColumn, column, reason)
            }
            MlError::InvalidData(reason) => Self::new(ErrorClass::MlInvalidData, "", reason),
            MlError::InvalidInput(reason) => Self::new(ErrorClass::MlInvalidInput, "", reason),
            MlError::ModelFile { path, reason } => Self::new(ErrorClass::MlModelFile, path, reason),
            _ => return None,
        })
    }

    /// The ML error this detail was made from, if it was one.
    pub fn to_ml(&self) -> Option<MlError> {
        let reason = self.reason.clone();
        Some(match self.error_class() {
            ErrorClass::MlInvalidParameter => MlError::InvalidParameter {
                name: std::borrow::Cow::Owned(self.subject.clone()),
                reason,
            },
            ErrorClass::MlInvalidColumn => MlError::InvalidColumn {
                column: self.subject.clone(),
                reason,
            },
            ErrorClass::MlInvalidData => MlError::InvalidData(reason),
            ErrorClass::MlInvalidInput => MlError::InvalidInput(reason),
            ErrorClass::MlModelFile => MlError::ModelFile {
                path: self.subject.clone(),
                reason,
            },
            _ => return None,
        })
    }
}

/// The kinds of task failure the scheduler distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum FailureKind {
    /// The task's own computation failed (bad data, a bug, out of memory): may be retried.
    TaskFailed = 0,
    /// An upstream shuffle object was missing, truncated or corrupt.
    FetchFailed = 1,
    /// The plan or query itself is wrong (e.g. malformed input in fail-fast mode): retrying
    /// cannot help, the job fails at once.
    UserError = 2,
}

/// A message that crosses between driver and executor as protobuf bytes.
pub trait WireMessage: Message + Default + Sized {
    /// What the message is, for decode errors.
    const WHAT: &'static str;

    /// Encodes the message for the wire.
    fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Decodes a message from the wire.
    ///
    /// # Errors
    /// [`PlanError::Decode`] if the bytes are not this message.
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::decode(bytes).map_err(|source| PlanError::Decode {
            what: Self::WHAT,
            source,
        })
    }
}

impl WireMessage for TaskDefinition {
    const WHAT: &'static str = "task definition";
}

impl WireMessage for TaskStatus {
    const WHAT: &'static str = "task status";
}

impl WireMessage for KernelRequest {
    const WHAT: &'static str = "kernel request";
}

impl WireMessage for KernelResponse {
    const WHAT: &'static str = "kernel response";
}

impl TaskFailure {
    /// The failure kind, defaulting to [`FailureKind::TaskFailed`] for unknown values.
    pub fn failure_kind(&self) -> FailureKind {
        FailureKind::try_from(self.kind).unwrap_or(FailureKind::TaskFailed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn ml_errors_cross_the_wire_as_themselves() {
        let errors = [
            MlError::param("k", "must be >= 1, got 0"),
            MlError::InvalidColumn {
                column: "x".into(),
                reason: "null at row 3".into(),
            },
            MlError::InvalidData("no rows".into()),
            MlError::InvalidInput("2 features, model has 3".into()),
            MlError::ModelFile {
                path: "m/metadata.json".into(),
                reason: "truncated".into(),
            },
        ];
        for err in errors {
            let failure = TaskFailure {
                kind: FailureKind::UserError as i32,
                message: err.to_string(),
                error: ErrorDetail::of_ml(&err),
                ..Default::default()
            };
            let status = TaskStatus {
                outcome: Some(TaskOutcome::Failure(failure)),
                ..Default::default()
            };
            let back = TaskStatus::from_bytes(&status.to_bytes()).unwrap();
            let Some(TaskOutcome::Failure(f)) = back.outcome else {
                panic!("no failure")
            };
            let again = f.error.and_then(|d| d.to_ml()).unwrap();
            assert_eq!(again.to_string(), err.to_string());
            assert_eq!(std::mem::discriminant(&again), std::mem::discriminant(&err));
        }
        assert!(ErrorDetail::of_ml(&MlError::Internal("bug".into())).is_none());
    }
}
