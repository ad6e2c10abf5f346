//! kiln-ml integration tests: algorithms driven by the in-memory loop, checked against
//! scikit-learn run in the project's Python environment.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod linear;
