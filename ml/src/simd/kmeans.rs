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
    starts: Vec<*const f64>,
    rows: usize,
    width: usize,
    _columns: PhantomData<&'a [f64]>,
}

/// Zeros for the columns of an [`InPlace`] chunk past the given ones.
static ZEROS: [f64; MAX_IN_PLACE_ROWS] = [0.0; MAX_IN_PLACE_ROWS];

/// The most rows an [`InPlace`] chunk may have.
const MAX_IN_PLACE_ROWS: usize = 64;

impl<'a> InPlace<'a> {
    /// The columns `cols`, read as `width` columns (`None` unless every column is as long as
    /// the first and `width` is at least their number).
    pub(crate) fn new(cols: &[&'a [f64]], width: usize) -> Option<Self> {
        let rows = cols.first().map_or(0, |c| c.len());
        (cols.iter().all(|c| c.len() == rows) && width >= cols.len()).then(|| Self {
            starts: cols.iter().map(|c| c.as_ptr()).collect(),
            rows,
            width,
            _columns: PhantomData,
        })
    }

    /// Rows `at .. at + L`, if they are all rows of the columns.
    #[inline(always)]
    pub(crate) fn at<const L: usize>(&self, at: usize) -> Option<InPlaceAt<'_, 'a, L>> {
        const { assert!(L <= MAX_IN_PLACE_ROWS) };
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
        self.cols.width
    }
    #[inline(always)]
    fn lanes(&self, j: usize) -> &[f64; L] {
        match self.cols.starts.get(j) {
            // SAFETY: column `j` has `rows` values from `start`, borrowed for `'a` (which
            // outlives `self`), and `at + L ≤ rows` (checked by `InPlace::at`).
            Some(start) => unsafe { &*start.add(self.at).cast::<[f64; L]>() },
            // SAFETY: `L ≤ MAX_IN_PLACE_ROWS` (checked by `InPlace::at`) zeros.
            None => unsafe { &*ZEROS.as_ptr().cast::<[f64; L]>() },
        }
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
        for (c, centre) in values.chunks_exact(dim).enumerate() {
            let (g, i) = (c / 4, c % 4);
            norms[g][i] = centre.iter().map(|v| v * v).sum();
            for (j, v) in centre.iter().enumerate() {
                weights[(g * dim + j) * 4 + i] = Quad([-2.0 * v; 4]);
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

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{CentreTable, Lanes, Quad};
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
    #[target_feature(enable = "avx2,fma")]
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
    #[target_feature(enable = "avx2,fma")]
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
                    let cols = [
                        chunk.lanes(4 * jq),
                        chunk.lanes(4 * jq + 1),
                        chunk.lanes(4 * jq + 2),
                        chunk.lanes(4 * jq + 3),
                    ];
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
}
