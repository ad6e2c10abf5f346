//! The engine's error type: what users of the Rust API see.

use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use kiln_executor::error::files_text;
use kiln_executor::ExecError;
use kiln_planner::task::{ErrorClass, ErrorDetail, TaskFailure};

/// Errors returned by [`Session`](crate::Session) and [`DataFrame`](crate::DataFrame).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A column that does not exist was referenced.
    #[error("unknown column '{column}'{}; available columns: {}", suggestion_text(.suggestion), .available.join(", "))]
    UnknownColumn {
        /// The column as written.
        column: String,
        /// The closest existing column, if one is close.
        suggestion: Option<String>,
        /// All columns in scope.
        available: Vec<String>,
    },
    /// SQL text could not be parsed.
    #[error("SQL syntax error: {0}")]
    SqlSyntax(String),
    /// A source file or location could not be read.
    #[error("cannot read {format} from '{path}': {reason}")]
    Read {
        /// File format (`parquet`, `csv`, `json`).
        format: &'static str,
        /// The path or URL as given.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A parameter given to Kiln is out of range or inconsistent.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why it is invalid and what is allowed.
        reason: String,
    },
    /// A setting (config file, environment, flag or `SET`) is unknown or has a bad value.
    #[error("invalid setting `{key}`: {reason}")]
    Config {
        /// The setting (`kiln.executors`) or the environment variable.
        key: String,
        /// Why, and where the value came from.
        reason: String,
    },
    /// `SET` on a setting that is fixed once a session runs.
    #[error("{key} is fixed while a session runs (it is {value}): give it when the session starts (Session::builder(), the config file, the {variable} variable or a flag), or SET it in kiln sql or kiln shell, which restart their session")]
    FixedSetting {
        /// The setting.
        key: String,
        /// The environment variable that sets it.
        variable: String,
        /// Its current value.
        value: String,
    },
    /// A task failed on an executor and could not be retried to success.
    #[error("stage {stage} task {partition} failed after {attempts} attempt(s): {message}")]
    TaskFailed {
        /// The stage.
        stage: u32,
        /// The partition.
        partition: u32,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// The query failed on an executor because of the data or the query itself (retrying
    /// cannot help): the message is the executor's.
    #[error("{message}")]
    Execution {
        /// The executor's error message.
        message: String,
    },
    /// Every executor of the session is lost (cluster mode): nothing can run.
    #[error("all {executors} executors are lost; last: {last}")]
    AllExecutorsLost {
        /// How many executors the session had.
        executors: usize,
        /// The last loss seen.
        last: String,
    },
    /// A shuffle object was missing, truncated or corrupt.
    #[error("shuffle output of stage {stage} (map partition {map_partition}, object '{object}') could not be read: {message}")]
    FetchFailed {
        /// The stage whose output was lost.
        stage: u32,
        /// Its map partition.
        map_partition: u32,
        /// The object.
        object: String,
        /// What the reader found.
        message: String,
    },
    /// An executor could not be reached.
    #[error("executor {executor} lost: {message}")]
    ExecutorLost {
        /// Executor id.
        executor: String,
        /// The cause.
        message: String,
    },
    /// DataFusion reported an error while planning or running on the driver.
    #[error(transparent)]
    DataFusion(DataFusionError),
    /// Arrow reported an error.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// The object store reported an error.
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
    /// The planner reported an error.
    #[error(transparent)]
    Plan(#[from] kiln_planner::PlanError),
    /// The executor layer reported an error on the driver.
    #[error(transparent)]
    Exec(#[from] kiln_executor::ExecError),
    /// An I/O error on the driver.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A training algorithm rejected its parameters or data.
    #[error(transparent)]
    Ml(#[from] kiln_ml::MlError),
    /// Code Kiln ran panicked: a bug in Kiln or in a library it uses, reached by this input
    /// (often a corrupt file). The panic was caught where it happened (planning on the driver,
    /// a task on an executor), so the process lives on.
    #[error("{during} panicked{}: {message} (a bug in Kiln or a library it uses; the input may be corrupt)", files_text(.files))]
    Panicked {
        /// What was running: the statement being planned, the task.
        during: String,
        /// The files it was reading, when known.
        files: Vec<String>,
        /// The panic's message.
        message: String,
    },
    /// A bug in Kiln.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The error an executor reported, as the type it was raised as: an ML parameter error
    /// stays [`EngineError::Ml`], a malformed record [`EngineError::Exec`], a planning error
    /// [`EngineError::DataFusion`]; what has no class of its own is
    /// [`EngineError::Execution`] with the executor's message.
    pub(crate) fn from_failure(failure: TaskFailure) -> Self {
        let Some(detail) = failure.error else {
            return EngineError::Execution {
                message: failure.message,
            };
        };
        if let Some(ml) = detail.to_ml() {
            return EngineError::Ml(ml);
        }
        let ErrorDetail {
            subject,
            reason,
            format,
            line,
            files,
            ..
        } = detail.clone();
        match detail.error_class() {
            ErrorClass::MalformedRecord => EngineError::Exec(ExecError::MalformedRecord {
                format: static_format(&format),
                path: subject,
                line,
                reason,
            }),
            ErrorClass::Panic => EngineError::Panicked {
                during: subject,
                files,
                message: reason,
            },
            ErrorClass::Plan => EngineError::DataFusion(DataFusionError::Plan(reason)),
            ErrorClass::Configuration => {
                EngineError::DataFusion(DataFusionError::Configuration(reason))
            }
            ErrorClass::ResourcesExhausted => {
                EngineError::DataFusion(DataFusionError::ResourcesExhausted(reason))
            }
            ErrorClass::NotFound => EngineError::ObjectStore(object_store::Error::NotFound {
                path: subject,
                source: reason.into(),
            }),
            ErrorClass::Io => EngineError::Io(std::io::Error::other(reason)),
            _ => EngineError::Execution {
                message: failure.message,
            },
        }
    }
}

/// The file formats Kiln's readers name in their errors.
fn static_format(format: &str) -> &'static str {
    match format {
        "csv" => "csv",
        "json" => "json",
        "parquet" => "parquet",
        "arrow" => "arrow",
        _ => "file",
    }
}

fn suggestion_text(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean '{s}'?)"),
        None => String::new(),
    }
}

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl From<DataFusionError> for EngineError {
    fn from(err: DataFusionError) -> Self {
        match classify(&err) {
            Some(e) => e,
            None => EngineError::DataFusion(err),
        }
    }
}

