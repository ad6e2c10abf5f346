//! `metadata.json`: writing it from a model, and reading it back with every check that does
//! not need the weights.
//!
//! The JSON shapes here are the file format, kept apart from the models' own serde forms so
//! that renaming a Rust field or variant never changes a file.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};

use super::{Model, ModelKind, FORMAT, FORMAT_VERSION, METADATA_FILE};
use crate::cluster::kmeans::{KMeans, KMeansInit, KMeansValidParams};
use crate::error::{MlError, Result};
use crate::linear::{
    Family, LinearRegression, LogisticRegression, Solver, StepSchedule, TrainingSummary,
    ValidLinearRegression, ValidLogisticRegression,
};
use crate::optim::StopReason;

/// The algorithms this build reads, as named in files.
const ALGORITHMS: [&str; 3] = ["kmeans", "linear_regression", "logistic_regression"];

/// The only feature type of `format_version` 1.
const DOUBLE: &str = "double";

/// An error in `metadata.json`.
pub(super) fn bad(reason: impl Into<String>) -> MlError {
    MlError::ModelFile {
        path: METADATA_FILE.to_string(),
        reason: reason.into(),
    }
}

/// An `f64` that survives JSON whatever its value: finite values are numbers, the others the
/// strings `"NaN"`, `"Infinity"` and `"-Infinity"`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct JsonF64(f64);

impl Serialize for JsonF64 {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.serialize_f64(v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if v > 0.0 {
            s.serialize_str("Infinity")
        } else {
            s.serialize_str("-Infinity")
        }
    }
}

impl<'de> Deserialize<'de> for JsonF64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Number(f64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(JsonF64(v)),
            Repr::Text(t) => match t.as_str() {
                "NaN" => Ok(JsonF64(f64::NAN)),
                "Infinity" => Ok(JsonF64(f64::INFINITY)),
                "-Infinity" => Ok(JsonF64(f64::NEG_INFINITY)),
                _ => Err(serde::de::Error::custom(format!(
                    "expected a number, \"NaN\", \"Infinity\" or \"-Infinity\", got \"{t}\""
                ))),
            },
        }
    }
}

fn to_json_f64s(values: &[f64]) -> Vec<JsonF64> {
    values.iter().copied().map(JsonF64).collect()
}

fn from_json_f64s(values: Vec<JsonF64>) -> Vec<f64> {
    values.into_iter().map(|v| v.0).collect()
}

/// One entry of `features`.
#[derive(Debug, Serialize, Deserialize)]
struct FeatureJson {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
}

/// The whole file, once `format` and `format_version` are known to be readable.
#[derive(Debug, Serialize, Deserialize)]
struct MetadataJson {
    format: String,
    format_version: u64,
    algorithm: String,
    #[serde(default)]
    kiln_version: Option<String>,
    features: Vec<FeatureJson>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    model: Value,
    #[serde(default)]
    params: Value,
    summary: Value,
    /// What the fit that made the model measured (absent for a model built from its parts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    training_report: Option<Value>,
}

// ---- params ----------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
struct KMeansParamsJson {
    k: usize,
    max_iter: usize,
    tol: f64,
    seed: u64,
    /// `"k-means||"`, `"random"` or `{"centers": [[..], ..]}`.
    init: Value,
    init_steps: usize,
}

