//! Kiln's estimators, transformers, pipelines, models and evaluators for Python: the Rust
//! ones (`kiln::ml`), configured from a dict of parameters named as the Rust builders name
//! them. `kiln/ml.py` translates scikit-learn's names into these.

use std::collections::BTreeSet;
use std::sync::Arc;

use kiln::ml::{
    Average, ClassificationMetric, Columns, Estimator, EstimatorStage, Evaluator, Family,
    FeatureModel, FittedStage, HandleInvalid, ImputeStrategy, Imputer, KMeans, KMeansInit,
    LinearRegression, LogisticRegression, Metric, MinMaxScaler, Model, ModelKind, OneHotEncoder,
    Pipeline, RegressionMetric, Solver, Stage, StandardScaler, StepSchedule, StringIndexer,
    StringOrder, VectorAssembler,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyDictMethods};

use crate::dataframe::PyDataFrame;
use crate::errors::{parameter, IntoPy};

/// Typed reads of a parameter dict; keys nobody read are an error, so a misspelt parameter
/// never goes unnoticed.
struct Params<'py> {
    what: String,
    dict: Bound<'py, PyDict>,
    read: BTreeSet<String>,
}

impl<'py> Params<'py> {
    fn new(what: &str, dict: Bound<'py, PyDict>) -> Self {
        Self {
            what: what.to_string(),
            dict,
            read: BTreeSet::new(),
        }
    }

    /// The value of `key`, unless absent or `None`.
    fn get<T: for<'a> FromPyObject<'a, 'py>>(&mut self, key: &str) -> PyResult<Option<T>> {
        self.read.insert(key.to_string());
        match self.dict.get_item(key)? {
            Some(v) if !v.is_none() => v.extract::<T>().map(Some).map_err(|_| {
                let type_name = v
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default();
                parameter(format!(
                    "{}: parameter {key} has the wrong type ({type_name})",
                    self.what
                ))
            }),
            _ => Ok(None),
        }
    }

    /// Fails on keys that were never read.
    fn finish(self) -> PyResult<()> {
        for key in self.dict.keys() {
            let key: String = key.extract()?;
            if !self.read.contains(&key) {
                return Err(parameter(format!("{} has no parameter '{key}'", self.what)));
            }
        }
        Ok(())
    }
}

fn handle_invalid(text: Option<String>) -> PyResult<HandleInvalid> {
    Ok(match text.as_deref() {
        None | Some("error") => HandleInvalid::Error,
        Some("skip") => HandleInvalid::Skip,
        Some("keep") => HandleInvalid::Keep,
        Some(other) => {
            return Err(parameter(format!(
                "handle_invalid must be 'error', 'skip' or 'keep', got '{other}'"
            )))
        }
    })
}

/// A pipeline stage: an estimator or transformer with its parameters, not fitted.
#[pyclass(name = "Stage", module = "kiln._kiln", frozen, from_py_object)]
#[derive(Clone)]
pub(crate) struct PyStage {
    stage: Stage,
}

/// The linear builders' shared parameters.
macro_rules! linear_params {
    ($builder:expr, $p:expr) => {{
        let mut b = $builder;
        if let Some(v) = $p.get::<usize>("max_iter")? {
            b = b.max_iter(v);
        }
        if let Some(v) = $p.get::<f64>("reg_param")? {
            b = b.reg_param(v);
        }
        if let Some(v) = $p.get::<f64>("elastic_net_param")? {
            b = b.elastic_net_param(v);
        }
        if let Some(v) = $p.get::<f64>("tol")? {
            b = b.tol(v);
        }
        if let Some(v) = $p.get::<bool>("fit_intercept")? {
            b = b.fit_intercept(v);
        }
        if let Some(v) = $p.get::<bool>("standardization")? {
            b = b.standardization(v);
        }
        if let Some(v) = $p.get::<u64>("seed")? {
            b = b.seed(v);
        }
        let fraction = $p.get::<f64>("mini_batch_fraction")?;
        let step = $p.get::<f64>("step_size")?;
        let schedule = $p.get::<String>("step_schedule")?;
        match $p.get::<String>("solver")?.as_deref() {
            None | Some("lbfgs") | Some("l-bfgs") => {}
            Some("sgd") => {
                b = b.solver(Solver::Sgd {
                    mini_batch_fraction: fraction.unwrap_or(1.0),
                    step_size: step.unwrap_or(1.0),
                    schedule: match schedule.as_deref() {
                        None | Some("inverse_sqrt") => StepSchedule::InverseSqrt,
                        Some("constant") => StepSchedule::Constant,
                        Some(other) => {
                            return Err(parameter(format!(
                                "step_schedule must be 'inverse_sqrt' or 'constant', got '{other}'"
                            )))
                        }
                    },
                })
            }
            Some(other) => {
                return Err(parameter(format!(
                    "solver must be 'lbfgs' or 'sgd', got '{other}'"
                )))
            }
        }
        b
    }};
}

