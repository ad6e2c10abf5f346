//! Polars interop (feature `polars`): hand a Polars `DataFrame` to Kiln and get one back.
//!
//! Columns cross through the Arrow C data interface: Polars exports each chunk as an
//! `ArrowArray` + `ArrowSchema` pair, arrow-rs imports it (and the reverse), so buffers are
//! handed over rather than copied.

// The C data interface is an FFI boundary: moving the C structs between the two Arrow
// implementations needs `unsafe`. Every block states why it is sound.
#![allow(unsafe_code)]

use std::sync::Arc;

use arrow::array::{make_array, ArrayRef};
use arrow::datatypes::{Field, Schema};
use arrow::ffi::{from_ffi, to_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow::record_batch::RecordBatch;
use polars_arrow::ffi as pl_ffi;
use polars_core::prelude::{
    CompatLevel, DataFrame as PlDataFrame, DataType as PlDataType, IntoColumn, Series,
};

use crate::dataframe::DataFrame;
use crate::error::{EngineError, Result};
use crate::session::Session;

fn polars_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(format!("polars conversion: {e}"))
}

/// Moves a Polars-exported C array and schema into arrow-rs.
fn import_chunk(array: pl_ffi::ArrowArray, schema: pl_ffi::ArrowSchema) -> Result<ArrayRef> {
    // SAFETY: both types are the Arrow C data interface structs (`#[repr(C)]`, identical field
    // layout per the Arrow specification). The value is moved, so ownership of the release
    // callback passes to the arrow-rs struct and is released exactly once.
    let (array, schema) = unsafe {
        (
            std::mem::transmute::<pl_ffi::ArrowArray, FFI_ArrowArray>(array),
            std::mem::transmute::<pl_ffi::ArrowSchema, FFI_ArrowSchema>(schema),
        )
    };
    // SAFETY: the structs were produced by Polars' exporter and describe a valid array.
    let data = unsafe { from_ffi(array, &schema) }?;
    Ok(make_array(data))
}

impl Session {
    /// A Kiln DataFrame over the rows of a Polars DataFrame.
    ///
    /// # Errors
    /// A column type arrow-rs cannot import.
    pub fn from_polars(&self, df: &PlDataFrame) -> Result<DataFrame> {
        let mut df = df.clone();
        df.rechunk_mut();
        let mut fields = Vec::with_capacity(df.width());
        let mut columns = Vec::with_capacity(df.width());
        for column in df.columns() {
            let series = column.as_materialized_series();
            let pl_field = series.field().to_arrow(CompatLevel::newest());
            let field_name = series.name().to_string();
            let mut chunks = Vec::new();
            for i in 0..series.n_chunks() {
                let array = series.to_arrow(i, CompatLevel::newest());
                let c_array = pl_ffi::export_array_to_c(array);
                let c_schema = pl_ffi::export_field_to_c(&pl_field);
                chunks.push(import_chunk(c_array, c_schema)?);
            }
            let array = match chunks.len() {
                1 => chunks.remove(0),
                _ => {
                    let refs: Vec<&dyn arrow::array::Array> =
                        chunks.iter().map(|a| a.as_ref()).collect();
                    arrow::compute::concat(&refs)?
                }
            };
            fields.push(Field::new(field_name, array.data_type().clone(), true));
            columns.push(array);
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = if columns.is_empty() {
            RecordBatch::new_empty(Arc::clone(&schema))
        } else {
            RecordBatch::try_new(Arc::clone(&schema), columns)?
        };
        self.from_batches(schema, vec![batch])
    }
}

impl DataFrame {
    /// Runs the query and returns the rows as a Polars DataFrame.
    ///
    /// # Errors
    /// As [`DataFrame::collect`], or a column type Polars cannot import.
    pub async fn to_polars(&self) -> Result<PlDataFrame> {
        let schema = self.schema();
        let batches = self.collect().await?;
        let height: usize = batches.iter().map(|b| b.num_rows()).sum();
        let mut columns = Vec::with_capacity(schema.fields().len());
        for (i, field) in schema.fields().iter().enumerate() {
            let mut chunks = Vec::with_capacity(batches.len());
            let mut pl_field = None;
            for batch in &batches {
                let (c_array, c_schema) = to_ffi(&batch.column(i).to_data())?;
                // SAFETY: as in `import_chunk`, the same C structs in the other direction; the
                // values are moved so each release callback runs once.
                let (c_array, c_schema) = unsafe {
                    (
                        std::mem::transmute::<FFI_ArrowArray, pl_ffi::ArrowArray>(c_array),
                        std::mem::transmute::<FFI_ArrowSchema, pl_ffi::ArrowSchema>(c_schema),
                    )
                };
                // SAFETY: the structs were produced by arrow-rs' exporter from a valid array.
                let f = unsafe { pl_ffi::import_field_from_c(&c_schema) }.map_err(polars_err)?;
                // SAFETY: as above; the dtype comes from the schema exported with the array.
                let array = unsafe { pl_ffi::import_array_from_c(c_array, f.dtype().clone()) }
                    .map_err(polars_err)?;
                chunks.push(array);
                pl_field.get_or_insert(f);
            }
            let series = match pl_field {
                Some(f) => Series::try_from((&f, chunks)).map_err(polars_err)?,
                None => {
                    // No rows: an empty column of the right type.
                    let (_, c_schema) =
                        to_ffi(&arrow::array::new_empty_array(field.data_type()).to_data())?;
                    // SAFETY: as above.
                    let c_schema = unsafe {
                        std::mem::transmute::<FFI_ArrowSchema, pl_ffi::ArrowSchema>(c_schema)
                    };
                    // SAFETY: as above.
                    let f =
                        unsafe { pl_ffi::import_field_from_c(&c_schema) }.map_err(polars_err)?;
                    Series::new_empty(
                        field.name().as_str().into(),
                        &PlDataType::from_arrow_field(&f),
                    )
                }
            };
            columns.push(series.with_name(field.name().as_str().into()).into_column());
        }
        PlDataFrame::new(height, columns).map_err(polars_err)
    }
}