#[derive(Debug, Serialize, Deserialize)]
enum SolverJson {
    #[serde(rename = "l-bfgs")]
    Lbfgs,
    #[serde(rename = "sgd")]
    Sgd {
        mini_batch_fraction: f64,
        step_size: f64,
        schedule: ScheduleJson,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ScheduleJson {
    Constant,
    InverseSqrt,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FamilyJson {
    Auto,
    Binomial,
    Multinomial,
}

/// Parameters of both linear models; `family` and `threshold` are logistic regression's.
#[derive(Debug, Serialize, Deserialize)]
struct LinearParamsJson {
    max_iter: usize,
    reg_param: f64,
    elastic_net_param: f64,
    tol: f64,
    fit_intercept: bool,
    standardization: bool,
    solver: SolverJson,
    seed: u64,
    /// scikit-learn's `C`, when the strength was given that way (`λ = 1 / (n · C)`).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "C")]
    inverse_strength: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    family: Option<FamilyJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<f64>,
}

/// The common getters both validated linear parameter types have.
macro_rules! linear_params_json {
    ($p:expr, $family:expr, $threshold:expr) => {
        LinearParamsJson {
            max_iter: $p.max_iter(),
            reg_param: $p.reg_param(),
            elastic_net_param: $p.elastic_net_param(),
            tol: $p.tol(),
            fit_intercept: $p.fit_intercept(),
            standardization: $p.standardization(),
            solver: match $p.solver() {
                Solver::Lbfgs => SolverJson::Lbfgs,
                Solver::Sgd {
                    mini_batch_fraction,
                    step_size,
                    schedule,
                } => SolverJson::Sgd {
                    mini_batch_fraction,
                    step_size,
                    schedule: match schedule {
                        StepSchedule::Constant => ScheduleJson::Constant,
                        StepSchedule::InverseSqrt => ScheduleJson::InverseSqrt,
                    },
                },
            },
            seed: $p.seed(),
            inverse_strength: $p.inverse_strength(),
            family: $family,
            threshold: $threshold,
        }
    };
}

/// The builder calls both linear builders share.
macro_rules! apply_linear_params {
    ($builder:expr, $p:expr) => {
        $builder
            .max_iter($p.max_iter)
            .reg_param($p.reg_param)
            .elastic_net_param($p.elastic_net_param)
            .tol($p.tol)
            .fit_intercept($p.fit_intercept)
            .standardization($p.standardization)
            .solver(match $p.solver {
                SolverJson::Lbfgs => Solver::Lbfgs,
                SolverJson::Sgd {
                    mini_batch_fraction,
                    step_size,
                    schedule,
                } => Solver::Sgd {
                    mini_batch_fraction,
                    step_size,
                    schedule: match schedule {
                        ScheduleJson::Constant => StepSchedule::Constant,
                        ScheduleJson::InverseSqrt => StepSchedule::InverseSqrt,
                    },
                },
            })
            .seed($p.seed)
            .inverse_strength_opt($p.inverse_strength)
    };
}

fn kmeans_params_json(p: &KMeansValidParams) -> KMeansParamsJson {
    KMeansParamsJson {
        k: p.k(),
        max_iter: p.max_iter(),
        tol: p.tol(),
        seed: p.seed(),
        init: match p.init() {
            KMeansInit::KMeansParallel => json!("k-means||"),
            KMeansInit::Random => json!("random"),
            KMeansInit::Centers(centers) => json!({ "centers": centers }),
        },
        init_steps: p.init_steps(),
    }
}

fn linear_regression_params_json(p: &ValidLinearRegression) -> LinearParamsJson {
    linear_params_json!(p, None, None)
}

fn logistic_regression_params_json(p: &ValidLogisticRegression) -> LinearParamsJson {
    let family = match p.family() {
        Family::Auto => FamilyJson::Auto,
        Family::Binomial => FamilyJson::Binomial,
        Family::Multinomial => FamilyJson::Multinomial,
    };
    linear_params_json!(p, Some(family), Some(p.threshold()))
}

/// `value` as JSON; the types here are plain structs of numbers, strings and lists, which
/// serde_json always encodes.
fn to_value(value: impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// See [`Model::params_json`].
pub(super) fn params_json(model: &Model) -> Value {
    match model.kind() {
        ModelKind::KMeans(m) => m
            .params()
            .map_or(Value::Null, |p| to_value(kmeans_params_json(p))),
        ModelKind::LinearRegression(m) => to_value(linear_regression_params_json(m.params())),
        ModelKind::LogisticRegression(m) => to_value(logistic_regression_params_json(m.params())),
    }
}

// ---- summary ---------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
struct KMeansSummaryJson {
    iterations: usize,
    cost: JsonF64,
    cost_history: Vec<JsonF64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StopJson {
    Converged,
    GradientZero,
    MaxIter,
    NoProgress,
}

#[derive(Debug, Serialize, Deserialize)]
struct LinearSummaryJson {
    iterations: usize,
    objective_history: Vec<JsonF64>,
    /// For readers only: the last entry of `objective_history`.
    #[serde(skip_deserializing)]
    final_objective: Option<JsonF64>,
    stop_reason: StopJson,
}

fn linear_summary_json(s: &TrainingSummary) -> LinearSummaryJson {
    LinearSummaryJson {
        iterations: s.total_iterations(),
        objective_history: to_json_f64s(s.objective_history()),
        final_objective: s.objective_history().last().copied().map(JsonF64),
        stop_reason: match s.stop_reason() {
            StopReason::Converged => StopJson::Converged,
            StopReason::GradientZero => StopJson::GradientZero,
            StopReason::MaxIter => StopJson::MaxIter,
            StopReason::NoProgress => StopJson::NoProgress,
        },
    }
}

fn training_summary(s: LinearSummaryJson) -> TrainingSummary {
    let stop = match s.stop_reason {
        StopJson::Converged => StopReason::Converged,
        StopJson::GradientZero => StopReason::GradientZero,
        StopJson::MaxIter => StopReason::MaxIter,
        StopJson::NoProgress => StopReason::NoProgress,
    };
    TrainingSummary::new(from_json_f64s(s.objective_history), s.iterations, stop)
}

/// See [`Model::summary_json`].
pub(super) fn summary_json(model: &Model) -> Value {
    match model.kind() {
        ModelKind::KMeans(m) => to_value(KMeansSummaryJson {
            iterations: m.iterations(),
            cost: JsonF64(m.cost()),
            cost_history: to_json_f64s(m.cost_history()),
        }),
        ModelKind::LinearRegression(m) => to_value(linear_summary_json(m.summary())),
        ModelKind::LogisticRegression(m) => to_value(linear_summary_json(m.summary())),
    }
}

// ---- model shape -----------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
struct KMeansShapeJson {
    num_clusters: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct LogisticShapeJson {
    num_classes: usize,
    multinomial: bool,
}

fn shape_json(model: &Model) -> Value {
    match model.kind() {
        ModelKind::KMeans(m) => to_value(KMeansShapeJson {
            num_clusters: m.k(),
        }),
        ModelKind::LinearRegression(_) => json!({}),
        ModelKind::LogisticRegression(m) => to_value(LogisticShapeJson {
            num_classes: m.num_classes(),
            multinomial: m.is_multinomial(),
        }),
    }
}

// ---- the file --------------------------------------------------------------------------

/// `metadata.json` of `model`, pretty-printed.
///
/// # Errors
/// [`MlError::Internal`] if serde_json refuses a value (it accepts every value written here).
pub(super) fn to_bytes(model: &Model) -> Result<Vec<u8>> {
    let file = MetadataJson {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        algorithm: model.algorithm().to_string(),
        kiln_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        features: model
            .feature_names()
            .iter()
            .map(|name| FeatureJson {
                name: name.clone(),
                data_type: DOUBLE.to_string(),
            })
            .collect(),
        label: model.label().map(str::to_string),
        model: shape_json(model),
        params: model.params_json(),
        summary: model.summary_json(),
        training_report: model
            .report()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| MlError::Internal(format!("metadata.json: {e}")))?,
    };
    let mut bytes = serde_json::to_vec_pretty(&file)
        .map_err(|e| MlError::Internal(format!("metadata.json: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The algorithm of a model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    KMeans,
    LinearRegression,
    LogisticRegression,
}

/// A `metadata.json` that passed the checks every algorithm shares.
#[derive(Debug)]
pub(super) struct Metadata {
    pub(super) kind: Kind,
    pub(super) features: Vec<String>,
    label: Option<String>,
    model: Value,
    params: Value,
    summary: Value,
    /// The training report, when the file has one.
    pub(super) report: Option<crate::report::TrainingReport>,
}

/// What a k-means `metadata.json` says.
pub(super) struct KMeansMetadata {
    pub(super) features: Vec<String>,
    pub(super) num_clusters: usize,
    pub(super) params: Option<KMeansValidParams>,
    pub(super) cost: f64,
    pub(super) iterations: usize,
    pub(super) cost_history: Vec<f64>,
}

/// What a linear regression `metadata.json` says.
pub(super) struct LinearRegressionMetadata {
    pub(super) features: Vec<String>,
    pub(super) label: String,
    pub(super) params: ValidLinearRegression,
    pub(super) summary: TrainingSummary,
}

/// What a logistic regression `metadata.json` says.
pub(super) struct LogisticRegressionMetadata {
    pub(super) features: Vec<String>,
    pub(super) label: String,
    pub(super) num_classes: usize,
    pub(super) multinomial: bool,
    pub(super) params: ValidLogisticRegression,
    pub(super) summary: TrainingSummary,
}

/// Reads `metadata.json`: JSON, the `format`, a readable `format_version`, a known algorithm
/// and a well-formed input schema.
///
/// # Errors
/// [`MlError::ModelFile`] for `metadata.json` saying what is wrong.
pub(super) fn parse(bytes: &[u8]) -> Result<Metadata> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(fields) = &value else {
        return Err(bad("not a JSON object: not a Kiln model's metadata"));
    };
    match fields.get("format") {
        Some(Value::String(format)) if format == FORMAT => {}
        Some(other) => {
            return Err(bad(format!(
                "format is {other}, expected \"{FORMAT}\": not a Kiln model"
            )))
        }
        None => {
            return Err(bad(format!(
                "no \"format\" field (expected \"{FORMAT}\"): not a Kiln model"
            )))
        }
    }
    let version = fields.get("format_version");
    match version.and_then(Value::as_u64) {
        Some(v) if v > FORMAT_VERSION => {
            return Err(bad(format!(
                "written by a newer Kiln: format_version {v}, this build reads {FORMAT_VERSION}"
            )))
        }
        Some(v) if v >= 1 => {}
        _ => {
            return Err(bad(format!(
                "format_version must be an integer from 1 to {FORMAT_VERSION}, got {}",
                version.map_or_else(|| "nothing".to_string(), Value::to_string)
            )))
        }
    }
    let file: MetadataJson = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    let kind = match file.algorithm.as_str() {
        "kmeans" => Kind::KMeans,
        "linear_regression" => Kind::LinearRegression,
        "logistic_regression" => Kind::LogisticRegression,
        other => {
            return Err(bad(format!(
                "unknown algorithm \"{other}\"; this build reads {}",
                ALGORITHMS.join(", ")
            )))
        }
    };
    if file.features.is_empty() {
        return Err(bad("features is empty: a model needs at least one feature"));
    }
    let mut features = Vec::with_capacity(file.features.len());
    for (j, f) in file.features.into_iter().enumerate() {
        if f.data_type != DOUBLE {
            return Err(bad(format!(
                "feature {j} ('{}') has type \"{}\"; this build reads \"{DOUBLE}\" features",
                f.name, f.data_type
            )));
        }
        if features.contains(&f.name) {
            return Err(bad(format!("feature '{}' is listed twice", f.name)));
        }
        features.push(f.name);
    }
    let report = file
        .training_report
        .map(|r| section(r, "training_report"))
        .transpose()?;
    Ok(Metadata {
        kind,
        features,
        label: file.label,
        model: file.model,
        params: file.params,
        summary: file.summary,
        report,
    })
}

/// `value` as a `T`, or an error naming the `section` of `metadata.json`.
fn section<T: for<'de> Deserialize<'de>>(value: Value, section: &str) -> Result<T> {
    serde_json::from_value(value).map_err(|e| bad(format!("{section}: {e}")))
}

fn params_error(e: MlError) -> MlError {
    bad(format!("params: {e}"))
}

impl Metadata {
    fn require_label(&mut self, algorithm: &str) -> Result<String> {
        self.label
            .take()
            .ok_or_else(|| bad(format!("label is missing: a {algorithm} model has one")))
    }

    /// The k-means parts.
    ///
    /// # Errors
    /// [`MlError::ModelFile`] for a `model`, `params` or `summary` section that is malformed
    /// or inconsistent.
    pub(super) fn kmeans(self) -> Result<KMeansMetadata> {
        let shape: KMeansShapeJson = section(self.model, "model")?;
        if shape.num_clusters == 0 {
            return Err(bad("model: num_clusters must be >= 1, got 0"));
        }
        let params = match self.params {
            Value::Null => None,
            value => {
                let p: KMeansParamsJson = section(value, "params")?;
                let init = match &p.init {
                    Value::String(s) if s == "k-means||" => KMeansInit::KMeansParallel,
                    Value::String(s) if s == "random" => KMeansInit::Random,
                    Value::Object(o) if o.contains_key("centers") => {
                        KMeansInit::Centers(section(o["centers"].clone(), "params.init.centers")?)
                    }
                    other => {
                        return Err(bad(format!(
                            "params.init is {other}; expected \"k-means||\", \"random\" or \
                             {{\"centers\": [[..], ..]}}"
                        )))
                    }
                };
                let valid = KMeans::new(p.k)
                    .max_iter(p.max_iter)
                    .tol(p.tol)
                    .seed(p.seed)
                    .init(init)
                    .init_steps(p.init_steps)
                    .check()
                    .map_err(params_error)?;
                if valid.k() != shape.num_clusters {
                    return Err(bad(format!(
                        "params.k is {} but model.num_clusters is {}",
                        valid.k(),
                        shape.num_clusters
                    )));
                }
                Some(valid)
            }
        };
        let summary: KMeansSummaryJson = section(self.summary, "summary")?;
        Ok(KMeansMetadata {
            features: self.features,
            num_clusters: shape.num_clusters,
            params,
            cost: summary.cost.0,
            iterations: summary.iterations,
            cost_history: from_json_f64s(summary.cost_history),
        })
    }

    /// The linear regression parts.
    ///
    /// # Errors
    /// [`MlError::ModelFile`] for a missing label or a malformed `params` or `summary`.
    pub(super) fn linear_regression(mut self) -> Result<LinearRegressionMetadata> {
        let label = self.require_label("linear_regression")?;
        let p: LinearParamsJson = section(self.params, "params")?;
        let params = apply_linear_params!(LinearRegression::new(), p)
            .check()
            .map_err(params_error)?;
        let summary: LinearSummaryJson = section(self.summary, "summary")?;
        Ok(LinearRegressionMetadata {
            features: self.features,
            label,
            params,
            summary: training_summary(summary),
        })
    }

    /// The logistic regression parts.
    ///
    /// # Errors
    /// [`MlError::ModelFile`] for a missing label, fewer than 2 classes, a binomial model of
    /// more than 2, or a malformed `params` or `summary`.
    pub(super) fn logistic_regression(mut self) -> Result<LogisticRegressionMetadata> {
        let label = self.require_label("logistic_regression")?;
        let shape: LogisticShapeJson = section(self.model, "model")?;
        if shape.num_classes < 2 {
            return Err(bad(format!(
                "model: num_classes must be >= 2, got {}",
                shape.num_classes
            )));
        }
        if !shape.multinomial && shape.num_classes != 2 {
            return Err(bad(format!(
                "model: a binomial model has 2 classes, num_classes is {}",
                shape.num_classes
            )));
        }
        let p: LinearParamsJson = section(self.params, "params")?;
        let family = match p.family {
            Some(FamilyJson::Auto) => Family::Auto,
            Some(FamilyJson::Binomial) => Family::Binomial,
            Some(FamilyJson::Multinomial) => Family::Multinomial,
            None => return Err(bad("params: missing field `family`")),
        };
        let threshold = p
            .threshold
            .ok_or_else(|| bad("params: missing field `threshold`"))?;
        let params = apply_linear_params!(LogisticRegression::new(), p)
            .family(family)
            .threshold(threshold)
            .check()
            .map_err(params_error)?;
        let summary: LinearSummaryJson = section(self.summary, "summary")?;
        Ok(LogisticRegressionMetadata {
            features: self.features,
            label,
            num_classes: shape.num_classes,
            multinomial: shape.multinomial,
            params,
            summary: training_summary(summary),
        })
    }
}
