//! What single-node DataFusion plans differently when its plan is cut into stages on separate
//! executors: the settings every distributed plan is made with, scalar subqueries computed
//! first, and the few plans that run on the driver.
//!
//! ```text
//!  logical plan ─optimize─▶ uncorrelated scalar subqueries run as their own jobs, replaced by
//!               their values ─▶ physical plan (made with `distributed_options`)
//!               ─▶ runs_on_driver? ── yes: DataFusion runs it in the driver's process
//!                                  └─ no:  cut into stages, run on executors
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::ScalarValue;
use datafusion::config::ConfigOptions;
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan, Subquery};
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use crate::dataframe::DataFrame;
use crate::error::{EngineError, Result};
use crate::session::Session;

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
    session: &Session,
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

/// The one value of an uncorrelated scalar subquery: `NULL` for no row, an error for more.
async fn subquery_value(session: &Session, sq: &Subquery) -> Result<ScalarValue> {
    let state = session.inner.ctx.state();
    let query = datafusion::dataframe::DataFrame::new(state, sq.subquery.as_ref().clone());
    let schema = query.schema().as_arrow().clone();
    let batches = DataFrame::new(session.clone(), query).collect().await?;
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
