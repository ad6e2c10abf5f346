//! Distance bounds that let a Lloyd pass skip the nearest-centre search for chunks of rows
//! whose centres cannot have changed (Hamerly's bounds, kept per chunk), without changing a
//! single bit of the result.
//!
//! A partition keeps, between the passes of a fit, the centre `a` each row was last assigned
//! to, and two numbers for every chunk of [`LANES`] rows (the unit the search works on), both
//! about the pass that last searched the chunk. For a row, let `u` be its distance to its
//! centre and `l` its distance to the nearest other centre then. The driver sends with each
//! pass `S`, the sum over the fit's passes of the largest move of a centre ([`BoundsHint`]).
//! Since the pass that searched the chunk (at `S₀`), no centre moved more than `S − S₀` in
//! all, so for every row
//!
//! ```text
//!   d(x, a) ≤ u + (S − S₀),   d(x, c) ≥ l − (S − S₀)  for every other centre c
//! ```
//!
//! A chunk stores `gap`, the smallest `l − u + 2 S₀` of its rows, and `reach`, the largest
//! `u − S₀`. In any later pass every row of the chunk then has `d(x, c) − d(x, a) ≥ G = gap −
//! 2 S` and `d(x, a) ≤ reach + S`. When `G > 0` and `G²` (no more than `d(x, c)² − d(x, a)²`)
//! exceeds what rounding can do to the search's `‖c‖² − 2 x·c` values, the search would pick
//! `a` again for every row: the chunk keeps its centres, and only the exact distances and the
//! sums are computed (they are anyway). A chunk whose test fails is searched as usual, which
//! also tightens its bounds; so every row is assigned exactly as the search assigns it, the
//! partials are bit-identical to a pass without bounds, and the bounds are only ever a
//! shortcut: a partition that has none (first pass, reloaded after a lost executor, a
//! concurrent pass holding them) simply searches every row and starts keeping them.
//!
//! The rounding margin: the search's value for centre `c` is off by at most
//! `2 (dim + 1) ε (‖c‖² + 2 ‖x‖ ‖c‖)` (Cauchy–Schwarz on the multiply-adds, `ε = 2⁻⁵³`), and
//! `‖x‖ ≤ d(x, a) + ‖a‖`; the test asks for twice that, `8 (dim + 4) ε (u + 2C)²` with `C` the
//! largest centre norm. Stored numbers are widened by `2⁻²⁰` of their terms and rounded
//! outwards (`gap` down, `reach` up) to `f32`.
//!
//! Cost: 2 bytes a row (a `u16` centre) and 8 bytes a chunk of 16 rows, 2.5 bytes a row in
//! all, kept beside the cached partition while a fit runs (a fit of more than
//! [`MAX_BOUNDED_K`] centres keeps none). The test itself reads only the 0.5 bytes a row of the
//! chunks' numbers. A pass that reads every row still reads each row once for the exact
//! distance and the sums; the steady-state steps of a fit (see [`super::steady`]) read only the
//! bounds and the rows of the chunks whose test fails.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use super::centers::LANES;
use crate::data::BLOCK_ROWS;

/// The most centres a fit may have for its passes to keep bounds (a row's centre is kept as a
/// `u16`).
pub(crate) const MAX_BOUNDED_K: usize = 1 << 16;

// A block's rows are whole chunks, so a block's chunk bounds are a slice of the partition's.
const _: () = assert!(BLOCK_ROWS.is_multiple_of(LANES));

/// Makes `v` `len` long. New memory comes zeroed from the allocator, untouched: its pages are
/// first written, faulted in, by the parallel pass that fills them, rather than all here on
/// one thread.
fn fit<T: Copy>(v: &mut Vec<T>, len: usize, zero: T) {
    if v.capacity() < len {
        *v = Vec::new();
        *v = vec![zero; len];
    } else {
        v.resize(len, zero);
    }
}

/// How far the centres have moved since a fit began, sent with each Lloyd pass of the fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundsHint {
    /// Identifies the fit (random per fit), so that two fits never read each other's bounds.
    pub fit: u64,
    /// The pass number within the fit, from 0; bounds from this or an earlier pass are usable.
    pub round: u64,
    /// An upper bound on the sum, over passes `1 ..= round`, of the largest move of a centre
    /// in the pass.
    pub total_shift: f64,
}

impl BoundsHint {
    /// The hint of the first pass of fit `fit`: no moves yet.
    pub fn new(fit: u64) -> Self {
        Self {
            fit,
            round: 0,
            total_shift: 0.0,
        }
    }

    /// Adds one pass's centre moves (Euclidean, one per centre) to the total, rounded up: the
    /// partitions' bounds must never be too tight.
    pub fn advance(&mut self, moves: &[f64]) {
        let up = |v: f64| v * (1.0 + 1e-9);
        self.round += 1;
        let largest = moves.iter().copied().fold(0.0, f64::max);
        self.total_shift = up(self.total_shift + up(largest));
    }
}

