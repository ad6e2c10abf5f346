//! The fused nearest-centre loop every k-means kernel runs.
//!
//! Every kernel streams each cached block once. Per chunk of [`LANES`] rows, copied as `f64`
//! into a small contiguous buffer (whatever the storage type), it finds the nearest centre of
//! every row with the accumulators held in registers across the columns, and hands the chunk
//! to the kernel's accumulation (the Lloyd sums are added inside the loop). No `n × k`
//! distance matrix is ever built. Blocks ([`BLOCK_ROWS`] rows) run in
//! parallel; their partials are folded in block order, so a partial does not depend on the
//! number of threads.
//!
//! The loop has two code paths (see [`crate::simd`]), chosen once per process:
//!
//! - portable: the exact `Σ_j (x_j - c_j)²` to every centre, summed in column order (what a
//!   row-at-a-time loop computes), the nearest kept;
//! - AVX2 + FMA: the nearest centre by `‖c‖² − 2 x·c` (the expansion scikit-learn's Lloyd
//!   uses, one fused multiply-add per row, feature and centre), then the exact squared
//!   distance to the chosen centre only (see `simd::kmeans`), so the cost is exact too.
//!
//! Both give ties to the lowest centre index. They can disagree only on rows whose two nearest
//! centres are within rounding of each other; a machine always takes the same path.
//!
//! The sums a pass accumulates are of each row's difference from its centre, `x − c`; the
//! partial reports `n_c c + Σ (x − c)`, which keeps its digits when the rows lie far from the
//! origin and is what the steady-state steps keep (see [`super::steady`]).
//!
//! A pass that searches every row of `f64` columns it may read in place (a plain pass, or the
//! first pass of a fit that keeps bounds) takes all its block's whole chunks in one call
//! ([`Avx2Fma::lloyd_in_place`], the AVX2 path only). That loop first looks for each chunk's
//! nearest centres in `f32` (eight rows a vector, half the multiply-adds of the `f64` search)
//! and keeps the answer only when every row's two nearest centres are further apart than the
//! `f32` rounding could reach (see `simd::kmeans::Coarse`); otherwise the chunk is searched
//! again in `f64`. Either way each row gets the centre the `f64` search gives it, so the pass
//! is the same bits as the chunk-by-chunk loop.
//!
//! A [`KMeansKernel::Lloyd`] pass also keeps distance bounds per chunk of rows (see
//! [`super::bounds`]): a chunk whose rows all keep their centre skips the search, and on the
//! AVX2 path runs of `4 × LANES` such rows of `f64` columns are read in place, without the
//! chunk copy. Its
//! steady-state steps ([`super::steady`]) read only the chunks the bounds cannot settle.
//!
//! Cost, measured with `examples/kernel_speed.rs` (2 × 1M rows × 16 features, k = 8, two
//! threads) on the 2-core development VM (AMD EPYC, AVX2; shared, so ratios are steadier than
//! times): the portable loop is compute-bound at about 0.5 ns per (row, feature, centre) per
//! core, about 5.5 times a plain sum over the same bytes; on the AVX2 path a plain pass (the
//! one-call loop with the `f32` search) takes 2.0-2.3 times that floor, against 2.5-3.0 times
//! for the chunk-by-chunk loop, and is still compute-bound (the search, then the exact
//! distance and the sums). Without the prefetch requests a
//! streaming pass takes twice as long. The chunk copy costs the portable loop about 5% where
//! the columns do not alias and saves it 20-30% where they do (2^k rows).

use std::ops::Range;

use super::bounds::{self, BoundsTest};
use super::centers::{CenterSet, Chunk, LANES, PREFETCH_ROWS};
use crate::data::{DenseMatrix, Element};
use crate::simd::kmeans::{CentreTable, InPlace, Lanes, LloydAcc, OnChunk, Rounded};
use crate::simd::{prefetch, prefetch_at, Avx2Fma, CodePath, MulAdd, Quad, Unfused, Vectorize};

