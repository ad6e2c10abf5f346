//! Shared helpers: seeded data and the scikit-learn reference runner.

#![allow(dead_code)]

#[path = "../../../tests/reference.rs"]
mod reference;
pub use reference::reference;

use kiln_ml::data::{DenseMatrix, Features};
use kiln_ml::CachedPartition;

/// Splits row-major `rows` (and an optional label) into `parts` f64 partitions of
/// near-equal size, in order.
pub fn partitions(rows: &[Vec<f64>], label: Option<&[f64]>, parts: usize) -> Vec<CachedPartition> {
    let n = rows.len();
    let d = rows.first().map_or(0, Vec::len);
    let per = n.div_ceil(parts.max(1)).max(1);
    (0..parts)
        .map(|p| {
            let lo = (p * per).min(n);
            let hi = ((p + 1) * per).min(n);
            let flat: Vec<f64> = rows[lo..hi].iter().flatten().copied().collect();
            let m = DenseMatrix::from_row_major(hi - lo, d, &flat).expect("shape");
            CachedPartition::new(
                p as u32,
                Features::F64(m),
                label.map(|l| l[lo..hi].to_vec()),
            )
            .expect("partition")
        })
        .collect()
}

/// Feature names `x0..x{d-1}`.
pub fn names(d: usize) -> Vec<String> {
    (0..d).map(|j| format!("x{j}")).collect()
}
