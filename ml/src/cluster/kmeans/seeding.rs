//! The k-means|| kernels: sampling candidates in proportion to their cost, and seeded picks.

use std::ops::Range;

use rayon::prelude::*;

use super::centers::{lane, CenterSet};
use super::nearest::{for_each_nearest, Nearest};
use super::partials::PointSet;
use crate::data::{block_ranges, DenseMatrix, Element};
use crate::error::{MlError, Result};
use crate::random::{hash_step, mix64, point_hash, unit, HASH_START};
use crate::simd::CodePath;

// Purposes of k-means' seeded draws (see [`crate::random::stream`]).
pub(crate) const SALT_PICK: u64 = 0x5049_434B; // "PICK"
pub(crate) const SALT_SAMPLE: u64 = 0x5341_4D50; // "SAMP"
pub(crate) const SALT_LOCAL: u64 = 0x4C4F_4341; // "LOCA"
pub(crate) const SALT_SILHOUETTE: u64 = 0x5349_4C48; // "SILH"

/// k-means|| sampling: the rows with `unit(hash) < ratio · d²`, keyed by their hash.
pub(super) fn sample<T: Element>(
    m: &DenseMatrix<T>,
    candidates: &CenterSet,
    ratio: f64,
    salt: u64,
    path: CodePath,
) -> Result<PointSet> {
    let near = Nearest::new(candidates, path);
    let blocks: Vec<Range<usize>> = block_ranges(m.rows()).collect();
    let dim = candidates.dim;
    let sets: Vec<PointSet> = blocks
        .into_par_iter()
        .map(|rows| {
            let mut found = PointSet::empty(dim, None);
            let mut point = Vec::with_capacity(dim);
            for_each_nearest(m, rows, &near, None, |chunk, valid, _, _, dist| {
                for (l, &d2) in dist.iter().enumerate().take(valid) {
                    if d2 > 0.0 {
                        let key = point_hash(lane(chunk, l));
                        if unit(mix64(key ^ salt)) < ratio * d2 {
                            point.clear();
                            point.extend(lane(chunk, l));
                            found.insert(key, &point);
                        }
                    }
                }
            });
            found
        })
        .collect();
    sets.iter()
        .try_fold(PointSet::empty(dim, None), |acc, s| acc.merge(s))
}

/// The `count` distinct points with the smallest seeded keys, checking values are finite.
pub(super) fn pick<T: Element>(
    m: &DenseMatrix<T>,
    count: usize,
    salt: u64,
    partition: u32,
) -> Result<PointSet> {
    let dim = m.cols();
    let blocks: Vec<Range<usize>> = block_ranges(m.rows()).collect();
    let sets: Vec<PointSet> = blocks
        .into_par_iter()
        .map(|rows| {
            let mut hashes = vec![HASH_START; rows.len()];
            for j in 0..dim {
                let col = &m.col(j)[rows.clone()];
                if let Some(i) = col.iter().position(|v| !v.to_f64().is_finite()) {
                    return Err(MlError::InvalidData(format!(
                        "partition {partition}, row {}: feature {j} is {}; k-means needs finite values",
                        rows.start + i,
                        col[i].to_f64()
                    )));
                }
                for (h, v) in hashes.iter_mut().zip(col) {
                    *h = hash_step(*h, v.to_f64());
                }
            }
            let mut found = PointSet::empty(dim, Some(count));
            for (i, h) in hashes.iter().enumerate() {
                let key = mix64(h ^ salt);
                if found.threshold().is_none_or(|t| key <= t) {
                    found.insert(key, &m.row_f64(rows.start + i));
                }
            }
            Ok(found)
        })
        .collect::<Result<_>>()?;
    sets.iter()
        .try_fold(PointSet::empty(dim, Some(count)), |acc, s| acc.merge(s))
}