/// The centres prepared for the nearest-centre loop on one [`CodePath`]: the portable loop
/// reads the [`CenterSet`] as it is, the AVX2 loop a [`CentreTable`] built from it.
pub(crate) struct Nearest<'a> {
    pub(super) centers: &'a CenterSet,
    avx2: Option<Avx2Centres>,
}

impl<'a> Nearest<'a> {
    /// The centres prepared for `path` (the portable loop when the CPU lacks AVX2 or FMA).
    pub(crate) fn new(centers: &'a CenterSet, path: CodePath) -> Self {
        Self {
            centers,
            avx2: Avx2Fma::for_path(path)
                .map(|t| (t, CentreTable::new(centers.k, centers.dim, &centers.values))),
        }
    }

    /// Columns of the chunk buffer: `dim` for the portable loop; rounded up to a multiple of
    /// four (zero columns) for the AVX2 loop.
    pub(super) fn columns(&self) -> usize {
        match self.avx2 {
            Some(_) => self.quads() * 4,
            None => self.centers.dim,
        }
    }

    /// Quads per centre in [`CentreSums`].
    fn quads(&self) -> usize {
        self.centers.dim.div_ceil(4)
    }

    /// Zeroed per-centre sums.
    pub(super) fn sums(&self) -> CentreSums {
        CentreSums(vec![
            Quad::default();
            SUM_COPIES * self.centers.k * self.quads()
        ])
    }

    /// Copies the sums accumulated in `sums` to `out` (`k × dim`, row-major), folding the
    /// copies as `(s₀ + s₁) + (s₂ + s₃)`.
    pub(super) fn sums_to(&self, sums: &CentreSums, out: &mut [f64]) {
        let (dim, quads) = (self.centers.dim, self.quads());
        let copy = self.centers.k * quads;
        for (c, o) in out.chunks_exact_mut(dim).enumerate() {
            for (j, o) in o.iter_mut().enumerate() {
                let at = |i: usize| sums.0[i * copy + c * quads + j / 4].0[j % 4];
                *o = (at(0) + at(1)) + (at(2) + at(3));
            }
        }
    }

    /// The nearest centre of each lane, the smallest value of the search and the second
    /// smallest (over the other centres, `+∞` with one centre). The values are exact squared
    /// distances on the portable path and `‖c‖² − 2 x·c` on the AVX2 path.
    #[inline(always)]
    pub(super) fn search(&self, chunk: &Chunk) -> ([u64; LANES], [f64; LANES], [f64; LANES]) {
        match &self.avx2 {
            Some(avx2) => Self::search_avx2(avx2, chunk),
            None => nearest_in_chunk(chunk, self.centers),
        }
    }

    /// [`Nearest::search`] on the AVX2 path (`avx2`, this `Nearest`'s) for a copied chunk or
    /// rows read in place (`cols`, at least [`Nearest::columns`] of them, zeros past the
    /// dimension).
    #[inline(always)]
    fn search_avx2<C: Lanes<LANES> + ?Sized>(
        avx2: &Avx2Centres,
        cols: &C,
    ) -> ([u64; LANES], [f64; LANES], [f64; LANES]) {
        let (token, table) = avx2;
        let mut nearest = [0u64; LANES];
        let mut best = [0.0f64; LANES];
        let mut second = [0.0f64; LANES];
        token.nearest_in_chunk(table, cols, &mut nearest, &mut best, &mut second);
        (nearest, best, second)
    }

    /// [`Nearest::settle`] on the AVX2 path (`avx2`, this `Nearest`'s) for `L` rows, copied or
    /// read in place (`cols`, at least [`Nearest::columns`] of them, zeros past the
    /// dimension).
    #[inline(always)]
    fn settle_avx2<const L: usize, C: Lanes<L> + ?Sized>(
        avx2: &Avx2Centres,
        cols: &C,
        valid: usize,
        sums: Option<&mut CentreSums>,
        nearest: &[u64; L],
    ) -> [f64; L] {
        let (token, table) = avx2;
        let mut dist = [0.0f64; L];
        let sums = sums.map(|s| &mut s.0[..]);
        token.exact_in_chunk(table, cols, valid, sums, nearest, &mut dist);
        dist
    }

