//! The k-means step machine: initialisation passes, then Lloyd iterations, then one last pass
//! for the final cost.
//!
//! ```text
//!  start ─┬─ Centers: the given centres, straight to Lloyd
//!         └─ Pick{k}           k distinct random points; fewer ⇒ "k = .. but only .. distinct"
//!            ├─ Random:  they are the centres
//!            └─ k-means||: C = {first pick}
//!                 repeat init_steps: Cost(C) ─▶ φ ; Sample(C, φ) ─▶ C ∪= sampled
//!                 |C| > k: Weights(C) ─▶ weighted k-means++ and Lloyd on the driver
//!  Lloyd:   Assign(centres) ─▶ new centres ... until every centre moves ≤ tol or max_iter
//!           (once the centres move little: Lloyd{centres, moves, history}, see `steady`)
//!  Final:   the same pass over the final centres ─▶ cost (skipped when nothing moved)
//! ```

use crate::linalg::squared_distance;
use std::collections::HashSet;

use super::bounds::{BoundsHint, MAX_BOUNDED_K};
use super::centers::CenterSet;
use super::hyperparams::{KMeansInit, KMeansValidParams};
use super::kernel::KMeansKernel;
use super::model::KMeansModel;
use super::partials::{AssignPartial, KMeansPartial, PointSet};
use super::seeding::SALT_LOCAL;
use super::steady::{LloydRound, MAX_REPLAY_ROUNDS, MAX_REPLAY_VALUES};
use crate::error::{MlError, Result};
use crate::random::{stream, SplitMix64};
use crate::step::{Algorithm, DatasetInfo, Kernel, Partial, Progress, Step};

/// Lloyd iterations of the driver-side k-means on the k-means|| candidates (Spark's
/// `LocalKMeans` uses 30).
const LOCAL_MAX_ITER: usize = 30;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Ready,
    Pick,
    ParallelCost { round: usize },
    ParallelSample { round: usize },
    ParallelWeights,
    Lloyd,
    Final,
    Done,
}

/// Trains k-means as a step machine (see the module docs for the passes).
#[derive(Debug, Clone)]
pub struct KMeansTrainer {
    params: KMeansValidParams,
    phase: Phase,
    dim: usize,
    /// Feature names from [`DatasetInfo`], kept for the model.
    features: Vec<String>,
    /// Distinct points of the pick pass, in key order.
    reserve: Vec<Vec<f64>>,
    /// k-means|| candidates, in a canonical order.
    candidates: Vec<Vec<f64>>,
    seen: HashSet<Vec<u64>>,
    /// Current centres, row-major.
    centers: Vec<f64>,
    iteration: usize,
    cost_history: Vec<f64>,
    last_cost: Option<f64>,
    /// What the Lloyd passes tell the partitions about the centres' moves.
    hint: BoundsHint,
    /// Whether the Lloyd passes keep distance bounds (from the first pass after the centres
    /// moved less than `1 / BOUNDS_AFTER` of their smallest distance apart, then to the end).
    bounds_on: bool,
    /// The Lloyd passes since the last one that read every row, that one first (see
    /// [`super::steady`]).
    history: Vec<LloydRound>,
}

/// The Lloyd passes keep distance bounds once no centre moved more than this fraction of the
/// smallest distance between two centres in the last pass.
const BOUNDS_AFTER: f64 = 20.0;

/// The smallest distance between two of the `dim`-dimensional centres in `values` (row-major;
/// `+∞` with one centre).
fn min_separation(values: &[f64], dim: usize) -> f64 {
    let centres: Vec<&[f64]> = values.chunks_exact(dim.max(1)).collect();
    let mut best = f64::INFINITY;
    for (i, a) in centres.iter().enumerate() {
        for b in &centres[i + 1..] {
            best = best.min(squared_distance(a, b));
        }
    }
    best.sqrt()
}

impl KMeansTrainer {
    /// A trainer with checked parameters (see [`KMeans::build`](super::KMeans::build)).
    pub fn new(params: KMeansValidParams) -> Self {
        Self {
            params,
            phase: Phase::Ready,
            dim: 0,
            features: Vec::new(),
            reserve: Vec::new(),
            candidates: Vec::new(),
            seen: HashSet::new(),
            centers: Vec::new(),
            iteration: 0,
            cost_history: Vec::new(),
            last_cost: None,
            hint: BoundsHint::new(fit_id()),
            bounds_on: false,
            history: Vec::new(),
        }
    }

