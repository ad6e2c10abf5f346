//! Kiln's own data sources (where DataFusion's do not do what Kiln promises).

pub mod csv;

pub use csv::{CsvFile, CsvMode, CsvScanExec, CsvScanOptions};
