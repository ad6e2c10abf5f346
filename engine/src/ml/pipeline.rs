//! [`Pipeline`]: feature stages and an estimator fitted in order, giving a [`PipelineModel`]
//! that transforms new data the same way.
//!
//! ```text
//!  Pipeline::fit(df):  for each stage: fit on the current frame, then (except after the
//!                      last stage) transform the frame with the fitted stage
//!  PipelineModel::transform(df): every fitted stage's transform, in order — one lazy plan
//! ```
//!
//! Feature groups (see [`features`](super::features)) flow from stage to stage: an estimator
//! stage trains on the `features` group when one exists, else on every numeric column but the
//! label, unless its [`Columns`] say otherwise.

use std::sync::Arc;

use kiln_ml::cluster::kmeans::KMeans;
use kiln_ml::linear::{LinearRegression, LogisticRegression};
use kiln_ml::Model;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::columns::Columns;
use super::features::{
    FeatureModel, Groups, Imputer, MinMaxScaler, OneHotEncoder, StandardScaler, StringIndexer,
    VectorAssembler, FEATURES,
};
use super::fit::{fit_estimator, Estimator};
use crate::context::short_id;
use crate::dataframe::DataFrame;
use crate::error::{EngineError, Result};
use crate::session::Session;

/// An estimator with the columns it trains on and the column its predictions go to.
#[derive(Debug, Clone)]
pub struct EstimatorStage {
    estimator: Estimator,
    columns: Option<Columns>,
    prediction: String,
}

impl EstimatorStage {
    /// The estimator, training on the `features` group (or the default columns) and
    /// predicting into `prediction`.
    pub fn new(estimator: Estimator) -> Self {
        Self {
            estimator,
            columns: None,
            prediction: "prediction".to_string(),
        }
    }

    /// Train on these columns instead.
    pub fn columns(mut self, columns: Columns) -> Self {
        self.columns = Some(columns);
        self
    }

    /// The prediction column (default `prediction`).
    pub fn prediction_col(mut self, name: impl Into<String>) -> Self {
        self.prediction = name.into();
        self
    }

    async fn fit(&self, df: &DataFrame, groups: &Groups) -> Result<Model> {
        let columns = match (&self.columns, groups.get(FEATURES)) {
            (Some(c), _) => c.clone(),
            (None, Some(features)) => Columns::new().features(features.iter().cloned()),
            (None, None) => Columns::new(),
        };
        fit_estimator(&self.estimator, df, columns).await
    }
}

/// One stage of a [`Pipeline`].
#[derive(Debug, Clone)]
pub enum Stage {
    /// See [`VectorAssembler`].
    VectorAssembler(VectorAssembler),
    /// See [`StandardScaler`].
    StandardScaler(StandardScaler),
    /// See [`MinMaxScaler`].
    MinMaxScaler(MinMaxScaler),
    /// See [`Imputer`].
    Imputer(Imputer),
    /// See [`StringIndexer`].
    StringIndexer(StringIndexer),
    /// See [`OneHotEncoder`].
    OneHotEncoder(OneHotEncoder),
    /// A model-training stage.
    Estimator(Box<EstimatorStage>),
}

macro_rules! stage_from {
    ($($t:ident => $v:expr),* $(,)?) => {
        $(impl From<$t> for Stage {
            fn from(x: $t) -> Self {
                $v(x)
            }
        })*
    };
}

stage_from!(
    VectorAssembler => Stage::VectorAssembler,
    StandardScaler => Stage::StandardScaler,
    MinMaxScaler => Stage::MinMaxScaler,
    Imputer => Stage::Imputer,
    StringIndexer => Stage::StringIndexer,
    OneHotEncoder => Stage::OneHotEncoder,
    EstimatorStage => |e| Stage::Estimator(Box::new(e)),
    KMeans => |e| Stage::Estimator(Box::new(EstimatorStage::new(Estimator::KMeans(e)))),
    LinearRegression =>
        |e| Stage::Estimator(Box::new(EstimatorStage::new(Estimator::LinearRegression(e)))),
    LogisticRegression =>
        |e| Stage::Estimator(Box::new(EstimatorStage::new(Estimator::LogisticRegression(e)))),
);

/// Stages fitted in order (Spark's `Pipeline`).
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    stages: Vec<Stage>,
}

/// A fitted stage of a [`PipelineModel`].
#[derive(Debug, Clone)]
pub enum FittedStage {
    /// A feature transformation.
    Features(FeatureModel),
    /// A trained model, predicting into `prediction`.
    Model {
        /// The name the model is registered under in a session while the pipeline predicts.
        name: String,
        /// The model.
        model: Arc<Model>,
        /// The prediction column.
        prediction: String,
    },
}