    /// The next Lloyd pass over the current centres, with how far each centre moved since the
    /// previous pass (`moves`, Euclidean; empty for the first pass) added to the fit's totals.
    fn lloyd(&mut self, phase: Phase, moves: &[f64]) -> Result<Step<KMeansModel>> {
        let hint = &mut self.hint;
        if moves.is_empty() {
            *hint = BoundsHint::new(hint.fit);
        } else {
            hint.advance(moves);
            let largest = moves.iter().copied().fold(0.0, f64::max);
            // Bounds pay once most rows keep their centre, which they do when the centres
            // move little against their distances to each other; before that, keeping them
            // would only cost the first passes a write of every row's bounds.
            // (A fit of more centres than a bound can name keeps none.)
            self.bounds_on |= largest * BOUNDS_AFTER < min_separation(&self.centers, self.dim)
                && self.k() <= MAX_BOUNDED_K;
        }
        let kernel = if self.bounds_on {
            let round = LloydRound {
                centers: self.current(),
                hint: self.hint.clone(),
            };
            // A new base (a pass that reads every row) once the history a pass carries would
            // grow too long or too large.
            let rounds = self.history.len() + 1;
            if rounds > MAX_REPLAY_ROUNDS
                || rounds * (self.k() * (self.dim + 1) + 2) > MAX_REPLAY_VALUES
            {
                self.history.clear();
            }
            let kernel = KMeansKernel::Lloyd {
                centers: round.centers.clone(),
                hint: round.hint.clone(),
                history: self.history.clone(),
            };
            self.history.push(round);
            kernel
        } else {
            KMeansKernel::Assign(self.current())
        };
        self.run(phase, kernel)
    }

    fn k(&self) -> usize {
        self.params.k()
    }

    fn run(&mut self, phase: Phase, kernel: KMeansKernel) -> Result<Step<KMeansModel>> {
        self.phase = phase;
        Ok(Step::RunKernel(Kernel::KMeans(kernel)))
    }

    fn center_set(&self, rows: &[Vec<f64>]) -> Result<CenterSet> {
        CenterSet::from_rows(rows)
    }

    fn current(&self) -> CenterSet {
        CenterSet {
            k: self.k(),
            dim: self.dim,
            values: self.centers.clone(),
        }
    }

    fn after_pick(&mut self, picks: PointSet) -> Result<Step<KMeansModel>> {
        let k = self.k();
        if picks.len() < k {
            return Err(MlError::InvalidData(format!(
                "k = {k} but the data has only {} distinct points",
                picks.len()
            )));
        }
        self.reserve = picks.to_rows();
        match self.params.init().clone() {
            KMeansInit::Centers(centers) => self.start_lloyd(&centers),
            KMeansInit::Random => {
                let centers = self.reserve.clone();
                self.start_lloyd(&centers)
            }
            KMeansInit::KMeansParallel => {
                let first = self.reserve[0].clone();
                self.add_candidate(first);
                self.parallel_cost(0)
            }
        }
    }

    fn add_candidate(&mut self, point: Vec<f64>) {
        let bits: Vec<u64> = point.iter().map(|v| (v + 0.0).to_bits()).collect();
        if self.seen.insert(bits) {
            self.candidates.push(point);
        }
    }

    fn parallel_cost(&mut self, round: usize) -> Result<Step<KMeansModel>> {
        let candidates = self.center_set(&self.candidates)?;
        self.run(
            Phase::ParallelCost { round },
            KMeansKernel::Cost(candidates),
        )
    }

    fn after_parallel_cost(&mut self, round: usize, cost: f64) -> Result<Step<KMeansModel>> {
        if cost > 0.0 && cost.is_finite() {
            let kernel = KMeansKernel::Sample {
                candidates: self.center_set(&self.candidates)?,
                cost,
                oversampling: 2.0 * self.k() as f64,
                seed: self.params.seed(),
                round: u32::try_from(round).unwrap_or(u32::MAX),
            };
            self.run(Phase::ParallelSample { round }, kernel)
        } else {
            // Every point is a candidate already: nothing left to sample.
            self.finish_candidates()
        }
    }

