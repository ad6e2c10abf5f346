//! Training data as kernels see it: a partition of rows in a dense, column-major layout.
//!
//! ```text
//!  Arrow batches ──from_batches──▶ CachedPartition { x: column-major f64|f32, label: f64 }
//!                                     │ rows split into fixed blocks of BLOCK_ROWS
//!                                     ▼
//!                         kernels: one partial per block, folded in block order
//! ```

mod dense;
mod partition;
mod state;

pub use dense::{block_ranges, DenseMatrix, Element, BLOCK_ROWS};
pub use partition::{CachedPartition, Features, Precision};
pub use state::StateSlot;

pub(crate) use partition::is_numeric;
