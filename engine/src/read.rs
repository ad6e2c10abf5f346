//! Where DataFrames come from: files (with existence checks, clear errors and CSV options),
//! plain DataFusion SQL, record batches and tables. These are [`Session`] methods, written
//! here, above the session and the DataFrame they join.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::datasource::TableType;
use datafusion::datasource::{provider_as_source, MemTable};
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::{CreateMemoryTable, DdlStatement, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{JsonReadOptions, ParquetReadOptions};
use kiln_executor::source::csv::table_schema;
use kiln_executor::source::{CsvFile, CsvMode as ScanMode, CsvScanExec, CsvScanOptions};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::dataframe::DataFrame;
use crate::error::{EngineError, Result};
use crate::session::Session;

/// What to do with a CSV record whose field count or values do not fit the schema
/// (Spark's `mode` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CsvMode {
    /// Keep the row: fields that do not fit become null and the raw line goes into the
    /// corrupt-record column (`_corrupt_record` by default).
    #[default]
    Permissive,
    /// Drop malformed rows.
    DropMalformed,
    /// Fail at the first malformed row, naming the file and line.
    FailFast,
}

/// Options for [`Session::read_csv`].
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Whether the first line holds column names (default true).
    pub has_header: bool,
    /// Field delimiter (default `,`).
    pub delimiter: u8,
    /// Malformed-record handling (default permissive).
    pub mode: CsvMode,
    /// Name of the column that holds malformed lines in permissive mode.
    pub corrupt_record_column: String,
    /// File extension to pick up in a directory (default: the path's own, or `.csv`).
    pub file_extension: Option<String>,
    /// The columns and their types; inferred from the first well-formed records when `None`.
    pub schema: Option<SchemaRef>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            has_header: true,
            delimiter: b',',
            mode: CsvMode::default(),
            corrupt_record_column: "_corrupt_record".to_string(),
            file_extension: None,
            schema: None,
        }
    }
}

