//! `weights.arrow`: the model's numbers as one Arrow record batch in an IPC file (layouts in
//! the [module docs](super)), and reading them back against what `metadata.json` declares.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;

use super::{Model, ModelKind, INTERCEPT_ROW, WEIGHTS_FILE};
use crate::error::{MlError, Result};

/// The column of a linear model's weights holding the feature name of each row.
pub(super) const NAME_COLUMN: &str = "name";
/// The single coefficient column of a linear regression's weights.
pub(super) const COEFFICIENT_COLUMN: &str = "coefficient";

/// An error in `weights.arrow`.
fn bad(reason: impl Into<String>) -> MlError {
    MlError::ModelFile {
        path: WEIGHTS_FILE.to_string(),
        reason: reason.into(),
    }
}

/// The coefficient columns of a logistic model: `class_1` for a binomial model (the margin of
/// class 1), `class_0 .. class_{K-1}` for a multinomial one.
pub(super) fn logistic_columns(num_classes: usize, multinomial: bool) -> Vec<String> {
    if multinomial {
        (0..num_classes).map(|k| format!("class_{k}")).collect()
    } else {
        vec!["class_1".to_string()]
    }
}

/// The weights of `model` as one record batch.
///
/// # Errors
/// [`MlError::Arrow`] if Arrow rejects the batch (it should not: the columns are built to
/// the schema).
pub(super) fn batch(model: &Model) -> Result<RecordBatch> {
    match model.kind() {
        ModelKind::KMeans(m) => {
            let columns: Vec<(String, Vec<f64>)> = m
                .feature_names()
                .iter()
                .enumerate()
                .map(|(j, name)| (name.clone(), m.centers().iter().map(|c| c[j]).collect()))
                .collect();
            float_batch(None, columns)
        }
        ModelKind::LinearRegression(m) => {
            let mut values = m.coefficients().to_vec();
            values.push(m.intercept());
            float_batch(
                Some(m.feature_names()),
                vec![(COEFFICIENT_COLUMN.to_string(), values)],
            )
        }
        ModelKind::LogisticRegression(m) => {
            let w = m.coefficient_matrix();
            let names = logistic_columns(m.num_classes(), m.is_multinomial());
            let columns = names
                .into_iter()
                .enumerate()
                .map(|(k, name)| {
                    let mut values: Vec<f64> = (0..w.cols()).map(|j| w.get(k, j)).collect();
                    values.push(m.intercepts()[k]);
                    (name, values)
                })
                .collect();
            float_batch(Some(m.feature_names()), columns)
        }
    }
}

/// A batch of `Float64` columns, led by a `name` column (the features, then the intercept)
/// when `row_names` is given.
fn float_batch(
    row_names: Option<&[String]>,
    columns: Vec<(String, Vec<f64>)>,
) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(columns.len() + 1);
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len() + 1);
    if let Some(names) = row_names {
        fields.push(Field::new(NAME_COLUMN, DataType::Utf8, false));
        let rows = names
            .iter()
            .map(String::as_str)
            .chain([INTERCEPT_ROW])
            .map(Some);
        arrays.push(Arc::new(StringArray::from_iter(rows)));
    }
    for (name, values) in columns {
        fields.push(Field::new(name, DataType::Float64, false));
        arrays.push(Arc::new(Float64Array::from(values)));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// `batch` as an Arrow IPC file.
///
/// # Errors
/// [`MlError::Arrow`] if the IPC writer fails (writing to memory, it should not).
pub(super) fn to_ipc(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut writer = FileWriter::try_new(Vec::new(), &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    Ok(writer.into_inner()?)
}

/// The single record batch of an Arrow IPC file.
///
/// # Errors
/// [`MlError::ModelFile`] for bytes that are not an Arrow IPC file or hold another number of
/// batches than one.
pub(super) fn read_ipc(bytes: Vec<u8>) -> Result<RecordBatch> {
    let reader = FileReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| bad(format!("not an Arrow IPC file: {e}")))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("unreadable record batch: {e}")))?;
    match <[RecordBatch; 1]>::try_from(batches) {
        Ok([batch]) => Ok(batch),
        Err(batches) => Err(bad(format!(
            "holds {} record batches, expected 1",
            batches.len()
        ))),
    }
}

