//! Prediction on Arrow arrays: the feature columns are copied once into a dense column-major
//! block and the model's own vectorized `predict` runs on it; only the null bits are set row
//! by row.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, FixedSizeListArray, Float64Array, UInt32Array};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field};

use super::{Model, ModelKind};
use crate::data::{is_numeric, DenseMatrix, Features};
use crate::error::{MlError, Result};

/// The feature columns as one matrix, and which rows have every feature (not null, not NaN).
struct Block {
    features: Features,
    valid: Option<NullBuffer>,
}

impl Model {
    /// The Arrow type of [`predict_arrays`](Self::predict_arrays)' result: `UInt32` (cluster
    /// index) for k-means, `Float64` for linear regression (the prediction) and logistic
    /// regression (the class index, Spark's `prediction`).
    pub fn output_type(&self) -> DataType {
        match self.kind() {
            ModelKind::KMeans(_) => DataType::UInt32,
            ModelKind::LinearRegression(_) | ModelKind::LogisticRegression(_) => DataType::Float64,
        }
    }

    /// The Arrow type of [`predict_proba_arrays`](Self::predict_proba_arrays)' result:
    /// `FixedSizeList<Float64>` of one probability per class for logistic regression, `None`
    /// for models without class probabilities.
    pub fn probability_type(&self) -> Option<DataType> {
        match self.kind() {
            ModelKind::LogisticRegression(m) => probability_type(m.num_classes()).ok(),
            ModelKind::KMeans(_) | ModelKind::LinearRegression(_) => None,
        }
    }

    /// Predicts every row of `columns`, the feature columns in
    /// [`feature_names`](Self::feature_names) order, of any numeric Arrow type (integers,
    /// floats, decimals, booleans; cast to `f64`). The result is of
    /// [`output_type`](Self::output_type); a row with a null or NaN feature gets a null.
    ///
    /// # Errors
    /// [`MlError::InvalidInput`] when the number of columns differs from
    /// [`num_features`](Self::num_features) or the columns differ in length;
    /// [`MlError::InvalidColumn`] naming the feature, its position and its type when a column
    /// is not numeric.
    pub fn predict_arrays(&self, columns: &[ArrayRef]) -> Result<ArrayRef> {
        let Block { features, valid } = self.block(columns)?;
        Ok(match self.kind() {
            ModelKind::KMeans(m) => Arc::new(UInt32Array::new(m.predict(&features)?.into(), valid)),
            ModelKind::LinearRegression(m) => {
                Arc::new(Float64Array::new(m.predict(&features)?.into(), valid))
            }
            ModelKind::LogisticRegression(m) => {
                Arc::new(Float64Array::new(m.predict(&features)?.into(), valid))
            }
        })
    }

    /// A logistic model's class probabilities for every row of `columns` (as in
    /// [`predict_arrays`](Self::predict_arrays)): a `FixedSizeList<Float64>` of `K` values
    /// per row, value `k` being `P(y = k | x)` (Spark's `probability`); a row with a null or
    /// NaN feature gets a null list.
    ///
    /// # Errors
    /// [`MlError::InvalidInput`] for a model without class probabilities, and the errors of
    /// [`predict_arrays`](Self::predict_arrays).
    pub fn predict_proba_arrays(&self, columns: &[ArrayRef]) -> Result<ArrayRef> {
        let ModelKind::LogisticRegression(m) = self.kind() else {
            return Err(MlError::InvalidInput(format!(
                "a {} model gives no class probabilities; logistic_regression models do",
                self.algorithm()
            )));
        };
        let Block { features, valid } = self.block(columns)?;
        let p = m.predict_proba(&features)?;
        let (n, k) = (p.rows(), p.cols());
        // Column-major (one column per class) to one list of K values per row.
        let mut values = vec![0.0; n * k];
        for c in 0..k {
            for (i, v) in p.col(c).iter().enumerate() {
                values[i * k + c] = *v;
            }
        }
        let DataType::FixedSizeList(field, size) = probability_type(k)? else {
            return Err(MlError::Internal("probability type is not a list".into()));
        };
        let values: ArrayRef = Arc::new(Float64Array::from(values));
        Ok(Arc::new(FixedSizeListArray::try_new(
            field, size, values, valid,
        )?))
    }

    /// Checks `columns` against the model's features and copies them into a dense `f64`
    /// block.
    fn block(&self, columns: &[ArrayRef]) -> Result<Block> {
        let names = self.feature_names();
        let d = names.len();
        if columns.len() != d {
            return Err(MlError::InvalidInput(format!(
                "the {} model takes {d} feature columns ({}), got {}",
                self.algorithm(),
                names.join(", "),
                columns.len()
            )));
        }
        let rows = columns.first().map_or(0, |c| c.len());
        let mut data = Vec::with_capacity(rows * d);
        let mut valid: Option<NullBuffer> = None;
        for (j, (column, name)) in columns.iter().zip(names).enumerate() {
            let data_type = column.data_type();
            if !is_numeric(data_type) {
                return Err(MlError::InvalidColumn {
                    column: name.clone(),
                    reason: format!(
                        "feature column {j} (0-based, of {d}) has type {data_type}, which is \
                         not numeric; cast it or index it with StringIndexer"
                    ),
                });
            }
            if column.len() != rows {
                return Err(MlError::InvalidInput(format!(
                    "feature column {j} ('{name}') has {} rows but column 0 has {rows}",
                    column.len()
                )));
            }
            let cast = cast(column, &DataType::Float64)?;
            let values = cast
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| MlError::Internal(format!("cast of '{name}' to f64 is not f64")))?;
            valid = NullBuffer::union(valid.as_ref(), values.nulls());
            let values = values.values();
            if values.iter().any(|v| v.is_nan()) {
                let not_nan =
                    NullBuffer::new(BooleanBuffer::collect_bool(rows, |i| !values[i].is_nan()));
                valid = NullBuffer::union(valid.as_ref(), Some(&not_nan));
            }
            data.extend_from_slice(values);
        }
        let matrix = DenseMatrix::from_column_major(rows, d, data)
            .map_err(|n| MlError::Internal(format!("{n} values for {rows} x {d}")))?;
        Ok(Block {
            features: Features::F64(matrix),
            valid: valid.filter(|v| v.null_count() > 0),
        })
    }
}

/// `FixedSizeList<Float64>` of `k` non-null values.
fn probability_type(k: usize) -> Result<DataType> {
    let size = i32::try_from(k).map_err(|_| MlError::Internal(format!("{k} classes")))?;
    Ok(DataType::FixedSizeList(
        Arc::new(Field::new_list_field(DataType::Float64, false)),
        size,
    ))
}