impl CsvOptions {
    /// Sets the malformed-record mode.
    pub fn mode(mut self, mode: CsvMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the delimiter.
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// Sets the schema instead of inferring it.
    pub fn schema(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Sets whether there is a header line.
    pub fn has_header(mut self, has_header: bool) -> Self {
        self.has_header = has_header;
        self
    }
}

/// The extension of a single-file path, or `default` for a directory.
pub(crate) fn extension_of(path: &str, default: &str) -> String {
    let last = path.rsplit('/').next().unwrap_or(path);
    match last.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !path.ends_with('/') => format!(".{ext}"),
        _ => default.to_string(),
    }
}

/// Fails early, naming the path, when a source does not exist.
pub(crate) async fn check_exists(
    session: &Session,
    path: &str,
    format: &'static str,
) -> Result<()> {
    if !path.contains("://") {
        if std::path::Path::new(path).exists() {
            return Ok(());
        }
        return Err(EngineError::Read {
            format,
            path: path.to_string(),
            reason: "no such file or directory".to_string(),
        });
    }
    let url = Url::parse(path).map_err(|e| EngineError::Read {
        format,
        path: path.to_string(),
        reason: format!("not a valid URL: {e}"),
    })?;
    let base = datafusion::execution::object_store::ObjectStoreUrl::parse(format!(
        "{}://{}",
        url.scheme(),
        url.authority()
    ))?;
    let store = session
        .inner
        .ctx
        .runtime_env()
        .object_store(&base)
        .map_err(|e| read_error(format, path, e))?;
    let object = Path::from_url_path(url.path()).map_err(|e| EngineError::Read {
        format,
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    match store.head(&object).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::NotFound { .. }) => {
            // Maybe a prefix ("directory") holding files.
            use futures::StreamExt;
            let mut listing = store.list(Some(&object));
            match listing.next().await {
                Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(EngineError::Read {
                    format,
                    path: path.to_string(),
                    reason: crate::error::store_error_text(&e),
                }),
                None => Err(EngineError::Read {
                    format,
                    path: path.to_string(),
                    reason: "no such object or prefix".to_string(),
                }),
            }
        }
        Err(e) => Err(EngineError::Read {
            format,
            path: path.to_string(),
            reason: crate::error::store_error_text(&e),
        }),
    }
}

/// Wraps a DataFusion error raised while opening a source so it names the source.
pub(crate) fn read_error(format: &'static str, path: &str, err: DataFusionError) -> EngineError {
    EngineError::Read {
        format,
        path: path.to_string(),
        reason: match err.find_root() {
            DataFusionError::ObjectStore(e) => crate::error::store_error_text(e),
            root => root.to_string(),
        },
    }
}

/// Rows sampled to infer CSV column types.
const INFER_RECORDS: usize = 1000;
/// Bytes read from the first file to infer CSV column types.
const INFER_BYTES: u64 = 1 << 20;

/// A location resolved to a store and the objects under it.
struct Listing {
    store_url: ObjectStoreUrl,
    store: Arc<dyn ObjectStore>,
    files: Vec<(Path, String)>,
}

/// Lists the files a path or URL names: the object itself, or the objects under it with
/// `extension`, sorted by name.
async fn list_files(
    session: &Session,
    location: &str,
    extension: &str,
    format: &'static str,
) -> Result<Listing> {
    let url = if location.contains("://") {
        Url::parse(location).map_err(|e| EngineError::Read {
            format,
            path: location.to_string(),
            reason: format!("not a valid URL: {e}"),
        })?
    } else {
        let abs = std::path::absolute(location)?;
        Url::from_file_path(&abs).map_err(|()| EngineError::Read {
            format,
            path: location.to_string(),
            reason: "not a usable path".to_string(),
        })?
    };
    let store_url = ObjectStoreUrl::parse(format!("{}://{}", url.scheme(), url.authority()))?;
    let store = session
        .inner
        .ctx
        .runtime_env()
        .object_store(&store_url)
        .map_err(|e| read_error(format, location, e))?;
    let object = Path::from_url_path(url.path()).map_err(|e| EngineError::Read {
        format,
        path: location.to_string(),
        reason: e.to_string(),
    })?;
    let display = |p: &Path| {
        if location.contains("://") {
            format!("{}://{}/{}", url.scheme(), url.authority(), p)
        } else {
            format!("/{p}")
        }
    };
    let files = match store.head(&object).await {
        Ok(meta) => vec![(meta.location.clone(), display(&meta.location))],
        Err(_) => {
            use futures::TryStreamExt;
            let mut found: Vec<Path> = store
                .list(Some(&object))
                .map_ok(|m| m.location)
                .try_collect()
                .await?;
            found.retain(|p| p.as_ref().ends_with(extension));
            found.sort();
            found
                .into_iter()
                .map(|p| {
                    let d = display(&p);
                    (p, d)
                })
                .collect()
        }
    };
    if files.is_empty() {
        return Err(EngineError::Read {
            format,
            path: location.to_string(),
            reason: format!("no files ending in '{extension}'"),
        });
    }
    Ok(Listing {
        store_url,
        store,
        files,
    })
}

/// Infers column names and types from the first well-formed records of a file.
fn infer_csv_schema(sample: &[u8], options: &CsvOptions, path: &str) -> Result<Schema> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(options.delimiter)
        .from_reader(sample);
    let mut records = reader.byte_records();
    let bad = |reason: String| EngineError::Read {
        format: "csv",
        path: path.to_string(),
        reason,
    };
    let first = match records.next() {
        Some(r) => r.map_err(|e| bad(e.to_string()))?,
        None => return Err(bad("the file is empty".to_string())),
    };
    let names: Vec<String> = if options.has_header {
        first
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_string())
            .collect()
    } else {
        (1..=first.len()).map(|i| format!("column_{i}")).collect()
    };
    // Re-serialize well-formed records for arrow's type inference.
    let mut good = ::csv::WriterBuilder::new()
        .delimiter(options.delimiter)
        .from_writer(Vec::new());
    if !options.has_header {
        good.write_byte_record(&first)
            .map_err(|e| bad(e.to_string()))?;
    }
    // The last record of a byte-limited sample may be cut short: skip it.
    let rest: Vec<_> = records.take(INFER_RECORDS + 1).collect();
    let keep = rest
        .len()
        .saturating_sub(usize::from(sample.len() as u64 >= INFER_BYTES));
    for rec in rest.into_iter().take(keep.min(INFER_RECORDS)).flatten() {
        if rec.len() == names.len() {
            good.write_byte_record(&rec)
                .map_err(|e| bad(e.to_string()))?;
        }
    }
    let buf = good.into_inner().map_err(|e| bad(e.to_string()))?;
    let format = arrow::csv::reader::Format::default()
        .with_header(false)
        .with_delimiter(options.delimiter);
    let (inferred, _) = format
        .infer_schema(buf.as_slice(), Some(INFER_RECORDS))
        .map_err(|e| bad(e.to_string()))?;
    let fields: Vec<Field> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let dt = inferred
                .fields()
                .get(i)
                .map(|f| f.data_type().clone())
                .unwrap_or(DataType::Utf8);
            Field::new(name, dt, true)
        })
        .collect();
    Ok(Schema::new(fields))
}