/// Checks that `batch` has exactly the columns `expected`, in order, and `rows` rows
/// (`what_rows` says where that number comes from).
fn check_shape(
    batch: &RecordBatch,
    expected: &[String],
    rows: usize,
    what_rows: &str,
) -> Result<()> {
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    if names != expected {
        return Err(bad(format!(
            "columns are [{}] but metadata.json declares [{}]",
            names.join(", "),
            expected.join(", ")
        )));
    }
    if batch.num_rows() != rows {
        return Err(bad(format!(
            "has {} rows but metadata.json declares {rows} ({what_rows})",
            batch.num_rows()
        )));
    }
    Ok(())
}

/// Column `index` as finite `f64` values.
fn float_column(batch: &RecordBatch, index: usize) -> Result<&[f64]> {
    let schema = batch.schema();
    let name = schema.field(index).name().clone();
    let column = batch.column(index);
    let Some(values) = column.as_any().downcast_ref::<Float64Array>() else {
        return Err(bad(format!(
            "column '{name}' has type {}, expected Float64",
            column.data_type()
        )));
    };
    if let Some(row) = (0..values.len()).find(|i| values.is_null(*i)) {
        return Err(bad(format!("column '{name}' has a null at row {row}")));
    }
    if let Some((row, v)) = values
        .values()
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
    {
        return Err(bad(format!(
            "column '{name}' row {row} is {v}; weights must be finite"
        )));
    }
    Ok(values.values())
}

/// The k-means centres, one row per cluster, checked against the declared features and
/// number of clusters.
///
/// # Errors
/// [`MlError::ModelFile`] for `weights.arrow` when its columns, rows, types or values
/// disagree with the metadata.
pub(super) fn kmeans_centers(
    batch: &RecordBatch,
    features: &[String],
    num_clusters: usize,
) -> Result<Vec<Vec<f64>>> {
    check_shape(batch, features, num_clusters, "model.num_clusters")?;
    let mut centers = vec![Vec::with_capacity(features.len()); num_clusters];
    for j in 0..features.len() {
        for (center, v) in centers.iter_mut().zip(float_column(batch, j)?) {
            center.push(*v);
        }
    }
    Ok(centers)
}

/// The coefficient columns of a linear model, each holding one value per feature then the
/// intercept, checked against the declared features and columns.
///
/// # Errors
/// [`MlError::ModelFile`] for `weights.arrow` when its columns, rows, row names, types or
/// values disagree with the metadata.
pub(super) fn linear_columns(
    batch: &RecordBatch,
    features: &[String],
    columns: &[String],
) -> Result<Vec<Vec<f64>>> {
    let expected: Vec<String> = std::iter::once(NAME_COLUMN.to_string())
        .chain(columns.iter().cloned())
        .collect();
    check_shape(
        batch,
        &expected,
        features.len() + 1,
        "one row per feature and one for the intercept",
    )?;
    let names = batch.column(0);
    let Some(names) = names.as_any().downcast_ref::<StringArray>() else {
        return Err(bad(format!(
            "column '{NAME_COLUMN}' has type {}, expected Utf8",
            names.data_type()
        )));
    };
    let wanted = features.iter().map(String::as_str).chain([INTERCEPT_ROW]);
    for (row, want) in wanted.enumerate() {
        let got = names.is_valid(row).then(|| names.value(row));
        if got != Some(want) {
            return Err(bad(format!(
                "row {row} of column '{NAME_COLUMN}' is {}, expected '{want}' (the features \
                 of metadata.json, then '{INTERCEPT_ROW}')",
                got.map_or_else(|| "null".to_string(), |g| format!("'{g}'"))
            )));
        }
    }
    (1..=columns.len())
        .map(|c| float_column(batch, c).map(<[f64]>::to_vec))
        .collect()
}
