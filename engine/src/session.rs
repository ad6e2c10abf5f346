//! [`Session`]: the driver, its executors, and the entry points that make DataFrames.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use kiln_executor::rpc::AuthToken;
use kiln_executor::{Executor, ExecutorRuntime, InProcessExecutor};
use kiln_planner::functions::kiln_udfs;
use kiln_planner::predict::{ModelRegistry, Predict};
use kiln_planner::task::ShuffleCompression;
use object_store::ObjectStore;
use url::Url;

use crate::cluster::{Cluster, ClusterOptions, Deployment};
use crate::config::{Config, Source};
use crate::context::short_id;
use crate::context::{SessionInner, StoreResolver};
use crate::error::{EngineError, Result};
use crate::metrics::{Metrics, SessionMetrics};
use crate::scheduler::{Events, Pool};

/// Settings of a session; build one with [`Session::builder`].
#[derive(Debug, Clone)]
pub struct SessionBuilder {
    executors: usize,
    slots_per_executor: usize,
    shuffle_root: Option<String>,
    memory_limit: Option<usize>,
    keep_shuffle_files: bool,
    max_task_attempts: u32,
    batch_size: Option<usize>,
    broadcast_threshold: usize,
    cache_root: Option<String>,
    shuffle_compression: Option<ShuffleCompression>,
    stores: Vec<(Url, Arc<dyn ObjectStore>)>,
    deployment: Deployment,
    cluster: ClusterOptions,
    inject_failures: u32,
    store_retries: Option<(usize, std::time::Duration)>,
    models_dir: Option<PathBuf>,
    orphan_ttl: std::time::Duration,
    ui_port: Option<u16>,
    ui_optional: bool,
    ui_host: String,
    event_log_dir: Option<String>,
    /// The settings this builder was made from ([`Config::builder`]), for `SHOW ALL`.
    config: Option<Config>,
}

impl Default for SessionBuilder {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            executors: 2,
            slots_per_executor: (cores / 2).max(1),
            shuffle_root: None,
            memory_limit: None,
            keep_shuffle_files: false,
            max_task_attempts: 4,
            batch_size: None,
            broadcast_threshold: BROADCAST_THRESHOLD_BYTES,
            cache_root: None,
            shuffle_compression: None,
            stores: Vec::new(),
            deployment: Deployment::Embedded,
            cluster: ClusterOptions::default(),
            inject_failures: 0,
            store_retries: None,
            models_dir: None,
            orphan_ttl: std::time::Duration::from_secs(600),
            ui_port: None,
            ui_optional: false,
            ui_host: "127.0.0.1".to_string(),
            event_log_dir: None,
            config: None,
        }
    }
}

