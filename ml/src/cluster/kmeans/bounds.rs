//! Per-row distance bounds that let a Lloyd pass skip the nearest-centre search for rows whose
//! centre cannot have changed (Hamerly's bounds), without changing a single bit of the result.
//!
//! A partition keeps, between the passes of a fit, for every row: the centre `a` it was last
//! assigned to, an upper bound `u` on its distance to that centre and a lower bound `l` on its
//! distance to every other centre, both as of the pass that searched the row. The driver sends
//! with each pass how far each centre has moved since the fit began, `M_c` (the sum of its
//! moves, each rounded up), and the sum over passes of the largest move, `S` ([`BoundsHint`]).
//! A row stores `u − M_a` and `l + S` of the pass that searched it; in any later pass
//!
//! ```text
//!   d(x, a) ≤ (u − M_a) + M_a'          (M_a' the current sum: a moved at most M_a' − M_a)
//!   d(x, c) ≥ (l + S) − S'              for every other centre c
//! ```
//!
//! so a row that keeps its centre costs a read of 12 bytes and no write. When the gap between
//! the two, squared, exceeds what rounding can do to the search's `‖c‖² − 2 x·c` values, the
//! search would pick `a` again: the row keeps its centre, and only the exact distance and the
//! sums are computed (they are anyway). A chunk of rows is searched as usual as soon as one of
//! its rows fails the test, which also tightens the chunk's bounds; so every row is assigned
//! exactly as the search assigns it, the partials are bit-identical to a pass without bounds,
//! and the bounds are only ever a shortcut: a partition that has none (first pass, reloaded
//! after a lost executor, a concurrent pass holding them) simply searches every row and starts
//! keeping them.
//!
//! The rounding margin: the search's value for centre `c` is off by at most
//! `2 (dim + 1) ε (‖c‖² + 2 ‖x‖ ‖c‖)` (Cauchy–Schwarz on the multiply-adds, `ε = 2⁻⁵³`), and
//! `‖x‖ ≤ d(x, a) + ‖a‖`; the test asks for twice that, `8 (dim + 4) ε (u + 2C)²` with `C` the
//! largest centre norm. Stored bounds are widened by `2⁻²⁰` of their terms and rounded outwards
//! (`u` up, `l` down) to `f32`.
//!
//! Cost: 12 bytes a row (`u32` centre, two `f32`), kept beside the cached partition while a fit
//! runs. A pass that reads every row still reads each row once for the exact distance and the
//! sums; the steady-state steps of a fit (see [`super::steady`]) read only the bounds and the
//! rows whose test fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, TryLockError};

use serde::{Deserialize, Serialize};

use super::steady::ClusterStats;

/// How the centres have moved since a fit began, sent with each Lloyd pass of the fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundsHint {
    /// Identifies the fit (random per fit), so that two fits never read each other's bounds.
    pub fit: u64,
    /// The pass number within the fit, from 0; bounds from this or an earlier pass are usable.
    pub round: u64,
    /// Per centre, an upper bound on the sum of its moves over passes `1 ..= round`.
    pub moved: Vec<f64>,
    /// An upper bound on the sum, over passes `1 ..= round`, of the largest move in the pass.
    pub total_shift: f64,
}

impl BoundsHint {
    /// The hint of the first pass of fit `fit` over `k` centres: no moves yet.
    pub fn new(fit: u64, k: usize) -> Self {
        Self {
            fit,
            round: 0,
            moved: vec![0.0; k],
            total_shift: 0.0,
        }
    }

