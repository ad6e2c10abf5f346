#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::data::{CachedPartition, DenseMatrix, Features, BLOCK_ROWS};
use crate::error::MlError;
use crate::optim::StopReason;
use crate::step::{fit_local, Algorithm, DatasetInfo, Kernel, Partial, Step};

fn normal(rng: &mut StdRng) -> f64 {
    let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Row-major `n × d` features with different means and scales, correlated columns.
fn features(n: usize, d: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let shared = normal(&mut rng);
            (0..d)
                .map(|j| {
                    3.0 * j as f64 - 2.0 + (0.5 + j as f64) * (normal(&mut rng) + 0.3 * shared)
                })
                .collect()
        })
        .collect()
}

fn linear_labels(x: &[Vec<f64>], w: &[f64], b: f64, noise: f64, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    x.iter()
        .map(|r| b + r.iter().zip(w).map(|(p, q)| p * q).sum::<f64>() + noise * normal(&mut rng))
        .collect()
}

/// Labels drawn from a softmax over `w` (`K × d` row-major) with intercepts `b`.
fn class_labels(x: &[Vec<f64>], w: &[f64], b: &[f64], seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let k = b.len();
    let d = w.len() / k;
    x.iter()
        .map(|r| {
            let m: Vec<f64> = (0..k)
                .map(|c| b[c] + (0..d).map(|j| w[c * d + j] * r[j]).sum::<f64>())
                .collect();
            let max = m.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = m.iter().map(|v| (v - max).exp()).sum();
            let u: f64 = rng.random::<f64>() * z;
            let mut acc = 0.0;
            for (c, v) in m.iter().enumerate() {
                acc += (v - max).exp();
                if u < acc {
                    return c as f64;
                }
            }
            (k - 1) as f64
        })
        .collect()
}

fn partitions(x: &[Vec<f64>], y: &[f64], parts: usize, f32_storage: bool) -> Vec<CachedPartition> {
    let n = x.len();
    let d = x[0].len();
    let per = n.div_ceil(parts);
    (0..parts)
        .map(|p| {
            let (lo, hi) = ((p * per).min(n), ((p + 1) * per).min(n));
            let flat: Vec<f64> = x[lo..hi].iter().flatten().copied().collect();
            let features = if f32_storage {
                let flat: Vec<f32> = flat.iter().map(|v| *v as f32).collect();
                Features::F32(DenseMatrix::from_row_major(hi - lo, d, &flat).unwrap())
            } else {
                Features::F64(DenseMatrix::from_row_major(hi - lo, d, &flat).unwrap())
            };
            CachedPartition::new(p as u32, features, Some(y[lo..hi].to_vec())).unwrap()
        })
        .collect()
}

fn names(d: usize) -> Vec<String> {
    (0..d).map(|j| format!("x{j}")).collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max)
}

fn coefficient_rows(m: &LogisticRegressionModel) -> Vec<f64> {
    let c = m.coefficient_matrix();
    (0..c.rows())
        .flat_map(|k| (0..c.cols()).map(move |j| c.get(k, j)))
        .collect()
}

// ---------------------------------------------------------------- the kernel

/// Loss and gradient of the standardized parametrization, one row at a time with `std` math.
fn naive(
    kernel: &LinearKernel,
    x: &[Vec<f64>],
    y: &[f64],
    keep: impl Fn(usize) -> bool,
) -> (u64, f64, Vec<f64>) {
    let (loss, beta, b, scale, center) = kernel_parts(kernel);
    let k = loss.rows();
    let d = scale.len();
    let mut grad = vec![0.0; k * d + k];
    let (mut total, mut count) = (0.0, 0);
    for (i, (row, yi)) in x.iter().zip(y).enumerate() {
        if !keep(i) {
            continue;
        }
        count += 1;
        let z: Vec<f64> = (0..d).map(|j| scale[j] * (row[j] - center[j])).collect();
        let m: Vec<f64> = (0..k)
            .map(|c| b[c] + (0..d).map(|j| beta[c * d + j] * z[j]).sum::<f64>())
            .collect();
        let (l, g): (f64, Vec<f64>) = match loss {
            Loss::SquaredError => (0.5 * (m[0] - yi).powi(2), vec![m[0] - yi]),
            Loss::Logistic => {
                let p = 1.0 / (1.0 + (-m[0]).exp());
                ((1.0 + m[0].exp()).ln() - yi * m[0], vec![p - yi])
            }
            Loss::Multinomial { .. } => {
                let z: f64 = m.iter().map(|v| v.exp()).sum();
                let l = z.ln() - m[*yi as usize];
                let g = (0..k)
                    .map(|c| m[c].exp() / z - if c == *yi as usize { 1.0 } else { 0.0 })
                    .collect();
                (l, g)
            }
        };
        total += l;
        for c in 0..k {
            for j in 0..d {
                grad[c * d + j] += g[c] * z[j];
            }
            grad[k * d + c] += g[c];
        }
    }
    (count, total, grad)
}

