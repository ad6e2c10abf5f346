//! Kiln's errors as Python exceptions: `kiln.KilnError` and its subclasses
//! `PlanningError`, `ExecutionError`, `ParameterError` (also a `ValueError`) and
//! `KilnIOError` (also an `OSError`), defined in `kiln/errors.py`. Each carries the Rust
//! message unchanged.

use datafusion::error::DataFusionError;
use kiln::ml::MlError;
use kiln::EngineError;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Which Python exception class an engine error becomes.
pub(crate) fn class_of(e: &EngineError) -> &'static str {
    match e {
        EngineError::UnknownColumn { .. } | EngineError::SqlSyntax(_) | EngineError::Plan(_) => {
            "PlanningError"
        }
        EngineError::InvalidParameter { .. }
        | EngineError::Config { .. }
        | EngineError::FixedSetting { .. } => "ParameterError",
        EngineError::Read { .. } | EngineError::ObjectStore(_) | EngineError::Io(_) => {
            "KilnIOError"
        }
        // A reader that crashed on a file, or a malformed record: the file is the problem.
        EngineError::Panicked { files, .. } if !files.is_empty() => "KilnIOError",
        EngineError::Exec(kiln::deps::ExecError::MalformedRecord { .. }) => "KilnIOError",
        EngineError::Ml(ml) => match ml {
            MlError::ModelFile { .. } => "KilnIOError",
            MlError::InvalidParameter { .. }
            | MlError::InvalidColumn { .. }
            | MlError::InvalidData(_)
            | MlError::InvalidInput(_) => "ParameterError",
            _ => "ExecutionError",
        },
        EngineError::DataFusion(df) => match df.find_root() {
            DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::SQL(..)
            | DataFusionError::NotImplemented(_) => "PlanningError",
            DataFusionError::Configuration(_) => "ParameterError",
            DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => "KilnIOError",
            _ => "ExecutionError",
        },
        _ => "ExecutionError",
    }
}

/// The Python exception for an engine error.
pub(crate) fn to_py(e: EngineError) -> PyErr {
    let class = class_of(&e);
    let message = e.to_string();
    Python::attach(|py| {
        match py
            .import("kiln.errors")
            .and_then(|m| m.getattr(class))
            .and_then(|c| c.call1((message.clone(),)))
        {
            Ok(instance) => PyErr::from_value(instance),
            // The package is incomplete (the native module imported on its own): still an
            // error with the message.
            Err(_) => PyRuntimeError::new_err(message),
        }
    })
}

/// A `kiln.ParameterError` raised by the bindings themselves (a bad argument value).
pub(crate) fn parameter(message: impl Into<String>) -> PyErr {
    to_py(EngineError::InvalidParameter {
        name: "argument",
        reason: message.into(),
    })
}

/// `?` for engine results inside the bindings.
pub(crate) trait IntoPy<T> {
    /// The value, or the error as a Python exception.
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for kiln::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
