//! The event log: every event of a session as one JSON object per line
//! (`docs/eventlog.md`), written under `kiln.eventlog.dir` as `<session>.jsonl.inprogress`
//! and renamed to `<session>.jsonl` when the session ends; on an object store, the whole log
//! is put again as it grows and under its final name at the end. [`read`] replays a directory
//! of logs into the states `kiln history` serves.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use kiln_executor::shuffle::StoreRoot;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{EngineError, Result};
use crate::scheduler::{Event, Listener, Stamped, EVENT_LOG_VERSION};
use crate::status::State;

/// The suffix of a finished session's log.
pub(crate) const SUFFIX: &str = ".jsonl";
/// The suffix of a log still being written (or of a session that was killed).
pub(crate) const IN_PROGRESS: &str = ".jsonl.inprogress";

/// How often, at most, a growing log reaches its file or object outside the moments that
/// always write it (a job, a fit or the session ending, an executor joining or lost).
const FLUSH_EVERY: Duration = Duration::from_secs(1);

enum Sink {
    Local {
        file: std::io::BufWriter<std::fs::File>,
        writing: PathBuf,
        done: PathBuf,
    },
    Store {
        store: Arc<dyn ObjectStore>,
        writing: Path,
        done: Path,
        buffer: Vec<u8>,
    },
}

struct Writer {
    sink: Sink,
    flushed: Instant,
    ended: bool,
}

/// A [`Listener`] writing the session's events to its log.
pub(crate) struct EventLog {
    writer: Mutex<Writer>,
}

/// Where the command line keeps event logs unless told otherwise: `~/.kiln/events` (none
/// without `$HOME`).
pub(crate) fn default_dir() -> Option<String> {
    std::env::var_os("HOME").map(|home| {
        PathBuf::from(home)
            .join(".kiln")
            .join("events")
            .display()
            .to_string()
    })
}

/// Whether `dir` names a local directory (a path or a `file://` URL).
fn local_dir(dir: &str) -> Option<PathBuf> {
    if let Some(rest) = dir.strip_prefix("file://") {
        return Some(PathBuf::from(rest));
    }
    (!dir.contains("://")).then(|| PathBuf::from(dir))
}

/// An object-store directory URL, ending in `/`.
fn dir_url(dir: &str) -> String {
    if dir.ends_with('/') {
        dir.to_string()
    } else {
        format!("{dir}/")
    }
}

impl EventLog {
    /// Opens the log of `session` under `dir` (a directory or an object-store URL resolved
    /// with `runtime`'s stores).
    ///
    /// # Errors
    /// A directory that cannot be made or written, a URL without a store.
    pub(crate) fn open(
        dir: &str,
        session: &str,
        runtime: &datafusion::execution::runtime_env::RuntimeEnv,
    ) -> Result<Self> {
        let sink = match local_dir(dir) {
            Some(path) => {
                std::fs::create_dir_all(&path).map_err(|e| EngineError::InvalidParameter {
                    name: "kiln.eventlog.dir",
                    reason: format!("cannot create {}: {e}", path.display()),
                })?;
                let writing = path.join(format!("{session}{IN_PROGRESS}"));
                let file =
                    std::fs::File::create(&writing).map_err(|e| EngineError::InvalidParameter {
                        name: "kiln.eventlog.dir",
                        reason: format!("cannot write {}: {e}", writing.display()),
                    })?;
                Sink::Local {
                    file: std::io::BufWriter::with_capacity(64 * 1024, file),
                    writing,
                    done: path.join(format!("{session}{SUFFIX}")),
                }
            }
            None => {
                let root = StoreRoot::resolve(&dir_url(dir), runtime)?;
                Sink::Store {
                    store: Arc::clone(&root.store),
                    writing: root.prefix.clone().join(format!("{session}{IN_PROGRESS}")),
                    done: root.prefix.clone().join(format!("{session}{SUFFIX}")),
                    buffer: Vec::new(),
                }
            }
        };
        Ok(Self {
            writer: Mutex::new(Writer {
                sink,
                flushed: Instant::now(),
                ended: false,
            }),
        })
    }
}

impl Writer {
    fn append(&mut self, line: &[u8]) {
        match &mut self.sink {
            Sink::Local { file, .. } => {
                if let Err(e) = file.write_all(line) {
                    tracing::warn!(error = %e, "could not write the event log");
                }
            }
            Sink::Store { buffer, .. } => buffer.extend_from_slice(line),
        }
    }

