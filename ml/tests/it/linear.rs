//! Linear and logistic regression against scikit-learn (`tests/python/ref_linear.py`) on
//! seeded synthetic data: 2000 rows, 5 features with different means, scales and a shared
//! component (correlated columns), split into 2 or 3 partitions.
//!
//! Kiln runs with `tol = 1e-12` (relative function change) so that its optimum is within
//! about `10⁻⁶` of the exact one; scikit-learn runs exact solvers (`lstsq`, Cholesky) or
//! `tol = 1e-12`. Every comparison states its tolerance.

use kiln_ml::fit_local;
use kiln_ml::linear::{
    Family, LinearRegression, LinearRegressionModel, LogisticRegression, LogisticRegressionModel,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::common::{names, partitions, reference};

const N: usize = 2000;
const D: usize = 5;
const MEANS: [f64; D] = [1.0, -2.0, 5.0, 0.0, 10.0];
const SCALES: [f64; D] = [1.0, 3.0, 0.5, 2.0, 0.1];

fn normal(rng: &mut StdRng) -> f64 {
    let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn features(seed: u64) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..N)
        .map(|_| {
            let shared = normal(&mut rng);
            (0..D)
                .map(|j| MEANS[j] + SCALES[j] * (normal(&mut rng) + 0.5 * shared))
                .collect()
        })
        .collect()
}

/// `y = 4 + Σ wⱼ xⱼ + N(0, 1)`, one coefficient zero and one small.
fn regression(seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let w = [2.0, -1.0, 0.0, 0.05, 3.0];
    let x = features(seed);
    let mut rng = StdRng::seed_from_u64(seed + 1);
    let y = x
        .iter()
        .map(|r| 4.0 + r.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + normal(&mut rng))
        .collect();
    (x, y)
}

/// Labels drawn from a softmax of `w` (`K × D`) applied to centred features, plus `b`.
fn classification(seed: u64, w: &[[f64; D]], b: &[f64]) -> (Vec<Vec<f64>>, Vec<f64>) {
    let x = features(seed);
    let mut rng = StdRng::seed_from_u64(seed + 1);
    let y = x
        .iter()
        .map(|r| {
            let m: Vec<f64> = w
                .iter()
                .zip(b)
                .map(|(wk, bk)| bk + (0..D).map(|j| wk[j] * (r[j] - MEANS[j])).sum::<f64>())
                .collect();
            let z: f64 = m.iter().map(|v| v.exp()).sum();
            let u = rng.random::<f64>() * z;
            let mut acc = 0.0;
            for (k, v) in m.iter().enumerate() {
                acc += v.exp();
                if u < acc {
                    return k as f64;
                }
            }
            (m.len() - 1) as f64
        })
        .collect();
    (x, y)
}

fn binary(seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    classification(seed, &[[0.0; D], [1.0, -0.3, 0.0, 0.5, 2.0]], &[0.0, 0.3])
}

fn three_classes(seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    classification(
        seed,
        &[
            [0.8, -0.2, 0.5, 0.0, 1.0],
            [-0.4, 0.3, 0.0, 0.4, -2.0],
            [0.0, 0.0, -0.6, -0.3, 0.5],
        ],
        &[0.3, 0.0, -0.2],
    )
}

fn sklearn(
    model: &str,
    x: &[Vec<f64>],
    y: &[f64],
    extra: Value,
) -> (Vec<Vec<f64>>, Vec<f64>, Value) {
    let mut request = json!({"model": model, "x": x, "y": y});
    if let (Some(r), Some(e)) = (request.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    let out = reference("ref_linear.py", &request);
    let coef: Vec<Vec<f64>> = serde_json::from_value(out["coef"].clone()).expect("coef");
    let intercept: Vec<f64> = serde_json::from_value(out["intercept"].clone()).expect("intercept");
    (coef, intercept, out)
}

fn fit_linear(
    algorithm: LinearRegression,
    x: &[Vec<f64>],
    y: &[f64],
    parts: usize,
) -> LinearRegressionModel {
    fit_local(
        algorithm,
        &partitions(x, Some(y), parts),
        &names(D),
        Some("y"),
    )
    .expect("fit")
}

fn fit_logistic(
    algorithm: LogisticRegression,
    x: &[Vec<f64>],
    y: &[f64],
    parts: usize,
) -> LogisticRegressionModel {
    fit_local(
        algorithm,
        &partitions(x, Some(y), parts),
        &names(D),
        Some("y"),
    )
    .expect("fit")
}

fn assert_close(what: &str, kiln: &[f64], reference: &[f64], tol: f64) {
    assert_eq!(kiln.len(), reference.len(), "{what}: lengths");
    let worst = kiln
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= tol,
        "{what}: max |kiln − sklearn| = {worst:e} > {tol:e}\n kiln    {kiln:?}\n sklearn {reference:?}"
    );
}

