//! kiln-ml integration tests: algorithms driven by the in-memory loop, checked against
//! scikit-learn run in the project's Python environment.

// The workspace lints deny these in library code; tests fail loudly instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod kmeans;
mod linear;
mod metrics;
mod model;