fn run_kernel(kernel: &LinearKernel, parts: &[CachedPartition]) -> LossGradientSums {
    let partials: Vec<(u32, Partial)> = parts
        .iter()
        .map(|p| (p.index(), Kernel::Linear(kernel.clone()).run(p).unwrap()))
        .collect();
    match Partial::merge_ordered(partials).unwrap() {
        Partial::Linear(LinearPartial::LossGradient(s)) => s,
        other => panic!("{other:?}"),
    }
}

fn kernel_case(loss: Loss, d: usize, seed: u64) -> (LinearKernel, Vec<Vec<f64>>, Vec<f64>) {
    let n = 2 * BLOCK_ROWS + 777;
    let x = features(n, d, seed);
    let k = loss.rows();
    let mut rng = StdRng::seed_from_u64(seed + 1);
    let beta: Vec<f64> = (0..k * d).map(|_| normal(&mut rng)).collect();
    let b: Vec<f64> = (0..k).map(|_| normal(&mut rng)).collect();
    let y = match loss {
        Loss::SquaredError => linear_labels(&x, &vec![1.0; d], 0.5, 1.0, seed),
        Loss::Logistic => class_labels(
            &x,
            &[vec![0.0; d], vec![0.3; d]].concat(),
            &[0.0, -0.5],
            seed,
        ),
        Loss::Multinomial { classes } => {
            let w: Vec<f64> = (0..classes * d)
                .map(|i| 0.2 * (i % 3) as f64 - 0.2)
                .collect();
            class_labels(&x, &w, &vec![0.0; classes], seed)
        }
    };
    let scale: Vec<f64> = (0..d).map(|j| 1.0 / (0.5 + j as f64)).collect();
    let center: Vec<f64> = (0..d).map(|j| 3.0 * j as f64 - 2.0).collect();
    let kernel = LinearKernel::LossGradient {
        loss,
        coefficients: beta,
        intercepts: b,
        scale: Some(scale),
        center: Some(center),
        sample: None,
    };
    (kernel, x, y)
}

fn kernel_parts(k: &LinearKernel) -> (Loss, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let LinearKernel::LossGradient {
        loss,
        coefficients,
        intercepts,
        scale,
        center,
        ..
    } = k;
    (
        *loss,
        coefficients.clone(),
        intercepts.clone(),
        scale.clone().unwrap(),
        center.clone().unwrap(),
    )
}

#[test]
fn kernel_equals_a_naive_row_at_a_time_computation() {
    for (loss, d) in [
        (Loss::SquaredError, 3),
        (Loss::Logistic, 5),
        (Loss::Multinomial { classes: 3 }, 4),
    ] {
        let (kernel, x, y) = kernel_case(loss, d, 11);
        let (count, want_loss, want_grad) = naive(&kernel, &x, &y, |_| true);
        for (parts, f32_storage) in [(1, false), (3, false)] {
            let got = run_kernel(&kernel, &partitions(&x, &y, parts, f32_storage));
            assert_eq!(got.count, count);
            assert!(
                (got.loss_sum - want_loss).abs() <= 1e-10 * want_loss.abs(),
                "{loss:?}: {} vs {want_loss}",
                got.loss_sum
            );
            let scale_g = want_grad.iter().map(|g| g.abs()).fold(1.0, f64::max);
            assert!(
                max_abs_diff(&got.gradient_sum, &want_grad) <= 1e-10 * scale_g,
                "{loss:?}: {:?} vs {want_grad:?}",
                got.gradient_sum
            );
        }
    }
}