    fn after_parallel_sample(
        &mut self,
        round: usize,
        sampled: PointSet,
    ) -> Result<Step<KMeansModel>> {
        for p in sampled.to_rows() {
            self.add_candidate(p);
        }
        if round + 1 < self.params.init_steps() {
            self.parallel_cost(round + 1)
        } else {
            self.finish_candidates()
        }
    }

    /// Tops the candidates up to `k` from the random picks when sampling found too few, then
    /// either uses them directly (exactly `k`) or asks for their weights.
    fn finish_candidates(&mut self) -> Result<Step<KMeansModel>> {
        let k = self.k();
        let reserve = std::mem::take(&mut self.reserve);
        for p in reserve {
            if self.candidates.len() >= k {
                break;
            }
            self.add_candidate(p);
        }
        match self.candidates.len().cmp(&k) {
            std::cmp::Ordering::Less => Err(MlError::Internal(format!(
                "k-means|| found {} candidates for k = {k}",
                self.candidates.len()
            ))),
            std::cmp::Ordering::Equal => {
                let centers = std::mem::take(&mut self.candidates);
                self.start_lloyd(&centers)
            }
            std::cmp::Ordering::Greater => {
                let candidates = self.center_set(&self.candidates)?;
                self.run(Phase::ParallelWeights, KMeansKernel::Weights(candidates))
            }
        }
    }

    fn after_weights(&mut self, counts: Vec<u64>) -> Result<Step<KMeansModel>> {
        if counts.len() != self.candidates.len() {
            return Err(MlError::Internal(format!(
                "{} weights for {} candidates",
                counts.len(),
                self.candidates.len()
            )));
        }
        let weights: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
        let seed = stream(self.params.seed(), SALT_LOCAL, 0);
        let centers = local_kmeans(&self.candidates, &weights, self.k(), seed)?;
        self.candidates.clear();
        self.start_lloyd(&centers)
    }

    fn start_lloyd(&mut self, centers: &[Vec<f64>]) -> Result<Step<KMeansModel>> {
        let set = self.center_set(centers)?;
        if set.k != self.k() || set.dim != self.dim {
            return Err(MlError::Internal(format!(
                "{} initial centres of {} coordinates for k = {} and {} features",
                set.k,
                set.dim,
                self.k(),
                self.dim
            )));
        }
        self.centers = set.values;
        self.lloyd(Phase::Lloyd, &[])
    }

    /// The Lloyd update `c_i ← (Σ_{x ∈ S_i} x) / |S_i|`; a centre with no rows keeps its
    /// place (Spark's behaviour).
    fn after_assign(&mut self, p: AssignPartial) -> Result<Step<KMeansModel>> {
        let (k, dim) = (self.k(), self.dim);
        if p.k != k || p.dim != dim || p.sums.len() != k * dim || p.counts.len() != k {
            return Err(MlError::Internal(
                "assign partial of the wrong shape".into(),
            ));
        }
        if !p.cost.is_finite() || p.sums.iter().any(|v| !v.is_finite()) {
            return Err(MlError::InvalidData(format!(
                "k-means: the data holds a NaN, an infinite value or values too large to square \
                 (Lloyd pass {} came to an SSE of {})",
                self.iteration + 1,
                p.cost
            )));
        }
        self.iteration += 1;
        self.cost_history.push(p.cost);
        self.last_cost = Some(p.cost);
        let tol2 = self.params.tol() * self.params.tol();
        let shifts = p.move_centres(&mut self.centers);
        let converged = shifts.iter().all(|&s| s <= tol2);
        let moved = shifts.iter().any(|&s| s > 0.0);
        let moves: Vec<f64> = shifts.iter().map(|s| s.sqrt()).collect();
        if !(converged || self.iteration >= self.params.max_iter()) {
            return self.lloyd(Phase::Lloyd, &moves);
        }
        if moved {
            self.lloyd(Phase::Final, &moves)
        } else {
            // Same centres as the pass just made: its cost is the final cost.
            self.finish(p.cost)
        }
    }

