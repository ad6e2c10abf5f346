#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::data::{DenseMatrix, Features, BLOCK_ROWS};
use crate::step::{Kernel, Partial};

/// `n × d` features with column `j` around mean `10 j` (offsets make naive one-pass sums lose
/// digits), a few exact zeros, and an integer label in 0..3.
fn data(n: usize, d: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cols = vec![0.0; n * d];
    for j in 0..d {
        for i in 0..n {
            cols[j * n + i] = if rng.random::<f64>() < 0.1 {
                0.0
            } else {
                10.0 * j as f64 + (j + 1) as f64 * (rng.random::<f64>() - 0.5)
            };
        }
    }
    let y = (0..n)
        .map(|_| f64::from(rng.random_range(0..3u8)))
        .collect();
    (cols, y)
}

fn split(
    cols: &[f64],
    y: &[f64],
    n: usize,
    d: usize,
    parts: usize,
    f32_storage: bool,
) -> Vec<CachedPartition> {
    let per = n.div_ceil(parts);
    (0..parts)
        .map(|p| {
            let (lo, hi) = ((p * per).min(n), ((p + 1) * per).min(n));
            let block: Vec<f64> = (0..d)
                .flat_map(|j| cols[j * n + lo..j * n + hi].to_vec())
                .collect();
            let features = if f32_storage {
                let v: Vec<f32> = block.iter().map(|v| *v as f32).collect();
                Features::F32(DenseMatrix::from_column_major(hi - lo, d, v).unwrap())
            } else {
                Features::F64(DenseMatrix::from_column_major(hi - lo, d, block).unwrap())
            };
            CachedPartition::new(p as u32, features, Some(y[lo..hi].to_vec())).unwrap()
        })
        .collect()
}

#[test]
fn summary_matches_a_naive_two_pass_computation() {
    let (n, d) = (3 * BLOCK_ROWS + 123, 4);
    let (cols, y) = data(n, d, 1);
    for f32_storage in [false, true] {
        for parts in [1, 3] {
            let s = summarize(&split(&cols, &y, n, d, parts, f32_storage), true).unwrap();
            assert_eq!(s.count(), n as u64);
            for j in 0..d {
                let col: Vec<f64> = cols[j * n..(j + 1) * n]
                    .iter()
                    .map(|v| {
                        if f32_storage {
                            f64::from(*v as f32)
                        } else {
                            *v
                        }
                    })
                    .collect();
                let mean = col.iter().sum::<f64>() / n as f64;
                let m2: f64 = col.iter().map(|v| (v - mean).powi(2)).sum();
                assert!((s.mean()[j] - mean).abs() < 1e-12 * mean.abs().max(1.0));
                assert!((s.variance(0)[j] - m2 / n as f64).abs() < 1e-10);
                assert!((s.variance(1)[j] - m2 / (n - 1) as f64).abs() < 1e-10);
                assert!((s.std()[j] - (m2 / (n - 1) as f64).sqrt()).abs() < 1e-10);
                assert_eq!(
                    s.min()[j],
                    col.iter().cloned().fold(f64::INFINITY, f64::min)
                );
                assert_eq!(
                    s.max()[j],
                    col.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                );
                assert_eq!(
                    s.num_nonzeros()[j],
                    col.iter().filter(|v| **v != 0.0).count() as u64
                );
            }
            let l = s.label().unwrap();
            let mean = y.iter().sum::<f64>() / n as f64;
            assert!((l.mean() - mean).abs() < 1e-12);
            assert!((l.sum() - y.iter().sum::<f64>()).abs() < 1e-9);
            assert!((l.sum_of_squares() - y.iter().map(|v| v * v).sum::<f64>()).abs() < 1e-8);
            let counts: Vec<(f64, u64)> = (0..3)
                .map(|c| {
                    (
                        c as f64,
                        y.iter().filter(|v| **v == c as f64).count() as u64,
                    )
                })
                .collect();
            assert_eq!(l.distinct_values(), Some(&counts[..]));
            assert_eq!((l.min(), l.max()), (0.0, 2.0));
            assert!(l.first_invalid_class_index().is_none());
        }
    }
}

#[test]
fn summary_is_bit_identical_for_any_thread_count() {
    let (n, d) = (5 * BLOCK_ROWS, 3);
    let (cols, y) = data(n, d, 2);
    let parts = split(&cols, &y, n, d, 2, false);
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| summarize(&parts, true).unwrap())
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn label_values_beyond_the_limit_are_flagged_and_invalid_indices_located() {
    let n = MAX_DISTINCT_LABELS + 10;
    let x = Features::F64(DenseMatrix::zeros(n, 1));
    let y: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let p = CachedPartition::new(0, x, Some(y)).unwrap();
    let s = summarize(&[p], true).unwrap();
    assert!(s.label().unwrap().distinct_values().is_none());
    assert_eq!(s.num_nonzeros(), &[0]);

    // Partition 1 holds -1 at row 2, partition 0 holds 2.5 at row 3: partition 0 comes first.
    let mk = |index, y: Vec<f64>| {
        CachedPartition::new(
            index,
            Features::F64(DenseMatrix::zeros(y.len(), 1)),
            Some(y),
        )
        .unwrap()
    };
    let parts = [
        mk(1, vec![0.0, 1.0, -1.0]),
        mk(0, vec![0.0, -0.0, 1.0, 2.5]),
    ];
    let s = summarize(&parts, true).unwrap();
    let l = s.label().unwrap();
    assert_eq!(
        l.first_invalid_class_index(),
        Some(&LabelLocation {
            partition: 0,
            row: 3,
            value: 2.5
        })
    );
    // -0.0 and 0.0 are one value.
    assert_eq!(
        l.distinct_values(),
        Some(&[(-1.0, 1), (0.0, 3), (1.0, 2), (2.5, 1)][..])
    );
}

#[test]
fn partials_survive_the_wire_and_merge_with_empty_partitions() {
    let (cols, y) = data(100, 2, 3);
    let parts = split(&cols, &y, 100, 2, 1, false);
    let empty =
        CachedPartition::new(1, Features::F64(DenseMatrix::zeros(0, 2)), Some(Vec::new())).unwrap();
    let kernel = Kernel::Stats(StatsKernel::Summary { label: true });
    let kernel = Kernel::from_bytes(&kernel.to_bytes()).unwrap();
    let a = kernel.run(&parts[0]).unwrap();
    let b = kernel.run(&empty).unwrap();
    let b = Partial::from_bytes(&b.to_bytes()).unwrap();
    let merged = Partial::merge_ordered(vec![(1, b), (0, a.clone())]).unwrap();
    assert_eq!(merged, a);
    let no_label = CachedPartition::new(2, Features::F64(DenseMatrix::zeros(3, 2)), None).unwrap();
    let err = kernel.run(&no_label).unwrap_err().to_string();
    assert!(err.contains("needs a label column"), "{err}");
    let without = StatsKernel::Summary { label: false }
        .run(&no_label)
        .unwrap()
        .into_summary();
    assert!(without.label().is_none());
    assert_eq!(without.variance(1), vec![0.0, 0.0]);
}
