//! [`CsvScanExec`]: CSV with Spark's malformed-record modes.
//!
//! Each partition reads whole files. Records are split with a quote-aware tokenizer; runs of
//! well-formed records are decoded into typed Arrow columns in bulk by arrow-csv's decoder. A
//! record whose field count differs from the schema, or whose values do not parse as the
//! column types, is malformed and handled by the mode:
//!
//! | mode | malformed record |
//! |---|---|
//! | `Permissive` | a row of nulls with the raw line in the corrupt-record column |
//! | `DropMalformed` | dropped |
//! | `FailFast` | the query fails naming the file and 1-based line |

use std::fmt;
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use arrow::csv::ReaderBuilder;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use bytes::Bytes;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::ExecError;

/// Malformed-record handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsvMode {
    /// Keep malformed records as null rows with the raw line in the corrupt-record column.
    Permissive,
    /// Drop malformed records.
    DropMalformed,
    /// Fail on the first malformed record.
    FailFast,
}

impl CsvMode {
    /// Wire value.
    pub fn as_u32(self) -> u32 {
        match self {
            CsvMode::Permissive => 0,
            CsvMode::DropMalformed => 1,
            CsvMode::FailFast => 2,
        }
    }

    /// Mode of a wire value.
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(CsvMode::Permissive),
            1 => Some(CsvMode::DropMalformed),
            2 => Some(CsvMode::FailFast),
            _ => None,
        }
    }
}

/// How to read the files.
#[derive(Clone, Debug)]
pub struct CsvScanOptions {
    /// The first line of each file holds column names.
    pub has_header: bool,
    /// Field delimiter.
    pub delimiter: u8,
    /// Malformed-record handling.
    pub mode: CsvMode,
    /// Name of the corrupt-record column (last column of the table in permissive mode).
    pub corrupt_column: String,
}

/// One file to read.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvFile {
    /// Object path in the store.
    pub object: String,
    /// The file as the user named it (for error messages).
    pub display: String,
}

/// Scans CSV files; partition `p` reads `files[p]`.
#[derive(Debug)]
pub struct CsvScanExec {
    store_url: ObjectStoreUrl,
    files: Vec<Vec<CsvFile>>,
    /// Columns of the files (without the corrupt-record column).
    file_schema: SchemaRef,
    options: CsvScanOptions,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl CsvScanExec {
    /// A scan of `files` (one list per partition) with `file_schema`, projected to
    /// `projection` of the table schema (file columns, then the corrupt-record column in
    /// permissive mode).
    ///
    /// # Errors
    /// A projection index out of range.
    pub fn try_new(
        store_url: ObjectStoreUrl,
        files: Vec<Vec<CsvFile>>,
        file_schema: SchemaRef,
        options: CsvScanOptions,
        projection: Option<Vec<usize>>,
    ) -> DfResult<Self> {
        let table = table_schema(&file_schema, &options);
        let output = match &projection {
            Some(p) => Arc::new(table.project(p)?),
            None => table,
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(output),
            Partitioning::UnknownPartitioning(files.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            store_url,
            files,
            file_schema,
            options,
            projection,
            properties: Arc::new(properties),
        })
    }

    /// The store the files live in.
    pub fn store_url(&self) -> &ObjectStoreUrl {
        &self.store_url
    }

    /// Files per partition.
    pub fn files(&self) -> &[Vec<CsvFile>] {
        &self.files
    }

    /// Columns of the files.
    pub fn file_schema(&self) -> &SchemaRef {
        &self.file_schema
    }

    /// Read options.
    pub fn options(&self) -> &CsvScanOptions {
        &self.options
    }

    /// Projection of the table schema, if any.
    pub fn projection(&self) -> Option<&Vec<usize>> {
        self.projection.as_ref()
    }
}

/// The table's columns: the file's, plus the corrupt-record column in permissive mode.
pub fn table_schema(file_schema: &SchemaRef, options: &CsvScanOptions) -> SchemaRef {
    if options.mode != CsvMode::Permissive {
        return Arc::clone(file_schema);
    }
    let mut fields: Vec<_> = file_schema.fields().iter().cloned().collect();
    fields.push(Arc::new(arrow::datatypes::Field::new(
        &options.corrupt_column,
        arrow::datatypes::DataType::Utf8,
        true,
    )));
    Arc::new(Schema::new(fields))
}

impl DisplayAs for CsvScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n: usize = self.files.iter().map(Vec::len).sum();
        write!(
            f,
            "CsvScanExec: files={n}, partitions={}, mode={:?}",
            self.files.len(),
            self.options.mode
        )
    }
}

