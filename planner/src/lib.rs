//! # kiln-planner
//!
//! Turns DataFusion physical plans into what Kiln's scheduler runs, and into bytes that
//! executors can run:
//!
//! ```text
//!  ExecutionPlan ──cut_stages──▶ StageGraph ──plan_to_bytes──▶ TaskDefinition ──▶ executor
//!  (one node)                    (stages cut at              (datafusion-proto +
//!                                 every exchange)             Kiln codec)
//! ```
//!
//! The planner knows nothing of networks or object stores: exchanges become
//! [`UnresolvedShuffleExec`] placeholders that executors resolve to real shuffle reads.
//!
//! ```
//! use kiln_planner::task::{TaskDefinition, WireMessage};
//! let task = TaskDefinition { job_id: "j1".into(), stage_id: 2, ..Default::default() };
//! let back = TaskDefinition::from_bytes(&task.to_bytes()).unwrap();
//! assert_eq!(back.stage_id, 2);
//! ```

pub mod codec;
pub mod error;
pub mod functions;
mod leaf;
pub mod predict;
pub mod rules;
pub mod ship;
pub mod shuffle_read;
pub mod stage;
pub mod task;

pub use codec::{plan_from_bytes, plan_to_bytes, KilnPhysicalCodec};
pub use error::{PlanError, Result};
pub use shuffle_read::{ReadMode, UnresolvedShuffleExec};
pub use stage::{cut_stages, Stage, StageGraph, StageOutput};

/// The planner's most used items.
pub mod prelude {
    pub use crate::codec::{plan_from_bytes, plan_to_bytes, KilnPhysicalCodec};
    pub use crate::stage::{cut_stages, Stage, StageGraph, StageOutput};
    pub use crate::task::{MapStatus, StageInput, TaskDefinition, TaskStatus, WireMessage};
}