/// An estimator's stage: the estimator, its columns and its prediction column.
fn estimator_stage(estimator: Estimator, p: &mut Params<'_>) -> PyResult<Stage> {
    let mut columns = Columns::new();
    let mut explicit = false;
    if let Some(features) = p.get::<Vec<String>>("features")? {
        columns = columns.features(features);
        explicit = true;
    }
    if let Some(label) = p.get::<String>("label")? {
        columns = columns.label(label);
        explicit = true;
    }
    let mut stage = EstimatorStage::new(estimator);
    if explicit {
        stage = stage.columns(columns);
    }
    if let Some(prediction) = p.get::<String>("prediction_col")? {
        stage = stage.prediction_col(prediction);
    }
    Ok(Stage::from(stage))
}

/// Reads `input_cols` / `input` / `output` into a builder with `io_builders`.
macro_rules! io_params {
    ($builder:expr, $p:expr) => {{
        let mut b = $builder;
        if let Some(cols) = $p.get::<Vec<String>>("input_cols")? {
            b = b.input_cols(cols);
        }
        if let Some(group) = $p.get::<String>("input")? {
            b = b.input(group);
        }
        if let Some(group) = $p.get::<String>("output")? {
            b = b.output(group);
        }
        b
    }};
}

#[pymethods]
impl PyStage {
    /// The stage `kind` (`kmeans`, `linear_regression`, `logistic_regression`,
    /// `standard_scaler`, `min_max_scaler`, `imputer`, `string_indexer`, `one_hot_encoder`,
    /// `vector_assembler`) with `params`.
    #[new]
    fn new(kind: &str, params: Bound<'_, PyDict>) -> PyResult<Self> {
        let mut p = Params::new(kind, params);
        let stage = match kind {
            "kmeans" => {
                let k = p.get::<usize>("k")?.unwrap_or(2);
                let mut b = KMeans::new(k);
                if let Some(v) = p.get::<usize>("max_iter")? {
                    b = b.max_iter(v);
                }
                if let Some(v) = p.get::<f64>("tol")? {
                    b = b.tol(v);
                }
                if let Some(v) = p.get::<u64>("seed")? {
                    b = b.seed(v);
                }
                if let Some(v) = p.get::<usize>("init_steps")? {
                    b = b.init_steps(v);
                }
                if let Some(centers) = p.get::<Vec<Vec<f64>>>("init_centers")? {
                    b = b.init(KMeansInit::Centers(centers));
                } else {
                    match p.get::<String>("init")?.as_deref() {
                        None | Some("k-means||") => {}
                        Some("random") => b = b.init(KMeansInit::Random),
                        Some(other) => {
                            return Err(parameter(format!(
                                "init must be 'k-means||', 'random' or an array of centres, got '{other}'"
                            )))
                        }
                    }
                }
                // Checked now, before any data moves.
                b.check().map_err(|e| crate::errors::to_py(e.into()))?;
                estimator_stage(Estimator::KMeans(b), &mut p)?
            }
            "linear_regression" => {
                let b = linear_params!(LinearRegression::new(), p);
                b.check().map_err(|e| crate::errors::to_py(e.into()))?;
                estimator_stage(Estimator::LinearRegression(b), &mut p)?
            }
            "logistic_regression" => {
                let mut b = linear_params!(LogisticRegression::new(), p);
                if let Some(c) = p.get::<f64>("C")? {
                    b = b.inverse_strength(c);
                }
                if let Some(t) = p.get::<f64>("threshold")? {
                    b = b.threshold(t);
                }
                b = b.family(match p.get::<String>("family")?.as_deref() {
                    None | Some("auto") => Family::Auto,
                    Some("binomial") => Family::Binomial,
                    Some("multinomial") => Family::Multinomial,
                    Some(other) => {
                        return Err(parameter(format!(
                            "family must be 'auto', 'binomial' or 'multinomial', got '{other}'"
                        )))
                    }
                });
                b.check().map_err(|e| crate::errors::to_py(e.into()))?;
                estimator_stage(Estimator::LogisticRegression(b), &mut p)?
            }
            "standard_scaler" => {
                let mut b = io_params!(StandardScaler::new(), p);
                if let Some(v) = p.get::<bool>("with_mean")? {
                    b = b.with_mean(v);
                }
                if let Some(v) = p.get::<bool>("with_std")? {
                    b = b.with_std(v);
                }
                Stage::from(b)
            }
            "min_max_scaler" => {
                let mut b = io_params!(MinMaxScaler::new(), p);
                if let Some(v) = p.get::<f64>("min")? {
                    b = b.min(v);
                }
                if let Some(v) = p.get::<f64>("max")? {
                    b = b.max(v);
                }
                Stage::from(b)
            }
            "imputer" => {
                let cols = p.get::<Vec<String>>("input_cols")?.unwrap_or_default();
                let mut b = Imputer::new(cols);
                if let Some(group) = p.get::<String>("output")? {
                    b = b.output(group);
                }
                b = b.strategy(match p.get::<String>("strategy")?.as_deref() {
                    None | Some("mean") => ImputeStrategy::Mean,
                    Some("median") => ImputeStrategy::Median,
                    Some("mode") | Some("most_frequent") => ImputeStrategy::Mode,
                    Some(other) => {
                        return Err(parameter(format!(
                            "strategy must be 'mean', 'median' or 'most_frequent', got '{other}'"
                        )))
                    }
                });
                if let Some(v) = p.get::<f64>("missing_value")? {
                    b = b.missing_value(v);
                }
                Stage::from(b)
            }
            "string_indexer" => {
                let input = required(&mut p, "input_col")?;
                let output = required(&mut p, "output_col")?;
                let mut b = StringIndexer::new(input, output);
                b = b.string_order_type(match p.get::<String>("string_order")?.as_deref() {
                    None | Some("frequency_desc") => StringOrder::FrequencyDesc,
                    Some("frequency_asc") => StringOrder::FrequencyAsc,
                    Some("alphabet_asc") => StringOrder::AlphabetAsc,
                    Some("alphabet_desc") => StringOrder::AlphabetDesc,
                    Some(other) => {
                        return Err(parameter(format!(
                            "string_order must be 'frequency_desc', 'frequency_asc', 'alphabet_asc' or 'alphabet_desc', got '{other}'"
                        )))
                    }
                });
                b = b.handle_invalid(handle_invalid(p.get("handle_invalid")?)?);
                Stage::from(b)
            }
            "one_hot_encoder" => {
                let input = required(&mut p, "input_col")?;
                let output = required(&mut p, "output_col")?;
                let mut b = OneHotEncoder::new(input, output);
                if let Some(v) = p.get::<bool>("drop_last")? {
                    b = b.drop_last(v);
                }
                b = b.handle_invalid(handle_invalid(p.get("handle_invalid")?)?);
                Stage::from(b)
            }
            "vector_assembler" => {
                let inputs = p.get::<Vec<String>>("input_cols")?.unwrap_or_default();
                let mut b = VectorAssembler::new(inputs);
                if let Some(group) = p.get::<String>("output")? {
                    b = b.output(group);
                }
                b = b.handle_invalid(handle_invalid(p.get("handle_invalid")?)?);
                Stage::from(b)
            }
            other => return Err(parameter(format!("unknown stage kind '{other}'"))),
        };
        p.finish()?;
        Ok(Self { stage })
    }