    /// The exact squared distance of each lane to the centre `nearest` names, and the first
    /// `valid` lanes' differences from it (`x − c`) added to that centre's sum (lane `l` to
    /// copy `l mod SUM_COPIES`) when `sums` is given. `searched` is what [`Nearest::search`] found for these centres, if it
    /// ran: the portable path's values are the distances already.
    #[inline(always)]
    pub(super) fn settle(
        &self,
        chunk: &Chunk,
        valid: usize,
        sums: Option<&mut CentreSums>,
        nearest: &[u64; LANES],
        searched: Option<&[f64; LANES]>,
    ) -> [f64; LANES] {
        match &self.avx2 {
            Some(avx2) => Self::settle_avx2(avx2, chunk, valid, sums, nearest),
            None => {
                let dist = match searched {
                    Some(best) => *best,
                    None => distances_in_chunk(chunk, self.centers, nearest),
                };
                if let Some(sums) = sums {
                    let stride = 4 * self.quads();
                    let copy = self.centers.k * stride;
                    let sums = Quad::flatten_mut(&mut sums.0);
                    let dim = self.centers.dim;
                    for (l, &c) in nearest.iter().enumerate().take(valid) {
                        let at = (l % SUM_COPIES) * copy + c as usize * stride;
                        let centre = self.centers.row(c as usize);
                        for ((s, col), cj) in sums[at..at + dim].iter_mut().zip(chunk).zip(centre) {
                            *s += col[l] - cj;
                        }
                    }
                }
                dist
            }
        }
    }
}

/// A chunk searched for a pass that keeps bounds but no sums: per lane, the nearest centre,
/// a gap and a squared distance as [`BlockBounds::record`] takes them.
pub(super) type Bounded = ([u64; LANES], [f64; LANES], [f64; LANES]);

/// Columns read in place on the AVX2 path (see [`Nearest::in_place`]).
pub(super) struct Placed<'n, 'c> {
    avx2: &'n Avx2Centres,
    columns: InPlace<'c>,
}

impl Placed<'_, '_> {
    /// A Lloyd pass over the whole chunks of these columns, added to `acc` (see
    /// [`Avx2Fma::lloyd_in_place`]); returns the rows it covered.
    pub(super) fn lloyd<O: OnChunk<LANES>>(
        &self,
        acc: &mut LloydAcc<'_, LANES>,
        on_chunk: O,
    ) -> usize {
        let (token, table) = self.avx2;
        let chunks = self.columns.rows() / LANES;
        token.lloyd_in_place(table, &self.columns, chunks, PREFETCH_ROWS, acc, on_chunk);
        chunks * LANES
    }

    /// [`Nearest::search_bounds`] for the chunk of rows `at .. at + LANES` read in place
    /// (`None` when the chunk runs past the rows: copy it instead).
    #[inline(always)]
    pub(super) fn search_bounds(
        &self,
        at: usize,
        valid: usize,
        rounded: &mut Rounded,
    ) -> Option<Bounded> {
        let cols = self.columns.at::<LANES>(at)?;
        Some(Nearest::bounds_avx2(self.avx2, &cols, valid, rounded))
    }
}

