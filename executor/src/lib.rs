//! # kiln-executor
//!
//! Runs Kiln tasks: decodes a stage's plan fragment, swaps its shuffle-read placeholders for
//! readers of the object store, runs one partition on Arrow batches, and writes the output as
//! one object with a byte range per reduce partition.
//!
//! ```text
//!  TaskDefinition ─▶ ExecutorRuntime ─▶ plan.execute(partition) ─▶ BatchPartitioner
//!                        ▲                                              │
//!        ShuffleReaderExec (ranged GETs)          one object per attempt ▼
//!                        └───────────────── object store ◀──── MapStatus to the driver
//! ```
//!
//! The [`Executor`] trait is what the driver schedules onto; [`InProcessExecutor`] implements
//! it inside the driver's process.

pub mod cache;
pub mod codec;
pub mod error;
pub mod executor;
pub mod rpc;
pub mod runtime;
pub mod shuffle;
pub mod source;
pub mod store;
pub mod write;

pub use cache::PartitionCache;
pub use error::{ExecError, Result};
pub use executor::{Executor, InProcessExecutor};
pub use runtime::ExecutorRuntime;
pub use shuffle::StoreRoot;
