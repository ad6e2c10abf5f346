//! Trained models as one type: what they were trained on and with, their files, and
//! vectorized prediction on Arrow arrays.
//!
//! ```text
//!  fit_local / engine ─▶ KMeansModel | LinearRegressionModel | LogisticRegressionModel
//!                                   │ From
//!                                   ▼
//!   save_dir / object store ◀─── Model::to_files ──▶ [(file name, bytes)]
//!   load_dir / object store ───▶ Model::from_files(get)         (validated, bit-exact)
//!                                   │
//!  feature arrays (any numeric) ─▶ Model::predict_arrays ─▶ UInt32 | Float64 (output_type())
//! ```
//!
//! # Model directory (`format_version` 1)
//!
//! A model is a directory of two files, readable without a running cluster (and by any Arrow
//! and JSON reader, e.g. `pyarrow` and `json`):
//!
//! ```text
//!  my_model/
//!  ├── metadata.json   what the model is: format, version, algorithm, input schema,
//!  │                   hyper-parameters, training summary
//!  └── weights.arrow   the numbers: an Arrow IPC *file* holding one record batch
//! ```
//!
//! `metadata.json`, for a two-class logistic regression:
//!
//! ```json
//! {
//!   "format": "kiln-model",
//!   "format_version": 1,
//!   "algorithm": "logistic_regression",
//!   "kiln_version": "0.1.0",
//!   "features": [{ "name": "x0", "type": "double" }, { "name": "x1", "type": "double" }],
//!   "label": "y",
//!   "model": { "num_classes": 2, "multinomial": false },
//!   "params": { "max_iter": 100, "reg_param": 0.0, "elastic_net_param": 0.0, "tol": 1e-6,
//!               "fit_intercept": true, "standardization": true, "solver": "l-bfgs",
//!               "seed": 0, "family": "auto", "threshold": 0.5 },
//!   "summary": { "iterations": 7, "objective_history": [0.69, 0.41],
//!                "final_objective": 0.41, "stop_reason": "converged" }
//! }
//! ```
//!
//! - `algorithm` is [`Model::algorithm`]: `kmeans`, `linear_regression` or
//!   `logistic_regression`. `label` is `null` for k-means.
//! - `model` holds what fixes the weights' shape: k-means `{"num_clusters": k}`, logistic
//!   regression `{"num_classes": K, "multinomial": bool}`, linear regression `{}`.
//! - `params` is [`Model::params_json`] (`null` for a k-means model built from its parts),
//!   `summary` is [`Model::summary_json`]: k-means `{"iterations", "cost",
//!   "cost_history"}`, linear models `{"iterations", "objective_history", "final_objective",
//!   "stop_reason"}` (`final_objective`, the last entry of the history, is for readers and
//!   ignored on load). A non-finite summary value is written as the string `"NaN"`,
//!   `"Infinity"` or `"-Infinity"` (JSON has no such numbers).
//! - Floats are written in their shortest round-tripping form, so a model loads back bit for
//!   bit. Readers ignore fields they do not know; a change an older reader would misread
//!   raises `format_version`, and a reader refuses versions newer than
//!   [`FORMAT_VERSION`].
//!
//! `weights.arrow`, one record batch, no nulls, every value finite:
//!
//! | algorithm | columns | rows |
//! |---|---|---|
//! | `kmeans` | one `Float64` per feature, named as the feature | one per centre, in cluster index order |
//! | `linear_regression` | `name: Utf8`, `coefficient: Float64` | one per feature (`name` = the feature), then `(intercept)` |
//! | `logistic_regression` | `name: Utf8`, then `class_1: Float64` (binomial) or `class_0 .. class_{K-1}` (multinomial) | as linear regression |
//!
//! A binomial logistic model's single column is the margin of class 1,
//! `P(y = 1 | x) = σ(wᵀx + b)`; a multinomial model has one column per class,
//! `P(y = k | x) = softmax(Wx + b)ₖ`.
//!
//! [`Model::to_files`] lists `weights.arrow` before `metadata.json`: writers store them in
//! that order, so a directory with a `metadata.json` is complete.
//!
//! # Prediction
//!
//! [`Model::predict_arrays`] takes the feature columns in [`Model::feature_names`] order, of
//! any numeric Arrow type, copies them once into a dense column-major block and runs the
//! model's own vectorized `predict` on it. A row with a null or NaN feature gets a null
//! prediction. [`Model::predict_proba_arrays`] gives a logistic model's class probabilities as
//! one `FixedSizeList<Float64>` of `K` values per row (Spark's `probability` vector).
//!
//! # Adding a model
//!
//! Add a variant and a `From` impl; the compiler then lists every `match` to extend (the
//! accessors here, the metadata in `metadata.rs`, the weights layout in `weights.rs`).
//!
//! # Example
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Arc;
//!
//! use arrow::array::{Array, ArrayRef, Float32Array, Int32Array, UInt32Array};
//! use kiln_ml::cluster::kmeans::KMeans;
//! use kiln_ml::data::{DenseMatrix, Features};
//! use kiln_ml::model::Model;
//! use kiln_ml::{fit_local, CachedPartition};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rows = [[0.0, 0.0], [0.2, 0.0], [0.0, 0.2], [9.0, 9.0], [9.2, 9.0], [9.0, 9.2]];
//! let flat: Vec<f64> = rows.iter().flatten().copied().collect();
//! let x = DenseMatrix::from_row_major(6, 2, &flat).map_err(|n| format!("{n} values"))?;
//! let partition = CachedPartition::new(0, Features::F64(x), None)?;
//! let names = vec!["x".to_string(), "y".to_string()];
//! let model: Model = fit_local(KMeans::new(2).build()?, &[partition], &names, None)?.into();
//!
//! // The files, and the same model back from them.
//! let files: HashMap<String, Vec<u8>> = model.to_files()?.into_iter().collect();
//! let loaded = Model::from_files(|name| files.get(name).cloned())?;
//! assert_eq!(loaded, model);
//! assert_eq!(loaded.algorithm(), "kmeans");
//!
//! // Prediction on Arrow columns of any numeric type; a null feature gives a null row.
//! let columns: Vec<ArrayRef> = vec![
//!     Arc::new(Int32Array::from(vec![Some(0), Some(9), None])),
//!     Arc::new(Float32Array::from(vec![0.1, 9.1, 0.0])),
//! ];
//! let clusters = loaded.predict_arrays(&columns)?;
//! let clusters = clusters.as_any().downcast_ref::<UInt32Array>().ok_or("not UInt32")?;
//! assert_ne!(clusters.value(0), clusters.value(1));
//! assert!(clusters.is_null(2));
//! # Ok(())
//! # }
//! ```

