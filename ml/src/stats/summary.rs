//! The summary of a set of rows and its block-wise computation.

use std::collections::HashMap;
use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{block_ranges, CachedPartition, DenseMatrix, Element};
use crate::error::{MlError, Result};
use crate::linalg;
use crate::with_features;

/// Most distinct label values tracked; beyond that only
/// [`LabelStats::distinct_values`]` == None` records that there were more.
pub const MAX_DISTINCT_LABELS: usize = 1000;

/// Count, mean and sum of squared deviations of one column over a set of rows.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    /// Exact two-pass moments of one block (the block is in cache for the second pass).
    fn of<T: Element>(values: &[T], scratch: &mut Vec<f64>) -> Self {
        scratch.clear();
        scratch.extend(values.iter().map(|v| v.to_f64()));
        let n = scratch.len();
        if n == 0 {
            return Self {
                n: 0,
                mean: 0.0,
                m2: 0.0,
            };
        }
        let mean = linalg::sum(scratch) / n as f64;
        scratch.iter_mut().for_each(|v| *v -= mean);
        let m2 = linalg::dot(scratch, scratch);
        Self {
            n: n as u64,
            mean,
            m2,
        }
    }

    /// Chan et al.'s parallel update.
    fn merge(self, b: Self) -> Self {
        if b.n == 0 {
            return self;
        }
        if self.n == 0 {
            return b;
        }
        let n = self.n + b.n;
        let (na, nb, nf) = (self.n as f64, b.n as f64, n as f64);
        let delta = b.mean - self.mean;
        Self {
            n,
            mean: self.mean + delta * nb / nf,
            m2: self.m2 + b.m2 + delta * delta * na * nb / nf,
        }
    }
}

fn variance(n: u64, m2: f64, ddof: u64) -> f64 {
    if n <= ddof {
        0.0
    } else {
        m2 / (n - ddof) as f64
    }
}

/// Where a label value sits: partition index, row within the partition, and the value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelLocation {
    /// Partition index.
    pub partition: u32,
    /// Row within the partition.
    pub row: u64,
    /// The label value.
    pub value: f64,
}

/// Statistics of the label column.
///
/// Invariant: when `count == 0`, `min` and `max` hold `0.0` and mean no value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelStats {
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    /// Distinct values ascending with their counts; `None` beyond [`MAX_DISTINCT_LABELS`].
    values: Option<Vec<(f64, u64)>>,
    /// The first value (by partition, then row) that is not a non-negative integer.
    first_invalid_class_index: Option<LabelLocation>,
}

impl LabelStats {
    /// Number of labelled rows.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Mean label.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// `Σ y`.
    pub fn sum(&self) -> f64 {
        self.mean * self.count as f64
    }

    /// `Σ y²`, from the mean and `M2` (`M2 + n·ȳ²`).
    pub fn sum_of_squares(&self) -> f64 {
        self.m2 + self.count as f64 * self.mean * self.mean
    }

    /// Variance with `ddof` delta degrees of freedom (`1` for the sample variance); `0` when
    /// there are at most `ddof` rows.
    pub fn variance(&self, ddof: u64) -> f64 {
        variance(self.count, self.m2, ddof)
    }

    /// Sample standard deviation (`ddof = 1`, as Spark).
    pub fn std(&self) -> f64 {
        self.variance(1).sqrt()
    }

    /// Smallest label (`0.0` when there are no rows).
    pub fn min(&self) -> f64 {
        self.min
    }

    /// Largest label (`0.0` when there are no rows).
    pub fn max(&self) -> f64 {
        self.max
    }

    /// The distinct label values in ascending order with their counts, or `None` when there
    /// are more than [`MAX_DISTINCT_LABELS`] of them.
    pub fn distinct_values(&self) -> Option<&[(f64, u64)]> {
        self.values.as_deref()
    }

    /// The first label (lowest partition, then row) that is not a class index, i.e. not a
    /// non-negative integer.
    pub fn first_invalid_class_index(&self) -> Option<&LabelLocation> {
        self.first_invalid_class_index.as_ref()
    }

