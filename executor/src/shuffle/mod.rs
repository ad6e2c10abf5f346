//! The shuffle: map tasks write one object each, reducers read byte ranges of them.
//!
//! ```text
//! {shuffle_root}/{job}/{stage}/{map_partition}-{attempt}.arrow
//!   [ range 0: Arrow IPC stream (lz4) | range 1 | ... | range R-1 ]   one range per reduce partition
//! ```
//!
//! Each range is a self-contained, compressed Arrow IPC stream with its length and CRC-32 in
//! the [`MapStatus`](kiln_planner::task::MapStatus); a reader fetches only its range and
//! verifies both before decoding.

mod reader;
mod writer;

use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::path::Path;
use object_store::ObjectStore;
use url::Url;

pub use reader::{ReadLocation, ShuffleReaderExec};
pub use writer::{new_partitioner, write_task_output, MapOutputId};

use crate::error::{ExecError, Result};

/// A resolved shuffle (or cache) root: the store and the path prefix inside it.
#[derive(Clone, Debug)]
pub struct StoreRoot {
    /// The store's URL (scheme and authority), as registered in the runtime.
    pub url: ObjectStoreUrl,
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix inside the store.
    pub prefix: Path,
}

impl StoreRoot {
    /// Resolves a root URL such as `file:///tmp/kiln/shuffle`, `memory://shuffle/` or
    /// `s3://bucket/prefix` against the stores registered in `runtime`.
    ///
    /// # Errors
    /// [`ExecError::InvalidLocation`] for a malformed URL or one with no registered store.
    pub fn resolve(root: &str, runtime: &RuntimeEnv) -> Result<Self> {
        let parsed = Url::parse(root).map_err(|e| ExecError::InvalidLocation {
            url: root.to_string(),
            reason: e.to_string(),
        })?;
        let store_url = format!("{}://{}", parsed.scheme(), parsed.authority());
        let url = ObjectStoreUrl::parse(&store_url).map_err(|e| ExecError::InvalidLocation {
            url: root.to_string(),
            reason: e.to_string(),
        })?;
        let store = runtime
            .object_store(&url)
            .map_err(|e| ExecError::InvalidLocation {
                url: root.to_string(),
                reason: e.to_string(),
            })?;
        let prefix =
            Path::from_url_path(parsed.path()).map_err(|e| ExecError::InvalidLocation {
                url: root.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self { url, store, prefix })
    }

    /// The prefix holding all shuffle objects of `job`.
    pub fn job_prefix(&self, job: &str) -> Path {
        self.prefix.clone().join(job)
    }

    /// The object one map task attempt writes.
    pub fn map_output_path(&self, job: &str, stage: u32, map_partition: u32, attempt: u32) -> Path {
        self.job_prefix(job)
            .join(stage.to_string())
            .join(format!("{map_partition}-{attempt}.arrow"))
    }
}
