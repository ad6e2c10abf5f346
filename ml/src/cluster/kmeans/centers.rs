//! What every k-means pass shares: the centres as they travel in kernels, and the chunk of
//! [`LANES`] rows the fused loop works on.

use serde::{Deserialize, Serialize};

use crate::data::CachedPartition;
use crate::error::{MlError, Result};

/// Rows handled together by the fused distance loop: enough independent accumulators to keep
/// the floating-point units busy, few enough to stay in registers.
pub(crate) const LANES: usize = 16;

/// How far ahead of the chunk being compared [`for_each_nearest`] asks for rows: two chunks
/// (several hundred nanoseconds of work) cover the memory latency; without these requests a
/// streaming pass took twice as long.
pub(super) const PREFETCH_ROWS: usize = 2 * LANES;

/// `k` centres of dimension `dim`, row-major: centre `c` is `values[c * dim .. (c + 1) * dim]`.
/// This is how centres travel inside kernels (see [`crate::step::WIRE_VERSION`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CenterSet {
    /// Number of centres.
    pub k: usize,
    /// Coordinates per centre.
    pub dim: usize,
    /// The coordinates, row-major.
    pub values: Vec<f64>,
}

impl CenterSet {
    /// Centres from rows of equal length.
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`] (`centers`) when there are no rows, a row is empty, rows
    /// differ in length, or a coordinate is not finite.
    pub fn from_rows<R: AsRef<[f64]>>(rows: &[R]) -> Result<Self> {
        let dim = rows.first().map_or(0, |r| r.as_ref().len());
        let set = Self {
            k: rows.len(),
            dim,
            values: rows
                .iter()
                .flat_map(|r| r.as_ref().iter().copied())
                .collect(),
        };
        if let Some((i, r)) = rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.as_ref().len() != dim)
        {
            return Err(MlError::param(
                "centers",
                format!(
                    "centre {i} has {} coordinates but centre 0 has {dim}",
                    r.as_ref().len()
                ),
            ));
        }
        set.check()?;
        Ok(set)
    }

    /// Centre `c`.
    pub fn row(&self, c: usize) -> &[f64] {
        &self.values[c * self.dim..(c + 1) * self.dim]
    }

    /// The centres as rows.
    pub fn to_rows(&self) -> Vec<Vec<f64>> {
        self.values
            .chunks_exact(self.dim.max(1))
            .map(<[f64]>::to_vec)
            .collect()
    }

    /// Checks the shape (a kernel may arrive from bytes) and that coordinates are finite.
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`] (`centers`) naming what is inconsistent.
    pub fn check(&self) -> Result<()> {
        if self.k == 0 || self.dim == 0 {
            return Err(MlError::param(
                "centers",
                format!(
                    "need at least one centre of at least one coordinate, got {} x {}",
                    self.k, self.dim
                ),
            ));
        }
        if self.values.len() != self.k * self.dim {
            return Err(MlError::param(
                "centers",
                format!(
                    "{} values for {} centres of {} coordinates",
                    self.values.len(),
                    self.k,
                    self.dim
                ),
            ));
        }
        if let Some(i) = self.values.iter().position(|v| !v.is_finite()) {
            return Err(MlError::param(
                "centers",
                format!(
                    "centre {} has the non-finite coordinate {}",
                    i / self.dim,
                    self.values[i]
                ),
            ));
        }
        Ok(())
    }

    /// The partition's features must have this many columns.
    pub(super) fn check_partition(&self, partition: &CachedPartition) -> Result<()> {
        self.check()?;
        if partition.cols() != self.dim {
            return Err(MlError::InvalidData(format!(
                "partition {} has {} feature columns but the centres have {} coordinates",
                partition.index(),
                partition.cols(),
                self.dim
            )));
        }
        Ok(())
    }
}

/// One chunk of [`LANES`] rows as `f64`: `chunk[j][l]` is column `j` of the chunk's row `l`.
pub(crate) type Chunk = [[f64; LANES]];

/// Lane `l`'s coordinates in a chunk.
#[inline(always)]
pub(crate) fn lane(chunk: &Chunk, l: usize) -> impl Iterator<Item = f64> + '_ {
    chunk.iter().map(move |col| col[l])
}