#[test]
fn avx2_and_portable_paths_agree() {
    use crate::simd::{Avx2Fma, CodePath};
    if Avx2Fma::detect().is_none() {
        return;
    }
    // Widths around the vector and register-block sizes, every loss, f64 and f32 storage,
    // all rows and a mini-batch.
    for (loss, d) in [
        (Loss::Logistic, 16),
        (Loss::Logistic, 3),
        (Loss::Logistic, 17),
        (Loss::SquaredError, 6),
        (Loss::Multinomial { classes: 3 }, 9),
    ] {
        let (kernel, x, y) = kernel_case(loss, d, 23);
        let sampled = match kernel.clone() {
            LinearKernel::LossGradient {
                loss,
                coefficients,
                intercepts,
                scale,
                center,
                ..
            } => LinearKernel::LossGradient {
                loss,
                coefficients,
                intercepts,
                scale,
                center,
                sample: Some(Sample {
                    fraction: 0.3,
                    seed: 4,
                    iteration: 2,
                }),
            },
        };
        for f32_storage in [false, true] {
            let p = &partitions(&x, &y, 1, f32_storage)[0];
            for k in [&kernel, &sampled] {
                let on = |path| match k.run_on(p, path).unwrap() {
                    LinearPartial::LossGradient(s) => s,
                };
                let (a, b) = (on(CodePath::Portable), on(CodePath::Avx2Fma));
                assert_eq!(a.count, b.count);
                assert!(
                    (a.loss_sum - b.loss_sum).abs() <= 1e-12 * a.loss_sum.abs(),
                    "{loss:?} d={d}: loss {} vs {}",
                    a.loss_sum,
                    b.loss_sum
                );
                let scale = a.gradient_sum.iter().fold(1.0, |m, g| g.abs().max(m));
                assert!(
                    max_abs_diff(&a.gradient_sum, &b.gradient_sum) <= 1e-12 * scale,
                    "{loss:?} d={d}: gradient {:?} vs {:?}",
                    a.gradient_sum,
                    b.gradient_sum
                );
            }
        }
    }
}