/// Settings become a session: here rather than in `config`, which sits below the session.
impl Config {
    /// A session builder with these settings.
    ///
    /// # Errors
    /// [`EngineError::Config`] for settings that do not fit together, e.g. an empty
    /// `kiln.auth_token` in cluster mode without `$KILN_AUTH_TOKEN`.
    pub fn builder(&self) -> Result<SessionBuilder> {
        let executors = self.usize("kiln.executors")?;
        let mut b = SessionBuilder::default()
            .executors(executors)
            .slots_per_executor(self.usize("kiln.slots_per_executor")?)
            .batch_size(self.usize("kiln.batch_size")?)
            .keep_shuffle_files(self.get("kiln.shuffle.keep_files") == Some("true"))
            .max_task_attempts(
                u32::try_from(self.int("kiln.max_task_attempts")?).unwrap_or(u32::MAX),
            )
            .broadcast_threshold(self.usize("kiln.broadcast_threshold")?)
            .shuffle_compression(match self.get("kiln.shuffle.compression") {
                Some("none") => ShuffleCompression::None,
                Some("zstd") => ShuffleCompression::Zstd,
                _ => ShuffleCompression::Lz4,
            })
            .store_retries(
                self.usize("kiln.store.max_retries")?,
                std::time::Duration::from_secs(self.int("kiln.store.retry_timeout_secs")?),
            )
            .heartbeat_timeout(std::time::Duration::from_secs(
                self.int("kiln.cluster.heartbeat_timeout_secs")?,
            ))
            .orphan_ttl(std::time::Duration::from_secs(
                self.int("kiln.orphan_ttl_secs")?,
            ));
        if let Some(bytes) = self.text("kiln.memory_limit") {
            b = b.memory_limit(bytes.parse().map_err(|_| EngineError::Config {
                key: "kiln.memory_limit".into(),
                reason: format!("not a size: '{bytes}'"),
            })?);
        }
        if let Some(port) = self.text("kiln.ui.port") {
            b = b.ui_port(port.parse().map_err(|_| EngineError::Config {
                key: "kiln.ui.port".into(),
                reason: format!("not a port (0 to 65535): '{port}'"),
            })?);
        }
        if let Some(host) = self.text("kiln.ui.host") {
            b = b.ui_host(host);
        }
        if let Some(dir) = self.text("kiln.eventlog.dir") {
            b = b.event_log_dir(dir);
        }
        if let Some(root) = self.text("kiln.shuffle.root") {
            b = b.shuffle_root(root);
        }
        if let Some(root) = self.text("kiln.cache.root") {
            b = b.cache_root(root);
        }
        if let Some(dir) = self.text("kiln.models_dir") {
            b = b.models_dir(dir);
        }
        if let Some(token) = self.text("kiln.auth_token") {
            b = b.auth_token(token)?;
        }
        let tls: Vec<Option<&str>> = [
            "kiln.cluster.tls_cert",
            "kiln.cluster.tls_key",
            "kiln.cluster.tls_ca",
        ]
        .iter()
        .map(|k| self.text(k))
        .collect();
        match tls.as_slice() {
            [Some(cert), Some(key), Some(ca)] => b = b.tls(cert, key, ca),
            [None, None, None] => {}
            _ => {
                return Err(EngineError::Config {
                    key: "kiln.cluster.tls_cert".into(),
                    reason: "TLS needs kiln.cluster.tls_cert, kiln.cluster.tls_key and \
                             kiln.cluster.tls_ca together (--tls-cert, --tls-key, --tls-ca)"
                        .into(),
                })
            }
        }
        if let Some(client_ca) = self.text("kiln.cluster.tls_client_ca") {
            if tls[0].is_none() {
                return Err(EngineError::Config {
                    key: "kiln.cluster.tls_client_ca".into(),
                    reason: "mutual TLS needs the driver's own TLS settings too \
                             (kiln.cluster.tls_cert, tls_key, tls_ca)"
                        .into(),
                });
            }
            b = b.mutual_tls(client_ca);
        }
        let kubernetes = self.get("kiln.cluster.kubernetes") == Some("true");
        let listen = || -> Result<std::net::SocketAddr> {
            let listen = self.get("kiln.cluster.listen").unwrap_or_default();
            listen.parse().map_err(|_| EngineError::Config {
                key: "kiln.cluster.listen".into(),
                reason: format!("not an address: '{listen}'"),
            })
        };
        b = match self.get("kiln.mode") {
            Some("local_cluster") if kubernetes => {
                return Err(EngineError::Config {
                    key: "kiln.cluster.kubernetes".into(),
                    reason: "a local cluster starts its executors itself; use kiln.mode = cluster or embedded".into(),
                })
            }
            Some("local_cluster") => b.local_cluster(executors),
            Some("cluster") => b.listen(listen()?, executors),
            // Pods elsewhere must reach the driver: every interface, on the configured port.
            _ if kubernetes => b.listen(
                std::net::SocketAddr::from(([0, 0, 0, 0], listen()?.port())),
                executors,
            ),
            _ => b,
        };
        if kubernetes {
            let list = |key: &str| -> Vec<String> {
                self.text(key)
                    .map(|v| {
                        v.split(',')
                            .map(str::trim)
                            .filter(|n| !n.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let text = |key: &str| self.text(key).map(String::from);
            b = b.kubernetes(crate::kubernetes::KubernetesOptions {
                client: None,
                namespace: text("kiln.kubernetes.namespace"),
                image: text("kiln.kubernetes.image"),
                image_pull_policy: text("kiln.kubernetes.image_pull_policy"),
                driver_pod: text("kiln.kubernetes.driver_pod"),
                driver_url: text("kiln.kubernetes.driver_url"),
                executor_cpu: text("kiln.kubernetes.executor_cpu"),
                executor_memory: text("kiln.kubernetes.executor_memory"),
                token_secret: text("kiln.kubernetes.token_secret"),
                env_config_maps: list("kiln.kubernetes.env_config_maps"),
                env_secrets: list("kiln.kubernetes.env_secrets"),
                service_account: text("kiln.kubernetes.service_account"),
            });
        }
        Ok(b.with_config(self.clone()))
    }
}

impl SessionBuilder {
    /// A model catalog: a directory where the models that SQL trains or loads are saved (one
    /// model directory each), and from which every model there is registered when the session
    /// starts, so that a model trained in one session is there in the next. Without it, models
    /// live only as long as the session.
    pub fn models_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.models_dir = Some(dir.into());
        self
    }

    /// Number of in-process executors (default 2).
    pub fn executors(mut self, n: usize) -> Self {
        self.executors = n;
        self
    }

    /// Task slots per executor (default: half the cores, at least 1). The plan is split into
    /// `executors × slots` partitions.
    pub fn slots_per_executor(mut self, n: usize) -> Self {
        self.slots_per_executor = n;
        self
    }

    /// Where shuffle output goes: a local directory, or any object store URL
    /// (`file:///...`, `memory://name/`, `s3://bucket/prefix`). Default: a fresh directory
    /// under the system temporary directory, removed with the session.
    ///
    /// Each session writes under its own prefix of the root, `{root}/kiln-…/`, and holds a
    /// lease on it (see [`orphan_ttl`](Self::orphan_ttl)), so that sessions sharing a root
    /// never meet and a killed one's files can be found and removed.
    pub fn shuffle_root(mut self, root: impl Into<String>) -> Self {
        self.shuffle_root = Some(root.into());
        self
    }

    /// How long the prefixes of a session that stopped renewing its lease (a killed driver)
    /// stay under the shuffle and cache roots before another session on the same roots, or
    /// `kiln gc`, removes them (default 10 minutes; `kiln.orphan_ttl_secs`). A live session
    /// renews its lease every quarter of this.
    pub fn orphan_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.orphan_ttl = ttl;
        self
    }

    /// Serves the web UI and `/metrics` on `port` (0: any free port; a taken port: the next
    /// free one of 16). Off by default for a library session (`kiln.ui.port`); read the
    /// address with [`Session::ui_url`].
    pub fn ui_port(mut self, port: u16) -> Self {
        self.ui_port = Some(port);
        self
    }

    /// Whether a UI that cannot start (no free port) only warns instead of failing the
    /// session (the command line's default UI).
    pub(crate) fn ui_optional(mut self, optional: bool) -> Self {
        self.ui_optional = optional;
        self
    }

    /// The address the UI listens on (default `127.0.0.1`; elsewhere every request must carry
    /// the session's auth token; `kiln.ui.host`).
    pub fn ui_host(mut self, host: impl Into<String>) -> Self {
        self.ui_host = host.into();
        self
    }

    /// Writes the session's event log under `dir`, a directory or object-store URL, as
    /// `<session>.jsonl` (`kiln.eventlog.dir`; format in `docs/eventlog.md`). `kiln history
    /// DIR` serves the UI over the sessions logged there.
    pub fn event_log_dir(mut self, dir: impl Into<String>) -> Self {
        self.event_log_dir = Some(dir.into());
        self
    }

    /// Memory limit in bytes for query execution, shared evenly among executors.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Keep each job's shuffle files after it ends (for debugging). Default: delete them.
    pub fn keep_shuffle_files(mut self, keep: bool) -> Self {
        self.keep_shuffle_files = keep;
        self
    }

    /// Attempts per task before the job fails (default 4).
    pub fn max_task_attempts(mut self, n: u32) -> Self {
        self.max_task_attempts = n;
        self
    }

    /// Compression of shuffle objects (default LZ4). A map task holds its output until it is
    /// written, so compression also lowers peak memory, even on a local disk.
    pub fn shuffle_compression(mut self, compression: ShuffleCompression) -> Self {
        self.shuffle_compression = Some(compression);
        self
    }

    /// Largest estimated join build side, in bytes, that is broadcast (computed once, read by
    /// every probe task) instead of hash-shuffling both sides (default 10 MiB, Spark's
    /// `autoBroadcastJoinThreshold`). 0 turns broadcasts off: every equi-join is partitioned.
    pub fn broadcast_threshold(mut self, bytes: usize) -> Self {
        self.broadcast_threshold = bytes;
        self
    }

    /// Root URL or directory of the cache store, where cached training partitions are kept for
    /// recovery (default: `cache/` under the shuffle root).
    pub fn cache_root(mut self, root: impl Into<String>) -> Self {
        self.cache_root = Some(root.into());
        self
    }

    /// Rows per Arrow batch (default: DataFusion's 8192).
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = Some(rows);
        self
    }

    /// Registers an object store for a URL (scheme and authority, e.g. `s3://bucket`), used for
    /// sources, sinks and the shuffle root. Stores for `file://` and `memory://` URLs and for
    /// cloud URLs configured from the environment are created automatically.
    pub fn object_store(mut self, url: Url, store: Arc<dyn ObjectStore>) -> Self {
        self.stores.push((url, store));
        self
    }

    /// Runs the executors as `executors` separate processes on this machine (Spark's
    /// `local-cluster`): the driver listens on a loopback port with a fresh random token,
    /// starts `kiln executor` children (the `kiln` binary next to this program, or
    /// `$KILN_EXECUTOR_BIN`) and stops them with the session. The shuffle and cache roots must
    /// be visible to every process (a directory or a cloud store, not `memory://`).
    pub fn local_cluster(mut self, executors: usize) -> Self {
        self.executors = executors;
        self.deployment = Deployment::LocalCluster { executors };
        self
    }

    /// Listens on `addr` for executors started elsewhere (`kiln executor --driver URL`) and
    /// waits, when building, until `executors` have registered. They must present the token
    /// from [`auth_token`](Self::auth_token) or `$KILN_AUTH_TOKEN`.
    pub fn listen(mut self, addr: std::net::SocketAddr, executors: usize) -> Self {
        self.executors = executors;
        self.deployment = Deployment::Listen { addr, executors };
        self
    }

    /// Creates the executors as Kubernetes pods through the Kubernetes API when the session
    /// starts, and deletes them when it ends (Spark's model on Kubernetes): the driver listens
    /// (on `0.0.0.0:7077` unless [`listen`](Self::listen) says otherwise), creates one pod per
    /// executor ([`executors`](Self::executors)) from `options.image` running
    /// `kiln executor --driver URL`, owned by the driver's own pod and labelled
    /// `kiln.dev/session=ID`, and waits for them to register. With no token given, a random
    /// one is made and written into the pods unless `options.token_secret` names a Secret
    /// holding it. TLS between driver and executor pods is not available this way yet.
    pub fn kubernetes(mut self, options: crate::kubernetes::KubernetesOptions) -> Self {
        self.cluster.kubernetes = Some(options);
        self
    }

    /// The cluster's shared secret (default: `$KILN_AUTH_TOKEN` when listening, a random one
    /// for `local_cluster`).
    ///
    /// # Errors
    /// An empty token.
    pub fn auth_token(mut self, token: &str) -> Result<Self> {
        self.cluster.token =
            Some(
                AuthToken::new(token).map_err(|reason| EngineError::InvalidParameter {
                    name: "auth_token",
                    reason,
                })?,
            );
        Ok(self)
    }

    /// Serves executors over TLS with this PEM certificate chain and private key, issued by
    /// the authority `ca_pem`. Executors then dial `https://` and check the certificate
    /// (`kiln executor --tls-ca PEM`); `local_cluster` children trust `ca_pem` and expect the
    /// certificate to name `localhost`.
    pub fn tls(
        mut self,
        cert_pem: impl Into<PathBuf>,
        key_pem: impl Into<PathBuf>,
        ca_pem: impl Into<PathBuf>,
    ) -> Self {
        self.cluster.tls = Some((cert_pem.into(), key_pem.into(), ca_pem.into()));
        self
    }

    /// Mutual TLS (with [`tls`](Self::tls)): executors must present a certificate signed by
    /// the authority `client_ca_pem` (`kiln executor --tls-cert PEM --tls-key PEM`);
    /// `local_cluster` children present the driver's own certificate.
    pub fn mutual_tls(mut self, client_ca_pem: impl Into<PathBuf>) -> Self {
        self.cluster.client_ca = Some(client_ca_pem.into());
        self
    }

    /// How long an executor may stay silent before it is declared lost (default 10 s; they
    /// heartbeat every 500 ms).
    pub fn heartbeat_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.cluster.heartbeat_timeout = timeout;
        self
    }

