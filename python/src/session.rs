//! `kiln._kiln.Session`: a Kiln session (embedded, local cluster or listening driver).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kiln::config::{Config, Source};
use kiln::ml::PipelineModel;
use kiln::{CsvMode, CsvOptions, Session};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrow_io::import_stream;
use crate::dataframe::PyDataFrame;
use crate::errors::{parameter, IntoPy};
use crate::ml::{PyFittedStage, PyModel};
use crate::runtime::{wait, Watch};

/// A session: the engine, its executors, tables and models.
#[pyclass(name = "Session", module = "kiln._kiln", frozen)]
pub(crate) struct PySession {
    pub(crate) session: Session,
    /// `callback(event)` for progress, shared with the DataFrames of the session.
    pub(crate) progress: Arc<Mutex<Option<Py<PyAny>>>>,
}

impl PySession {
    /// Wraps an engine session.
    pub(crate) fn wrap(session: Session, progress: Arc<Mutex<Option<Py<PyAny>>>>) -> Self {
        Self { session, progress }
    }

    /// Who hears about progress of a call on `session`.
    pub(crate) fn watch<'a>(
        session: &'a Session,
        progress: &Mutex<Option<Py<PyAny>>>,
        py: Python<'_>,
    ) -> Watch<'a> {
        let callback = progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|c| c.clone_ref(py));
        Watch { session, callback }
    }

    fn df(&self, df: kiln::DataFrame) -> PyDataFrame {
        PyDataFrame::wrap(df, Arc::clone(&self.progress))
    }

    fn run<T: Send + 'static>(
        &self,
        py: Python<'_>,
        work: impl std::future::Future<Output = kiln::Result<T>> + Send + 'static,
    ) -> PyResult<T> {
        wait(
            py,
            Some(Self::watch(&self.session, &self.progress, py)),
            work,
        )
    }
}

#[pymethods]
impl PySession {
    /// Builds a session from Kiln's settings: the defaults, then the config file (`config`,
    /// else `$KILN_CONFIG`, else the user's), then `KILN_*` variables, then `settings`
    /// (`{"kiln.executors": "4", ...}`). `on_listen(address)` is called once a driver in
    /// cluster mode listens.
    #[staticmethod]
    #[pyo3(signature = (settings, config = None, on_listen = None))]
    fn build(
        py: Python<'_>,
        settings: Vec<(String, String)>,
        config: Option<PathBuf>,
        on_listen: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let mut c = Config::load(config.as_deref()).py_err()?;
        for (key, value) in &settings {
            c.set(key, value, Source::Api).py_err()?;
        }
        let mut builder = c.builder().py_err()?;
        if let Some(callback) = on_listen {
            builder = builder.on_listen(move |addr| {
                Python::attach(|py| {
                    if let Err(e) = callback.call1(py, (addr.to_string(),)) {
                        e.print(py);
                    }
                });
            });
        }
        let session = wait(py, None, builder.build())?;
        Ok(Self::wrap(session, Arc::new(Mutex::new(None))))
    }

    /// The session's id.
    #[getter]
    fn id(&self) -> String {
        self.session.id().to_string()
    }

    /// Executors that have joined.
    #[getter]
    fn executor_count(&self) -> usize {
        self.session.executor_count()
    }

    /// The executors that joined, in joining order, lost ones included: (name, slots, alive).
    #[getter]
    fn executors(&self) -> Vec<(String, usize, bool)> {
        self.session
            .executors()
            .into_iter()
            .map(|e| (e.id, e.slots, e.alive))
            .collect()
    }

    /// Task slots over all executors.
    #[getter]
    fn total_slots(&self) -> usize {
        self.session.total_slots()
    }

    /// The address executors connect to, in cluster modes.
    #[getter]
    fn driver_address(&self) -> Option<String> {
        self.session.driver_addr().map(|a| a.to_string())
    }

    /// A stream of the session's events from now on (see `EventStream.poll`).
    fn events(&self) -> PyEventStream {
        PyEventStream {
            receiver: Mutex::new(self.session.events()),
        }
    }

    /// The web UI's address (`kiln.ui.port`), if the session serves one.
    #[getter]
    fn ui_url(&self) -> Option<String> {
        self.session.ui_url()
    }

    /// Process ids of the executors this session started (local cluster).
    #[getter]
    fn executor_pids(&self) -> Vec<u32> {
        self.session.executor_pids()
    }