/// A fitted [`Pipeline`]: transforms data as the pipeline did while fitting.
#[derive(Debug, Clone)]
pub struct PipelineModel {
    stages: Vec<FittedStage>,
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a stage.
    pub fn stage(mut self, stage: impl Into<Stage>) -> Self {
        self.stages.push(stage.into());
        self
    }

    /// The stages.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Fits every stage in order. Each feature stage is one pass over its input; the
    /// estimator caches its input and iterates over the cache.
    ///
    /// # Errors
    /// The first stage that fails, with its error (parameters, columns, data).
    pub async fn fit(&self, df: &DataFrame) -> Result<PipelineModel> {
        let mut current = df.clone();
        let mut groups = Groups::new();
        let mut fitted = Vec::with_capacity(self.stages.len());
        let pipeline_id = short_id();
        for (i, stage) in self.stages.iter().enumerate() {
            let f = match stage {
                Stage::VectorAssembler(s) => FittedStage::Features(FeatureModel::VectorAssembler(
                    s.fit_in(&current, &groups)?,
                )),
                Stage::StandardScaler(s) => FittedStage::Features(FeatureModel::StandardScaler(
                    s.fit_in(&current, &groups).await?,
                )),
                Stage::MinMaxScaler(s) => FittedStage::Features(FeatureModel::MinMaxScaler(
                    s.fit_in(&current, &groups).await?,
                )),
                Stage::Imputer(s) => {
                    FittedStage::Features(FeatureModel::Imputer(s.fit_in(&current, &groups).await?))
                }
                Stage::StringIndexer(s) => {
                    FittedStage::Features(FeatureModel::StringIndexer(s.fit(&current).await?))
                }
                Stage::OneHotEncoder(s) => {
                    FittedStage::Features(FeatureModel::OneHotEncoder(s.fit(&current).await?))
                }
                Stage::Estimator(e) => FittedStage::Model {
                    name: format!("pipeline-{pipeline_id}-{i}"),
                    model: Arc::new(e.fit(&current, &groups).await?),
                    prediction: e.prediction.clone(),
                },
            };
            if let FittedStage::Features(m) = &f {
                m.update_groups(&mut groups);
            }
            if i + 1 < self.stages.len() {
                current = f.transform(current)?;
            }
            fitted.push(f);
        }
        Ok(PipelineModel { stages: fitted })
    }
}

impl FittedStage {
    /// Adds the stage to `df`'s plan.
    ///
    /// # Errors
    /// A column the stage reads is missing from `df`.
    pub fn transform(&self, df: DataFrame) -> Result<DataFrame> {
        match self {
            FittedStage::Features(m) => m.transform(df),
            FittedStage::Model {
                name,
                model,
                prediction,
            } => {
                let session = df.session().clone();
                if session.model(name).is_none_or(|m| !Arc::ptr_eq(&m, model)) {
                    session.register_model_arc(name, Arc::clone(model));
                }
                df.predict(name, prediction)
            }
        }
    }
}

impl PipelineModel {
    /// A pipeline model of fitted `stages` (what [`Pipeline::fit`] returns, or stages taken
    /// from such models).
    pub fn new(stages: Vec<FittedStage>) -> Self {
        Self { stages }
    }

    /// The fitted stages, in order.
    pub fn stages(&self) -> &[FittedStage] {
        &self.stages
    }

    /// The trained model of the last estimator stage, if any.
    pub fn model(&self) -> Option<&Model> {
        self.stages.iter().rev().find_map(|s| match s {
            FittedStage::Model { model, .. } => Some(model.as_ref()),
            FittedStage::Features(_) => None,
        })
    }

    /// Applies every stage to `df`: a lazy plan of projections and predictions.
    ///
    /// # Errors
    /// A column some stage reads is missing from `df`.
    pub fn transform(&self, df: DataFrame) -> Result<DataFrame> {
        self.stages.iter().try_fold(df, |df, s| s.transform(df))
    }
}

/// The file of a pipeline directory that lists its stages.
pub const PIPELINE_FILE: &str = "pipeline.json";
/// The `format` of `pipeline.json`.
const PIPELINE_FORMAT: &str = "kiln-pipeline";
/// The newest `format_version` of `pipeline.json` this build writes and reads.
const PIPELINE_FORMAT_VERSION: u64 = 1;