fn centred(rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let k = rows.len() as f64;
    let d = rows[0].len();
    let means: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / k)
        .collect();
    rows.iter()
        .map(|r| r.iter().zip(&means).map(|(v, m)| v - m).collect())
        .collect()
}

fn matrix_rows(m: &LogisticRegressionModel) -> Vec<Vec<f64>> {
    let c = m.coefficient_matrix();
    (0..c.rows())
        .map(|k| (0..c.cols()).map(|j| c.get(k, j)).collect())
        .collect()
}

/// (a) No penalty: ordinary least squares. Tolerance 1e-4 on coefficients and intercept.
#[test]
fn linear_regression_matches_ordinary_least_squares() {
    let (x, y) = regression(1);
    let kiln = fit_linear(LinearRegression::new().tol(1e-12).max_iter(1000), &x, &y, 3);
    let (coef, intercept, _) = sklearn("ols", &x, &y, json!({}));
    assert_close("coefficients", kiln.coefficients(), &coef[0], 1e-4);
    assert_close("intercept", &[kiln.intercept()], &intercept, 1e-4);
}

/// (b) L2 with `standardization = false` is `Ridge(alpha = n λ)`. Tolerance 1e-4.
#[test]
fn ridge_matches_sklearn_ridge_with_alpha_n_lambda() {
    let (x, y) = regression(2);
    let lambda = 0.1;
    let kiln = fit_linear(
        LinearRegression::new()
            .reg_param(lambda)
            .standardization(false)
            .tol(1e-12)
            .max_iter(1000),
        &x,
        &y,
        2,
    );
    let (coef, intercept, _) = sklearn("ridge", &x, &y, json!({"reg_param": lambda}));
    assert_close("coefficients", kiln.coefficients(), &coef[0], 1e-4);
    assert_close("intercept", &[kiln.intercept()], &intercept, 1e-4);
    // The penalty matters at this λ: the ridge and OLS solutions differ by far more than 1e-4.
    let (ols, _, _) = sklearn("ols", &x, &y, json!({}));
    assert!(kiln
        .coefficients()
        .iter()
        .zip(&ols[0])
        .any(|(a, b)| (a - b).abs() > 1e-2));
}

/// (c) Elastic net with `standardization = false` is `ElasticNet(alpha = λ, l1_ratio = α)`.
/// Tolerance 1e-4, and the same coefficients are exactly zero.
#[test]
fn elastic_net_matches_sklearn_elastic_net() {
    let (x, y) = regression(3);
    for (lambda, alpha) in [(0.1, 0.5), (0.3, 1.0)] {
        let kiln = fit_linear(
            LinearRegression::new()
                .reg_param(lambda)
                .elastic_net_param(alpha)
                .standardization(false)
                .tol(1e-12)
                .max_iter(1000),
            &x,
            &y,
            3,
        );
        let (coef, intercept, _) = sklearn(
            "elastic_net",
            &x,
            &y,
            json!({"reg_param": lambda, "elastic_net_param": alpha}),
        );
        let what = format!("λ = {lambda}, α = {alpha}");
        assert_close(&what, kiln.coefficients(), &coef[0], 1e-4);
        assert_close(&what, &[kiln.intercept()], &intercept, 1e-4);
        let zeros = |v: &[f64]| v.iter().map(|c| *c == 0.0).collect::<Vec<_>>();
        assert_eq!(
            zeros(kiln.coefficients()),
            zeros(&coef[0]),
            "{what}: zero pattern"
        );
        assert!(
            zeros(kiln.coefficients()).iter().any(|z| *z),
            "{what}: L1 zeroes something"
        );
    }
}

/// (d) Binary logistic regression, L2 (`C = 1/(n λ)`) and unpenalized. Tolerance 1e-4 on
/// coefficients and intercept, 1e-5 on probabilities.
#[test]
fn binary_logistic_regression_matches_sklearn() {
    let (x, y) = binary(4);
    for lambda in [0.01, 0.0] {
        let kiln = fit_logistic(
            LogisticRegression::new()
                .reg_param(lambda)
                .standardization(false)
                .tol(1e-12)
                .max_iter(1000),
            &x,
            &y,
            3,
        );
        let (coef, intercept, out) = sklearn("logistic", &x, &y, json!({"reg_param": lambda}));
        assert_eq!(kiln.num_classes(), 2);
        assert_close(
            &format!("λ = {lambda}"),
            &matrix_rows(&kiln)[0],
            &coef[0],
            1e-4,
        );
        assert_close(
            &format!("λ = {lambda}"),
            kiln.intercepts(),
            &intercept,
            1e-4,
        );
        let proba = kiln
            .predict_proba(partitions(&x, Some(&y), 1)[0].features())
            .expect("proba");
        let want: Vec<f64> = out["proba"]
            .as_array()
            .expect("proba")
            .iter()
            .map(|p| p[1].as_f64().expect("number"))
            .collect();
        assert_close("P(y = 1)", proba.col(1), &want, 1e-5);
    }
}