impl Nearest<'_> {
    /// The nearest centre of each lane of `chunk` (its first `valid` lanes rows), with what
    /// a pass that keeps bounds records of it (see [`BlockBounds::record`]), and no sums.
    /// On the AVX2 path the `f32` search is tried first: when it settles the chunk, the
    /// distances are its upper bounds and no exact distance is computed (`rounded` is its
    /// room, for at least the centres' dimension).
    #[inline(always)]
    pub(super) fn search_bounds(
        &self,
        chunk: &Chunk,
        valid: usize,
        rounded: &mut Rounded,
    ) -> Bounded {
        match &self.avx2 {
            Some(avx2) => Self::bounds_avx2(avx2, chunk, valid, rounded),
            None => {
                let (nearest, best, second) = self.search(chunk);
                let dist = self.settle(chunk, valid, None, &nearest, Some(&best));
                (nearest, gaps(&best, &second), dist)
            }
        }
    }

    /// [`Nearest::search_bounds`] on the AVX2 path (`avx2`, this `Nearest`'s).
    #[inline(always)]
    fn bounds_avx2<C: Lanes<LANES> + ?Sized>(
        avx2: &Avx2Centres,
        cols: &C,
        valid: usize,
        rounded: &mut Rounded,
    ) -> Bounded {
        let (token, table) = avx2;
        let mut nearest = [0u64; LANES];
        let (mut gap, mut upper) = ([0.0f64; LANES], [0.0f64; LANES]);
        if token.nearest_coarse(table, cols, rounded, &mut nearest, &mut gap, &mut upper) {
            return (nearest, gap, upper);
        }
        let (nearest, best, second) = Self::search_avx2(avx2, cols);
        let dist = Self::settle_avx2(avx2, cols, valid, None, &nearest);
        (nearest, gaps(&best, &second), dist)
    }
}

impl Nearest<'_> {
    /// Runs `body` on these centres' code path (compiled with AVX2 enabled on the AVX2 path).
    #[inline]
    pub(super) fn vectorize<B: Vectorize>(&self, body: B) -> B::Output {
        match &self.avx2 {
            Some((token, _)) => token.vectorize(body),
            None => body.run::<Unfused>(None),
        }
    }

    /// The columns `cols` (all of `rows` rows, of a block) read in place a chunk at a time, when
    /// they may be: on the AVX2 path, for `f64` columns that do not crowd the same cache sets
    /// (see [`spread_in_cache`]). Else chunks are copied.
    pub(super) fn in_place<'n, 'c, T: Element>(
        &'n self,
        rows: usize,
        cols: &[&'c [T]],
    ) -> Option<Placed<'n, 'c>> {
        let avx2 = self.avx2.as_ref()?;
        if !spread_in_cache(rows, self.centers.dim) {
            return None;
        }
        let f64s = cols
            .iter()
            .map(|c| T::as_f64(c))
            .collect::<Option<Vec<_>>>()?;
        Some(Placed {
            avx2,
            columns: InPlace::new(&f64s, self.columns())?,
        })
    }
}

/// Copies of the per-centre sums: consecutive rows add to different copies, so that adding a
/// row never waits for the previous row's addition to the same centre (a store and a reload)
/// to finish.
pub(super) const SUM_COPIES: usize = 4;

/// The per-centre sums of a block: [`SUM_COPIES`] copies of `k` centres of `dim.div_ceil(4)`
/// quads, row `l` of the block added to copy `l mod SUM_COPIES` (see [`Nearest::sums_to`]).
pub(crate) struct CentreSums(pub(super) Vec<Quad>);

/// Finds, for every row of `rows`, the nearest centre and its squared distance, and calls
/// `visit(chunk, valid, first_row, nearest, distance)` once per chunk of [`LANES`] rows; only
/// the first `valid` lanes are rows (the others are zero padding). With `sums`, also adds
/// every row to its nearest centre's sum.
///
/// Each chunk is first copied, as `f64`, into a small contiguous buffer that the passes over
/// the centres then read from the L1 cache. Read in place, the columns of a partition whose
/// row count is a multiple of 512 lie a multiple of 4 KiB apart and compete for the same few
/// cache sets, and the passes would reload them from further away every time.
///
/// On the AVX2 path the whole loop (the copies, the kernel and `visit` when it inlines) is
/// compiled with AVX2 enabled.
#[inline]
pub(crate) fn for_each_nearest<T: Element, F>(
    m: &DenseMatrix<T>,
    rows: Range<usize>,
    near: &Nearest<'_>,
    sums: Option<&mut CentreSums>,
    visit: F,
) where
    F: FnMut(&Chunk, usize, usize, &[u64; LANES], &[f64; LANES]),
{
    nearest_loop(m, rows, near, sums, None, true, visit);
}