#[test]
fn kernel_gradient_matches_finite_differences() {
    for loss in [
        Loss::SquaredError,
        Loss::Logistic,
        Loss::Multinomial { classes: 3 },
    ] {
        let (kernel, x, y) = kernel_case(loss, 3, 5);
        let parts = partitions(&x, &y, 2, false);
        let base = run_kernel(&kernel, &parts);
        let (_, beta, b, scale, center) = kernel_parts(&kernel);
        let theta: Vec<f64> = beta.iter().chain(&b).copied().collect();
        let n_coef = beta.len();
        for i in 0..theta.len() {
            let h = 1e-5;
            let at = |delta: f64| {
                let mut t = theta.clone();
                t[i] += delta;
                let k = LinearKernel::LossGradient {
                    loss,
                    coefficients: t[..n_coef].to_vec(),
                    intercepts: t[n_coef..].to_vec(),
                    scale: Some(scale.clone()),
                    center: Some(center.clone()),
                    sample: None,
                };
                run_kernel(&k, &parts).loss_sum
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            let g = base.gradient_sum[i];
            assert!(
                (fd - g).abs() <= 1e-5 * g.abs().max(1.0),
                "{loss:?} parameter {i}: finite difference {fd}, kernel {g}"
            );
        }
    }
}

#[test]
fn sampled_kernel_uses_the_sampled_rows_only() {
    let (kernel, x, y) = kernel_case(Loss::Logistic, 3, 8);
    let sample = Sample {
        fraction: 0.25,
        seed: 3,
        iteration: 7,
    };
    let mut sampled = kernel.clone();
    let LinearKernel::LossGradient { sample: s, .. } = &mut sampled;
    *s = Some(sample);
    let parts = partitions(&x, &y, 1, false);
    let got = run_kernel(&sampled, &parts);
    let sampler = super::sample::RowSampler::new(&sample, 0);
    let (count, want_loss, want_grad) = naive(&kernel, &x, &y, |i| sampler.weight(i as u64) == 1.0);
    assert_eq!(got.count, count);
    assert!((count as f64 / x.len() as f64 - 0.25).abs() < 0.03);
    assert!((got.loss_sum - want_loss).abs() <= 1e-10 * want_loss);
    assert!(max_abs_diff(&got.gradient_sum, &want_grad) <= 1e-9);
    // The full kernel uses more rows, so the sample did something.
    assert!(run_kernel(&kernel, &parts).count > count);
}

#[test]
fn kernel_and_partial_survive_the_wire_and_check_shapes() {
    let (kernel, x, y) = kernel_case(Loss::Logistic, 2, 1);
    let k = Kernel::Linear(kernel);
    let back = Kernel::from_bytes(&k.to_bytes()).unwrap();
    assert_eq!(back, k);
    let parts = partitions(&x, &y, 1, false);
    let p = k.run(&parts[0]).unwrap();
    assert_eq!(Partial::from_bytes(&p.to_bytes()).unwrap(), p);
    let wrong = Kernel::Linear(LinearKernel::LossGradient {
        loss: Loss::Logistic,
        coefficients: vec![0.0; 3],
        intercepts: vec![0.0],
        scale: None,
        center: None,
        sample: None,
    });
    assert!(matches!(wrong.run(&parts[0]), Err(MlError::Internal(_))));
    let unlabelled = CachedPartition::new(0, parts[0].features().clone(), None).unwrap();
    let err = k.run(&unlabelled).unwrap_err().to_string();
    assert!(err.contains("needs a label column"), "{err}");
}

// ---------------------------------------------------------------- models

fn regression_data(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let x = features(n, 4, seed);
    let y = linear_labels(&x, &[1.5, -2.0, 0.0, 0.7], 3.0, 0.5, seed + 100);
    (x, y)
}

fn multiclass_data(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let x = features(n, 3, seed);
    let w = [0.8, -0.3, 0.1, -0.5, 0.4, 0.0, 0.0, -0.2, 0.3];
    let y = class_labels(&x, &w, &[0.5, 0.0, -0.5], seed + 100);
    (x, y)
}

fn binary_data(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let x = features(n, 3, seed);
    let w = [0.0, 0.0, 0.0, 1.0, -0.6, 0.2];
    let y = class_labels(&x, &w, &[0.0, 0.4], seed + 100);
    (x, y)
}

#[test]
fn linear_regression_recovers_noiseless_coefficients() {
    let x = features(500, 3, 4);
    let y = linear_labels(&x, &[1.5, -2.0, 0.25], 3.0, 0.0, 0);
    let parts = partitions(&x, &y, 2, false);
    let m = fit_local(
        LinearRegression::new().tol(1e-14),
        &parts,
        &names(3),
        Some("y"),
    )
    .unwrap();
    assert!(
        max_abs_diff(m.coefficients(), &[1.5, -2.0, 0.25]) < 1e-8,
        "{:?}",
        m.coefficients()
    );
    assert!((m.intercept() - 3.0).abs() < 1e-8);
    let pred = m.predict(parts[0].features()).unwrap();
    assert!(max_abs_diff(&pred, &y[..250]) < 1e-7);
    let h = m.objective_history();
    assert_eq!(h.len(), m.total_iterations() + 1);
    assert!(
        h.windows(2).all(|w| w[1] <= w[0] + 1e-12 * w[0].abs()),
        "{h:?}"
    );
}

#[test]
fn models_without_intercept_pass_through_the_origin() {
    let x = features(400, 3, 5);
    let y = linear_labels(&x, &[0.5, -1.0, 2.0], 0.0, 0.0, 0);
    let parts = partitions(&x, &y, 2, false);
    let m = fit_local(
        LinearRegression::new().fit_intercept(false).tol(1e-14),
        &parts,
        &names(3),
        Some("y"),
    )
    .unwrap();
    assert_eq!(m.intercept(), 0.0);
    assert!(
        max_abs_diff(m.coefficients(), &[0.5, -1.0, 2.0]) < 1e-7,
        "{:?}",
        m.coefficients()
    );
    let (xb, yb) = multiclass_data(1000, 6);
    let m = fit_local(
        LogisticRegression::new()
            .fit_intercept(false)
            .reg_param(0.01),
        &partitions(&xb, &yb, 1, false),
        &names(3),
        Some("y"),
    )
    .unwrap();
    assert_eq!(m.intercepts(), &[0.0, 0.0, 0.0]);
}

#[test]
fn models_are_bit_identical_on_one_and_two_threads() {
    let (x, y) = multiclass_data(3 * BLOCK_ROWS, 21);
    let parts = partitions(&x, &y, 2, false);
    let fit = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let logistic = fit_local(
                    LogisticRegression::new()
                        .reg_param(0.01)
                        .elastic_net_param(0.3),
                    &parts,
                    &names(3),
                    Some("y"),
                )
                .unwrap();
                let (xr, yr) = regression_data(3 * BLOCK_ROWS, 22);
                let linear = fit_local(
                    LinearRegression::new().reg_param(0.1),
                    &partitions(&xr, &yr, 2, false),
                    &names(4),
                    Some("y"),
                )
                .unwrap();
                (logistic, linear)
            })
    };
    let (a, b) = (fit(1), fit(2));
    assert_eq!(coefficient_rows(&a.0), coefficient_rows(&b.0));
    assert_eq!(a.0.intercepts(), b.0.intercepts());
    assert_eq!(a.0.objective_history(), b.0.objective_history());
    assert_eq!(a.1, b.1);
}

