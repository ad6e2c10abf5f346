//! Steady-state Lloyd passes: a pass reads only the rows its bounds cannot settle.
//!
//! Once a fit's centres move little, almost every row keeps its centre on the bounds alone
//! (see [`super::bounds`]); what a plain pass still reads those rows for is the per-centre sums
//! and the cost. A partition instead keeps, per centre `c`, statistics of the rows assigned to
//! it about an origin `r_c` (the centres of the fit's last full pass, the *base*):
//!
//! ```text
//!   n_c = |S_c|,   s_c = Σ_{x ∈ S_c} (x − r_c),   q_c = Σ_{x ∈ S_c} ‖x − r_c‖²
//! ```
//!
//! A step tests every chunk's bounds (0.5 bytes a row), reads and searches only the chunks of
//! [`LANES`] rows where a test fails (asking for each one's rows a few failing chunks ahead),
//! and moves each row whose centre changed from the old centre's statistics to the new one's.
//! On the AVX2 path a failing chunk takes the `f32` search alone when it settles every row
//! (see [`Nearest::search_bounds`]): no exact distance is needed, since the statistics move
//! only changed rows, and the chunk's new bounds come from an upper bound on each row's
//! distance. It then answers, for the pass's centres `C`:
//!
//! ```text
//!   sums_c = n_c r_c + s_c,   cost = Σ_c q_c − 2 (C_c − r_c)·s_c + n_c ‖C_c − r_c‖²
//! ```
//!
//! (`Σ ‖x − C_c‖²` expanded about `r_c`; `C_c − r_c` is small in the steady state, so nothing
//! cancels). The counts are exact and every row gets the centre a plain pass gives it; the
//! sums and the cost differ from a plain pass's only by rounding (about 1e-15 relative).
//!
//! The statistics are a function of the base pass and the rows that changed centre in each
//! later pass, applied in a fixed order (block by block, row by row), never of how the bounds
//! got there. So that a partition that lost them (reloaded after a lost executor, retried
//! elsewhere, or busy with another pass) answers with the same bits, every steady pass carries
//! the fit's rounds since the base ([`LloydRound`]): such a partition runs the base pass, then
//! replays the steps. The trainer starts a new base every [`MAX_REPLAY_ROUNDS`] passes, or
//! sooner for large centre sets, so the history a pass carries stays small.

use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::assign::{base_pass, check_hint, max_norm, BasePass};
use super::bounds::{BoundsHint, BoundsTest, RowBounds};
use super::centers::{CenterSet, LANES};
use super::nearest::{copy_chunk, prefetch_rows, BlockBounds, Nearest, RUN};
use super::partials::AssignPartial;
use crate::data::{block_ranges, DenseMatrix, Element, BLOCK_ROWS};
use crate::data::{CachedPartition, StateSlot};
use crate::error::{MlError, Result};
use crate::simd::kmeans::Rounded;
use crate::simd::{Avx2Fma, CodePath, MulAdd, Vectorize};

/// The most rounds a steady pass carries, its own included: the base and the steps after it
/// (the trainer then starts a new base).
pub(crate) const MAX_REPLAY_ROUNDS: usize = 32;

/// The most centre coordinates and moves the rounds a steady pass carries (its own included)
/// may hold in all.
pub(crate) const MAX_REPLAY_VALUES: usize = 1 << 14;

/// How many failing chunks ahead of its search a step asks for a chunk's rows.
const FAILING_AHEAD: usize = 2;

/// One Lloyd pass of a fit: its centres and how they had moved since the fit's first pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LloydRound {
    /// The pass's centres.
    pub centers: CenterSet,
    /// The moves up to the pass.
    pub hint: BoundsHint,
}

/// Per-centre statistics of a partition's rows about the base pass's centres (see the module
/// documentation).
#[derive(Debug)]
pub(crate) struct ClusterStats {
    fit: u64,
    /// The base pass's round.
    base: u64,
    /// The last round applied.
    round: u64,
    /// `r`: the base pass's centres, `k × dim`.
    origin: Vec<f64>,
    /// `n`.
    counts: Vec<u64>,
    /// `s`, `k × dim`.
    shifted: Vec<f64>,
    /// `q`.
    spread: Vec<f64>,
}

impl ClusterStats {
    /// The statistics after the base pass of `hint`'s round over `centers`.
    fn from_base(hint: &BoundsHint, centers: &CenterSet, pass: BasePass) -> Self {
        Self {
            fit: hint.fit,
            base: hint.round,
            round: hint.round,
            origin: centers.values.clone(),
            counts: pass.partial.counts,
            shifted: pass.shifted,
            spread: pass.spread,
        }
    }

