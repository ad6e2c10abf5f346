//! Evaluators: a metric of a DataFrame's label and prediction columns (Spark's
//! `RegressionEvaluator`, `MulticlassClassificationEvaluator`,
//! `BinaryClassificationEvaluator`, `ClusteringEvaluator`).
//!
//! The DataFrame's plan runs on the executors and only the columns the metric reads reach the
//! driver, where per-batch summaries (mergeable, see [`kiln_ml::metrics`]) are merged in batch
//! order. ROC AUC sorts every score, and the silhouette is quadratic, so it runs on a seeded
//! sample of at most [`SILHOUETTE_EXACT_MAX`] rows.

use arrow::array::{Array, FixedSizeListArray, Float64Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::logical_expr::ident;
use kiln_ml::metrics::{
    log_loss, log_loss_multiclass, roc_auc, silhouette_sampled, Average, ConfusionCounts,
    RegressionSummary, SILHOUETTE_EXACT_MAX,
};

use super::columns::Columns;
use crate::dataframe::DataFrame;
use crate::error::{EngineError, Result};

/// A regression metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegressionMetric {
    /// Root mean squared error (the default, as in Spark).
    #[default]
    Rmse,
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    Mae,
    /// Coefficient of determination.
    R2,
}

/// A classification metric over predicted classes, or over class probabilities (`LogLoss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassificationMetric {
    /// Fraction of rows predicted right.
    Accuracy,
    /// Precision with the given averaging.
    Precision(Average),
    /// Recall with the given averaging.
    Recall(Average),
    /// F1 with the given averaging (Spark's default is weighted F1).
    F1(Average),
    /// Cross-entropy of the probability column (see [`Evaluator::probability_col`]).
    LogLoss,
    /// Area under the ROC curve of binary labels, scored by the probability of class 1 (or a
    /// plain numeric score column).
    AreaUnderRoc,
}

/// What an [`Evaluator`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// See [`RegressionMetric`].
    Regression(RegressionMetric),
    /// See [`ClassificationMetric`].
    Classification(ClassificationMetric),
    /// Mean silhouette coefficient of the predicted clusters (Euclidean), over the feature
    /// columns.
    Silhouette,
}

/// Computes one metric of a DataFrame.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluator {
    metric: Metric,
    label: String,
    prediction: String,
    probability: String,
    features: Columns,
    seed: u64,
}

impl Evaluator {
    /// An evaluator of `metric` reading `label` and `prediction` (and `probability` for
    /// log-loss and ROC AUC).
    pub fn new(metric: Metric) -> Self {
        Self {
            metric,
            label: "label".into(),
            prediction: "prediction".into(),
            probability: "probability".into(),
            features: Columns::new(),
            seed: 42,
        }
    }

    /// Regression metric.
    pub fn regression(metric: RegressionMetric) -> Self {
        Self::new(Metric::Regression(metric))
    }

    /// Classification metric.
    pub fn classification(metric: ClassificationMetric) -> Self {
        Self::new(Metric::Classification(metric))
    }

    /// Silhouette of a clustering, over `features`.
    pub fn silhouette(features: Columns) -> Self {
        Self {
            features,
            ..Self::new(Metric::Silhouette)
        }
    }

    /// The label column (default `label`).
    pub fn label_col(mut self, name: impl Into<String>) -> Self {
        self.label = name.into();
        self
    }

    /// The prediction column (default `prediction`).
    pub fn prediction_col(mut self, name: impl Into<String>) -> Self {
        self.prediction = name.into();
        self
    }

    /// The probability column for log-loss and ROC AUC (default `probability`): class
    /// probabilities as from [`DataFrame::predict_proba`], or one numeric score per row.
    pub fn probability_col(mut self, name: impl Into<String>) -> Self {
        self.probability = name.into();
        self
    }

