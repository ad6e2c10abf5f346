//! The planner's error type.

use datafusion::error::DataFusionError;

/// Errors raised while cutting plans into stages or encoding/decoding plans and tasks.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// DataFusion rejected or failed to build a plan.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// A task or plan message could not be decoded (truncated, corrupt or from another version).
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// Which message was being decoded.
        what: &'static str,
        /// The protobuf decoding error.
        #[source]
        source: prost::DecodeError,
    },
    /// A physical operator that Kiln cannot ship to executors.
    #[error("operator {0} cannot be distributed")]
    Unsupported(String),
    /// A bug in Kiln: an invariant that should always hold did not.
    #[error("internal planner error: {0}")]
    Internal(String),
}

/// Result alias for the planner.
pub type Result<T, E = PlanError> = std::result::Result<T, E>;