    /// Coordinates per centre.
    fn dim(&self) -> usize {
        self.origin.len() / self.counts.len().max(1)
    }

    /// Whether these statistics are an earlier step of the same fit from the same base, so
    /// that `round` can follow on from them.
    fn leads_to(&self, fit: u64, base: u64, round: u64) -> bool {
        self.fit == fit && self.base == base && self.round < round
    }

    /// Applies one block's changes.
    fn apply(&mut self, delta: &BlockDelta) -> Result<()> {
        if delta.changed == 0 {
            return Ok(());
        }
        let dim = self.dim();
        for (c, &d) in delta.counts.iter().enumerate() {
            self.counts[c] = self.counts[c].checked_add_signed(d).ok_or_else(|| {
                MlError::Internal(format!(
                    "k-means step: centre {c} would have fewer than 0 rows"
                ))
            })?;
            let at = c * dim..(c + 1) * dim;
            if self.counts[c] == 0 {
                self.shifted[at].fill(0.0);
                self.spread[c] = 0.0;
            } else {
                self.shifted[at.clone()]
                    .iter_mut()
                    .zip(&delta.shifted[at])
                    .for_each(|(s, d)| *s += d);
                self.spread[c] += delta.spread[c];
            }
        }
        Ok(())
    }

    /// What a pass over `centers` answers for the rows as assigned now.
    fn partial(&self, centers: &CenterSet) -> AssignPartial {
        let (k, dim) = (centers.k, self.dim());
        let mut sums = vec![0.0; k * dim];
        let mut cost = 0.0;
        for c in 0..k {
            let at = c * dim..(c + 1) * dim;
            let n = self.counts[c] as f64;
            let (r, s, now) = (
                &self.origin[at.clone()],
                &self.shifted[at.clone()],
                &centers.values[at.clone()],
            );
            let mut cross = 0.0;
            let mut far = 0.0;
            for (((out, r), s), now) in sums[at].iter_mut().zip(r).zip(s).zip(now) {
                *out = n * r + s;
                let t = now - r;
                cross += t * s;
                far += t * t;
            }
            if self.counts[c] > 0 {
                cost += (self.spread[c] - 2.0 * cross + n * far).max(0.0);
            }
        }
        AssignPartial {
            k,
            dim,
            sums,
            counts: self.counts.clone(),
            cost,
        }
    }
}

/// The changes one block's rows make to [`ClusterStats`] in a step.
struct BlockDelta {
    counts: Vec<i64>,
    shifted: Vec<f64>,
    spread: Vec<f64>,
    /// Rows that changed centre.
    changed: usize,
}

impl BlockDelta {
    fn zeros(k: usize, dim: usize) -> Self {
        Self {
            counts: vec![0; k],
            shifted: vec![0.0; k * dim],
            spread: vec![0.0; k],
            changed: 0,
        }
    }

    /// Moves `row` from centre `from` to centre `to` (`origin` the statistics' origins, as
    /// wide as `row`).
    fn move_row(&mut self, origin: &[f64], row: &[f64], from: usize, to: usize) {
        let dim = row.len();
        self.changed += 1;
        for (c, sign) in [(from, -1.0), (to, 1.0)] {
            let at = c * dim..(c + 1) * dim;
            let mut q = 0.0;
            for ((s, r), x) in self.shifted[at.clone()]
                .iter_mut()
                .zip(&origin[at])
                .zip(row)
            {
                let t = x - r;
                *s += sign * t;
                q += t * t;
            }
            self.spread[c] += sign * q;
            self.counts[c] += if sign > 0.0 { 1 } else { -1 };
        }
    }
}

/// What a k-means fit keeps beside one cached partition between passes.
#[derive(Debug, Default)]
pub(crate) struct PartitionState {
    /// The rows' distance bounds (see [`super::bounds`]).
    pub(crate) bounds: RowBounds,
    /// Per-centre statistics of the rows as `bounds` assigns them, for steady-state steps.
    pub(crate) stats: Option<ClusterStats>,
}

/// A cached partition's state slot seen as what a k-means fit keeps there between passes: its
/// distance bounds and, in steady state, its per-centre statistics (see
/// [`crate::data::StateSlot`]).
#[derive(Debug, Clone, Copy)]
pub struct BoundsSlot<'a>(&'a StateSlot);

