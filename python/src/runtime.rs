//! The engine's async runtime inside Python, and [`wait`]: how every blocking call runs.

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use datafusion::common::runtime::SpawnedTask;
use kiln::{Activity, Session};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::to_py;

/// How often a waiting call looks for Ctrl-C and reports progress.
const TICK: Duration = Duration::from_millis(100);
/// Progress is reported only for calls that run at least this long.
const QUIET_FOR: Duration = Duration::from_millis(300);

static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();

/// The process's Tokio runtime, started on first use. Sessions live on it, so it outlives
/// them all.
pub(crate) fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("kiln-runtime")
            .build()
    });
    rt.as_ref()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start Kiln's runtime: {e}")))
}

/// Who hears about progress while a call waits.
pub(crate) struct Watch<'a> {
    /// The session whose activity is reported.
    pub(crate) session: &'a Session,
    /// `callback(event: dict)`; `None` reports nothing.
    pub(crate) callback: Option<Py<PyAny>>,
}

/// Runs `work` to completion as a task of the runtime, waiting with the GIL released. Every
/// [`TICK`] the waiting thread takes the GIL back briefly to run Python's signal handlers: a
/// `KeyboardInterrupt` (Ctrl-C) aborts the task, which drops `work` and so cancels its job on
/// the executors, and is raised at once. (`work` runs as its own task and the wait is an OS
/// wait, so neither a job computing between awaits nor busy workers hold the interrupt up.) Calls that run
/// longer than [`QUIET_FOR`] report the session's activity to the watch's callback as a
/// dict (see `kiln/progress.py`), and a last event with `done = True`.
pub(crate) fn wait<T, F>(py: Python<'_>, watch: Option<Watch<'_>>, work: F) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = kiln::Result<T>> + Send + 'static,
{
    let rt = runtime()?;
    let before = watch.as_ref().map(|w| w.session.activity());
    let start = Instant::now();
    // The result comes back over a channel the waiting thread reads with a timeout: a plain
    // OS wait, which keeps ticking even while every runtime worker is busy computing (a
    // Tokio timer would only fire when a worker parks).
    let (tx, rx) = std::sync::mpsc::channel();
    // Aborts the task however the wait ends (an interrupt, a failed callback).
    let _task = {
        let _in_runtime = rt.enter();
        SpawnedTask::spawn(async move {
            let _ = tx.send(work.await);
        })
    };
    let outcome: PyResult<kiln::Result<T>> = py.detach(move || {
        let mut reported = false;
        let outcome = loop {
            match rx.recv_timeout(TICK) {
                Ok(result) => break Ok(result),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    break Ok(Err(kiln::EngineError::Internal(
                        "the call's task ended without an answer".into(),
                    )))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            let report = match (&watch, &before) {
                (Some(w), Some(b)) if start.elapsed() >= QUIET_FOR => {
                    w.callback.as_ref().map(|c| (c, b, w.session.activity()))
                }
                _ => None,
            };
            reported |= report.is_some();
            let checked = Python::attach(|py| {
                py.check_signals()?;
                if let Some((callback, before, now)) = report {
                    callback.call1(py, (event(py, before, &now, start, false)?,))?;
                }
                Ok::<_, PyErr>(())
            });
            if let Err(e) = checked {
                break Err(e);
            }
        };
        if reported {
            if let (Some(w), Some(b)) = (&watch, &before) {
                if let Some(callback) = &w.callback {
                    let now = w.session.activity();
                    Python::attach(|py| {
                        event(py, b, &now, start, true)
                            .and_then(|e| callback.call1(py, (e,)).map(drop))
                    })?;
                }
            }
        }
        outcome
    });
    outcome?.map_err(to_py)
}

/// A progress event: what the call has done since `before`.
fn event<'py>(
    py: Python<'py>,
    before: &Activity,
    now: &Activity,
    start: Instant,
    done: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (key, now, before) in [
        (
            "stages_finished",
            now.stages_finished,
            before.stages_finished,
        ),
        ("stages_planned", now.stages_planned, before.stages_planned),
        ("tasks_finished", now.tasks_finished, before.tasks_finished),
        ("tasks_planned", now.tasks_planned, before.tasks_planned),
    ] {
        d.set_item(key, now.saturating_sub(before))?;
    }
    match &now.training {
        Some(t) => {
            d.set_item("iteration", t.iteration)?;
            d.set_item("max_iter", t.max_iter)?;
            d.set_item("loss", t.loss)?;
        }
        None => {
            for key in ["iteration", "max_iter", "loss"] {
                d.set_item(key, py.None())?;
            }
        }
    }
    d.set_item("elapsed", start.elapsed().as_secs_f64())?;
    d.set_item("done", done)?;
    Ok(d)
}
