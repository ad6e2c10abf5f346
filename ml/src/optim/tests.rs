#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::error::MlError;

/// f(x) = ½ xᵀAx − bᵀx with A = [[4, 1, 0], [1, 3, 0.5], [0, 0.5, 2]].
fn quadratic(x: &[f64]) -> (f64, Vec<f64>) {
    let a = [[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]];
    let b = [1.0, -2.0, 3.0];
    let ax: Vec<f64> = a
        .iter()
        .map(|row| row.iter().zip(x).map(|(p, q)| p * q).sum())
        .collect();
    let f = 0.5 * ax.iter().zip(x).map(|(p, q)| p * q).sum::<f64>()
        - b.iter().zip(x).map(|(p, q)| p * q).sum::<f64>();
    let g = ax.iter().zip(&b).map(|(p, q)| p - q).collect();
    (f, g)
}

/// The solution of A x = b for `quadratic`, by Cramer's rule.
fn quadratic_minimizer() -> Vec<f64> {
    let det3 = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let a = [[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]];
    let b = [1.0, -2.0, 3.0];
    let d = det3(a);
    (0..3)
        .map(|j| {
            let mut m = a;
            for i in 0..3 {
                m[i][j] = b[i];
            }
            det3(m) / d
        })
        .collect()
}

fn rosenbrock(x: &[f64]) -> (f64, Vec<f64>) {
    let (a, b) = (x[0], x[1]);
    let f = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
    let g = vec![
        -2.0 * (1.0 - a) - 400.0 * a * (b - a * a),
        200.0 * (b - a * a),
    ];
    (f, g)
}

#[test]
fn lbfgs_solves_a_quadratic() {
    let s = minimize_local(Lbfgs::new().tol(1e-14), vec![0.0; 3], quadratic).unwrap();
    for (x, want) in s.x.iter().zip(quadratic_minimizer()) {
        assert!((x - want).abs() < 1e-7, "{:?}", s.x);
    }
    assert_eq!(s.objective_history.len(), s.iterations + 1);
    assert!(
        s.objective_history
            .windows(2)
            .all(|w| w[1] <= w[0] + 1e-12 * w[0].abs()),
        "{:?}",
        s.objective_history
    );
}

#[test]
fn lbfgs_solves_rosenbrock() {
    let s = minimize_local(
        Lbfgs::new().max_iter(500).tol(1e-15),
        vec![-1.2, 1.0],
        rosenbrock,
    )
    .unwrap();
    assert!(
        (s.x[0] - 1.0).abs() < 1e-5 && (s.x[1] - 1.0).abs() < 1e-5,
        "{s:?}"
    );
    assert!(s.iterations > 10, "Rosenbrock takes a few dozen iterations");
}

#[test]
fn lbfgs_stops_at_max_iter() {
    let s = minimize_local(
        Lbfgs::new().max_iter(3).tol(0.0),
        vec![-1.2, 1.0],
        rosenbrock,
    )
    .unwrap();
    assert_eq!(s.iterations, 3);
    assert_eq!(s.stop, StopReason::MaxIter);
}

#[test]
fn owlqn_gives_exact_zeros_of_a_separable_lasso() {
    // F = ½ ‖x − a‖² + c ‖x‖₁  ⇒  x = sign(a) max(|a| − c, 0) per coordinate.
    let a = [3.0, -0.5, 0.2, -2.0, 0.0];
    let c = 1.0;
    let s = minimize_local(
        OwlQn::new(vec![c; a.len()]).tol(1e-14),
        vec![0.0; a.len()],
        |x| {
            let f = 0.5 * x.iter().zip(&a).map(|(p, q)| (p - q).powi(2)).sum::<f64>();
            (f, x.iter().zip(&a).map(|(p, q)| p - q).collect())
        },
    )
    .unwrap();
    let want = [2.0, 0.0, 0.0, -1.0, 0.0];
    for (x, w) in s.x.iter().zip(want) {
        if w == 0.0 {
            assert_eq!(*x, 0.0, "{:?}", s.x);
        } else {
            assert!((x - w).abs() < 1e-9, "{:?}", s.x);
        }
    }
}

