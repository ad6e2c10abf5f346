//! The per-row losses of linear models and their derivatives with respect to the margin,
//! computed over a chunk of rows at a time.
//!
//! For margins `m` (`m = wᵀx + b`, one per class for the multinomial loss):
//!
//! | loss | `ℓ(m, y)` | `∂ℓ/∂m` (the "multiplier") |
//! |---|---|---|
//! | squared error | `½ (m − y)²` | `m − y` |
//! | logistic, `y ∈ {0, 1}` | `log(1 + eᵐ) − y m` | `σ(m) − y` |
//! | multinomial, `y ∈ {0..K−1}` | `log Σₖ e^{mₖ} − m_y` | `softmax(m)ₖ − [y = k]` |
//!
//! The logistic loss is evaluated as `max(m, 0) + log1p(e^{−|m|}) − y m` and the softmax with
//! the largest margin subtracted, so neither overflows. `exp` and `log` here are branch-free
//! polynomial versions (errors of a few ulp, checked against `std` in the tests) so that the
//! loops over a chunk vectorize: the library `exp`/`ln_1p` are calls the compiler cannot
//! vectorize, and per row they would cost more than reading the row from memory.

use serde::{Deserialize, Serialize};

use crate::simd::MulAdd;

/// The loss a linear model minimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Loss {
    /// Least squares, `½ (m − y)²` (linear regression).
    SquaredError,
    /// Binary logistic loss with labels `0`/`1` (binomial logistic regression).
    Logistic,
    /// Softmax cross-entropy over `classes` classes with labels `0..classes`
    /// (multinomial logistic regression).
    Multinomial {
        /// Number of classes `K ≥ 2`.
        classes: usize,
    },
}

impl Loss {
    /// Rows of the coefficient matrix: `K` for the multinomial loss, else `1`.
    pub fn rows(&self) -> usize {
        match self {
            Loss::SquaredError | Loss::Logistic => 1,
            Loss::Multinomial { classes } => *classes,
        }
    }
}

const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// `ln 2` split so that `k · LN2_HI` is exact for `|k| < 2¹¹` (fdlibm's constants).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// `1.5 · 2⁵²`: adding it rounds to an integer held in the low mantissa bits.
const SHIFTER: f64 = 6_755_399_441_055_744.0;
const SQRT2: f64 = std::f64::consts::SQRT_2;

/// `eˣ` for `x ≤ 0` (values below `−708` give `e⁻⁷⁰⁸ ≈ 3·10⁻³⁰⁸` instead of a subnormal or
/// zero, which changes no loss or probability by more than that).
///
/// Cody–Waite reduction `x = k ln 2 + r`, `|r| ≤ ln 2 / 2`, then the Taylor polynomial of
/// degree 13 (truncation below `4·10⁻¹⁸`), scaled by `2ᵏ` built from its bits. The polynomial
/// is evaluated by Estrin's scheme (pairs of terms, then pairs of pairs, with `r²`, `r⁴`, `r⁸`):
/// four dependent multiply-adds instead of Horner's thirteen, so that a vectorized loop over
/// a chunk is not held up by the latency of one long chain.
#[inline(always)]
pub(crate) fn exp_nonpositive<M: MulAdd>(x: f64) -> f64 {
    let x = x.max(-708.0);
    let t = x * LOG2_E + SHIFTER;
    let k = t - SHIFTER;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let (r2, pair) = (r * r, |a: f64, b: f64| M::mul_add(b, r, a));
    let (r4, r8) = (r2 * r2, r2 * r2 * (r2 * r2));
    let p0 = 1.0 + r;
    let p1 = pair(0.5, 1.0 / 6.0);
    let p2 = pair(1.0 / 24.0, 1.0 / 120.0);
    let p3 = pair(1.0 / 720.0, 1.0 / 5_040.0);
    let p4 = pair(1.0 / 40_320.0, 1.0 / 362_880.0);
    let p5 = pair(1.0 / 3_628_800.0, 1.0 / 39_916_800.0);
    let p6 = pair(1.0 / 479_001_600.0, 1.0 / 6_227_020_800.0);
    let q0 = M::mul_add(p1, r2, p0);
    let q1 = M::mul_add(p3, r2, p2);
    let q2 = M::mul_add(p5, r2, p4);
    let o0 = M::mul_add(q1, r4, q0);
    let o1 = M::mul_add(p6, r4, q2);
    let p = M::mul_add(o1, r8, o0);
    // t's bits are SHIFTER's plus k (|k| < 2⁵¹ keeps t in SHIFTER's binade).
    let k_int = t.to_bits().wrapping_sub(SHIFTER.to_bits());
    let scale = f64::from_bits(k_int.wrapping_add(1023) << 52);
    p * scale
}

