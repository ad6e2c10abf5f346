//! Cached training partitions: dense data kept in executor memory, with the same bytes in the
//! cache store so that a partition missing from memory (evicted, or its executor lost) is
//! reloaded instead of recomputed.
//!
//! ```text
//!  cache task ─▶ CachedPartition ─┬─▶ executor memory   (dataset, partition) -> Arc<partition>
//!                                 └─▶ {cache_root}/{dataset}/{partition}-{attempt}.kpart
//!  kernel round ─▶ memory hit, or reload from the store ─▶ kernel on every partition (rayon)
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kiln_ml::CachedPartition;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use crate::error::{ExecError, Result};
use crate::shuffle::StoreRoot;

/// Parts of a large cached partition are uploaded in pieces of this size.
const PART_BYTES: usize = 8 << 20;

/// The partitions of cached datasets an executor holds in memory.
#[derive(Debug, Default)]
pub struct PartitionCache {
    partitions: Mutex<HashMap<(String, u32), Arc<CachedPartition>>>,
    reloads: AtomicU64,
}

impl PartitionCache {
    /// Keeps `partition` of `dataset` in memory.
    pub fn insert(&self, dataset: &str, partition: Arc<CachedPartition>) {
        if let Ok(mut map) = self.partitions.lock() {
            map.insert((dataset.to_string(), partition.index()), partition);
        }
    }

    /// The in-memory partition, if held.
    pub fn get(&self, dataset: &str, partition: u32) -> Option<Arc<CachedPartition>> {
        self.partitions
            .lock()
            .ok()
            .and_then(|map| map.get(&(dataset.to_string(), partition)).cloned())
    }

    /// Drops every in-memory partition of `dataset`; returns how many were held.
    pub fn release(&self, dataset: &str) -> usize {
        let Ok(mut map) = self.partitions.lock() else {
            return 0;
        };
        let before = map.len();
        map.retain(|(d, _), _| d != dataset);
        before - map.len()
    }

    /// Partitions held in memory.
    pub fn len(&self) -> usize {
        self.partitions.lock().map(|map| map.len()).unwrap_or(0)
    }

    /// Whether no partition is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held in memory by all cached partitions.
    pub fn size_bytes(&self) -> usize {
        self.partitions
            .lock()
            .map(|map| map.values().map(|p| p.size_bytes()).sum())
            .unwrap_or(0)
    }

    /// Partitions reloaded from the cache store so far.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// The partition from memory, or else read from `object` in the store (and kept).
    ///
    /// # Errors
    /// [`ExecError::CacheLost`] when the object is missing or its bytes are not a partition.
    pub async fn get_or_load(
        &self,
        root: &StoreRoot,
        dataset: &str,
        partition: u32,
        object: &str,
    ) -> Result<(Arc<CachedPartition>, bool)> {
        if let Some(p) = self.get(dataset, partition) {
            return Ok((p, false));
        }
        let loaded = Arc::new(read_partition(root, object, dataset, partition).await?);
        self.reloads.fetch_add(1, Ordering::Relaxed);
        self.insert(dataset, Arc::clone(&loaded));
        Ok((loaded, true))
    }
}

/// The object holding one cache task attempt's partition.
pub fn partition_path(root: &StoreRoot, dataset: &str, partition: u32, attempt: u32) -> Path {
    root.prefix
        .clone()
        .join(dataset)
        .join(format!("{partition}-{attempt}.kpart"))
}

/// The prefix holding every object of a cached dataset.
pub fn dataset_prefix(root: &StoreRoot, dataset: &str) -> Path {
    root.prefix.clone().join(dataset)
}

/// Writes a partition's bytes: one `put` when small, a multipart upload otherwise.
///
/// # Errors
/// The store's errors.
pub async fn write_partition(root: &StoreRoot, path: &Path, bytes: Vec<u8>) -> Result<u64> {
    let len = bytes.len() as u64;
    let bytes = Bytes::from(bytes);
    if bytes.len() <= PART_BYTES {
        root.store.put(path, PutPayload::from(bytes)).await?;
        return Ok(len);
    }
    let mut upload = root.store.put_multipart(path).await?;
    let result = async {
        let mut offset = 0;
        while offset < bytes.len() {
            let end = (offset + PART_BYTES).min(bytes.len());
            upload
                .put_part(PutPayload::from(bytes.slice(offset..end)))
                .await?;
            offset = end;
        }
        upload.complete().await?;
        Ok::<_, ExecError>(())
    }
    .await;
    if result.is_err() {
        // Best effort: do not leave parts behind in the store.
        let _ = upload.abort().await;
    }
    result.map(|()| len)
}

pub(crate) async fn read_partition(
    root: &StoreRoot,
    object: &str,
    dataset: &str,
    partition: u32,
) -> Result<CachedPartition> {
    let lost = |reason: String| ExecError::CacheLost {
        dataset: dataset.to_string(),
        partition,
        object: object.to_string(),
        reason,
    };
    let path = Path::from(object);
    let bytes = root
        .store
        .get(&path)
        .await
        .map_err(|e| lost(e.to_string()))?
        .bytes()
        .await
        .map_err(|e| lost(e.to_string()))?;
    let part = CachedPartition::from_bytes(&bytes).map_err(|e| lost(e.to_string()))?;
    if part.index() != partition {
        return Err(lost(format!("object holds partition {}", part.index())));
    }
    Ok(part)
}
