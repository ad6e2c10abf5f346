//! [`CachedScanExec`]: rows of a persisted DataFrame, read from the dense partitions its
//! cache stage left in executor memory (or, when this executor does not hold a partition, from
//! the copy in the cache store).

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Float64Array, RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{stream, TryStreamExt};
use kiln_ml::data::Features;
use kiln_ml::CachedPartition;

use crate::cache::{read_partition, PartitionCache};
use crate::error::ExecError;
use crate::shuffle::StoreRoot;

/// Scans a cached dataset: partition `p` is cached partition `p`, its columns the dataset's
/// feature columns (`Float64`, or `Float32` for an `f32` cache).
#[derive(Debug)]
pub struct CachedScanExec {
    dataset: String,
    cache_root: String,
    objects: Vec<String>,
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
    cache: Option<Arc<PartitionCache>>,
}

impl CachedScanExec {
    /// A scan of `dataset` under `cache_root`, whose partition `p` is stored in `objects[p]`,
    /// with columns `schema` (projected by `projection`).
    ///
    /// # Errors
    /// A projection outside the schema.
    pub fn try_new(
        dataset: String,
        cache_root: String,
        objects: Vec<String>,
        schema: SchemaRef,
        projection: Option<Vec<usize>>,
    ) -> DfResult<Self> {
        let output = match &projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => Arc::clone(&schema),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(output),
            Partitioning::UnknownPartitioning(objects.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            dataset,
            cache_root,
            objects,
            schema,
            projection,
            properties: Arc::new(properties),
            cache: None,
        })
    }

    /// The same scan, reading partitions from `cache` first (how an executor runs it).
    pub fn with_cache(&self, cache: Arc<PartitionCache>) -> Self {
        Self {
            dataset: self.dataset.clone(),
            cache_root: self.cache_root.clone(),
            objects: self.objects.clone(),
            schema: Arc::clone(&self.schema),
            projection: self.projection.clone(),
            properties: Arc::clone(&self.properties),
            cache: Some(cache),
        }
    }

    /// The dataset's id.
    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    /// The cache root URL.
    pub fn cache_root(&self) -> &str {
        &self.cache_root
    }

    /// The object of each partition.
    pub fn objects(&self) -> &[String] {
        &self.objects
    }

    /// The unprojected columns.
    pub fn table_schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The projection, if any.
    pub fn projection(&self) -> Option<&[usize]> {
        self.projection.as_deref()
    }
}

impl DisplayAs for CachedScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns: Vec<String> = self
            .properties
            .eq_properties
            .schema()
            .fields()
            .iter()
            .map(|c| c.name().clone())
            .collect();
        write!(
            f,
            "CachedScan: dataset={}, partitions={}, columns=[{}]",
            self.dataset,
            self.objects.len(),
            columns.join(", ")
        )
    }
}

impl ExecutionPlan for CachedScanExec {
    fn name(&self) -> &str {
        "CachedScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    kiln_planner::leaf_exec_methods!();

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let object = self.objects.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "cached dataset {} has {} partitions, asked for {partition}",
                self.dataset,
                self.objects.len()
            ))
        })?;
        let root = StoreRoot::resolve(&self.cache_root, &context.runtime_env())
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let index = u32::try_from(partition)
            .map_err(|e| DataFusionError::Internal(format!("partition index: {e}")))?;
        let held = self
            .cache
            .as_ref()
            .and_then(|c| c.get(&self.dataset, index));
        let dataset = self.dataset.clone();
        let schema = self.schema();
        let projection = self.projection.clone();
        let batch_rows = context.session_config().batch_size().max(1);
        let out_schema = Arc::clone(&schema);
        let batches = stream::once(async move {
            let part = match held {
                Some(p) => p,
                // Not held here: read the store's copy for this task only (the executor that
                // holds it keeps serving kernels from memory).
                None => Arc::new(
                    read_partition(&root, &object, &dataset, index)
                        .await
                        .map_err(|e| DataFusionError::External(Box::new(e)))?,
                ),
            };
            to_batches(&part, &out_schema, projection.as_deref(), batch_rows)
        })
        .map_ok(|batches| stream::iter(batches.into_iter().map(Ok)))
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// The partition's (projected) columns as Arrow batches of `batch_rows` rows.
fn to_batches(
    part: &CachedPartition,
    schema: &SchemaRef,
    projection: Option<&[usize]>,
    batch_rows: usize,
) -> DfResult<Vec<RecordBatch>> {
    let columns: Vec<usize> = match projection {
        Some(p) => p.to_vec(),
        None => (0..part.cols()).collect(),
    };
    if let Some(bad) = columns.iter().find(|&&j| j >= part.cols()) {
        return Err(DataFusionError::External(Box::new(ExecError::Internal(
            format!(
                "cached partition {} has {} columns, column {bad} requested",
                part.index(),
                part.cols()
            ),
        ))));
    }
    let rows = part.rows();
    let mut out = Vec::with_capacity(rows.div_ceil(batch_rows));
    let mut start = 0;
    while start < rows {
        let end = (start + batch_rows).min(rows);
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|&j| -> ArrayRef {
                match part.features() {
                    Features::F64(m) => Arc::new(Float64Array::from(m.col(j)[start..end].to_vec())),
                    Features::F32(m) => Arc::new(Float32Array::from(m.col(j)[start..end].to_vec())),
                }
            })
            .collect();
        // A projection may keep no column (`count(*)`): the row count still travels.
        let options = RecordBatchOptions::new().with_row_count(Some(end - start));
        out.push(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            arrays,
            &options,
        )?);
        start = end;
    }
    Ok(out)
}