impl<'a> BoundsSlot<'a> {
    /// The bounds slot of `partition`.
    pub fn of(partition: &'a CachedPartition) -> Self {
        Self(partition.state())
    }

    /// Runs `f` with the slot's bounds when no other pass holds them (a pass that finds them
    /// taken, or poisoned, runs without bounds: `None`).
    pub(crate) fn with<R>(&self, f: impl FnOnce(Option<&mut PartitionState>) -> R) -> R {
        self.0.with::<PartitionState, R>(f)
    }

    /// How many rows the last pass that kept bounds here searched for their nearest centre, of
    /// how many (`None` before any such pass). The rest kept their centre on the bounds alone.
    pub fn last_pass_searched(&self) -> Option<(usize, usize)> {
        self.0
            .peek::<PartitionState, _>(|s| {
                let b = &s.bounds;
                (!b.assign.is_empty()).then_some((b.searched_rows, b.assign.len()))
            })
            .flatten()
    }
}

/// A [`KMeansKernel::Lloyd`](super::KMeansKernel::Lloyd) pass on one partition's matrix (see
/// the module documentation): the base pass when `history` is empty, else a step, replaying the
/// history first when the partition's statistics do not lead to this pass.
pub(super) fn lloyd<T: Element>(
    m: &DenseMatrix<T>,
    centers: &CenterSet,
    hint: &BoundsHint,
    history: &[LloydRound],
    slot: BoundsSlot<'_>,
    path: CodePath,
) -> Result<AssignPartial> {
    let base = history.first().map_or(hint.round, |r| r.hint.round);
    for (i, round) in history.iter().enumerate() {
        check_hint(&round.centers, &round.hint)?;
        if round.centers.k != centers.k
            || round.hint.fit != hint.fit
            || round.hint.round != base + i as u64
        {
            return Err(MlError::Internal(format!(
                "k-means pass {}: its history's round {i} is round {} of another shape or fit",
                hint.round, round.hint.round
            )));
        }
    }
    check_hint(centers, hint)?;
    if hint.round != base + history.len() as u64 {
        return Err(MlError::Internal(format!(
            "k-means pass {} follows {} rounds from round {base}",
            hint.round,
            history.len()
        )));
    }
    slot.with(|held| match held {
        Some(state) => rounds(m, centers, hint, history, state, path),
        // Another pass holds the partition's state: replay on a state of its own.
        None => rounds(
            m,
            centers,
            hint,
            history,
            &mut PartitionState::default(),
            path,
        ),
    })
}

/// [`lloyd`] once the rounds are checked, with the partition's `bounds`.
fn rounds<T: Element>(
    m: &DenseMatrix<T>,
    centers: &CenterSet,
    hint: &BoundsHint,
    history: &[LloydRound],
    state: &mut PartitionState,
    path: CodePath,
) -> Result<AssignPartial> {
    let Some(first) = history.first() else {
        state.stats = None;
        let pass = base_pass(m, centers, hint, &mut state.bounds, path)?;
        let partial = pass.partial.clone();
        state.stats = Some(ClusterStats::from_base(hint, centers, pass));
        return Ok(partial);
    };
    let base = first.hint.round;
    let resume = state
        .stats
        .as_ref()
        .filter(|s| {
            s.leads_to(hint.fit, base, hint.round) && state.bounds.usable_for(hint, m.rows())
        })
        .map(|s| s.round);
    let next = match resume {
        Some(round) => round + 1,
        None => {
            state.stats = None;
            let pass = base_pass(m, &first.centers, &first.hint, &mut state.bounds, path)?;
            state.stats = Some(ClusterStats::from_base(&first.hint, &first.centers, pass));
            base + 1
        }
    };
    let skip = usize::try_from(next - base).unwrap_or(usize::MAX);
    for round in history.iter().skip(skip) {
        step(m, &round.centers, &round.hint, state, path)?;
    }
    step(m, centers, hint, state, path)?;
    state
        .stats
        .as_ref()
        .map(|s| s.partial(centers))
        .ok_or_else(|| MlError::Internal("k-means step left no statistics".into()))
}