    /// Sets the progress callback (`None`: no progress).
    fn set_progress(&self, callback: Option<Py<PyAny>>) {
        *self
            .progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = callback;
    }

    /// Runs a Kiln SQL statement; queries are lazy, other statements run now.
    fn sql(&self, py: Python<'_>, query: &str) -> PyResult<PyDataFrame> {
        let (s, q) = (self.session.clone(), query.to_string());
        let df = self.run(py, async move { s.sql(&q).await })?;
        Ok(self.df(df))
    }

    /// Parquet files (a file, a directory or a URL).
    fn read_parquet(&self, py: Python<'_>, path: &str) -> PyResult<PyDataFrame> {
        let (s, p) = (self.session.clone(), path.to_string());
        let df = self.run(py, async move { s.read_parquet(&p).await })?;
        Ok(self.df(df))
    }

    /// CSV files.
    #[pyo3(signature = (path, has_header = true, delimiter = ",", mode = "permissive", file_extension = None))]
    fn read_csv(
        &self,
        py: Python<'_>,
        path: &str,
        has_header: bool,
        delimiter: &str,
        mode: &str,
        file_extension: Option<String>,
    ) -> PyResult<PyDataFrame> {
        let options = csv_options(has_header, delimiter, mode, file_extension)?;
        let (s, p) = (self.session.clone(), path.to_string());
        let df = self.run(py, async move { s.read_csv(&p, options).await })?;
        Ok(self.df(df))
    }

    /// Newline-delimited JSON files.
    fn read_json(&self, py: Python<'_>, path: &str) -> PyResult<PyDataFrame> {
        let (s, p) = (self.session.clone(), path.to_string());
        let df = self.run(py, async move { s.read_json(&p).await })?;
        Ok(self.df(df))
    }

    /// A DataFrame over Arrow data (any object with `__arrow_c_stream__`), without copying it.
    fn create_dataframe(&self, data: &Bound<'_, PyAny>) -> PyResult<PyDataFrame> {
        let (schema, batches) = import_stream(data)?;
        let df = self.session.from_batches(schema, batches).py_err()?;
        Ok(self.df(df))
    }

    /// Registers a DataFrame as a table for SQL.
    fn register(&self, name: &str, df: &PyDataFrame) -> PyResult<()> {
        self.session.register(name, &df.df).py_err()
    }

    /// A registered table.
    fn table(&self, py: Python<'_>, name: &str) -> PyResult<PyDataFrame> {
        let (s, n) = (self.session.clone(), name.to_string());
        let df = self.run(py, async move { s.table(&n).await })?;
        Ok(self.df(df))
    }

    /// Changes a setting of the running session (`SET`).
    fn set(&self, key: &str, value: &str) -> PyResult<()> {
        self.session.set(key, value).py_err()
    }

    /// Every setting as `(name, value, source, description)`, secrets redacted.
    fn settings(&self) -> Vec<(String, String, String, String)> {
        self.session
            .config()
            .settings()
            .into_iter()
            .map(|s| (s.name, s.value, s.source, s.description))
            .collect()
    }