/// `log(1 + v)` for `v ∈ [√½ − 1, √2 − 1]`: `2 atanh(s)`, `s = v / (2 + v)`, `|s| ≤ 0.1716`,
/// by its series `2s Σ s²ⁱ / (2i + 1)` to `i = 11` (truncation below `10⁻¹⁹`), the sum in
/// `z = s²` evaluated by Estrin's scheme like [`exp_nonpositive`].
#[inline(always)]
fn ln_1p_reduced<M: MulAdd>(v: f64) -> f64 {
    let s = v / (2.0 + v);
    let z = s * s;
    let (z2, pair) = (z * z, |a: f64, b: f64| M::mul_add(b, z, a));
    let (z4, z8) = (z2 * z2, z2 * z2 * (z2 * z2));
    let p0 = pair(1.0 / 3.0, 1.0 / 5.0);
    let p1 = pair(1.0 / 7.0, 1.0 / 9.0);
    let p2 = pair(1.0 / 11.0, 1.0 / 13.0);
    let p3 = pair(1.0 / 15.0, 1.0 / 17.0);
    let p4 = pair(1.0 / 19.0, 1.0 / 21.0);
    let q0 = M::mul_add(p1, z2, p0);
    let q1 = M::mul_add(p3, z2, p2);
    let q2 = M::mul_add(1.0 / 23.0, z2, p4);
    let o0 = M::mul_add(q1, z4, q0);
    let p = M::mul_add(q2, z8, o0);
    // 2s(1 + s²p) = 2s + 2s³p keeps the leading term exact.
    2.0 * s + 2.0 * s * z * p
}

/// `log(1 + t)` for `t ∈ [0, 1]`, accurate for tiny `t` (no `1 + t` rounding).
#[inline(always)]
pub(crate) fn ln_1p_unit<M: MulAdd>(t: f64) -> f64 {
    // Above √2 − 1, log(1 + t) = ln 2 + log(1 + (t − 1)/2) brings the argument back in range.
    let big = t > SQRT2 - 1.0;
    let v = if big { (t - 1.0) * 0.5 } else { t };
    let hi = if big { LN2_HI } else { 0.0 };
    let lo = if big { LN2_LO } else { 0.0 };
    hi + (ln_1p_reduced::<M>(v) + lo)
}

/// `ln u` for a normal `u > 0`: `u = 2ᵉ f`, `f ∈ [√½, √2)`, `ln u = e ln 2 + log(1 + (f − 1))`.
#[inline(always)]
pub(crate) fn ln_positive<M: MulAdd>(u: f64) -> f64 {
    let bits = u.to_bits();
    // Biased exponent as f64 without an integer-to-float conversion: 2⁵² + e_biased.
    let e_biased = f64::from_bits((bits >> 52) | 0x4330_0000_0000_0000) - 4_503_599_627_370_496.0;
    let f = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = f > SQRT2;
    let f = if big { f * 0.5 } else { f };
    let e = e_biased - 1023.0 + if big { 1.0 } else { 0.0 };
    e * LN2_HI + (ln_1p_reduced::<M>(f - 1.0) + e * LN2_LO)
}

/// Squared error over a chunk: `loss[i] = ½ (m − y)²`, `margins[i] ← m − y`.
#[inline(always)]
pub(crate) fn squared_error(margins: &mut [f64], y: &[f64], loss: &mut [f64]) {
    for ((m, yi), l) in margins.iter_mut().zip(y).zip(loss.iter_mut()) {
        let r = *m - yi;
        *l = 0.5 * r * r;
        *m = r;
    }
}

