//! The per-partition kernels of k-means and the fused nearest-centre loop they share.
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

use std::cmp::Ordering;
use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::bounds::{self, BoundsHint, BoundsTest, RowBounds, MAX_BOUNDED_K};
use super::steady::{self, LloydRound};
use crate::data::{block_ranges, CachedPartition, DenseMatrix, Element, BLOCK_ROWS};
use crate::error::{MlError, Result};
use crate::random::{hash_step, mix64, point_hash, stream, unit, value_bits, HASH_START};
use crate::simd::kmeans::{CentreTable, InPlace, Lanes, LloydAcc, OnChunk, Rounded};
use crate::simd::{
    code_path, prefetch, prefetch_at, Avx2Fma, CodePath, MulAdd, Quad, Unfused, Vectorize,
};
use crate::with_features;

/// Rows handled together by the fused distance loop: enough independent accumulators to keep
/// the floating-point units busy, few enough to stay in registers.
pub(crate) const LANES: usize = 16;

/// How far ahead of the chunk being compared [`for_each_nearest`] asks for rows: two chunks
/// (several hundred nanoseconds of work) cover the memory latency; without these requests a
/// streaming pass took twice as long.
pub(super) const PREFETCH_ROWS: usize = 2 * LANES;

/// `k` centres of dimension `dim`, row-major: centre `c` is `values[c * dim .. (c + 1) * dim]`.
/// This is how centres travel inside kernels (compact JSON).
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
    fn check_partition(&self, partition: &CachedPartition) -> Result<()> {
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

/// A k-means computation to run on every cached partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KMeansKernel {
    /// One Lloyd step: per centre the sum and count of the rows nearest to it, plus the sum of
    /// squared distances (SSE). Answers [`KMeansPartial::Assign`].
    Assign(CenterSet),
    /// [`KMeansKernel::Assign`] as one pass of a fit, with how the centres moved since the
    /// fit's first Lloyd pass: a partition keeps distance bounds between passes and skips the
    /// nearest-centre search for chunks of rows whose centres cannot have changed (see
    /// [`BoundsSlot`](super::BoundsSlot)).
    ///
    /// Without `history` the pass reads every row and answers exactly what `Assign` answers,
    /// bit for bit. With it, the pass is a steady-state step: the partition updates per-centre statistics for the rows that changed centre since the
    /// previous pass, reads only the rows its bounds cannot settle, and answers from those
    /// statistics (within rounding of `Assign`, and the same bits however the partition got
    /// there: a partition without them replays `history`).
    Lloyd {
        /// The centres of this pass.
        centers: CenterSet,
        /// How far they moved since the fit's first Lloyd pass.
        hint: BoundsHint,
        /// The fit's passes since the last pass that read every row, that one first, up to
        /// but not including this pass (empty: this pass reads every row).
        #[serde(default)]
        history: Vec<LloydRound>,
    },
    /// k-means|| round, first half: the SSE of the rows against the candidate set.
    /// Answers [`KMeansPartial::Cost`].
    Cost(CenterSet),
    /// k-means|| round, second half: the rows sampled with probability
    /// `min(1, oversampling · d²(x) / cost)`. Answers [`KMeansPartial::Points`].
    Sample {
        /// The candidate set so far.
        candidates: CenterSet,
        /// The SSE against the candidates over the whole dataset (from [`KMeansKernel::Cost`]).
        cost: f64,
        /// Expected number of points sampled per round (`l`, Spark uses `2k`).
        oversampling: f64,
        /// The training seed.
        seed: u64,
        /// The k-means|| round, so that every round draws afresh.
        round: u32,
    },
    /// k-means|| end: how many rows are nearest each candidate. Answers
    /// [`KMeansPartial::Counts`].
    Weights(CenterSet),
    /// The `count` distinct points with the smallest seeded keys (uniform random distinct
    /// points), also checking that every value is finite. Answers [`KMeansPartial::Points`]
    /// truncated to `count`.
    Pick {
        /// How many distinct points to keep.
        count: usize,
        /// The training seed.
        seed: u64,
    },
}

/// The per-centre sums of an [`KMeansKernel::Assign`] pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignPartial {
    /// Number of centres.
    pub k: usize,
    /// Coordinates per centre.
    pub dim: usize,
    /// Sum of the rows nearest each centre, `k × dim` row-major.
    pub sums: Vec<f64>,
    /// Rows nearest each centre.
    pub counts: Vec<u64>,
    /// Sum of squared distances of the rows to their nearest centre.
    pub cost: f64,
}

/// Distinct points, each with a 64-bit key, sorted by (key, coordinates) without duplicates.
///
/// The key is a hash of the point's coordinates (salted by the seed for random picks), so the
/// order, and which points a seeded pass selects, does not depend on how the rows are split
/// into partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointSet {
    /// Coordinates per point.
    pub dim: usize,
    /// The key of each point.
    pub keys: Vec<u64>,
    /// The points, row-major.
    pub values: Vec<f64>,
    /// Keep at most this many points (the smallest keys), if set.
    pub limit: Option<usize>,
}

/// The result of a [`KMeansKernel`] on one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KMeansPartial {
    /// See [`KMeansKernel::Assign`].
    Assign(AssignPartial),
    /// See [`KMeansKernel::Cost`].
    Cost(f64),
    /// See [`KMeansKernel::Sample`] and [`KMeansKernel::Pick`].
    Points(PointSet),
    /// See [`KMeansKernel::Weights`].
    Counts(Vec<u64>),
}

