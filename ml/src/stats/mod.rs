//! Column statistics computed by a kernel: the moments and extrema of every feature and of the
//! label, and the label's distinct values.
//!
//! Used to standardize features inside linear models, to validate classification labels, and
//! by scalers. One pass over each partition; partials merge exactly like the partitions they
//! summarize.
//!
//! ```text
//!  block 0 ─▶ Summary ─┐
//!  block 1 ─▶ Summary ─┼─ fold in block order ─▶ partition Summary ─▶ merge along the tree
//!  block 2 ─▶ Summary ─┘      (Chan et al.)
//! ```
//!
//! # Math
//!
//! Each block computes its count `n`, mean `x̄` and sum of squared deviations
//! `M2 = Σ (x − x̄)²` directly (two passes over the block, which is in cache). Two summaries
//! `a`, `b` combine by the parallel update of Chan, Golub & LeVeque (1979), "Updating formulae
//! and a pairwise algorithm for computing sample variances":
//!
//! ```text
//!  n = n_a + n_b      δ = x̄_b − x̄_a
//!  x̄ = x̄_a + δ · n_b / n
//!  M2 = M2_a + M2_b + δ² · n_a · n_b / n
//! ```
//!
//! and the variance with `ddof` delta degrees of freedom is `M2 / (n − ddof)`. Blocks are
//! folded in block order and partitions along the fixed merge tree, so the result is the same
//! bit for bit on any number of threads or executors.
//!
//! ```
//! use kiln_ml::data::{CachedPartition, DenseMatrix, Features};
//! use kiln_ml::stats::summarize;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let x = DenseMatrix::from_row_major(4, 1, &[1.0, 2.0, 3.0, 4.0]).map_err(|n| format!("{n}"))?;
//! let part = CachedPartition::new(0, Features::F64(x), Some(vec![0.0, 1.0, 1.0, 0.0]))?;
//! let summary = summarize(&[part], true)?;
//! assert_eq!(summary.mean(), &[2.5]);
//! assert!((summary.variance(1)[0] - 5.0 / 3.0).abs() < 1e-12);
//! let label = summary.label().ok_or("no label stats")?;
//! assert_eq!(label.distinct_values(), Some(&[(0.0, 2), (1.0, 2)][..]));
//! # Ok(())
//! # }
//! ```

mod summary;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use summary::{LabelLocation, LabelStats, Summary, MAX_DISTINCT_LABELS};

use crate::data::CachedPartition;
use crate::error::{MlError, Result};

/// A statistics computation to run on every cached partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StatsKernel {
    /// Per feature: count, mean, M2, min, max and number of non-zeros. With `label`, the same
    /// moments and extrema for the label, its distinct values with counts (up to
    /// [`MAX_DISTINCT_LABELS`]) and the first value that is not a class index.
    Summary {
        /// Whether to summarize the label too (the partitions must then have one).
        label: bool,
    },
}

/// The result of a [`StatsKernel`] on one or more partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StatsPartial {
    /// See [`StatsKernel::Summary`].
    Summary(Summary),
}

impl StatsKernel {
    /// Runs the kernel on one partition: blocks in parallel, folded in block order.
    ///
    /// # Errors
    /// [`MlError::InvalidData`] when the label is asked for and the partition has none.
    pub fn run(&self, partition: &CachedPartition) -> Result<StatsPartial> {
        match self {
            StatsKernel::Summary { label } => {
                let y = if *label {
                    Some(partition.require_label("a label summary")?)
                } else {
                    None
                };
                Ok(StatsPartial::Summary(Summary::of_partition(partition, y)))
            }
        }
    }
}

impl StatsPartial {
    /// Combines the partials of two disjoint sets of rows. Associative.
    ///
    /// # Errors
    /// [`MlError::Internal`] when the partials describe different columns.
    pub fn merge(self, other: Self) -> Result<Self> {
        match (self, other) {
            (StatsPartial::Summary(a), StatsPartial::Summary(b)) => {
                a.merge(b).map(StatsPartial::Summary)
            }
        }
    }

    /// The summary, for the driver.
    pub fn into_summary(self) -> Summary {
        match self {
            StatsPartial::Summary(s) => s,
        }
    }
}

/// Summarizes in-memory partitions (in parallel, merged along the fixed merge tree over their
/// positions in index order, as [`crate::step::merge_blocks`] merges): the local counterpart of
/// running [`StatsKernel::Summary`] through the engine, to the same bits.
///
/// # Errors
/// [`MlError::InvalidData`] for no partitions, or when `label` is set and a partition has no
/// label; [`MlError::Internal`] when partitions differ in their number of columns.
pub fn summarize(partitions: &[CachedPartition], label: bool) -> Result<Summary> {
    let kernel = StatsKernel::Summary { label };
    let mut partials: Vec<(u32, StatsPartial)> = partitions
        .par_iter()
        .map(|p| kernel.run(p).map(|s| (p.index(), s)))
        .collect::<Result<_>>()?;
    if partials.is_empty() {
        return Err(MlError::InvalidData("no partitions to summarize".into()));
    }
    partials.sort_by_key(|(index, _)| *index);
    let positioned = partials
        .into_iter()
        .zip(0u32..)
        .map(|((_, p), position)| (position, crate::step::Partial::Stats(p)))
        .collect();
    match crate::step::Partial::merge_ordered(positioned)? {
        crate::step::Partial::Stats(s) => Ok(s.into_summary()),
        _ => Err(MlError::Internal(
            "statistics merged into another partial".into(),
        )),
    }
}

#[cfg(test)]
mod tests;