#[test]
fn different_partition_counts_agree_within_1e8() {
    let (x, y) = binary_data(6000, 31);
    let (xr, yr) = regression_data(6000, 32);
    let mut logistic = Vec::new();
    let mut linear = Vec::new();
    for parts in [1, 2, 5] {
        let m = fit_local(
            LogisticRegression::new()
                .reg_param(0.01)
                .tol(0.0)
                .max_iter(300),
            &partitions(&x, &y, parts, false),
            &names(3),
            Some("y"),
        )
        .unwrap();
        logistic.push([coefficient_rows(&m), m.intercepts().to_vec()].concat());
        let m = fit_local(
            LinearRegression::new()
                .reg_param(0.05)
                .elastic_net_param(0.5)
                .tol(0.0)
                .max_iter(500),
            &partitions(&xr, &yr, parts, false),
            &names(4),
            Some("y"),
        )
        .unwrap();
        linear.push([m.coefficients().to_vec(), vec![m.intercept()]].concat());
    }
    for v in [&logistic, &linear] {
        for other in &v[1..] {
            assert!(max_abs_diff(&v[0], other) < 1e-8, "{:?} vs {other:?}", v[0]);
        }
    }
}

#[test]
fn f32_storage_trains_nearly_the_same_model() {
    let (x, y) = binary_data(4000, 41);
    let fit = |f32_storage| {
        fit_local(
            LogisticRegression::new().reg_param(0.001).tol(1e-12),
            &partitions(&x, &y, 2, f32_storage),
            &names(3),
            Some("y"),
        )
        .unwrap()
    };
    let (a, b) = (fit(false), fit(true));
    let diff = max_abs_diff(&coefficient_rows(&a), &coefficient_rows(&b));
    assert!(
        diff < 1e-4 && diff > 0.0,
        "f32 rounding changes the data a little: {diff}"
    );
}

#[test]
fn l1_gives_exact_zeros_and_standardization_moves_the_penalty() {
    let (x, y) = regression_data(2000, 51);
    let parts = partitions(&x, &y, 2, false);
    let fit = |standardization| {
        fit_local(
            LinearRegression::new()
                .reg_param(0.3)
                .elastic_net_param(1.0)
                .standardization(standardization)
                .tol(1e-12),
            &parts,
            &names(4),
            Some("y"),
        )
        .unwrap()
    };
    let (on, off) = (fit(true), fit(false));
    assert_eq!(on.coefficients()[2], 0.0, "{:?}", on.coefficients());
    assert_eq!(off.coefficients()[2], 0.0, "{:?}", off.coefficients());
    assert!(max_abs_diff(on.coefficients(), off.coefficients()) > 1e-3);
    // Without a penalty, standardization does not matter.
    let plain = |standardization| {
        fit_local(
            LinearRegression::new()
                .standardization(standardization)
                .tol(1e-14),
            &parts,
            &names(4),
            Some("y"),
        )
        .unwrap()
    };
    assert!(max_abs_diff(plain(true).coefficients(), plain(false).coefficients()) < 1e-8);
}

