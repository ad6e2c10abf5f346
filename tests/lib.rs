//! Shared fixtures for Kiln's cross-crate suites and benchmarks: TPC-H data generated in
//! process (no downloads) and the 22 TPC-H queries.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

pub mod conformance;
pub mod containers;
pub mod reference;

/// Peak resident memory (VmHWM) of this process in MiB, for benchmarks; NaN where
/// `/proc/self/status` is not available.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Error type of the fixtures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// TPC-H data and queries.
pub mod tpch {
    use super::*;

    /// The eight TPC-H tables.
    pub const TABLES: [&str; 8] = [
        "lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region",
    ];

    /// The text of TPC-H query `n` (1..=22).
    pub fn query(n: usize) -> Option<&'static str> {
        QUERIES.get(n.wrapping_sub(1)).copied()
    }

    const QUERIES: [&str; 22] = [
        include_str!("tpch/queries/q1.sql"),
        include_str!("tpch/queries/q2.sql"),
        include_str!("tpch/queries/q3.sql"),
        include_str!("tpch/queries/q4.sql"),
        include_str!("tpch/queries/q5.sql"),
        include_str!("tpch/queries/q6.sql"),
        include_str!("tpch/queries/q7.sql"),
        include_str!("tpch/queries/q8.sql"),
        include_str!("tpch/queries/q9.sql"),
        include_str!("tpch/queries/q10.sql"),
        include_str!("tpch/queries/q11.sql"),
        include_str!("tpch/queries/q12.sql"),
        include_str!("tpch/queries/q13.sql"),
        include_str!("tpch/queries/q14.sql"),
        include_str!("tpch/queries/q15.sql"),
        include_str!("tpch/queries/q16.sql"),
        include_str!("tpch/queries/q17.sql"),
        include_str!("tpch/queries/q18.sql"),
        include_str!("tpch/queries/q19.sql"),
        include_str!("tpch/queries/q20.sql"),
        include_str!("tpch/queries/q21.sql"),
        include_str!("tpch/queries/q22.sql"),
    ];

    fn write_table(
        dir: &Path,
        table: &str,
        part: i32,
        batches: impl Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>>,
    ) -> Result<(), BoxError> {
        let table_dir = dir.join(table);
        std::fs::create_dir_all(&table_dir)?;
        let mut writer: Option<ArrowWriter<File>> = None;
        for b in batches {
            let b = b?;
            let w = match &mut writer {
                Some(w) => w,
                None => {
                    let file = File::create(table_dir.join(format!("part-{part}.parquet")))?;
                    writer.insert(ArrowWriter::try_new(file, b.schema(), None)?)
                }
            };
            w.write(&b)?;
        }
        let Some(writer) = writer else {
            return Ok(());
        };
        writer.close()?;
        Ok(())
    }

    /// Generates TPC-H at scale factor `sf` as Parquet under `dir/{table}/part-{i}.parquet`,
    /// the large tables split into `parts` files. Skips the work if `dir` already holds it.
    pub fn generate_parquet(dir: &Path, sf: f64, parts: i32) -> Result<(), BoxError> {
        let marker = dir.join(format!("_done_sf{sf}_p{parts}"));
        if marker.exists() {
            return Ok(());
        }
        const BATCH: usize = 8192;
        for part in 1..=parts {
            write_table(
                dir,
                "lineitem",
                part,
                LineItemArrow::new(LineItemGenerator::new(sf, part, parts)).with_batch_size(BATCH),
            )?;
            write_table(
                dir,
                "orders",
                part,
                OrderArrow::new(OrderGenerator::new(sf, part, parts)).with_batch_size(BATCH),
            )?;
            write_table(
                dir,
                "customer",
                part,
                CustomerArrow::new(CustomerGenerator::new(sf, part, parts)).with_batch_size(BATCH),
            )?;
            write_table(
                dir,
                "part",
                part,
                PartArrow::new(PartGenerator::new(sf, part, parts)).with_batch_size(BATCH),
            )?;
            write_table(
                dir,
                "partsupp",
                part,
                PartSuppArrow::new(PartSuppGenerator::new(sf, part, parts)).with_batch_size(BATCH),
            )?;
            write_table(
                dir,
                "supplier",
                part,
                SupplierArrow::new(SupplierGenerator::new(sf, part, parts)).with_batch_size(BATCH),
            )?;
        }
        write_table(
            dir,
            "nation",
            1,
            NationArrow::new(NationGenerator::new(sf, 1, 1)).with_batch_size(BATCH),
        )?;
        write_table(
            dir,
            "region",
            1,
            RegionArrow::new(RegionGenerator::new(sf, 1, 1)).with_batch_size(BATCH),
        )?;
        File::create(marker)?;
        Ok(())
    }

    /// The directory of one table.
    pub fn table_dir(dir: &Path, table: &str) -> PathBuf {
        dir.join(table)
    }
}
