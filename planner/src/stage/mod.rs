//! Stages: the pieces a physical plan is cut into at its exchanges.
//!
//! ```text
//!   SortPreservingMergeExec                 stage 3 (result, 1 task)
//!     SortExec                                SortPreservingMerge
//!       AggregateExec (final)        ==>        ShuffleRead(stage 2, per-map)
//!         RepartitionExec(hash)               stage 2 (4 tasks): Sort <- Aggregate(final)
//!           AggregateExec (partial)             <- ShuffleRead(stage 1, shuffle)
//!             DataSourceExec                  stage 1 (map, 4 tasks): hash-partition
//!                                               Aggregate(partial) <- DataSource
//! ```

mod cut;
mod graph;

pub use cut::cut_stages;
pub use graph::{Stage, StageGraph, StageOutput};