/// One steady-state step: the rows whose bounds fail are searched, and those that changed
/// centre move between the statistics.
fn step<T: Element>(
    m: &DenseMatrix<T>,
    centers: &CenterSet,
    hint: &BoundsHint,
    state: &mut PartitionState,
    path: CodePath,
) -> Result<()> {
    let bounds = &mut state.bounds;
    let mut stats = state
        .stats
        .take()
        .ok_or_else(|| MlError::Internal("k-means step without statistics".into()))?;
    let test = BoundsTest::new(hint, centers.dim, max_norm(centers));
    let near = Nearest::new(centers, path);
    let blocks: Vec<Range<usize>> = block_ranges(m.rows()).collect();
    let origin = &stats.origin;
    let deltas: Vec<BlockDelta> = blocks
        .into_par_iter()
        .zip(bounds.assign.par_chunks_mut(BLOCK_ROWS))
        .zip(bounds.gap.par_chunks_mut(BLOCK_ROWS / LANES))
        .zip(bounds.reach.par_chunks_mut(BLOCK_ROWS / LANES))
        .map(|(((rows, assign), gap), reach)| {
            near.vectorize(StepBlock {
                m,
                rows,
                near: &near,
                bounds: BlockBounds {
                    test: &test,
                    usable: true,
                    assign,
                    gap,
                    reach,
                    searched: 0,
                },
                origin,
            })
        })
        .collect();
    bounds.advance(hint, test.searched_rows());
    for delta in &deltas {
        stats.apply(delta)?;
    }
    stats.round = hint.round;
    state.stats = Some(stats);
    Ok(())
}

/// A step over one block's rows.
struct StepBlock<'a, 'c, T> {
    m: &'a DenseMatrix<T>,
    rows: Range<usize>,
    near: &'a Nearest<'c>,
    bounds: BlockBounds<'a>,
    origin: &'a [f64],
}

impl<T: Element> Vectorize for StepBlock<'_, '_, T> {
    type Output = BlockDelta;

