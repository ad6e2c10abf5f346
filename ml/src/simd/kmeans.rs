//! The k-means nearest-centre loop with AVX2 and FMA.
//!
//! Per chunk of `L` rows (column-major: `chunk[j][l]` is column `j` of row `l`):
//!
//! 1. The nearest centre of each row by `argmin_c ‖c‖² − 2 x·c` (the expansion of
//!    `‖x − c‖²` without the row's own `‖x‖²`, as scikit-learn's Lloyd computes it): one FMA
//!    per (row, feature, centre), eight rows (two vectors) × four centres of accumulators held
//!    in registers across the columns, so that each load of a centre's weights feeds two
//!    multiply-adds (with one vector of rows, the loads rather than the multiply-adds set the
//!    pace). Whenever two candidates meet, the one of higher index
//!    wins only if strictly smaller, so ties go to the lowest index.
//! 2. For the chosen centre only, the exact `Σⱼ (xⱼ − cⱼ)²` (the expansion cancels badly when
//!    a row is far from the origin but near its centre, so it never reaches the cost): four
//!    rows at a time, each 4 × 4 block of the chunk transposed into four rows, whose
//!    differences from the chosen centres (`x − c`) are then also added to those centres'
//!    sums.
//!
//! The exact distance is summed in four interleaved partial sums (`j mod 4`) rather than left
//! to right, so it can differ from the portable path's in the last bit; the sums add the
//! differences in the same order as the portable path.
//!
//! A pass that searches every row runs both steps for all its whole chunks in one loop
//! ([`Avx2Fma::lloyd_in_place`]), where step 1 is first tried in `f32`: the chunk's columns
//! rounded to `f32`, sixteen rows (two vectors of eight) × four centres of accumulators. Its
//! answer stands only where it provably equals step 1's (see [`Coarse`]); a chunk with any
//! close call is searched again in `f64`.

use std::marker::PhantomData;

use super::{Avx2Fma, Quad};

/// `L` rows of some columns, column by column: a copied chunk (`[[f64; L]]`) or rows read in
/// place from the cached columns (`[&[f64; L]]`).
pub(crate) trait Lanes<const L: usize> {
    /// Number of columns.
    fn width(&self) -> usize;
    /// Column `j`'s `L` values.
    ///
    /// # Panics
    /// If `j >= width()` (a caller bug).
    fn lanes(&self, j: usize) -> &[f64; L];
    /// Columns `4 jq .. 4 jq + 4`, with one check.
    ///
    /// # Panics
    /// If `4 jq + 4 > width()` (a caller bug).
    #[inline(always)]
    fn quad(&self, jq: usize) -> [&[f64; L]; 4] {
        [
            self.lanes(4 * jq),
            self.lanes(4 * jq + 1),
            self.lanes(4 * jq + 2),
            self.lanes(4 * jq + 3),
        ]
    }
}

impl<const L: usize> Lanes<L> for [[f64; L]] {
    #[inline(always)]
    fn width(&self) -> usize {
        self.len()
    }
    #[inline(always)]
    fn lanes(&self, j: usize) -> &[f64; L] {
        &self[j]
    }
}

impl<const L: usize> Lanes<L> for [&[f64; L]] {
    #[inline(always)]
    fn width(&self) -> usize {
        self.len()
    }
    #[inline(always)]
    fn lanes(&self, j: usize) -> &[f64; L] {
        self[j]
    }
}

/// The columns of a range of rows, all of the same length, read in place a chunk at a time:
/// the lengths are checked once, here, instead of once per column and chunk (sixteen checks a
/// chunk of the hot loop otherwise). Columns past the given ones, up to `width`, read as zeros.
pub(crate) struct InPlace<'a> {
    /// Where each of the `width` columns starts: the given ones, then [`ZEROS`] for the rest,
    /// so that reading a column takes no branch.
    starts: Vec<*const f64>,
    /// How many of `starts` are given columns.
    live: usize,
    rows: usize,
    _columns: PhantomData<&'a [f64]>,
}

/// The most rows an [`InPlace`] with columns past the given ones may have: those read from
/// [`ZEROS`]. (A pass reads a block of at most 4096 rows at a time.)
const PADDED_ROWS: usize = 4096;

/// Zeros for the columns of an [`InPlace`] past the given ones.
static ZEROS: [f64; PADDED_ROWS] = [0.0; PADDED_ROWS];

