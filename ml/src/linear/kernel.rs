//! The loss-and-gradient kernel of linear models: one streaming pass over a partition.

use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::loss::{self, Loss, SoftmaxScratch};
use super::sample::{RowSampler, Sample};
use crate::data::{block_ranges, CachedPartition, DenseMatrix, Element};
use crate::error::{MlError, Result};
use crate::linalg::{dot, sum};
use crate::simd::{self, code_path, prefetch, Avx2Fma, CodePath, MulAdd, Vectorize};
use crate::with_features;

/// Bytes of a chunk's features as `f64`: the chunk is copied once and read twice (margins,
/// then gradient) from the L1 cache.
const CHUNK_BYTES: usize = 16 * 1024;

/// A computation on the cached partitions of a linear model's training set: the
/// loss-and-gradient kernel, one streaming pass over a partition.
///
/// The optimizer works in a standardized parametrization: with a per-feature `scale` `sⱼ`
/// (`1/σⱼ`, or `0` to drop a constant feature) and `center` `μⱼ`, the margin of class `k` is
///
/// ```text
///  mₖ = Σⱼ βₖⱼ sⱼ (xⱼ − μⱼ) + bₖ  =  Σⱼ wₖⱼ xⱼ + (bₖ − Σⱼ wₖⱼ μⱼ),    wₖⱼ = βₖⱼ sⱼ
/// ```
///
/// so the kernel folds scale and centre into effective raw-space coefficients once and never
/// touches the stored data. With `gₖ = ∂ℓ/∂mₖ` per row, the sums returned are
///
/// ```text
///  Σ ℓ,    ∂/∂βₖⱼ = sⱼ (Σ gₖ xⱼ − μⱼ Σ gₖ),    ∂/∂bₖ = Σ gₖ
/// ```
///
/// Per block of [`BLOCK_ROWS`](crate::data::BLOCK_ROWS) rows (blocks run in parallel, their
/// sums are folded in block order), chunks of rows are copied as `f64` into a 16 KiB buffer
/// that stays in the L1 cache, and go through three loops: the margins (32 rows held in
/// registers across the columns), the loss and multipliers row-wise (polynomial `exp` and
/// `log`, so the loop vectorizes), then the gradient as dot products, four columns per pass
/// over the multipliers. The next chunk is requested from memory a quarter at a time while
/// the current one is computed. Buffers are per block; nothing is allocated per row.
///
/// On the AVX2 path (see [`crate::simd`]) the block is compiled with AVX2 and FMA and the
/// margins and gradient loops use explicit fused multiply-adds; both paths sum in the same
/// order and differ only in rounding. Measured with `examples/kernel_speed.rs` (binary
/// logistic loss, 2 × 1M rows × 16 features, two threads, the 2-core development VM): about
/// 1.6 times a plain sum over the same bytes on the AVX2 path, about 3 times on the portable
/// path (it was 3 times before either existed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LinearKernel {
    /// The summed loss and gradient at the given parameters (see [`LinearKernel`] for the
    /// parametrization).
    LossGradient {
        /// Which loss.
        loss: Loss,
        /// `K × d` coefficients `β`, row-major (class `k`'s at `k·d .. (k+1)·d`); `K` is
        /// [`Loss::rows`].
        coefficients: Vec<f64>,
        /// `K` intercepts `b` (zeros for a model without intercept).
        intercepts: Vec<f64>,
        /// Per-feature multiplier `sⱼ` (`None`: all `1`).
        scale: Option<Vec<f64>>,
        /// Per-feature centre `μⱼ` (`None`: all `0`).
        center: Option<Vec<f64>>,
        /// SGD mini-batch: only the sampled rows count (`None`: all rows).
        sample: Option<Sample>,
    },
}

/// The result of a [`LinearKernel`] on one or more partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LinearPartial {
    /// See [`LinearKernel::LossGradient`].
    LossGradient(LossGradientSums),
}

/// Sums over the rows used (all, or a mini-batch). Always finite: overflowing sums saturate
/// at `±f64::MAX`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossGradientSums {
    /// Rows used.
    pub count: u64,
    /// `Σ ℓ`.
    pub loss_sum: f64,
    /// `Σ ∂ℓ/∂θ`: the `K × d` coefficient part row-major, then the `K` intercepts.
    pub gradient_sum: Vec<f64>,
}