    /// Fits this stage alone on `df`.
    fn fit(&self, py: Python<'_>, df: &PyDataFrame) -> PyResult<PyFittedStage> {
        let fitted = fit_pipeline(py, Pipeline::new().stage(self.stage.clone()), df)?;
        fitted
            .into_iter()
            .next()
            .ok_or_else(|| parameter("a one-stage pipeline fitted no stage"))
    }
}

fn required(p: &mut Params<'_>, key: &str) -> PyResult<String> {
    p.get::<String>(key)?
        .ok_or_else(|| parameter(format!("{} needs {key}", p.what)))
}

/// Fits `pipeline` on `df`: one fitted stage per stage.
fn fit_pipeline(
    py: Python<'_>,
    pipeline: Pipeline,
    df: &PyDataFrame,
) -> PyResult<Vec<PyFittedStage>> {
    let data = df.df.clone();
    let model = df.run(py, async move { pipeline.fit(&data).await })?;
    Ok(model
        .stages()
        .iter()
        .cloned()
        .map(|stage| PyFittedStage { stage })
        .collect())
}

/// Stages fitted in order, each on the output of the ones before.
#[pyclass(name = "Pipeline", module = "kiln._kiln", frozen)]
pub(crate) struct PyPipeline {
    stages: Vec<PyStage>,
}