/// [`for_each_nearest`] for a pass that keeps `bounds` (when given): chunks whose rows the
/// bounds settle skip the search. Without `needs_chunk`, `visit` gets an empty chunk (so chunks
/// may be read in place).
#[inline]
pub(super) fn nearest_loop<T: Element, F>(
    m: &DenseMatrix<T>,
    rows: Range<usize>,
    near: &Nearest<'_>,
    sums: Option<&mut CentreSums>,
    bounds: Option<BlockBounds<'_>>,
    needs_chunk: bool,
    visit: F,
) where
    F: FnMut(&Chunk, usize, usize, &[u64; LANES], &[f64; LANES]),
{
    NearestLoop {
        m,
        rows,
        near,
        sums,
        bounds,
        needs_chunk,
        visit,
    }
    .dispatch();
}

/// [`for_each_nearest`]'s loop, compiled once per code path.
pub(super) struct NearestLoop<'a, 'c, T, F> {
    m: &'a DenseMatrix<T>,
    rows: Range<usize>,
    near: &'a Nearest<'c>,
    sums: Option<&'a mut CentreSums>,
    /// The rows' bounds (see [`super::bounds`]), when the pass keeps them.
    bounds: Option<BlockBounds<'a>>,
    /// Whether `visit` reads the chunk; if not, chunks may be read in place, and it gets an
    /// empty one.
    needs_chunk: bool,
    visit: F,
}

impl<T: Element, F> NearestLoop<'_, '_, T, F>
where
    F: FnMut(&Chunk, usize, usize, &[u64; LANES], &[f64; LANES]),
{
    /// Runs the loop on the centres' code path.
    #[inline]
    pub(super) fn dispatch(self) {
        let near = self.near;
        near.vectorize(self);
    }
}

/// The bounds of one block's rows during a pass, indexed from the block's first row (its
/// chunks from the block's first chunk).
pub(crate) struct BlockBounds<'a> {
    pub(super) test: &'a BoundsTest,
    /// Whether the stored bounds are from an earlier pass of the fit (else every row is
    /// searched).
    pub(super) usable: bool,
    pub(super) assign: &'a mut [u16],
    /// Per chunk of [`LANES`] rows.
    pub(super) gap: &'a mut [f32],
    /// Per chunk of [`LANES`] rows.
    pub(super) reach: &'a mut [f32],
    /// Rows of the block searched so far.
    pub(super) searched: usize,
}

impl Drop for BlockBounds<'_> {
    fn drop(&mut self) {
        self.test.count_searched(self.searched);
    }
}