impl ExecutionPlan for CsvScanExec {
    fn name(&self) -> &str {
        "CsvScanExec"
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
        let files = self.files.get(partition).cloned().unwrap_or_default();
        let store = context.runtime_env().object_store(&self.store_url)?;
        let reader = FileReader {
            file_schema: Arc::clone(&self.file_schema),
            options: self.options.clone(),
            projection: self.projection.clone(),
            batch_size: context.session_config().batch_size(),
        };
        let schema = self.schema();
        let batches = stream::iter(files)
            .then(move |file| {
                let store = Arc::clone(&store);
                let reader = reader.clone();
                async move { reader.read(store, file).await }
            })
            .map_ok(|batches| stream::iter(batches.into_iter().map(Ok)))
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

#[derive(Clone)]
struct FileReader {
    file_schema: SchemaRef,
    options: CsvScanOptions,
    projection: Option<Vec<usize>>,
    batch_size: usize,
}

fn malformed(file: &CsvFile, line: u64, reason: String) -> DataFusionError {
    DataFusionError::External(Box::new(ExecError::MalformedRecord {
        format: "csv",
        path: file.display.clone(),
        line,
        reason,
    }))
}

impl FileReader {
    async fn read(&self, store: Arc<dyn ObjectStore>, file: CsvFile) -> DfResult<Vec<RecordBatch>> {
        let path = Path::from(file.object.as_str());
        let bytes = store
            .get(&path)
            .await
            .map_err(|e| DataFusionError::External(Box::new(ExecError::from(e))))?
            .bytes()
            .await
            .map_err(|e| DataFusionError::External(Box::new(ExecError::from(e))))?;
        let batches = self.parse(&bytes, &file)?;
        match &self.projection {
            Some(p) => batches
                .into_iter()
                .map(|b| b.project(p).map_err(Into::into))
                .collect(),
            None => Ok(batches),
        }
    }

    fn decoder(&self, batch_size: usize) -> arrow::csv::reader::Decoder {
        ReaderBuilder::new(Arc::clone(&self.file_schema))
            .with_header(false)
            .with_delimiter(self.options.delimiter)
            .with_batch_size(batch_size)
            .build_decoder()
    }

    /// Decodes `buf` (whole well-formed records) into batches.
    fn decode_run(&self, buf: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
        let mut decoder = self.decoder(self.batch_size);
        let mut out = Vec::new();
        let mut rest = buf;
        loop {
            let used = decoder.decode(rest)?;
            rest = &rest[used..];
            if used == 0 || decoder.capacity() == 0 {
                match decoder.flush()? {
                    Some(b) => out.push(b),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// Appends the corrupt-record column (null) in permissive mode.
    fn with_corrupt_column(&self, batch: RecordBatch, raw: Option<&str>) -> DfResult<RecordBatch> {
        if self.options.mode != CsvMode::Permissive {
            return Ok(batch);
        }
        let table = table_schema(&self.file_schema, &self.options);
        let mut columns = batch.columns().to_vec();
        let corrupt: ArrayRef = match raw {
            Some(raw) => Arc::new(StringArray::from(vec![Some(raw)])),
            None => new_null_array(&arrow::datatypes::DataType::Utf8, batch.num_rows()),
        };
        columns.push(corrupt);
        Ok(RecordBatch::try_new(table, columns)?)
    }

    fn null_row(&self, raw: &str) -> DfResult<RecordBatch> {
        let columns: Vec<ArrayRef> = self
            .file_schema
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), 1))
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&self.file_schema), columns)?;
        self.with_corrupt_column(batch, Some(raw))
    }

    /// Decodes a run of records that all have the right field count. Values that do not parse
    /// make their record malformed: the run is then decoded record by record to find them.
    fn flush_run(
        &self,
        bytes: &[u8],
        run: &[Record],
        file: &CsvFile,
        out: &mut Vec<RecordBatch>,
    ) -> DfResult<()> {
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return Ok(());
        };
        let slice = &bytes[first.start..last.end];
        match self.decode_run(slice) {
            Ok(batches) => {
                for b in batches {
                    out.push(self.with_corrupt_column(b, None)?);
                }
                Ok(())
            }
            Err(_) => {
                for rec in run {
                    let one = &bytes[rec.start..rec.end];
                    match self.decode_run(one) {
                        Ok(batches) => {
                            for b in batches {
                                out.push(self.with_corrupt_column(b, None)?);
                            }
                        }
                        Err(e) => self.on_malformed(bytes, rec, file, e.to_string(), out)?,
                    }
                }
                Ok(())
            }
        }
    }

    fn on_malformed(
        &self,
        bytes: &[u8],
        rec: &Record,
        file: &CsvFile,
        reason: String,
        out: &mut Vec<RecordBatch>,
    ) -> DfResult<()> {
        match self.options.mode {
            CsvMode::FailFast => Err(malformed(file, rec.line, reason)),
            CsvMode::DropMalformed => Ok(()),
            CsvMode::Permissive => {
                let raw = String::from_utf8_lossy(&bytes[rec.start..rec.end]);
                out.push(self.null_row(raw.trim_end_matches(['\r', '\n']))?);
                Ok(())
            }
        }
    }

    fn parse(&self, bytes: &Bytes, file: &CsvFile) -> DfResult<Vec<RecordBatch>> {
        let expected = self.file_schema.fields().len();
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(self.options.delimiter)
            .from_reader(bytes.as_ref());
        let mut record = ::csv::ByteRecord::new();
        let mut out = Vec::new();
        let mut run: Vec<Record> = Vec::new();
        let mut first = true;
        loop {
            let start = reader.position().byte() as usize;
            let line = reader.position().line();
            let more = reader
                .read_byte_record(&mut record)
                .map_err(|e| malformed(file, line, e.to_string()))?;
            if !more {
                break;
            }
            let end = reader.position().byte() as usize;
            let line = record.position().map(|p| p.line()).unwrap_or(line);
            if first && self.options.has_header {
                first = false;
                continue;
            }
            first = false;
            let rec = Record { start, end, line };
            if record.len() == expected {
                run.push(rec);
            } else {
                self.flush_run(bytes, &run, file, &mut out)?;
                run.clear();
                let reason = format!("expected {expected} fields, found {}", record.len());
                self.on_malformed(bytes, &rec, file, reason, &mut out)?;
            }
        }
        self.flush_run(bytes, &run, file, &mut out)?;
        Ok(out)
    }
}

/// A record's byte span in the file and its first line.
#[derive(Clone, Copy, Debug)]
struct Record {
    start: usize,
    end: usize,
    line: u64,
}