/// Reads CSV with the given options.
pub(crate) async fn read_csv(
    session: &Session,
    path: &str,
    options: CsvOptions,
) -> Result<DataFrame> {
    let ext = options
        .file_extension
        .clone()
        .unwrap_or_else(|| extension_of(path, ".csv"));
    let listing = list_files(session, path, &ext, "csv").await?;
    let schema = match &options.schema {
        Some(schema) => Arc::clone(schema),
        None => {
            // Infer from the first file that has any bytes.
            let mut sample = None;
            for (file, display) in &listing.files {
                let size = listing.store.head(file).await?.size;
                if size > 0 {
                    let bytes = listing
                        .store
                        .get_range(file, 0..size.min(INFER_BYTES))
                        .await?;
                    sample = Some((bytes, display.clone()));
                    break;
                }
            }
            let Some((bytes, display)) = sample else {
                return Err(EngineError::Read {
                    format: "csv",
                    path: path.to_string(),
                    reason: "every file is empty: nothing to infer a schema from (give one with CsvOptions::schema)".to_string(),
                });
            };
            Arc::new(infer_csv_schema(&bytes, &options, &display)?)
        }
    };
    if options.mode == CsvMode::Permissive
        && schema
            .field_with_name(&options.corrupt_record_column)
            .is_ok()
    {
        return Err(EngineError::InvalidParameter {
            name: "corrupt_record_column",
            reason: format!(
                "'{}' is already a column of '{path}'; choose another name",
                options.corrupt_record_column
            ),
        });
    }
    let table = CsvTable {
        store_url: listing.store_url,
        files: listing
            .files
            .into_iter()
            .map(|(p, display)| CsvFile {
                object: p.to_string(),
                display,
            })
            .collect(),
        file_schema: Arc::clone(&schema),
        options: CsvScanOptions {
            has_header: options.has_header,
            delimiter: options.delimiter,
            mode: match options.mode {
                CsvMode::Permissive => ScanMode::Permissive,
                CsvMode::DropMalformed => ScanMode::DropMalformed,
                CsvMode::FailFast => ScanMode::FailFast,
            },
            corrupt_column: options.corrupt_record_column.clone(),
        },
        partitions: session.total_slots().max(1),
    };
    let df = session.inner.ctx.read_table(Arc::new(table))?;
    Ok(DataFrame::new(session.clone(), df))
}

/// A CSV table whose scan is Kiln's [`CsvScanExec`].
#[derive(Debug)]
struct CsvTable {
    store_url: ObjectStoreUrl,
    files: Vec<CsvFile>,
    file_schema: SchemaRef,
    options: CsvScanOptions,
    partitions: usize,
}

#[async_trait]
impl TableProvider for CsvTable {
    fn schema(&self) -> SchemaRef {
        table_schema(&self.file_schema, &self.options)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let groups = self.partitions.min(self.files.len()).max(1);
        let mut files: Vec<Vec<CsvFile>> = vec![Vec::new(); groups];
        for (i, f) in self.files.iter().enumerate() {
            files[i % groups].push(f.clone());
        }
        Ok(Arc::new(CsvScanExec::try_new(
            self.store_url.clone(),
            files,
            Arc::clone(&self.file_schema),
            self.options.clone(),
            projection.cloned(),
        )?))
    }
}

/// Whether a table name names files: a URL, a path, or a file name with a data format's
/// extension.
fn names_files(name: &str) -> bool {
    const EXTENSIONS: [&str; 7] = [
        ".parquet", ".csv", ".tsv", ".json", ".ndjson", ".arrow", ".avro",
    ];
    name.contains('/')
        || name.contains("://")
        || EXTENSIONS
            .iter()
            .any(|e| name.to_ascii_lowercase().ends_with(e))
}

