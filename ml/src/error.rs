//! The ML crate's error type.

use std::borrow::Cow;

use arrow::error::ArrowError;

/// Errors raised by Kiln's ML algorithms, kernels and model files.
///
/// Messages name what the user can fix: the parameter and its allowed range, the column, the
/// row.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// A hyper-parameter is out of range or inconsistent, e.g. `k must be >= 1, got 0`.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter as the user names it (`k`, `max_iter`, `reg_param`, ...). Owned when
        /// the error was decoded from another process.
        name: Cow<'static, str>,
        /// Why it is invalid and what is allowed.
        reason: String,
    },
    /// A feature or label column cannot be used as given (missing, not numeric, null, NaN).
    #[error("column '{column}': {reason}")]
    InvalidColumn {
        /// The column.
        column: String,
        /// What is wrong with it, with the row where known and what to do about it.
        reason: String,
    },
    /// The training data cannot train this model (empty, too few distinct points, a label the
    /// algorithm cannot take).
    #[error("invalid training data: {0}")]
    InvalidData(String),
    /// Arrays given to a trained model do not fit it (number or length of the feature
    /// columns), or the model cannot give what was asked (e.g. class probabilities of a
    /// regression).
    #[error("cannot predict: {0}")]
    InvalidInput(String),
    /// A model file or directory could not be read or written.
    #[error("model file '{path}': {reason}")]
    ModelFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Arrow rejected an array or batch.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    /// A kernel, partial or model could not be encoded or decoded.
    #[error("cannot encode or decode {what}: {reason}")]
    Codec {
        /// What was being encoded or decoded.
        what: &'static str,
        /// The underlying error.
        reason: String,
    },
    /// A bug in Kiln: an invariant that should always hold did not.
    #[error("internal ML error: {0}")]
    Internal(String),
}

/// Result alias for the ML crate.
pub type Result<T, E = MlError> = std::result::Result<T, E>;

impl MlError {
    /// An [`MlError::InvalidParameter`].
    pub fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            name: Cow::Borrowed(name),
            reason: reason.into(),
        }
    }
}