/// (e) Multinomial logistic regression with L2 vs scikit-learn's multinomial loss. Its
/// parametrization is not centred: coefficients and intercepts are compared after
/// subtracting the mean over classes. Tolerance 1e-4; probabilities 1e-5.
#[test]
fn multinomial_logistic_regression_matches_sklearn() {
    let (x, y) = three_classes(5);
    let lambda = 0.005;
    let kiln = fit_logistic(
        LogisticRegression::new()
            .reg_param(lambda)
            .standardization(false)
            .tol(1e-12)
            .max_iter(1000),
        &x,
        &y,
        2,
    );
    assert_eq!((kiln.num_classes(), kiln.is_multinomial()), (3, true));
    let (coef, intercept, out) = sklearn("logistic", &x, &y, json!({"reg_param": lambda}));
    let (kc, sc) = (matrix_rows(&kiln), centred(&coef));
    for k in 0..3 {
        assert_close(&format!("class {k} coefficients"), &kc[k], &sc[k], 1e-4);
    }
    let si = centred(&intercept.iter().map(|b| vec![*b]).collect::<Vec<_>>());
    assert_close("intercepts", kiln.intercepts(), &si.concat(), 1e-4);
    let proba = kiln
        .predict_proba(partitions(&x, Some(&y), 1)[0].features())
        .expect("proba");
    let rows = out["proba"].as_array().expect("proba");
    for k in 0..3 {
        let want: Vec<f64> = rows
            .iter()
            .map(|p| p[k].as_f64().expect("number"))
            .collect();
        assert_close(&format!("P(y = {k})"), proba.col(k), &want, 1e-5);
    }
    // Auto picks the multinomial family for 3 classes; asking for binomial is an error.
    let err = fit_local(
        LogisticRegression::new().family(Family::Binomial),
        &partitions(&x, Some(&y), 2),
        &names(D),
        Some("y"),
    )
    .expect_err("binomial with 3 classes");
    assert!(
        err.to_string().contains("binomial needs labels 0 and 1"),
        "{err}"
    );
}

/// (f) `standardization = true` (the default): the penalty is on standardized coefficients.
/// scikit-learn is fitted on `(x − μ)/σ` (σ with ddof = 1) and its coefficients divided by σ.
/// Tolerance 1e-4.
#[test]
fn standardization_matches_sklearn_on_standardized_features() {
    let (x, y) = regression(6);
    let (lambda, alpha) = (0.2, 0.5);
    let kiln = fit_linear(
        LinearRegression::new()
            .reg_param(lambda)
            .elastic_net_param(alpha)
            .tol(1e-12)
            .max_iter(1000),
        &x,
        &y,
        3,
    );
    let (coef, intercept, _) = sklearn(
        "elastic_net",
        &x,
        &y,
        json!({"reg_param": lambda, "elastic_net_param": alpha, "standardize": true}),
    );
    assert_close("linear coefficients", kiln.coefficients(), &coef[0], 1e-4);
    assert_close("linear intercept", &[kiln.intercept()], &intercept, 1e-4);
    // Without standardization the same λ gives a visibly different model.
    let (plain, _, _) = sklearn(
        "elastic_net",
        &x,
        &y,
        json!({"reg_param": lambda, "elastic_net_param": alpha}),
    );
    assert!(kiln
        .coefficients()
        .iter()
        .zip(&plain[0])
        .any(|(a, b)| (a - b).abs() > 1e-2));

    let (x, y) = three_classes(7);
    let lambda = 0.01;
    let kiln = fit_logistic(
        LogisticRegression::new()
            .reg_param(lambda)
            .tol(1e-12)
            .max_iter(1000),
        &x,
        &y,
        3,
    );
    let (coef, intercept, _) = sklearn(
        "logistic",
        &x,
        &y,
        json!({"reg_param": lambda, "standardize": true}),
    );
    let (kc, sc) = (matrix_rows(&kiln), centred(&coef));
    for k in 0..3 {
        assert_close(&format!("logistic class {k}"), &kc[k], &sc[k], 1e-4);
    }
    let si = centred(&intercept.iter().map(|b| vec![*b]).collect::<Vec<_>>());
    assert_close("logistic intercepts", kiln.intercepts(), &si.concat(), 1e-4);
}
