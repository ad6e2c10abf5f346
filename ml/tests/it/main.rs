//! kiln-ml integration tests: algorithms driven by the in-memory loop, checked against
//! scikit-learn run in the project's Python environment.

mod common;