    fn of_block(y: &[f64], partition: u32, first_row: usize, scratch: &mut Vec<f64>) -> Self {
        let m = Moments::of(y, scratch);
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut counts: HashMap<u64, u64> = HashMap::new();
        let mut tracking = true;
        let mut last: Option<(u64, u64)> = None;
        for &v in y {
            min = min.min(v);
            max = max.max(v);
            if tracking {
                // `+ 0.0` turns -0.0 into 0.0 so that both count as one value.
                let key = (v + 0.0).to_bits();
                // Runs of one value are common (sorted or class-grouped data).
                match &mut last {
                    Some((k, c)) if *k == key => *c += 1,
                    _ => {
                        if let Some((k, c)) = last.take() {
                            *counts.entry(k).or_insert(0) += c;
                        }
                        last = Some((key, 1));
                        if counts.len() >= MAX_DISTINCT_LABELS && !counts.contains_key(&key) {
                            tracking = false;
                        }
                    }
                }
            }
        }
        let values = if tracking {
            if let Some((k, c)) = last {
                *counts.entry(k).or_insert(0) += c;
            }
            let mut values: Vec<(f64, u64)> = counts
                .into_iter()
                .map(|(k, c)| (f64::from_bits(k), c))
                .collect();
            values.sort_by(|a, b| a.0.total_cmp(&b.0));
            Some(values)
        } else {
            None
        };
        let first_invalid_class_index =
            y.iter()
                .position(|v| !is_class_index(*v))
                .map(|i| LabelLocation {
                    partition,
                    row: (first_row + i) as u64,
                    value: y[i],
                });
        let empty = y.is_empty();
        Self {
            count: m.n,
            mean: m.mean,
            m2: m.m2,
            min: if empty { 0.0 } else { min },
            max: if empty { 0.0 } else { max },
            values,
            first_invalid_class_index,
        }
    }

    fn merge(self, b: Self) -> Self {
        let m = Moments {
            n: self.count,
            mean: self.mean,
            m2: self.m2,
        }
        .merge(Moments {
            n: b.count,
            mean: b.mean,
            m2: b.m2,
        });
        let (min, max) = match (self.count, b.count) {
            (0, _) => (b.min, b.max),
            (_, 0) => (self.min, self.max),
            _ => (self.min.min(b.min), self.max.max(b.max)),
        };
        let values = match (self.values, b.values) {
            (Some(x), Some(y)) => merge_counts(x, y),
            _ => None,
        };
        let first_invalid_class_index =
            match (self.first_invalid_class_index, b.first_invalid_class_index) {
                (Some(x), Some(y)) => Some(if (y.partition, y.row) < (x.partition, x.row) {
                    y
                } else {
                    x
                }),
                (x, y) => x.or(y),
            };
        Self {
            count: m.n,
            mean: m.mean,
            m2: m.m2,
            min,
            max,
            values,
            first_invalid_class_index,
        }
    }
}

/// Whether `v` can be a class index: a non-negative integer.
fn is_class_index(v: f64) -> bool {
    v >= 0.0 && v.fract() == 0.0
}

/// Merges two ascending value/count lists; `None` past [`MAX_DISTINCT_LABELS`] values.
fn merge_counts(a: Vec<(f64, u64)>, b: Vec<(f64, u64)>) -> Option<Vec<(f64, u64)>> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut ia, mut ib) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (ia.peek(), ib.peek()) {
            (Some(x), Some(y)) => match x.0.total_cmp(&y.0) {
                std::cmp::Ordering::Less => ia.next(),
                std::cmp::Ordering::Greater => ib.next(),
                std::cmp::Ordering::Equal => {
                    let (v, c) = *x;
                    let c2 = y.1;
                    ia.next();
                    ib.next();
                    Some((v, c + c2))
                }
            },
            (Some(_), None) => ia.next(),
            (None, Some(_)) => ib.next(),
            (None, None) => None,
        };
        match next {
            Some(item) => out.push(item),
            None => break,
        }
        if out.len() > MAX_DISTINCT_LABELS {
            return None;
        }
    }
    Some(out)
}

/// Column statistics of a set of rows: per feature count (shared: features have no nulls),
/// mean, sum of squared deviations `M2`, min, max and number of non-zeros, and optionally
/// [`LabelStats`].
///
/// Invariant: all per-feature vectors have one entry per feature; when `count == 0`, min and
/// max hold `0.0` and mean no value (so that the summary serializes as finite JSON numbers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    count: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
    nonzeros: Vec<u64>,
    label: Option<LabelStats>,
}

impl Summary {
    /// Number of rows.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Number of feature columns.
    pub fn num_features(&self) -> usize {
        self.mean.len()
    }

    /// Mean of each feature.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Variance of each feature with `ddof` delta degrees of freedom: `M2 / (n − ddof)`
    /// (`ddof = 1`: sample variance, Spark's `variance`; `0`: population variance, numpy's
    /// default). `0` when there are at most `ddof` rows.
    pub fn variance(&self, ddof: u64) -> Vec<f64> {
        self.m2
            .iter()
            .map(|m2| variance(self.count, *m2, ddof))
            .collect()
    }