    /// Seed of the silhouette's sample (default 42).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Runs `df` and computes the metric.
    ///
    /// # Errors
    /// Unknown columns; labels or predictions that are null, non-numeric or invalid for the
    /// metric (e.g. non-binary labels for ROC AUC); an empty DataFrame; a failed job.
    pub async fn evaluate(&self, df: &DataFrame) -> Result<f64> {
        let metric_error = |e: kiln_ml::MlError| EngineError::InvalidParameter {
            name: "metric",
            reason: e.to_string(),
        };
        match self.metric {
            Metric::Regression(m) => {
                let batches = self.columns(df, &[&self.label, &self.prediction]).await?;
                let mut summary = RegressionSummary::default();
                for b in &batches {
                    let (y, p) = (self.f64s(b, 0)?, self.f64s(b, 1)?);
                    summary = summary
                        .merge(RegressionSummary::from_slices(&y, &p).map_err(metric_error)?);
                }
                if summary.count == 0 {
                    return Err(empty());
                }
                Ok(match m {
                    RegressionMetric::Rmse => summary.rmse(),
                    RegressionMetric::Mse => summary.mse(),
                    RegressionMetric::Mae => summary.mae(),
                    RegressionMetric::R2 => summary.r2(),
                })
            }
            Metric::Classification(
                m @ (ClassificationMetric::LogLoss | ClassificationMetric::AreaUnderRoc),
            ) => {
                let batches = self.columns(df, &[&self.label, &self.probability]).await?;
                let mut y = Vec::new();
                let mut probs = Vec::new();
                let mut classes = None;
                for b in &batches {
                    y.extend(self.f64s(b, 0)?);
                    let (values, width) = self.probabilities(b)?;
                    if classes.is_some_and(|c| c != width) {
                        return Err(EngineError::Internal("probability widths differ".into()));
                    }
                    classes = Some(width);
                    probs.extend(values);
                }
                let width = classes.ok_or_else(empty)?;
                if y.is_empty() {
                    return Err(empty());
                }
                let result = match (m, width) {
                    (ClassificationMetric::LogLoss, 1 | 2) => {
                        log_loss(&y, &positive_scores(&probs, width))
                    }
                    (ClassificationMetric::LogLoss, k) => log_loss_multiclass(&y, &probs, k),
                    (_, 1 | 2) => roc_auc(&y, &positive_scores(&probs, width)),
                    (_, k) => {
                        return Err(EngineError::InvalidParameter {
                            name: "metric",
                            reason: format!(
                                "ROC AUC is for binary classification, but '{}' has {k} classes",
                                self.probability
                            ),
                        })
                    }
                };
                result.map_err(metric_error)
            }
            Metric::Classification(m) => {
                let batches = self.columns(df, &[&self.label, &self.prediction]).await?;
                let mut counts = ConfusionCounts::default();
                for b in &batches {
                    let (y, p) = (self.f64s(b, 0)?, self.f64s(b, 1)?);
                    counts =
                        counts.merge(&ConfusionCounts::from_slices(&y, &p).map_err(metric_error)?);
                }
                if counts.total() == 0 {
                    return Err(empty());
                }
                match m {
                    ClassificationMetric::Accuracy => Ok(counts.accuracy()),
                    ClassificationMetric::Precision(a) => counts.precision(a).map_err(metric_error),
                    ClassificationMetric::Recall(a) => counts.recall(a).map_err(metric_error),
                    ClassificationMetric::F1(a) => counts.f1(a).map_err(metric_error),
                    ClassificationMetric::LogLoss | ClassificationMetric::AreaUnderRoc => {
                        Err(EngineError::Internal("handled above".into()))
                    }
                }
            }
            Metric::Silhouette => self.silhouette_of(df).await.map_err(|e| match e {
                EngineError::InvalidParameter { reason, .. } => EngineError::InvalidParameter {
                    name: "metric",
                    reason,
                },
                other => other,
            }),
        }
    }

