//! `kiln._kiln`, the native half of Kiln's Python package.
//!
//! The Python classes in `python/kiln/` (`kiln.Session`, `kiln.DataFrame`, `kiln.ml.*`) are
//! thin, documented wrappers over the classes here, which call the same Rust API a Rust
//! program uses. Every call that runs the engine releases the GIL, reports progress and
//! answers Ctrl-C by cancelling the job (see `runtime::wait`). Arrow data crosses in both
//! directions through the Arrow PyCapsule interface (`__arrow_c_stream__`), without copies.

mod arrow_io;
mod dataframe;
mod errors;
mod ml;
mod runtime;
mod session;

use pyo3::prelude::*;

/// The module Python imports as `kiln._kiln`.
#[pymodule]
fn _kiln(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<session::PySession>()?;
    m.add_class::<session::PyEventStream>()?;
    m.add_class::<dataframe::PyDataFrame>()?;
    m.add_class::<arrow_io::PyBatches>()?;
    m.add_class::<ml::PyStage>()?;
    m.add_class::<ml::PyPipeline>()?;
    m.add_class::<ml::PyFittedStage>()?;
    m.add_class::<ml::PyModel>()?;
    m.add_function(wrap_pyfunction!(ml::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(ml::algorithms, m)?)?;
    m.add_function(wrap_pyfunction!(cli, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// Runs the `kiln` command line (`kiln shell`, `kiln sql`, `kiln executor`) with `args`, the
/// arguments after the program name; returns its exit status. What `python -m kiln` runs.
#[pyfunction]
fn cli(py: Python<'_>, args: Vec<String>) -> u8 {
    let code = py.detach(|| kiln::cli::main(&args));
    // `ExitCode` does not expose its value: success is 0, and every failure of the command
    // line is reported on standard error already.
    if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    }
}
