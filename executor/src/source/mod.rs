//! Kiln's own data sources (where DataFusion's do not do what Kiln promises).

pub mod cached;
pub mod csv;

pub use cached::CachedScanExec;
pub use csv::{CsvFile, CsvMode, CsvScanExec, CsvScanOptions};