impl LossGradientSums {
    fn zeros(len: usize) -> Self {
        Self {
            count: 0,
            loss_sum: 0.0,
            gradient_sum: vec![0.0; len],
        }
    }

    fn add(&mut self, other: &Self) {
        self.count += other.count;
        self.loss_sum += other.loss_sum;
        for (a, b) in self.gradient_sum.iter_mut().zip(&other.gradient_sum) {
            *a += b;
        }
    }
}

impl LinearPartial {
    /// Adds the sums of two disjoint sets of rows.
    ///
    /// # Errors
    /// [`MlError::Internal`] when the gradients differ in length.
    pub fn merge(self, other: Self) -> Result<Self> {
        match (self, other) {
            (LinearPartial::LossGradient(mut a), LinearPartial::LossGradient(b)) => {
                if a.gradient_sum.len() != b.gradient_sum.len() {
                    return Err(MlError::Internal(format!(
                        "gradients of {} and {} values cannot be merged",
                        a.gradient_sum.len(),
                        b.gradient_sum.len()
                    )));
                }
                a.add(&b);
                Ok(LinearPartial::LossGradient(a))
            }
        }
    }
}

/// The kernel's parameters in raw feature space, shared by all blocks.
struct RawModel<'a> {
    loss: Loss,
    classes: usize,
    d: usize,
    /// `K × d` effective coefficients `w = β s`.
    w: Vec<f64>,
    /// `K` effective intercepts `b − w μ`.
    b: Vec<f64>,
    sampler: Option<RowSampler>,
    y: &'a [f64],
}

impl LinearKernel {
    /// Runs the kernel on one partition.
    ///
    /// # Errors
    /// [`MlError::InvalidData`] when the partition has no label; [`MlError::Internal`] when
    /// the parameters do not fit the partition's number of features.
    pub fn run(&self, partition: &CachedPartition) -> Result<LinearPartial> {
        self.run_on(partition, code_path())
    }

    /// [`LinearKernel::run`] on the given code path.
    pub(crate) fn run_on(
        &self,
        partition: &CachedPartition,
        path: CodePath,
    ) -> Result<LinearPartial> {
        match self {
            LinearKernel::LossGradient {
                loss,
                coefficients,
                intercepts,
                scale,
                center,
                sample,
            } => {
                let y = partition.require_label("a linear model")?;
                let d = partition.cols();
                let classes = loss.rows();
                let wrong = |what: &str, got: usize, want: usize| {
                    MlError::Internal(format!(
                        "{got} {what} where a model of {classes} x {d} coefficients needs {want}"
                    ))
                };
                if coefficients.len() != classes * d {
                    return Err(wrong("coefficients", coefficients.len(), classes * d));
                }
                if intercepts.len() != classes {
                    return Err(wrong("intercepts", intercepts.len(), classes));
                }
                for (what, v) in [("scales", scale), ("centres", center)] {
                    if let Some(v) = v {
                        if v.len() != d {
                            return Err(wrong(what, v.len(), d));
                        }
                    }
                }
                let mut w = coefficients.clone();
                if let Some(s) = scale {
                    for row in w.chunks_mut(d.max(1)) {
                        row.iter_mut().zip(s).for_each(|(wj, sj)| *wj *= sj);
                    }
                }
                let mut b = intercepts.clone();
                if let Some(c) = center {
                    for (bk, row) in b.iter_mut().zip(w.chunks(d.max(1))) {
                        *bk -= row.iter().zip(c).map(|(wj, cj)| wj * cj).sum::<f64>();
                    }
                }
                let model = RawModel {
                    loss: *loss,
                    classes,
                    d,
                    w,
                    b,
                    sampler: sample
                        .as_ref()
                        .map(|s| RowSampler::new(s, partition.index())),
                    y,
                };
                let mut sums = with_features!(partition.features(), m => raw_sums(m, &model, path));
                // Back to the optimizer's parametrization: ∂/∂βₖⱼ = sⱼ (Gₖⱼ − μⱼ Gₖ).
                let (coef, icpt) = sums.gradient_sum.split_at_mut(classes * d);
                if let Some(c) = center {
                    for (row, gk) in coef.chunks_mut(d.max(1)).zip(icpt.iter()) {
                        row.iter_mut().zip(c).for_each(|(g, cj)| *g -= cj * gk);
                    }
                }
                if let Some(s) = scale {
                    for row in coef.chunks_mut(d.max(1)) {
                        row.iter_mut().zip(s).for_each(|(g, sj)| *g *= sj);
                    }
                }
                // A diverging model can overflow; JSON (the wire format) has no infinities,
                // so saturate and let the optimizer report the divergence.
                sums.loss_sum = saturate(sums.loss_sum);
                sums.gradient_sum.iter_mut().for_each(|g| *g = saturate(*g));
                Ok(LinearPartial::LossGradient(sums))
            }
        }
    }
}

