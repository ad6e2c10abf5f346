//! [`DistributedJoinRule`]: joins whose build side must emit rows after *all* probe partitions
//! have run.
//!
//! A join that collects its build (left) side and must output unmatched build rows — left
//! outer, full, left semi, left anti, left mark — decides those rows in whichever probe
//! partition finishes last, through state shared by all partitions of one operator instance.
//! On a cluster every probe partition is a separate task with its own instance, so that state
//! is never complete. The rule rewrites such joins so each task's answer is final:
//!
//! - a collect-left `HashJoinExec` becomes a partitioned hash join (both sides hash-shuffled on
//!   the join keys, so every build row meets its probe rows in exactly one task);
//! - a null-aware anti join (`NOT IN`), whose answer depends on whether *any* build key is null,
//!   and a `NestedLoopJoinExec` (no keys to partition on) read the probe side in one task.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::JoinType;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::joins::{HashJoinExec, NestedLoopJoinExec, PartitionMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{
    replace_children_if_necessary, ExecutionPlan, ExecutionPlanProperties, Partitioning,
};

use crate::error::Result;

/// Rewrites joins that finish their build side across partitions (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct DistributedJoinRule;

/// Join types that emit build-side rows only once every probe partition has been seen.
fn emits_build_rows_at_end(join_type: JoinType) -> bool {
    matches!(
        join_type,
        JoinType::Left
            | JoinType::LeftAnti
            | JoinType::LeftSemi
            | JoinType::LeftMark
            | JoinType::Full
    )
}

/// The input of a plain coalesce, or the plan itself. A coalesce that carries a limit
/// (`fetch`) is kept: removing it would apply the limit per partition.
fn strip_coalesce(plan: &Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    match plan.downcast_ref::<CoalescePartitionsExec>() {
        Some(c) if c.fetch().is_none() => Arc::clone(c.input()),
        _ => Arc::clone(plan),
    }
}

impl DistributedJoinRule {
    /// Applies the rule to every join in `plan`.
    ///
    /// # Errors
    /// If DataFusion rejects a rewritten operator.
    pub fn apply(&self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let rewritten = plan.transform_up(|node| {
            if let Some(join) = node.downcast_ref::<HashJoinExec>() {
                let probe_partitions = join.right().output_partitioning().partition_count();
                if *join.partition_mode() != PartitionMode::CollectLeft
                    || !emits_build_rows_at_end(*join.join_type())
                    || probe_partitions <= 1
                {
                    return Ok(Transformed::no(node));
                }
                let left = Arc::clone(join.left());
                let right = Arc::clone(join.right());
                if join.null_aware {
                    let probe: Arc<dyn ExecutionPlan> =
                        Arc::new(CoalescePartitionsExec::new(right));
                    let rebuilt = join
                        .builder()
                        .with_new_children(vec![left, probe])?
                        .build_exec()?;
                    return Ok(Transformed::yes(rebuilt));
                }
                let left_keys = join.on().iter().map(|(l, _)| Arc::clone(l)).collect();
                let right_keys = join.on().iter().map(|(_, r)| Arc::clone(r)).collect();
                let build: Arc<dyn ExecutionPlan> = Arc::new(RepartitionExec::try_new(
                    strip_coalesce(&left),
                    Partitioning::Hash(left_keys, probe_partitions),
                )?);
                let probe: Arc<dyn ExecutionPlan> = Arc::new(RepartitionExec::try_new(
                    right,
                    Partitioning::Hash(right_keys, probe_partitions),
                )?);
                let rebuilt = join
                    .builder()
                    .with_partition_mode(PartitionMode::Partitioned)
                    .with_new_children(vec![build, probe])?
                    .build_exec()?;
                return Ok(Transformed::yes(rebuilt));
            }
            if let Some(join) = node.downcast_ref::<NestedLoopJoinExec>() {
                if !emits_build_rows_at_end(*join.join_type())
                    || join.right().output_partitioning().partition_count() <= 1
                {
                    return Ok(Transformed::no(node));
                }
                let left = Arc::clone(join.left());
                let probe: Arc<dyn ExecutionPlan> =
                    Arc::new(CoalescePartitionsExec::new(Arc::clone(join.right())));
                let rebuilt = replace_children_if_necessary(Arc::clone(&node), vec![left, probe])?;
                return Ok(Transformed::yes(rebuilt));
            }
            Ok(Transformed::no(node))
        })?;
        Ok(rewritten.data)
    }
}
