//! Training on the engine: cached training data on executors, and the driver loop that runs a
//! [`kiln_ml::Algorithm`] over it.
//!
//! ```text
//!  DataFrame ──cache_training──▶ cache stage: one dense partition per task, kept on its
//!                                executor and written to {cache_root}/{dataset}/
//!  Algorithm::start ─▶ Kernel ─▶ one KernelRequest per executor (all its partitions)
//!        ▲                            │ partials merged on the executor as far as it can
//!        └── Algorithm::next ◀── merged up the fixed merge tree on the driver
//! ```
//!
//! Per iteration the driver sends one request per executor: no planning, no re-reading of the
//! source. A partition whose executor cannot be reached is reloaded from the cache store by
//! another executor, and only the partitions still without a partial run again.

mod columns;
mod evaluate;
pub mod features;
pub(crate) mod fit;
pub(crate) mod lazy;
pub(crate) mod models;
pub(crate) mod pipeline;
mod training_data;

pub use columns::Columns;
pub use evaluate::{ClassificationMetric, Evaluator, Metric, RegressionMetric};
pub use features::{
    FeatureModel, HandleInvalid, ImputeStrategy, Imputer, ImputerModel, MinMaxScaler,
    MinMaxScalerModel, OneHotEncoder, OneHotEncoderModel, StandardScaler, StandardScalerModel,
    StringIndexer, StringIndexerModel, StringOrder, VectorAssembler, VectorAssemblerModel,
};
pub use fit::{Estimator, Fit};
pub use kiln_ml::metrics::Average;
pub use kiln_ml::registry;
pub use lazy::{LazyModel, PredictNode, Train, TrainNode};
pub use pipeline::{EstimatorStage, FittedStage, Pipeline, PipelineModel, Stage};
pub use training_data::TrainingData;

pub use kiln_ml::cluster::kmeans::{KMeans, KMeansInit, KMeansModel};
pub use kiln_ml::linear::{
    Family, LinearRegression, LinearRegressionModel, LogisticRegression, LogisticRegressionModel,
    Solver, StepSchedule, TrainingSummary,
};
pub use kiln_ml::model::{InputTransform, TransformOutput};
pub use kiln_ml::{
    metrics, Algorithm, DatasetInfo, MlError, Model, ModelKind, Precision, Progress,
};
