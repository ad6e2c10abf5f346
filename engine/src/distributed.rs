//! What single-node DataFusion plans differently when its plan is cut into stages on separate
//! executors: the settings every distributed plan is made with, scalar subqueries computed
//! first, and the few plans that run on the driver.
//!
//! ```text
//!  logical plan ─▶ uncorrelated scalar subqueries run as their own jobs, replaced by their
//!  values ─optimize─▶ semi joins with a small filtering side become IN filters (that side
//!  run first) ─▶ physical plan (made with `distributed_options`)
//!               ─▶ runs_on_driver? ── yes: DataFusion runs it in the driver's process
//!                                  └─ no:  cut into stages, run on executors
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::Array;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::ScalarValue;
use datafusion::common::{JoinType, NullEquality};
use datafusion::config::ConfigOptions;
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, Subquery};
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use crate::context::SessionInner;
use crate::error::{EngineError, Result};

/// The DataFusion settings a plan cut into stages needs, whatever the session's settings say:
/// these options make operators share state across what become stage boundaries, or use
/// operators Kiln cannot ship.
///
/// | setting | why off |
/// |---|---|
/// | `optimizer.enable_physical_uncorrelated_scalar_subquery` | results shared between operators; Kiln computes such subqueries first (below) |
/// | `optimizer.enable_*dynamic_filter_pushdown` | mutable state shared by a join or top-k and a scan in another stage |
/// | `optimizer.prefer_existing_sort` | a shuffle read does not merge sorted inputs |
/// | `optimizer.enable_window_topn`, `optimizer.enable_piecewise_merge_join` | experimental operators with no wire form |
/// | `execution.enable_file_stream_work_stealing` | a scan partition must read only its own files: siblings run elsewhere |
///
/// A session may `SET` them (the setting is kept and shown); plans are made without them.
pub(crate) fn distributed_options(opts: &mut ConfigOptions) {
    opts.optimizer.enable_physical_uncorrelated_scalar_subquery = false;
    opts.optimizer.enable_dynamic_filter_pushdown = false;
    opts.optimizer.enable_join_dynamic_filter_pushdown = false;
    opts.optimizer.enable_topk_dynamic_filter_pushdown = false;
    opts.optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    opts.optimizer.prefer_existing_sort = false;
    opts.optimizer.enable_window_topn = false;
    opts.optimizer.enable_piecewise_merge_join = false;
    opts.execution.enable_file_stream_work_stealing = false;
}

/// The driver's planning state with [`distributed_options`] applied.
pub(crate) fn planning_state(ctx: &SessionContext) -> SessionState {
    let mut state = ctx.state();
    distributed_options(state.config_mut().options_mut());
    state
}