impl BlockBounds<'_> {
    /// Asks for the bounds of row `at` of the block (and the lines after it) to be loaded.
    #[inline(always)]
    pub(super) fn prefetch(&self, at: usize) {
        if let Some(v) = self.assign.get(at) {
            prefetch(v);
        }
        self.prefetch_tests(at);
    }

    /// Asks for the chunk bounds of row `at` of the block (and the lines after them) to be
    /// loaded: what [`BlockBounds::keeps`] reads.
    #[inline(always)]
    pub(super) fn prefetch_tests(&self, at: usize) {
        if let Some(v) = self.gap.get(at / LANES) {
            prefetch(v);
        }
        if let Some(v) = self.reach.get(at / LANES) {
            prefetch(v);
        }
    }

    /// Whether every row `at .. at + valid` of the block (`at` the first row of a chunk, `valid`
    /// whole chunks or the rest of the block) keeps its centre on the bounds alone (then the
    /// search is not needed). Reads only the chunks' bounds, not the rows' centres.
    #[inline(always)]
    pub(super) fn keeps(&self, at: usize, valid: usize) -> bool {
        if !self.usable {
            return false;
        }
        let first = at / LANES;
        let chunks = first..first + valid.div_ceil(LANES);
        let test = self.test;
        self.gap[chunks.clone()]
            .iter()
            .zip(&self.reach[chunks])
            .fold(true, |all, (&g, &r)| all & test.keeps(g, r))
    }

    /// The centres of the rows `at .. at + valid` of the block (`valid ≤ N`) when every one
    /// of them keeps its centre on the bounds alone (see [`BlockBounds::keeps`]).
    #[inline(always)]
    pub(super) fn kept<const N: usize>(&self, at: usize, valid: usize) -> Option<[u64; N]> {
        self.keeps(at, valid).then(|| {
            let mut nearest = [0u64; N];
            for (n, &a) in nearest.iter_mut().zip(&self.assign[at..at + valid]) {
                *n = u64::from(a);
            }
            nearest
        })
    }

    /// Brings the bounds of the chunk of rows `at .. at + valid` of the block up to date from
    /// its search: the centre found, the search's second smallest value minus its smallest (or
    /// less: see [`gaps`]) and the exact squared distance; or, from the `f32` search of a
    /// step ([`Nearest::search_bounds`]), an upper bound on the squared distance and a gap
    /// no wider than the second nearest's squared distance minus that bound (the bounds come
    /// out looser, never wrong: see [`BoundsTest::searched`]).
    #[inline(always)]
    pub(super) fn record(
        &mut self,
        at: usize,
        valid: usize,
        nearest: &[u64; LANES],
        gaps: &[f64; LANES],
        dist: &[f64; LANES],
    ) {
        self.searched += valid;
        let test = self.test;
        let mut gap = [0.0f64; LANES];
        let mut reach = [0.0f64; LANES];
        for l in 0..LANES {
            let (g, r) = test.searched(dist[l], gaps[l]);
            // Rows past `valid` are padding: they leave the chunk's bounds alone.
            (gap[l], reach[l]) = if l < valid {
                (g, r)
            } else {
                (f64::INFINITY, f64::NEG_INFINITY)
            };
        }
        // (No NaN is left to order: a plain comparison, which vectorizes, where `f64::min`
        // would not.)
        let (gap, reach) = bounds::store_chunk(
            gap.iter()
                .fold(f64::INFINITY, |a, &b| if b < a { b } else { a }),
            reach
                .iter()
                .fold(f64::NEG_INFINITY, |a, &b| if b > a { b } else { a }),
        );
        for (a, &n) in self.assign[at..at + valid].iter_mut().zip(nearest) {
            // `n < k ≤ MAX_BOUNDED_K`, so it fits (the search never names a centre past `k`).
            *a = u16::try_from(n).unwrap_or(u16::MAX);
        }
        self.gap[at / LANES] = gap;
        self.reach[at / LANES] = reach;
    }
}

