//! One cached partition of training data, built from Arrow batches, and its byte form in the
//! object store.

use arrow::array::{Array, ArrayRef, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::dense::{DenseMatrix, Element};
use super::state::StateSlot;
use crate::error::{MlError, Result};

/// Storage precision of cached features. Kernels accumulate in `f64` either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// 8 bytes per value (default).
    #[default]
    F64,
    /// 4 bytes per value: half the memory and bandwidth, about 7 significant digits.
    F32,
}

/// The feature matrix of a partition in its storage precision.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// `f64` values.
    F64(DenseMatrix<f64>),
    /// `f32` values.
    F32(DenseMatrix<f32>),
}

/// Runs `$body` with `$m` bound to the partition's feature matrix, whatever its precision.
#[macro_export]
macro_rules! with_features {
    ($features:expr, $m:ident => $body:expr) => {
        match $features {
            $crate::data::Features::F64($m) => $body,
            $crate::data::Features::F32($m) => $body,
        }
    };
}

impl Features {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        with_features!(self, m => m.rows())
    }

    /// Number of feature columns.
    pub fn cols(&self) -> usize {
        with_features!(self, m => m.cols())
    }

    /// Row `i` as `f64`.
    pub fn row_f64(&self, i: usize) -> Vec<f64> {
        with_features!(self, m => m.row_f64(i))
    }

    /// Bytes held by the values.
    pub fn size_bytes(&self) -> usize {
        with_features!(self, m => m.size_bytes())
    }
}

/// A partition of training rows, materialized once and reused by every iteration.
///
/// `index` is the partition's position in the dataset: randomness is seeded by
/// (seed, index, iteration) and partials are merged along a tree over the indices, so results never depend on
/// which executor or thread holds the partition.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedPartition {
    index: u32,
    features: Features,
    label: Option<Vec<f64>>,
    /// The running fit's state for this partition (not part of the value).
    state: StateSlot,
}

const MAGIC: &[u8; 4] = b"KLNP";
const FORMAT_VERSION: u32 = 1;
const HEADER: usize = 4 + 4 + 4 + 1 + 1 + 8 + 8;

impl CachedPartition {
    /// A partition over an existing matrix and optional label.
    ///
    /// # Errors
    /// If the label's length differs from the number of rows.
    pub fn new(index: u32, features: Features, label: Option<Vec<f64>>) -> Result<Self> {
        if let Some(l) = &label {
            if l.len() != features.rows() {
                return Err(MlError::Internal(format!(
                    "label has {} values for {} rows",
                    l.len(),
                    features.rows()
                )));
            }
        }
        Ok(Self {
            index,
            features,
            label,
            state: StateSlot::default(),
        })
    }

    /// Builds partition `index` from Arrow batches: the `features` columns (numeric, any
    /// integer, float or decimal type) become a dense column-major matrix, `label` a vector.
    ///
    /// # Errors
    /// [`MlError::InvalidColumn`] naming the column when it is missing, not numeric, or holds a
    /// null (use an imputer), NaN or an infinite value.
    pub fn from_batches(
        index: u32,
        batches: &[RecordBatch],
        features: &[String],
        label: Option<&str>,
        precision: Precision,
    ) -> Result<Self> {
        if features.is_empty() {
            return Err(MlError::param(
                "features",
                "at least one feature column is needed",
            ));
        }
        // Types first, so a text column is named as such even when a numeric column before it
        // holds a null.
        if let Some(batch) = batches.first() {
            for name in features.iter().map(String::as_str).chain(label) {
                check_type(batch, name)?;
            }
        }
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let x = match precision {
            Precision::F64 => Features::F64(dense_from_batches::<f64>(batches, features, rows)?),
            Precision::F32 => Features::F32(dense_from_batches::<f32>(batches, features, rows)?),
        };
        let label = match label {
            Some(name) => {
                let mut values = Vec::with_capacity(rows);
                let mut offset = 0;
                for batch in batches {
                    let col = numeric_column(batch, name, offset)?;
                    values.extend_from_slice(col.values());
                    offset += batch.num_rows();
                }
                Some(values)
            }
            None => None,
        };
        Self::new(index, x, label)
    }

