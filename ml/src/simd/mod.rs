//! Run-time CPU dispatch for the hot kernels, and the only `unsafe` code of `kiln-ml`.
//!
//! The crate compiles for the target's baseline (SSE2 on x86-64), which leaves half of a
//! modern core's floating-point width unused. The k-means and loss-and-gradient kernels
//! therefore pick a code path once per process:
//!
//! ```text
//!  code_path() ──▶ CodePath::Avx2Fma   x86-64 CPU with AVX2 and FMA, KILN_SIMD not "off"
//!              └─▶ CodePath::Portable  anything else (the code the crate compiles to)
//! ```
//!
//! The choice is made on first use and never changes, so a process, and hence a machine,
//! always computes with the same instructions and results stay reproducible bit for bit.
//! Set the environment variable `KILN_SIMD=off` to force the portable path (to compare or
//! to rule the vector code out).
//!
//! The AVX2 path is reached through `Avx2Fma`, a token that can only be made after the CPU
//! was found to support AVX2 and FMA: holding one is the proof the `unsafe` calls below rely
//! on, and the kernels' code outside this module stays safe. Kernels use it two ways: whole
//! loops written once, generic over how they multiply and add (`Vectorize`), compiled a
//! second time with AVX2 enabled; and, where the compiler's vectors are not enough, explicit
//! intrinsics (`kmeans`, `linear`).
//!
//! On the 2-core development VM (AMD EPYC) the AVX2 path runs the k-means assignment about
//! 2.5 times and the logistic loss-and-gradient about 2 times as fast as the portable path
//! (`examples/kernel_speed.rs`).

#![allow(unsafe_code)]

pub(crate) mod kmeans;
pub(crate) mod linear;

/// Unaligned AVX loads and stores shared by the kernels' intrinsics.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{__m256d, _mm256_loadu_pd, _mm256_storeu_pd};

    /// Four values from the start of `s`.
    ///
    /// # Safety
    /// The CPU must support AVX. Memory is safe: the slice index checks the length.
    #[inline(always)]
    pub(super) unsafe fn load(s: &[f64]) -> __m256d {
        let s = &s[..4];
        // SAFETY: `s` holds four values; AVX is the caller's promise.
        unsafe { _mm256_loadu_pd(s.as_ptr()) }
    }

    /// Writes four values to the start of `s`.
    ///
    /// # Safety
    /// The CPU must support AVX. Memory is safe: the slice index checks the length.
    #[inline(always)]
    pub(super) unsafe fn store(s: &mut [f64], v: __m256d) {
        let s = &mut s[..4];
        // SAFETY: `s` holds four values; AVX is the caller's promise.
        unsafe { _mm256_storeu_pd(s.as_mut_ptr(), v) }
    }
}

use std::sync::OnceLock;

/// The instructions the hot kernels of this process run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodePath {
    /// The code the crate is compiled to (SSE2 on baseline x86-64); on every CPU.
    Portable,
    /// 256-bit AVX2 vectors with fused multiply-add, on x86-64 CPUs that have both.
    Avx2Fma,
}

impl CodePath {
    /// A short name for logs and benchmarks: `portable` or `avx2+fma`.
    pub fn name(self) -> &'static str {
        match self {
            CodePath::Portable => "portable",
            CodePath::Avx2Fma => "avx2+fma",
        }
    }
}

static CODE_PATH: OnceLock<CodePath> = OnceLock::new();

/// Four values on a 32-byte boundary: one AVX2 vector, loaded or stored without straddling
/// two cache lines.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(C, align(32))]
pub(crate) struct Quad(pub(crate) [f64; 4]);

impl Quad {
    /// The values of `quads` as one slice of `4 · quads.len()` values.
    pub(crate) fn flatten_mut(quads: &mut [Quad]) -> &mut [f64] {
        let len = quads.len() * 4;
        // SAFETY: a `Quad` is `repr(C)` over `[f64; 4]`: 32 bytes, no padding, so the quads
        // are `len` consecutive, initialized `f64`s, borrowed mutably for the same lifetime.
        unsafe { std::slice::from_raw_parts_mut(quads.as_mut_ptr().cast::<f64>(), len) }
    }
}

/// The code path of this process: [`CodePath::Avx2Fma`] when the CPU supports AVX2 and FMA and
/// the environment variable `KILN_SIMD` is not `off`, else [`CodePath::Portable`].
///
/// Decided on the first call (the environment is read then) and fixed for the life of the
/// process.
pub fn code_path() -> CodePath {
    *CODE_PATH.get_or_init(|| {
        let off = std::env::var_os("KILN_SIMD").is_some_and(|v| v.eq_ignore_ascii_case("off"));
        if !off && Avx2Fma::detect().is_some() {
            CodePath::Avx2Fma
        } else {
            CodePath::Portable
        }
    })
}

/// Proof that the CPU running this process supports AVX2 and FMA; only [`Avx2Fma::detect`]
/// makes one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2Fma(Detected);

