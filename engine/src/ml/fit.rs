//! `estimator.fit(&df)`: check the parameters, cache the training input, run the algorithm,
//! free the cache.

use std::future::Future;

use kiln_ml::cluster::kmeans::{KMeans, KMeansModel, KMeansTrainer};
use kiln_ml::linear::{
    LinearRegression, LinearRegressionModel, LogisticRegression, LogisticRegressionModel,
};
use kiln_ml::{Algorithm, Model, Precision, TrainingReport};

use super::columns::Columns;
use crate::dataframe::DataFrame;
use crate::error::Result;

/// Training an estimator on a DataFrame. Implemented for Kiln's estimators, so that
/// `KMeans::new(8).max_iter(20).fit(&df).await?` reads as in Spark or scikit-learn.
///
/// Parameters are checked before any data moves. The DataFrame's plan then runs once: its
/// output is cached on the executors as dense partitions for the length of the fit, and every
/// iteration reads the cache.
pub trait Fit: Sized + Send + 'static + Into<Estimator> {
    /// The step machine that trains.
    type Algorithm: Algorithm<Model = Self::Model> + 'static;
    /// What training produces.
    type Model: Send + 'static;
    /// Whether the algorithm needs a label column (`label` unless [`Columns::label`] says
    /// otherwise).
    const SUPERVISED: bool;

    /// The validated step machine.
    ///
    /// # Errors
    /// A parameter out of range, named with its allowed range.
    fn algorithm(&self) -> Result<Self::Algorithm>;

    /// Trains on `df` with the default columns: the label `label` (supervised algorithms) and
    /// every other numeric column as a feature.
    ///
    /// # Errors
    /// Invalid parameters, unusable columns or data, or a failed job.
    fn fit(self, df: &DataFrame) -> impl Future<Output = Result<Self::Model>> + Send {
        self.fit_columns(df, Columns::new())
    }

    /// Trains on `df` with the given feature and label columns.
    ///
    /// # Errors
    /// As [`fit`](Self::fit).
    fn fit_columns(
        self,
        df: &DataFrame,
        columns: Columns,
    ) -> impl Future<Output = Result<Self::Model>> + Send {
        let fitted = self.fit_reported(df, columns);
        async move { Ok(fitted.await?.0) }
    }

    /// As [`fit_columns`](Self::fit_columns), with the fit's [`TrainingReport`]: training
    /// time, communication overhead, utilization and rows/s per executor, as measured.
    ///
    /// # Errors
    /// As [`fit`](Self::fit).
    fn fit_reported(
        self,
        df: &DataFrame,
        columns: Columns,
    ) -> impl Future<Output = Result<(Self::Model, TrainingReport)>> + Send {
        let df = df.clone();
        async move {
            let algorithm = self.algorithm()?;
            let data = df
                .cache_training(&columns, Self::SUPERVISED, Precision::F64)
                .await?;
            let fitted = data.fit_reported(algorithm, |_| {}).await;
            data.unpersist().await?;
            fitted
        }
    }
}

impl Fit for KMeans {
    type Algorithm = KMeansTrainer;
    type Model = KMeansModel;
    const SUPERVISED: bool = false;

    fn algorithm(&self) -> Result<KMeansTrainer> {
        Ok(self.build()?)
    }
}

impl Fit for LinearRegression {
    type Algorithm = LinearRegression;
    type Model = LinearRegressionModel;
    const SUPERVISED: bool = true;

    fn algorithm(&self) -> Result<LinearRegression> {
        self.check()?;
        Ok(self.clone())
    }
}

impl Fit for LogisticRegression {
    type Algorithm = LogisticRegression;
    type Model = LogisticRegressionModel;
    const SUPERVISED: bool = true;

    fn algorithm(&self) -> Result<LogisticRegression> {
        self.check()?;
        Ok(self.clone())
    }
}

/// An estimator of any registered algorithm, as a pipeline stage (the registry's; see
/// [`kiln_ml::registry`]).
pub use kiln_ml::Estimator;

/// Trains `estimator` on `df`'s `columns`.
pub(crate) async fn fit_estimator(
    estimator: &Estimator,
    df: &DataFrame,
    columns: Columns,
) -> Result<Model> {
    let (model, report): (Model, TrainingReport) = match estimator {
        Estimator::KMeans(e) => {
            let (m, r) = e.clone().fit_reported(df, columns).await?;
            (m.into(), r)
        }
        Estimator::LinearRegression(e) => {
            let (m, r) = e.clone().fit_reported(df, columns).await?;
            (m.into(), r)
        }
        Estimator::LogisticRegression(e) => {
            let (m, r) = e.clone().fit_reported(df, columns).await?;
            (m.into(), r)
        }
    };
    Ok(model.with_report(Some(report)))
}
