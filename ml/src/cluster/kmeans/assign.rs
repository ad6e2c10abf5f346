//! Assignment passes: per-centre sums, counts and SSE over a partition, with or without the
//! distance bounds of a fit (see [`super::bounds`]).

use std::ops::Range;

use rayon::prelude::*;

use super::bounds::{BoundsHint, BoundsTest, RowBounds, MAX_BOUNDED_K};
use super::centers::{CenterSet, Chunk, LANES};
use super::nearest::{nearest_loop, BlockBounds, Nearest};
use super::partials::AssignPartial;
use crate::data::{block_ranges, DenseMatrix, Element, BLOCK_ROWS};
use crate::error::{MlError, Result};
use crate::simd::kmeans::{LloydAcc, OnChunk};
use crate::simd::CodePath;

/// Sums, counts and SSE over a partition (sums only if `with_sums`): blocks in parallel,
/// folded in block order.
pub(super) fn assign<T: Element>(
    m: &DenseMatrix<T>,
    centers: &CenterSet,
    with_sums: bool,
    path: CodePath,
) -> Result<AssignPartial> {
    let near = Nearest::new(centers, path);
    let blocks: Vec<Range<usize>> = block_ranges(m.rows()).collect();
    let partials: Vec<AssignPartial> = blocks
        .into_par_iter()
        .map(|rows| assign_block(m, rows, &near, with_sums, None, Whole::Fused).0)
        .collect();
    let mut out = partials.into_iter().try_fold(
        AssignPartial::zeros(centers.k, centers.dim, with_sums),
        AssignPartial::merge,
    )?;
    unshift(&mut out.sums, &out.counts, centers);
    Ok(out)
}

/// Turns per-centre sums of `x − c` into sums of `x`: `n_c c + Σ (x − c)` for each centre `c`
/// of `n_c` rows (`sums` may be empty: a pass without sums).
pub(super) fn unshift(sums: &mut [f64], counts: &[u64], centers: &CenterSet) {
    let dim = centers.dim.max(1);
    for ((sums, &n), centre) in sums
        .chunks_exact_mut(dim)
        .zip(counts)
        .zip(centers.values.chunks_exact(dim))
    {
        let n = n as f64;
        for (s, c) in sums.iter_mut().zip(centre) {
            *s += n * c;
        }
    }
}

/// Checks that a pass of `hint` over `centers` can keep bounds: no more centres than a bound
/// can name, and a total shift that is a (non-negative) distance (a negative one would make
/// stored bounds look tighter than they are).
pub(super) fn check_hint(centers: &CenterSet, hint: &BoundsHint) -> Result<()> {
    if centers.k > MAX_BOUNDED_K {
        return Err(MlError::Internal(format!(
            "k-means pass {} keeps bounds for {} centres, more than {MAX_BOUNDED_K}",
            hint.round, centers.k
        )));
    }
    if hint.total_shift.is_nan() || hint.total_shift < 0.0 {
        return Err(MlError::Internal(format!(
            "k-means pass {}: a total centre shift of {}",
            hint.round, hint.total_shift
        )));
    }
    Ok(())
}

/// The largest norm of a centre.
pub(super) fn max_norm(centers: &CenterSet) -> f64 {
    centers
        .values
        .chunks_exact(centers.dim.max(1))
        .map(|c| c.iter().map(|v| v * v).sum::<f64>().sqrt())
        .fold(0.0, f64::max)
}

/// What a pass over every row with bounds finds.
pub(super) struct BasePass {
    /// Bit for bit what [`assign`] answers.
    pub(super) partial: AssignPartial,
    /// Per centre, the sum of its rows' `x − c` (`k × dim`).
    pub(super) shifted: Vec<f64>,
    /// Per centre, the sum of its rows' squared distances to it.
    pub(super) spread: Vec<f64>,
}

/// A pass of [`KMeansKernel::Lloyd`] over every row, keeping `bounds`.
pub(super) fn base_pass<T: Element>(
    m: &DenseMatrix<T>,
    centers: &CenterSet,
    hint: &BoundsHint,
    bounds: &mut RowBounds,
    path: CodePath,
) -> Result<BasePass> {
    let rows = m.rows();
    let usable = bounds.usable_for(hint, rows);
    if !usable {
        bounds.reset(rows);
    }
    let test = BoundsTest::new(hint, centers.dim, max_norm(centers));
    let near = Nearest::new(centers, path);
    let blocks: Vec<Range<usize>> = block_ranges(rows).collect();
    let partials: Vec<(AssignPartial, Vec<f64>)> = blocks
        .into_par_iter()
        .zip(bounds.assign.par_chunks_mut(BLOCK_ROWS))
        .zip(bounds.gap.par_chunks_mut(BLOCK_ROWS / LANES))
        .zip(bounds.reach.par_chunks_mut(BLOCK_ROWS / LANES))
        .map(|(((rows, assign), gap), reach)| {
            let block = BlockBounds {
                test: &test,
                usable,
                assign,
                gap,
                reach,
                searched: 0,
            };
            assign_block(m, rows, &near, true, Some(block), Whole::Fused)
        })
        .collect();
    bounds.advance(hint, test.searched_rows());
    let mut spread = vec![0.0; centers.k];
    let mut partial = AssignPartial::zeros(centers.k, centers.dim, true);
    for (block, block_spread) in partials {
        partial = partial.merge(block)?;
        spread
            .iter_mut()
            .zip(&block_spread)
            .for_each(|(s, b)| *s += b);
    }
    let shifted = partial.sums.clone();
    unshift(&mut partial.sums, &partial.counts, centers);
    Ok(BasePass {
        partial,
        shifted,
        spread,
    })
}