impl KMeansKernel {
    /// Runs the kernel on one partition.
    ///
    /// # Errors
    /// [`MlError::InvalidData`] when the partition's width differs from the centres' or (for
    /// [`KMeansKernel::Pick`]) a value is not finite; [`MlError::InvalidParameter`] for
    /// inconsistent centres.
    pub fn run(&self, partition: &CachedPartition) -> Result<KMeansPartial> {
        match self {
            KMeansKernel::Assign(centers) => {
                centers.check_partition(partition)?;
                with_features!(partition.features(), m => assign(m, centers, true, code_path()))
                    .map(KMeansPartial::Assign)
            }
            KMeansKernel::Lloyd {
                centers,
                hint,
                history,
            } => {
                centers.check_partition(partition)?;
                for round in history {
                    round.centers.check_partition(partition)?;
                }
                let slot = partition.bounds();
                with_features!(partition.features(), m => steady::lloyd(m, centers, hint, history, slot, code_path()))
                    .map(KMeansPartial::Assign)
            }
            KMeansKernel::Cost(centers) => {
                centers.check_partition(partition)?;
                with_features!(partition.features(), m => assign(m, centers, false, code_path()))
                    .map(|p| KMeansPartial::Cost(p.cost))
            }
            KMeansKernel::Weights(centers) => {
                centers.check_partition(partition)?;
                with_features!(partition.features(), m => assign(m, centers, false, code_path()))
                    .map(|p| KMeansPartial::Counts(p.counts))
            }
            KMeansKernel::Sample {
                candidates,
                cost,
                oversampling,
                seed,
                round,
            } => {
                candidates.check_partition(partition)?;
                if !(cost.is_finite() && *cost > 0.0) {
                    return Err(MlError::Internal(format!(
                        "k-means|| sampling needs a positive cost, got {cost}"
                    )));
                }
                let salt = stream(*seed, SALT_SAMPLE, u64::from(*round));
                let ratio = oversampling / cost;
                with_features!(partition.features(), m => sample(m, candidates, ratio, salt, code_path()))
                    .map(KMeansPartial::Points)
            }
            KMeansKernel::Pick { count, seed } => {
                let salt = stream(*seed, SALT_PICK, 0);
                with_features!(partition.features(), m => pick(m, *count, salt, partition.index()))
                    .map(KMeansPartial::Points)
            }
        }
    }
}

impl KMeansPartial {
    /// Combines the partials of one kernel on two sets of rows. Associative; sums are exact
    /// for counts and point sets and rounded in merge order for floating-point sums.
    ///
    /// # Errors
    /// [`MlError::Internal`] when the partials come from different kernels or shapes.
    pub fn merge(self, other: Self) -> Result<Self> {
        match (self, other) {
            (KMeansPartial::Assign(a), KMeansPartial::Assign(b)) => {
                a.merge(b).map(KMeansPartial::Assign)
            }
            (KMeansPartial::Cost(a), KMeansPartial::Cost(b)) => Ok(KMeansPartial::Cost(a + b)),
            (KMeansPartial::Counts(a), KMeansPartial::Counts(b)) => {
                if a.len() != b.len() {
                    return Err(shape_mismatch("weights"));
                }
                Ok(KMeansPartial::Counts(
                    a.iter().zip(&b).map(|(x, y)| x + y).collect(),
                ))
            }
            (KMeansPartial::Points(a), KMeansPartial::Points(b)) => {
                a.merge(&b).map(KMeansPartial::Points)
            }
            _ => Err(MlError::Internal(
                "k-means partials of different kernels cannot be merged".into(),
            )),
        }
    }
}

fn shape_mismatch(what: &str) -> MlError {
    MlError::Internal(format!("k-means {what} partials of different shapes"))
}

impl AssignPartial {
    /// The Lloyd update: moves each of the centres `centers` (`k × dim` row-major, as in
    /// [`CenterSet::values`]) to the mean of its rows, a centre without rows staying where it
    /// is, and returns how far each moved, squared.
    pub fn move_centres(&self, centers: &mut [f64]) -> Vec<f64> {
        let dim = self.dim.max(1);
        centers
            .chunks_exact_mut(dim)
            .zip(self.sums.chunks_exact(dim))
            .zip(&self.counts)
            .map(|((center, sum), &count)| {
                if count == 0 {
                    return 0.0;
                }
                let n = count as f64;
                let mut shift2 = 0.0;
                for (c, s) in center.iter_mut().zip(sum) {
                    let new = s / n;
                    let t = new - *c;
                    shift2 += t * t;
                    *c = new;
                }
                shift2
            })
            .collect()
    }

    fn zeros(k: usize, dim: usize, with_sums: bool) -> Self {
        Self {
            k,
            dim,
            sums: vec![0.0; if with_sums { k * dim } else { 0 }],
            counts: vec![0; k],
            cost: 0.0,
        }
    }

    /// Adds the sums, counts and cost of `other`.
    ///
    /// # Errors
    /// [`MlError::Internal`] when the shapes differ.
    pub fn merge(mut self, other: Self) -> Result<Self> {
        if self.k != other.k
            || self.dim != other.dim
            || self.sums.len() != other.sums.len()
            || self.counts.len() != other.counts.len()
        {
            return Err(shape_mismatch("assign"));
        }
        self.sums
            .iter_mut()
            .zip(&other.sums)
            .for_each(|(a, b)| *a += b);
        self.counts
            .iter_mut()
            .zip(&other.counts)
            .for_each(|(a, b)| *a += b);
        self.cost += other.cost;
        Ok(self)
    }
}

