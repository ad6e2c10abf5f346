//! `DataFrame::persist` / `cache` / `unpersist`: a DataFrame materialized once on the
//! executors, in the dense column-major layout training reads.
//!
//! ```text
//!  df.persist(F64) ─▶ cache stage (as for training): partition p → dense matrix in the memory
//!                     of the executor that computed it + {cache_root}/{dataset}/p-attempt.kpart
//!  returned DataFrame = scan of CachedTable ─▶ CachedScanExec: task p reads partition p from
//!                     its executor's memory, else from the store's copy
//! ```
//!
//! Queries and fits on the persisted DataFrame never rerun its original plan: a fit caches its
//! columns from the persisted partitions (memory to memory) instead of reading the source.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session as CatalogSession;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use kiln_executor::source::CachedScanExec;
use kiln_ml::Precision;

use crate::dataframe::DataFrame;
use crate::error::{EngineError, Result};
use crate::ml::{Columns, TrainingData};

/// A persisted dataset as a table.
#[derive(Debug)]
pub(crate) struct CachedTable {
    data: Arc<TrainingData>,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for CachedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if self.data.is_released() {
            return Err(DataFusionError::Plan(format!(
                "the persisted DataFrame (dataset {}) was unpersisted; persist it again or use the DataFrame it came from",
                self.data.id()
            )));
        }
        Ok(Arc::new(CachedScanExec::try_new(
            self.data.id().to_string(),
            self.data.cache_root().to_string(),
            self.data.objects(),
            Arc::clone(&self.schema),
            projection.cloned(),
        )?))
    }
}

impl DataFrame {
    /// Runs the plan once and keeps its result on the executors: each partition as a dense
    /// column-major matrix (`f64`, or `f32` with [`Precision::F32`]) in the memory of the
    /// executor that computed it, with a copy in the cache store. Returns a DataFrame over the
    /// cached partitions (columns become `Float64`/`Float32`); queries and fits on it read the
    /// cache, a lost in-memory partition is read from the store, and
    /// [`unpersist`](Self::unpersist) frees both. Unlike Spark's lazy `persist`, the plan runs
    /// now.
    ///
    /// # Errors
    /// A column that is not numeric (the message names it), or a null, NaN or infinite value
    /// (named by column); any error of running the plan.
    pub async fn persist(&self, precision: Precision) -> Result<DataFrame> {
        let schema = self.schema();
        if let Some(f) = schema
            .fields()
            .iter()
            .find(|f| !(f.data_type().is_numeric() || f.data_type() == &DataType::Boolean))
        {
            return Err(EngineError::InvalidParameter {
                name: "persist",
                reason: format!(
                    "Kiln caches DataFrames in a dense numeric layout; column '{}' is {} (select the numeric columns, or index it with a StringIndexer first)",
                    f.name(),
                    f.data_type()
                ),
            });
        }
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let data = self
            .cache_training(&Columns::new().features(names.clone()), false, precision)
            .await?;
        let value_type = match precision {
            Precision::F64 => DataType::Float64,
            Precision::F32 => DataType::Float32,
        };
        let cached_schema = Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(n, value_type.clone(), false))
                .collect::<Vec<_>>(),
        ));
        let data = Arc::new(data);
        let table = CachedTable {
            data: Arc::clone(&data),
            schema: cached_schema,
        };
        let df = self
            .session()
            .datafusion_context()
            .read_table(Arc::new(table))?;
        Ok(DataFrame::persisted(self.session().clone(), df, data))
    }

    /// [`persist`](Self::persist) in `f64` (Spark's `cache()`).
    ///
    /// # Errors
    /// As [`persist`](Self::persist).
    pub async fn cache(&self) -> Result<DataFrame> {
        self.persist(Precision::F64).await
    }

    /// The cached dataset behind a DataFrame returned by [`persist`](Self::persist): its id,
    /// partition sizes, and [`TrainingData::drop_from_memory`] to free executor memory while
    /// keeping the store's copy.
    pub fn cached_data(&self) -> Option<&TrainingData> {
        self.persisted_data::<TrainingData>()
    }

    /// Whether this DataFrame reads a persisted dataset that is still cached.
    pub fn is_persisted(&self) -> bool {
        self.persisted_data::<TrainingData>()
            .is_some_and(|d| !d.is_released())
    }

    /// Frees the executors' memory and the store's copy of a DataFrame returned by
    /// [`persist`](Self::persist); a no-op on any other DataFrame or a second call. Later
    /// queries on this DataFrame fail with a message saying it was unpersisted.
    ///
    /// # Errors
    /// If the cache store cannot delete the objects.
    pub async fn unpersist(&self) -> Result<()> {
        match self.persisted_data::<TrainingData>() {
            Some(data) => data.release().await,
            None => Ok(()),
        }
    }
}