impl<'a> InPlace<'a> {
    /// The columns `cols`, read as `width` columns (`None` unless every column is as long as
    /// the first and `width` is at least their number, and, when it is more, the columns
    /// have at most [`PADDED_ROWS`] rows).
    pub(crate) fn new(cols: &[&'a [f64]], width: usize) -> Option<Self> {
        let rows = cols.first().map_or(0, |c| c.len());
        let padded = width > cols.len();
        (cols.iter().all(|c| c.len() == rows)
            && width >= cols.len()
            && (!padded || rows <= PADDED_ROWS))
            .then(|| Self {
                starts: cols
                    .iter()
                    .map(|c| c.as_ptr())
                    .chain(std::iter::repeat_n(ZEROS.as_ptr(), width - cols.len()))
                    .collect(),
                live: cols.len(),
                rows,
                _columns: PhantomData,
            })
    }

    /// Number of rows of each column.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Asks for row `row` of every column, and the line after it, to be loaded (sixteen rows
    /// from there span two lines), as the chunk loop's `prefetch_rows` does: one check covers
    /// every column, and nothing past the rows is asked for.
    #[inline(always)]
    pub(crate) fn prefetch(&self, row: usize) {
        if row < self.rows {
            for &start in &self.starts[..self.live] {
                // A line holds eight values.
                crate::simd::prefetch_ptr(start.wrapping_add(row));
                crate::simd::prefetch_ptr(start.wrapping_add(row + 8));
            }
        }
    }

    /// Rows `at .. at + L`, if they are all rows of the columns.
    #[inline(always)]
    pub(crate) fn at<const L: usize>(&self, at: usize) -> Option<InPlaceAt<'_, 'a, L>> {
        (at.checked_add(L)? <= self.rows).then_some(InPlaceAt { cols: self, at })
    }
}

/// `L` rows of an [`InPlace`], from row `at` (`at + L` no more than its rows).
pub(crate) struct InPlaceAt<'c, 'a, const L: usize> {
    cols: &'c InPlace<'a>,
    at: usize,
}

impl<const L: usize> Lanes<L> for InPlaceAt<'_, '_, L> {
    #[inline(always)]
    fn width(&self) -> usize {
        self.cols.starts.len()
    }
    #[inline(always)]
    fn lanes(&self, j: usize) -> &[f64; L] {
        let start = self.cols.starts[j];
        // SAFETY: `start` has `rows` values: a given column, borrowed for `'a` (which
        // outlives `self`), or `ZEROS` (`rows ≤ PADDED_ROWS` then, checked by `InPlace::new`);
        // and `at + L ≤ rows` (checked by `InPlace::at`).
        unsafe { &*start.add(self.at).cast::<[f64; L]>() }
    }
    #[inline(always)]
    fn quad(&self, jq: usize) -> [&[f64; L]; 4] {
        let starts = &self.cols.starts[4 * jq..4 * jq + 4];
        let at = self.at;
        // SAFETY: as for `lanes`, for each of the four columns.
        [0, 1, 2, 3].map(|i| unsafe { &*starts[i].add(at).cast::<[f64; L]>() })
    }
}

/// The centres laid out for [`Avx2Fma::nearest_in_chunk`] (read only by the x86-64 code).
#[derive(Debug, Clone)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct CentreTable {
    k: usize,
    dim: usize,
    /// `dim` rounded up to a multiple of four, in quads: the length of a centre in `centres`
    /// and in the sums.
    quads: usize,
    /// Per group of four centres (the last group padded with zeros), per column `j`, per
    /// centre `c` of the group: `−2 c_j` in all four lanes (a plain load instead of a
    /// broadcast in the innermost loop).
    weights: Vec<Quad>,
    /// Per group of four centres: `‖c‖²` of each, `+∞` for padding (never nearest).
    norms: Vec<[f64; 4]>,
    /// The centres, `quads` each (zero padded).
    centres: Vec<Quad>,
    /// [`CentreTable::weights`] in `f32`, eight lanes each (see [`Coarse`]).
    weights32: Vec<Octet>,
    /// [`CentreTable::norms`] in `f32` (`+∞` for padding, or for a norm past `f32`'s range).
    norms32: Vec<[f32; 4]>,
    /// How far the `f32` search may be off, for [`Coarse`].
    coarse: Coarse,
}

/// Eight `f32` lanes on a 32-byte boundary.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(32))]
struct Octet([f32; 8]);

/// Room for a chunk's columns rounded to `f32`, for [`Avx2Fma::nearest_coarse`]: made once
/// per block, not per chunk.
pub(crate) struct Rounded(Vec<[Octet; 2]>);

impl Rounded {
    /// Room for the columns of a chunk of up to sixteen rows of `dim` columns.
    pub(crate) fn new(dim: usize) -> Self {
        Self(vec![[Octet::default(); 2]; dim])
    }
}

/// What makes the `f32` search of the nearest centre safe to use.
///
/// The `f32` search computes each row's `‖c‖² − 2 x·c` as the `f64` search does (the same
/// chain of multiply-adds) but from `f32` roundings of the row, the weights and the norms.
/// Each of its values is within `E = κ S + η (S + 3)` of the exact value, with `S = ‖x‖² +
/// 2 max_c ‖c‖²`: the chain's roundings are at most `d u (‖c‖² + Σ|2 xⱼ cⱼ|)`, the inputs'
/// at most `3u` times the same, and `Σ|2 xⱼ cⱼ| ≤ ‖x‖² + ‖c‖²`, with `u = 2⁻²⁴`; `κ` takes
/// `(d + 8) u` with a tenth to spare (for the `f64` search's own error, far smaller, and the
/// rounding of `S`, `E` and the gap), `η` the absolute errors of values that leave `f32`'s
/// normal range. When a row's two smallest `f32` values are more than `2E` apart, the
/// smallest is the exact nearest centre and also the `f64` search's, strictly: the answer
/// is the same bits. A chunk with any other row (close calls, ties, values past `f32`'s
/// range, where `S` is `+∞` or NaN) is searched again in `f64`.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Coarse {
    /// `2 max_c ‖c‖²`, rounded up to `f32` (`+∞` past its range).
    reach: f32,
    /// `κ + η`.
    kappa: f32,
    /// `3 η`.
    floor: f32,
}

/// `S` at or past this, the `f32` search is not used (its chain could overflow).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const COARSE_MAX: f32 = 1.0e37;

impl Coarse {
    fn new(dim: usize, max_norm2: f64) -> Self {
        let u = f64::from(f32::EPSILON) / 2.0;
        let eta = dim as f64 * 2f64.powi(-120);
        // Rounded up: an `f32` past the `f64` value (`+∞` past the range).
        let up = |v: f64| {
            let r = v as f32;
            if f64::from(r) < v {
                r.next_up()
            } else {
                r
            }
        };
        Self {
            reach: up(2.0 * max_norm2),
            kappa: up((dim as f64 + 8.0) * u * 1.1 + eta),
            floor: up(3.0 * eta),
        }
    }
}

