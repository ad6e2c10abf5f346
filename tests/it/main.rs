//! Kiln's cross-crate integration suite: one test binary, one module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli;
mod cluster;
mod common;
mod conformance;
mod dataframe;
mod errors;
mod events;
mod features;
mod hosts;
mod kubernetes;
mod lazy;
mod main_job;
mod ml;
mod orphans;
mod persist;
mod podman;
#[cfg(feature = "polars")]
mod polars;
mod properties;
mod s3;
mod shell;
mod shuffle;
mod sql;
mod tpch;
mod ui;
mod write;