    /// Makes what was appended readable; at the end, under the final name.
    fn flush(&mut self, end: bool) {
        self.flushed = Instant::now();
        match &mut self.sink {
            Sink::Local {
                file,
                writing,
                done,
            } => {
                if let Err(e) = file.flush() {
                    tracing::warn!(error = %e, "could not write the event log");
                }
                if end {
                    if let Err(e) = std::fs::rename(&*writing, &*done) {
                        tracing::warn!(error = %e, log = %writing.display(), "could not finish the event log");
                    }
                }
            }
            Sink::Store {
                store,
                writing,
                done,
                buffer,
            } => {
                let store = Arc::clone(store);
                let payload = PutPayload::from(buffer.clone());
                let (writing, done) = (writing.clone(), done.clone());
                let put = async move {
                    let target = if end { &done } else { &writing };
                    if let Err(e) = store.put(target, payload).await {
                        tracing::warn!(error = %e, log = %target, "could not write the event log");
                    } else if end {
                        let _ = store.delete(&writing).await;
                    }
                };
                if end {
                    crate::cleanup::finish_during_drop(put, Duration::from_secs(10));
                } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(put);
                }
            }
        }
    }
}

impl Listener for EventLog {
    fn on_event(&self, event: &Stamped) {
        let Ok(mut line) = serde_json::to_vec(event) else {
            return;
        };
        line.push(b'\n');
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if writer.ended {
            return;
        }
        writer.append(&line);
        let end = matches!(event.event, Event::SessionEnded { .. });
        let moment = matches!(
            event.event,
            Event::JobFinished { .. }
                | Event::FitFinished { .. }
                | Event::ExecutorJoined { .. }
                | Event::ExecutorLost { .. }
                | Event::SessionStarted { .. }
        );
        if end || moment || writer.flushed.elapsed() >= FLUSH_EVERY {
            writer.flush(end);
        }
        writer.ended = end;
    }
}

/// Replays one log's text (`name` is its file, for errors).
///
/// # Errors
/// A line that is not an event (named with its line number), or a log of a newer version.
pub(crate) fn replay(name: &str, text: &str) -> Result<State> {
    let mut state = State::default();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad_line(name, n, &e.to_string()))?;
        let stamped: Stamped = match serde_json::from_value(value.clone()) {
            Ok(s) => s,
            // An event kind this version does not know (a newer writer): skipped.
            Err(_)
                if value.get("event").and_then(|e| e.as_str()).is_some()
                    && value.get("time").is_some() =>
            {
                continue;
            }
            Err(e) => return Err(bad_line(name, n, &e.to_string())),
        };
        if n == 0 {
            match &stamped.event {
                Event::SessionStarted { version, .. } if *version <= EVENT_LOG_VERSION => {}
                Event::SessionStarted { version, .. } => {
                    return Err(bad_line(
                        name,
                        n,
                        &format!(
                        "event log version {version}; this Kiln reads up to {EVENT_LOG_VERSION}"
                    ),
                    ))
                }
                _ => return Err(bad_line(name, n, "the first event must be session_started")),
            }
        }
        state.apply(&stamped);
    }
    Ok(state)
}

fn bad_line(name: &str, index: usize, reason: &str) -> EngineError {
    EngineError::Read {
        format: "event log",
        path: format!("{name}:{}", index + 1),
        reason: reason.to_string(),
    }
}

/// Every session's state from the logs under `dir` (finished and in-progress ones), oldest
/// first.
///
/// # Errors
/// A directory that cannot be listed, or a log that cannot be read.
pub(crate) async fn read(
    dir: &str,
    runtime: &datafusion::execution::runtime_env::RuntimeEnv,
) -> Result<Vec<State>> {
    let mut logs: Vec<(String, String)> = Vec::new();
    match local_dir(dir) {
        Some(path) => {
            let entries = std::fs::read_dir(&path).map_err(|e| EngineError::Read {
                format: "event log directory",
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(SUFFIX) || name.ends_with(IN_PROGRESS) {
                    let text =
                        std::fs::read_to_string(entry.path()).map_err(|e| EngineError::Read {
                            format: "event log",
                            path: entry.path().display().to_string(),
                            reason: e.to_string(),
                        })?;
                    logs.push((entry.path().display().to_string(), text));
                }
            }
        }
        None => {
            let url = dir_url(dir);
            let root = StoreRoot::resolve(&url, runtime)?;
            let listed: Vec<object_store::ObjectMeta> =
                root.store.list(Some(&root.prefix)).try_collect().await?;
            for meta in listed {
                let name = meta.location.to_string();
                if name.ends_with(SUFFIX) || name.ends_with(IN_PROGRESS) {
                    let bytes = root.store.get(&meta.location).await?.bytes().await?;
                    logs.push((
                        format!("{url}{}", meta.location.filename().unwrap_or_default()),
                        String::from_utf8_lossy(&bytes).into_owned(),
                    ));
                }
            }
        }
    }
    let mut states = Vec::with_capacity(logs.len());
    for (name, text) in logs {
        states.push(replay(&name, &text)?);
    }
    // A finished log and a stale in-progress one of the same session: the finished one.
    states.sort_by(|a, b| {
        a.session
            .cmp(&b.session)
            .then(b.ended.is_some().cmp(&a.ended.is_some()))
    });
    states.dedup_by(|later, first| later.session == first.session);
    states.sort_by(|a, b| a.started.total_cmp(&b.started));
    Ok(states)
}