/// A listing table over the files `url` names (format and schema inferred, as DataFusion's
/// dynamic file catalog does); `None` when they cannot be listed or have no known format.
async fn url_table(
    state: &datafusion::execution::SessionState,
    url: &str,
) -> Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
    use datafusion::datasource::listing::{
        ListingTable, ListingTableConfig, ListingTableConfigExt, ListingTableUrl,
    };
    let Ok(table_url) = ListingTableUrl::parse(url) else {
        return Ok(None);
    };
    let Ok(config) = ListingTableConfig::new(table_url)
        .infer_options(state)
        .await
    else {
        return Ok(None);
    };
    let config = config
        .infer_partitions_from_path(state)
        .await?
        .infer_schema(state)
        .await?;
    Ok(Some(Arc::new(ListingTable::try_new(config)?)))
}

/// The session's sources of DataFrames.
impl Session {
    /// Plain DataFusion SQL, after Kiln's table functions were rewritten away.
    pub(crate) async fn datafusion_sql(&self, sql: &str) -> Result<DataFrame> {
        let ctx = &self.inner.ctx;
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state
            .sql_to_statement(sql, &dialect)
            .map_err(|e| crate::error::locate_syntax_error(e.into(), sql))?;
        // `SELECT * FROM 'data/t.parquet'` (a file, a directory, a glob or a URL), as in
        // datafusion-cli and DuckDB: a table reference that names files and is no table is
        // a listing table for this statement (its store registered first for a URL).
        let mut temporary = Vec::new();
        // `CREATE EXTERNAL TABLE ... LOCATION 's3://...'` lists its files while planned.
        if let datafusion::sql::parser::Statement::CreateExternalTable(create) = &statement {
            for location in create.locations.iter().filter(|l| l.contains("://")) {
                self.inner.stores.ensure(location)?;
            }
        }
        for table in state.resolve_table_references(&statement)? {
            let name = table.table();
            if name.contains("://") {
                self.inner.stores.ensure(name)?;
            }
            if names_files(name) && !ctx.table_exist(table.clone())? {
                if let Some(provider) = url_table(&state, name).await? {
                    ctx.register_table(table.clone(), provider)?;
                    temporary.push(table);
                }
            }
        }
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| crate::error::locate_syntax_error(e.into(), sql));
        // The plan holds the tables it scans: the names can go.
        for table in temporary {
            ctx.deregister_table(table)?;
        }
        let plan = plan?;
        let plan = self.distribute_create_table(plan).await?;
        let df = ctx.execute_logical_plan(plan).await?;
        Ok(DataFrame::new(self.clone(), df))
    }

    /// `CREATE TABLE ... AS query`: DataFusion would run the query in the driver's process;
    /// Kiln runs it on the executors and hands DataFusion the collected rows, so the table is
    /// made (with its constraints, defaults and `IF NOT EXISTS` / `OR REPLACE`) as DataFusion
    /// makes it.
    async fn distribute_create_table(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = &plan else {
            return Ok(plan);
        };
        let trivial = matches!(
            create.input.as_ref(),
            LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_)
        );
        let exists = self.inner.ctx.table_exist(create.name.clone())?;
        // An existing table that is neither kept nor replaced is DataFusion's error to give,
        // before any data moves.
        if trivial || (exists && !create.or_replace) {
            return Ok(plan);
        }
        let state = self.inner.ctx.state();
        let query = datafusion::dataframe::DataFrame::new(state, create.input.as_ref().clone());
        // The table's schema is the optimized query's, as DataFusion makes it.
        let optimized = self.inner.ctx.state().optimize(&create.input)?;
        let schema = Arc::new(optimized.schema().as_arrow().clone());
        // The rows as the table's schema has them (the plan's physical schema may differ in
        // nullability or metadata, which a memory table refuses).
        let batches = DataFrame::new(self.clone(), query)
            .collect()
            .await?
            .into_iter()
            .map(|b| RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // Contiguous runs of batches per partition: scans read the table in parallel, and
        // in the order the query produced it.
        let parts = self.total_slots().clamp(1, batches.len().max(1));
        let per = batches.len().div_ceil(parts).max(1);
        let partitions: Vec<Vec<RecordBatch>> = batches.chunks(per).map(<[_]>::to_vec).collect();
        let partitions = if partitions.is_empty() {
            vec![Vec::new()]
        } else {
            partitions
        };
        let rows = MemTable::try_new(schema, partitions)?;
        let input = LogicalPlanBuilder::scan(
            create.name.clone(),
            provider_as_source(Arc::new(rows)),
            None,
        )?
        .build()?;
        Ok(LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(
            CreateMemoryTable {
                input: Arc::new(input),
                ..create.clone()
            },
        )))
    }

    /// Reads Parquet files: a file, a directory, or an object store URL.
    ///
    /// # Errors
    /// [`EngineError::Read`] naming the path when it is missing or not Parquet.
    pub async fn read_parquet(&self, path: &str) -> Result<DataFrame> {
        crate::panic::guard(
            || "reading the Parquet schema".to_string(),
            || vec![path.to_string()],
            self.read_parquet_unguarded(path),
        )
        .await
    }

    async fn read_parquet_unguarded(&self, path: &str) -> Result<DataFrame> {
        self.inner.stores.ensure(path)?;
        check_exists(self, path, "parquet").await?;
        let df = self
            .inner
            .ctx
            .read_parquet(path, ParquetReadOptions::default())
            .await
            .map_err(|e| read_error("parquet", path, e))?;
        Ok(DataFrame::new(self.clone(), df))
    }

    /// Reads CSV files with a header row. See [`CsvOptions`] for malformed-record handling
    /// (Spark's `permissive`, `drop_malformed` and `fail_fast` modes).
    ///
    /// # Errors
    /// [`EngineError::Read`] naming the path when it is missing or unreadable.
    pub async fn read_csv(&self, path: &str, options: CsvOptions) -> Result<DataFrame> {
        crate::panic::guard(
            || "reading the CSV schema".to_string(),
            || vec![path.to_string()],
            async {
                self.inner.stores.ensure(path)?;
                check_exists(self, path, "csv").await?;
                read_csv(self, path, options).await
            },
        )
        .await
    }

    /// Reads newline-delimited JSON files.
    ///
    /// # Errors
    /// [`EngineError::Read`] naming the path when it is missing or unreadable.
    pub async fn read_json(&self, path: &str) -> Result<DataFrame> {
        crate::panic::guard(
            || "reading the JSON schema".to_string(),
            || vec![path.to_string()],
            self.read_json_unguarded(path),
        )
        .await
    }

    async fn read_json_unguarded(&self, path: &str) -> Result<DataFrame> {
        self.inner.stores.ensure(path)?;
        check_exists(self, path, "json").await?;
        let ext = extension_of(path, ".json");
        let options = JsonReadOptions {
            file_extension: &ext,
            ..Default::default()
        };
        let df = self
            .inner
            .ctx
            .read_json(path, options)
            .await
            .map_err(|e| read_error("json", path, e))?;
        Ok(DataFrame::new(self.clone(), df))
    }

    /// A DataFrame over in-memory batches (all of `schema`). The batches travel to executors
    /// inside the plan, so keep them modest; write large data to Parquet first.
    ///
    /// # Errors
    /// If a batch's schema differs from `schema`.
    pub fn from_batches(&self, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<DataFrame> {
        let slots = self.total_slots().max(1);
        let mut partitions: Vec<Vec<RecordBatch>> =
            vec![Vec::new(); slots.min(batches.len().max(1))];
        let n = partitions.len();
        for (i, b) in batches.into_iter().enumerate() {
            partitions[i % n].push(b);
        }
        let table = MemTable::try_new(schema, partitions)?;
        let df = self.inner.ctx.read_table(Arc::new(table))?;
        Ok(DataFrame::new(self.clone(), df))
    }

    /// Registers a DataFrame as a table for SQL.
    ///
    /// # Errors
    /// If the name is taken.
    pub fn register(&self, name: &str, df: &DataFrame) -> Result<()> {
        self.inner
            .ctx
            .register_table(name, df.inner().clone().into_view())?;
        Ok(())
    }

    /// Registers Parquet files as a table for SQL.
    ///
    /// # Errors
    /// As [`Session::read_parquet`].
    pub async fn register_parquet(&self, name: &str, path: &str) -> Result<()> {
        let df = self.read_parquet(path).await?;
        self.register(name, &df)
    }

    /// Registers CSV files as a table for SQL.
    ///
    /// # Errors
    /// As [`Session::read_csv`].
    pub async fn register_csv(&self, name: &str, path: &str, options: CsvOptions) -> Result<()> {
        let df = self.read_csv(path, options).await?;
        self.register(name, &df)
    }

    /// A registered table as a DataFrame.
    ///
    /// # Errors
    /// If no table has that name.
    pub async fn table(&self, name: &str) -> Result<DataFrame> {
        let df = self.inner.ctx.table(name).await?;
        Ok(DataFrame::new(self.clone(), df))
    }
}