/// `pipeline.json`: the fitted stages in order. A feature stage holds its fitted statistics;
/// a model stage names the subdirectory holding it as a model directory (the files every
/// front door reads), so a pipeline's model can also be loaded on its own.
#[derive(Debug, Serialize, Deserialize)]
struct PipelineFile {
    format: String,
    format_version: u64,
    kiln_version: String,
    stages: Vec<StageFile>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StageFile {
    Features {
        model: FeatureModel,
    },
    Model {
        directory: String,
        prediction: String,
    },
}

impl Session {
    /// Writes a fitted pipeline as a directory at `path` (local or an object store URL):
    /// `pipeline.json` with the stages in order — each feature stage's fitted statistics —
    /// and one model directory per estimator stage (`stage-<i>/`, the files
    /// [`save_model`](Self::save_model) writes). `pipeline.json` is written last, so a
    /// directory that has it is complete.
    ///
    /// # Errors
    /// If the location cannot be written.
    pub async fn save_pipeline(&self, pipeline: &PipelineModel, path: &str) -> Result<()> {
        let mut stages = Vec::with_capacity(pipeline.stages.len());
        for (i, stage) in pipeline.stages.iter().enumerate() {
            stages.push(match stage {
                FittedStage::Features(m) => StageFile::Features { model: m.clone() },
                FittedStage::Model {
                    model, prediction, ..
                } => {
                    let directory = format!("stage-{i}");
                    let sub = format!("{}/{directory}", path.trim_end_matches('/'));
                    self.save_model(model, &sub).await?;
                    StageFile::Model {
                        directory,
                        prediction: prediction.clone(),
                    }
                }
            });
        }
        let file = PipelineFile {
            format: PIPELINE_FORMAT.to_string(),
            format_version: PIPELINE_FORMAT_VERSION,
            kiln_version: env!("CARGO_PKG_VERSION").to_string(),
            stages,
        };
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| EngineError::Internal(format!("cannot encode {PIPELINE_FILE}: {e}")))?;
        let (store, prefix) = self.model_location(path, true)?;
        store
            .put(&prefix.join(PIPELINE_FILE), PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    /// Reads a pipeline directory written by [`save_pipeline`](Self::save_pipeline) (from any
    /// front door). Needs no executor.
    ///
    /// # Errors
    /// [`EngineError::Read`] naming the path and the file when `pipeline.json` or a stage's
    /// model is missing, unreadable, or of a newer format.
    pub async fn load_pipeline(&self, path: &str) -> Result<PipelineModel> {
        let bad = |reason: String| EngineError::Read {
            format: "pipeline",
            path: path.to_string(),
            reason,
        };
        let (store, prefix) = self.model_location(path, false)?;
        let bytes = match store.get(&prefix.join(PIPELINE_FILE)).await {
            Ok(got) => got.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(bad(format!(
                    "no {PIPELINE_FILE}: not a pipeline directory (a single model loads with \
                     load_model)"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        let file: PipelineFile = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("{PIPELINE_FILE} is not a Kiln pipeline: {e}")))?;
        if file.format != PIPELINE_FORMAT {
            return Err(bad(format!(
                "{PIPELINE_FILE} has format '{}', expected '{PIPELINE_FORMAT}'",
                file.format
            )));
        }
        if file.format_version > PIPELINE_FORMAT_VERSION {
            return Err(bad(format!(
                "{PIPELINE_FILE} has format_version {}; this Kiln reads up to {PIPELINE_FORMAT_VERSION}",
                file.format_version
            )));
        }
        let pipeline_id = short_id();
        let mut stages = Vec::with_capacity(file.stages.len());
        for (i, stage) in file.stages.into_iter().enumerate() {
            stages.push(match stage {
                StageFile::Features { model } => FittedStage::Features(model),
                StageFile::Model {
                    directory,
                    prediction,
                } => {
                    if directory.contains("..") || directory.starts_with('/') {
                        return Err(bad(format!(
                            "stage {i} names the directory '{directory}', outside the pipeline"
                        )));
                    }
                    let sub = format!("{}/{directory}", path.trim_end_matches('/'));
                    FittedStage::Model {
                        name: format!("pipeline-{pipeline_id}-{i}"),
                        model: Arc::new(self.load_model(&sub).await?),
                        prediction,
                    }
                }
            });
        }
        Ok(PipelineModel { stages })
    }

    /// Whether `path` is a pipeline directory (holds `pipeline.json`).
    ///
    /// # Errors
    /// If the location cannot be listed.
    pub async fn is_pipeline(&self, path: &str) -> Result<bool> {
        let (store, prefix) = self.model_location(path, false)?;
        match store.head(&prefix.join(PIPELINE_FILE)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