    fn finish(&mut self, cost: f64) -> Result<Step<KMeansModel>> {
        self.phase = Phase::Done;
        self.last_cost = Some(cost);
        let centers = self.current().to_rows();
        KMeansModel::new(
            centers,
            cost,
            self.iteration,
            std::mem::take(&mut self.cost_history),
        )?
        .with_feature_names(std::mem::take(&mut self.features))?
        .with_params(self.params.clone())
        .map(Step::Done)
    }
}

impl Algorithm for KMeansTrainer {
    fn name(&self) -> &'static str {
        "kmeans"
    }

    type Model = KMeansModel;

    fn start(&mut self, info: &DatasetInfo) -> Result<Step<KMeansModel>> {
        if self.phase != Phase::Ready {
            return Err(MlError::Internal("k-means started twice".into()));
        }
        if info.rows == 0 {
            return Err(MlError::InvalidData(
                "k-means: the training set is empty".into(),
            ));
        }
        self.dim = info.features.len();
        self.features = info.features.clone();
        if self.dim == 0 {
            return Err(MlError::InvalidData(
                "k-means needs at least one feature column".into(),
            ));
        }
        if let KMeansInit::Centers(centers) = self.params.init() {
            let given = centers.first().map_or(0, Vec::len);
            if given != self.dim {
                return Err(MlError::param(
                    "init",
                    format!(
                        "initial centres have {given} coordinates but the data has {} features",
                        self.dim
                    ),
                ));
            }
        }
        let k = self.k();
        if info.rows < k as u64 {
            return Err(MlError::InvalidData(format!(
                "k = {k} but the data has only {} rows",
                info.rows
            )));
        }
        if let KMeansInit::Centers(centers) = self.params.init() {
            // Given centres need no pass to draw points from: Lloyd starts at once, and its
            // first pass finds any value that is not finite.
            let centers = centers.clone();
            return self.start_lloyd(&centers);
        }
        let seed = self.params.seed();
        self.run(Phase::Pick, KMeansKernel::Pick { count: k, seed })
    }

    fn next(&mut self, partial: Partial) -> Result<Step<KMeansModel>> {
        // Irrefutable while the other algorithm families' partials are uninhabited.
        #[allow(irrefutable_let_patterns)]
        let Partial::KMeans(partial) = partial
        else {
            return Err(MlError::Internal(
                "k-means got a partial of another kernel".into(),
            ));
        };
        match (self.phase, partial) {
            (Phase::Pick, KMeansPartial::Points(picks)) => self.after_pick(picks),
            (Phase::ParallelCost { round }, KMeansPartial::Cost(cost)) => {
                self.after_parallel_cost(round, cost)
            }
            (Phase::ParallelSample { round }, KMeansPartial::Points(points)) => {
                self.after_parallel_sample(round, points)
            }
            (Phase::ParallelWeights, KMeansPartial::Counts(counts)) => self.after_weights(counts),
            (Phase::Lloyd, KMeansPartial::Assign(p)) => self.after_assign(p),
            (Phase::Final, KMeansPartial::Assign(p)) => self.finish(p.cost),
            (phase, _) => Err(MlError::Internal(format!(
                "k-means in phase {phase:?} got an unexpected partial"
            ))),
        }
    }

    fn progress(&self) -> Progress {
        Progress {
            iteration: self.iteration,
            max_iter: self.params.max_iter(),
            loss: self.last_cost,
        }
    }
}

/// A number that tells this fit's Lloyd passes from any other fit's (the partitions' bounds
/// are only used by the fit that made them): random per call.
fn fit_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6b69_6c6e);
    h.finish()
}