    /// Sample standard deviation of each feature (`ddof = 1`), what Spark standardizes by.
    pub fn std(&self) -> Vec<f64> {
        self.variance(1).into_iter().map(f64::sqrt).collect()
    }

    /// Smallest value of each feature.
    pub fn min(&self) -> &[f64] {
        &self.min
    }

    /// Largest value of each feature.
    pub fn max(&self) -> &[f64] {
        &self.max
    }

    /// Number of non-zero values of each feature.
    pub fn num_nonzeros(&self) -> &[u64] {
        &self.nonzeros
    }

    /// Label statistics, when the kernel was asked for them.
    pub fn label(&self) -> Option<&LabelStats> {
        self.label.as_ref()
    }

    /// The summary of one partition: blocks in parallel, folded in block order.
    pub(crate) fn of_partition(partition: &CachedPartition, label: Option<&[f64]>) -> Self {
        with_features!(partition.features(), m => Self::of_matrix(m, label, partition.index()))
    }

    fn of_matrix<T: Element>(m: &DenseMatrix<T>, label: Option<&[f64]>, index: u32) -> Self {
        let blocks: Vec<Range<usize>> = block_ranges(m.rows()).collect();
        let parts: Vec<Summary> = blocks
            .into_par_iter()
            .map(|rows| Self::of_block(m, label, index, rows))
            .collect();
        let empty = Self::empty(m.cols(), label.is_some(), index);
        parts
            .into_iter()
            .fold(empty, |acc, b| acc.merge_same_shape(b))
    }

    fn empty(cols: usize, label: bool, index: u32) -> Self {
        Self {
            count: 0,
            mean: vec![0.0; cols],
            m2: vec![0.0; cols],
            min: vec![0.0; cols],
            max: vec![0.0; cols],
            nonzeros: vec![0; cols],
            label: label.then(|| LabelStats::of_block(&[], index, 0, &mut Vec::new())),
        }
    }

    fn of_block<T: Element>(
        m: &DenseMatrix<T>,
        label: Option<&[f64]>,
        index: u32,
        rows: Range<usize>,
    ) -> Self {
        let cols = m.cols();
        let mut out = Self::empty(cols, false, index);
        let mut scratch = Vec::with_capacity(rows.len());
        for j in 0..cols {
            let values = &m.col(j)[rows.clone()];
            let mo = Moments::of(values, &mut scratch);
            out.mean[j] = mo.mean;
            out.m2[j] = mo.m2;
            if !values.is_empty() {
                let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
                for v in values {
                    let v = v.to_f64();
                    min = min.min(v);
                    max = max.max(v);
                }
                out.min[j] = min;
                out.max[j] = max;
            }
            let nnz = values.iter().filter(|v| v.to_f64() != 0.0).count() as u64;
            out.nonzeros[j] = nnz;
        }
        out.count = rows.len() as u64;
        out.label =
            label.map(|y| LabelStats::of_block(&y[rows.clone()], index, rows.start, &mut scratch));
        out
    }

    /// Merges, trusting that both sides have the same columns and label-ness.
    fn merge_same_shape(mut self, b: Self) -> Self {
        if b.count == 0 && b.label.as_ref().is_none_or(|l| l.count == 0) {
            return self;
        }
        for j in 0..self.mean.len() {
            let m = Moments {
                n: self.count,
                mean: self.mean[j],
                m2: self.m2[j],
            }
            .merge(Moments {
                n: b.count,
                mean: b.mean[j],
                m2: b.m2[j],
            });
            self.mean[j] = m.mean;
            self.m2[j] = m.m2;
            if self.count == 0 {
                self.min[j] = b.min[j];
                self.max[j] = b.max[j];
            } else if b.count > 0 {
                self.min[j] = self.min[j].min(b.min[j]);
                self.max[j] = self.max[j].max(b.max[j]);
            }
            self.nonzeros[j] += b.nonzeros[j];
        }
        self.count += b.count;
        self.label = match (self.label, b.label) {
            (Some(x), Some(y)) => Some(x.merge(y)),
            (x, None) => x,
            (None, y) => y,
        };
        self
    }

    /// Combines the summaries of two disjoint sets of rows. Associative.
    ///
    /// # Errors
    /// [`MlError::Internal`] when the two describe different numbers of columns, or only one
    /// has label statistics.
    pub fn merge(self, b: Self) -> Result<Self> {
        if self.mean.len() != b.mean.len() || self.label.is_some() != b.label.is_some() {
            return Err(MlError::Internal(format!(
                "cannot merge summaries of {} and {} features (label: {} and {})",
                self.mean.len(),
                b.mean.len(),
                self.label.is_some(),
                b.label.is_some()
            )));
        }
        Ok(self.merge_same_shape(b))
    }
}