#[test]
fn constant_features_get_zero_coefficients() {
    let mut x = features(300, 2, 61);
    x.iter_mut().for_each(|r| r.push(7.0));
    let y = linear_labels(&x, &[1.0, -1.0, 0.0], 2.0, 0.1, 1);
    let m = fit_local(
        LinearRegression::new().tol(1e-12),
        &partitions(&x, &y, 1, false),
        &names(3),
        Some("y"),
    )
    .unwrap();
    assert_eq!(m.coefficients()[2], 0.0);
    assert!((m.coefficients()[0] - 1.0).abs() < 0.05);
}

#[test]
fn multinomial_model_predicts_centred_probabilities() {
    let (x, y) = multiclass_data(3000, 71);
    let parts = partitions(&x, &y, 2, false);
    let m = fit_local(
        LogisticRegression::new().tol(1e-10),
        &parts,
        &names(3),
        Some("y"),
    )
    .unwrap();
    assert_eq!((m.num_classes(), m.is_multinomial()), (3, true));
    assert!(m.intercepts().iter().sum::<f64>().abs() < 1e-12);
    for j in 0..3 {
        let s: f64 = (0..3).map(|k| m.coefficient_matrix().get(k, j)).sum();
        assert!(s.abs() < 1e-12, "unpenalized coefficients are centred");
    }
    let p = m.predict_proba(parts[0].features()).unwrap();
    assert_eq!((p.rows(), p.cols()), (1500, 3));
    for i in 0..p.rows() {
        assert!(((0..3).map(|k| p.get(i, k)).sum::<f64>() - 1.0).abs() < 1e-12);
    }
    let pred = m.predict(parts[0].features()).unwrap();
    let accuracy = pred.iter().zip(&y).filter(|(a, b)| a == b).count() as f64 / 1500.0;
    assert!(accuracy > 0.5, "{accuracy}");
    // A two-class label trains a 2 × d softmax when asked.
    let (xb, yb) = binary_data(1000, 72);
    let parts = partitions(&xb, &yb, 1, false);
    let m2 = fit_local(
        LogisticRegression::new()
            .family(Family::Multinomial)
            .reg_param(0.01),
        &parts,
        &names(3),
        Some("y"),
    )
    .unwrap();
    let mb = fit_local(
        LogisticRegression::new().reg_param(0.01),
        &parts,
        &names(3),
        Some("y"),
    )
    .unwrap();
    assert_eq!(
        (
            m2.coefficient_matrix().rows(),
            mb.coefficient_matrix().rows()
        ),
        (2, 1)
    );
    assert_eq!(m2.predict(parts[0].features()).unwrap().len(), 1000);
}

#[test]
fn models_round_trip_through_serde() {
    let (x, y) = binary_data(500, 81);
    let parts = partitions(&x, &y, 1, false);
    let m = fit_local(LogisticRegression::new(), &parts, &names(3), Some("y")).unwrap();
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(
        serde_json::from_str::<LogisticRegressionModel>(&json).unwrap(),
        m
    );
    let (x, y) = regression_data(500, 82);
    let m = fit_local(
        LinearRegression::new(),
        &partitions(&x, &y, 1, false),
        &names(4),
        Some("y"),
    )
    .unwrap();
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(
        serde_json::from_str::<LinearRegressionModel>(&json).unwrap(),
        m
    );
}

#[test]
fn sgd_is_seeded_and_lands_near_lbfgs() {
    let (x, y) = binary_data(4000, 91);
    let parts = partitions(&x, &y, 2, false);
    let lbfgs = fit_local(
        LogisticRegression::new().reg_param(0.01).tol(1e-12),
        &parts,
        &names(3),
        Some("y"),
    )
    .unwrap();
    let sgd = |seed| {
        fit_local(
            LogisticRegression::new()
                .reg_param(0.01)
                .solver(Solver::Sgd {
                    mini_batch_fraction: 0.5,
                    step_size: 2.0,
                    schedule: StepSchedule::InverseSqrt,
                })
                .max_iter(300)
                .tol(0.0)
                .seed(seed),
            &parts,
            &names(3),
            Some("y"),
        )
        .unwrap()
    };
    let (a, b, c) = (sgd(1), sgd(1), sgd(2));
    assert_eq!(a, b);
    assert_ne!(coefficient_rows(&a), coefficient_rows(&c));
    assert_eq!(a.total_iterations(), 300);
    let diff = max_abs_diff(&coefficient_rows(&a), &coefficient_rows(&lbfgs));
    assert!(
        diff < 0.05,
        "SGD {:?} vs L-BFGS {:?}",
        coefficient_rows(&a),
        coefficient_rows(&lbfgs)
    );
}