/// `v`, or `±f64::MAX` for an infinity and `f64::MAX` for NaN.
fn saturate(v: f64) -> f64 {
    if v.is_nan() {
        f64::MAX
    } else {
        v.clamp(f64::MIN, f64::MAX)
    }
}

/// Raw-space sums of one partition: blocks in parallel, folded in block order.
fn raw_sums<T: Element>(
    x: &DenseMatrix<T>,
    model: &RawModel<'_>,
    path: CodePath,
) -> LossGradientSums {
    let len = model.classes * (model.d + 1);
    let blocks: Vec<Range<usize>> = block_ranges(x.rows()).collect();
    let parts: Vec<LossGradientSums> = blocks
        .into_par_iter()
        .map(|rows| simd::run(path, BlockSums { x, model, rows }))
        .collect();
    let mut total = LossGradientSums::zeros(len);
    for p in &parts {
        total.add(p);
    }
    total
}

/// Rows per chunk: about [`CHUNK_BYTES`] of features as `f64`, a multiple of 8 in
/// `[16, 4096]`.
fn chunk_rows(d: usize) -> usize {
    let rows = CHUNK_BYTES / (d.max(1) * 8);
    (rows.clamp(16, 4096) / 8) * 8
}

/// The sums of one block, compiled once per code path.
struct BlockSums<'a, T> {
    x: &'a DenseMatrix<T>,
    model: &'a RawModel<'a>,
    rows: Range<usize>,
}

impl<T: Element> Vectorize for BlockSums<'_, T> {
    type Output = LossGradientSums;

    #[inline(always)]
    fn run<M: MulAdd>(self, avx2: Option<Avx2Fma>) -> LossGradientSums {
        block_sums::<T, M>(self.x, self.model, self.rows, avx2)
    }
}