/// Weighted k-means++ on the candidates, then weighted Lloyd (Spark's `LocalKMeans`).
/// The candidates are distinct and every weight is >= 1, so k-means++ always finds `k`
/// distinct centres when there are more than `k` candidates.
fn local_kmeans(
    points: &[Vec<f64>],
    weights: &[f64],
    k: usize,
    seed: u64,
) -> Result<Vec<Vec<f64>>> {
    let mut rng = SplitMix64::new(seed);
    let pick = |rng: &mut SplitMix64, scores: &[f64]| -> Option<usize> {
        let total: f64 = scores.iter().sum();
        if total.is_nan() || total <= 0.0 {
            return None;
        }
        let r = rng.next_f64() * total;
        let mut cumulative = 0.0;
        let mut last = None;
        for (i, &s) in scores.iter().enumerate() {
            if s > 0.0 {
                cumulative += s;
                last = Some(i);
                if cumulative > r {
                    return Some(i);
                }
            }
        }
        last
    };
    let no_candidate = || MlError::Internal("k-means++ ran out of distinct candidates".into());
    let first = pick(&mut rng, weights).ok_or_else(no_candidate)?;
    let mut centers = vec![points[first].clone()];
    let mut cost: Vec<f64> = points
        .iter()
        .map(|p| squared_distance(p, &centers[0]))
        .collect();
    while centers.len() < k {
        let scores: Vec<f64> = cost.iter().zip(weights).map(|(c, w)| c * w).collect();
        let next = pick(&mut rng, &scores).ok_or_else(no_candidate)?;
        let center = points[next].clone();
        for (c, p) in cost.iter_mut().zip(points) {
            *c = c.min(squared_distance(p, &center));
        }
        centers.push(center);
    }

    let dim = centers[0].len();
    let mut labels = vec![usize::MAX; points.len()];
    for _ in 0..LOCAL_MAX_ITER {
        let mut changed = false;
        let mut sums = vec![0.0; k * dim];
        let mut totals = vec![0.0; k];
        for ((p, &w), label) in points.iter().zip(weights).zip(labels.iter_mut()) {
            let mut best = (f64::INFINITY, 0);
            for (c, center) in centers.iter().enumerate() {
                let d = squared_distance(p, center);
                if d < best.0 {
                    best = (d, c);
                }
            }
            changed |= *label != best.1;
            *label = best.1;
            totals[best.1] += w;
            for (s, x) in sums[best.1 * dim..(best.1 + 1) * dim].iter_mut().zip(p) {
                *s += w * x;
            }
        }
        if !changed {
            break;
        }
        for ((center, sum), &total) in centers.iter_mut().zip(sums.chunks_exact(dim)).zip(&totals) {
            if total > 0.0 {
                for (c, s) in center.iter_mut().zip(sum) {
                    *c = s / total;
                }
            }
        }
    }
    Ok(centers)
}

impl super::KMeans {
    /// Checks the hyper-parameters and returns the step machine that trains with them.
    ///
    /// # Errors
    /// As [`KMeans::check`](super::KMeans::check).
    pub fn build(&self) -> Result<KMeansTrainer> {
        self.check().map(KMeansTrainer::new)
    }
}

