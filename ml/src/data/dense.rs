//! A dense column-major matrix and the fixed row blocks kernels iterate over.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Rows per block. Kernels compute one partial per block and fold the partials in block order,
/// so the result depends only on the data, never on how many threads ran the blocks.
pub const BLOCK_ROWS: usize = 4096;

/// The row ranges of the blocks of a partition with `rows` rows, in order.
pub fn block_ranges(rows: usize) -> impl Iterator<Item = Range<usize>> + Clone {
    (0..rows.div_ceil(BLOCK_ROWS)).map(move |b| b * BLOCK_ROWS..((b + 1) * BLOCK_ROWS).min(rows))
}

/// A value type a cached partition can hold: `f64` (default) or `f32`. Kernels accumulate in
/// `f64` whatever the storage type.
pub trait Element: Copy + Send + Sync + Default + PartialOrd + std::fmt::Debug + 'static {
    /// The value as `f64`.
    fn to_f64(self) -> f64;
    /// `v` rounded to this type.
    fn from_f64(v: f64) -> Self;
    /// Bytes per value.
    const BYTES: usize;
    /// The values as `f64`s without a copy, when they are `f64`s.
    fn as_f64(values: &[Self]) -> Option<&[f64]> {
        let _ = values;
        None
    }
}

impl Element for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn as_f64(values: &[Self]) -> Option<&[f64]> {
        Some(values)
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    const BYTES: usize = 8;
}

impl Element for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    const BYTES: usize = 4;
}

/// A `rows × cols` matrix stored column by column: column `j` is
/// `data[j * rows .. (j + 1) * rows]`.
///
/// Column-major keeps each feature contiguous, so per-block loops over one column vectorize.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseMatrix<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T: Element> DenseMatrix<T> {
    /// A matrix over `data` in column-major order.
    ///
    /// # Errors
    /// If `data.len() != rows * cols` (returned as the offending length).
    pub fn from_column_major(rows: usize, cols: usize, data: Vec<T>) -> Result<Self, usize> {
        if data.len() != rows * cols {
            return Err(data.len());
        }
        Ok(Self { rows, cols, data })
    }

    /// A matrix from rows given one after another (row-major), e.g. centres or test fixtures.
    ///
    /// # Errors
    /// If `data.len() != rows * cols` (returned as the offending length).
    pub fn from_row_major(rows: usize, cols: usize, data: &[T]) -> Result<Self, usize> {
        if data.len() != rows * cols {
            return Err(data.len());
        }
        let mut out = vec![T::default(); rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                out[j * rows + i] = data[i * cols + j];
            }
        }
        Ok(Self {
            rows,
            cols,
            data: out,
        })
    }

    /// An all-zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![T::default(); rows * cols],
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Column `j`, all rows.
    ///
    /// # Panics
    /// If `j >= cols` (a caller bug).
    #[inline]
    pub fn col(&self, j: usize) -> &[T] {
        &self.data[j * self.rows..(j + 1) * self.rows]
    }

    /// Value at row `i`, column `j`.
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> T {
        self.data[j * self.rows + i]
    }

    /// Row `i` copied out as `f64` (for sampling points, not for hot loops).
    pub fn row_f64(&self, i: usize) -> Vec<f64> {
        (0..self.cols).map(|j| self.get(i, j).to_f64()).collect()
    }

    /// The values in column-major order.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// Bytes held by the values.
    pub fn size_bytes(&self) -> usize {
        self.data.len() * T::BYTES
    }
}
