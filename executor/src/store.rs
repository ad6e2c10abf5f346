//! Object stores created on first use from a URL and the standard environment, with bounded
//! retries, for the driver and for executor processes that only learn their stores' URLs from
//! the tasks they receive.

use std::sync::Arc;
use std::time::Duration;

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};
use url::Url;

/// Environment variable: how often a failed object-store request is retried (default 3).
pub const MAX_RETRIES_ENV: &str = "KILN_STORE_MAX_RETRIES";
/// Environment variable: seconds after the first attempt when retries stop (default 30).
pub const RETRY_TIMEOUT_ENV: &str = "KILN_STORE_RETRY_TIMEOUT_SECS";

/// Bounded retries for cloud stores: at most `max_retries` within `timeout` of the first
/// attempt, with exponential backoff. Short on purpose: a task that cannot reach the store
/// fails and is retried by the scheduler, on another executor if need be.
pub fn retry_config(max_retries: usize, timeout: Duration) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries,
        retry_timeout: timeout,
    }
}

/// The retry settings from [`MAX_RETRIES_ENV`] and [`RETRY_TIMEOUT_ENV`] (or the defaults).
pub fn retry_from_env() -> RetryConfig {
    let read = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    retry_config(
        read(MAX_RETRIES_ENV).map_or(3, |v| usize::try_from(v).unwrap_or(usize::MAX)),
        Duration::from_secs(read(RETRY_TIMEOUT_ENV).unwrap_or(30)),
    )
}

/// A store for `url` (scheme and authority) configured from the standard environment
/// (`AWS_*`, `GOOGLE_*`, `AZURE_*`) with `retry`.
///
/// # Errors
/// `memory://` (not shareable across processes), or a URL no store serves.
pub fn store_from_env_with(url: &Url, retry: RetryConfig) -> Result<Arc<dyn ObjectStore>, String> {
    let failed = |e: object_store::Error| format!("cannot open the object store for '{url}': {e}");
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "memory" => {
            return Err(format!(
                "'{url}' is an in-memory store, which executors in other processes cannot see; use a directory or a cloud store URL"
            ))
        }
        "file" => Arc::new(LocalFileSystem::new()),
        "s3" | "s3a" => Arc::new(
            AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_retry(retry)
                .build()
                .map_err(failed)?,
        ),
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry)
                .build()
                .map_err(failed)?,
        ),
        "az" | "adl" | "azure" | "abfs" | "abfss" => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry)
                .build()
                .map_err(failed)?,
        ),
        "http" | "https" => Arc::new(
            HttpBuilder::new()
                .with_url(url.as_str())
                .with_retry(retry)
                .build()
                .map_err(failed)?,
        ),
        other => return Err(format!("no object store serves '{other}://' URLs ('{url}')")),
    };
    Ok(store)
}

/// [`store_from_env_with`] with the retry settings of [`retry_from_env`].
///
/// # Errors
/// As [`store_from_env_with`].
pub fn store_from_env(url: &Url) -> Result<Arc<dyn ObjectStore>, String> {
    store_from_env_with(url, retry_from_env())
}

/// A registry that creates a store for an unknown `s3://`, `gs://`, `az://`, `http(s)://` URL
/// from the standard environment; `file://` is always there.
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
