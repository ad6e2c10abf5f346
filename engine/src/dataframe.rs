//! [`DataFrame`]: a lazy query. Transformations build a plan; actions run it on the executors.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, Int64Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use datafusion::common::JoinType;
use datafusion::dataframe::DataFrame as DfDataFrame;
use datafusion::datasource::file_format::csv::CsvFormatFactory;
use datafusion::datasource::file_format::format_as_file_type;
use datafusion::datasource::file_format::parquet::ParquetFormatFactory;
use datafusion::functions_aggregate::count::count_all;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, SortExpr};
use datafusion::physical_plan::{displayable, ExecutionPlan};
use datafusion::prelude::{lit, Column};
use kiln_planner::cut_stages;
use kiln_planner::functions::kiln_udf;
use kiln_planner::functions::KILN_UNIFORM;

use crate::error::{EngineError, Result};
use crate::job;
use crate::session::Session;

/// A lazy query over a [`Session`]. Cheap to clone; nothing runs until an action
/// (`collect`, `count`, `show`, `write_*`).
#[derive(Debug, Clone)]
pub struct DataFrame {
    session: Session,
    df: DfDataFrame,
    /// The cached dataset this DataFrame scans, when it came from `persist` (a
    /// [`crate::ml::TrainingData`], from a module above this one).
    persisted: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// The SQL text it was made from, describing its jobs (see [`crate::Event::JobStarted`]).
    origin: Option<Arc<str>>,
}

/// The result of [`DataFrame::group_by`]: call [`GroupedDataFrame::agg`] to aggregate.
#[derive(Debug, Clone)]
pub struct GroupedDataFrame {
    df: DataFrame,
    keys: Vec<Expr>,
}

impl GroupedDataFrame {
    /// Aggregates each group with `aggs` (e.g. `sum(col("x"))`, `count(col("y"))`).
    ///
    /// # Errors
    /// Unknown columns or aggregate type errors.
    pub fn agg(self, aggs: Vec<Expr>) -> Result<DataFrame> {
        self.df.map(|df| df.aggregate(self.keys, aggs))
    }
}

/// Runs a physical plan to its rows, in partition order: whole on the driver where it must,
/// as a write with its commit protocol, or cut into stages and run as a job.
async fn run_plan(
    session: &crate::context::SessionInner,
    plan: Arc<dyn ExecutionPlan>,
) -> Result<Vec<RecordBatch>> {
    if let Some(analyze) = plan.downcast_ref::<datafusion::physical_plan::analyze::AnalyzeExec>() {
        return explain_analyze(session, analyze).await;
    }
    if crate::distributed::runs_on_driver(&plan) {
        return crate::distributed::collect_on_driver(session, plan).await;
    }
    if plan
        .downcast_ref::<datafusion::datasource::sink::DataSinkExec>()
        .is_some()
    {
        return crate::write::run_write(session, plan).await;
    }
    let graph = cut_stages(plan)?;
    job::run_graph(session, &graph).await
}