impl CentreTable {
    /// The table of `k` centres of dimension `dim` stored row-major in `values`
    /// (`values.len() == k · dim`, `k, dim ≥ 1`, checked by the caller).
    pub(crate) fn new(k: usize, dim: usize, values: &[f64]) -> Self {
        let quads = dim.div_ceil(4);
        let groups = k.div_ceil(4);
        let mut weights = vec![Quad::default(); groups * dim * 4];
        let mut norms = vec![[f64::INFINITY; 4]; groups];
        let mut centres = vec![Quad::default(); k * quads];
        let mut weights32 = vec![Octet::default(); groups * dim * 4];
        let mut norms32 = vec![[f32::INFINITY; 4]; groups];
        let mut max_norm2 = 0.0f64;
        let mut finite = true;
        for (c, centre) in values.chunks_exact(dim).enumerate() {
            let (g, i) = (c / 4, c % 4);
            norms[g][i] = centre.iter().map(|v| v * v).sum();
            max_norm2 = max_norm2.max(norms[g][i]);
            finite &= norms[g][i].is_finite();
            norms32[g][i] = norms[g][i] as f32;
            for (j, v) in centre.iter().enumerate() {
                weights[(g * dim + j) * 4 + i] = Quad([-2.0 * v; 4]);
                weights32[(g * dim + j) * 4 + i] = Octet([(-2.0 * v) as f32; 8]);
                centres[c * quads + j / 4].0[j % 4] = *v;
            }
        }
        Self {
            k,
            dim,
            quads,
            weights,
            norms,
            centres,
            weights32,
            norms32,
            // (Centres are finite; were one not, the `f32` search is never used.)
            coarse: Coarse::new(dim, if finite { max_norm2 } else { f64::INFINITY }),
        }
    }
}

