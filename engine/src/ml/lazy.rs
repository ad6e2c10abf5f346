//! Training in the lazy DAG: `estimator.train(&df)` is a [`LazyModel`] — a `Train` node over
//! the training plan — and `lazy.transform(&other)` is a DataFrame whose plan predicts with
//! that model. Nothing runs until an action; then the training stage runs first.
//!
//! ```text
//!  Predict: prediction = predict(<model of Train[t1]>, x0, x1)       ← transform(&other)
//!    <plan of other>
//!    Train[t1]: LogisticRegression {..} features=[x0, x1] label=y    ← train(&df)
//!      <plan of df>
//! ```
//!
//! When the DataFrame is planned, every `Train` node is fitted (cache stage, then one kernel
//! round per iteration: see [`TrainingData`](super::TrainingData)) exactly once — its model is
//! kept by the node, so later actions reuse it — and each `Predict` node becomes a projection
//! with the bound `predict` function. `EXPLAIN` shows the stages before any of them runs.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::dataframe::DataFrame as DfDataFrame;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ident, lit, Expr, Extension, LogicalPlan, LogicalPlanBuilder, UserDefinedLogicalNodeCore,
};
use futures::future::BoxFuture;
use kiln_ml::Model;
use kiln_planner::cut_stages;
use kiln_planner::predict::PREDICT;
use tokio::sync::OnceCell;

use super::columns::Columns;
use super::fit::{fit_estimator, Estimator, Fit};
use crate::context::{short_id, PlanHook, SessionInner};
use crate::dataframe::DataFrame;
use crate::error::Result;
use crate::session::Session;

/// Lazy training, for every [`Fit`] estimator.
pub trait Train: Fit {
    /// A [`LazyModel`]: training on `df` (default columns) as a `Train` node of the plan,
    /// run when something needs the model. Columns are checked now.
    ///
    /// # Errors
    /// Unknown or missing columns.
    fn train(self, df: &DataFrame) -> Result<LazyModel> {
        self.train_columns(df, Columns::new())
    }

    /// As [`train`](Self::train) with the given columns.
    ///
    /// # Errors
    /// Unknown or missing columns.
    fn train_columns(self, df: &DataFrame, columns: Columns) -> Result<LazyModel> {
        LazyModel::new(self.into(), df, &columns)
    }
}

impl<T: Fit> Train for T {}

/// A training stage in a logical plan: its input is the training data, its result a model.
#[derive(Debug, Clone)]
pub struct TrainNode {
    id: String,
    estimator: Estimator,
    features: Vec<String>,
    label: Option<String>,
    input: LogicalPlan,
    schema: DFSchemaRef,
    fitted: Arc<OnceCell<Arc<Model>>>,
}

impl PartialEq for TrainNode {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.input == other.input
    }
}

impl Eq for TrainNode {}

impl Hash for TrainNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl PartialOrd for TrainNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.id.partial_cmp(&other.id)
    }
}

impl TrainNode {
    /// The estimator and its parameters, e.g. `KMeans { k: 8, max_iter: 20, .. }`.
    fn describe(&self) -> String {
        match &self.estimator {
            Estimator::KMeans(e) => format!("{e:?}"),
            Estimator::LinearRegression(e) => format!("{e:?}"),
            Estimator::LogisticRegression(e) => format!("{e:?}"),
        }
    }

    /// What one iteration does.
    fn iteration(&self) -> String {
        match &self.estimator {
            Estimator::KMeans(_) => "k-means|| or given init, then Lloyd: per round one kernel request per executor (assign + per-centre sums of its cached partitions), centres updated on the driver".into(),
            Estimator::LinearRegression(_) | Estimator::LogisticRegression(_) => "per round one kernel request per executor (loss + gradient of its cached partitions), L-BFGS / OWL-QN / SGD step on the driver".into(),
        }
    }

    /// The model, fitting it on first use.
    async fn model(&self, session: &Session) -> Result<Arc<Model>> {
        self.fitted
            .get_or_try_init(|| async {
                let df = DataFrame::new(
                    session.clone(),
                    DfDataFrame::new(session.inner.ctx.state(), self.input.clone()),
                );
                let columns = Columns::new()
                    .features(self.features.iter().cloned())
                    .label_opt(self.label.clone());
                // Training data may itself come from a lazy model: planning it recurses.
                Box::pin(fit_estimator(&self.estimator, &df, columns))
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
    }
}

impl UserDefinedLogicalNodeCore for TrainNode {
    fn name(&self) -> &str {
        "Train"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "Train[{}]: {} features=[{}]",
            self.id,
            self.describe(),
            self.features.join(", ")
        )?;
        if let Some(l) = &self.label {
            write!(f, " label={l}")?;
        }
        if self.fitted.initialized() {
            write!(f, " (fitted)")?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> datafusion::error::Result<Self> {
        let input = inputs.pop().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal("Train has one input".into())
        })?;
        Ok(Self {
            input,
            ..self.clone()
        })
    }
}

/// Prediction with a model that a [`TrainNode`] (its second input) produces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PredictNode {
    input: LogicalPlan,
    train: LogicalPlan,
    output: String,
    features: Vec<String>,
    schema: DFSchemaRef,
}