    /// Retries of requests to cloud object stores: at most `max_retries` within `timeout` of
    /// the first attempt (default 3 within 30 s, or `KILN_STORE_MAX_RETRIES` /
    /// `KILN_STORE_RETRY_TIMEOUT_SECS`). `local_cluster` executors get the same settings.
    pub fn store_retries(mut self, max_retries: usize, timeout: std::time::Duration) -> Self {
        self.store_retries = Some((max_retries, timeout));
        self
    }

    /// Fault injection, for testing recovery: the first `attempts` attempts of every task
    /// fail on the executor with a retryable error (default 0). With fewer than
    /// `max_task_attempts` injected failures, results must not change.
    pub fn inject_task_failures(mut self, attempts: u32) -> Self {
        self.inject_failures = attempts;
        self
    }

    /// Calls `announce` with the driver's address once it listens for executors (in
    /// [`listen`](Self::listen) mode, before waiting for them): how a program learns the port
    /// when it asked for port 0.
    pub fn on_listen(
        mut self,
        announce: impl Fn(std::net::SocketAddr) + Send + Sync + 'static,
    ) -> Self {
        self.cluster.announce = Some(crate::cluster::Announce(Arc::new(announce)));
        self
    }

    /// Remembers the settings the builder was made from, so the session reports their
    /// sources.
    pub(crate) fn with_config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// The settings the session will run with: each value as this builder holds it, with its
    /// source from the [`Config`] it was made from (or `api` where a method changed it).
    fn effective_config(&self, addr: Option<std::net::SocketAddr>) -> Config {
        let base = self.config.clone().unwrap_or_else(|| {
            let mut c = Config::new();
            // Without a config, a session keeps no model catalog.
            let _ = c.set("kiln.models_dir", "", Source::Default);
            c
        });
        let retry = kiln_executor::store::retry_from_env();
        let (max_retries, retry_timeout) = self
            .store_retries
            .unwrap_or((retry.max_retries, retry.retry_timeout));
        let (mode, listen) = match &self.deployment {
            Deployment::Embedded => ("embedded", None),
            Deployment::LocalCluster { .. } => ("local_cluster", None),
            Deployment::Listen { addr: a, .. } => ("cluster", Some(addr.unwrap_or(*a))),
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let actual: Vec<(&str, String)> = vec![
            ("kiln.mode", mode.to_string()),
            ("kiln.executors", self.executors.to_string()),
            (
                "kiln.slots_per_executor",
                self.slots_per_executor.to_string(),
            ),
            (
                "kiln.memory_limit",
                self.memory_limit.map(|m| m.to_string()).unwrap_or_default(),
            ),
            (
                "kiln.batch_size",
                self.batch_size.unwrap_or(8192).to_string(),
            ),
            ("kiln.shuffle.root", text(&self.shuffle_root)),
            (
                "kiln.shuffle.compression",
                match self.shuffle_compression.unwrap_or(ShuffleCompression::Lz4) {
                    ShuffleCompression::None => "none",
                    ShuffleCompression::Lz4 => "lz4",
                    ShuffleCompression::Zstd => "zstd",
                }
                .to_string(),
            ),
            (
                "kiln.shuffle.keep_files",
                self.keep_shuffle_files.to_string(),
            ),
            ("kiln.cache.root", text(&self.cache_root)),
            ("kiln.max_task_attempts", self.max_task_attempts.to_string()),
            (
                "kiln.orphan_ttl_secs",
                self.orphan_ttl.as_secs().to_string(),
            ),
            (
                "kiln.ui.port",
                self.ui_port.map(|p| p.to_string()).unwrap_or_default(),
            ),
            ("kiln.ui.host", self.ui_host.clone()),
            ("kiln.eventlog.dir", text(&self.event_log_dir)),
            (
                "kiln.broadcast_threshold",
                self.broadcast_threshold.to_string(),
            ),
            (
                "kiln.models_dir",
                self.models_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            ),
            (
                "kiln.cluster.listen",
                listen.map_or_else(
                    || {
                        base.get("kiln.cluster.listen")
                            .unwrap_or_default()
                            .to_string()
                    },
                    |a| a.to_string(),
                ),
            ),
            (
                "kiln.auth_token",
                self.cluster
                    .token
                    .as_ref()
                    .map(|t| t.expose().to_string())
                    .unwrap_or_default(),
            ),
            (
                "kiln.cluster.heartbeat_timeout_secs",
                self.cluster.heartbeat_timeout.as_secs().to_string(),
            ),
            (
                "kiln.cluster.tls_cert",
                path_text(self.cluster.tls.as_ref().map(|t| &t.0)),
            ),
            (
                "kiln.cluster.tls_key",
                path_text(self.cluster.tls.as_ref().map(|t| &t.1)),
            ),
            (
                "kiln.cluster.tls_ca",
                path_text(self.cluster.tls.as_ref().map(|t| &t.2)),
            ),
            (
                "kiln.cluster.tls_client_ca",
                path_text(self.cluster.client_ca.as_ref()),
            ),
            ("kiln.store.max_retries", max_retries.to_string()),
            (
                "kiln.store.retry_timeout_secs",
                retry_timeout.as_secs().to_string(),
            ),
        ];
        let mut out = base.clone();
        for (key, value) in actual {
            if base.get(key) != Some(value.as_str()) {
                // Values the builder holds were valid when they were set.
                let _ = out.set(key, &value, Source::Api);
            }
        }
        out
    }

    /// Starts the driver and its executors.
    ///
    /// # Errors
    /// [`EngineError::InvalidParameter`] for zero executors or slots or attempts, or a shuffle
    /// root that is not a valid URL or path.
    pub async fn build(mut self) -> Result<Session> {
        if self.cluster.kubernetes.is_some() {
            match self.deployment {
                Deployment::Embedded => {
                    self.deployment = Deployment::Listen {
                        addr: std::net::SocketAddr::from(([0, 0, 0, 0], 7077)),
                        executors: self.executors,
                    }
                }
                Deployment::LocalCluster { .. } => {
                    return Err(EngineError::InvalidParameter {
                        name: "kubernetes",
                        reason: "a local cluster starts its executors itself".into(),
                    })
                }
                Deployment::Listen { .. } => {}
            }
            if self.cluster.tls.is_some() {
                return Err(EngineError::InvalidParameter {
                    name: "kubernetes",
                    reason: "TLS between the driver and executor pods it creates is not \
                             available yet; run executors as a Deployment (deploy/kubernetes/) \
                             for TLS"
                        .into(),
                });
            }
        }
        if self.executors == 0 {
            return Err(EngineError::InvalidParameter {
                name: "executors",
                reason: "must be >= 1, got 0".to_string(),
            });
        }
        if self.slots_per_executor == 0 {
            return Err(EngineError::InvalidParameter {
                name: "slots_per_executor",
                reason: "must be >= 1, got 0".to_string(),
            });
        }
        if self.max_task_attempts == 0 {
            return Err(EngineError::InvalidParameter {
                name: "max_task_attempts",
                reason: "must be >= 1, got 0".to_string(),
            });
        }
        if self.cluster.client_ca.is_some() && self.cluster.tls.is_none() {
            return Err(EngineError::InvalidParameter {
                name: "mutual_tls",
                reason: "mutual TLS needs the driver's own TLS too: call tls(cert, key, ca)"
                    .to_string(),
            });
        }
        let session_id = format!("kiln-{}", short_id());
        // The roots the user named (or the temporary directory), and the session's own prefix
        // of each: see `crate::orphans`.
        let (base_shuffle, owned_dir) = match &self.shuffle_root {
            Some(root) => (root_url(root)?, None),
            None => {
                let tmp = std::env::temp_dir();
                let dir = tmp.join(&session_id);
                std::fs::create_dir_all(&dir)?;
                let url = Url::from_directory_path(&tmp).map_err(|()| {
                    EngineError::Internal(format!("temporary directory {tmp:?} is not absolute"))
                })?;
                (url.to_string(), Some(dir))
            }
        };
        let shuffle_root = format!("{base_shuffle}{session_id}/");

        let registry: Arc<DefaultObjectStoreRegistry> = Arc::new(DefaultObjectStoreRegistry::new());
        for (url, store) in &self.stores {
            registry.register_store(url, Arc::clone(store));
        }
        let retry = match self.store_retries {
            Some((n, t)) => kiln_executor::store::retry_config(n, t),
            None => kiln_executor::store::retry_from_env(),
        };
        let stores = StoreResolver {
            registry: Arc::clone(&registry),
            retry,
        };
        stores.ensure(&base_shuffle)?;
        let base_cache = match &self.cache_root {
            Some(root) => Some(root_url(root)?),
            None => None,
        };
        let cache_root = match &base_cache {
            Some(root) => format!("{root}{session_id}/"),
            None => format!("{shuffle_root}cache/"),
        };
        if let Some(root) = &base_cache {
            stores.ensure(root)?;
        }
        stores.check_root("shuffle_root", &base_shuffle).await?;
        if let Some(root) = &base_cache {
            if !root.starts_with(&base_shuffle) {
                stores.check_root("cache_root", root).await?;
            }
        }

        let shuffle_compression = self.shuffle_compression.unwrap_or(ShuffleCompression::Lz4);
        let total_slots = self.executors * self.slots_per_executor;
        let mut config = driver_config(total_slots, self.batch_size, self.broadcast_threshold);
        if let Some(settings) = &self.config {
            for (key, value) in settings.datafusion_options() {
                config
                    .options_mut()
                    .set(key, value)
                    .map_err(|e| EngineError::Config {
                        key: key.to_string(),
                        reason: e.strip_backtrace(),
                    })?;
            }
        }

        let driver_runtime = runtime_env(Arc::clone(&registry), None)?;
        let ctx = SessionContext::new_with_config_rt(config.clone(), driver_runtime);
        for udf in kiln_udfs() {
            ctx.register_udf(udf.as_ref().clone());
        }
        let models = Arc::new(ModelRegistry::default());
        ctx.register_udf(Predict::udf(Arc::clone(&models)));
        ctx.register_udf(Predict::proba_udf(Arc::clone(&models)));

        let per_executor_memory = self.memory_limit.map(|m| (m / self.executors).max(1));
        let mut executors: Vec<Arc<dyn Executor>> = Vec::with_capacity(self.executors);
        let mut cluster = None;
        if let Deployment::Embedded = self.deployment {
            for i in 0..self.executors {
                let rt = runtime_env(Arc::clone(&registry), per_executor_memory)?;
                let runtime = ExecutorRuntime::new(format!("exec-{i}"), config.clone(), rt);
                executors.push(Arc::new(
                    InProcessExecutor::new(Arc::new(runtime), self.slots_per_executor)
                        .with_memory_limit(per_executor_memory.map(|m| m as u64)),
                ));
            }
        } else {
            if shuffle_root.starts_with("memory://") || cache_root.starts_with("memory://") {
                return Err(EngineError::InvalidParameter {
                    name: "shuffle_root",
                    reason: "executors in other processes cannot see a memory:// store; use a directory or a cloud store URL".into(),
                });
            }
            let mut cluster_options = self.cluster.clone();
            cluster_options.store_retries = self.store_retries;
            let started = crate::cluster::start(
                &self.deployment,
                &cluster_options,
                &session_id,
                &config,
                self.slots_per_executor,
                per_executor_memory,
            )
            .await?;
            for e in started.membership.all().into_iter().take(self.executors) {
                executors.push(e);
            }
            cluster = Some(started);
        }

        let mut lease_roots = vec![base_shuffle];
        if let Some(cache) = base_cache.filter(|c| *c != lease_roots[0]) {
            lease_roots.push(cache);
        }
        let (leases, orphan_roots) = take_leases(
            &lease_roots,
            &session_id,
            self.orphan_ttl,
            &ctx.runtime_env(),
            owned_dir.is_some(),
        )
        .await?;

        let settings = self.effective_config(cluster.as_ref().map(|c: &Cluster| c.addr));
        let mode = settings.get("kiln.mode").unwrap_or_default().to_string();
        // What watches the session: the UI's status store and metrics, the event log.
        let mut listeners: Vec<Arc<dyn crate::scheduler::Listener>> = Vec::new();
        if let Some(dir) = &self.event_log_dir {
            stores.ensure(dir)?;
            listeners.push(Arc::new(crate::eventlog::EventLog::open(
                dir,
                &session_id,
                &ctx.runtime_env(),
            )?));
        }
        let watch = match self.ui_port {
            Some(_) => {
                let status = Arc::new(crate::status::Status::default());
                let counters: Arc<std::sync::OnceLock<std::sync::Weak<SessionInner>>> =
                    Arc::default();
                let read = Arc::clone(&counters);
                let prometheus = Arc::new(crate::prom::Prometheus::new(Arc::new(move || {
                    read.get()
                        .and_then(std::sync::Weak::upgrade)
                        .map(|inner| inner.metrics.snapshot())
                        .unwrap_or_default()
                })));
                listeners.push(Arc::clone(&status) as Arc<dyn crate::scheduler::Listener>);
                listeners.push(Arc::clone(&prometheus) as Arc<dyn crate::scheduler::Listener>);
                Some((status, prometheus, counters))
            }
            None => None,
        };
        let ui_token = self
            .cluster
            .token
            .as_ref()
            .map(|t| t.expose().to_string())
            .or_else(|| std::env::var(crate::config::AUTH_TOKEN_ENV).ok());
        let session = Session {
            inner: Arc::new(SessionInner {
                id: session_id,
                ctx,
                pool: Pool::new(executors),
                shuffle_root,
                shuffle_compression,
                keep_shuffle_files: AtomicBool::new(self.keep_shuffle_files),
                max_task_attempts: AtomicU32::new(self.max_task_attempts),
                stores,
                jobs: AtomicU64::new(0),
                fits: AtomicU64::new(0),
                cache_root,
                models,
                metrics: SessionMetrics::default(),
                cluster,
                inject_failures: self.inject_failures,
                lost: Default::default(),
                owned_dir,
                models_dir: self.models_dir,
                settings: std::sync::Mutex::new(settings),
                plan_hook: std::sync::OnceLock::new(),
                leases,
                orphan_roots,
                orphan_ttl: self.orphan_ttl,
                orphan_pass: std::sync::Mutex::new(None),
                events: Events::with_listeners(listeners),
                ui: std::sync::OnceLock::new(),
            }),
        };
        session.inner.events.emit(crate::Event::SessionStarted {
            session: session.inner.id.clone(),
            version: crate::scheduler::EVENT_LOG_VERSION,
            kiln: env!("CARGO_PKG_VERSION").to_string(),
            mode,
        });
        for executor in session.inner.pool.executors() {
            session
                .inner
                .events
                .emit(crate::Event::joined(executor.as_ref()));
        }
        if let (Some(port), Some((status, prometheus, counters))) = (self.ui_port, watch) {
            let _ = counters.set(Arc::downgrade(&session.inner));
            let weak = Arc::downgrade(&session.inner);
            let pool = Arc::downgrade(&session.inner);
            let live = crate::ui::Live {
                status,
                prometheus,
                heard: Box::new(move || {
                    pool.upgrade()
                        .map(|inner| {
                            inner
                                .pool
                                .executors()
                                .iter()
                                .filter_map(|e| Some((e.id().to_string(), e.last_heard()?)))
                                .collect()
                        })
                        .unwrap_or_default()
                }),
                models: Box::new(move || {
                    weak.upgrade()
                        .map(|inner| model_rows(&Session { inner }))
                        .unwrap_or_default()
                }),
            };
            match crate::ui::serve(
                &self.ui_host,
                port,
                crate::ui::session_pages(Arc::new(live), ""),
                ui_token,
            )
            .await
            {
                Ok(server) => {
                    tracing::info!(url = %format!("http://{}/", server.addr()), "web UI");
                    let _ = session.inner.ui.set(server);
                }
                Err(e) if self.ui_optional => {
                    tracing::warn!(error = %e, "no web UI");
                }
                Err(e) => return Err(e),
            }
        }
        session.start_orphan_pass();
        if let Some(cluster) = &session.inner.cluster {
            admit_joiners(&session.inner, Arc::clone(&cluster.membership));
        }
        session.open_model_catalog().await?;
        Ok(session)
    }
}

/// The models page's rows: the session's models with their training reports.
fn model_rows(session: &Session) -> Vec<crate::ui::ModelRow> {
    let mut names = session.model_names();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let m = session.model(&name)?;
            Some(crate::ui::ModelRow {
                algorithm: m.algorithm().to_string(),
                features: m.feature_names().to_vec(),
                label: m.label().unwrap_or_default().to_string(),
                params: m.params_json().to_string(),
                report: m.report().map(kiln_ml::TrainingReport::rows),
                name,
            })
        })
        .collect()
}