impl Avx2Fma {
    /// Step 1 for the `L` rows of `chunk` (`L` a multiple of four; at least `dim` columns):
    /// the nearest centre of each row, the smallest `‖c‖² − 2 x·c` (the chosen centre's) and
    /// the second smallest (over the other centres; `+∞` when `k = 1`).
    ///
    /// # Panics
    /// If `chunk` is narrower than the table (a caller bug).
    #[inline(always)]
    pub(crate) fn nearest_in_chunk<const L: usize, C: Lanes<L> + ?Sized>(
        self,
        table: &CentreTable,
        chunk: &C,
        nearest: &mut [u64; L],
        best: &mut [f64; L],
        second: &mut [f64; L],
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` exists only if the CPU supports AVX2 and FMA.
        unsafe {
            x86::nearest(table, chunk, nearest, best, second)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (table, chunk, nearest, best, second);
            match self.0 {}
        }
    }

    /// Step 2 for the `L` rows of `chunk` (`L` a multiple of four; at least `dim` rounded up
    /// to a multiple of four columns, those past `dim` zero), each against the centre
    /// `nearest` names: the exact squared distance into `dist` and, when `sums` is given (four
    /// copies of `k` centres of `dim.div_ceil(4)` quads), each of the first `valid` rows' `x − c`
    /// added to its centre's sum in copy `row mod 4`.
    ///
    /// # Panics
    /// If `chunk` is narrower than the table or `sums` is too short (caller bugs).
    #[inline(always)]
    pub(crate) fn exact_in_chunk<const L: usize, C: Lanes<L> + ?Sized>(
        self,
        table: &CentreTable,
        chunk: &C,
        valid: usize,
        sums: Option<&mut [Quad]>,
        nearest: &[u64; L],
        dist: &mut [f64; L],
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` exists only if the CPU supports AVX2 and FMA.
        unsafe {
            match sums {
                // Every row valid (nearly every chunk): no per-row test in the loop.
                Some(sums) if valid >= L => {
                    x86::exact::<L, true, true, C>(table, chunk, valid, sums, nearest, dist)
                }
                Some(sums) => {
                    x86::exact::<L, true, false, C>(table, chunk, valid, sums, nearest, dist)
                }
                None => {
                    x86::exact::<L, false, false, C>(table, chunk, valid, &mut [], nearest, dist)
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (table, chunk, valid, sums, nearest, dist);
            match self.0 {}
        }
    }
}

impl Avx2Fma {
    /// The `f32` search (see [`Coarse`]) for the `L` rows of `chunk` (`L` a multiple of 16;
    /// at least `dim` columns), for a pass that keeps bounds without computing the exact
    /// distances: `true` when it settles every row, with the nearest centre of each in
    /// `nearest` (the `f64` search's), an upper bound on its squared distance to it in
    /// `upper`, and in `gaps` a lower bound on how much further the second nearest is,
    /// squared, *beyond `upper`* (so `upper + gaps` is at most the squared distance to the
    /// second nearest). `false` (all three unspecified) when some row is a close call.
    ///
    /// # Panics
    /// If `chunk` is narrower than the table or `rounded` was made for fewer columns (caller
    /// bugs).
    #[inline(always)]
    pub(crate) fn nearest_coarse<const L: usize, C: Lanes<L> + ?Sized>(
        self,
        table: &CentreTable,
        chunk: &C,
        rounded: &mut Rounded,
        nearest: &mut [u64; L],
        gaps: &mut [f64; L],
        upper: &mut [f64; L],
    ) -> bool {
        assert!(
            chunk.width() >= table.dim && rounded.0.len() >= table.dim,
            "a chunk narrower than the centres"
        );
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` exists only if the CPU supports AVX2 and FMA.
        unsafe {
            x86::nearest32::<L, true, C>(table, chunk, rounded, nearest, gaps, upper)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (table, chunk, rounded, nearest, gaps, upper);
            match self.0 {}
        }
    }
}

/// What a Lloyd pass does with each chunk's search besides the sums, counts and cost (see
/// [`Avx2Fma::lloyd_in_place`]): nothing, or keep the rows' distance bounds.
pub(crate) trait OnChunk<const L: usize> {
    /// The chunk of rows `at .. at + L` (counted from the columns' first row) was searched:
    /// per row, the nearest centre; how far the second nearest is beyond it, as the `f64`
    /// search's second smallest value minus its smallest, or less (never more than the exact
    /// difference) when the `f32` search found it (see [`Coarse`]); and the exact squared
    /// distance to the nearest centre.
    fn searched(&mut self, at: usize, nearest: &[u64; L], gaps: &[f64; L], dist: &[f64; L]);
}

impl<const L: usize> OnChunk<L> for () {
    #[inline(always)]
    fn searched(&mut self, _: usize, _: &[u64; L], _: &[f64; L], _: &[f64; L]) {}
}

/// What a Lloyd pass adds up over the rows of a block (see [`Avx2Fma::lloyd_in_place`]).
pub(crate) struct LloydAcc<'a, const L: usize> {
    /// Four copies of the per-centre sums of `x − c` (row `l` of a chunk to copy `l mod 4`).
    pub(crate) sums: &'a mut [Quad],
    /// Per centre, four copies of its row count (row `l` of a chunk to copy `l mod 4`).
    pub(crate) counts: &'a mut [[u64; 4]],
    /// Per lane of a chunk, the sum of its rows' squared distances.
    pub(crate) cost: &'a mut [f64; L],
}

impl Avx2Fma {
    /// A Lloyd pass over the first `chunks` chunks of `L` rows of `cols` (read in place): per
    /// row, the nearest centre, the exact squared distance to it, and the row added to
    /// `acc`, exactly as [`Avx2Fma::nearest_in_chunk`] then [`Avx2Fma::exact_in_chunk`] with
    /// sums do it, chunk after chunk, so the results are the same bits; then `on_chunk` is
    /// told what the chunk's search found. Asks for the rows `ahead` rows past each chunk to
    /// be loaded.
    ///
    /// # Panics
    /// If `cols` has fewer than `chunks · L` rows or is narrower than the table, or `acc` is
    /// shorter than the table's centres (caller bugs).
    pub(crate) fn lloyd_in_place<const L: usize, O: OnChunk<L>>(
        self,
        table: &CentreTable,
        cols: &InPlace<'_>,
        chunks: usize,
        ahead: usize,
        acc: &mut LloydAcc<'_, L>,
        on_chunk: O,
    ) {
        assert!(chunks * L <= cols.rows, "chunks past the rows");
        assert!(acc.counts.len() >= table.k, "counts for fewer centres");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` exists only if the CPU supports AVX2 and FMA.
        unsafe {
            x86::lloyd(table, cols, chunks, ahead, acc, on_chunk)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (table, cols, chunks, ahead, acc, on_chunk);
            match self.0 {}
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{CentreTable, InPlace, Lanes, LloydAcc, OnChunk, Quad, Rounded};
    use crate::simd::x86::store;

    /// The four values of `q`.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[inline(always)]
    unsafe fn load_quad(q: &Quad) -> __m256d {
        // SAFETY: a quad is four values on a 32-byte boundary; AVX is the caller's promise.
        unsafe { _mm256_load_pd(q.0.as_ptr()) }
    }

    /// Writes `v` to `q`.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[inline(always)]
    unsafe fn store_quad(q: &mut Quad, v: __m256d) {
        // SAFETY: a quad is four values on a 32-byte boundary; AVX is the caller's promise.
        unsafe { _mm256_store_pd(q.0.as_mut_ptr(), v) }
    }

    /// Step 1: the nearest centre of each row by `‖c‖² − 2 x·c`, eight rows (two vectors) ×
    /// four centres (a group) of accumulators per sweep over the columns, each group's weights
    /// loaded once for both vectors; also the smallest and second smallest value.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline(always)]
    pub(super) unsafe fn nearest<const L: usize, C: Lanes<L> + ?Sized>(
        t: &CentreTable,
        chunk: &C,
        nearest: &mut [u64; L],
        best_out: &mut [f64; L],
        second_out: &mut [f64; L],
    ) {
        const { assert!(L / 8 * 8 == L) };
        assert!(chunk.width() >= t.dim, "a chunk narrower than the centres");
        let groups = t.norms.len();
        // SAFETY: AVX2 and FMA are the caller's promise.
        unsafe {
            for base in (0..L).step_by(8) {
                let start = || Best {
                    best: _mm256_set1_pd(f64::INFINITY),
                    second: _mm256_set1_pd(f64::INFINITY),
                    index: _mm256_setzero_pd(),
                };
                let mut states = [start(), start()];
                for g in 0..groups {
                    sweep(t, chunk, base, g, &mut states);
                }
                for (h, state) in states.iter().enumerate() {
                    let at = base + 4 * h;
                    store(&mut best_out[at..], state.best);
                    store(&mut second_out[at..], state.second);
                    let mut ids = [0i32; 4];
                    // SAFETY: `ids` holds the four 32-bit integers written.
                    _mm_storeu_si128(ids.as_mut_ptr().cast(), _mm256_cvttpd_epi32(state.index));
                    for (n, id) in nearest[at..at + 4].iter_mut().zip(ids) {
                        // A small exact integer; the clamp only guards later indexing.
                        *n = (id.max(0) as u64).min(t.k as u64 - 1);
                    }
                }
            }
        }
    }

    /// The smallest value so far of four rows, the centre it belongs to (as `f64`) and the
    /// second smallest.
    struct Best {
        best: __m256d,
        second: __m256d,
        index: __m256d,
    }

    /// The values of the eight rows at `base` (`base + 8 ≤ L`) for the four centres of group
    /// `g`, folded into `states` (rows `base .. base + 4` into the first, the next four into
    /// the second). Each value is the same chain of multiply-adds, column by column from
    /// `‖c‖²`, whatever the blocking, so the results do not depend on it.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline(always)]
    unsafe fn sweep<const L: usize, C: Lanes<L> + ?Sized>(
        t: &CentreTable,
        chunk: &C,
        base: usize,
        g: usize,
        states: &mut [Best; 2],
    ) {
        let dim = t.dim;
        let weights = &t.weights[g * 4 * dim..(g + 1) * 4 * dim];
        // SAFETY: AVX2 and FMA are the caller's promise. The row loads are at lanes
        // `base .. base + 8 ≤ L` of an `L`-lane column; the weight loads at quads `4j + c <
        // 4 dim` of `weights` (`4 dim` long).
        unsafe {
            let norms = t.norms[g].map(|n| _mm256_set1_pd(n));
            let (mut a0, mut a1) = (norms, norms);
            let w = weights.as_ptr();
            for j in 0..dim {
                let x = chunk.lanes(j).as_ptr().add(base);
                let (x0, x1) = (_mm256_loadu_pd(x), _mm256_loadu_pd(x.add(4)));
                for c in 0..4 {
                    let wc = load_quad(&*w.add(4 * j + c));
                    a0[c] = _mm256_fmadd_pd(x0, wc, a0[c]);
                    a1[c] = _mm256_fmadd_pd(x1, wc, a1[c]);
                }
            }
            let first = (4 * g) as f64;
            fold_group(&mut states[0], &a0, first);
            fold_group(&mut states[1], &a1, first);
        }
    }

    /// Folds the values `a` of four centres, `first` the index of the first, into `state`:
    /// a knock-out among the four, then against the best so far. The later centre wins only
    /// when strictly smaller, so ties keep the lowest index; the second smallest is the
    /// smallest of the losers' values.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[inline(always)]
    unsafe fn fold_group(state: &mut Best, a: &[__m256d; 4], first: f64) {
        // SAFETY: AVX is the caller's promise.
        unsafe {
            let c01 = _mm256_cmp_pd::<_CMP_LT_OQ>(a[1], a[0]);
            let c23 = _mm256_cmp_pd::<_CMP_LT_OQ>(a[3], a[2]);
            let v01 = _mm256_blendv_pd(a[0], a[1], c01);
            let v23 = _mm256_blendv_pd(a[2], a[3], c23);
            let lost = _mm256_min_pd(_mm256_max_pd(a[0], a[1]), _mm256_max_pd(a[2], a[3]));
            let i01 = _mm256_blendv_pd(_mm256_set1_pd(first), _mm256_set1_pd(first + 1.0), c01);
            let i23 = _mm256_blendv_pd(
                _mm256_set1_pd(first + 2.0),
                _mm256_set1_pd(first + 3.0),
                c23,
            );
            let c = _mm256_cmp_pd::<_CMP_LT_OQ>(v23, v01);
            let v = _mm256_blendv_pd(v01, v23, c);
            let lost = _mm256_min_pd(lost, _mm256_max_pd(v01, v23));
            let ig = _mm256_blendv_pd(i01, i23, c);
            let closer = _mm256_cmp_pd::<_CMP_LT_OQ>(v, state.best);
            state.second = _mm256_min_pd(
                _mm256_min_pd(state.second, lost),
                _mm256_max_pd(state.best, v),
            );
            state.best = _mm256_blendv_pd(state.best, v, closer);
            state.index = _mm256_blendv_pd(state.index, ig, closer);
        }
    }

    /// Step 2: the exact `Σⱼ (xⱼ − cⱼ)²` to the chosen centre and, with `SUMS`, each row's
    /// `x − c` added to `sums` (four copies, row `l` to copy `l mod 4`): four rows at a time,
    /// each 4 × 4 block of the chunk transposed into rows. `ALL`: every row is valid
    /// (`valid ≥ L`), known at compile time.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline(always)]
    pub(super) unsafe fn exact<
        const L: usize,
        const SUMS: bool,
        const ALL: bool,
        C: Lanes<L> + ?Sized,
    >(
        t: &CentreTable,
        chunk: &C,
        valid: usize,
        sums: &mut [Quad],
        nearest: &[u64; L],
        dist: &mut [f64; L],
    ) {
        const { assert!(L / 4 * 4 == L) };
        let (k, q) = (t.k, t.quads);
        // The bounds the pointers below stay within (the slice indexing checks them).
        assert!(chunk.width() >= 4 * q, "a chunk narrower than the centres");
        let centres = &t.centres[..k * q];
        let copy = k * q;
        let sums = if SUMS { &mut sums[..4 * copy] } else { &mut [] };
        let valid = if SUMS { valid.min(L) } else { 0 };
        // SAFETY: AVX2 and FMA are the caller's promise. Reads of `chunk` are at lanes
        // `base .. base + 4 ≤ L` of its `4q` columns. A chosen centre `n` (clamped below `k`)
        // spans quads `n·q .. n·q + q` of `centres` (`k·q` long), read at `jq < q`. With
        // `SUMS`, row `i` of a set adds to copy `i < 4` at the same quads of `sums`
        // (`4·k·q` long), a place no other live reference points to.
        unsafe {
            let centres = centres.as_ptr();
            let sums = sums.as_mut_ptr();
            for base in (0..L).step_by(4) {
                let mut at = [0usize; 4];
                for (a, n) in at.iter_mut().zip(&nearest[base..base + 4]) {
                    *a = (*n as usize).min(k - 1) * q;
                }
                // Rows past `valid` are padding: they stay out of the sums.
                let add = if ALL {
                    4
                } else {
                    valid.saturating_sub(base).min(4)
                };
                let mut acc = [_mm256_setzero_pd(); 4];
                for jq in 0..q {
                    let cols = chunk.quad(jq);
                    let x = [
                        _mm256_loadu_pd(cols[0].as_ptr().add(base)),
                        _mm256_loadu_pd(cols[1].as_ptr().add(base)),
                        _mm256_loadu_pd(cols[2].as_ptr().add(base)),
                        _mm256_loadu_pd(cols[3].as_ptr().add(base)),
                    ];
                    let t0 = _mm256_unpacklo_pd(x[0], x[1]);
                    let t1 = _mm256_unpackhi_pd(x[0], x[1]);
                    let t2 = _mm256_unpacklo_pd(x[2], x[3]);
                    let t3 = _mm256_unpackhi_pd(x[2], x[3]);
                    let rows = [
                        _mm256_permute2f128_pd::<0x20>(t0, t2),
                        _mm256_permute2f128_pd::<0x20>(t1, t3),
                        _mm256_permute2f128_pd::<0x31>(t0, t2),
                        _mm256_permute2f128_pd::<0x31>(t1, t3),
                    ];
                    let mut diffs = [_mm256_setzero_pd(); 4];
                    for (((a, d), row), at) in acc.iter_mut().zip(&mut diffs).zip(rows).zip(at) {
                        *d = _mm256_sub_pd(row, load_quad(&*centres.add(at + jq)));
                        *a = _mm256_fmadd_pd(*d, *d, *a);
                    }
                    if SUMS {
                        let diffs = diffs.into_iter().zip(at).enumerate();
                        if add == 4 {
                            for (i, (d, at)) in diffs {
                                let s = &mut *sums.add(i * copy + at + jq);
                                store_quad(s, _mm256_add_pd(load_quad(s), d));
                            }
                        } else {
                            for (i, (d, at)) in diffs.take(add) {
                                let s = &mut *sums.add(i * copy + at + jq);
                                store_quad(s, _mm256_add_pd(load_quad(s), d));
                            }
                        }
                    }
                }
                // [Σ row 0, Σ row 1, Σ row 2, Σ row 3] from the four partial-sum vectors.
                let h01 = _mm256_hadd_pd(acc[0], acc[1]);
                let h23 = _mm256_hadd_pd(acc[2], acc[3]);
                let total = _mm256_add_pd(
                    _mm256_permute2f128_pd::<0x20>(h01, h23),
                    _mm256_permute2f128_pd::<0x31>(h01, h23),
                );
                _mm256_storeu_pd(dist.as_mut_ptr().add(base), total);
            }
        }
    }

    /// The nearest centre of each of the `L` rows of `chunk` (`L` a multiple of 16) by the
    /// `f32` search, into `nearest`, and a lower bound on how much further the second nearest
    /// is (its value minus the nearest's, less twice the error bound) into `gaps`, when every
    /// row's is certain (see [`super::Coarse`]); `false` (and both unspecified) when some
    /// row's is not. `rounded` holds the chunk's columns in `f32` in between (at least `dim`
    /// of them). With `UPPER`, `upper` and `gaps` take the form of
    /// [`super::Avx2Fma::nearest_coarse`] instead (else `upper` is left alone).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline(always)]
    pub(super) unsafe fn nearest32<const L: usize, const UPPER: bool, C: Lanes<L> + ?Sized>(
        t: &CentreTable,
        chunk: &C,
        rounded: &mut Rounded,
        nearest: &mut [u64; L],
        gaps: &mut [f64; L],
        upper: &mut [f64; L],
    ) -> bool {
        const { assert!(L / 16 * 16 == L) };
        let dim = t.dim;
        let rounded = &mut rounded.0[..dim];
        // SAFETY: an `Octet` is eight `f32` on a 32-byte boundary, as an `__m256` is: the
        // same memory, read as vectors.
        let rounded = unsafe {
            std::slice::from_raw_parts_mut(rounded.as_mut_ptr().cast::<[__m256; 2]>(), dim)
        };
        let groups = t.norms32.len();
        let weights = &t.weights32[..groups * dim * 4];
        let mut certain = true;
        // SAFETY: AVX2 and FMA are the caller's promise. Row loads are at lanes `base .. base
        // + 16 ≤ L` of an `L`-lane column; weight loads at `g·4·dim + 4j + c < groups·4·dim`;
        // the two 32-byte stores of centres fill `nearest[at .. at + 8]` (eight `u64`).
        unsafe {
            for base in (0..L).step_by(16) {
                let mut norm = [_mm256_setzero_ps(); 2];
                for (j, r) in rounded.iter_mut().enumerate() {
                    let x = chunk.lanes(j).as_ptr().add(base);
                    let q = |i: usize| _mm256_cvtpd_ps(_mm256_loadu_pd(x.add(4 * i)));
                    *r = [_mm256_set_m128(q(1), q(0)), _mm256_set_m128(q(3), q(2))];
                    for (n, v) in norm.iter_mut().zip(*r) {
                        *n = _mm256_fmadd_ps(v, v, *n);
                    }
                }
                let inf = _mm256_set1_ps(f32::INFINITY);
                let mut states = [(inf, inf, _mm256_setzero_ps()); 2];
                for g in 0..groups {
                    let norms = t.norms32[g].map(|n| _mm256_set1_ps(n));
                    let (mut a0, mut a1) = (norms, norms);
                    let w = weights.as_ptr().add(g * 4 * dim);
                    for (j, [x0, x1]) in rounded.iter().enumerate() {
                        for c in 0..4 {
                            let wc = _mm256_load_ps((*w.add(4 * j + c)).0.as_ptr());
                            a0[c] = _mm256_fmadd_ps(*x0, wc, a0[c]);
                            a1[c] = _mm256_fmadd_ps(*x1, wc, a1[c]);
                        }
                    }
                    let first = (4 * g) as f32;
                    fold32(&mut states[0], &a0, first);
                    fold32(&mut states[1], &a1, first);
                }
                let coarse = t.coarse;
                for (h, ((best, second, index), norm)) in states.into_iter().zip(norm).enumerate() {
                    let s = _mm256_add_ps(norm, _mm256_set1_ps(coarse.reach));
                    let e = _mm256_fmadd_ps(
                        s,
                        _mm256_set1_ps(coarse.kappa),
                        _mm256_set1_ps(coarse.floor),
                    );
                    let apart = _mm256_cmp_ps::<_CMP_GT_OQ>(
                        _mm256_sub_ps(second, best),
                        _mm256_add_ps(e, e),
                    );
                    let in_range =
                        _mm256_cmp_ps::<_CMP_LT_OQ>(s, _mm256_set1_ps(super::COARSE_MAX));
                    certain &= _mm256_movemask_ps(_mm256_and_ps(apart, in_range)) == 0xff;
                    let at = base + 8 * h;
                    // The gap less twice the bound, in `f64` (where it rounds by far less
                    // than the bound's slack).
                    let wide = |v: __m256| {
                        [
                            _mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v)),
                        ]
                    };
                    let (b, s, e) = (wide(best), wide(second), wide(e));
                    for i in 0..2 {
                        let slack = _mm256_add_pd(e[i], e[i]);
                        let g = _mm256_sub_pd(_mm256_sub_pd(s[i], b[i]), slack);
                        if UPPER {
                            // `‖x‖²` in `f32` is within `E` too: the squared distance is at
                            // most `norm + best + 2E`, and the second nearest's at least
                            // `norm + second − 2E`, which is that plus the gap less `4E`.
                            let n = wide(norm);
                            store(&mut gaps[at + 4 * i..], _mm256_sub_pd(g, slack));
                            let d = _mm256_add_pd(_mm256_add_pd(n[i], b[i]), slack);
                            store(&mut upper[at + 4 * i..], d);
                        } else {
                            store(&mut gaps[at + 4 * i..], g);
                        }
                    }
                    // Small exact integers; the clamp to `0 ..= k − 1` only guards later
                    // indexing. Widened to `u64` four at a time.
                    let ids = _mm256_min_epi32(
                        _mm256_max_epi32(_mm256_cvttps_epi32(index), _mm256_setzero_si256()),
                        _mm256_set1_epi32(i32::try_from(t.k - 1).unwrap_or(i32::MAX)),
                    );
                    let out = nearest[at..at + 8].as_mut_ptr().cast::<__m256i>();
                    _mm256_storeu_si256(out, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(ids)));
                    _mm256_storeu_si256(
                        out.add(1),
                        _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(ids)),
                    );
                }
            }
        }
        certain
    }