/// Whether `plan` runs in the driver's process rather than on executors:
///
/// - a recursive query (`WITH RECURSIVE`): each iteration reads what the last one wrote
///   through a work table two operators share, state no stage cut can split (and
///   `datafusion-proto` has no form for it); running whole also lets a `LIMIT` stop an
///   unbounded recursion, as it does in DataFusion;
/// - `DELETE` and `UPDATE` of a memory table: the table lives on the driver.
pub(crate) fn runs_on_driver(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut local = false;
    // Visiting cannot fail: the closure never returns an error.
    let _ = plan.apply(|node| {
        // `DmlResultExec` is private to DataFusion's memory table: known by name only.
        if node.downcast_ref::<RecursiveQueryExec>().is_some() || node.name() == "DmlResultExec" {
            local = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    local
}

/// Runs `plan` whole in the driver's DataFusion (what [`runs_on_driver`] picks, or a sink fed
/// collected rows), a panic in it caught as everywhere else.
pub(crate) async fn collect_on_driver(
    session: &SessionInner,
    plan: Arc<dyn ExecutionPlan>,
) -> Result<Vec<arrow::record_batch::RecordBatch>> {
    crate::panic::guard(|| "running on the driver".to_string(), Vec::new, async {
        Ok(datafusion::physical_plan::collect(plan, session.ctx.task_ctx()).await?)
    })
    .await
}

/// How planning runs a query of its own (a scalar subquery, the filtering side of a semi
/// join) to the end, as any query runs: given by the [`crate::DataFrame`] being planned, which
/// sits above this module.
pub(crate) trait RunQuery: Sync {
    /// The state to build the query with.
    fn state(&self) -> SessionState;
    /// Runs `query` as a job and returns its rows.
    fn collect(
        &self,
        query: datafusion::dataframe::DataFrame,
    ) -> BoxFuture<'_, Result<Vec<arrow::record_batch::RecordBatch>>>;
}

/// `plan` (before optimization) with every uncorrelated scalar subquery replaced by its value,
/// each computed first as a job of its own (Spark's order), with DataFusion's semantics: no
/// row is `NULL`, more than one row an error. Single-node DataFusion evaluates them with an
/// operator whose results cross what would be a stage boundary; its alternative, rewriting
/// them into joins, cannot take every position (a `CASE` condition, an `ORDER BY` key) and
/// answers a subquery of several rows with several rows instead of the error.
///
/// # Errors
/// A subquery that fails, or returns more than one row or column.
pub(crate) fn scalar_subqueries(
    session: &dyn RunQuery,
    plan: LogicalPlan,
) -> BoxFuture<'_, Result<LogicalPlan>> {
    Box::pin(async move {
        let mut found: Vec<Subquery> = Vec::new();
        plan.apply_with_subqueries(|node| {
            node.apply_expressions(|expr| {
                expr.apply(|e| {
                    if let Expr::ScalarSubquery(sq) = e {
                        if sq.outer_ref_columns.is_empty() && !found.contains(sq) {
                            found.push(sq.clone());
                        }
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })
        })?;
        if found.is_empty() {
            return Ok(plan);
        }
        let mut values: HashMap<Subquery, ScalarValue> = HashMap::new();
        for sq in found {
            let value = subquery_value(session, &sq).await?;
            values.insert(sq, value);
        }
        let replaced = plan.transform_up_with_subqueries(|node| {
            // An expression keeps the name it had with its subquery (`sum(x + (SELECT ...))`):
            // the operators above refer to its output column by that name.
            let names = NamePreserver::new(&node);
            let node = node.map_expressions(|expr| {
                let saved = names.save(&expr);
                let replaced = expr.transform_up(|e| match &e {
                    Expr::ScalarSubquery(sq) => match values.get(sq) {
                        Some(v) => Ok(Transformed::yes(Expr::Literal(v.clone(), None))),
                        None => Ok(Transformed::no(e)),
                    },
                    _ => Ok(Transformed::no(e)),
                })?;
                Ok(replaced.update_data(|e| saved.restore(e)))
            })?;
            if node.transformed {
                node.map_data(LogicalPlan::recompute_schema)
            } else {
                Ok(node)
            }
        })?;
        Ok(replaced.data)
    })
}

/// Most distinct keys a semi join's filtering side may have to become an `IN` filter.
pub(crate) const SEMI_JOIN_FILTER_MAX_KEYS: usize = 10_000;

/// `plan` (optimized) with each semi join on one key whose filtering side has at most
/// [`SEMI_JOIN_FILTER_MAX_KEYS`] distinct keys replaced by `key IN (those keys)` over the
/// other side; the filtering side runs first, as a job of its own.
///
/// This is what single-node DataFusion gets from its dynamic filters (state a join shares with
/// the scans below it, which Kiln turns off because they sit in other stages): in `WHERE
/// o_orderkey IN (SELECT l_orderkey ... HAVING sum(l_quantity) > 300)` (TPC-H Q18) the 57 keys
/// reach the scans, which then skip almost all rows: planning optimizes the rewritten plan
/// again, which pushes the filter through the joins to every table with an equal key. A
/// filtering side with more keys keeps its join and so runs twice (the first run stops
/// bringing keys to the driver at the limit, but computes what precedes the limit in full).
/// Like the scalar subqueries, this runs jobs while a plan is made, `EXPLAIN` included.
///
/// # Errors
/// A filtering side that fails.
pub(crate) fn semi_join_filters(
    session: &dyn RunQuery,
    plan: LogicalPlan,
) -> BoxFuture<'_, Result<LogicalPlan>> {
    Box::pin(async move {
        let mut candidates: Vec<Arc<LogicalPlan>> = Vec::new();
        plan.apply(|node| {
            if let Some((_, _, filtering, _)) = semi_join_parts(node) {
                if !candidates.iter().any(|c| c == filtering) {
                    candidates.push(Arc::clone(filtering));
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if candidates.is_empty() {
            return Ok(plan);
        }
        let mut lists: Vec<(Arc<LogicalPlan>, Vec<Expr>)> = Vec::new();
        for filtering in candidates {
            if let Some(keys) = distinct_keys(session, &filtering).await? {
                lists.push((filtering, keys));
            }
        }
        if lists.is_empty() {
            return Ok(plan);
        }
        let rewritten = plan.transform_up(|node| {
            let Some((kept, kept_key, filtering, filtering_key)) = semi_join_parts(&node) else {
                return Ok(Transformed::no(node));
            };
            let Some((_, keys)) = lists.iter().find(|(f, _)| f == filtering) else {
                return Ok(Transformed::no(node));
            };
            // The filtering side projects its key: the list holds that column's values.
            if !matches!(filtering_key, Expr::Column(_)) {
                return Ok(Transformed::no(node));
            }
            let filter = kept_key.clone().in_list(keys.clone(), false);
            let filtered = LogicalPlanBuilder::from(Arc::clone(kept).as_ref().clone())
                .filter(filter)?
                .build()?;
            Ok(Transformed::yes(filtered))
        })?;
        Ok(rewritten.data)
    })
}

/// A semi join on one equal key (nulls equal to nothing) without another condition: (the side
/// it keeps, that side's key, the filtering side, its key).
fn semi_join_parts(
    node: &LogicalPlan,
) -> Option<(&Arc<LogicalPlan>, &Expr, &Arc<LogicalPlan>, &Expr)> {
    let LogicalPlan::Join(join) = node else {
        return None;
    };
    // `INTERSECT` is a semi join on which nulls equal nulls: an `IN` list cannot say that.
    if join.filter.is_some()
        || join.on.len() != 1
        || join.null_aware
        || join.null_equality != NullEquality::NullEqualsNothing
    {
        return None;
    }
    let (l, r) = &join.on[0];
    match join.join_type {
        JoinType::LeftSemi => Some((&join.left, l, &join.right, r)),
        JoinType::RightSemi => Some((&join.right, r, &join.left, l)),
        _ => None,
    }
}

/// The distinct values of the filtering side's key (its only column after the optimizer's
/// projection; else the first column of the key expression cannot be told apart, and `None`),
/// as literals; `None` when there are more than [`SEMI_JOIN_FILTER_MAX_KEYS`].
async fn distinct_keys(
    session: &dyn RunQuery,
    filtering: &LogicalPlan,
) -> Result<Option<Vec<Expr>>> {
    if filtering.schema().fields().len() != 1 {
        return Ok(None);
    }
    let state = session.state();
    let query = datafusion::dataframe::DataFrame::new(state, filtering.clone())
        .distinct()?
        .limit(0, Some(SEMI_JOIN_FILTER_MAX_KEYS + 1))?;
    let batches = session.collect(query).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows > SEMI_JOIN_FILTER_MAX_KEYS {
        return Ok(None);
    }
    let mut keys = Vec::with_capacity(rows);
    for b in &batches {
        let column = b.column(0);
        for i in 0..b.num_rows() {
            // A null key matches nothing in an equi-join: leave it out of the list.
            if column.is_valid(i) {
                keys.push(Expr::Literal(
                    ScalarValue::try_from_array(column.as_ref(), i)?,
                    None,
                ));
            }
        }
    }
    Ok(Some(keys))
}

/// The one value of an uncorrelated scalar subquery: `NULL` for no row, an error for more.
async fn subquery_value(session: &dyn RunQuery, sq: &Subquery) -> Result<ScalarValue> {
    let state = session.state();
    let query = datafusion::dataframe::DataFrame::new(state, sq.subquery.as_ref().clone());
    let schema = query.schema().as_arrow().clone();
    let batches = session.collect(query).await?;
    let field = match schema.fields().first() {
        Some(f) if schema.fields().len() == 1 => f.clone(),
        _ => {
            return Err(EngineError::DataFusion(
                datafusion::error::DataFusionError::Plan(format!(
                    "Scalar subquery should only return one column, got {}",
                    schema.fields().len()
                )),
            ))
        }
    };
    let mut rows = batches.iter().filter(|b| b.num_rows() > 0);
    match (rows.next(), rows.next()) {
        (None, _) => Ok(ScalarValue::try_from(field.data_type())?),
        (Some(b), None) if b.num_rows() == 1 => {
            Ok(ScalarValue::try_from_array(b.column(0).as_ref(), 0)?)
        }
        _ => Err(EngineError::DataFusion(
            datafusion::error::DataFusionError::Execution(
                "Scalar subquery returned more than one row".to_string(),
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributed_plans_never_use_shared_state_operators() {
        let mut opts = ConfigOptions::new();
        opts.optimizer.enable_window_topn = true;
        opts.optimizer.enable_dynamic_filter_pushdown = true;
        opts.optimizer.enable_physical_uncorrelated_scalar_subquery = true;
        distributed_options(&mut opts);
        assert!(!opts.optimizer.enable_window_topn);
        assert!(!opts.optimizer.enable_dynamic_filter_pushdown);
        assert!(!opts.optimizer.enable_physical_uncorrelated_scalar_subquery);
    }
}