/// One pass of [`Session::remove_orphans`] over `root`, one of the session's leased roots.
async fn orphan_pass(inner: &SessionInner, root: &str) -> Result<crate::orphans::OrphanReport> {
    let resolved = kiln_executor::shuffle::StoreRoot::resolve(root, &inner.ctx.runtime_env())?;
    crate::orphans::remove_orphans(&resolved, root, &inner.id, inner.orphan_ttl).await
}

/// Takes the session's lease on each root that can outlive the process (not `memory://`),
/// returning the leases and the roots they are on. A lease that cannot be written fails the
/// session's start (the store refuses writes), except on the temporary directory the session
/// chose itself.
async fn take_leases(
    roots: &[String],
    session_id: &str,
    ttl: std::time::Duration,
    runtime: &RuntimeEnv,
    temporary: bool,
) -> Result<(Vec<crate::orphans::Lease>, Vec<String>)> {
    let mut leases = Vec::new();
    let mut held = Vec::new();
    for root in roots.iter().filter(|r| !r.starts_with("memory://")) {
        let resolved = kiln_executor::shuffle::StoreRoot::resolve(root, runtime)?;
        match crate::orphans::Lease::take(&resolved, session_id, ttl).await {
            Ok(lease) => {
                leases.push(lease);
                held.push(root.clone());
            }
            Err(e) if temporary => {
                tracing::debug!(root = %root, error = %e, "no lease on the temporary directory");
            }
            Err(e) => return Err(e),
        }
    }
    Ok((leases, held))
}

