//! The stage graph: what the scheduler runs.

use std::fmt;
use std::sync::Arc;

use datafusion::physical_plan::{
    displayable, ExecutionPlan, ExecutionPlanProperties, Partitioning,
};

/// How a stage's tasks split their output among the consumers.
#[derive(Clone, Debug)]
pub enum StageOutput {
    /// Hash-partition the rows into `partitions` reduce partitions (on the given expressions,
    /// kept in the stage's root `RepartitionExec`).
    Hash {
        /// Number of reduce partitions.
        partitions: usize,
    },
    /// Deal whole batches round-robin over `partitions` reduce partitions.
    RoundRobin {
        /// Number of reduce partitions.
        partitions: usize,
    },
    /// Each task's output stays whole (one range per map output): read per map task by a
    /// coalesce, a merge, or the driver collecting a result.
    Whole,
}

impl StageOutput {
    /// Number of byte ranges each task writes.
    pub fn reduce_partitions(&self) -> usize {
        match self {
            StageOutput::Hash { partitions } | StageOutput::RoundRobin { partitions } => {
                *partitions
            }
            StageOutput::Whole => 1,
        }
    }
}

/// One stage: a plan fragment run as one task per partition.
#[derive(Clone, Debug)]
pub struct Stage {
    /// Stage id, unique within the job; ids grow from the leaves up.
    pub id: u32,
    /// The fragment. For a hash or round-robin stage its root is the `RepartitionExec` whose
    /// input each task runs and whose partitioning splits the output.
    pub plan: Arc<dyn ExecutionPlan>,
    /// How the output is split.
    pub output: StageOutput,
    /// Number of tasks (partitions of the fragment's input to the exchange).
    pub tasks: usize,
    /// Stages whose output this one reads.
    pub parents: Vec<u32>,
}

impl Stage {
    /// Whether this stage's root is the exchange itself (a hash or round-robin map stage).
    pub fn is_shuffle_map(&self) -> bool {
        !matches!(self.output, StageOutput::Whole)
    }
}

/// All stages of a job, leaves first; the last stage is the result stage.
#[derive(Clone, Debug)]
pub struct StageGraph {
    /// Stages ordered so that every stage comes after its parents.
    pub stages: Vec<Stage>,
}

impl StageGraph {
    /// The result stage (always the last one).
    pub fn result_stage(&self) -> Option<&Stage> {
        self.stages.last()
    }

    /// A stage by id.
    pub fn stage(&self, id: u32) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }
}

impl fmt::Display for StageGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.stages.last().map(|s| s.id);
        for stage in &self.stages {
            let kind = if Some(stage.id) == last {
                "result".to_string()
            } else {
                match &stage.output {
                    StageOutput::Hash { partitions } => {
                        let keys = match stage.plan.output_partitioning() {
                            Partitioning::Hash(exprs, _) => exprs
                                .iter()
                                .map(|e| e.to_string())
                                .collect::<Vec<_>>()
                                .join(", "),
                            _ => String::new(),
                        };
                        format!("shuffle: hash({keys}) into {partitions} partitions")
                    }
                    StageOutput::RoundRobin { partitions } => {
                        format!("shuffle: round-robin into {partitions} partitions")
                    }
                    StageOutput::Whole => "shuffle: whole outputs, read per task".to_string(),
                }
            };
            let reads = if stage.parents.is_empty() {
                String::new()
            } else {
                format!(
                    ", reads stage {}",
                    stage
                        .parents
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            writeln!(
                f,
                "Stage {} [{} tasks, {kind}{reads}]",
                stage.id, stage.tasks
            )?;
            let body = if stage.is_shuffle_map() {
                stage.plan.children().first().map(|c| Arc::clone(c))
            } else {
                Some(Arc::clone(&stage.plan))
            };
            if let Some(body) = body {
                for line in displayable(body.as_ref()).indent(false).to_string().lines() {
                    writeln!(f, "  {line}")?;
                }
            }
        }
        Ok(())
    }
}