impl PointSet {
    fn empty(dim: usize, limit: Option<usize>) -> Self {
        Self {
            dim,
            keys: Vec::new(),
            values: Vec::new(),
            limit,
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Point `i`.
    pub fn point(&self, i: usize) -> &[f64] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// The points as rows, in order.
    pub fn to_rows(&self) -> Vec<Vec<f64>> {
        (0..self.len()).map(|i| self.point(i).to_vec()).collect()
    }

    /// The sorted union without duplicates, cut to the limit.
    ///
    /// # Errors
    /// [`MlError::Internal`] when dimensions or limits differ.
    pub fn merge(&self, other: &Self) -> Result<Self> {
        if self.limit != other.limit
            || (self.dim != other.dim && !self.is_empty() && !other.is_empty())
        {
            return Err(shape_mismatch("point"));
        }
        let dim = if self.is_empty() { other.dim } else { self.dim };
        let mut out = Self::empty(dim, self.limit);
        let (mut i, mut j) = (0, 0);
        let cap = self.limit.unwrap_or(usize::MAX);
        while out.len() < cap && (i < self.len() || j < other.len()) {
            let order = if i == self.len() {
                Ordering::Greater
            } else if j == other.len() {
                Ordering::Less
            } else {
                compare_points(self.keys[i], self.point(i), other.keys[j], other.point(j))
            };
            match order {
                Ordering::Less => {
                    out.push(self.keys[i], self.point(i));
                    i += 1;
                }
                Ordering::Greater => {
                    out.push(other.keys[j], other.point(j));
                    j += 1;
                }
                Ordering::Equal => {
                    out.push(self.keys[i], self.point(i));
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(out)
    }

    fn push(&mut self, key: u64, point: &[f64]) {
        self.keys.push(key);
        self.values.extend_from_slice(point);
    }

    /// Inserts a point in order unless present; keeps the limit. Used for the rare rows whose
    /// key beats the current worst, so linear insertion is fine.
    fn insert(&mut self, key: u64, point: &[f64]) {
        let pos = (0..self.len()).find_map(|i| {
            match compare_points(key, point, self.keys[i], self.point(i)) {
                Ordering::Less => Some(Some(i)),
                Ordering::Equal => Some(None),
                Ordering::Greater => None,
            }
        });
        let at = match pos {
            Some(Some(i)) => i,
            Some(None) => return,
            None => self.len(),
        };
        if self.limit.is_some_and(|l| at >= l) {
            return;
        }
        self.keys.insert(at, key);
        let offset = at * self.dim;
        self.values.splice(offset..offset, point.iter().copied());
        if let Some(l) = self.limit {
            self.keys.truncate(l);
            self.values.truncate(l * self.dim);
        }
    }

    /// The largest key when the set is full (rows with a larger key cannot enter).
    fn threshold(&self) -> Option<u64> {
        match self.limit {
            Some(l) if self.len() >= l => self.keys.last().copied(),
            _ => None,
        }
    }
}

/// Total order on points: by key, then coordinates by their bits (`-0.0` counts as `0.0`).
fn compare_points(ka: u64, a: &[f64], kb: u64, b: &[f64]) -> Ordering {
    ka.cmp(&kb).then_with(|| {
        a.iter()
            .map(|v| value_bits(*v))
            .cmp(b.iter().map(|v| value_bits(*v)))
    })
}

// Purposes of k-means' seeded draws (see [`crate::random::stream`]).
pub(crate) const SALT_PICK: u64 = 0x5049_434B; // "PICK"
pub(crate) const SALT_SAMPLE: u64 = 0x5341_4D50; // "SAMP"
pub(crate) const SALT_LOCAL: u64 = 0x4C4F_4341; // "LOCA"
pub(crate) const SALT_SILHOUETTE: u64 = 0x5349_4C48; // "SILH"

// ---------------------------------------------------------------------------------------------
// The fused nearest-centre loop.

/// One chunk of [`LANES`] rows as `f64`: `chunk[j][l]` is column `j` of the chunk's row `l`.
pub(crate) type Chunk = [[f64; LANES]];

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
    fn sums(&self) -> CentreSums {
        CentreSums(vec![
            Quad::default();
            SUM_COPIES * self.centers.k * self.quads()
        ])
    }

    /// Copies the sums accumulated in `sums` to `out` (`k × dim`, row-major), folding the
    /// copies as `(s₀ + s₁) + (s₂ + s₃)`.
    fn sums_to(&self, sums: &CentreSums, out: &mut [f64]) {
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
const SUM_COPIES: usize = 4;

/// The per-centre sums of a block: [`SUM_COPIES`] copies of `k` centres of `dim.div_ceil(4)`
/// quads, row `l` of the block added to copy `l mod SUM_COPIES` (see [`Nearest::sums_to`]).
pub(crate) struct CentreSums(Vec<Quad>);

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
    NearestLoop {
        m,
        rows,
        near,
        sums,
        bounds: None,
        needs_chunk: true,
        visit,
    }
    .dispatch();
}

/// [`for_each_nearest`]'s loop, compiled once per code path.
struct NearestLoop<'a, 'c, T, F> {
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
    fn dispatch(self) {
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
type Avx2Centres = (Avx2Fma, CentreTable);

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
fn spread_in_cache(rows: usize, dim: usize) -> bool {
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
fn nearest_in_chunk(
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
fn distances_in_chunk(chunk: &Chunk, centers: &CenterSet, nearest: &[u64; LANES]) -> [f64; LANES] {
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

/// Lane `l`'s coordinates in a chunk.
#[inline(always)]
pub(crate) fn lane(chunk: &Chunk, l: usize) -> impl Iterator<Item = f64> + '_ {
    chunk.iter().map(move |col| col[l])
}

/// Sums, counts and SSE over a partition (sums only if `with_sums`): blocks in parallel,
/// folded in block order.
fn assign<T: Element>(
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

/// [`assign`] with sums, keeping distance bounds in `slot` between the passes of a fit (see
/// [`super::bounds`]): the same partial, bit for bit, usually without most of the search.
#[cfg(test)]
fn assign_bounded<T: Element>(
    m: &DenseMatrix<T>,
    centers: &CenterSet,
    hint: &BoundsHint,
    slot: &super::BoundsSlot,
    path: CodePath,
) -> Result<AssignPartial> {
    check_hint(centers, hint)?;
    slot.with(|bounds| match bounds {
        Some(bounds) => base_pass(m, centers, hint, bounds, path).map(|pass| pass.partial),
        // Another pass holds the bounds: search every row.
        None => assign(m, centers, true, path),
    })
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
enum Whole {
    /// In one call ([`Placed::lloyd`]), which may find the nearest centres in `f32` first.
    Fused,
    /// Chunk by chunk, as every other pass (for tests to compare with).
    #[cfg(test)]
    Chunked,
}

/// What a pass that keeps bounds does with each chunk it searched in one call
/// ([`Placed::lloyd`]): records the chunk's bounds and adds its rows' distances to their
/// centres' spread, as the chunk-by-chunk loop's visitor does.
struct KeepBounds<'b, 'a> {
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
fn assign_block<T: Element>(
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
    NearestLoop {
        m,
        rows,
        near,
        sums: sums.as_mut(),
        bounds: rest,
        needs_chunk: false,
        visit: |_: &Chunk, valid: usize, _: usize, nearest: &[u64; LANES], dist: &[f64; LANES]| {
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
    }
    .dispatch();
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

/// k-means|| sampling: the rows with `unit(hash) < ratio · d²`, keyed by their hash.
fn sample<T: Element>(
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
fn pick<T: Element>(
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

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::data::{Features, BLOCK_ROWS};

    fn random_rows(n: usize, d: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| (0..d).map(|_| rng.random_range(-5.0..5.0)).collect())
            .collect()
    }

    pub(in crate::cluster::kmeans) fn partition(index: u32, rows: &[Vec<f64>]) -> CachedPartition {
        let d = rows[0].len();
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        let m = DenseMatrix::from_row_major(rows.len(), d, &flat).unwrap();
        CachedPartition::new(index, Features::F64(m), None).unwrap()
    }

    pub(in crate::cluster::kmeans) fn partition_f32(
        index: u32,
        rows: &[Vec<f64>],
    ) -> CachedPartition {
        let d = rows[0].len();
        let flat: Vec<f32> = rows.iter().flatten().map(|v| *v as f32).collect();
        let m = DenseMatrix::from_row_major(rows.len(), d, &flat).unwrap();
        CachedPartition::new(index, Features::F32(m), None).unwrap()
    }

    /// The row-at-a-time reference the fused kernel must agree with.
    fn naive(rows: &[Vec<f64>], centers: &[Vec<f64>]) -> (Vec<f64>, Vec<u64>, f64) {
        let (k, d) = (centers.len(), centers[0].len());
        let mut sums = vec![0.0; k * d];
        let mut counts = vec![0u64; k];
        let mut cost = 0.0;
        for x in rows {
            let mut best = (f64::INFINITY, 0);
            for (c, center) in centers.iter().enumerate() {
                let mut dist = 0.0;
                for (a, b) in x.iter().zip(center) {
                    let t = a - b;
                    dist += t * t;
                }
                if dist < best.0 {
                    best = (dist, c);
                }
            }
            counts[best.1] += 1;
            cost += best.0;
            for (j, v) in x.iter().enumerate() {
                sums[best.1 * d + j] += v;
            }
        }
        (sums, counts, cost)
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
    }

    fn assign_of(p: &CachedPartition, centers: &[Vec<f64>]) -> AssignPartial {
        let kernel = KMeansKernel::Assign(CenterSet::from_rows(centers).unwrap());
        match kernel.run(p).unwrap() {
            KMeansPartial::Assign(a) => a,
            other => panic!("unexpected partial {other:?}"),
        }
    }

    #[test]
    fn assign_matches_the_row_at_a_time_reference() {
        // Sizes that leave a ragged last block and a ragged last chunk.
        for (n, d, k) in [
            (1, 1, 1),
            (37, 3, 4),
            (BLOCK_ROWS * 2 + 123, 7, 5),
            (5000, 16, 8),
        ] {
            let rows = random_rows(n, d, n as u64);
            let centers = random_rows(k, d, 1000 + n as u64);
            let got = assign_of(&partition(0, &rows), &centers);
            let (sums, counts, cost) = naive(&rows, &centers);
            assert_eq!(got.counts, counts, "n={n}");
            for (a, b) in got.sums.iter().zip(&sums) {
                assert!(close(*a, *b, 1e-12), "sum {a} vs {b}");
            }
            assert!(close(got.cost, cost, 1e-12), "cost {} vs {cost}", got.cost);
        }
    }

    #[test]
    fn assign_on_f32_storage_matches_the_reference_on_the_rounded_values() {
        let rows = random_rows(3000, 5, 7);
        let rounded: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| r.iter().map(|v| f64::from(*v as f32)).collect())
            .collect();
        let centers = random_rows(6, 5, 8);
        let got = assign_of(&partition_f32(0, &rows), &centers);
        let (sums, counts, cost) = naive(&rounded, &centers);
        assert_eq!(got.counts, counts);
        for (a, b) in got.sums.iter().zip(&sums) {
            assert!(close(*a, *b, 1e-12));
        }
        assert!(close(got.cost, cost, 1e-12));
    }

    /// Separated blobs (spread 1 around centres at least ~14 apart), and centres near them.
    fn blobs(n: usize, d: usize, k: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let truth: Vec<Vec<f64>> = (0..k)
            .map(|c| {
                (0..d)
                    .map(|j| {
                        if j == c % d {
                            10.0 * (1 + c / d) as f64
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let mut rng = StdRng::seed_from_u64(seed);
        let rows = (0..n)
            .map(|i| {
                let c = &truth[(i * 7 + i / 3) % k];
                c.iter()
                    .map(|v| v + 100.0 + rng.random_range(-1.0..1.0))
                    .collect()
            })
            .collect();
        let centers = truth
            .iter()
            .map(|c| {
                c.iter()
                    .map(|v| v + 100.0 + rng.random_range(-0.5..0.5))
                    .collect()
            })
            .collect();
        (rows, centers)
    }

    #[test]
    fn avx2_and_portable_paths_agree() {
        if Avx2Fma::detect().is_none() {
            return;
        }
        // Widths and centre counts that are and are not multiples of four, ragged blocks and
        // chunks, f64 and f32 storage.
        for (n, d, k) in [
            (37, 3, 5),
            (BLOCK_ROWS + 77, 16, 8),
            (2000, 5, 3),
            (999, 9, 13),
        ] {
            let (rows, centers) = blobs(n, d, k, (n * d * k) as u64);
            let set = CenterSet::from_rows(&centers).unwrap();
            for p in [partition(0, &rows), partition_f32(0, &rows)] {
                let on =
                    |path| with_features!(p.features(), m => assign(m, &set, true, path)).unwrap();
                let (portable, avx2) = (on(CodePath::Portable), on(CodePath::Avx2Fma));
                assert_eq!(portable.counts, avx2.counts, "n={n} d={d} k={k}");
                // Same rows added in the same order: the sums are bit-identical.
                assert_eq!(portable.sums, avx2.sums);
                assert!(
                    close(portable.cost, avx2.cost, 1e-13),
                    "{} vs {}",
                    portable.cost,
                    avx2.cost
                );
                let sampled = |path| {
                    with_features!(p.features(), m => sample(m, &set, 1e-3, 7, path)).unwrap()
                };
                let (a, b) = (sampled(CodePath::Portable), sampled(CodePath::Avx2Fma));
                assert!(
                    a.len().abs_diff(b.len()) <= 1,
                    "{} vs {} sampled",
                    a.len(),
                    b.len()
                );
            }
        }
    }

    #[test]
    fn avx2_path_keeps_the_exact_distance_far_from_the_origin() {
        // ‖c‖² − 2x·c + ‖x‖² would lose every digit of these distances.
        if Avx2Fma::detect().is_none() {
            return;
        }
        let rows: Vec<Vec<f64>> = (0..64)
            .map(|i| vec![1e8 + f64::from(i) * 1e-3, -1e8])
            .collect();
        let centers = vec![vec![1e8, -1e8], vec![-1e8, 1e8]];
        let set = CenterSet::from_rows(&centers).unwrap();
        let p = partition(0, &rows);
        let got =
            with_features!(p.features(), m => assign(m, &set, true, CodePath::Avx2Fma)).unwrap();
        let (_, counts, cost) = naive(&rows, &centers);
        assert_eq!(got.counts, counts);
        assert!(close(got.cost, cost, 1e-12), "{} vs {cost}", got.cost);
    }

    #[test]
    fn ties_go_to_the_lowest_centre() {
        let rows = vec![vec![0.0, 0.0]];
        let got = assign_of(&partition(0, &rows), &[vec![1.0, 0.0], vec![-1.0, 0.0]]);
        assert_eq!(got.counts, vec![1, 0]);
    }

    #[test]
    fn partial_merge_is_associative_and_matches_the_whole() {
        let rows = random_rows(3000, 4, 11);
        let centers = random_rows(3, 4, 12);
        let whole = assign_of(&partition(0, &rows), &centers);
        let parts: Vec<AssignPartial> = rows
            .chunks(1000)
            .enumerate()
            .map(|(i, r)| assign_of(&partition(i as u32, r), &centers))
            .collect();
        let left = parts[0]
            .clone()
            .merge(parts[1].clone())
            .unwrap()
            .merge(parts[2].clone())
            .unwrap();
        let right = parts[0]
            .clone()
            .merge(parts[1].clone().merge(parts[2].clone()).unwrap())
            .unwrap();
        assert_eq!(left.counts, right.counts);
        assert_eq!(left.counts, whole.counts);
        for ((a, b), c) in left.sums.iter().zip(&right.sums).zip(&whole.sums) {
            assert!(close(*a, *b, 1e-12) && close(*a, *c, 1e-12));
        }
        assert!(close(left.cost, right.cost, 1e-12) && close(left.cost, whole.cost, 1e-12));
    }

    #[test]
    fn kernels_are_bit_identical_on_one_and_two_threads() {
        let rows = random_rows(BLOCK_ROWS * 3 + 17, 6, 21);
        let p = partition(3, &rows);
        let centers = CenterSet::from_rows(&random_rows(5, 6, 22)).unwrap();
        let kernels = [
            KMeansKernel::Assign(centers.clone()),
            KMeansKernel::Sample {
                candidates: centers.clone(),
                cost: 1000.0,
                oversampling: 10.0,
                seed: 5,
                round: 1,
            },
            KMeansKernel::Pick { count: 7, seed: 5 },
        ];
        for kernel in kernels {
            let on = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| kernel.run(&p).unwrap())
            };
            let one = on(1);
            let two = on(2);
            // Compare the bytes: bit-identical, not merely close.
            assert_eq!(
                serde_json::to_string(&one).unwrap(),
                serde_json::to_string(&two).unwrap()
            );
        }
    }

    #[test]
    fn pick_returns_the_same_distinct_points_however_rows_are_split() {
        let mut rows = random_rows(2000, 3, 31);
        // Duplicates must count once.
        for i in 0..500 {
            rows[1000 + i] = rows[i].clone();
        }
        let kernel = KMeansKernel::Pick { count: 10, seed: 9 };
        let run = |p: &CachedPartition| match kernel.run(p).unwrap() {
            KMeansPartial::Points(s) => s,
            other => panic!("{other:?}"),
        };
        let whole = run(&partition(0, &rows));
        let split = run(&partition(0, &rows[..700]))
            .merge(&run(&partition(1, &rows[700..1500])))
            .unwrap()
            .merge(&run(&partition(2, &rows[1500..])))
            .unwrap();
        assert_eq!(whole, split);
        assert_eq!(whole.len(), 10);
        let distinct: std::collections::HashSet<Vec<u64>> = whole
            .to_rows()
            .iter()
            .map(|r| r.iter().map(|v| v.to_bits()).collect())
            .collect();
        assert_eq!(distinct.len(), 10);
        // Sorted by key.
        assert!(whole.keys.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn pick_on_fewer_distinct_points_than_asked_returns_them_all() {
        let rows: Vec<Vec<f64>> = (0..50).map(|i| vec![f64::from(i % 3), -0.0]).collect();
        let got = match (KMeansKernel::Pick { count: 8, seed: 1 })
            .run(&partition(0, &rows))
            .unwrap()
        {
            KMeansPartial::Points(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn pick_rejects_non_finite_values_naming_the_row() {
        let mut rows = random_rows(100, 2, 3);
        rows[42][1] = f64::NAN;
        let err = (KMeansKernel::Pick { count: 2, seed: 1 })
            .run(&partition(4, &rows))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("partition 4, row 42: feature 1 is NaN"),
            "{err}"
        );
    }

    #[test]
    fn sample_probability_follows_the_distance() {
        // Half the points sit on the candidate (d² = 0, never sampled), half far away.
        let mut rows = vec![vec![0.0, 0.0]; 1000];
        let far = random_rows(1000, 2, 4);
        rows.extend(far.iter().map(|r| vec![r[0] + 100.0, r[1]]));
        let p = partition(0, &rows);
        let candidates = CenterSet::from_rows(&[vec![0.0, 0.0]]).unwrap();
        let cost = match KMeansKernel::Cost(candidates.clone()).run(&p).unwrap() {
            KMeansPartial::Cost(c) => c,
            other => panic!("{other:?}"),
        };
        let got = match (KMeansKernel::Sample {
            candidates,
            cost,
            oversampling: 50.0,
            seed: 3,
            round: 0,
        })
        .run(&p)
        .unwrap()
        {
            KMeansPartial::Points(s) => s,
            other => panic!("{other:?}"),
        };
        // Expected 50 (all far points have about the same distance); allow 5 sigma.
        assert!((15..=85).contains(&got.len()), "{} sampled", got.len());
        assert!(got.to_rows().iter().all(|r| r[0] > 90.0));
    }

    #[test]
    fn kernel_round_trips_through_bytes_and_rejects_bad_shapes() {
        let kernel = crate::Kernel::KMeans(KMeansKernel::Assign(
            CenterSet::from_rows(&[vec![0.1, 0.2], vec![1.0 / 3.0, 2.0]]).unwrap(),
        ));
        assert_eq!(
            crate::Kernel::from_bytes(&kernel.to_bytes()).unwrap(),
            kernel
        );
        let bad = KMeansKernel::Assign(CenterSet {
            k: 2,
            dim: 2,
            values: vec![1.0; 3],
        });
        let err = bad
            .run(&partition(0, &[vec![0.0, 0.0]]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("3 values for 2 centres of 2 coordinates"),
            "{err}"
        );
        let wide = KMeansKernel::Assign(CenterSet::from_rows(&[vec![0.0; 3]]).unwrap());
        let err = wide
            .run(&partition(1, &[vec![0.0, 0.0]]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("partition 1 has 2 feature columns but the centres have 3"),
            "{err}"
        );
        let a = KMeansPartial::Cost(1.0);
        assert!(a.merge(KMeansPartial::Counts(vec![1])).is_err());
    }

    /// Bit patterns of a partial, for exact comparison.
    fn partial_bits(p: &AssignPartial) -> (Vec<u64>, Vec<u64>, u64) {
        (
            p.sums.iter().map(|v| v.to_bits()).collect(),
            p.counts.clone(),
            p.cost.to_bits(),
        )
    }

    /// Runs `rounds` Lloyd passes from `start` twice, with and without bounds, the centres and
    /// hints updated as the trainer does; asserts every pass's partials are bit-identical and
    /// returns the rows searched per bounded pass.
    fn lloyd_with_and_without_bounds(
        p: &CachedPartition,
        start: &[Vec<f64>],
        rounds: usize,
        path: CodePath,
    ) -> Vec<usize> {
        let mut set = CenterSet::from_rows(start).unwrap();
        let mut hint = BoundsHint::new(7);
        let mut searched = Vec::new();
        for round in 0..rounds {
            let plain = with_features!(p.features(), m => assign(m, &set, true, path)).unwrap();
            let bounded = with_features!(p.features(), m => {
                assign_bounded(m, &set, &hint, p.bounds(), path)
            })
            .unwrap();
            assert_eq!(
                partial_bits(&plain),
                partial_bits(&bounded),
                "pass {round} on {path:?}"
            );
            searched.push(p.bounds().last_pass_searched().unwrap().0);
            let moves: Vec<f64> = plain
                .move_centres(&mut set.values)
                .iter()
                .map(|s| s.sqrt())
                .collect();
            hint.advance(&moves);
        }
        searched
    }

    /// `n` rows around `k` random centres (`±spread` per coordinate), and starting centres
    /// near the true ones (`±0.3` per coordinate), as a good initialisation gives.
    pub(in crate::cluster::kmeans) fn blob_rows(
        n: usize,
        d: usize,
        k: usize,
        spread: f64,
        offset: f64,
        seed: u64,
    ) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let centres: Vec<Vec<f64>> = (0..k)
            .map(|_| {
                (0..d)
                    .map(|_| offset + rng.random_range(-10.0..10.0))
                    .collect()
            })
            .collect();
        let rows = (0..n)
            .map(|_| {
                let c = &centres[rng.random_range(0..k)];
                c.iter()
                    .map(|v| v + rng.random_range(-spread..spread))
                    .collect()
            })
            .collect();
        let start = centres
            .iter()
            .map(|c| c.iter().map(|v| v + rng.random_range(-0.3..0.3)).collect())
            .collect();
        (rows, start)
    }

    pub(in crate::cluster::kmeans) fn paths() -> Vec<CodePath> {
        let mut paths = vec![CodePath::Portable];
        if Avx2Fma::detect().is_some() {
            paths.push(CodePath::Avx2Fma);
        }
        paths
    }

    #[test]
    fn bounded_passes_equal_plain_passes_bit_for_bit_and_skip_most_searches() {
        let n = 2 * BLOCK_ROWS + 37;
        for path in paths() {
            for (k, d) in [(8, 16), (3, 5), (13, 7), (1, 4)] {
                let (rows, start) = blob_rows(n, d, k, 1.5, 0.0, 11 + k as u64);
                let p = partition(0, &rows);
                let searched = lloyd_with_and_without_bounds(&p, &start, 12, path);
                assert_eq!(searched[0], n, "the first pass searches every row");
                let late = searched[6..].iter().sum::<usize>() / 6;
                assert!(
                    late * 10 < n,
                    "k = {k}, d = {d} on {path:?}: late passes searched {searched:?} of {n} rows"
                );
                // f32 storage goes through the same loop.
                let p32 = partition_f32(1, &rows);
                lloyd_with_and_without_bounds(&p32, &start, 6, path);
            }
        }
    }

    #[test]
    fn bounds_stay_exact_on_ties_duplicates_and_far_from_the_origin() {
        for path in paths() {
            // Far from the origin, where the search's expansion loses most digits.
            let (far, start) = blob_rows(3000, 6, 4, 0.01, 1e7, 5);
            let p = partition(0, &far);
            lloyd_with_and_without_bounds(&p, &start, 8, path);
            lloyd_with_and_without_bounds(&p, &far[..4], 8, path);
            // Exact ties: every row is equidistant from two centres, and duplicated.
            let mut tied = Vec::new();
            for i in 0..500 {
                let y = f64::from(i % 50) * 0.25;
                tied.push(vec![0.0, y]);
                tied.push(vec![0.0, y]);
                tied.push(vec![0.0, -y]);
            }
            let p = partition(1, &tied);
            let searched =
                lloyd_with_and_without_bounds(&p, &[vec![-1.0, 0.0], vec![1.0, 0.0]], 4, path);
            assert_eq!(searched[0], tied.len());
            // Same centres again (nothing moves): tied rows must still be searched.
            let set = CenterSet::from_rows(&[vec![-1.0, 0.0], vec![1.0, 0.0]]).unwrap();
            let m = match p.features() {
                Features::F64(m) => m,
                Features::F32(_) => unreachable!(),
            };
            let still = |fit, round| BoundsHint {
                fit,
                round,
                total_shift: 0.0,
            };
            assign_bounded(m, &set, &still(5, 0), p.bounds(), path).unwrap();
            let again = assign_bounded(m, &set, &still(5, 1), p.bounds(), path).unwrap();
            assert_eq!(
                partial_bits(&again),
                partial_bits(&assign(m, &set, true, path).unwrap())
            );
            assert_eq!(
                p.bounds().last_pass_searched(),
                Some((tied.len(), tied.len()))
            );
            // Rows right at the boundary of blobs that overlap.
            let (close, start) = blob_rows(4000, 3, 6, 8.0, 0.0, 9);
            let p = partition(2, &close);
            lloyd_with_and_without_bounds(&p, &start, 15, path);
        }
    }

    #[test]
    fn bounds_from_another_fit_or_round_are_not_used() {
        let (rows, _) = blob_rows(5000, 4, 3, 1.0, 0.0, 3);
        let p = partition(0, &rows);
        let set = CenterSet::from_rows(&rows[..3]).unwrap();
        let hint = |fit, round| BoundsHint {
            fit,
            round,
            total_shift: 0.0,
        };
        let run = |h: &BoundsHint| {
            let m = match p.features() {
                Features::F64(m) => m,
                Features::F32(_) => unreachable!(),
            };
            let out = assign_bounded(m, &set, h, p.bounds(), code_path()).unwrap();
            (out, p.bounds().last_pass_searched().unwrap().0)
        };
        let (first, s0) = run(&hint(1, 0));
        assert_eq!(s0, 5000);
        // The next round of the same fit, same centres: nothing moved, nothing is searched.
        let (again, s1) = run(&hint(1, 1));
        assert_eq!(partial_bits(&first), partial_bits(&again));
        assert_eq!(s1, 0);
        // A repeated or skipped round of the same fit may use them too.
        for h in [hint(1, 1), hint(1, 4)] {
            let (out, s) = run(&h);
            assert_eq!(partial_bits(&first), partial_bits(&out));
            assert_eq!(s, 0, "{h:?}");
        }
        // Another fit, or an earlier round: everything is searched again.
        for h in [hint(2, 2), hint(2, 1)] {
            let (out, s) = run(&h);
            assert_eq!(partial_bits(&first), partial_bits(&out));
            assert_eq!(s, 5000, "{h:?}");
        }
        // A clone starts without bounds; a negative shift is a caller bug.
        assert!(p.clone().bounds().last_pass_searched().is_none());
        let m = match p.features() {
            Features::F64(m) => m,
            Features::F32(_) => unreachable!(),
        };
        let err = assign_bounded(
            m,
            &set,
            &BoundsHint {
                total_shift: -1.0,
                ..hint(3, 0)
            },
            p.bounds(),
            code_path(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("a total centre shift of -1"), "{err}");
    }

    /// A named set of rows and the centres to assign them to.
    type Case = (String, Vec<Vec<f64>>, Vec<Vec<f64>>);

    /// Rows and centres where the `f32` search of the fused pass must give way to the `f64`
    /// one: values past `f32`'s range either way, far from the origin, rows on and near the
    /// midpoints of two centres, duplicated centres; and well separated blobs, where it
    /// should not.
    fn hard_cases(n: usize) -> Vec<Case> {
        let mut cases = Vec::new();
        for (d, k) in [(16, 8), (5, 13), (7, 2), (1, 3), (4, 1)] {
            let (rows, start) = blob_rows(n, d, k, 1.5, 0.0, 40 + d as u64);
            for scale in [1.0, 1e-20, 1e-160, 1e19, 1e150] {
                let times = |v: &[Vec<f64>]| -> Vec<Vec<f64>> {
                    v.iter()
                        .map(|r| r.iter().map(|x| x * scale).collect())
                        .collect()
                };
                cases.push((
                    format!("d {d}, k {k}, x {scale:e}"),
                    times(&rows),
                    times(&start),
                ));
            }
        }
        let (far, start) = blob_rows(n, 6, 4, 0.01, 1e7, 5);
        cases.push(("far from the origin".into(), far, start));
        // Rows on the segment between two centres, at and around its midpoint.
        let centres = vec![
            vec![1.0, -2.0, 3.0, 0.5, 7.0],
            vec![-4.0, 1.0, 2.5, 0.0, 6.0],
        ];
        let mut rng = StdRng::seed_from_u64(3);
        let offsets = [0.0, 1e-12, -1e-12, 1e-9, -1e-9, 1e-6, -1e-6, 1e-3, 0.3];
        let near_midpoint: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                let t = 0.5 + offsets[rng.random_range(0..offsets.len())] * (i % 3) as f64;
                centres[0]
                    .iter()
                    .zip(&centres[1])
                    .map(|(a, b)| a + t * (b - a))
                    .collect()
            })
            .collect();
        cases.push(("near midpoints".into(), near_midpoint, centres.clone()));
        // Rows scattered over the plane halfway between two centres, a little off it.
        let (rows, centres) = blob_rows(n, 16, 2, 3.0, 0.0, 9);
        let axis: Vec<f64> = centres[1]
            .iter()
            .zip(&centres[0])
            .map(|(b, a)| b - a)
            .collect();
        let length2: f64 = axis.iter().map(|v| v * v).sum();
        let mid: Vec<f64> = centres[0]
            .iter()
            .zip(&centres[1])
            .map(|(a, b)| (a + b) / 2.0)
            .collect();
        let off_plane = rows
            .iter()
            .map(|r| {
                let along: f64 = r
                    .iter()
                    .zip(&mid)
                    .zip(&axis)
                    .map(|((x, m), a)| (x - m) * a)
                    .sum();
                let t = -along / length2 + rng.random_range(-1e-6..1e-6);
                r.iter().zip(&axis).map(|(x, a)| x + t * a).collect()
            })
            .collect();
        cases.push(("near the bisecting plane".into(), off_plane, centres));
        let (rows, start) = blob_rows(n, 3, 2, 1.0, 0.0, 8);
        let duplicated = vec![start[0].clone(), start[1].clone(), start[0].clone()];
        cases.push(("duplicated centres".into(), rows, duplicated));
        cases
    }

    #[test]
    fn the_fused_pass_gives_the_chunk_loop_s_bits() {
        for path in paths() {
            for (name, rows, centres) in hard_cases(BLOCK_ROWS + 53) {
                let p = partition(0, &rows);
                let set = CenterSet::from_rows(&centres).unwrap();
                let near = Nearest::new(&set, path);
                let Features::F64(m) = p.features() else {
                    panic!("f64 storage expected");
                };
                for block in block_ranges(m.rows()) {
                    let pass = |whole| assign_block(m, block.clone(), &near, true, None, whole).0;
                    assert_eq!(
                        partial_bits(&pass(Whole::Fused)),
                        partial_bits(&pass(Whole::Chunked)),
                        "{name}, rows {block:?} on {path:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_lloyd_kernel_answers_what_assign_answers() {
        let (rows, _) = blob_rows(3000, 5, 4, 1.0, 0.0, 21);
        let p = partition(0, &rows);
        let set = CenterSet::from_rows(&rows[..4]).unwrap();
        let lloyd = KMeansKernel::Lloyd {
            centers: set.clone(),
            hint: BoundsHint::new(9),
            history: Vec::new(),
        };
        let kernel = crate::Kernel::KMeans(lloyd.clone());
        assert_eq!(
            crate::Kernel::from_bytes(&kernel.to_bytes()).unwrap(),
            kernel
        );
        match (
            lloyd.run(&p).unwrap(),
            KMeansKernel::Assign(set).run(&p).unwrap(),
        ) {
            (KMeansPartial::Assign(a), KMeansPartial::Assign(b)) => {
                assert_eq!(partial_bits(&a), partial_bits(&b));
            }
            other => panic!("unexpected partials {other:?}"),
        }
    }

    #[test]
    fn a_lloyd_pass_over_more_centres_than_a_bound_can_name_is_refused() {
        let k = MAX_BOUNDED_K + 1;
        let values: Vec<Vec<f64>> = (0..k).map(|c| vec![c as f64]).collect();
        let p = partition(0, &values[..100]);
        let lloyd = KMeansKernel::Lloyd {
            centers: CenterSet::from_rows(&values).unwrap(),
            hint: BoundsHint::new(9),
            history: Vec::new(),
        };
        let err = lloyd.run(&p).unwrap_err().to_string();
        assert!(err.contains("65537 centres, more than 65536"), "{err}");
    }
}