    /// [`fold_group`] in `f32`, eight rows at a time: `state` is the smallest value so far,
    /// the second smallest and the index of the smallest's centre (as `f32`).
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[inline(always)]
    unsafe fn fold32(state: &mut (__m256, __m256, __m256), a: &[__m256; 4], first: f32) {
        // SAFETY: AVX is the caller's promise.
        unsafe {
            let (best, second, index) = state;
            let c01 = _mm256_cmp_ps::<_CMP_LT_OQ>(a[1], a[0]);
            let c23 = _mm256_cmp_ps::<_CMP_LT_OQ>(a[3], a[2]);
            let v01 = _mm256_blendv_ps(a[0], a[1], c01);
            let v23 = _mm256_blendv_ps(a[2], a[3], c23);
            let lost = _mm256_min_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
            let i01 = _mm256_blendv_ps(_mm256_set1_ps(first), _mm256_set1_ps(first + 1.0), c01);
            let i23 = _mm256_blendv_ps(
                _mm256_set1_ps(first + 2.0),
                _mm256_set1_ps(first + 3.0),
                c23,
            );
            let c = _mm256_cmp_ps::<_CMP_LT_OQ>(v23, v01);
            let v = _mm256_blendv_ps(v01, v23, c);
            let lost = _mm256_min_ps(lost, _mm256_max_ps(v01, v23));
            let ig = _mm256_blendv_ps(i01, i23, c);
            let closer = _mm256_cmp_ps::<_CMP_LT_OQ>(v, *best);
            *second = _mm256_min_ps(_mm256_min_ps(*second, lost), _mm256_max_ps(*best, v));
            *best = _mm256_blendv_ps(*best, v, closer);
            *index = _mm256_blendv_ps(*index, ig, closer);
        }
    }