#[test]
fn owlqn_meets_the_lasso_optimality_conditions_on_a_coupled_quadratic() {
    // KKT: ∂ⱼf = −c sign(xⱼ) where xⱼ ≠ 0, |∂ⱼf| ≤ c where xⱼ = 0. The last variable is
    // unpenalized (c = 0), like an intercept.
    let l1 = vec![2.0, 2.0, 0.0];
    let s = minimize_local(
        OwlQn::new(l1.clone()).max_iter(500).tol(1e-15),
        vec![0.0; 3],
        quadratic,
    )
    .unwrap();
    let (_, g) = quadratic(&s.x);
    let mut zeros = 0;
    for ((x, gj), c) in s.x.iter().zip(&g).zip(&l1) {
        if *x == 0.0 {
            zeros += 1;
            assert!(gj.abs() <= c + 1e-9, "x = {:?}, g = {g:?}", s.x);
        } else {
            assert!(
                (gj + c * x.signum()).abs() < 1e-7,
                "x = {:?}, g = {g:?}",
                s.x
            );
        }
    }
    // Coordinate descent on the same problem gives x = (0, −6/23, 36/23).
    assert_eq!(
        zeros, 1,
        "x = {:?}: the first variable is exactly zero",
        s.x
    );
    assert_eq!(s.x[0], 0.0);
    assert!(
        (s.x[1] + 6.0 / 23.0).abs() < 1e-8 && (s.x[2] - 36.0 / 23.0).abs() < 1e-8,
        "{:?}",
        s.x
    );
}

#[test]
fn owlqn_without_l1_agrees_with_lbfgs() {
    let a = minimize_local(
        OwlQn::new(vec![0.0; 2]).max_iter(500).tol(1e-15),
        vec![-1.2, 1.0],
        rosenbrock,
    )
    .unwrap();
    assert!(
        (a.x[0] - 1.0).abs() < 1e-5 && (a.x[1] - 1.0).abs() < 1e-5,
        "{a:?}"
    );
}

#[test]
fn sgd_descends_on_a_quadratic_and_soft_thresholds() {
    let s = minimize_local(
        Sgd::new(0.2, StepSchedule::Constant)
            .max_iter(2000)
            .tol(1e-12),
        vec![0.0; 3],
        quadratic,
    )
    .unwrap();
    for (x, want) in s.x.iter().zip(quadratic_minimizer()) {
        assert!((x - want).abs() < 1e-8, "{:?}", s.x);
    }
    assert_eq!(s.stop, StopReason::Converged);
    // Separable lasso: the proximal step lands on exact zeros.
    let a = [3.0, -0.5];
    let s = minimize_local(
        Sgd::new(0.5, StepSchedule::Constant)
            .l1(vec![1.0, 1.0])
            .max_iter(200)
            .tol(1e-14),
        vec![0.0; 2],
        |x| {
            let f = 0.5 * x.iter().zip(&a).map(|(p, q)| (p - q).powi(2)).sum::<f64>();
            (f, x.iter().zip(&a).map(|(p, q)| p - q).collect())
        },
    )
    .unwrap();
    assert!((s.x[0] - 2.0).abs() < 1e-9 && s.x[1] == 0.0, "{:?}", s.x);
}

#[test]
fn diverging_sgd_is_an_error_naming_step_size() {
    let err = minimize_local(
        Sgd::new(2.0, StepSchedule::Constant).max_iter(1000),
        vec![0.0; 3],
        quadratic,
    )
    .unwrap_err();
    match &err {
        MlError::InvalidParameter { name, reason } => {
            assert_eq!(name, "step_size");
            assert!(reason.contains("diverged"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn telling_out_of_turn_is_an_internal_error() {
    let mut m = Lbfgs::new();
    assert!(matches!(m.tell(1.0, vec![0.0]), Err(MlError::Internal(_))));
    m.start(vec![1.0, 2.0]).unwrap();
    assert!(matches!(m.tell(1.0, vec![0.0]), Err(MlError::Internal(_))));
    let mut o = OwlQn::new(vec![1.0]);
    assert!(matches!(o.start(vec![1.0, 2.0]), Err(MlError::Internal(_))));
}

#[test]
fn a_zero_gradient_at_the_start_stops_at_once() {
    let s = minimize_local(Lbfgs::new(), vec![1.0], |x| {
        ((x[0] - 1.0).powi(2), vec![2.0 * (x[0] - 1.0)])
    })
    .unwrap();
    assert_eq!((s.iterations, s.stop), (0, StopReason::GradientZero));
}

#[test]
fn tol_zero_refines_below_rounding_and_stops_when_nothing_improves() {
    // The function test would stop near √ε; with tol = 0 the gradient guides the last steps.
    let s = minimize_local(
        Lbfgs::new().tol(0.0).max_iter(10_000),
        vec![0.0; 3],
        quadratic,
    )
    .unwrap();
    assert_ne!(s.stop, StopReason::MaxIter);
    assert!(s.iterations < 200, "{}", s.iterations);
    for (x, want) in s.x.iter().zip(quadratic_minimizer()) {
        assert!((x - want).abs() < 1e-12, "{:?}", s.x);
    }
    let s = minimize_local(
        OwlQn::new(vec![2.0, 2.0, 0.0]).tol(0.0).max_iter(10_000),
        vec![0.0; 3],
        quadratic,
    )
    .unwrap();
    assert_ne!(s.stop, StopReason::MaxIter);
    assert!(
        (s.x[1] + 6.0 / 23.0).abs() < 1e-12 && s.x[0] == 0.0,
        "{:?}",
        s.x
    );
}