#[test]
fn diverging_sgd_is_an_error_naming_step_size() {
    let (x, y) = regression_data(1000, 101);
    let err = fit_local(
        LinearRegression::new().solver(Solver::Sgd {
            mini_batch_fraction: 1.0,
            step_size: 10.0,
            schedule: StepSchedule::Constant,
        }),
        &partitions(&x, &y, 1, false),
        &names(4),
        Some("y"),
    )
    .unwrap_err();
    assert!(
        matches!(&err, MlError::InvalidParameter { name, .. } if name == "step_size"),
        "{err}"
    );
    assert!(err.to_string().contains("diverged"), "{err}");
    // Far out, the kernel's sums overflow; they saturate so the partial still encodes.
    let huge = Kernel::Linear(LinearKernel::LossGradient {
        loss: Loss::SquaredError,
        coefficients: vec![1e300; 4],
        intercepts: vec![0.0],
        scale: None,
        center: None,
        sample: None,
    });
    let partial = huge.run(&partitions(&x, &y, 1, false)[0]).unwrap();
    assert_eq!(Partial::from_bytes(&partial.to_bytes()).unwrap(), partial);
}

#[test]
fn bad_parameters_are_named_with_their_range() {
    let cases: Vec<(LinearRegression, &str)> = vec![
        (
            LinearRegression::new().reg_param(-1.0),
            "reg_param must be >= 0, got -1",
        ),
        (
            LinearRegression::new().elastic_net_param(2.0),
            "elastic_net_param must be in [0, 1], got 2",
        ),
        (
            LinearRegression::new().tol(f64::NAN),
            "tol must be >= 0, got NaN",
        ),
        (
            LinearRegression::new().solver(Solver::Sgd {
                mini_batch_fraction: 0.0,
                step_size: 1.0,
                schedule: StepSchedule::Constant,
            }),
            "mini_batch_fraction must be in (0, 1], got 0",
        ),
        (
            LinearRegression::new().solver(Solver::Sgd {
                mini_batch_fraction: 1.0,
                step_size: -0.5,
                schedule: StepSchedule::Constant,
            }),
            "step_size must be > 0, got -0.5",
        ),
    ];
    for (algorithm, message) in cases {
        let err = algorithm.check().unwrap_err().to_string();
        assert!(err.contains(message), "{err}");
    }
    let err = LogisticRegression::new()
        .threshold(1.5)
        .check()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("threshold must be in [0, 1], got 1.5"),
        "{err}"
    );
    let valid = LogisticRegression::new()
        .reg_param(0.5)
        .family(Family::Binomial)
        .check()
        .unwrap();
    assert_eq!(
        (valid.reg_param(), valid.family(), valid.max_iter()),
        (0.5, Family::Binomial, 100)
    );
    // The algorithm checks before any data moves.
    let info = DatasetInfo {
        features: names(1),
        label: Some("y".into()),
        partitions: 1,
        rows: 10,
    };
    assert!(LinearRegression::new()
        .reg_param(-1.0)
        .start(&info)
        .is_err());
}