/// The sums of one block. `avx2`: run the margins and gradient loops with AVX2 and FMA.
#[inline(always)]
fn block_sums<T: Element, M: MulAdd>(
    x: &DenseMatrix<T>,
    model: &RawModel<'_>,
    rows: Range<usize>,
    avx2: Option<Avx2Fma>,
) -> LossGradientSums {
    let (k_count, d) = (model.classes, model.d);
    let cols: Vec<&[T]> = (0..d).map(|j| &x.col(j)[rows.clone()]).collect();
    let n = rows.len();
    let chunk = chunk_rows(d).min(n.max(1));
    let mut out = LossGradientSums::zeros(k_count * (d + 1));
    // The chunk's features, column-major: column j is buf[j * chunk .. j * chunk + len].
    let mut buf = vec![0.0; d * chunk];
    let mut margins = vec![0.0; k_count * chunk];
    let mut losses = vec![0.0; chunk];
    let mut weights = model.sampler.map(|_| vec![0.0; chunk]);
    let mut scratch = match model.loss {
        Loss::Multinomial { .. } => Some(SoftmaxScratch {
            max: vec![0.0; chunk],
            sum: vec![0.0; chunk],
        }),
        _ => None,
    };
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let len = end - start;
        // Copied once: the column slices of a partition whose row count is a multiple of 512
        // lie a multiple of 4 KiB apart, compete for the same cache sets, and would not stay
        // cached between the margins and the gradient.
        let next = end..(end + chunk).min(n);
        prefetch_part(&cols, next.clone(), 0);
        for (b, col) in buf.chunks_exact_mut(chunk).zip(&cols) {
            for (o, v) in b.iter_mut().zip(&col[start..end]) {
                *o = v.to_f64();
            }
        }
        // Margins.
        for k in 0..k_count {
            let (w, b) = (&model.w[k * d..(k + 1) * d], model.b[k]);
            let m = &mut margins[k * chunk..k * chunk + len];
            match avx2 {
                Some(token) => token.margins(&buf, chunk, w, b, m),
                None => margins_of(&buf, chunk, w, b, m),
            }
        }
        prefetch_part(&cols, next.clone(), 1);
        // Loss and multipliers, row-wise.
        let y = &model.y[rows.start + start..rows.start + end];
        let loss_buf = &mut losses[..len];
        match model.loss {
            Loss::SquaredError => loss::squared_error(&mut margins[..len], y, loss_buf),
            Loss::Logistic => loss::logistic::<M>(&mut margins[..len], y, loss_buf),
            Loss::Multinomial { classes } => {
                if let Some(s) = scratch.as_mut() {
                    loss::multinomial::<M>(&mut margins, chunk, classes, y, loss_buf, s);
                }
            }
        }
        let loss_buf = &mut losses[..len];
        match (&mut weights, &model.sampler) {
            (Some(wt), Some(sampler)) => {
                let wt = &mut wt[..len];
                for (i, v) in wt.iter_mut().enumerate() {
                    *v = sampler.weight((rows.start + start + i) as u64);
                }
                loss_buf
                    .iter_mut()
                    .zip(wt.iter())
                    .for_each(|(l, v)| *l *= v);
                for k in 0..k_count {
                    margins[k * chunk..k * chunk + len]
                        .iter_mut()
                        .zip(wt.iter())
                        .for_each(|(m, v)| *m *= v);
                }
                out.count += sum(wt) as u64;
            }
            _ => out.count += len as u64,
        }
        out.loss_sum += sum(loss_buf);
        prefetch_part(&cols, next.clone(), 2);
        // Gradient.
        for k in 0..k_count {
            let g = &margins[k * chunk..k * chunk + len];
            out.gradient_sum[k_count * d + k] += sum(g);
            let o = &mut out.gradient_sum[k * d..(k + 1) * d];
            match avx2 {
                Some(token) => token.gradient(&buf, chunk, g, o),
                None => {
                    for (o, col) in o.iter_mut().zip(buf.chunks_exact(chunk)) {
                        *o += dot(g, &col[..len]);
                    }
                }
            }
        }
        prefetch_part(&cols, next, 3);
        start = end;
    }
    out
}

/// Asks for quarter `part` (of 4) of the lines of `rows` of every column. Sixteen or so
/// column streams, each visited once per chunk, are more than the hardware prefetchers keep
/// ahead of, so the next chunk is requested while this one is computed; a quarter at a time
/// between its phases, because all at once the requests would exceed the cache misses a core
/// can have in flight and stall it until the first ones return.
#[inline(always)]
fn prefetch_part<T: Element>(cols: &[&[T]], rows: Range<usize>, part: usize) {
    let quarter = rows.len().div_ceil(4);
    let start = rows.start + part * quarter;
    let end = (start + quarter).min(rows.end);
    for col in cols {
        for i in (start..end).step_by(64 / T::BYTES) {
            prefetch(&col[i]);
        }
    }
}

/// Rows whose margins are accumulated together in registers, across all the columns.
const MARGIN_ROWS: usize = 16;

/// `out[i] = b + Σⱼ w[j] · x[j · stride + i]`, summed in column order (the portable loop;
/// see [`Avx2Fma::margins`]).
#[inline(always)]
fn margins_of(x: &[f64], stride: usize, w: &[f64], b: f64, out: &mut [f64]) {
    let len = out.len();
    let full = len / MARGIN_ROWS * MARGIN_ROWS;
    for (g, o) in out[..full].chunks_exact_mut(MARGIN_ROWS).enumerate() {
        let at = g * MARGIN_ROWS;
        let mut acc = [b; MARGIN_ROWS];
        for (col, &wj) in x.chunks_exact(stride).zip(w) {
            for (a, v) in acc.iter_mut().zip(&col[at..at + MARGIN_ROWS]) {
                *a += wj * v;
            }
        }
        o.copy_from_slice(&acc);
    }
    for (i, o) in out.iter_mut().enumerate().skip(full) {
        *o = x
            .chunks_exact(stride)
            .zip(w)
            .fold(b, |a, (col, &wj)| a + wj * col[i]);
    }
}
