//! Physical rewrites that make a single-node plan safe to run as isolated tasks.

mod distributed_joins;

pub use distributed_joins::DistributedJoinRule;