    /// The session's counters (kernel rounds, partitions reloaded, executors lost, ...).
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.session.metrics();
        let d = PyDict::new(py);
        d.set_item("kernel_rounds", m.kernel_rounds)?;
        d.set_item("partitions_reloaded", m.partitions_reloaded)?;
        d.set_item("executors_lost", m.executors_lost)?;
        d.set_item("task_retries", m.task_retries)?;
        d.set_item("stage_resubmits", m.stage_resubmits)?;
        d.set_item("fetch_failures", m.fetch_failures)?;
        d.set_item("bytes_shuffled", m.bytes_shuffled)?;
        let a = self.session.activity();
        d.set_item("stages_planned", a.stages_planned)?;
        d.set_item("stages_finished", a.stages_finished)?;
        d.set_item("tasks_planned", a.tasks_planned)?;
        d.set_item("tasks_finished", a.tasks_finished)?;
        Ok(d)
    }

    /// Removes what killed sessions left under the shuffle and cache roots; returns the
    /// removed prefixes (URLs) and the number of objects deleted.
    fn remove_orphans(&self, py: Python<'_>) -> PyResult<(Vec<String>, u64)> {
        let s = self.session.clone();
        let report = self.run(py, async move { s.remove_orphans().await })?;
        Ok((report.prefixes, report.objects))
    }

    /// Makes `model` callable as `predict('name', ...)` in SQL and DataFrames.
    fn register_model(&self, name: &str, model: &PyModel) {
        self.session.register_model(name, (*model.model).clone());
    }

    /// Forgets a registered model; returns whether it was registered.
    fn deregister_model(&self, name: &str) -> bool {
        self.session.deregister_model(name)
    }

    /// A registered model.
    fn model(&self, name: &str) -> Option<PyModel> {
        self.session.model(name).map(PyModel::wrap)
    }

    /// Names of the registered models.
    fn model_names(&self) -> Vec<String> {
        self.session.model_names()
    }

    /// Reads a model directory (local path or object-store URL).
    fn load_model(&self, py: Python<'_>, path: &str) -> PyResult<PyModel> {
        let (s, p) = (self.session.clone(), path.to_string());
        let model = self.run(py, async move { s.load_model(&p).await })?;
        Ok(PyModel::wrap(Arc::new(model)))
    }

    /// Writes a model directory (local path or object-store URL).
    fn save_model(&self, py: Python<'_>, model: &PyModel, path: &str) -> PyResult<()> {
        let (s, m, p) = (
            self.session.clone(),
            Arc::clone(&model.model),
            path.to_string(),
        );
        self.run(py, async move { s.save_model(&m, &p).await })
    }

    /// Writes a fitted pipeline's stages as a pipeline directory.
    fn save_pipeline(
        &self,
        py: Python<'_>,
        stages: Vec<Py<PyFittedStage>>,
        path: &str,
    ) -> PyResult<()> {
        let stages = stages.iter().map(|s| s.get().stage.clone()).collect();
        let (s, p) = (self.session.clone(), path.to_string());
        self.run(py, async move {
            s.save_pipeline(&PipelineModel::new(stages), &p).await
        })
    }

    /// Reads a pipeline directory: its fitted stages, in order.
    fn load_pipeline(&self, py: Python<'_>, path: &str) -> PyResult<Vec<PyFittedStage>> {
        let (s, p) = (self.session.clone(), path.to_string());
        let pipeline = self.run(py, async move { s.load_pipeline(&p).await })?;
        Ok(pipeline
            .stages()
            .iter()
            .cloned()
            .map(|stage| PyFittedStage { stage })
            .collect())
    }

    /// Whether `path` is a pipeline directory.
    fn is_pipeline(&self, py: Python<'_>, path: &str) -> PyResult<bool> {
        let (s, p) = (self.session.clone(), path.to_string());
        self.run(py, async move { s.is_pipeline(&p).await })
    }
}

/// [`CsvOptions`] from the Python arguments.
fn csv_options(
    has_header: bool,
    delimiter: &str,
    mode: &str,
    file_extension: Option<String>,
) -> PyResult<CsvOptions> {
    let delimiter = match delimiter.as_bytes() {
        [b] => *b,
        _ => {
            return Err(parameter(format!(
                "delimiter must be one ASCII character, got '{delimiter}'"
            )))
        }
    };
    let mode = match mode {
        "permissive" => CsvMode::Permissive,
        "drop_malformed" => CsvMode::DropMalformed,
        "fail_fast" => CsvMode::FailFast,
        other => {
            return Err(parameter(format!(
                "mode must be 'permissive', 'drop_malformed' or 'fail_fast', got '{other}'"
            )))
        }
    };
    Ok(CsvOptions {
        has_header,
        delimiter,
        mode,
        file_extension,
        ..CsvOptions::default()
    })
}

/// The events of a session since the stream was made: jobs, stages, task attempts,
/// executors, fits and kernel rounds.
#[pyclass(name = "EventStream", module = "kiln._kiln", frozen)]
pub struct PyEventStream {
    receiver: Mutex<tokio::sync::broadcast::Receiver<kiln::Event>>,
}

#[pymethods]
impl PyEventStream {
    /// The events received since the last call, each as JSON text (oldest first). A stream
    /// polled too rarely to keep up loses the oldest ones (4,096 are kept).
    fn poll(&self) -> Vec<String> {
        let mut receiver = self
            .receiver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::new();
        loop {
            match receiver.try_recv() {
                Ok(event) => {
                    if let Ok(text) = serde_json::to_string(&event) {
                        out.push(text);
                    }
                }
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        out
    }
}
