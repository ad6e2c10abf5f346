//! # kiln-ml
//!
//! Kiln's machine learning, knowing nothing of stages, executors or networks: algorithms are
//! step machines ([`Algorithm`]) that ask for kernels to run on cached partitions and update
//! themselves from the merged partials.
//!
//! ```text
//!  Arrow batches ─▶ CachedPartition (dense, column-major)      one per partition, cached once
//!  Algorithm::start ─▶ Kernel ─▶ Partial per partition ─▶ merge in index order ─▶ next ─▶ ...
//!                                                                          ... ─▶ Done(model)
//! ```
//!
//! [`fit_local`] is the plain in-memory loop; the engine runs the same loop across executors.
//! A trained model becomes a [`Model`]: one type to save as files, load without a cluster and
//! predict with on Arrow arrays (see [`model`]).

pub mod cluster;
pub mod data;
pub mod error;
mod linalg;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod params;
pub mod random;
pub mod registry;
pub mod report;
pub mod simd;
pub mod stats;
pub mod step;

pub use data::{CachedPartition, DenseMatrix, Features, Precision};
pub use error::{MlError, Result};
pub use model::{Model, ModelKind};
pub use registry::Estimator;
pub use report::TrainingReport;
pub use step::{fit_local, Algorithm, DatasetInfo, Kernel, Partial, Progress, Step};

/// The ML crate's most used items.
pub mod prelude {
    pub use crate::data::{CachedPartition, DenseMatrix, Features, Precision};
    pub use crate::error::{MlError, Result};
    pub use crate::model::{Model, ModelKind};
    pub use crate::step::{fit_local, Algorithm, DatasetInfo, Kernel, Partial, Progress, Step};
}