/// Adds every executor that connects to a running session to its pool, for as long as the
/// session lives: executors started after the session (a scaled-up deployment, a restarted
/// process or pod) take tasks from the next scheduling decision on.
fn admit_joiners(inner: &Arc<SessionInner>, membership: Arc<kiln_executor::rpc::Membership>) {
    let weak = Arc::downgrade(inner);
    tokio::spawn(async move {
        loop {
            let changed = membership.changed();
            let Some(inner) = weak.upgrade() else { break };
            for executor in membership.all() {
                if executor.is_alive() {
                    let joined = crate::Event::joined(executor.as_ref());
                    if inner.pool.join(executor) {
                        tracing::info!(?joined, session = %inner.id, "executor joined");
                        inner.events.emit(joined);
                    }
                }
            }
            drop(inner);
            changed.await;
        }
    });
}

fn path_text(path: Option<&PathBuf>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_default()
}

/// Default largest estimated build side, in bytes, that a join broadcasts instead of shuffling.
const BROADCAST_THRESHOLD_BYTES: usize = 10 << 20;
/// Largest estimated build side, in rows, broadcast when its size in bytes is unknown.
const BROADCAST_THRESHOLD_ROWS: usize = 1 << 20;

/// DataFusion settings the driver plans with. Exchanges become stage boundaries, so the plan
/// must not rely on state shared between operators across an exchange.
fn driver_config(
    target_partitions: usize,
    batch_size: Option<usize>,
    broadcast_bytes: usize,
) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_target_partitions(target_partitions)
        .with_information_schema(true);
    if let Some(rows) = batch_size {
        config = config.with_batch_size(rows);
    }
    let opts = config.options_mut();
    // Exchanges become stage boundaries: no operator may share state across them (see
    // `distributed_options`, which planning also applies over what a session SETs).
    crate::distributed::distributed_options(opts);
    // Broadcast build sides up to Spark's default threshold (autoBroadcastJoinThreshold,
    // 10 MB): one stage computes the build side once and every probe task reads it, which
    // saves hash-shuffling the (usually far larger) probe side. DataFusion's single-node
    // defaults (1 MB / 128k rows) are tuned for building one in-memory table per process.
    set_broadcast_threshold(opts, broadcast_bytes);
    config
}