impl<T: Element, F> Vectorize for NearestLoop<'_, '_, T, F>
where
    F: FnMut(&Chunk, usize, usize, &[u64; LANES], &[f64; LANES]),
{
    type Output = ();

    #[inline(always)]
    fn run<M: MulAdd>(self, _: Option<Avx2Fma>) {
        let Self {
            m,
            rows,
            near,
            mut sums,
            mut bounds,
            needs_chunk,
            mut visit,
        } = self;
        let dim = near.centers.dim;
        let cols: Vec<&[T]> = (0..dim).map(|j| &m.col(j)[rows.clone()]).collect();
        // Columns past `dim` (for the AVX2 loop) stay zero.
        let mut chunk = vec![[0.0f64; LANES]; near.columns()];
        // Chunks are read in place (no copy) when the visitor needs no chunk, the columns are
        // `f64`, the AVX2 loop runs, and the columns do not crowd the same cache sets, through
        // an `InPlace` view (their lengths checked once, not per column and chunk).
        let in_place = if needs_chunk {
            None
        } else {
            near.in_place(m.rows(), &cols)
        };
        let mut at = 0;
        // The first row not yet asked for (a run that fails its bounds goes chunk by chunk
        // over rows the run's requests already cover).
        let mut asked = 0;
        while at < rows.len() {
            // A run of RUN rows that all keep their centre, read in place, takes one call.
            if let (Some(b), Some(Placed { avx2, columns })) = (&bounds, &in_place) {
                // (Bounds from no earlier pass settle no row: every chunk is searched.)
                if b.usable && at % RUN == 0 && at + RUN <= rows.len() {
                    for sub in (at..at + RUN).step_by(LANES) {
                        prefetch_rows(&cols, sub + PREFETCH_ROWS);
                        b.prefetch(sub + PREFETCH_ROWS);
                    }
                    asked = at + RUN + PREFETCH_ROWS;
                    let placed = b.kept::<RUN>(at, RUN).and_then(|nearest| {
                        let run = columns.at::<RUN>(at)?;
                        let sums = sums.as_deref_mut();
                        let dist = Nearest::settle_avx2(avx2, &run, RUN, sums, &nearest);
                        Some((nearest, dist))
                    });
                    if let Some((nearest, dist)) = placed {
                        for (i, (n, d)) in nearest
                            .chunks_exact(LANES)
                            .zip(dist.chunks_exact(LANES))
                            .enumerate()
                        {
                            if let (Ok(n), Ok(d)) = (n.try_into(), d.try_into()) {
                                // Read in place: the visitor of a pass with bounds gets no
                                // chunk.
                                visit(&[], LANES, rows.start + at + i * LANES, n, d);
                            }
                        }
                        at += RUN;
                        continue;
                    }
                }
            }
            let valid = (rows.len() - at).min(LANES);
            // Sixteen or so columns read LANES rows at a time are more streams than the
            // hardware prefetchers follow well: ask for the rows PREFETCH_ROWS ahead.
            if at + PREFETCH_ROWS >= asked {
                prefetch_rows(&cols, at + PREFETCH_ROWS);
                if let Some(b) = &bounds {
                    b.prefetch(at + PREFETCH_ROWS);
                }
            }
            let kept = bounds.as_ref().and_then(|b| b.kept::<LANES>(at, valid));
            // The chunk's columns in place, if it may be read so.
            let placed = in_place
                .as_ref()
                .and_then(|p| Some((p.avx2, p.columns.at::<LANES>(at)?)));
            let copied = placed.is_none();
            if copied {
                copy_chunk(&mut chunk, &cols, at, valid);
            }
            let sums = sums.as_deref_mut();
            let (nearest, dist) = match (kept, placed) {
                (Some(nearest), Some((avx2, cols))) => {
                    let dist = Nearest::settle_avx2(avx2, &cols, valid, sums, &nearest);
                    (nearest, dist)
                }
                (Some(nearest), None) => {
                    let dist = near.settle(&chunk, valid, sums, &nearest, None);
                    (nearest, dist)
                }
                (None, placed) => {
                    let (nearest, best, second, dist) = match placed {
                        Some((avx2, cols)) => {
                            let (nearest, best, second) = Nearest::search_avx2(avx2, &cols);
                            let dist = Nearest::settle_avx2(avx2, &cols, valid, sums, &nearest);
                            (nearest, best, second, dist)
                        }
                        None => {
                            let (nearest, best, second) = near.search(&chunk);
                            let dist = near.settle(&chunk, valid, sums, &nearest, Some(&best));
                            (nearest, best, second, dist)
                        }
                    };
                    if let Some(b) = bounds.as_mut() {
                        b.record(at, valid, &nearest, &gaps(&best, &second), &dist);
                    }
                    (nearest, dist)
                }
            };
            let chunk: &Chunk = if copied { &chunk[..dim] } else { &[] };
            visit(chunk, valid, rows.start + at, &nearest, &dist);
            at += LANES;
        }
    }
}

/// Per lane, the search's second smallest value minus its smallest: what [`BlockBounds::record`]
/// takes (a smaller gap, as the `f32` search gives, only makes the bounds looser).
#[inline(always)]
pub(super) fn gaps(best: &[f64; LANES], second: &[f64; LANES]) -> [f64; LANES] {
    std::array::from_fn(|l| second[l] - best[l])
}

/// The AVX2 token with the centres laid out for it.
pub(super) type Avx2Centres = (Avx2Fma, CentreTable);

/// Rows of a run that a pass with bounds settles in one call when all keep their centre.
pub(super) const RUN: usize = 4 * LANES;