impl PartialOrd for PredictNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (&self.input, &self.train, &self.output).partial_cmp(&(
            &other.input,
            &other.train,
            &other.output,
        ))
    }
}

impl UserDefinedLogicalNodeCore for PredictNode {
    fn name(&self) -> &str {
        "Predict"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input, &self.train]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "Predict: {} = predict(<model of the Train input>, {})",
            self.output,
            self.features.join(", ")
        )
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        inputs: Vec<LogicalPlan>,
    ) -> datafusion::error::Result<Self> {
        let [input, train]: [LogicalPlan; 2] = inputs.try_into().map_err(|_| {
            datafusion::error::DataFusionError::Internal("Predict has two inputs".into())
        })?;
        Ok(Self {
            input,
            train,
            ..self.clone()
        })
    }
}

fn train_node(plan: &LogicalPlan) -> Option<&TrainNode> {
    match plan {
        LogicalPlan::Extension(e) => e.node.as_any().downcast_ref::<TrainNode>(),
        _ => None,
    }
}

fn predict_node(plan: &LogicalPlan) -> Option<&PredictNode> {
    match plan {
        LogicalPlan::Extension(e) => e.node.as_any().downcast_ref::<PredictNode>(),
        _ => None,
    }
}

/// The training nodes in `plan` (outermost first).
fn train_nodes(plan: &LogicalPlan) -> Vec<TrainNode> {
    let mut found = Vec::new();
    // Visiting cannot fail: the closure always continues.
    let _ = plan.apply(|p| {
        if let Some(t) = train_node(p) {
            found.push(t.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Lazy training as the session's [`PlanHook`]: a plan with `Train` nodes trains them first.
struct LazyTraining;

impl PlanHook for LazyTraining {
    fn resolve<'a>(
        &'a self,
        session: &'a Arc<SessionInner>,
        plan: LogicalPlan,
    ) -> BoxFuture<'a, Result<LogicalPlan>> {
        Box::pin(async move { resolve(&Session::from_inner(session), plan).await })
    }

    fn explain<'a>(
        &'a self,
        session: &'a Arc<SessionInner>,
        plan: &'a LogicalPlan,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move { explain_training(&Session::from_inner(session), plan).await })
    }
}

/// Fits every training node of `plan` (once per node) and replaces each prediction node by a
/// projection with the fitted model bound; a plan without them is returned as is.
async fn resolve(session: &Session, plan: LogicalPlan) -> Result<LogicalPlan> {
    let nodes = train_nodes(&plan);
    if nodes.is_empty() {
        return Ok(plan);
    }
    for node in &nodes {
        node.model(session).await?;
    }
    let udf = session.datafusion_context().udf(PREDICT)?;
    let rewritten = plan.transform_up(|p| {
        let Some(node) = predict_node(&p) else {
            return Ok(Transformed::no(p));
        };
        let Some(train) = train_node(&node.train) else {
            return Err(datafusion::error::DataFusionError::Internal(
                "Predict without a Train input".into(),
            ));
        };
        let Some(model) = train.fitted.get() else {
            return Err(datafusion::error::DataFusionError::Internal(format!(
                "Train[{}] was not fitted",
                train.id
            )));
        };
        session.register_model_arc(&train.id, Arc::clone(model));
        let mut args = vec![lit(train.id.as_str())];
        args.extend(model.feature_names().iter().map(|f| ident(f.as_str())));
        let mut exprs: Vec<Expr> = node
            .input
            .schema()
            .columns()
            .into_iter()
            .filter(|c| c.name != node.output)
            .map(Expr::Column)
            .collect();
        exprs.push(udf.call(args).alias(&node.output));
        let projected = LogicalPlanBuilder::from(node.input.clone())
            .project(exprs)?
            .build()?;
        Ok(Transformed::yes(projected))
    })?;
    Ok(rewritten.data)
}

/// The training stages of `plan`, for EXPLAIN: per `Train` node its cache stage (the stages
/// of its input) and what each iteration does. Empty without training nodes.
async fn explain_training(session: &Session, plan: &LogicalPlan) -> Result<String> {
    let mut out = String::new();
    for node in train_nodes(plan) {
        out.push_str(&format!("Train[{}]: {}\n", node.id, node.describe()));
        if node.fitted.initialized() {
            out.push_str("  fitted: the model is reused, no stage runs\n");
            continue;
        }
        let mut keep: Vec<Expr> = node.features.iter().map(|f| ident(f.as_str())).collect();
        if let Some(l) = &node.label {
            keep.push(ident(l.as_str()));
        }
        let input = DataFrame::new(
            session.clone(),
            DfDataFrame::new(session.inner.ctx.state(), node.input.clone()),
        )
        .select(keep)?;
        let physical = input.physical_plan().await?;
        let graph = cut_stages(physical)?;
        out.push_str(&format!(
            "  Cache stage: the input's last stage keeps each partition on its executor as a dense f64 matrix of [{}]{} (and a copy in the cache store)\n",
            node.features.join(", "),
            node.label
                .as_ref()
                .map(|l| format!(" + label column '{l}'"))
                .unwrap_or_default()
        ));
        for line in graph.to_string().lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!("  Iterate: {}\n", node.iteration()));
    }
    Ok(out)
}

/// A model that is trained when a plan needs it: the result of [`Train::train`](super::Train::train).
#[derive(Debug, Clone)]
pub struct LazyModel {
    session: Session,
    node: TrainNode,
}

impl LazyModel {
    pub(crate) fn new(estimator: Estimator, df: &DataFrame, columns: &Columns) -> Result<Self> {
        let supervised = estimator.supervised();
        let (features, label) = columns.resolve(&df.schema(), supervised)?;
        let schema = Arc::new(DFSchema::try_from(Schema::new(vec![Field::new(
            "model",
            DataType::Utf8,
            false,
        )]))?);
        // The DataFrames that plan this node's consumers call back here to train it.
        df.session()
            .inner
            .plan_hook
            .get_or_init(|| Arc::new(LazyTraining));
        Ok(Self {
            session: df.session().clone(),
            node: TrainNode {
                id: format!("train-{}", short_id()),
                estimator,
                features,
                label,
                input: df.inner().logical_plan().clone(),
                schema,
                fitted: Arc::new(OnceCell::new()),
            },
        })
    }

    /// The name the fitted model is registered under in the session (usable in SQL's
    /// `predict('name', ...)` once fitted).
    pub fn name(&self) -> &str {
        &self.node.id
    }

    /// Whether the model has been trained.
    pub fn is_fitted(&self) -> bool {
        self.node.fitted.initialized()
    }

    /// Trains now (once; later calls and plans reuse the model) and registers it in the session
    /// under [`name`](Self::name).
    ///
    /// # Errors
    /// As [`Fit::fit`](super::Fit::fit).
    pub async fn fit(&self) -> Result<Arc<Model>> {
        let model = self.node.model(&self.session).await?;
        self.session
            .register_model_arc(&self.node.id, Arc::clone(&model));
        Ok(model)
    }

    /// `df` with a column `prediction` from this model: one lazy plan that, when it runs,
    /// trains first (unless already trained).
    ///
    /// # Errors
    /// A feature column missing from `df`.
    pub fn transform(&self, df: &DataFrame) -> Result<DataFrame> {
        self.transform_to(df, "prediction")
    }

    /// As [`transform`](Self::transform), predicting into column `output`.
    ///
    /// # Errors
    /// A feature column missing from `df`.
    pub fn transform_to(&self, df: &DataFrame, output: &str) -> Result<DataFrame> {
        let schema = df.schema();
        Columns::new()
            .features(self.node.features.iter().cloned())
            .resolve(&schema, false)?;
        let output_type = match self.node.estimator {
            Estimator::KMeans(_) => DataType::UInt32,
            Estimator::LinearRegression(_) | Estimator::LogisticRegression(_) => DataType::Float64,
        };
        let input = df.inner().logical_plan().clone();
        let kept = DFSchema::new_with_metadata(
            input
                .schema()
                .iter()
                .filter(|(_, f)| f.name() != output)
                .map(|(q, f)| (q.cloned(), Arc::clone(f)))
                .collect(),
            Default::default(),
        )?;
        let added = DFSchema::try_from(Schema::new(vec![Field::new(output, output_type, true)]))?;
        let mut schema = kept;
        schema.merge(&added);
        let node = PredictNode {
            input,
            train: LogicalPlan::Extension(Extension {
                node: Arc::new(self.node.clone()),
            }),
            output: output.to_string(),
            features: self.node.features.clone(),
            schema: Arc::new(schema),
        };
        let plan = LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        });
        Ok(DataFrame::new(
            df.session().clone(),
            DfDataFrame::new(df.session().inner.ctx.state(), plan),
        ))
    }

    /// How training will run: the `Train` node, its cache stage and its iterations.
    ///
    /// # Errors
    /// Planning errors of the training input.
    pub async fn explain(&self) -> Result<String> {
        let plan = LogicalPlan::Extension(Extension {
            node: Arc::new(self.node.clone()),
        });
        Ok(format!(
            "== Logical plan ==\n{}\n\n== Training ==\n{}",
            plan.display_indent(),
            explain_training(&self.session, &plan).await?
        ))
    }
}