/// The bounds of one partition's rows, last written by pass `round` of fit `fit`.
#[derive(Debug, Default)]
pub(crate) struct RowBounds {
    fit: u64,
    round: u64,
    /// The centre each row is assigned to.
    pub(crate) assign: Vec<u16>,
    /// Per chunk of [`LANES`] rows, a lower bound on `l − u + 2 S₀` over its rows, `S₀` the
    /// total shift of the pass that last searched it (see the module documentation).
    pub(crate) gap: Vec<f32>,
    /// Per chunk, an upper bound on `u − S₀` over its rows.
    pub(crate) reach: Vec<f32>,
    /// Rows searched by the last pass (the others kept their centre on the bounds alone).
    pub(crate) searched_rows: usize,
}

impl RowBounds {
    /// Whether these bounds were left by an earlier (or the same) pass of `hint`'s fit, for
    /// `rows` rows.
    pub(crate) fn usable_for(&self, hint: &BoundsHint, rows: usize) -> bool {
        self.fit == hint.fit && self.round <= hint.round && self.assign.len() == rows
    }

    /// Makes room for `rows` rows (contents unspecified: a pass without usable bounds searches
    /// every row and writes every entry).
    pub(crate) fn reset(&mut self, rows: usize) {
        let chunks = rows.div_ceil(LANES);
        fit(&mut self.assign, rows, 0);
        fit(&mut self.gap, chunks, 0.0);
        fit(&mut self.reach, chunks, 0.0);
    }

    /// Records that `hint`'s pass brought every row up to date, searching `searched_rows`.
    pub(crate) fn advance(&mut self, hint: &BoundsHint, searched_rows: usize) {
        self.fit = hint.fit;
        self.round = hint.round;
        self.searched_rows = searched_rows;
    }
}

/// The per-pass constants of the test, from the hint and the new centres.
#[derive(Debug)]
pub(crate) struct BoundsTest {
    total_shift: f64,
    /// `8 (dim + 4) ε`.
    kappa: f64,
    /// Twice the largest centre norm (rounded up).
    two_c: f64,
    /// Rows searched so far in this pass (added once per block).
    searched: AtomicUsize,
}

/// `2⁻⁵³`, the unit roundoff of `f64`.
const EPS: f64 = f64::EPSILON / 2.0;

/// Widening applied before rounding a bound to `f32`, so that rounding to nearest cannot cross
/// the true value (and covers the last-bit error of the `f64` arithmetic before it).
const WIDEN: f64 = 1.0 / (1u64 << 20) as f64;

impl BoundsTest {
    /// The test for a pass of `hint` over centres of dimension `dim` and norms up to
    /// `max_norm`.
    pub(crate) fn new(hint: &BoundsHint, dim: usize, max_norm: f64) -> Self {
        Self {
            total_shift: hint.total_shift,
            kappa: 8.0 * (dim as f64 + 4.0) * EPS,
            two_c: 2.0 * max_norm * (1.0 + WIDEN),
            searched: AtomicUsize::new(0),
        }
    }

    /// Counts `rows` searched rows.
    #[inline(always)]
    pub(crate) fn count_searched(&self, rows: usize) {
        self.searched.fetch_add(rows, Ordering::Relaxed);
    }

    /// Rows searched so far in this pass.
    pub(crate) fn searched_rows(&self) -> usize {
        self.searched.load(Ordering::Relaxed)
    }

    /// The search's worst-case rounding, doubled, for a row within `u` of its centre.
    #[inline(always)]
    fn margin(&self, u: f64) -> f64 {
        let r = u + self.two_c;
        self.kappa * r * r
    }

    /// Whether every row of a chunk with stored `(gap, reach)` keeps its centre.
    /// Branch-free, so that a run's tests vectorize.
    #[inline(always)]
    pub(crate) fn keeps(&self, gap: f32, reach: f32) -> bool {
        let g = f64::from(gap) - 2.0 * self.total_shift;
        let u = f64::from(reach) + self.total_shift;
        (g > 0.0) & (g * g > self.margin(u))
    }

    /// What a row just searched adds to its chunk's bounds: `dist2` is its exact squared
    /// distance to its centre, `gap` the search's second smallest value minus its smallest
    /// (`+∞` with one centre). `dist2` may instead be an upper bound on the squared distance
    /// when `dist2 + gap` is at most the second nearest's squared distance: `√dist2` is then
    /// at least the distance to the centre and `√(dist2 + gap)` at most the distance to the
    /// second nearest, so the bounds only loosen. Returns the row's `(gap, reach)`, already widened outwards (the
    /// chunk stores the smallest gap and the largest reach of its rows, see [`store_chunk`]).
    /// A row without room to spare gets a gap of at most 0, which fails every test.
    #[inline(always)]
    pub(crate) fn searched(&self, dist2: f64, gap: f64) -> (f64, f64) {
        let s = self.total_shift;
        let d = dist2.max(0.0).sqrt();
        let reach = d - s + WIDEN * (d + s) + TINY;
        let l = (dist2 + gap - self.margin(d)).max(0.0).sqrt();
        let g = if l == f64::INFINITY {
            f64::INFINITY
        } else {
            l - d + 2.0 * s - WIDEN * (l + d + 2.0 * s) - TINY
        };
        // Anything undefined fails (selects, not branches, so that a chunk's rows vectorize).
        let bad = dist2.is_nan() | gap.is_nan();
        (
            if bad | g.is_nan() {
                f64::NEG_INFINITY
            } else {
                g
            },
            if bad | reach.is_nan() {
                f64::INFINITY
            } else {
                reach
            },
        )
    }
}