/// Broadcasts join build sides estimated at up to `bytes` (0: never).
fn set_broadcast_threshold(opts: &mut datafusion::config::ConfigOptions, bytes: usize) {
    opts.optimizer.hash_join_single_partition_threshold = bytes;
    opts.optimizer.hash_join_single_partition_threshold_rows = if bytes == 0 {
        0
    } else {
        BROADCAST_THRESHOLD_ROWS
    };
}

fn runtime_env(
    registry: Arc<DefaultObjectStoreRegistry>,
    memory_limit: Option<usize>,
) -> Result<Arc<RuntimeEnv>> {
    let mut builder = RuntimeEnvBuilder::new().with_object_store_registry(registry);
    if let Some(limit) = memory_limit {
        builder = builder.with_memory_limit(limit, 1.0);
    }
    Ok(builder.build_arc()?)
}

/// Normalizes a shuffle root: a URL stays, a path becomes a `file://` directory URL.
fn root_url(root: &str) -> Result<String> {
    if root.contains("://") {
        let mut url = Url::parse(root).map_err(|e| EngineError::InvalidParameter {
            name: "shuffle_root",
            reason: format!("'{root}' is not a valid URL: {e}"),
        })?;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        return Ok(url.to_string());
    }
    let path = PathBuf::from(root);
    let abs = if path.is_absolute() {
        path
    } else {
        std::env::current_dir()?.join(path)
    };
    std::fs::create_dir_all(&abs)?;
    Url::from_directory_path(&abs)
        .map(|u| u.to_string())
        .map_err(|()| EngineError::InvalidParameter {
            name: "shuffle_root",
            reason: format!("'{root}' is not a usable directory"),
        })
}