#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
struct Detected;

/// No token exists off x86-64.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Debug, Clone, Copy)]
enum Detected {}

impl Avx2Fma {
    /// A token when the CPU supports AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn detect() -> Option<Self> {
        (std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
            .then_some(Self(Detected))
    }

    /// A token when the CPU supports AVX2 and FMA: never off x86-64.
    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) fn detect() -> Option<Self> {
        None
    }

    /// The token for `path`: `None` for the portable path (or if the CPU lacks the features).
    pub(crate) fn for_path(path: CodePath) -> Option<Self> {
        match path {
            CodePath::Portable => None,
            CodePath::Avx2Fma => Self::detect(),
        }
    }

    /// Runs `body` compiled with AVX2 and FMA enabled: everything it inlines (mark its helpers
    /// `#[inline(always)]`) may use 256-bit vectors and fused multiply-add.
    #[inline]
    pub(crate) fn vectorize<B: Vectorize>(self, body: B) -> B::Output {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn with_avx2<B: Vectorize>(body: B, token: Avx2Fma) -> B::Output {
                body.run::<Fused>(Some(token))
            }
            // SAFETY: `self` exists only if the CPU supports AVX2 and FMA (see `detect`).
            unsafe { with_avx2(body, self) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = body;
            match self.0 {}
        }
    }
}

/// A loop body to compile once per code path: [`Vectorize::run`] is generic over how it
/// multiplies and adds, and must be `#[inline(always)]` so that it is compiled inside the
/// caller's target features.
pub(crate) trait Vectorize {
    /// What the body returns.
    type Output;

    /// The body, with `M` deciding whether `a · b + c` rounds once (FMA) or twice, and
    /// `avx2` the token when it runs on the AVX2 path (for explicit vector code).
    fn run<M: MulAdd>(self, avx2: Option<Avx2Fma>) -> Self::Output;
}

/// How a body computes `a · b + c`.
pub(crate) trait MulAdd {
    /// `a · b + c`.
    fn mul_add(a: f64, b: f64, c: f64) -> f64;
}

/// `a · b + c` with two roundings: what the portable path computes (a library `fma` call
/// would be slow without the instruction).
pub(crate) struct Unfused;

impl MulAdd for Unfused {
    #[inline(always)]
    fn mul_add(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
}

/// `a · b + c` with one rounding: a single instruction with FMA.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct Fused;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
}

/// Runs `body` on `path`: compiled with AVX2 and FMA when `path` is [`CodePath::Avx2Fma`] (and
/// the CPU has them), else as portable code.
#[inline]
pub(crate) fn run<B: Vectorize>(path: CodePath, body: B) -> B::Output {
    match Avx2Fma::for_path(path) {
        Some(token) => token.vectorize(body),
        None => body.run::<Unfused>(None),
    }
}

/// Asks the CPU to start loading the cache line holding `value` into the L1 cache: for loops
/// that read many columns a few rows at a time, which the hardware prefetchers follow poorly.
/// Only a hint: no effect on results, none at all off x86-64.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    prefetch_at(std::slice::from_ref(value), 0);
}

/// [`prefetch`] for `slice[index]` without a bounds check: a prefetch never faults, so an
/// index past the end only wastes the request (the address is computed with wrapping
/// arithmetic and never dereferenced). For loops that know all their columns are long enough
/// and would otherwise check each request.
#[inline(always)]
pub(crate) fn prefetch_at<T>(slice: &[T], index: usize) {
    prefetch_ptr(slice.as_ptr().wrapping_add(index));
}

/// [`prefetch`] for whatever address `ptr` holds: it is never dereferenced.
#[inline(always)]
pub(crate) fn prefetch_ptr<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of x86-64; a prefetch reads no memory the program can observe
        // and never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_path_is_decided_once() {
        let first = code_path();
        assert_eq!(code_path(), first);
        if first == CodePath::Avx2Fma {
            assert!(Avx2Fma::detect().is_some());
        }
        assert!(Avx2Fma::for_path(CodePath::Portable).is_none());
        assert_eq!(CodePath::Avx2Fma.name(), "avx2+fma");
    }

    struct Axpy<'a>(&'a mut [f64], f64, &'a [f64]);

    impl Vectorize for Axpy<'_> {
        type Output = ();
        #[inline(always)]
        fn run<M: MulAdd>(self, _: Option<Avx2Fma>) {
            for (y, x) in self.0.iter_mut().zip(self.2) {
                *y = M::mul_add(self.1, *x, *y);
            }
        }
    }

    #[test]
    fn both_paths_run_a_body() {
        for path in [CodePath::Portable, CodePath::Avx2Fma] {
            let mut y = vec![1.0; 37];
            let x: Vec<f64> = (0..37).map(f64::from).collect();
            run(path, Axpy(&mut y, 2.0, &x));
            assert!(y
                .iter()
                .enumerate()
                .all(|(i, v)| *v == 1.0 + 2.0 * i as f64));
        }
    }
}