/// How [`assign_block`] takes the whole chunks of a pass that searches every row, when it
/// reads them in place: the answer is the same bits either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Whole {
    /// In one call ([`Placed::lloyd`]), which may find the nearest centres in `f32` first.
    Fused,
    /// Chunk by chunk, as every other pass (for tests to compare with).
    #[cfg(test)]
    Chunked,
}

/// What a pass that keeps bounds does with each chunk it searched in one call
/// ([`Placed::lloyd`]): records the chunk's bounds and adds its rows' distances to their
/// centres' spread, as the chunk-by-chunk loop's visitor does.
pub(super) struct KeepBounds<'b, 'a> {
    bounds: &'b mut BlockBounds<'a>,
    spread: &'b mut [[f64; 4]],
}

impl OnChunk<LANES> for KeepBounds<'_, '_> {
    #[inline(always)]
    fn searched(
        &mut self,
        at: usize,
        nearest: &[u64; LANES],
        gaps: &[f64; LANES],
        dist: &[f64; LANES],
    ) {
        self.bounds.record(at, LANES, nearest, gaps, dist);
        for (l, (&c, &d)) in nearest.iter().zip(dist).enumerate() {
            if let Some(s) = self.spread.get_mut(c as usize) {
                s[l % 4] += d;
            }
        }
    }
}

/// The partial of one block, with sums of `x − c` rather than of `x` (see [`unshift`]), and,
/// when it keeps bounds, the sum per centre of its rows' squared distances to it (else empty).
pub(super) fn assign_block<T: Element>(
    m: &DenseMatrix<T>,
    rows: Range<usize>,
    near: &Nearest<'_>,
    with_sums: bool,
    mut bounds: Option<BlockBounds<'_>>,
    whole: Whole,
) -> (AssignPartial, Vec<f64>) {
    let k = near.centers.k;
    let mut out = AssignPartial::zeros(k, near.centers.dim, with_sums);
    let mut sums = with_sums.then(|| near.sums());
    let mut cost = [0.0f64; LANES];
    // Counts per centre in four copies too (lane `l` to copy `l mod 4`): a run of rows of
    // one centre would otherwise wait on each other's increment. The same for the spread.
    let mut counts = vec![[0u64; 4]; k];
    let with_spread = bounds.is_some();
    let mut spread = vec![[0.0f64; 4]; if with_spread { k } else { 0 }];
    // A pass that searches every row, over `f64` columns read in place, takes its whole
    // chunks in one call (the loop below takes the rest).
    let first = rows.start;
    let mut rows = rows;
    let searches_all = bounds.as_ref().is_none_or(|b| !b.usable);
    if let (true, Whole::Fused, Some(sums)) = (searches_all, whole, sums.as_mut()) {
        let cols: Vec<&[T]> = (0..near.centers.dim)
            .map(|j| &m.col(j)[rows.clone()])
            .collect();
        if let Some(placed) = near.in_place(m.rows(), &cols) {
            let mut acc = LloydAcc {
                sums: &mut sums.0,
                counts: &mut counts,
                cost: &mut cost,
            };
            rows.start += match bounds.as_mut() {
                Some(bounds) => placed.lloyd(
                    &mut acc,
                    KeepBounds {
                        bounds,
                        spread: &mut spread,
                    },
                ),
                None => placed.lloyd(&mut acc, ()),
            };
        }
    }
    // The rest's bounds, indexed from its first row.
    let done = rows.start - first;
    let rest = bounds.as_mut().map(|b| BlockBounds {
        test: b.test,
        usable: b.usable,
        assign: &mut b.assign[done..],
        gap: &mut b.gap[done / LANES..],
        reach: &mut b.reach[done / LANES..],
        searched: 0,
    });
    nearest_loop(
        m,
        rows,
        near,
        sums.as_mut(),
        rest,
        false,
        |_: &Chunk, valid: usize, _: usize, nearest: &[u64; LANES], dist: &[f64; LANES]| {
            if valid == LANES {
                cost.iter_mut().zip(dist).for_each(|(c, d)| *c += d);
            } else {
                cost.iter_mut()
                    .zip(dist)
                    .take(valid)
                    .for_each(|(c, d)| *c += d);
            }
            for (l, &c) in nearest[..valid].iter().enumerate() {
                counts[c as usize][l % 4] += 1;
            }
            if with_spread {
                for (l, (&c, &d)) in nearest[..valid].iter().zip(dist).enumerate() {
                    spread[c as usize][l % 4] += d;
                }
            }
        },
    );
    if let Some(sums) = &sums {
        near.sums_to(sums, &mut out.sums);
    }
    for (o, c) in out.counts.iter_mut().zip(&counts) {
        *o = c.iter().sum();
    }
    out.cost = cost.iter().sum();
    let spread = spread
        .iter()
        .map(|s| (s[0] + s[1]) + (s[2] + s[3]))
        .collect();
    (out, spread)
}
