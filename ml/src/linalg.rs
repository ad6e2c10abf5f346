//! Dense vector helpers with a fixed summation order.
//!
//! Sums run in [`LANES`] independent accumulators over consecutive elements, folded in a fixed
//! tree at the end. The order depends only on the length of the input, never on threads, so a
//! kernel built on these helpers is reproducible bit for bit; the independent lanes are also
//! what lets the compiler keep them in SIMD registers (a single running sum cannot be
//! vectorized without reassociating floating-point additions).

use crate::data::Element;

/// Independent accumulators per sum.
pub(crate) const LANES: usize = 8;

/// Folds [`LANES`] partial sums in the fixed tree every helper here uses.
#[inline(always)]
pub(crate) fn fold(acc: &[f64; LANES]) -> f64 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `Σ a_i · x_i` over the common length, `x` widened to `f64`.
#[inline(always)]
pub(crate) fn dot<T: Element>(a: &[f64], x: &[T]) -> f64 {
    let n = a.len().min(x.len());
    let (a, x) = (&a[..n], &x[..n]);
    let (ca, cx) = (a.chunks_exact(LANES), x.chunks_exact(LANES));
    let (ra, rx) = (ca.remainder(), cx.remainder());
    let mut acc = [0.0; LANES];
    for (pa, px) in ca.zip(cx) {
        for ((s, p), q) in acc.iter_mut().zip(pa).zip(px) {
            *s += p * q.to_f64();
        }
    }
    let mut tail = 0.0;
    for (p, q) in ra.iter().zip(rx) {
        tail += p * q.to_f64();
    }
    fold(&acc) + tail
}

/// `Σ a_i`.
#[inline(always)]
pub(crate) fn sum(a: &[f64]) -> f64 {
    let ca = a.chunks_exact(LANES);
    let ra = ca.remainder();
    let mut acc = [0.0; LANES];
    for pa in ca {
        for (s, p) in acc.iter_mut().zip(pa) {
            *s += p;
        }
    }
    fold(&acc) + ra.iter().sum::<f64>()
}

/// `y += alpha · x` over the common length.
#[inline]
pub(crate) fn axpy<T: Element>(y: &mut [f64], alpha: f64, x: &[T]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi.to_f64();
    }
}

/// Euclidean norm.
pub(crate) fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `‖a − b‖²`, summed left to right (driver-side work on a few points: centres, samples).
pub(crate) fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let t = x - y;
            t * t
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_and_sum_match_a_plain_loop_for_every_length() {
        for n in 0..40 {
            let a: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(p, q)| p * f64::from(*q)).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-12, "n = {n}");
            assert!((sum(&a) - a.iter().sum::<f64>()).abs() < 1e-12, "n = {n}");
        }
    }

    #[test]
    fn axpy_adds_a_multiple() {
        let mut y = vec![1.0, 2.0, 3.0];
        axpy(&mut y, 2.0, &[1.0f64, 0.5, -1.0]);
        assert_eq!(y, vec![3.0, 3.0, 1.0]);
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
    }
}