#[pymethods]
impl PyPipeline {
    /// A pipeline of `stages`.
    #[new]
    fn new(stages: Vec<PyStage>) -> Self {
        Self { stages }
    }

    /// Fits every stage in order.
    fn fit(&self, py: Python<'_>, df: &PyDataFrame) -> PyResult<Vec<PyFittedStage>> {
        let pipeline = self
            .stages
            .iter()
            .fold(Pipeline::new(), |p, s| p.stage(s.stage.clone()));
        fit_pipeline(py, pipeline, df)
    }
}

/// A fitted stage: a feature transformation or a trained model with its prediction column.
#[pyclass(name = "FittedStage", module = "kiln._kiln", frozen)]
pub(crate) struct PyFittedStage {
    pub(crate) stage: FittedStage,
}

#[pymethods]
impl PyFittedStage {
    /// A stage that predicts with `model` into `prediction`.
    #[staticmethod]
    fn of_model(model: &PyModel, prediction: String) -> Self {
        Self {
            stage: FittedStage::Model {
                name: format!("python-model-{}", uuid_like()),
                model: Arc::clone(&model.model),
                prediction,
            },
        }
    }

    /// Adds the stage to `df`'s plan.
    fn transform(&self, df: &PyDataFrame) -> PyResult<PyDataFrame> {
        let out = self.stage.transform(df.df.clone()).py_err()?;
        Ok(PyDataFrame::wrap(out, df.progress()))
    }

    /// What the stage is: `model`, or the transformer's kind (`standard_scaler`, ...).
    fn kind(&self) -> &'static str {
        match &self.stage {
            FittedStage::Model { .. } => "model",
            FittedStage::Features(f) => match f {
                FeatureModel::VectorAssembler(_) => "vector_assembler",
                FeatureModel::StandardScaler(_) => "standard_scaler",
                FeatureModel::MinMaxScaler(_) => "min_max_scaler",
                FeatureModel::Imputer(_) => "imputer",
                FeatureModel::StringIndexer(_) => "string_indexer",
                FeatureModel::OneHotEncoder(_) => "one_hot_encoder",
            },
        }
    }

    /// The trained model, for a model stage.
    fn model(&self) -> Option<PyModel> {
        match &self.stage {
            FittedStage::Model { model, .. } => Some(PyModel::wrap(Arc::clone(model))),
            FittedStage::Features(_) => None,
        }
    }

    /// The fitted statistics of a feature stage, by name.
    fn attributes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        match &self.stage {
            FittedStage::Model { prediction, .. } => {
                d.set_item("prediction_col", prediction)?;
            }
            FittedStage::Features(f) => match f {
                FeatureModel::VectorAssembler(m) => {
                    d.set_item("input_cols", m.columns())?;
                    d.set_item("output", m.output())?;
                }
                FeatureModel::StandardScaler(m) => {
                    d.set_item("mean", m.mean())?;
                    d.set_item("std", m.std())?;
                    d.set_item("input_cols", m.input_cols())?;
                    d.set_item("output_cols", m.output_cols())?;
                }
                FeatureModel::MinMaxScaler(m) => {
                    d.set_item("data_min", m.data_min())?;
                    d.set_item("data_max", m.data_max())?;
                    d.set_item("output_cols", m.output_cols())?;
                }
                FeatureModel::Imputer(m) => {
                    d.set_item("surrogates", m.surrogates())?;
                    d.set_item("output_cols", m.output_cols())?;
                }
                FeatureModel::StringIndexer(m) => {
                    d.set_item("labels", m.labels())?;
                    d.set_item("output_col", m.output_col())?;
                }
                FeatureModel::OneHotEncoder(m) => {
                    d.set_item("categories", m.categories())?;
                    d.set_item("output_cols", m.output_cols())?;
                }
            },
        }
        Ok(d)
    }
}

/// A distinct suffix for the names models are registered under while they predict.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A trained model: the same files, predictions and metadata as in Rust and SQL.
#[pyclass(name = "Model", module = "kiln._kiln", frozen)]
pub(crate) struct PyModel {
    pub(crate) model: Arc<Model>,
}

impl PyModel {
    /// Wraps a model.
    pub(crate) fn wrap(model: Arc<Model>) -> Self {
        Self { model }
    }
}

