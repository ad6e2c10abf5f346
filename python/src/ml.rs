//! Kiln's estimators, transformers, pipelines, models and evaluators for Python: the Rust
//! ones (`kiln::ml`), configured from a dict of parameters named as the Rust builders name
//! them. `kiln/ml.py` translates scikit-learn's names into these.

use std::collections::BTreeSet;
use std::sync::Arc;

use kiln::ml::registry::{self, ParamValue as RegistryValue};
use kiln::ml::{
    Average, ClassificationMetric, Columns, Estimator, EstimatorStage, Evaluator, FeatureModel,
    FittedStage, HandleInvalid, ImputeStrategy, Imputer, Metric, MinMaxScaler, Model, ModelKind,
    OneHotEncoder, Pipeline, RegressionMetric, Stage, StandardScaler, StringIndexer, StringOrder,
    VectorAssembler,
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

/// The keys an estimator stage reads itself; every other key is the algorithm's parameter.
const COLUMN_KEYS: [&str; 3] = ["features", "label", "prediction_col"];

/// Every parameter of `p` but the columns, as the registry takes them (`None` values left out,
/// as if not given).
fn registry_values(p: &mut Params<'_>) -> PyResult<Vec<(String, RegistryValue)>> {
    let mut values = Vec::new();
    for (key, value) in p.dict.iter() {
        let key: String = key.extract()?;
        if COLUMN_KEYS.contains(&key.as_str()) {
            continue;
        }
        p.read.insert(key.clone());
        if value.is_none() {
            continue;
        }
        let converted = if let Ok(b) = value.cast::<pyo3::types::PyBool>() {
            RegistryValue::Bool(b.is_true())
        } else if let Ok(i) = value.extract::<i64>() {
            RegistryValue::Integer(i)
        } else if let Ok(f) = value.extract::<f64>() {
            RegistryValue::Float(f)
        } else if let Ok(t) = value.extract::<String>() {
            RegistryValue::Text(t)
        } else if let Ok(rows) = value.extract::<Vec<Vec<f64>>>() {
            RegistryValue::Matrix(rows)
        } else {
            let type_name = value
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            return Err(parameter(format!(
                "{}: parameter {key} has the wrong type ({type_name})",
                p.what
            )));
        };
        values.push((key, converted));
    }
    Ok(values)
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
    /// The stage `kind` (a registered algorithm: `kmeans`, `linear_regression`,
    /// `logistic_regression`, ...; or `standard_scaler`, `min_max_scaler`, `imputer`, `string_indexer`, `one_hot_encoder`,
    /// `vector_assembler`) with `params`.
    #[new]
    fn new(kind: &str, params: Bound<'_, PyDict>) -> PyResult<Self> {
        let mut p = Params::new(kind, params);
        let stage = match kind {
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
            other => match registry::find(other) {
                Some(spec) => {
                    let values = registry_values(&mut p)?;
                    // Names, types and ranges checked now, before any data moves.
                    let estimator = spec
                        .estimator(values)
                        .map_err(|e| crate::errors::to_py(e.into()))?;
                    estimator_stage(estimator, &mut p)?
                }
                None => {
                    return Err(parameter(format!(
                        "unknown stage kind '{other}'; algorithms: {}",
                        registry::names()
                    )))
                }
            },
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

/// Every registered algorithm as a dict: `name`, `aliases`, `task`, `doc` and `params` (each
/// with `name`, `type`, `default`, `doc`). The registry SQL's `SHOW ALGORITHMS` lists.
#[pyfunction]
pub(crate) fn algorithms(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    registry::ALGORITHMS
        .iter()
        .map(|a| {
            let d = PyDict::new(py);
            d.set_item("name", a.name)?;
            d.set_item("aliases", a.aliases.to_vec())?;
            d.set_item("task", a.task.as_str())?;
            d.set_item("doc", a.doc)?;
            let params = a
                .params
                .iter()
                .map(|p| {
                    let q = PyDict::new(py);
                    q.set_item("name", p.name)?;
                    q.set_item("type", p.ty.describe().into_owned())?;
                    q.set_item("default", p.default)?;
                    q.set_item("doc", p.doc)?;
                    Ok(q)
                })
                .collect::<PyResult<Vec<_>>>()?;
            d.set_item("params", params)?;
            Ok(d)
        })
        .collect()
}
