//! The two dense loops of the linear models' loss-and-gradient kernel with AVX2 and FMA.
//!
//! Both read a chunk of rows copied column-major into a contiguous buffer (`x[j · stride + i]`
//! is column `j` of row `i`) and sum in the same order as the portable loops in
//! `linear::kernel`; only the rounding differs (one per fused multiply-add instead of two).

use super::Avx2Fma;

impl Avx2Fma {
    /// `out[i] = b + Σⱼ w[j] · x[j · stride + i]`, summed in column order, for every `i` of
    /// `out`.
    ///
    /// # Panics
    /// If `x` holds fewer than `w.len()` columns of `out.len()` rows (a caller bug).
    #[inline]
    pub(crate) fn margins(self, x: &[f64], stride: usize, w: &[f64], b: f64, out: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` exists only if the CPU supports AVX2 and FMA.
        unsafe {
            x86::margins(x, stride, w, b, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (x, stride, w, b, out);
            match self.0 {}
        }
    }

    /// `out[j] += Σᵢ g[i] · x[j · stride + i]` for every column `j` of `out`: each sum in
    /// [`LANES`](crate::linalg::LANES) interleaved partial sums folded like [`crate::linalg::dot`], four columns per
    /// pass over `g` so that enough independent sums are in flight.
    ///
    /// # Panics
    /// If `x` holds fewer than `out.len()` columns of `g.len()` rows (a caller bug).
    #[inline]
    pub(crate) fn gradient(self, x: &[f64], stride: usize, g: &[f64], out: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` exists only if the CPU supports AVX2 and FMA.
        unsafe {
            x86::gradient(x, stride, g, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (x, stride, g, out);
            match self.0 {}
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::linalg::{fold, LANES};
    use crate::simd::x86::{load, store};

    /// Rows whose margins are accumulated together in registers, across all the columns:
    /// eight vectors, enough independent sums to hide the latency of a multiply-add.
    const ROWS: usize = 32;

    /// See [`super::Avx2Fma::margins`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn margins(x: &[f64], stride: usize, w: &[f64], b: f64, out: &mut [f64]) {
        let len = out.len();
        let full = len / ROWS * ROWS;
        // SAFETY: the intrinsics need AVX2 and FMA, which the caller guarantees; every load
        // and store goes through `load`/`store`, whose slice indexing bounds the access.
        unsafe {
            for r in (0..full).step_by(ROWS) {
                let mut acc = [_mm256_set1_pd(b); ROWS / 4];
                for (j, wj) in w.iter().enumerate() {
                    let col = &x[j * stride + r..j * stride + r + ROWS];
                    let wj = _mm256_set1_pd(*wj);
                    for (q, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_pd(wj, load(&col[4 * q..]), *a);
                    }
                }
                for (q, a) in acc.iter().enumerate() {
                    store(&mut out[r + 4 * q..], *a);
                }
            }
        }
        for (i, o) in out.iter_mut().enumerate().skip(full) {
            *o = w
                .iter()
                .enumerate()
                .fold(b, |a, (j, wj)| wj.mul_add(x[j * stride + i], a));
        }
    }

    /// Columns whose sums share one pass over the multipliers.
    const COLS: usize = 4;

    /// See [`super::Avx2Fma::gradient`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gradient(x: &[f64], stride: usize, g: &[f64], out: &mut [f64]) {
        const { assert!(LANES == 8) };
        let len = g.len();
        let full = len / LANES * LANES;
        let groups = out.len() / COLS * COLS;
        // SAFETY: as in `margins`.
        unsafe {
            for j0 in (0..groups).step_by(COLS) {
                let cols: [&[f64]; COLS] = [
                    &x[j0 * stride..][..full],
                    &x[(j0 + 1) * stride..][..full],
                    &x[(j0 + 2) * stride..][..full],
                    &x[(j0 + 3) * stride..][..full],
                ];
                let mut acc = [[_mm256_setzero_pd(); 2]; COLS];
                for (r, gs) in g[..full].chunks_exact(LANES).enumerate() {
                    let g0 = load(gs);
                    let g1 = load(&gs[4..]);
                    for (a, col) in acc.iter_mut().zip(&cols) {
                        let xs = &col[r * LANES..r * LANES + LANES];
                        a[0] = _mm256_fmadd_pd(g0, load(xs), a[0]);
                        a[1] = _mm256_fmadd_pd(g1, load(&xs[4..]), a[1]);
                    }
                }
                for (c, (o, a)) in out[j0..j0 + COLS].iter_mut().zip(&acc).enumerate() {
                    let col = &x[(j0 + c) * stride..][..len];
                    *o += lanes_sum(a, &g[full..], &col[full..]);
                }
            }
            for (c, o) in out.iter_mut().enumerate().skip(groups) {
                let col = &x[c * stride..c * stride + len];
                let mut a = [_mm256_setzero_pd(); 2];
                for r in (0..full).step_by(LANES) {
                    a[0] = _mm256_fmadd_pd(load(&g[r..]), load(&col[r..]), a[0]);
                    a[1] = _mm256_fmadd_pd(load(&g[r + 4..]), load(&col[r + 4..]), a[1]);
                }
                *o += lanes_sum(&a, &g[full..], &col[full..]);
            }
        }
    }

    /// The eight partial sums of `acc` folded like `linalg::dot`, plus `Σ g·x` over the tail.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline(always)]
    unsafe fn lanes_sum(acc: &[__m256d; 2], g: &[f64], x: &[f64]) -> f64 {
        let mut lanes = [0.0; LANES];
        // SAFETY: AVX is the caller's promise; `store` bounds the access.
        unsafe {
            store(&mut lanes[..4], acc[0]);
            store(&mut lanes[4..], acc[1]);
        }
        let tail = g.iter().zip(x).fold(0.0, |t, (p, q)| p.mul_add(*q, t));
        fold(&lanes) + tail
    }
}