mod files;
mod metadata;
mod predict;
mod transform;
mod weights;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde_json::Value;

pub use files::MODEL_FILES;
pub use transform::{InputTransform, TransformOutput, TRANSFORM_FILE};

use crate::cluster::kmeans::KMeansModel;
use crate::linear::{LinearRegressionModel, LogisticRegressionModel};

/// The `format` of every model's `metadata.json`.
pub const FORMAT: &str = "kiln-model";
/// The newest `format_version` this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// The metadata file of a model directory.
pub const METADATA_FILE: &str = "metadata.json";
/// The weights file of a model directory.
pub const WEIGHTS_FILE: &str = "weights.arrow";
/// The `name` of the intercept row in a linear model's weights.
pub const INTERCEPT_ROW: &str = "(intercept)";

/// A trained model of any algorithm: what the engine stores, loads and predicts with — the
/// algorithm's own model ([`ModelKind`]) and, for a model trained with one, the
/// [`InputTransform`] that computes its features from raw columns.
#[derive(Debug, Clone)]
pub struct Model {
    kind: ModelKind,
    transform: Option<Arc<InputTransform>>,
    report: Option<Arc<crate::report::TrainingReport>>,
}

/// Two models are equal when they predict alike: the training report (times, rates) is not
/// compared.
impl PartialEq for Model {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.transform == other.transform
    }
}

/// The algorithm-specific part of a [`Model`].
#[derive(Debug, Clone, PartialEq)]
pub enum ModelKind {
    /// k-means clustering; predicts a cluster index.
    KMeans(KMeansModel),
    /// Linear regression; predicts a value.
    LinearRegression(LinearRegressionModel),
    /// Logistic regression; predicts a class index (and class probabilities).
    LogisticRegression(LogisticRegressionModel),
}