/// `EXPLAIN ANALYZE` of a distributed query: runs it as a job and shows every stage's
/// operators with their metrics summed over the stage's tasks (as reported by the executors),
/// not only the driver's last step.
async fn explain_analyze(
    session: &crate::context::SessionInner,
    analyze: &datafusion::physical_plan::analyze::AnalyzeExec,
) -> Result<Vec<RecordBatch>> {
    use crate::scheduler::Event;
    let input = Arc::clone(analyze.input());
    let graph = cut_stages(input)?;
    let job_id = session.next_job_id();
    let mut events = session.events.subscribe();
    let watched = job_id.clone();
    // Collected while the job runs, so the stream's buffer never overflows.
    let collector = tokio::spawn(async move {
        let mut stages: Vec<(u32, usize, Vec<u32>, Vec<crate::scheduler::Operator>)> = Vec::new();
        loop {
            match events.recv().await {
                Ok(Event::StageSubmitted {
                    job,
                    stage,
                    tasks,
                    parents,
                    ..
                }) if job == watched => stages.push((stage, tasks, parents, Vec::new())),
                Ok(Event::TaskFinished {
                    job,
                    stage,
                    failure: None,
                    operators,
                    ..
                }) if job == watched => {
                    if let Some(s) = stages.iter_mut().find(|s| s.0 == stage) {
                        crate::status::add_operators(&mut s.3, &operators);
                    }
                }
                Ok(Event::JobFinished { job, .. }) if job == watched => break,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
        stages
    });
    let started = std::time::Instant::now();
    let outcome = job::run_graph_as(session, &graph, job_id.clone()).await;
    let seconds = started.elapsed().as_secs_f64();
    let stages = collector
        .await
        .map_err(|e| EngineError::Internal(format!("collecting the job's metrics: {e}")))?;
    let batches = outcome?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut text = format!(
        "Job {job_id}: {} stages, {rows} rows in {seconds:.3} s\n",
        stages.len()
    );
    for (stage, tasks, parents, operators) in &stages {
        let reads = if parents.is_empty() {
            String::new()
        } else {
            let p: Vec<String> = parents.iter().map(u32::to_string).collect();
            format!(", reads stage {}", p.join(", "))
        };
        text.push_str(&format!("Stage {stage} ({tasks} tasks{reads}):\n"));
        for line in crate::status::plan_with_metrics(operators).lines() {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
    }
    let schema = analyze.schema();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(arrow::array::StringArray::from(vec!["Plan with Metrics"])),
            Arc::new(arrow::array::StringArray::from(vec![text])),
        ],
    )?;
    Ok(vec![batch])
}

/// Planning runs its subqueries as DataFrames of the session.
impl crate::distributed::RunQuery for Session {
    fn state(&self) -> datafusion::execution::SessionState {
        self.inner.ctx.state()
    }

    fn collect(
        &self,
        query: DfDataFrame,
    ) -> futures::future::BoxFuture<'_, Result<Vec<RecordBatch>>> {
        Box::pin(async move { DataFrame::new(self.clone(), query).collect().await })
    }
}

impl DataFrame {
    pub(crate) fn new(session: Session, df: DfDataFrame) -> Self {
        Self {
            session,
            df,
            persisted: None,
            origin: None,
        }
    }

    pub(crate) fn persisted(
        session: Session,
        df: DfDataFrame,
        data: Arc<dyn std::any::Any + Send + Sync>,
    ) -> Self {
        Self {
            session,
            df,
            persisted: Some(data),
            origin: None,
        }
    }

    /// The cached dataset this DataFrame scans, if it is a `T`.
    pub(crate) fn persisted_data<T: std::any::Any>(&self) -> Option<&T> {
        self.persisted.as_deref()?.downcast_ref::<T>()
    }

    fn map(
        self,
        f: impl FnOnce(DfDataFrame) -> datafusion::error::Result<DfDataFrame>,
    ) -> Result<Self> {
        let df = f(self.df)?;
        let mut next = Self::new(self.session, df);
        next.origin = self.origin;
        Ok(next)
    }

    /// The underlying DataFusion DataFrame (its logical plan and schema).
    pub fn inner(&self) -> &DfDataFrame {
        &self.df
    }