/// Turns the DataFusion errors users cause most often into Kiln's clearer variants.
fn classify(err: &DataFusionError) -> Option<EngineError> {
    match err {
        DataFusionError::SchemaError(schema_err, _) => match schema_err.as_ref() {
            SchemaError::FieldNotFound {
                field,
                valid_fields,
            } => {
                let available: Vec<String> = valid_fields.iter().map(|c| c.flat_name()).collect();
                let suggestion = closest(&field.name, valid_fields.iter().map(|c| c.name.as_str()));
                Some(EngineError::UnknownColumn {
                    column: field.flat_name(),
                    suggestion,
                    available,
                })
            }
            _ => None,
        },
        DataFusionError::SQL(parser_err, _) => Some(EngineError::SqlSyntax(parser_err.to_string())),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            classify(inner)
        }
        DataFusionError::Shared(inner) => classify(inner),
        _ => None,
    }
}

/// Adds the position to a syntax error the parser reported at the end of the input (where it
/// gives none): `Line: L, Column: C` just past the last character.
pub(crate) fn locate_syntax_error(err: EngineError, sql: &str) -> EngineError {
    match err {
        EngineError::SqlSyntax(msg) if !msg.contains("Line:") => {
            let trimmed = sql.trim_end();
            let line = trimmed.lines().count().max(1);
            let column = trimmed
                .lines()
                .last()
                .map(|l| l.chars().count())
                .unwrap_or(0)
                + 1;
            EngineError::SqlSyntax(format!(
                "{msg} at end of input (Line: {line}, Column: {column})"
            ))
        }
        other => other,
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let lower = name.to_lowercase();
    candidates
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 2).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Whether an object store's error says its bucket does not exist.
pub(crate) fn store_bucket_missing(e: &object_store::Error) -> bool {
    e.to_string().contains("<Code>NoSuchBucket</Code>")
}

/// An object store's error, with what to check when the server refused the request.
pub(crate) fn store_error_text(e: &object_store::Error) -> String {
    let text = e.to_string();
    // S3's codes for a signature made with the wrong secret or an unknown key.
    let refused = matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || ["SignatureDoesNotMatch", "InvalidAccessKeyId"]
        .iter()
        .any(|code| text.contains(&format!("<Code>{code}</Code>")));
    if refused {
        format!(
            "{text} (the server refused the request: check the access key and secret, \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for S3, and what they may read)"
        )
    } else if store_bucket_missing(e) {
        format!("the bucket does not exist ({text})")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_only() {
        let cols = ["price", "quantity", "discount"];
        assert_eq!(
            closest("prise", cols.iter().copied()),
            Some("price".to_string())
        );
        assert_eq!(
            closest("QUANTITY", cols.iter().copied()),
            Some("quantity".to_string())
        );
        assert_eq!(closest("zzzzzzzz", cols.iter().copied()), None);
    }
}
