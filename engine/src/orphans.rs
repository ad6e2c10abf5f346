//! Shuffle and cache prefixes that outlive their session.
//!
//! Every session writes under its own prefix of each root it uses,
//! `{root}/{session id}/` (jobs and cached datasets below it), and holds a *lease* on that
//! prefix: the object `{root}/_kiln-sessions/{session id}`, rewritten every quarter of the
//! session's orphan TTL while it lives and deleted when it ends. A driver that is killed
//! cannot delete its prefixes, but its lease stops being renewed; any later session on the
//! same root (at its start, in the background) or `kiln gc` removes every session prefix whose
//! lease is older than the TTL (or that has none and holds nothing newer than the TTL), and
//! the expired leases themselves. Object stores have no clock of their own to trust here
//! besides the objects' modification times, so ages are measured against those.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use kiln_executor::shuffle::StoreRoot;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use tracing::warn;

use crate::error::{EngineError, Result};

/// The folder of leases under a root.
pub(crate) const LEASES: &str = "_kiln-sessions";

/// What a pass over a root removed: see [`crate::Session::remove_orphans`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// The session prefixes removed, as URLs (`s3://bucket/shuffle/kiln-ab12cd34/`).
    pub prefixes: Vec<String>,
    /// Objects deleted, leases included.
    pub objects: u64,
}

impl OrphanReport {
    pub(crate) fn absorb(&mut self, other: OrphanReport) {
        self.prefixes.extend(other.prefixes);
        self.objects += other.objects;
    }
}

/// A session's claim on its prefix of one root: renewed in the background while held, given
/// up (the lease object deleted) when dropped.
pub(crate) struct Lease {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// The local directories to remove when they are empty, for a `file://` root: the
    /// session's prefix and the lease folder (deleting objects leaves directories there).
    local: Option<(std::path::PathBuf, std::path::PathBuf)>,
    renewal: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Writes the lease of `session` on `root` and starts renewing it every `ttl / 4`.
    pub(crate) async fn take(root: &StoreRoot, session: &str, ttl: Duration) -> Result<Self> {
        let path = root.prefix.clone().join(LEASES).join(session);
        let body = serde_json::json!({
            "session": session,
            "ttl_secs": ttl.as_secs(),
            "pid": std::process::id(),
        })
        .to_string();
        let payload = PutPayload::from(body.into_bytes());
        root.store.put(&path, payload.clone()).await.map_err(|e| {
            EngineError::InvalidParameter {
                name: "shuffle_root",
                reason: format!(
                    "cannot write the session's lease {}: {}",
                    path,
                    crate::error::store_error_text(&e)
                ),
            }
        })?;
        let store = Arc::clone(&root.store);
        let renewed = path.clone();
        let every = (ttl / 4).max(Duration::from_millis(250));
        let renewal = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = store.put(&renewed, payload.clone()).await {
                    warn!(lease = %renewed, error = %e, "could not renew the session's lease");
                }
            }
        });
        let local = root.url.as_str().starts_with("file://").then(|| {
            let base = std::path::PathBuf::from(format!("/{}", root.prefix));
            (base.join(session), base.join(LEASES))
        });
        Ok(Self {
            store: Arc::clone(&root.store),
            path,
            local,
            renewal,
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
        if let Some((prefix, leases)) = &self.local {
            let _ = std::fs::remove_file(leases.join(self.path.filename().unwrap_or_default()));
            // Only when empty: another session's lease, or kept shuffle files, stay.
            let _ = std::fs::remove_dir(prefix);
            let _ = std::fs::remove_dir(leases);
        } else {
            let store = Arc::clone(&self.store);
            let path = self.path.clone();
            // A lease that stays is removed by a later pass once it expires.
            crate::cleanup::finish_during_drop(
                async move { store.delete(&path).await },
                Duration::from_secs(2),
            );
        }
    }
}