    /// [`super::Avx2Fma::lloyd_in_place`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn lloyd<const L: usize, O: OnChunk<L>>(
        t: &CentreTable,
        cols: &InPlace<'_>,
        chunks: usize,
        ahead: usize,
        acc: &mut LloydAcc<'_, L>,
        mut on_chunk: O,
    ) {
        let mut near = [0u64; L];
        let (mut best, mut second) = ([0.0f64; L], [0.0f64; L]);
        let (mut gaps, mut dist) = ([0.0f64; L], [0.0f64; L]);
        // The chunk's columns in `f32`, for the `f32` search.
        let mut rounded = Rounded::new(t.dim);
        for c in 0..chunks {
            let at = c * L;
            cols.prefetch(at + ahead);
            let Some(chunk) = cols.at::<L>(at) else {
                return;
            };
            // SAFETY: AVX2 and FMA are the caller's promise.
            unsafe {
                if !nearest32::<L, false, _>(
                    t,
                    &chunk,
                    &mut rounded,
                    &mut near,
                    &mut gaps,
                    &mut dist,
                ) {
                    nearest(t, &chunk, &mut near, &mut best, &mut second);
                    for ((g, b), s) in gaps.iter_mut().zip(&best).zip(&second) {
                        *g = s - b;
                    }
                }
                exact::<L, true, true, _>(t, &chunk, L, acc.sums, &near, &mut dist);
            }
            for (c, d) in acc.cost.iter_mut().zip(&dist) {
                *c += d;
            }
            // (Clamped, as the search's answers are, so the index needs no check.)
            let counts = &mut acc.counts[..t.k];
            for (l, &n) in near.iter().enumerate() {
                counts[(n as usize).min(t.k - 1)][l % 4] += 1;
            }
            on_chunk.searched(at, &near, &gaps, &dist);
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// How many of the chunks of 16 rows of `cols` the `f32` search settles, checking that
    /// each answer it gives is the `f64` search's, that its gaps are no wider than the `f64`
    /// search's, and that its form with an upper bound on the distance
    /// ([`Avx2Fma::nearest_coarse`]) settles the same chunks with bounds that hold: the
    /// squared distance to the nearest centre at most `upper`, and to every other centre at
    /// least `upper + gap`.
    fn certain_chunks(cols: &[Vec<f64>], centres: &[f64]) -> usize {
        let token = Avx2Fma::detect().unwrap();
        let dim = cols.len();
        let table = CentreTable::new(centres.len() / dim, dim, centres);
        let refs: Vec<&[f64]> = cols.iter().map(|c| &c[..]).collect();
        let view = InPlace::new(&refs, dim.div_ceil(4) * 4).unwrap();
        let mut rounded = Rounded::new(dim);
        let mut scratch = Rounded::new(dim);
        let mut certain = 0;
        for at in (0..view.rows() / 16).map(|c| c * 16) {
            let chunk = view.at::<16>(at).unwrap();
            let (mut coarse, mut exact, mut bounded) = ([0u64; 16], [0u64; 16], [0u64; 16]);
            let (mut best, mut second, mut gaps) = ([0.0; 16], [0.0; 16], [0.0; 16]);
            let (mut wider, mut upper, mut unused) = ([0.0; 16], [0.0; 16], [0.0; 16]);
            let settled = token.nearest_coarse(
                &table,
                &chunk,
                &mut scratch,
                &mut bounded,
                &mut wider,
                &mut upper,
            );
            // SAFETY: the test runs only where the CPU has AVX2 and FMA.
            unsafe {
                let found = x86::nearest32::<16, false, _>(
                    &table,
                    &chunk,
                    &mut rounded,
                    &mut coarse,
                    &mut gaps,
                    &mut unused,
                );
                assert_eq!(settled, found, "rows {at}..");
                if found {
                    certain += 1;
                    x86::nearest(&table, &chunk, &mut exact, &mut best, &mut second);
                    assert_eq!(coarse, exact, "rows {at}..");
                    assert_eq!(bounded, exact, "rows {at}..");
                    for l in 0..16 {
                        let gap = second[l] - best[l];
                        assert!(gaps[l] > 0.0 && gaps[l] <= gap, "row {}: {gaps:?}", at + l);
                        let row: Vec<f64> = cols.iter().map(|c| c[at + l]).collect();
                        for (c, centre) in centres.chunks_exact(dim).enumerate() {
                            let d2: f64 =
                                row.iter().zip(centre).map(|(x, c)| (x - c) * (x - c)).sum();
                            if c as u64 == exact[l] {
                                assert!(upper[l] >= d2, "row {}: {} < {d2}", at + l, upper[l]);
                            } else {
                                assert!(
                                    upper[l] + wider[l] <= d2,
                                    "row {} centre {c}: {} + {} > {d2}",
                                    at + l,
                                    upper[l],
                                    wider[l]
                                );
                            }
                        }
                    }
                }
            }
        }
        certain
    }

    #[test]
    fn the_f32_search_settles_separated_rows_and_leaves_close_calls() {
        if Avx2Fma::detect().is_none() {
            return;
        }
        // Rows near one of four centres, each coordinate within ±1 of it.
        let (dim, n) = (6, 4096);
        let centres: Vec<f64> = (0..4 * dim)
            .map(|i| ((i * 7919) % 23) as f64 - 11.0)
            .collect();
        let mut state = 12345u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut cols = vec![vec![0.0; n]; dim];
        for i in 0..n {
            let c = (next() * 4.0) as usize % 4;
            for (j, col) in cols.iter_mut().enumerate() {
                col[i] = centres[c * dim + j] + 2.0 * next() - 1.0;
            }
        }
        let separated = certain_chunks(&cols, &centres);
        assert!(
            separated * 10 >= 9 * n / 16,
            "{separated} of {} chunks",
            n / 16
        );
        // The same rows scaled within `f32`'s range, and far from the origin: the bounds
        // still hold wherever a chunk is settled.
        for (scale, offset) in [(1e-15, 0.0), (1e15, 0.0), (1.0, 1e3)] {
            let moved = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| x * scale + offset).collect() };
            let cols: Vec<Vec<f64>> = cols.iter().map(|c| moved(c)).collect();
            let settled = certain_chunks(&cols, &moved(&centres));
            assert!(
                settled * 10 >= 9 * n / 16,
                "{scale:e}, {offset:e}: {settled}"
            );
        }
        // The same rows past `f32`'s range, and vanishing in it.
        for scale in [1e30, 1e-30] {
            let scaled = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| x * scale).collect() };
            let cols: Vec<Vec<f64>> = cols.iter().map(|c| scaled(c)).collect();
            assert_eq!(
                certain_chunks(&cols, &scaled(&centres)),
                0,
                "scale {scale:e}"
            );
        }
        // Every row on the midpoint of the first two centres: a tie in every row.
        for (j, col) in cols.iter_mut().enumerate() {
            col.fill((centres[j] + centres[dim + j]) / 2.0);
        }
        assert_eq!(certain_chunks(&cols, &centres), 0);
    }
}