/// One executor of a session, as [`Session::executors`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorInfo {
    /// Its name (`kiln executor --id`, made unique among the live ones by the driver).
    pub id: String,
    /// Its task slots.
    pub slots: usize,
    /// Whether it still answers.
    pub alive: bool,
}

/// A Kiln session: a driver with its executors. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> kiln::Result<()> {
/// use kiln::prelude::*;
/// let kiln = Session::local().await?;
/// let df = kiln.sql("SELECT 1 AS one").await?;
/// df.show().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Session {
    pub(crate) inner: Arc<SessionInner>,
}

impl Session {
    /// A handle on a session's shared state.
    pub(crate) fn from_inner(inner: &Arc<SessionInner>) -> Self {
        Self {
            inner: Arc::clone(inner),
        }
    }

    /// The embedded default: a driver and in-process executors, shuffle in a temporary
    /// directory.
    ///
    /// # Errors
    /// If the temporary directory cannot be created.
    pub async fn local() -> Result<Self> {
        Self::builder().build().await
    }

    /// A session whose `executors` run as separate processes on this machine (see
    /// [`SessionBuilder::local_cluster`]).
    ///
    /// # Errors
    /// As [`SessionBuilder::build`], or the executor binary cannot be started.
    pub async fn local_cluster(executors: usize) -> Result<Self> {
        Self::builder().local_cluster(executors).build().await
    }

    /// A builder for other settings.
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    /// Session id (names the default shuffle directory).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Process ids of the executor processes this session started (`local_cluster`), in
    /// executor order; empty in the embedded mode.
    pub fn executor_pids(&self) -> Vec<u32> {
        self.inner
            .cluster
            .as_ref()
            .map(|c| c.child_pids())
            .unwrap_or_default()
    }

