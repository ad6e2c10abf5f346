//! Object stores created on first use from a URL and the standard environment, for executor
//! processes that only learn their stores' URLs from the tasks they receive.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::ObjectStore;
use url::Url;

/// A registry that creates a store for an unknown `s3://`, `gs://`, `az://`, `http(s)://` URL
/// from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*` variables, lower- or upper-case);
/// `file://` is always there. `memory://` stores cannot be shared between processes and are
/// refused with a message saying so.
#[derive(Debug, Default)]
pub struct EnvObjectStoreRegistry {
    inner: DefaultObjectStoreRegistry,
}

impl EnvObjectStoreRegistry {
    /// An empty registry (plus the local file system).
    pub fn new() -> Self {
        Self::default()
    }
}

/// A store for `url` configured from the environment.
///
/// # Errors
/// `memory://` (not shareable across processes), or a URL `object_store` cannot serve.
pub fn store_from_env(url: &Url) -> Result<Arc<dyn ObjectStore>, String> {
    if url.scheme() == "memory" {
        return Err(format!(
            "'{url}' is an in-memory store, which executors in other processes cannot see; use a directory or a cloud store URL"
        ));
    }
    let options = std::env::vars()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .filter(|(k, _)| {
            k.starts_with("aws_") || k.starts_with("google_") || k.starts_with("azure_")
        });
    object_store::parse_url_opts(url, options)
        .map(|(store, _)| Arc::from(store))
        .map_err(|e| format!("cannot open the object store for '{url}': {e}"))
}

impl ObjectStoreRegistry for EnvObjectStoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.inner.get_store(url) {
            return Ok(store);
        }
        let base = Url::parse(&format!("{}://{}", url.scheme(), url.authority()))
            .map_err(|e| DataFusionError::Configuration(e.to_string()))?;
        let store = store_from_env(&base).map_err(DataFusionError::Configuration)?;
        self.inner.register_store(&base, Arc::clone(&store));
        Ok(store)
    }
}
