//! Cutting a single-node physical plan into stages at its exchanges.
//!
//! - `RepartitionExec` (hash or round-robin) ends a map stage: the stage's tasks run its input
//!   and split the output; the consumer reads it through a shuffle read. An order-preserving
//!   repartition is read back through a per-partition sort.
//! - `CoalescePartitionsExec` and `SortPreservingMergeExec` over several partitions end a stage
//!   whose task outputs are kept whole. A coalesce becomes a single-partition read of every
//!   output in map order (so what follows — a final aggregate's float sums, a collected build
//!   side — sees the same row order on every run); a merge runs in the consuming stage over a
//!   per-map read. This is also how joins that collect their build side work: the build side is
//!   computed once, by its own stage, and every probe task reads all of it (a broadcast through
//!   the shuffle store).

use std::sync::Arc;

use datafusion::datasource::sink::DataSinkExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{
    replace_children_if_necessary, ExecutionPlan, ExecutionPlanProperties, Partitioning,
};

use super::graph::{Stage, StageGraph, StageOutput};
use crate::error::{PlanError, Result};
use crate::rules::DistributedJoinRule;
use crate::shuffle_read::{ReadMode, UnresolvedShuffleExec};

/// Cuts `plan` into a [`StageGraph`]; the last stage produces the plan's output.
///
/// # Errors
/// [`PlanError::Unsupported`] for an exchange Kiln cannot distribute (range repartitioning).
pub fn cut_stages(plan: Arc<dyn ExecutionPlan>) -> Result<StageGraph> {
    let plan = DistributedJoinRule.apply(plan)?;
    let mut cutter = Cutter { stages: Vec::new() };
    let root = cutter.visit(plan)?;
    // A write runs one task per partition of its input, each writing its own files (the
    // sink itself reports one partition: the count).
    let tasks = match root.downcast_ref::<DataSinkExec>() {
        Some(sink) => sink.input().output_partitioning().partition_count(),
        None => root.output_partitioning().partition_count(),
    };
    cutter.add_stage(root, StageOutput::Whole, tasks);
    Ok(StageGraph {
        stages: cutter.stages,
    })
}

struct Cutter {
    stages: Vec<Stage>,
}

impl Cutter {
    fn add_stage(
        &mut self,
        plan: Arc<dyn ExecutionPlan>,
        output: StageOutput,
        tasks: usize,
    ) -> u32 {
        let id = self.stages.len() as u32 + 1;
        let mut parents = Vec::new();
        collect_reads(&plan, &mut parents);
        parents.sort_unstable();
        parents.dedup();
        self.stages.push(Stage {
            id,
            plan,
            output,
            tasks,
            parents,
        });
        id
    }

    fn visit(&mut self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let children = plan
            .children()
            .into_iter()
            .map(|c| self.visit(Arc::clone(c)))
            .collect::<Result<Vec<_>>>()?;
        let plan = replace_children_if_necessary(plan, children)?;

        if let Some(repartition) = plan.downcast_ref::<RepartitionExec>() {
            let output = match repartition.partitioning() {
                Partitioning::Hash(_, n) => StageOutput::Hash { partitions: *n },
                Partitioning::RoundRobinBatch(n) => StageOutput::RoundRobin { partitions: *n },
                other => {
                    return Err(PlanError::Unsupported(format!(
                        "RepartitionExec with partitioning {other}"
                    )))
                }
            };
            let tasks = repartition.input().output_partitioning().partition_count();
            let ordering = repartition
                .preserve_order()
                .then(|| plan.properties().output_ordering().cloned())
                .flatten();
            let properties = Arc::clone(plan.properties());
            let id = self.add_stage(plan, output, tasks);
            let read: Arc<dyn ExecutionPlan> = Arc::new(UnresolvedShuffleExec::with_properties(
                id,
                ReadMode::Shuffle,
                properties,
            ));
            // An order-preserving exchange promises sorted partitions. Each map output range is
            // sorted, but a reduce partition concatenates several: sort it again.
            return Ok(match ordering {
                Some(ordering) => {
                    Arc::new(SortExec::new(ordering, read).with_preserve_partitioning(true))
                }
                None => read,
            });
        }

        let is_gather = plan.downcast_ref::<CoalescePartitionsExec>().is_some()
            || plan.downcast_ref::<SortPreservingMergeExec>().is_some();
        if is_gather {
            let Some(child) = plan.children().first().map(|c| Arc::clone(c)) else {
                return Err(PlanError::Internal("gather without input".to_string()));
            };
            let tasks = child.output_partitioning().partition_count();
            if tasks > 1 && plan.downcast_ref::<CoalescePartitionsExec>().is_some() {
                let properties = Arc::clone(plan.properties());
                let fetch = plan.fetch();
                let id = self.add_stage(child, StageOutput::Whole, tasks);
                let read: Arc<dyn ExecutionPlan> = Arc::new(
                    UnresolvedShuffleExec::with_properties(id, ReadMode::Concat, properties),
                );
                // A gather with a limit (`LIMIT` pushed into it) keeps its limit.
                return Ok(match fetch {
                    Some(n) => Arc::new(GlobalLimitExec::new(read, 0, Some(n))),
                    None => read,
                });
            }
            if tasks > 1 {
                let properties = Arc::clone(child.properties());
                let id = self.add_stage(child, StageOutput::Whole, tasks);
                let read: Arc<dyn ExecutionPlan> = Arc::new(
                    UnresolvedShuffleExec::with_properties(id, ReadMode::PerMap, properties),
                );
                return Ok(replace_children_if_necessary(plan, vec![read])?);
            }
        }
        Ok(plan)
    }
}

/// The stages a fragment reads, by walking down to its shuffle reads.
fn collect_reads(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<u32>) {
    if let Some(read) = plan.downcast_ref::<UnresolvedShuffleExec>() {
        out.push(read.stage_id());
        return;
    }
    for child in plan.children() {
        collect_reads(child, out);
    }
}