/// A chunk's stored `(gap, reach)` from the smallest gap and the largest reach of its rows
/// (as [`BoundsTest::searched`] returns them): `gap` no larger, `reach` no smaller (the
/// widening already applied covers the rounding to `f32`). Gaps past `f32`'s range become
/// `f32::MAX`.
#[inline(always)]
pub(crate) fn store_chunk(gap: f64, reach: f64) -> (f32, f32) {
    (
        gap.min(f64::from(f32::MAX)) as f32,
        reach.max(f64::from(f32::MIN)) as f32,
    )
}

/// Below every rounding error of an `f32` near zero (its smallest subnormal is `2⁻¹⁴⁹`).
const TINY: f64 = 1.0 / (1u128 << 100) as f64 / (1u64 << 40) as f64;

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(total_shift: f64) -> BoundsHint {
        BoundsHint {
            fit: 1,
            round: 2,
            total_shift,
        }
    }

    #[test]
    fn stored_bounds_are_rounded_outwards() {
        let h = hint(0.5);
        let t = BoundsTest::new(&h, 2, 3.0);
        for d in [0.0f64, 1e-300, 1e-40, 0.1, 1.0 / 3.0, 7.25, 1e30] {
            for gap in [0.0, 1e-30, 0.3, 2.0 / 3.0, 1e10] {
                let dist2 = d * d;
                let (g, r) = t.searched(dist2, gap);
                let (sg, sr) = store_chunk(g, r);
                // The unrounded gap and reach, against what is stored: even a value 2⁻²¹ of
                // the terms off stays inside.
                let l = (dist2 + gap - t.margin(d)).max(0.0).sqrt();
                let scale = l + d + 1.0;
                assert!(f64::from(sg) <= l - d + 1.0 - scale / 2.2e6, "{d} {gap}");
                assert!(f64::from(sr) >= d - 0.5 + (d + 0.5) / 2.2e6, "{d} {gap}");
            }
        }
        assert_eq!(store_chunk(f64::INFINITY, 1.0).0, f32::MAX);
        assert_eq!(store_chunk(f64::NEG_INFINITY, 1.0).0, f32::NEG_INFINITY);
        // Undefined values fail.
        for (dist2, gap) in [(f64::NAN, 1.0), (1.0, f64::NAN)] {
            let (g, r) = t.searched(dist2, gap);
            assert_eq!((g, r), (f64::NEG_INFINITY, f64::INFINITY));
            let (g, r) = store_chunk(g, r);
            assert!(!t.keeps(g, r));
        }
    }

    #[test]
    fn a_chunk_keeps_its_centres_only_with_room_to_spare() {
        // The largest moves add up to 1 since the fit began; a chunk's rows are each at
        // least `gap − 2` further from the other centres than from their own now.
        let h = hint(1.0);
        let t = BoundsTest::new(&h, 2, 3.0);
        assert!(t.keeps(4.0, 0.5));
        // 2.5 − 2 = 0.5 still holds...
        assert!(t.keeps(2.5, 0.5));
        // ...2 − 2 = 0 does not.
        assert!(!t.keeps(2.0, 0.5));
        // Nor does room the rounding margin swallows: far from the origin (C = 1e8).
        let far = BoundsTest::new(&h, 2, 1e8);
        assert!(!far.keeps(2.1, 0.5));
        // What `searched` stores passes the test at once when there is room, and keeps
        // passing while the centres stay put.
        let (g, r) = t.searched(1.0, 8.0);
        let (g, r) = store_chunk(g, r);
        assert!(t.keeps(g, r));
        // ...until they move: by 1 against room of 3 − 1 = 2 passes, by 1 more does not.
        let (l, d) = (3.0f64, 1.0f64);
        let (g, r) = store_chunk(t.searched(d * d, l * l - d * d).0, 1.0);
        assert!(t.keeps(g, r));
        assert!(!BoundsTest::new(&hint(2.0), 2, 3.0).keeps(g, r));
        // One centre: the gap is infinite and every chunk keeps it.
        let t1 = BoundsTest::new(&h, 2, 3.0);
        let (g, r) = t1.searched(4.0, f64::INFINITY);
        let (g, r) = store_chunk(g, r);
        assert!(t1.keeps(g, r));
    }

    #[test]
    fn a_search_without_room_leaves_a_bound_that_fails() {
        let h = hint(0.0);
        let t = BoundsTest::new(&h, 16, 1e8);
        // A tie (gap 0) far from the origin: the margin swallows it.
        let (g, r) = t.searched(1.0, 0.0);
        assert!(g <= 0.0);
        let (g, r) = store_chunk(g, r);
        assert!(!t.keeps(g, r));
        // Distances beyond f32's range never pass either.
        let (g, r) = t.searched(1e300, 1e300);
        let (g, r) = store_chunk(g, r);
        assert!(!t.keeps(g, r));
    }
}