    /// The session this DataFrame runs in.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The output schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.df.schema().as_arrow().clone())
    }

    /// Keeps the given expressions (`col("a")`, `(col("b") * lit(2)).alias("b2")`, ...).
    ///
    /// # Errors
    /// [`EngineError::UnknownColumn`] naming a missing column and the closest one.
    pub fn select(self, exprs: Vec<Expr>) -> Result<Self> {
        self.map(|df| df.select(exprs))
    }

    /// Keeps the named columns.
    ///
    /// # Errors
    /// [`EngineError::UnknownColumn`] for a missing column.
    pub fn select_columns(self, columns: &[&str]) -> Result<Self> {
        self.map(|df| df.select_columns(columns))
    }

    /// Keeps the rows where `predicate` is true.
    ///
    /// # Errors
    /// Unknown columns, or a predicate that is not boolean.
    pub fn filter(self, predicate: Expr) -> Result<Self> {
        self.map(|df| df.filter(predicate))
    }

    /// Adds (or replaces) column `name` computed by `expr`.
    ///
    /// # Errors
    /// Unknown columns or type errors in `expr`.
    pub fn with_column(self, name: &str, expr: Expr) -> Result<Self> {
        self.map(|df| df.with_column(name, expr))
    }

    /// Renames a column; a no-op if `old` does not exist (as in Spark).
    ///
    /// # Errors
    /// If the new name clashes.
    pub fn with_column_renamed(self, old: &str, new: &str) -> Result<Self> {
        self.map(|df| df.with_column_renamed(old, new))
    }

    /// Drops the named columns.
    ///
    /// # Errors
    /// If the plan cannot be built.
    pub fn drop(self, columns: &[&str]) -> Result<Self> {
        self.map(|df| df.drop_columns(columns))
    }

    /// Joins with `right` on equal key columns; `join_type` is inner, left, right, full,
    /// left semi or left anti (`JoinType::LeftSemi`, `JoinType::LeftAnti`).
    ///
    /// # Errors
    /// Unknown key columns or incompatible key types.
    pub fn join(
        self,
        right: DataFrame,
        join_type: JoinType,
        left_keys: &[&str],
        right_keys: &[&str],
    ) -> Result<Self> {
        self.map(|df| df.join(right.df, join_type, left_keys, right_keys, None))
    }

    /// Joins with `right` on arbitrary conditions (`col("a").eq(col("b"))`, ...).
    ///
    /// # Errors
    /// Unknown columns or type errors in the conditions.
    pub fn join_on(self, right: DataFrame, join_type: JoinType, on: Vec<Expr>) -> Result<Self> {
        self.map(|df| df.join_on(right.df, join_type, on))
    }

    /// Groups by `keys`; aggregate with [`GroupedDataFrame::agg`].
    pub fn group_by(self, keys: Vec<Expr>) -> GroupedDataFrame {
        GroupedDataFrame { df: self, keys }
    }

    /// Adds window-function columns (e.g. `row_number().partition_by(..).order_by(..).build()`).
    ///
    /// # Errors
    /// Unknown columns or invalid window specifications.
    pub fn window(self, exprs: Vec<Expr>) -> Result<Self> {
        self.map(|df| df.window(exprs))
    }

    /// Sorts by `exprs` (`col("a").sort(true, false)` for ascending, nulls last).
    ///
    /// # Errors
    /// Unknown columns.
    pub fn sort(self, exprs: Vec<SortExpr>) -> Result<Self> {
        self.map(|df| df.sort(exprs))
    }

    /// Keeps at most `n` rows.
    ///
    /// # Errors
    /// If the plan cannot be built.
    pub fn limit(self, n: usize) -> Result<Self> {
        self.map(|df| df.limit(0, Some(n)))
    }

    /// Removes duplicate rows.
    ///
    /// # Errors
    /// If the plan cannot be built.
    pub fn distinct(self) -> Result<Self> {
        self.map(|df| df.distinct())
    }

    /// Appends the rows of `other` (same columns), keeping duplicates (SQL `UNION ALL`).
    ///
    /// # Errors
    /// If the schemas differ.
    pub fn union(self, other: DataFrame) -> Result<Self> {
        self.map(|df| df.union(other.df))
    }

    /// The seeded per-row uniform number in `[0, 1)` used by [`sample`](Self::sample) and
    /// [`random_split`](Self::random_split): a function of the seed and the row's values only.
    fn uniform(&self, seed: u64) -> Result<Expr> {
        let udf = kiln_udf(KILN_UNIFORM)
            .ok_or_else(|| EngineError::Internal(format!("{KILN_UNIFORM} is not registered")))?;
        let mut args = vec![lit(seed as i64)];
        args.extend(
            self.df
                .schema()
                .columns()
                .into_iter()
                .map(|c: Column| Expr::Column(c)),
        );
        Ok(udf.call(args))
    }

    /// A seeded sample of about `fraction` of the rows, without replacement.
    ///
    /// Which rows are kept depends only on `seed` and the rows' values, never on the number of
    /// executors or partitions; identical rows are kept or dropped together.
    ///
    /// # Errors
    /// [`EngineError::InvalidParameter`] unless `0 <= fraction <= 1`.
    pub fn sample(self, fraction: f64, seed: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(EngineError::InvalidParameter {
                name: "fraction",
                reason: format!("must be in [0, 1], got {fraction}"),
            });
        }
        let u = self.uniform(seed)?;
        self.filter(u.lt(lit(fraction)))
    }

    /// Splits the rows into two DataFrames, about `fraction` of them in the first, seeded.
    /// The split does not depend on the number of executors (see [`sample`](Self::sample)).
    ///
    /// # Errors
    /// [`EngineError::InvalidParameter`] unless `0 <= fraction <= 1`.
    pub fn random_split(self, fraction: f64, seed: u64) -> Result<(Self, Self)> {
        let mut parts = self.random_split_weights(&[fraction, 1.0 - fraction], seed)?;
        let second = parts.pop();
        let first = parts.pop();
        match (first, second) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(EngineError::Internal(
                "random_split lost a part".to_string(),
            )),
        }
    }

    /// Splits the rows into `weights.len()` DataFrames with sizes proportional to `weights`
    /// (normalized), seeded, as Spark's `randomSplit`.
    ///
    /// # Errors
    /// [`EngineError::InvalidParameter`] for an empty list, a negative weight, or all zeros.
    pub fn random_split_weights(self, weights: &[f64], seed: u64) -> Result<Vec<Self>> {
        if weights.is_empty() || weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(EngineError::InvalidParameter {
                name: "weights",
                reason: format!("must be non-negative finite numbers, got {weights:?}"),
            });
        }
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return Err(EngineError::InvalidParameter {
                name: "weights",
                reason: "must not all be zero".to_string(),
            });
        }
        let u = self.uniform(seed)?;
        let mut lower = 0.0;
        let mut out = Vec::with_capacity(weights.len());
        for (i, w) in weights.iter().enumerate() {
            let upper = if i + 1 == weights.len() {
                1.0
            } else {
                lower + w / total
            };
            let cond = u.clone().gt_eq(lit(lower));
            let cond = if i + 1 == weights.len() {
                cond
            } else {
                cond.and(u.clone().lt(lit(upper)))
            };
            out.push(self.clone().filter(cond)?);
            lower = upper;
        }
        Ok(out)
    }

    /// Builds the single-node physical plan (before cutting into stages).
    ///
    /// # Errors
    /// Planning errors.
    pub async fn physical_plan(&self) -> Result<Arc<dyn ExecutionPlan>> {
        crate::panic::guard(
            || "planning the query".to_string(),
            || crate::panic::plan_files(self.df.logical_plan()),
            async {
                let mut plan = self.df.logical_plan().clone();
                if let Some(hook) = self.session.inner.plan_hook.get() {
                    plan = hook.resolve(&self.session.inner, plan).await?;
                }
                let state = crate::distributed::planning_state(&self.session.inner.ctx);
                let plan = crate::distributed::scalar_subqueries(&self.session, plan).await?;
                let plan = state.optimize(&plan)?;
                let plan = crate::distributed::semi_join_filters(&self.session, plan).await?;
                let plan = state.create_physical_plan(&plan).await?;
                driver_scans_in_memory(&state, plan).await
            },
        )
        .await
    }

    /// Runs the query and returns all rows.
    ///
    /// # Errors
    /// Planning errors, or a task that failed on an executor.
    pub async fn collect(&self) -> Result<Vec<RecordBatch>> {
        let plan = self.physical_plan().await?;
        // Only someone watching reads a job's description.
        let origin = match &self.origin {
            Some(sql) => Arc::clone(sql),
            None if self.session.inner.events.watched() => {
                Arc::from(format!("DataFrame: {}", self.df.logical_plan().display()))
            }
            None => Arc::from(""),
        };
        crate::scheduler::described(origin, run_plan(&self.session.inner, plan)).await
    }

    /// This DataFrame, its jobs described by the SQL text it was made from.
    pub(crate) fn with_origin(mut self, sql: &str) -> Self {
        self.origin = Some(Arc::from(sql));
        self
    }

    /// Runs the query and returns the number of rows.
    ///
    /// # Errors
    /// As [`collect`](Self::collect).
    pub async fn count(&self) -> Result<usize> {
        let counted = self
            .df
            .clone()
            .aggregate(vec![], vec![count_all().alias("count")])?;
        let batches = DataFrame::new(self.session.clone(), counted)
            .collect()
            .await?;
        let n = batches
            .first()
            .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>().cloned())
            .filter(|a| !a.is_empty())
            .map(|a| a.value(0))
            .unwrap_or(0);
        usize::try_from(n).map_err(|e| EngineError::Internal(format!("negative count: {e}")))
    }

    /// Runs the query and renders up to `n` rows as a table.
    ///
    /// # Errors
    /// As [`collect`](Self::collect).
    pub async fn show_string(&self, n: usize) -> Result<String> {
        let batches = self.clone().limit(n)?.collect().await?;
        Ok(pretty_format_batches(&batches)?.to_string())
    }

    /// Prints up to 20 rows (as Spark's `show()`).
    ///
    /// # Errors
    /// As [`collect`](Self::collect).
    pub async fn show(&self) -> Result<()> {
        println!("{}", self.show_string(20).await?);
        Ok(())
    }

    /// Writes the rows as Parquet under `path` (a directory, or a file path ending in
    /// `.parquet`); returns the number of rows written.
    ///
    /// # Errors
    /// As [`collect`](Self::collect), or the sink's I/O errors.
    pub async fn write_parquet(&self, path: &str) -> Result<usize> {
        let format = Arc::new(ParquetFormatFactory::new());
        self.write(path, format_as_file_type(format)).await
    }

    /// Writes the rows as CSV (with a header) under `path`; returns the number of rows written.
    ///
    /// # Errors
    /// As [`write_parquet`](Self::write_parquet).
    pub async fn write_csv(&self, path: &str) -> Result<usize> {
        let format = Arc::new(CsvFormatFactory::new());
        self.write(path, format_as_file_type(format)).await
    }

    async fn write(
        &self,
        path: &str,
        file_type: Arc<dyn datafusion::common::file_options::file_type::FileType>,
    ) -> Result<usize> {
        self.session.inner.stores.ensure(path)?;
        let plan = LogicalPlanBuilder::copy_to(
            self.df.logical_plan().clone(),
            path.to_string(),
            file_type,
            HashMap::new(),
            vec![],
        )?
        .build()?;
        let df = DfDataFrame::new(self.session.inner.ctx.state(), plan);
        let batches = DataFrame::new(self.session.clone(), df).collect().await?;
        let written: u64 = batches
            .iter()
            .filter_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::UInt64Array>()
                    .map(|a| a.iter().flatten().sum::<u64>())
            })
            .sum();
        usize::try_from(written).map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// Describes how the query runs: the optimized logical plan, the physical plan, and the
    /// stage graph (stages, their task counts and partitioning, and their shuffle edges).
    ///
    /// # Errors
    /// Planning errors.
    pub async fn explain(&self) -> Result<String> {
        let training = match self.session.inner.plan_hook.get() {
            Some(hook) => {
                hook.explain(&self.session.inner, self.df.logical_plan())
                    .await?
            }
            None => String::new(),
        };
        if !training.is_empty() {
            return Ok(format!(
                "== Logical plan ==\n{}\n\n== Training (runs first) ==\n{training}\n== Prediction ==\nA projection with the trained model bound to predict(...), planned with the rest of the query once training ends.",
                self.df.logical_plan().display_indent()
            ));
        }
        let logical = self.df.clone().into_optimized_plan()?;
        let physical = self.physical_plan().await?;
        let graph = cut_stages(Arc::clone(&physical))?;
        Ok(format!(
            "== Logical plan ==\n{}\n\n== Physical plan ==\n{}\n== Stages ==\n{graph}",
            logical.display_indent(),
            displayable(physical.as_ref()).indent(false)
        ))
    }
}

/// `plan` with its scans of tables only the driver has (`information_schema`, which `SHOW
/// TABLES`, `SHOW COLUMNS` and `SHOW name` read) run on the driver and replaced by their rows,
/// which travel to the executors with the plan. These tables are small: they describe the
/// catalog and the settings.
async fn driver_scans_in_memory(
    state: &datafusion::execution::SessionState,
    plan: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_plan::streaming::StreamingTableExec;

    let mut found: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
    plan.apply(|node| {
        if node.downcast_ref::<StreamingTableExec>().is_some() {
            found.push(Arc::clone(node));
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if found.is_empty() {
        return Ok(plan);
    }
    let mut replacements = Vec::with_capacity(found.len());
    for node in found {
        let partitions =
            datafusion::physical_plan::collect_partitioned(Arc::clone(&node), state.task_ctx())
                .await?;
        let rows: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&partitions, node.schema(), None)?;
        replacements.push((node, rows));
    }
    let replaced = plan.transform_up(|node| {
        Ok(
            match replacements.iter().find(|(n, _)| Arc::ptr_eq(n, &node)) {
                Some((_, rows)) => Transformed::yes(Arc::clone(rows)),
                None => Transformed::no(node),
            },
        )
    })?;
    Ok(replaced.data)
}