fn logistic_error(y: Vec<f64>, family: Family) -> String {
    let n = y.len();
    let x: Vec<Vec<f64>> = (0..n).map(|i| vec![i as f64]).collect();
    fit_local(
        LogisticRegression::new().family(family),
        &partitions(&x, &y, 1, false),
        &names(1),
        Some("label"),
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn bad_training_data_gets_a_message_naming_the_problem() {
    let err = logistic_error(vec![0.0, 1.0, 1.0, 2.5, 0.0], Family::Auto);
    assert!(
        err.contains("'label'") && err.contains("2.5 at row 3 of partition 0"),
        "{err}"
    );
    assert!(err.contains("class indices 0, 1, ..., K-1"), "{err}");
    let err = logistic_error(vec![0.0, -1.0], Family::Auto);
    assert!(err.contains("-1 at row 1"), "{err}");
    let err = logistic_error(vec![1.0, 1.0, 1.0], Family::Auto);
    assert!(
        err.contains("only the value 1") && err.contains("at least two classes"),
        "{err}"
    );
    let err = logistic_error(vec![0.0, 1.0, 2.0], Family::Binomial);
    assert!(
        err.contains("binomial needs labels 0 and 1") && err.contains("family"),
        "{err}"
    );

    let (x, y) = regression_data(10, 1);
    let parts = partitions(&x, &y, 1, false);
    let err = fit_local(LinearRegression::new(), &parts, &names(4), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("linear regression needs a label column"),
        "{err}"
    );
    let empty =
        vec![
            CachedPartition::new(0, Features::F64(DenseMatrix::zeros(0, 4)), Some(vec![])).unwrap(),
        ];
    let err = fit_local(LinearRegression::new(), &empty, &names(4), Some("y"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty training set"), "{err}");
    let m = fit_local(LinearRegression::new(), &parts, &names(4), Some("y")).unwrap();
    let err = m
        .predict(&Features::F64(DenseMatrix::zeros(2, 3)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("trained on 4 features, the data has 3"),
        "{err}"
    );
}

#[test]
fn progress_reports_iterations_and_the_current_objective() {
    let (x, y) = binary_data(1000, 111);
    let parts = partitions(&x, &y, 1, false);
    let mut algorithm = LogisticRegression::new().max_iter(7).tol(0.0);
    assert_eq!(algorithm.progress().max_iter, 7);
    let info = DatasetInfo {
        features: names(3),
        label: Some("y".into()),
        partitions: 1,
        rows: 1000,
    };
    let mut step = algorithm.start(&info).unwrap();
    let mut losses = Vec::new();
    let model = loop {
        match step {
            Step::Done(model) => break model,
            Step::RunKernel(kernel) => {
                let partial = kernel.run(&parts[0]).unwrap();
                step = algorithm.next(partial).unwrap();
                let p = algorithm.progress();
                assert!(p.iteration <= 7);
                if let Some(loss) = p.loss {
                    losses.push((p.iteration, loss));
                }
            }
        }
    };
    assert_eq!(model.total_iterations(), 7);
    assert_eq!(model.summary().stop_reason(), StopReason::MaxIter);
    assert_eq!(losses.last().map(|l| l.0), Some(7));
    assert!(losses.windows(2).all(|w| w[1].1 <= w[0].1));
    assert!(algorithm
        .next(Partial::Linear(LinearPartial::LossGradient(
            LossGradientSums {
                count: 0,
                loss_sum: 0.0,
                gradient_sum: vec![],
            }
        )))
        .is_err());
}

#[test]
fn scikit_learns_c_is_the_strength_one_over_n_c() {
    let (x, y) = binary_data(800, 91);
    let parts = partitions(&x, &y, 2, false);
    let fit = |lr: LogisticRegression| fit_local(lr, &parts, &names(3), Some("y")).unwrap();
    let by_c = fit(LogisticRegression::new().inverse_strength(0.5));
    let by_lambda = fit(LogisticRegression::new().reg_param(1.0 / (800.0 * 0.5)));
    assert_eq!(coefficient_rows(&by_c), coefficient_rows(&by_lambda));
    assert_eq!(by_c.intercepts(), by_lambda.intercepts());
    // The model file keeps C, and a model read back trains the same way.
    let files = crate::Model::from(by_c.clone()).to_files().unwrap();
    let meta = String::from_utf8(files[files.len() - 1].1.clone()).unwrap();
    assert!(
        meta.contains("\"C\": 0.5") || meta.contains("\"C\":0.5"),
        "{meta}"
    );
    let err = LogisticRegression::new()
        .inverse_strength(0.0)
        .check()
        .unwrap_err();
    assert!(err.to_string().contains("C must be > 0, got 0"), "{err}");
}
