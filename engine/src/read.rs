//! Sources: existence checks with clear errors, and CSV options.

use datafusion::error::DataFusionError;
use datafusion::prelude::CsvReadOptions;
use object_store::path::Path;
use object_store::ObjectStoreExt;
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
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            has_header: true,
            delimiter: b',',
            mode: CsvMode::default(),
            corrupt_record_column: "_corrupt_record".to_string(),
            file_extension: None,
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
                    reason: e.to_string(),
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
            reason: e.to_string(),
        }),
    }
}

/// Wraps a DataFusion error raised while opening a source so it names the source.
pub(crate) fn read_error(format: &'static str, path: &str, err: DataFusionError) -> EngineError {
    EngineError::Read {
        format,
        path: path.to_string(),
        reason: err.find_root().to_string(),
    }
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
    let read_options = CsvReadOptions::new()
        .has_header(options.has_header)
        .delimiter(options.delimiter)
        .file_extension(&ext);
    let df = session
        .inner
        .ctx
        .read_csv(path, read_options)
        .await
        .map_err(|e| read_error("csv", path, e))?;
    Ok(DataFrame::new(session.clone(), df))
}