    #[inline(always)]
    fn run<M: MulAdd>(self, _: Option<Avx2Fma>) -> BlockDelta {
        let Self {
            m,
            rows,
            near,
            mut bounds,
            origin,
        } = self;
        let (k, dim) = (near.centers.k, near.centers.dim);
        let cols: Vec<&[T]> = (0..dim).map(|j| &m.col(j)[rows.clone()]).collect();
        // Columns past `dim` (for the AVX2 loop) stay zero.
        let mut chunk = vec![[0.0f64; LANES]; near.columns()];
        let mut delta = BlockDelta::zeros(k, dim);
        let placed = near.in_place(m.rows(), &cols);
        let mut rounded = Rounded::new(dim);
        // A row that changes centre, as `f64`.
        let mut row = Vec::with_capacity(dim);
        let len = rows.len();
        // The chunks whose test fails, found first (the tests read only the chunks' bounds,
        // 0.5 bytes a row), so that each one's rows are asked for a few failing chunks ahead
        // of their search, wherever they lie. (A loop, not an iterator chain: closures are
        // compiled without this function's AVX2.)
        let mut failing = Vec::new();
        let mut at = 0;
        while at < len {
            // A run's bounds lie in one line: one test covers a run that keeps its centres.
            if at % RUN == 0 && at + RUN <= len && bounds.keeps(at, RUN) {
                at += RUN;
                continue;
            }
            if !bounds.keeps(at, (len - at).min(LANES)) {
                failing.push(at);
            }
            at += LANES;
        }
        for &at in failing.iter().take(FAILING_AHEAD) {
            prefetch_rows(&cols, at);
            bounds.prefetch(at);
        }
        for (i, &at) in failing.iter().enumerate() {
            if let Some(&ahead) = failing.get(i + FAILING_AHEAD) {
                prefetch_rows(&cols, ahead);
                bounds.prefetch(ahead);
            }
            let valid = (len - at).min(LANES);
            // The chunk read in place if it may be, else copied. (No closure around the
            // search: a closure is compiled without this function's AVX2, and the search's
            // intrinsics would not inline into it.)
            let in_place = match &placed {
                Some(p) => p.search_bounds(at, valid, &mut rounded),
                None => None,
            };
            let (nearest, gaps, dist) = match in_place {
                Some(searched) => searched,
                None => {
                    copy_chunk(&mut chunk, &cols, at, valid);
                    near.search_bounds(&chunk, valid, &mut rounded)
                }
            };
            let mut old = [0u16; LANES];
            old[..valid].copy_from_slice(&bounds.assign[at..at + valid]);
            bounds.record(at, valid, &nearest, &gaps, &dist);
            for (l, (&from, &to)) in old.iter().zip(&nearest).enumerate().take(valid) {
                let (from, to) = (from as usize, to as usize);
                if from != to && from < k && to < k {
                    // From the columns, whether the chunk was copied or read in place.
                    row.clear();
                    row.extend(cols.iter().map(|c| c[at + l].to_f64()));
                    delta.move_row(origin, &row, from, to);
                }
            }
        }
        delta
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::kernel::{
        self,
        tests::{blob_rows, partition_f32, paths},
    };
    use super::*;
    use crate::cluster::kmeans::{KMeansKernel, KMeansPartial};
    use crate::data::Features;
    use crate::CachedPartition;

    /// The rows in a partition, stored as `f64` or `f32`.
    fn partition(rows: &[Vec<f64>], f32: bool) -> CachedPartition {
        if f32 {
            partition_f32(0, rows)
        } else {
            kernel::tests::partition(0, rows)
        }
    }

    /// `n` rows around `k` random centres, and starting centres near them (see
    /// [`blob_rows`]).
    fn blobs(n: usize, d: usize, k: usize, spread: f64, offset: f64, seed: u64) -> Data {
        let (rows, start) = blob_rows(n, d, k, spread, offset, seed);
        Data { rows, start }
    }

    struct Data {
        rows: Vec<Vec<f64>>,
        start: Vec<Vec<f64>>,
    }

    fn run(p: &CachedPartition, kernel: &KMeansKernel, path: CodePath) -> AssignPartial {
        let KMeansKernel::Lloyd {
            centers,
            hint,
            history,
        } = kernel
        else {
            panic!("not a Lloyd kernel");
        };
        crate::with_features!(p.features(), m => lloyd(m, centers, hint, history, BoundsSlot::of(p), path))
            .unwrap()
    }

    fn bits(p: &AssignPartial) -> (Vec<u64>, Vec<u64>, u64) {
        (
            p.sums.iter().map(|v| v.to_bits()).collect(),
            p.counts.clone(),
            p.cost.to_bits(),
        )
    }

    /// The Lloyd kernels of a fit's passes from `start`, as the trainer sends them (bounds
    /// from the first pass, history from the second, a new base every `rebase` passes), the
    /// centres updated from what `answer` returns for each.
    fn fit(
        start: &[Vec<f64>],
        passes: usize,
        rebase: usize,
        mut answer: impl FnMut(usize, &KMeansKernel) -> AssignPartial,
    ) -> Vec<KMeansKernel> {
        let mut set = CenterSet::from_rows(start).unwrap();
        let mut hint = BoundsHint::new(3);
        let mut history: Vec<LloydRound> = Vec::new();
        let mut kernels = Vec::new();
        for pass in 0..passes {
            if history.len() >= rebase {
                history.clear();
            }
            let kernel = KMeansKernel::Lloyd {
                centers: set.clone(),
                hint: hint.clone(),
                history: history.clone(),
            };
            history.push(LloydRound {
                centers: set.clone(),
                hint: hint.clone(),
            });
            let p = answer(pass, &kernel);
            kernels.push(kernel);
            let moves: Vec<f64> = p
                .move_centres(&mut set.values)
                .iter()
                .map(|s| s.sqrt())
                .collect();
            hint.advance(&moves);
        }
        kernels
    }

    fn close(a: f64, b: f64, scale: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * scale.max(f64::MIN_POSITIVE)
    }

    /// Runs a fit's passes on `data` with steady steps and, on a fresh partition, as `Assign`
    /// passes over the same centres: every row gets the same centre (equal counts), the sums
    /// and the cost agree within `rel` (of the largest sum of a centre / of the cost). Returns
    /// the rows each steady pass searched.
    fn steady_against_assign(data: &Data, f32: bool, path: CodePath, rel: f64) -> Vec<usize> {
        let steady = partition(&data.rows, f32);
        let plain = partition(&data.rows, f32);
        let mut searched = Vec::new();
        fit(&data.start, 14, MAX_REPLAY_ROUNDS, |pass, kernel| {
            let KMeansKernel::Lloyd { centers, .. } = kernel else {
                unreachable!()
            };
            let want = match KMeansKernel::Assign(centers.clone()).run(&plain).unwrap() {
                KMeansPartial::Assign(p) => p,
                other => panic!("{other:?}"),
            };
            let got = run(&steady, kernel, path);
            searched.push(BoundsSlot::of(&steady).last_pass_searched().unwrap().0);
            assert_eq!(got.counts, want.counts, "pass {pass} on {path:?}");
            let scale = want.sums.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            for (g, w) in got.sums.iter().zip(&want.sums) {
                assert!(
                    close(*g, *w, scale, rel),
                    "pass {pass} on {path:?}: sum {g} vs {w}"
                );
            }
            assert!(
                close(got.cost, want.cost, want.cost, rel),
                "pass {pass} on {path:?}: cost {} vs {}",
                got.cost,
                want.cost
            );
            want
        });
        searched
    }

    #[test]
    fn steady_steps_assign_every_row_as_full_passes_and_agree_to_rounding() {
        for path in paths() {
            for (k, d) in [(8, 16), (3, 5), (13, 7), (1, 4)] {
                let data = blobs(2 * BLOCK_ROWS + 37, d, k, 1.5, 0.0, 40 + k as u64);
                let searched = steady_against_assign(&data, false, path, 1e-12);
                let rows = data.rows.len();
                assert_eq!(searched[0], rows, "the base pass searches every row");
                let late = searched[8..].iter().sum::<usize>() / searched[8..].len();
                assert!(
                    late * 10 < rows,
                    "k = {k}, d = {d}: searched {searched:?} of {rows}"
                );
                steady_against_assign(&data, true, path, 1e-12);
            }
            // Overlapping blobs: many rows change centre in every pass.
            steady_against_assign(&blobs(6000, 3, 6, 8.0, 0.0, 9), false, path, 1e-12);
            // Far from the origin, where `x − r` must not be computed from `Σ x`.
            steady_against_assign(&blobs(3000, 6, 4, 0.01, 1e7, 5), false, path, 1e-9);
        }
    }

    #[test]
    fn a_partition_without_the_statistics_replays_to_the_same_bits() {
        let data = blobs(3 * BLOCK_ROWS + 5, 5, 4, 3.0, 0.0, 12);
        for path in paths() {
            let kept = partition(&data.rows, false);
            let reloaded = partition(&data.rows, false);
            let busy = partition(&data.rows, false);
            let other_base = partition(&data.rows, false);
            fit(&data.start, 12, 5, |pass, kernel| {
                let want = run(&kept, kernel, path);
                // A fresh partition each pass: the base pass, then the steps again.
                let fresh = partition(&data.rows, false);
                assert_eq!(bits(&run(&fresh, kernel, path)), bits(&want), "pass {pass}");
                // Every other pass lost (as a reloaded partition loses them).
                if pass % 2 == 0 {
                    assert_eq!(
                        bits(&run(&reloaded, kernel, path)),
                        bits(&want),
                        "pass {pass}"
                    );
                }
                // Held by another pass: replays on bounds of its own, leaves them alone.
                let held = BoundsSlot::of(&busy).with(|_| run(&busy, kernel, path));
                assert_eq!(bits(&held), bits(&want), "pass {pass}");
                assert!(BoundsSlot::of(&busy).last_pass_searched().is_none());
                // Statistics from another base of the same fit are not followed on from.
                if let KMeansKernel::Lloyd { history, .. } = kernel {
                    if history.len() == 1 {
                        let base_only = KMeansKernel::Lloyd {
                            centers: history[0].centers.clone(),
                            hint: history[0].hint.clone(),
                            history: Vec::new(),
                        };
                        run(&other_base, &base_only, path);
                    }
                }
                assert_eq!(
                    bits(&run(&other_base, kernel, path)),
                    bits(&want),
                    "pass {pass}"
                );
                want
            });
        }
    }

    #[test]
    fn rounds_out_of_sequence_are_internal_errors() {
        let data = blobs(500, 2, 2, 1.0, 0.0, 1);
        let p = partition(&data.rows, false);
        let kernels = fit(&data.start, 3, MAX_REPLAY_ROUNDS, |_, k| {
            run(&partition(&data.rows, false), k, CodePath::Portable)
        });
        let KMeansKernel::Lloyd {
            centers,
            hint,
            history,
        } = &kernels[2]
        else {
            unreachable!()
        };
        let m = match p.features() {
            Features::F64(m) => m,
            Features::F32(_) => unreachable!(),
        };
        // Round 1 missing.
        let err = lloyd(
            m,
            centers,
            hint,
            &history[..1],
            BoundsSlot::of(&p),
            CodePath::Portable,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("pass 2 follows 1 rounds from round 0"),
            "{err}"
        );
        let mut other_fit = history.clone();
        other_fit[0].hint.fit += 1;
        let err = lloyd(
            m,
            centers,
            hint,
            &other_fit,
            BoundsSlot::of(&p),
            CodePath::Portable,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("another shape or fit"), "{err}");
    }
}