#[pymethods]
impl PyModel {
    /// `kmeans`, `linear_regression` or `logistic_regression`.
    #[getter]
    fn algorithm(&self) -> &'static str {
        self.model.algorithm()
    }

    /// The feature columns, in the order prediction takes them.
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.model.feature_names().to_vec()
    }

    /// The label column, for supervised models.
    #[getter]
    fn label(&self) -> Option<String> {
        self.model.label().map(str::to_string)
    }

    /// The training summary as JSON text (as in `metadata.json`).
    fn summary_json(&self) -> String {
        self.model.summary_json().to_string()
    }

    /// The training report as JSON text (`null` for a model loaded from files).
    fn report_json(&self) -> String {
        serde_json::to_string(&self.model.report()).unwrap_or_else(|_| "null".into())
    }

    /// The hyper-parameters as JSON text (as in `metadata.json`).
    fn params_json(&self) -> String {
        self.model.params_json().to_string()
    }

    /// The weights: `{"centers": [[..]..]}`, `{"coefficients": [..], "intercept": x}` or
    /// `{"coefficients": [[..] per class], "intercepts": [..], "num_classes": k}`.
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        match self.model.kind() {
            ModelKind::KMeans(m) => d.set_item("centers", m.centers())?,
            ModelKind::LinearRegression(m) => {
                d.set_item("coefficients", m.coefficients())?;
                d.set_item("intercept", m.intercept())?;
            }
            ModelKind::LogisticRegression(m) => {
                let matrix = m.coefficient_matrix();
                let rows: Vec<Vec<f64>> = (0..matrix.rows())
                    .map(|r| (0..matrix.cols()).map(|c| matrix.col(c)[r]).collect())
                    .collect();
                d.set_item("coefficients", rows)?;
                d.set_item("intercepts", m.intercepts())?;
                d.set_item("num_classes", m.num_classes())?;
            }
        }
        Ok(d)
    }
}

/// Computes `metric` of `df`: `rmse`, `mse`, `mae`, `r2`, `accuracy`, `precision`, `recall`,
/// `f1` (with `average`: `binary`, `macro` or `weighted`), `log_loss`, `roc_auc` or
/// `silhouette` (over `features`).
#[pyfunction]
#[pyo3(signature = (df, metric, label = "label", prediction = "prediction", probability = "probability", average = "binary", features = None, seed = 42))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate(
    py: Python<'_>,
    df: &PyDataFrame,
    metric: &str,
    label: &str,
    prediction: &str,
    probability: &str,
    average: &str,
    features: Option<Vec<String>>,
    seed: u64,
) -> PyResult<f64> {
    let average = match average {
        "binary" => Average::Binary,
        "macro" => Average::Macro,
        "weighted" => Average::Weighted,
        other => {
            return Err(parameter(format!(
                "average must be 'binary', 'macro' or 'weighted', got '{other}'"
            )))
        }
    };
    let metric = match metric {
        "rmse" => Metric::Regression(RegressionMetric::Rmse),
        "mse" => Metric::Regression(RegressionMetric::Mse),
        "mae" => Metric::Regression(RegressionMetric::Mae),
        "r2" => Metric::Regression(RegressionMetric::R2),
        "accuracy" => Metric::Classification(ClassificationMetric::Accuracy),
        "precision" => Metric::Classification(ClassificationMetric::Precision(average)),
        "recall" => Metric::Classification(ClassificationMetric::Recall(average)),
        "f1" => Metric::Classification(ClassificationMetric::F1(average)),
        "log_loss" => Metric::Classification(ClassificationMetric::LogLoss),
        "roc_auc" => Metric::Classification(ClassificationMetric::AreaUnderRoc),
        "silhouette" => Metric::Silhouette,
        other => {
            return Err(parameter(format!(
                "unknown metric '{other}': use rmse, mse, mae, r2, accuracy, precision, recall, f1, log_loss, roc_auc or silhouette"
            )))
        }
    };
    let mut evaluator = match (metric, features) {
        (Metric::Silhouette, Some(f)) => Evaluator::silhouette(Columns::new().features(f)),
        (Metric::Silhouette, None) => Evaluator::silhouette(Columns::new()),
        (m, _) => Evaluator::new(m),
    };
    evaluator = evaluator
        .label_col(label)
        .prediction_col(prediction)
        .probability_col(probability)
        .seed(seed);
    let data = df.df.clone();
    df.run(py, async move { evaluator.evaluate(&data).await })
}