impl Model {
    /// The algorithm's own model.
    pub fn kind(&self) -> &ModelKind {
        &self.kind
    }

    /// The algorithm's own model, by value.
    pub fn into_kind(self) -> ModelKind {
        self.kind
    }

    /// The transform that computes the model's features from raw columns, when the model was
    /// trained with one (SQL `TRANSFORM`). Every way of predicting applies it first.
    pub fn transform(&self) -> Option<&Arc<InputTransform>> {
        self.transform.as_ref()
    }

    /// The model with `transform` computing its features (replacing any it had).
    pub fn with_transform(mut self, transform: Option<Arc<InputTransform>>) -> Self {
        self.transform = transform;
        self
    }

    /// What the fit that made this model measured (see [`crate::TrainingReport`]); `None` for
    /// a model built from its parts (a model's files keep its report).
    pub fn report(&self) -> Option<&crate::report::TrainingReport> {
        self.report.as_deref()
    }

    /// The model with its training report.
    pub fn with_report(mut self, report: Option<crate::report::TrainingReport>) -> Self {
        self.report = report.map(Arc::new);
        self
    }

    /// The algorithm's name in model files and SQL: `kmeans`, `linear_regression` or
    /// `logistic_regression`.
    pub fn algorithm(&self) -> &'static str {
        match &self.kind {
            ModelKind::KMeans(_) => "kmeans",
            ModelKind::LinearRegression(_) => "linear_regression",
            ModelKind::LogisticRegression(_) => "logistic_regression",
        }
    }

    /// The feature columns the model was trained on, in the order prediction takes them.
    pub fn feature_names(&self) -> &[String] {
        match &self.kind {
            ModelKind::KMeans(m) => m.feature_names(),
            ModelKind::LinearRegression(m) => m.feature_names(),
            ModelKind::LogisticRegression(m) => m.feature_names(),
        }
    }

    /// The label column trained on; `None` for unsupervised models.
    pub fn label(&self) -> Option<&str> {
        match &self.kind {
            ModelKind::KMeans(_) => None,
            ModelKind::LinearRegression(m) => Some(m.label()),
            ModelKind::LogisticRegression(m) => Some(m.label()),
        }
    }

    /// Number of feature columns prediction takes.
    pub fn num_features(&self) -> usize {
        self.feature_names().len()
    }

    /// What training recorded, as written in `metadata.json`'s `summary`: k-means
    /// `{"iterations", "cost", "cost_history"}`; linear models `{"iterations",
    /// "objective_history", "final_objective", "stop_reason"}`. Non-finite values are the
    /// strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
    pub fn summary_json(&self) -> Value {
        metadata::summary_json(self)
    }

    /// The hyper-parameters the model was trained with, by the registry's names and in its
    /// order ([`crate::registry`]); empty for a k-means model built from its parts without
    /// them. What `DESCRIBE MODEL` lists.
    pub fn param_values(&self) -> Vec<(&'static str, crate::params::ParamValue)> {
        match &self.kind {
            ModelKind::KMeans(m) => m.params().map(|p| p.values()).unwrap_or_default(),
            ModelKind::LinearRegression(m) => m.params().values(),
            ModelKind::LogisticRegression(m) => m.params().values(),
        }
    }

    /// The hyper-parameters the model was trained with, as written in `metadata.json`'s
    /// `params`; `null` for a k-means model built from its parts without them.
    pub fn params_json(&self) -> Value {
        metadata::params_json(self)
    }
}

impl From<ModelKind> for Model {
    fn from(kind: ModelKind) -> Self {
        Model {
            kind,
            transform: None,
            report: None,
        }
    }
}

impl From<KMeansModel> for Model {
    fn from(model: KMeansModel) -> Self {
        ModelKind::KMeans(model).into()
    }
}

impl From<LinearRegressionModel> for Model {
    fn from(model: LinearRegressionModel) -> Self {
        ModelKind::LinearRegression(model).into()
    }
}

impl From<LogisticRegressionModel> for Model {
    fn from(model: LogisticRegressionModel) -> Self {
        ModelKind::LogisticRegression(model).into()
    }
}