fn age(meta: &ObjectMeta, now_ms: i64) -> Duration {
    let ms = now_ms.saturating_sub(meta.last_modified.timestamp_millis());
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Removes the prefixes under `root` of sessions other than `own` whose lease expired more
/// than `ttl` ago (a lease is kept for at least the TTL its session wrote into it), or that
/// have no lease and nothing newer than `ttl`, and the expired leases.
pub(crate) async fn remove_orphans(
    root: &StoreRoot,
    root_url: &str,
    own: &str,
    ttl: Duration,
) -> Result<OrphanReport> {
    let now = now_ms();
    let store_error = |e: object_store::Error| EngineError::Read {
        format: "object store",
        path: root_url.to_string(),
        reason: crate::error::store_error_text(&e),
    };
    let lease_dir = root.prefix.clone().join(LEASES);
    let leases: Vec<ObjectMeta> = match root.store.list(Some(&lease_dir)).try_collect().await {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(store_error(e)),
    };
    let mut expired = Vec::new();
    let mut live = std::collections::HashSet::new();
    for lease in &leases {
        let Some(session) = lease.location.filename().map(str::to_string) else {
            continue;
        };
        let written_ttl = match root.store.get(&lease.location).await {
            Ok(got) => got
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v.get("ttl_secs").and_then(serde_json::Value::as_u64))
                .map(Duration::from_secs)
                .unwrap_or(ttl),
            // Given up while this pass ran.
            Err(_) => continue,
        };
        if session == own || age(lease, now) <= ttl.max(written_ttl) {
            live.insert(session);
        } else {
            expired.push(lease.location.clone());
        }
    }

    let mut report = OrphanReport::default();
    let listing = match root.store.list_with_delimiter(Some(&root.prefix)).await {
        Ok(l) => l.common_prefixes,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(store_error(e)),
    };
    for prefix in listing {
        let Some(name) = prefix.filename() else {
            continue;
        };
        if !name.starts_with("kiln-") || live.contains(name) {
            continue;
        }
        let objects: Vec<ObjectMeta> = match root.store.list(Some(&prefix)).try_collect().await {
            Ok(o) => o,
            Err(e) => {
                warn!(prefix = %prefix, error = %e, "could not list an orphaned session prefix");
                continue;
            }
        };
        // With no lease (an older session, or one whose lease was removed), only a prefix
        // idle for the TTL counts as orphaned.
        if objects.iter().any(|o| age(o, now) <= ttl) {
            continue;
        }
        if objects.is_empty() {
            // Nothing but a directory (a local root, or a store that lists empty folders, as
            // SeaweedFS does): removed on a local root once the directory itself is idle for
            // the TTL (a session that has just started holds an empty prefix whose lease this
            // pass may not have seen), not counted as a prefix anywhere.
            if root.url.as_str().starts_with("file://") {
                let dir = std::path::PathBuf::from(format!("/{prefix}"));
                if local_dir_idle_for(&dir, ttl) {
                    remove_stale(&dir, ttl).await;
                }
            }
            continue;
        }
        report.objects += u64::try_from(objects.len()).unwrap_or(u64::MAX);
        delete_prefix(root, &prefix).await?;
        if root.url.as_str().starts_with("file://") {
            // What the listing cannot see: a killed writer's half-written staging files.
            remove_stale(&std::path::PathBuf::from(format!("/{prefix}")), ttl).await;
        }
        report.prefixes.push(format!("{}{}/", root_url, name));
    }
    let removed = futures::stream::iter(expired.into_iter().map(Ok)).boxed();
    let mut deleted = root.store.delete_stream(removed);
    while let Some(r) = deleted.next().await {
        match r {
            Ok(_) => report.objects += 1,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_error(e)),
        }
    }
    Ok(report)
}

/// Deletes every object under `prefix`, and on a local file system the directory itself
/// (object deletion leaves directories behind there).
pub(crate) async fn delete_prefix(
    root: &StoreRoot,
    prefix: &object_store::path::Path,
) -> Result<()> {
    let locations = root
        .store
        .list(Some(prefix))
        .map(|m| m.map(|m| m.location))
        .boxed();
    let mut deleted = root.store.delete_stream(locations);
    while let Some(r) = deleted.next().await {
        match r {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if root.url.as_str().starts_with("file://") {
        remove_empty_dirs(&std::path::PathBuf::from(format!("/{prefix}"))).await;
    }
    Ok(())
}

/// Whether the local file or directory `dir` was last modified more than `ttl` ago (false when it
/// cannot be read: nothing is removed on a guess).
fn local_dir_idle_for(dir: &std::path::Path, ttl: Duration) -> bool {
    std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|idle| idle > ttl)
}

/// Removes `dir` and the directories below it that are empty, deepest first. Never a file:
/// one written after the objects were listed (by a session this pass took for gone, or a
/// task still running) keeps its directories, so nothing is removed that was not listed.
async fn remove_empty_dirs(dir: &std::path::Path) {
    let dir = dir.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || remove_empty_dirs_blocking(&dir)).await;
}

/// Removes the files under `dir` idle for more than `ttl` (a killed session's partial
/// writes, which an object listing skips), then the directories left empty.
async fn remove_stale(dir: &std::path::Path, ttl: Duration) {
    fn sweep(dir: &std::path::Path, ttl: Duration) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => sweep(&path, ttl),
                    Ok(_) if local_dir_idle_for(&path, ttl) => {
                        let _ = std::fs::remove_file(&path);
                    }
                    _ => {}
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    let dir = dir.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || sweep(&dir, ttl)).await;
}

fn remove_empty_dirs_blocking(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs_blocking(&entry.path());
            }
        }
    }
    // Fails, as it should, while anything is left inside.
    let _ = std::fs::remove_dir(dir);
}