impl KMeansValidParams {
    /// The step machine that trains with these parameters.
    pub fn trainer(self) -> KMeansTrainer {
        KMeansTrainer::new(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::super::KMeans;
    use super::*;
    use crate::data::{DenseMatrix, Features};
    use crate::step::run_on_partitions;
    use crate::{fit_local, CachedPartition, Partial};

    /// Gaussian blobs around `centers` (Box-Muller), shuffled by construction (random centre
    /// per row).
    fn blobs(n: usize, centers: &[Vec<f64>], sd: f64, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let c = &centers[rng.random_range(0..centers.len())];
                c.iter()
                    .map(|m| {
                        let (u1, u2): (f64, f64) = (rng.random(), rng.random());
                        let z =
                            (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                        m + sd * z
                    })
                    .collect()
            })
            .collect()
    }

    fn split(rows: &[Vec<f64>], parts: usize) -> Vec<CachedPartition> {
        let d = rows[0].len();
        let per = rows.len().div_ceil(parts);
        rows.chunks(per)
            .enumerate()
            .map(|(i, r)| {
                let flat: Vec<f64> = r.iter().flatten().copied().collect();
                let m = DenseMatrix::from_row_major(r.len(), d, &flat).unwrap();
                CachedPartition::new(i as u32, Features::F64(m), None).unwrap()
            })
            .collect()
    }

    fn names(d: usize) -> Vec<String> {
        (0..d).map(|j| format!("x{j}")).collect()
    }

    fn fit(params: &KMeans, parts: &[CachedPartition]) -> Result<KMeansModel> {
        fit_local(params.build()?, parts, &names(parts[0].cols()), None)
    }

    fn true_centers() -> Vec<Vec<f64>> {
        vec![
            vec![0.0, 0.0, 0.0],
            vec![8.0, 0.0, 1.0],
            vec![0.0, 8.0, -1.0],
            vec![8.0, 8.0, 4.0],
        ]
    }

    #[test]
    fn different_partition_counts_agree_closely() {
        let rows = blobs(20_000, &true_centers(), 1.5, 1);
        for init in [KMeansInit::KMeansParallel, KMeansInit::Random] {
            let params = KMeans::new(4).init(init).tol(0.0).max_iter(50);
            let models: Vec<KMeansModel> = [1, 2, 4]
                .iter()
                .map(|&p| fit(&params, &split(&rows, p)).unwrap())
                .collect();
            for m in &models[1..] {
                assert_eq!(m.iterations(), models[0].iterations());
                for (a, b) in m
                    .centers()
                    .iter()
                    .flatten()
                    .zip(models[0].centers().iter().flatten())
                {
                    assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0), "{a} vs {b}");
                }
                assert!((m.cost() - models[0].cost()).abs() <= 1e-12 * m.cost());
            }
        }
    }

    #[test]
    fn later_lloyd_passes_keep_bounds_and_give_the_same_model_as_fresh_partitions() {
        // Far apart blobs from poor starting centres: the early passes move the centres a
        // lot (no bounds), the later ones hardly (bounds, most searches skipped).
        let rows = blobs(40_000, &true_centers(), 1.0, 5);
        let start: Vec<Vec<f64>> = rows[..4].to_vec();
        let params = KMeans::new(4)
            .init(KMeansInit::Centers(start))
            .tol(0.0)
            .max_iter(40);
        let parts = split(&rows, 2);
        let model = fit(&params, &parts).unwrap();
        let (searched, total) = parts
            .iter()
            .filter_map(|p| super::super::BoundsSlot::of(p).last_pass_searched())
            .fold((0, 0), |(s, t), (a, b)| (s + a, t + b));
        assert_eq!(total, rows.len(), "every partition kept bounds");
        assert!(
            searched * 20 < total,
            "the last pass searched {searched} of {total} rows"
        );
        // Fresh partitions each pass (as after a lost executor): the same bits.
        let mut trainer = params.build().unwrap();
        let info = DatasetInfo {
            features: names(3),
            label: None,
            partitions: parts.len(),
            rows: rows.len() as u64,
        };
        let mut step = trainer.start(&info).unwrap();
        let fresh = loop {
            match step {
                Step::RunKernel(kernel) => {
                    let clones: Vec<CachedPartition> = parts.iter().map(Clone::clone).collect();
                    let refs: Vec<&CachedPartition> = clones.iter().collect();
                    let partial =
                        Partial::merge_ordered(run_on_partitions(&kernel, &refs).unwrap()).unwrap();
                    step = trainer.next(partial).unwrap();
                }
                Step::Done(model) => break model,
            }
        };
        assert_eq!(
            serde_json::to_string(&model).unwrap(),
            serde_json::to_string(&fresh).unwrap()
        );
    }

    #[test]
    fn same_partitioning_is_bit_identical_on_one_and_two_threads() {
        let rows = blobs(12_000, &true_centers(), 1.0, 2);
        let parts = split(&rows, 3);
        for init in [KMeansInit::KMeansParallel, KMeansInit::Random] {
            let params = KMeans::new(4).init(init);
            let on = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| fit(&params, &parts).unwrap())
            };
            assert_eq!(
                serde_json::to_string(&on(1)).unwrap(),
                serde_json::to_string(&on(2)).unwrap()
            );
        }
    }

    #[test]
    fn empty_data_and_too_few_points_are_clear_errors() {
        let info = DatasetInfo {
            features: names(2),
            label: None,
            partitions: 1,
            rows: 0,
        };
        let err = KMeans::new(2)
            .build()
            .unwrap()
            .start(&info)
            .unwrap_err()
            .to_string();
        assert!(err.contains("training set is empty"), "{err}");

        // 30 rows, 3 distinct points.
        let rows: Vec<Vec<f64>> = (0..30).map(|i| vec![f64::from(i % 3), 1.0]).collect();
        for init in [KMeansInit::KMeansParallel, KMeansInit::Random] {
            let err = fit(&KMeans::new(8).init(init), &split(&rows, 2))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("k = 8 but the data has only 3 distinct points"),
                "{err}"
            );
        }
        let err = fit(&KMeans::new(8), &split(&rows[..5], 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("k = 8 but the data has only 5 rows"), "{err}");
        // Exactly k distinct points: every one becomes a centre, no NaN.
        let m = fit(&KMeans::new(3), &split(&rows, 2)).unwrap();
        let mut got: Vec<f64> = m.centers().iter().map(|c| c[0]).collect();
        got.sort_by(f64::total_cmp);
        assert_eq!(got, vec![0.0, 1.0, 2.0]);
        assert_eq!(m.cost(), 0.0);
    }

    #[test]
    fn given_centres_of_another_width_are_rejected_before_any_pass() {
        let params = KMeans::new(2).init(KMeansInit::Centers(vec![vec![0.0; 3], vec![1.0; 3]]));
        let info = DatasetInfo {
            features: names(2),
            label: None,
            partitions: 1,
            rows: 10,
        };
        let err = params
            .build()
            .unwrap()
            .start(&info)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("initial centres have 3 coordinates but the data has 2 features"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_cluster_keeps_its_centre() {
        // The third centre is far from every point: it never gets a row.
        let rows = blobs(500, &[vec![0.0, 0.0], vec![5.0, 5.0]], 0.3, 3);
        let init = vec![vec![0.0, 0.0], vec![5.0, 5.0], vec![100.0, 100.0]];
        let m = fit(
            &KMeans::new(3).init(KMeansInit::Centers(init)).max_iter(5),
            &split(&rows, 2),
        )
        .unwrap();
        assert_eq!(m.centers()[2], vec![100.0, 100.0]);
        assert!(m.centers().iter().flatten().all(|v| v.is_finite()));
    }

    /// Runs a fit step by step, on `parts` (or on fresh copies of them at every pass, as
    /// after losing every executor each time), handing each kernel to `seen`.
    fn drive(
        params: &KMeans,
        parts: &[CachedPartition],
        fresh: bool,
        mut seen: impl FnMut(&Kernel),
    ) -> KMeansModel {
        let mut trainer = params.build().unwrap();
        let info = DatasetInfo {
            features: names(parts[0].cols()),
            label: None,
            partitions: parts.len(),
            rows: parts.iter().map(|p| p.rows() as u64).sum(),
        };
        let mut step = trainer.start(&info).unwrap();
        loop {
            match step {
                Step::RunKernel(kernel) => {
                    seen(&kernel);
                    let clones: Vec<CachedPartition> = parts.to_vec();
                    let refs: Vec<&CachedPartition> = if fresh {
                        clones.iter().collect()
                    } else {
                        parts.iter().collect()
                    };
                    let partial =
                        Partial::merge_ordered(run_on_partitions(&kernel, &refs).unwrap()).unwrap();
                    step = trainer.next(partial).unwrap();
                }
                Step::Done(model) => break model,
            }
        }
    }

    #[test]
    fn given_centres_start_lloyd_at_once_and_bad_values_are_clear_errors() {
        let rows = blobs(2000, &true_centers(), 1.0, 3);
        let params = KMeans::new(4).init(KMeansInit::Centers(rows[..4].to_vec()));
        let mut first = None;
        drive(&params, &split(&rows, 2), false, |k| {
            first.get_or_insert_with(|| k.clone());
        });
        assert!(
            matches!(first, Some(Kernel::KMeans(KMeansKernel::Assign(_)))),
            "{first:?}"
        );
        // Without the pass that checks the values first, the first Lloyd pass finds them.
        for bad in [f64::NAN, f64::INFINITY, 1e300] {
            let mut rows = rows.clone();
            rows[1234][1] = bad;
            let err = fit(&params, &split(&rows, 2)).unwrap_err().to_string();
            assert!(
                err.contains("NaN, an infinite value or values too large to square"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn long_fits_start_a_new_base_and_every_pass_replays_to_the_same_bits() {
        // Uniform rows: Lloyd creeps for many passes, so bounds come on early and the history
        // reaches its limit.
        let mut rng = StdRng::seed_from_u64(17);
        let rows: Vec<Vec<f64>> = (0..20_000)
            .map(|_| (0..2).map(|_| rng.random_range(0.0..1.0)).collect())
            .collect();
        let params = KMeans::new(9)
            .init(KMeansInit::Centers(rows[..9].to_vec()))
            .tol(0.0)
            .max_iter(120);
        let parts = split(&rows, 3);
        let mut histories = Vec::new();
        let kept = drive(&params, &parts, false, |k| {
            if let Kernel::KMeans(KMeansKernel::Lloyd { history, .. }) = k {
                histories.push(history.len());
            }
        });
        let longest = histories.iter().copied().max().unwrap_or(0);
        assert_eq!(longest, MAX_REPLAY_ROUNDS - 1, "{histories:?}");
        let bases = histories.iter().filter(|&&h| h == 0).count();
        assert!(
            bases >= 2,
            "no new base in {} passes: {histories:?}",
            histories.len()
        );
        let fresh = drive(&params, &parts, true, |_| {});
        assert_eq!(
            serde_json::to_string(&kept).unwrap(),
            serde_json::to_string(&fresh).unwrap()
        );
        // Large centre sets carry fewer rounds.
        let wide: Vec<Vec<f64>> = (0..3000)
            .map(|_| (0..64).map(|_| rng.random_range(0.0..1.0)).collect())
            .collect();
        let params = KMeans::new(40)
            .init(KMeansInit::Centers(wide[..40].to_vec()))
            .tol(0.0)
            .max_iter(30);
        let mut carried = 0;
        drive(&params, &split(&wide, 2), false, |k| {
            if let Kernel::KMeans(KMeansKernel::Lloyd { history, .. }) = k {
                carried = carried.max(history.len() + 1);
            }
        });
        assert!(
            carried * (40 * 65 + 2) <= MAX_REPLAY_VALUES,
            "{carried} rounds"
        );
    }

    #[test]
    fn tol_stops_early_and_max_iter_bounds_the_run() {
        let rows = blobs(3000, &true_centers(), 2.5, 4);
        let parts = split(&rows, 2);
        let capped = fit(&KMeans::new(4).tol(0.0).max_iter(2), &parts).unwrap();
        assert_eq!(capped.iterations(), 2);
        assert_eq!(capped.cost_history().len(), 2);
        let loose = fit(&KMeans::new(4).tol(1e3).max_iter(50), &parts).unwrap();
        assert_eq!(loose.iterations(), 1);
        let exact = fit(&KMeans::new(4).tol(0.0).max_iter(500), &parts).unwrap();
        assert!(exact.iterations() < 500);
        // Lloyd never increases the cost.
        assert!(exact
            .cost_history()
            .windows(2)
            .all(|w| w[1] <= w[0] * (1.0 + 1e-12)));
        assert!(exact.cost() <= *exact.cost_history().last().unwrap() * (1.0 + 1e-12));
    }

    #[test]
    fn progress_reports_iterations_and_cost() {
        let rows = blobs(1000, &true_centers(), 1.0, 5);
        let parts = split(&rows, 1);
        let mut trainer = KMeans::new(4).max_iter(7).build().unwrap();
        assert_eq!(trainer.progress().loss, None);
        let info = DatasetInfo {
            features: names(3),
            label: None,
            partitions: 1,
            rows: 1000,
        };
        let mut step = trainer.start(&info).unwrap();
        let mut seen_lloyd = false;
        while let Step::RunKernel(kernel) = step {
            let partial = kernel.run(&parts[0]).unwrap();
            step = trainer.next(partial).unwrap();
            let p = trainer.progress();
            assert_eq!(p.max_iter, 7);
            if p.iteration > 0 {
                seen_lloyd = true;
                assert!(p.loss.is_some_and(|l| l > 0.0));
            }
        }
        assert!(seen_lloyd);
    }

    #[test]
    fn local_kmeans_returns_k_distinct_centres() {
        let points: Vec<Vec<f64>> = (0..20).map(|i| vec![f64::from(i), 0.0]).collect();
        let weights = vec![1.0; 20];
        let centers = local_kmeans(&points, &weights, 20, 7).unwrap();
        let mut xs: Vec<f64> = centers.iter().map(|c| c[0]).collect();
        xs.sort_by(f64::total_cmp);
        assert_eq!(xs, (0..20).map(f64::from).collect::<Vec<_>>());
    }
}