    /// Adds one pass's centre moves (Euclidean, one per centre) to the totals, each rounded
    /// up: the partitions' bounds must never be too tight.
    pub fn advance(&mut self, moves: &[f64]) {
        let up = |v: f64| v * (1.0 + 1e-9);
        self.round += 1;
        for (total, m) in self.moved.iter_mut().zip(moves) {
            *total = up(*total + up(*m));
        }
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
    pub(crate) assign: Vec<u32>,
    /// Upper bound on the distance of each row to its centre, minus the centre's `moved` as of
    /// the pass that searched the row.
    pub(crate) upper: Vec<f32>,
    /// Lower bound on the distance of each row to every other centre, plus the `total_shift`
    /// as of the pass that searched the row.
    pub(crate) lower: Vec<f32>,
    /// Rows searched by the last pass (the others kept their centre on the bounds alone).
    searched_rows: usize,
    /// Per-centre statistics of the rows as `assign` assigns them, for steady-state passes
    /// (see [`super::steady`]).
    pub(crate) stats: Option<ClusterStats>,
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
        self.stats = None;
        self.assign.resize(rows, 0);
        self.upper.resize(rows, 0.0);
        self.lower.resize(rows, 0.0);
    }

    /// Records that `hint`'s pass brought every row up to date, searching `searched_rows`.
    pub(crate) fn advance(&mut self, hint: &BoundsHint, searched_rows: usize) {
        self.fit = hint.fit;
        self.round = hint.round;
        self.searched_rows = searched_rows;
    }
}

/// Where a cached partition keeps the per-row bounds of a k-means fit between passes. Not part
/// of the partition's value: a clone starts empty and equality ignores it.
#[derive(Debug, Default)]
pub struct BoundsSlot(Mutex<Option<RowBounds>>);

impl BoundsSlot {
    /// Runs `f` with the slot's bounds when no other pass holds them (a pass that finds them
    /// taken, or poisoned, runs without bounds: `None`).
    pub(crate) fn with<R>(&self, f: impl FnOnce(Option<&mut RowBounds>) -> R) -> R {
        match self.0.try_lock() {
            Ok(mut guard) => f(Some(guard.get_or_insert_with(RowBounds::default))),
            Err(TryLockError::WouldBlock | TryLockError::Poisoned(_)) => f(None),
        }
    }

    /// How many rows the last pass that kept bounds here searched for their nearest centre, of
    /// how many (`None` before any such pass). The rest kept their centre on the bounds alone.
    pub fn last_pass_searched(&self) -> Option<(usize, usize)> {
        match self.0.try_lock() {
            Ok(guard) => guard
                .as_ref()
                .filter(|b| !b.assign.is_empty())
                .map(|b| (b.searched_rows, b.assign.len())),
            Err(_) => None,
        }
    }
}