    /// The address the driver listens on in cluster mode.
    pub fn driver_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.cluster.as_ref().map(|c| c.addr)
    }

    /// Number of executors that joined the session, lost ones included.
    pub fn executor_count(&self) -> usize {
        self.inner.pool.len()
    }

    /// The executors that joined the session, in joining order, lost ones included: an
    /// executor that joins later (a restarted process, another pod) is one more.
    pub fn executors(&self) -> Vec<ExecutorInfo> {
        self.inner
            .pool
            .executors()
            .iter()
            .map(|e| ExecutorInfo {
                id: e.id().to_string(),
                slots: e.slots(),
                alive: e.is_alive(),
            })
            .collect()
    }

    /// Total task slots of the executors that joined, lost ones included.
    pub fn total_slots(&self) -> usize {
        self.inner.pool.executors().iter().map(|e| e.slots()).sum()
    }

    /// The URL of this session's shuffle files: its own prefix of the shuffle root,
    /// `{root}/kiln-…/`.
    pub fn shuffle_root(&self) -> &str {
        &self.inner.shuffle_root
    }

    /// The URL where this session keeps cached training partitions: its own prefix of the
    /// cache root (by default `cache/` under [`shuffle_root`](Self::shuffle_root)).
    pub fn cache_root(&self) -> &str {
        &self.inner.cache_root
    }

    /// Removes what killed sessions left under this session's shuffle and cache roots: the
    /// prefixes of sessions whose lease expired more than the orphan TTL ago
    /// ([`SessionBuilder::orphan_ttl`], `kiln.orphan_ttl_secs`), and their leases. Every
    /// session makes one such pass in the background when it starts; this waits for it and
    /// makes another. Live sessions are never touched. `kiln gc` runs this.
    ///
    /// # Errors
    /// A store that refuses the listing or the deletes.
    pub async fn remove_orphans(&self) -> Result<crate::orphans::OrphanReport> {
        let started = self
            .inner
            .orphan_pass
            .lock()
            .map_err(|_| EngineError::Internal("orphan pass lock poisoned".into()))?
            .take();
        let mut report = match started {
            Some(pass) => pass.await.unwrap_or_default(),
            None => crate::orphans::OrphanReport::default(),
        };
        for root in &self.inner.orphan_roots {
            report.absorb(orphan_pass(&self.inner, root).await?);
        }
        Ok(report)
    }

    /// The background pass of [`remove_orphans`](Self::remove_orphans) at the session's start.
    fn start_orphan_pass(&self) {
        let inner = Arc::clone(&self.inner);
        let pass = tokio::spawn(async move {
            let mut report = crate::orphans::OrphanReport::default();
            for root in &inner.orphan_roots {
                match orphan_pass(&inner, root).await {
                    Ok(r) => report.absorb(r),
                    Err(e) => {
                        tracing::warn!(root = %root, error = %e, "could not look for orphaned session prefixes")
                    }
                }
            }
            if !report.prefixes.is_empty() {
                tracing::info!(removed = ?report.prefixes, "removed the prefixes of killed sessions");
            }
            report
        });
        if let Ok(mut slot) = self.inner.orphan_pass.lock() {
            *slot = Some(pass);
        }
    }

    /// What the scheduler does from now on: jobs, stages and task attempts, executors joining
    /// and lost, training rounds ([`crate::Event`]). A receiver that falls more than 4,096
    /// events behind misses the oldest (`RecvError::Lagged`); the scheduler never waits for
    /// one.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<crate::Event> {
        self.inner.events.subscribe()
    }

    /// The web UI's address (`http://127.0.0.1:4040/`), when the session serves one
    /// ([`SessionBuilder::ui_port`], `kiln.ui.port`). `/metrics` there is for Prometheus.
    pub fn ui_url(&self) -> Option<String> {
        self.inner
            .ui
            .get()
            .map(|server| format!("http://{}/", server.addr()))
    }

    /// The session's counters so far (kernel rounds, reloaded partitions, lost executors).
    pub fn metrics(&self) -> Metrics {
        self.inner.metrics.snapshot()
    }

    /// What the session is doing now: stages and tasks started and finished so far, and the
    /// running fit's iteration and loss (for progress displays such as `kiln shell`'s).
    pub fn activity(&self) -> crate::Activity {
        self.inner.metrics.activity()
    }

    /// The settings the session runs with, with their sources (secrets included: show them
    /// with [`Config::settings`], which redacts them).
    pub fn config(&self) -> Config {
        self.inner
            .settings
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Changes a setting of the running session: a `kiln.*` setting of
    /// [`Scope::Session`](crate::config::Scope::Session) or a `datafusion.*` option (what
    /// `SET key = value` does in SQL).
    ///
    /// # Errors
    /// [`EngineError::Config`] for an unknown key or a bad value;
    /// [`EngineError::FixedSetting`] for a setting fixed when the session started
    /// (`kiln.executors`, ...).
    pub fn set(&self, key: &str, value: &str) -> Result<()> {
        let mut settings = self.config();
        settings.set(key, value, Source::Set)?;
        if key.to_ascii_lowercase().starts_with("datafusion.") {
            self.inner
                .ctx
                .state_ref()
                .write()
                .config_mut()
                .options_mut()
                .set(key, value)?;
        } else {
            if Config::is_startup(key) {
                return Err(EngineError::FixedSetting {
                    variable: crate::config::env_var(key),
                    key: key.to_ascii_lowercase(),
                    value: self.config().get(key).unwrap_or_default().to_string(),
                });
            }
            // The checked, canonical value.
            let value = settings.get(key).unwrap_or_default().to_string();
            let number = |what: &str| {
                value.parse::<u64>().map_err(|_| EngineError::Config {
                    key: what.to_string(),
                    reason: format!("not a whole number: '{value}'"),
                })
            };
            match key.to_ascii_lowercase().as_str() {
                "kiln.max_task_attempts" => {
                    let n = u32::try_from(number(key)?).unwrap_or(u32::MAX);
                    self.inner.max_task_attempts.store(n, Ordering::Relaxed);
                }
                "kiln.shuffle.keep_files" => {
                    self.inner
                        .keep_shuffle_files
                        .store(value == "true", Ordering::Relaxed);
                }
                "kiln.broadcast_threshold" => {
                    let bytes = usize::try_from(number(key)?).unwrap_or(usize::MAX);
                    let state = self.inner.ctx.state_ref();
                    set_broadcast_threshold(state.write().config_mut().options_mut(), bytes);
                }
                other => {
                    return Err(EngineError::Internal(format!(
                        "the session setting {other} has no effect"
                    )))
                }
            }
        }
        let mut guard = self
            .inner
            .settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = settings;
        Ok(())
    }

    /// Registers, under the same names, the tables and views of `other`'s default schema that
    /// this session does not have (what `kiln shell` keeps when a `SET` restarts its
    /// session). Returns how many it took.
    ///
    /// # Errors
    /// A catalog error of DataFusion's.
    pub async fn adopt_tables(&self, other: &Session) -> Result<usize> {
        let from = other.datafusion_context();
        let Some(schema) = from.catalog("datafusion").and_then(|c| c.schema("public")) else {
            return Ok(0);
        };
        let mut taken = 0;
        for name in schema.table_names() {
            if self.inner.ctx.table_exist(name.as_str())? {
                continue;
            }
            if let Some(table) = schema.table(&name).await? {
                self.inner.ctx.register_table(name.as_str(), table)?;
                taken += 1;
            }
        }
        Ok(taken)
    }

    /// The underlying DataFusion context of the driver (catalog, functions, configuration).
    pub fn datafusion_context(&self) -> &SessionContext {
        &self.inner.ctx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_table_has_the_builders_defaults() {
        let shown = SessionBuilder::default().effective_config(None);
        for s in shown.settings() {
            assert_eq!(s.source, "default", "{} = {}", s.name, s.value);
        }
    }
}