    /// The partition's index in its dataset.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.features.rows()
    }

    /// Number of feature columns.
    pub fn cols(&self) -> usize {
        self.features.cols()
    }

    /// The feature matrix.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The label, if the partition was built with one.
    pub fn label(&self) -> Option<&[f64]> {
        self.label.as_deref()
    }

    /// The label, or an error naming the algorithm that needs one.
    ///
    /// # Errors
    /// [`MlError::InvalidData`] when the partition has no label.
    pub fn require_label(&self, algorithm: &str) -> Result<&[f64]> {
        self.label()
            .ok_or_else(|| MlError::InvalidData(format!("{algorithm} needs a label column")))
    }

    /// Bytes held in memory by features and label.
    pub fn size_bytes(&self) -> usize {
        self.features.size_bytes() + self.label.as_ref().map_or(0, |l| l.len() * 8)
    }

    /// Where the running fit keeps its state for this partition between kernel rounds (k-means:
    /// distance bounds, 2.5 bytes a row; see [`crate::cluster::kmeans::BoundsSlot`]). Not part
    /// of the partition's value: clones start empty.
    pub fn state(&self) -> &StateSlot {
        &self.state
    }

    /// The partition as bytes for the object store: a small header, the values little-endian
    /// in column-major order, then the label.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (rows, cols) = (self.rows(), self.cols());
        let mut out = Vec::with_capacity(HEADER + self.size_bytes());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.index.to_le_bytes());
        out.push(match self.features {
            Features::F64(_) => 8,
            Features::F32(_) => 4,
        });
        out.push(u8::from(self.label.is_some()));
        out.extend_from_slice(&(rows as u64).to_le_bytes());
        out.extend_from_slice(&(cols as u64).to_le_bytes());
        match &self.features {
            Features::F64(m) => m
                .as_slice()
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Features::F32(m) => m
                .as_slice()
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        }
        if let Some(label) = &self.label {
            label
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        out
    }

    /// Reads a partition written by [`CachedPartition::to_bytes`].
    ///
    /// # Errors
    /// [`MlError::Codec`] when the bytes are truncated, of another format version, or not a
    /// cached partition.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| MlError::Codec {
            what: "cached partition",
            reason,
        };
        if bytes.len() < HEADER || &bytes[0..4] != MAGIC {
            return Err(bad("not a Kiln cached partition".into()));
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let version = u32_at(4);
        if version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {version}, this build reads {FORMAT_VERSION}"
            )));
        }
        let index = u32_at(8);
        let width = bytes[12] as usize;
        let has_label = bytes[13] == 1;
        let rows = usize::try_from(u64_at(14)).map_err(|e| bad(e.to_string()))?;
        let cols = usize::try_from(u64_at(22)).map_err(|e| bad(e.to_string()))?;
        let values = rows
            .checked_mul(cols)
            .ok_or_else(|| bad("size overflows".into()))?;
        let expected = HEADER + values * width + if has_label { rows * 8 } else { 0 };
        if (width != 8 && width != 4) || bytes.len() != expected {
            return Err(bad(format!(
                "{} bytes where the header announces {expected}",
                bytes.len()
            )));
        }
        let body = &bytes[HEADER..HEADER + values * width];
        let features = if width == 8 {
            let data = body
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            Features::F64(
                DenseMatrix::from_column_major(rows, cols, data)
                    .map_err(|n| bad(format!("{n} values")))?,
            )
        } else {
            let data = body
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Features::F32(
                DenseMatrix::from_column_major(rows, cols, data)
                    .map_err(|n| bad(format!("{n} values")))?,
            )
        };
        let label = has_label.then(|| {
            bytes[HEADER + values * width..]
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect()
        });
        Self::new(index, features, label)
    }
}

/// Copies the `features` columns of `batches` into a column-major matrix, a column at a time.
fn dense_from_batches<T: Element>(
    batches: &[RecordBatch],
    features: &[String],
    rows: usize,
) -> Result<DenseMatrix<T>> {
    let mut data: Vec<T> = Vec::with_capacity(rows * features.len());
    for name in features {
        let mut offset = 0;
        for batch in batches {
            let col = numeric_column(batch, name, offset)?;
            data.extend(col.values().iter().map(|v| T::from_f64(*v)));
            offset += batch.num_rows();
        }
    }
    DenseMatrix::from_column_major(rows, features.len(), data)
        .map_err(|n| MlError::Internal(format!("{n} values for {rows} x {}", features.len())))
}

/// Checks that column `name` exists in `batch` and is numeric; returns its index.
fn check_type(batch: &RecordBatch, name: &str) -> Result<usize> {
    let schema = batch.schema();
    let Ok(index) = schema.index_of(name) else {
        let available: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(MlError::InvalidColumn {
            column: name.to_string(),
            reason: format!("no such column; available: {}", available.join(", ")),
        });
    };
    let data_type = schema.field(index).data_type();
    if !is_numeric(data_type) {
        return Err(MlError::InvalidColumn {
            column: name.to_string(),
            reason: format!(
                "type {data_type} is not numeric; index strings with StringIndexer or cast the column"
            ),
        });
    }
    Ok(index)
}

/// Column `name` of `batch` as `f64`, checked for nulls, NaN and infinities. `offset` is the
/// batch's first row within the partition, for messages.
fn numeric_column(batch: &RecordBatch, name: &str, offset: usize) -> Result<Float64Array> {
    let array: &ArrayRef = batch.column(check_type(batch, name)?);
    if let Some(row) = first_null(array.as_ref()) {
        return Err(MlError::InvalidColumn {
            column: name.to_string(),
            reason: format!(
                "null at row {} of the partition; fill it with Imputer or filter it out",
                offset + row
            ),
        });
    }
    let cast = cast(array, &DataType::Float64)?;
    let values = cast
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| MlError::Internal(format!("cast of '{name}' to f64 is not f64")))?
        .clone();
    if let Some(row) = values.values().iter().position(|v| !v.is_finite()) {
        return Err(MlError::InvalidColumn {
            column: name.to_string(),
            reason: format!(
                "{} at row {} of the partition; NaN and infinite values cannot be trained on",
                values.value(row),
                offset + row
            ),
        });
    }
    Ok(values)
}

fn first_null(array: &dyn Array) -> Option<usize> {
    if array.null_count() == 0 {
        return None;
    }
    (0..array.len()).find(|i| array.is_null(*i))
}

/// Whether a column of this type can be a feature or a label.
pub(crate) fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_numeric() || matches!(data_type, DataType::Boolean)
}