/// Logistic loss over a chunk: `loss[i] = log(1 + eᵐ) − y m`, `margins[i] ← σ(m) − y`.
#[inline(always)]
pub(crate) fn logistic<M: MulAdd>(margins: &mut [f64], y: &[f64], loss: &mut [f64]) {
    for ((m, yi), l) in margins.iter_mut().zip(y).zip(loss.iter_mut()) {
        let v = *m;
        let e = exp_nonpositive::<M>(-v.abs());
        *l = v.max(0.0) + ln_1p_unit::<M>(e) - yi * v;
        // σ(v) = 1 / (1 + e) for v ≥ 0, e / (1 + e) for v < 0.
        let num = if v >= 0.0 { 1.0 } else { e };
        *m = num / (1.0 + e) - yi;
    }
}

/// Scratch buffers of the multinomial loss, one value per row of a chunk.
pub(crate) struct SoftmaxScratch {
    pub(crate) max: Vec<f64>,
    pub(crate) sum: Vec<f64>,
}

/// Multinomial loss over a chunk of `len` rows whose margins for class `k` are
/// `margins[k·stride .. k·stride + len]`: `loss[i] = log Σₖ e^{mₖ} − m_y`, margins become
/// `softmax(m)ₖ − [y = k]`. Labels are class indices (validated before training).
#[inline(always)]
pub(crate) fn multinomial<M: MulAdd>(
    margins: &mut [f64],
    stride: usize,
    classes: usize,
    y: &[f64],
    loss: &mut [f64],
    scratch: &mut SoftmaxScratch,
) {
    let len = y.len();
    let (max, sum) = (&mut scratch.max[..len], &mut scratch.sum[..len]);
    max.copy_from_slice(&margins[..len]);
    for k in 1..classes {
        for (mx, m) in max.iter_mut().zip(&margins[k * stride..k * stride + len]) {
            *mx = mx.max(*m);
        }
    }
    loss[..len].fill(0.0);
    sum.fill(0.0);
    for k in 0..classes {
        let kf = k as f64;
        let mk = &mut margins[k * stride..k * stride + len];
        for ((((m, yi), l), mx), s) in mk
            .iter_mut()
            .zip(y)
            .zip(loss.iter_mut())
            .zip(max.iter())
            .zip(sum.iter_mut())
        {
            *l -= if *yi == kf { *m } else { 0.0 };
            let e = exp_nonpositive::<M>(*m - mx);
            *m = e;
            *s += e;
        }
    }
    for ((l, mx), s) in loss.iter_mut().zip(max.iter_mut()).zip(sum.iter()) {
        *l += *mx + ln_positive::<M>(*s);
        // `max` now holds 1 / Σ e.
        *mx = 1.0 / s;
    }
    for k in 0..classes {
        let kf = k as f64;
        let mk = &mut margins[k * stride..k * stride + len];
        for ((m, yi), inv) in mk.iter_mut().zip(y).zip(max.iter()) {
            *m = *m * inv - if *yi == kf { 1.0 } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{Fused, Unfused};

    fn rel(a: f64, b: f64) -> f64 {
        if a == b {
            0.0
        } else {
            (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
        }
    }

    #[test]
    fn exp_matches_std_to_a_few_ulp() {
        exp_matches_std::<Unfused>();
        exp_matches_std::<Fused>();
    }

    fn exp_matches_std<M: MulAdd>() {
        let exp_nonpositive = exp_nonpositive::<M>;
        let mut worst: f64 = 0.0;
        for i in 0..=200_000 {
            let x = -708.0 * (i as f64 / 200_000.0).powi(3);
            worst = worst.max(rel(exp_nonpositive(x), x.exp()));
        }
        assert!(worst < 1e-15, "worst relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1e6) < 1e-300);
    }

    #[test]
    fn ln_1p_matches_std_including_tiny_arguments() {
        ln_1p_matches_std::<Unfused>();
        ln_1p_matches_std::<Fused>();
    }

    fn ln_1p_matches_std<M: MulAdd>() {
        let ln_1p_unit = ln_1p_unit::<M>;
        let mut worst: f64 = 0.0;
        for i in 0..=100_000 {
            let t = i as f64 / 100_000.0;
            worst = worst.max(rel(ln_1p_unit(t), t.ln_1p()));
        }
        for e in 1..300 {
            let t = 10f64.powi(-e);
            worst = worst.max(rel(ln_1p_unit(t), t.ln_1p()));
        }
        assert!(worst < 1e-15, "worst relative error {worst:e}");
    }

    #[test]
    fn ln_matches_std() {
        ln_matches::<Unfused>();
        ln_matches::<Fused>();
    }

    fn ln_matches<M: MulAdd>() {
        let ln_positive = ln_positive::<M>;
        let mut worst: f64 = 0.0;
        for i in 0..=100_000 {
            let u = 1.0 + 999.0 * i as f64 / 100_000.0;
            worst = worst.max(rel(ln_positive(u), u.ln()));
        }
        for u in [1e-300, 1e-5, 0.3, 0.7, 1.5, 2.0, 1e10, 1e300] {
            let a = ln_positive(u);
            assert!(rel(a, u.ln()) < 1e-15, "{u}: {a}");
        }
        assert!(worst < 1e-15, "worst relative error {worst:e}");
    }

    #[test]
    fn chunk_losses_match_the_textbook_formulas() {
        let m = [-800.0, -30.0, -2.5, -1e-9, 0.0, 1e-9, 0.7, 4.0, 40.0, 800.0];
        let y = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let mut margins = m.to_vec();
        let mut loss = vec![0.0; m.len()];
        logistic::<Unfused>(&mut margins, &y, &mut loss);
        for i in 0..m.len() {
            let v = m[i];
            let want = if v > 0.0 {
                v + (-v).exp().ln_1p()
            } else {
                v.exp().ln_1p()
            } - y[i] * v;
            let p = 1.0 / (1.0 + (-v).exp());
            assert!((loss[i] - want).abs() <= 1e-15 * want.abs().max(1.0), "{v}");
            assert!((margins[i] - (p - y[i])).abs() < 1e-15, "{v}");
        }
        let mut margins = vec![1.0, 3.0];
        let mut loss = vec![0.0; 2];
        squared_error(&mut margins, &[2.0, 0.0], &mut loss);
        assert_eq!((margins, loss), (vec![-1.0, 3.0], vec![0.5, 4.5]));
    }

    #[test]
    fn multinomial_chunk_matches_a_plain_softmax() {
        // 3 classes, 4 rows, stride 5 (a chunk shorter than the buffer).
        let rows = [
            [0.5, -1.0, 2.0],
            [700.0, -700.0, 0.0],
            [0.0, 0.0, 0.0],
            [-3.0, 1.0, 1.5],
        ];
        let y = [2.0, 1.0, 0.0, 1.0];
        let stride = 5;
        let mut margins = vec![0.0; 3 * stride];
        for (i, r) in rows.iter().enumerate() {
            for k in 0..3 {
                margins[k * stride + i] = r[k];
            }
        }
        let mut loss = vec![0.0; 4];
        let mut scratch = SoftmaxScratch {
            max: vec![0.0; stride],
            sum: vec![0.0; stride],
        };
        multinomial::<Unfused>(&mut margins, stride, 3, &y, &mut loss, &mut scratch);
        for (i, r) in rows.iter().enumerate() {
            let mx = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = r.iter().map(|m| (m - mx).exp()).sum();
            let want = mx + z.ln() - r[y[i] as usize];
            assert!(
                (loss[i] - want).abs() <= 1e-14 * want.abs().max(1.0),
                "row {i}"
            );
            for k in 0..3 {
                let p = (r[k] - mx).exp() / z - if y[i] as usize == k { 1.0 } else { 0.0 };
                assert!(
                    (margins[k * stride + i] - p).abs() < 1e-15,
                    "row {i} class {k}"
                );
            }
        }
    }
}
