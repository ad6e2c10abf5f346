//! Arrow data across the language boundary through the Arrow PyCapsule interface: streams
//! from any object with `__arrow_c_stream__` (pyarrow, polars, pandas through pyarrow, ...)
//! and [`PyBatches`], a query result any of them can read. The buffers are shared, not copied.
#![allow(unsafe_code)]

use arrow::array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow::datatypes::SchemaRef;
use arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyCapsuleMethods};

/// The capsule name the Arrow PyCapsule interface gives a stream.
const STREAM: &std::ffi::CStr = c"arrow_array_stream";

/// Reads every batch of `data`, an object with `__arrow_c_stream__`.
///
/// # Errors
/// `TypeError` when `data` has no Arrow stream; `ValueError` when the stream fails.
pub(crate) fn import_stream(data: &Bound<'_, PyAny>) -> PyResult<(SchemaRef, Vec<RecordBatch>)> {
    let py = data.py();
    if !data.hasattr(pyo3::intern!(py, "__arrow_c_stream__"))? {
        return Err(PyTypeError::new_err(format!(
            "expected Arrow data (a pyarrow Table, RecordBatch or RecordBatchReader, a pandas \
             or polars DataFrame, or any object with __arrow_c_stream__), got {}",
            data.get_type().name()?
        )));
    }
    let capsule = data.call_method0(pyo3::intern!(py, "__arrow_c_stream__"))?;
    let capsule = capsule
        .cast::<PyCapsule>()
        .map_err(|_| PyTypeError::new_err("__arrow_c_stream__ did not return a PyCapsule"))?;
    let pointer = capsule.pointer_checked(Some(STREAM)).map_err(|_| {
        PyTypeError::new_err("__arrow_c_stream__ did not return an 'arrow_array_stream' capsule")
    })?;
    // SAFETY: the capsule is named `arrow_array_stream`, so by the Arrow PyCapsule interface
    // it points to a valid, initialized `ArrowArrayStream`, which the capsule owns until a
    // consumer moves it out. `from_raw` moves it out and leaves a released stream behind, as
    // the interface requires, so the capsule's destructor does not release it again.
    let stream = unsafe { FFI_ArrowArrayStream::from_raw(pointer.as_ptr().cast()) };
    let reader = ArrowArrayStreamReader::try_new(stream)
        .map_err(|e| PyValueError::new_err(format!("cannot read the Arrow stream: {e}")))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PyValueError::new_err(format!("cannot read the Arrow stream: {e}")))?;
    Ok((schema, batches))
}

/// Record batches held by Kiln: a query's result. Python reads them through
/// `__arrow_c_stream__` (`pyarrow.table(batches)`, `polars.DataFrame(batches)`), each time
/// sharing the same buffers.
#[pyclass(name = "Batches", module = "kiln._kiln", frozen)]
pub(crate) struct PyBatches {
    pub(crate) schema: SchemaRef,
    pub(crate) batches: Vec<RecordBatch>,
}

#[pymethods]
impl PyBatches {
    /// The batches of `data` (any object with `__arrow_c_stream__`), held without copying.
    #[staticmethod]
    fn from_stream(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (schema, batches) = import_stream(data)?;
        Ok(Self { schema, batches })
    }

    /// The batches as an Arrow C stream. `requested_schema` is accepted and ignored: the
    /// stream always has the query's schema.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        export_stream(py, self.schema.clone(), self.batches.clone())
    }

    /// Rows over all batches.
    #[getter]
    fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Number of batches.
    fn __len__(&self) -> usize {
        self.batches.len()
    }
}

/// `batches` as an `arrow_array_stream` capsule that owns them until a consumer takes the
/// stream (the capsule's destructor frees a stream nobody took).
pub(crate) fn export_stream(
    py: Python<'_>,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> PyResult<Bound<'_, PyCapsule>> {
    let reader: Box<dyn RecordBatchReader + Send> = Box::new(RecordBatchIterator::new(
        batches.into_iter().map(Ok),
        schema,
    ));
    PyCapsule::new_with_value_and_destructor(
        py,
        FFI_ArrowArrayStream::new(reader),
        STREAM,
        |stream, _| drop(stream),
    )
}