impl Clone for BoundsSlot {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for BoundsSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The per-pass constants of the test, from the hint and the new centres.
#[derive(Debug)]
pub(crate) struct BoundsTest<'a> {
    moved: &'a [f64],
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

impl<'a> BoundsTest<'a> {
    /// The test for a pass of `hint` over centres of dimension `dim` and norms up to
    /// `max_norm`.
    pub(crate) fn new(hint: &'a BoundsHint, dim: usize, max_norm: f64) -> Self {
        Self {
            moved: &hint.moved,
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

    /// `M_a`, the sum of centre `a`'s moves (`a` a centre index, as every pass stores; the
    /// last centre's for anything larger).
    #[inline(always)]
    pub(crate) fn moved(&self, a: u64) -> f64 {
        let last = self.moved.len().saturating_sub(1);
        self.moved[usize::try_from(a).map_or(last, |a| a.min(last))]
    }

    /// Whether a row with stored bounds `(upper, lower)` keeps its centre, `moved` being that
    /// centre's [`BoundsTest::moved`]. Branch-free, so that a chunk's tests vectorize.
    #[inline(always)]
    pub(crate) fn keeps(&self, moved: f64, upper: f32, lower: f32) -> bool {
        let u = f64::from(upper) + moved;
        let l = f64::from(lower) - self.total_shift;
        (l > u) & ((l - u) * (l + u) > self.margin(u))
    }

    /// The bounds to store for a row just searched: `moved` is its new centre's
    /// [`BoundsTest::moved`], `dist2` its exact squared distance to it, `gap` the search's
    /// second smallest value minus its smallest (`+∞` with one centre). Returns
    /// `(upper, lower)`. Branch-free, so that a chunk's bounds vectorize; a row without room
    /// to spare gets a lower bound of about 0, which fails every test.
    #[inline(always)]
    pub(crate) fn searched(&self, moved: f64, dist2: f64, gap: f64) -> (f32, f32) {
        let d = dist2.max(0.0).sqrt();
        let upper = store_up(d - moved, d + moved);
        let l = (dist2 + gap - self.margin(d)).max(0.0).sqrt() + self.total_shift;
        (upper, store_down(l, l))
    }
}

/// Below every rounding error of an `f32` near zero (its smallest subnormal is `2⁻¹⁴⁹`).
const TINY: f64 = 1.0 / (1u128 << 100) as f64 / (1u64 << 40) as f64;

/// `v` as an `f32` no smaller than `v` (`scale ≥ |v|`; the `2⁻²⁰ · scale` added before rounding
/// covers both the rounding to `f32` and that of the arithmetic that made `v`).
#[inline(always)]
fn store_up(v: f64, scale: f64) -> f32 {
    (v + WIDEN * scale + TINY).max(f64::from(f32::MIN)) as f32
}

/// `v` as an `f32` no larger than `v` (`scale ≥ |v|`; `+∞` and values past `f32`'s range
/// become `f32::MAX`).
#[inline(always)]
fn store_down(v: f64, scale: f64) -> f32 {
    (v - WIDEN * scale - TINY).min(f64::from(f32::MAX)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(moved: Vec<f64>, total_shift: f64) -> BoundsHint {
        BoundsHint {
            fit: 1,
            round: 2,
            moved,
            total_shift,
        }
    }

    #[test]
    fn stored_bounds_are_rounded_outwards() {
        for v in [
            0.0f64,
            1e-300,
            1e-45,
            1e-40,
            0.1,
            1.0 / 3.0,
            7.25,
            1e30,
            1e300,
        ] {
            for v in [v, -v] {
                let s = v.abs();
                // Even a value 2⁻²¹ of `scale` off stays inside.
                assert!(f64::from(store_up(v, s)) >= v + s / 2e6, "{v}");
                assert!(f64::from(store_down(v, s)) <= v - s / 2e6, "{v}");
            }
        }
        assert_eq!(store_down(f64::INFINITY, f64::INFINITY), f32::MAX);
    }

    #[test]
    fn a_row_keeps_its_centre_only_with_room_to_spare() {
        // Centre 0 has moved 0.5 in all, the largest moves add up to 1.
        let h = hint(vec![0.5, 0.0], 1.0);
        let t = BoundsTest::new(&h, 2, 3.0);
        // Stored: within 1 of centre 0 (minus its 0.5), at least 3 from the others (plus 1).
        let m0 = t.moved(0);
        assert_eq!(m0, 0.5);
        assert!(t.keeps(m0, 0.5, 4.0));
        // 1.0 against 2.0 holds...
        assert!(t.keeps(m0, 0.5, 3.0));
        // ...1.0 against 1.0 does not.
        assert!(!t.keeps(m0, 0.5, 2.0));
        assert_eq!(t.moved(7), 0.0);
        // What `searched` stores passes the test at once when there is room, and keeps
        // passing while the centres stay put.
        let (u, l) = t.searched(m0, 1.0, 8.0);
        assert!(t.keeps(m0, u, l));
        // One centre: the lower bound is infinite and every row keeps it.
        let one = hint(vec![10.0], 10.0);
        let t1 = BoundsTest::new(&one, 2, 3.0);
        let (u, l) = t1.searched(10.0, 4.0, f64::INFINITY);
        assert!(t1.keeps(10.0, u, l));
    }

    #[test]
    fn a_search_without_room_leaves_a_bound_that_fails() {
        let h = hint(vec![0.0, 0.0], 0.0);
        let t = BoundsTest::new(&h, 16, 1e8);
        // A tie (gap 0) far from the origin: the margin swallows it.
        let (u, l) = t.searched(0.0, 1.0, 0.0);
        assert!(l <= 0.0);
        assert!(!t.keeps(0.0, u, l));
        // Distances beyond f32's range never pass either.
        let (u, l) = t.searched(0.0, 1e300, 1e300);
        assert!(!t.keeps(0.0, u, l));
    }
}
