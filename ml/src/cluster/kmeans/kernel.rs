//! The k-means kernels: what the driver asks of every cached partition, and their dispatch to
//! the passes that answer ([`super::assign`], [`super::steady`], [`super::seeding`]), which
//! share the fused nearest-centre loop ([`super::nearest`]).

use serde::{Deserialize, Serialize};

use super::assign::assign;
use super::bounds::BoundsHint;
use super::centers::CenterSet;
use super::partials::KMeansPartial;
use super::seeding::{pick, sample, SALT_PICK, SALT_SAMPLE};
use super::steady::{self, BoundsSlot, LloydRound};
use crate::data::CachedPartition;
use crate::error::{MlError, Result};
use crate::random::stream;
use crate::simd::code_path;
use crate::with_features;

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
                let slot = BoundsSlot::of(partition);
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

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::super::assign::*;
    use super::super::bounds::{BoundsHint, MAX_BOUNDED_K};
    use super::super::centers::*;
    use super::super::nearest::*;
    use super::super::partials::*;
    use super::super::seeding::*;
    use super::super::steady::BoundsSlot;
    use super::*;
    use crate::data::{block_ranges, DenseMatrix, Element, Features, BLOCK_ROWS};
    use crate::simd::{Avx2Fma, CodePath};

    /// [`assign`] with sums, keeping distance bounds in `slot` between the passes of a fit (see
    /// [`super::bounds`]): the same partial, bit for bit, usually without most of the search.
    fn assign_bounded<T: Element>(
        m: &DenseMatrix<T>,
        centers: &CenterSet,
        hint: &BoundsHint,
        slot: BoundsSlot<'_>,
        path: CodePath,
    ) -> Result<AssignPartial> {
        check_hint(centers, hint)?;
        slot.with(|state| match state {
            Some(state) => {
                state.stats = None;
                base_pass(m, centers, hint, &mut state.bounds, path).map(|pass| pass.partial)
            }
            // Another pass holds the bounds: search every row.
            None => assign(m, centers, true, path),
        })
    }

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
                assign_bounded(m, &set, &hint, BoundsSlot::of(p), path)
            })
            .unwrap();
            assert_eq!(
                partial_bits(&plain),
                partial_bits(&bounded),
                "pass {round} on {path:?}"
            );
            searched.push(BoundsSlot::of(p).last_pass_searched().unwrap().0);
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
            assign_bounded(m, &set, &still(5, 0), BoundsSlot::of(&p), path).unwrap();
            let again = assign_bounded(m, &set, &still(5, 1), BoundsSlot::of(&p), path).unwrap();
            assert_eq!(
                partial_bits(&again),
                partial_bits(&assign(m, &set, true, path).unwrap())
            );
            assert_eq!(
                BoundsSlot::of(&p).last_pass_searched(),
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
            let out = assign_bounded(m, &set, h, BoundsSlot::of(&p), code_path()).unwrap();
            (out, BoundsSlot::of(&p).last_pass_searched().unwrap().0)
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
        assert!(BoundsSlot::of(&p.clone()).last_pass_searched().is_none());
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
            BoundsSlot::of(&p),
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