/// Asks for row `row` of every column (and the line after it, for `f64`) to be loaded. The
/// columns are all as long as the first, so one check covers every request.
#[inline(always)]
pub(super) fn prefetch_rows<T: Element>(cols: &[&[T]], row: usize) {
    if cols.first().is_some_and(|c| row < c.len()) {
        for col in cols {
            // LANES values span one (f32) or two (f64) 64-byte lines.
            prefetch_at(col, row);
            if T::BYTES * LANES > 64 {
                prefetch_at(col, row + 64 / T::BYTES);
            }
        }
    }
}

/// Copies rows `at .. at + valid` of `cols` into `chunk` as `f64`, zero padded to [`LANES`].
#[inline(always)]
pub(super) fn copy_chunk<T: Element>(chunk: &mut Chunk, cols: &[&[T]], at: usize, valid: usize) {
    for (buf, col) in chunk.iter_mut().zip(cols) {
        match <&[T; LANES]>::try_from(&col[at..at + valid]) {
            Ok(full) => *buf = full.map(T::to_f64),
            Err(_) => {
                let (head, pad) = buf.split_at_mut(valid);
                for (o, v) in head.iter_mut().zip(&col[at..at + valid]) {
                    *o = v.to_f64();
                }
                pad.fill(0.0);
            }
        }
    }
}

/// Whether `dim` columns of `rows` `f64`s, one after another, can be read a chunk at a time in
/// place: the two 64-byte lines a chunk takes of each column must not pile up in the same
/// sets of a 32 KiB, 8-way L1 cache (64 sets), as they do when `rows` is a multiple of 512.
pub(super) fn spread_in_cache(rows: usize, dim: usize) -> bool {
    const SETS: usize = 64;
    let mut load = [0u8; SETS];
    let stride = (rows % (SETS * 8)) * 8 / 64; // in lines, modulo the sets
    for j in 0..dim {
        let set = (j * stride) % SETS;
        for s in [set, (set + 1) % SETS] {
            load[s] = load[s].saturating_add(1);
        }
    }
    load.iter().all(|&n| n <= 4)
}

/// Exact nearest centre of each lane of a chunk (the portable loop), register-blocked: the
/// LANES accumulators stay in registers across the columns, and each column is loaded once
/// per centre. Returns the nearest centre, its squared distance and the second smallest
/// squared distance (`+∞` with one centre).
#[inline(always)]
pub(super) fn nearest_in_chunk(
    chunk: &Chunk,
    centers: &CenterSet,
) -> ([u64; LANES], [f64; LANES], [f64; LANES]) {
    let mut best = [f64::INFINITY; LANES];
    let mut second = [f64::INFINITY; LANES];
    let mut nearest = [0u64; LANES];
    for (c, center) in centers.values.chunks_exact(centers.dim).enumerate() {
        let mut acc = [0.0f64; LANES];
        for (xs, &cj) in chunk.iter().zip(center) {
            for (a, &x) in acc.iter_mut().zip(xs.iter()) {
                let t = x - cj;
                *a += t * t;
            }
        }
        let c = c as u64;
        for (((b, s), i), &a) in best
            .iter_mut()
            .zip(second.iter_mut())
            .zip(nearest.iter_mut())
            .zip(&acc)
        {
            let closer = a < *b;
            *s = if closer { *b } else { s.min(a) };
            *b = if closer { a } else { *b };
            *i = if closer { c } else { *i };
        }
    }
    (nearest, best, second)
}

/// The squared distance of each lane of a chunk to the centre `nearest` names, summed as
/// [`nearest_in_chunk`] sums it (so bit for bit the same value).
#[inline(always)]
pub(super) fn distances_in_chunk(
    chunk: &Chunk,
    centers: &CenterSet,
    nearest: &[u64; LANES],
) -> [f64; LANES] {
    let mut acc = [0.0f64; LANES];
    let dim = centers.dim;
    for (j, xs) in chunk.iter().enumerate().take(dim) {
        for ((a, &x), &n) in acc.iter_mut().zip(xs.iter()).zip(nearest) {
            let cj = centers
                .values
                .get(n as usize * dim + j)
                .copied()
                .unwrap_or(0.0);
            let t = x - cj;
            *a += t * t;
        }
    }
    acc
}