    async fn silhouette_of(&self, df: &DataFrame) -> Result<f64> {
        let (features, _) = self
            .features
            .clone()
            .label(self.prediction.clone())
            .resolve(&df.schema(), false)?;
        let mut names: Vec<&str> = features.iter().map(String::as_str).collect();
        names.push(&self.prediction);
        let n = df.count().await?;
        let source = if n > 2 * SILHOUETTE_EXACT_MAX {
            df.clone()
                .sample((2 * SILHOUETTE_EXACT_MAX) as f64 / n as f64, self.seed)?
        } else {
            df.clone()
        };
        let batches = self.columns(&source, &names).await?;
        let d = features.len();
        let mut points: Vec<Vec<f64>> = Vec::new();
        let mut labels: Vec<u32> = Vec::new();
        for b in &batches {
            let cols = (0..d)
                .map(|j| self.f64s(b, j))
                .collect::<Result<Vec<_>>>()?;
            let clusters = self.f64s(b, d)?;
            for (i, c) in clusters.iter().enumerate() {
                points.push(cols.iter().map(|col| col[i]).collect());
                labels.push(*c as u32);
            }
        }
        if points.is_empty() {
            return Err(empty());
        }
        silhouette_sampled(&points, &labels, SILHOUETTE_EXACT_MAX, self.seed).map_err(|e| {
            EngineError::InvalidParameter {
                name: "metric",
                reason: e.to_string(),
            }
        })
    }

    /// Runs `df` projected to `names`.
    async fn columns(&self, df: &DataFrame, names: &[&str]) -> Result<Vec<RecordBatch>> {
        let projected = df
            .clone()
            .select(names.iter().map(|n| ident(*n)).collect())?;
        projected.collect().await
    }

    /// Column `i` of `b` as `f64`, rejecting nulls by name.
    fn f64s(&self, b: &RecordBatch, i: usize) -> Result<Vec<f64>> {
        let name = b.schema().field(i).name().clone();
        let a = cast(b.column(i), &DataType::Float64).map_err(|_| not_numeric(&name, b, i))?;
        let a = a
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| not_numeric(&name, b, i))?;
        if a.null_count() > 0 {
            return Err(EngineError::InvalidParameter {
                name: "metric",
                reason: format!("column '{name}' has null values; an evaluator needs every row"),
            });
        }
        Ok(a.values().to_vec())
    }

    /// The probability column of `b` (column 1) as row-major values and their width.
    fn probabilities(&self, b: &RecordBatch) -> Result<(Vec<f64>, usize)> {
        let column = b.column(1);
        match column.data_type() {
            DataType::FixedSizeList(_, width) => {
                let list = column
                    .as_any()
                    .downcast_ref::<FixedSizeListArray>()
                    .ok_or_else(|| EngineError::Internal("FixedSizeList downcast".into()))?;
                if list.null_count() > 0 {
                    return Err(EngineError::InvalidParameter {
                        name: "metric",
                        reason: format!("column '{}' has null values", self.probability),
                    });
                }
                let values = cast(list.values(), &DataType::Float64)?;
                let values = values
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or_else(|| EngineError::Internal("Float64 downcast".into()))?;
                let width =
                    usize::try_from(*width).map_err(|e| EngineError::Internal(e.to_string()))?;
                let start = list.offset() * width;
                Ok((
                    values.values()[start..start + list.len() * width].to_vec(),
                    width,
                ))
            }
            _ => Ok((self.f64s(b, 1)?, 1)),
        }
    }
}

/// The score of class 1: the column itself (width 1) or the second probability (width 2).
fn positive_scores(values: &[f64], width: usize) -> Vec<f64> {
    if width == 1 {
        values.to_vec()
    } else {
        values.chunks_exact(width).map(|r| r[1]).collect()
    }
}

fn not_numeric(name: &str, b: &RecordBatch, i: usize) -> EngineError {
    EngineError::InvalidParameter {
        name: "metric",
        reason: format!(
            "column '{name}' is {}, not numeric",
            b.schema().field(i).data_type()
        ),
    }
}

fn empty() -> EngineError {
    EngineError::InvalidParameter {
        name: "metric",
        reason: "the DataFrame has no rows to evaluate".into(),
    }
}
