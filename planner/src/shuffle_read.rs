//! [`UnresolvedShuffleExec`]: the placeholder a stage cut leaves where an exchange used to be.
//!
//! The driver cannot know where the upstream stage's output lives until that stage has run, so
//! the plan fragment carries this placeholder. The executor swaps it for a real shuffle reader,
//! using the [`crate::task::StageInput`]s that travel with the task.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};

/// How a reader maps the upstream map outputs onto its own partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// Partition `p` reads byte range `p` of every map output (a hash or round-robin shuffle).
    Shuffle,
    /// Partition `i` reads the whole output of map task `i` (after a coalesce or a merge cut:
    /// the upstream partitions are kept apart, in order).
    PerMap,
    /// One partition reads the whole output of every map task, in map order (a gather: it
    /// replaces `CoalescePartitionsExec`, whose output order — and so the rounding of float
    /// sums over it — would depend on which upstream partition arrives first).
    Concat,
}

impl ReadMode {
    /// The wire value of the mode.
    pub fn as_u32(self) -> u32 {
        match self {
            ReadMode::Shuffle => 0,
            ReadMode::PerMap => 1,
            ReadMode::Concat => 2,
        }
    }

    /// The mode of a wire value.
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(ReadMode::Shuffle),
            1 => Some(ReadMode::PerMap),
            2 => Some(ReadMode::Concat),
            _ => None,
        }
    }
}

impl fmt::Display for ReadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadMode::Shuffle => f.write_str("shuffle"),
            ReadMode::PerMap => f.write_str("per-map"),
            ReadMode::Concat => f.write_str("concat"),
        }
    }
}

/// Placeholder for the output of an upstream stage; resolved on the executor.
#[derive(Debug)]
pub struct UnresolvedShuffleExec {
    stage_id: u32,
    mode: ReadMode,
    properties: Arc<PlanProperties>,
}

impl UnresolvedShuffleExec {
    /// A placeholder that keeps the properties (partitioning, ordering) of the operator it
    /// replaces, so the rest of the plan stays valid on the driver.
    pub fn with_properties(stage_id: u32, mode: ReadMode, properties: Arc<PlanProperties>) -> Self {
        Self {
            stage_id,
            mode,
            properties,
        }
    }

    /// A placeholder with `partitions` partitions of `schema` and no known ordering, as decoded
    /// on an executor (which does not re-optimize the fragment).
    pub fn new(stage_id: u32, mode: ReadMode, schema: SchemaRef, partitions: usize) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self::with_properties(stage_id, mode, Arc::new(properties))
    }

    /// The upstream stage.
    pub fn stage_id(&self) -> u32 {
        self.stage_id
    }

    /// How the upstream outputs map onto this reader's partitions.
    pub fn mode(&self) -> ReadMode {
        self.mode
    }

    /// Number of partitions this reader exposes.
    pub fn partition_count(&self) -> usize {
        self.properties.partitioning.partition_count()
    }
}

impl DisplayAs for UnresolvedShuffleExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ShuffleRead: stage={}, mode={}, partitions={}",
            self.stage_id,
            self.mode,
            self.partition_count()
        )
    }
}

impl ExecutionPlan for UnresolvedShuffleExec {
    fn name(&self) -> &str {
        "UnresolvedShuffleExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    crate::leaf_exec_methods!();

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        Err(DataFusionError::Internal(format!(
            "shuffle read of stage {} was not resolved before execution",
            self.stage_id
        )))
    }
}
