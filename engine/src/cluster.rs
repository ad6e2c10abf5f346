//! Cluster mode on the driver: the gRPC server executors dial, and `local_cluster` executor
//! processes started (and stopped) with the session.
//!
//! ```text
//!  SessionBuilder::local_cluster(n)          SessionBuilder::listen(addr).wait_for_executors(n)
//!     token = random, server on 127.0.0.1:0      token from KILN_AUTH_TOKEN / auth_token(..)
//!     spawn n × `kiln executor --driver ..`      executors started by the operator
//!                 └──────────── both: Membership::wait_for(n) ────────────┘
//!  Session: executors = the RemoteExecutors, in registration order
//!  drop: Shutdown to every executor, server stopped, children killed if still running
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::prelude::SessionConfig;
use kiln_executor::rpc::proto::driver_server::DriverServer;
use kiln_executor::rpc::{AuthToken, CheckToken, DriverService, Membership, MAX_MESSAGE_BYTES};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tracing::warn;

use crate::error::{EngineError, Result};

use crate::config::{AUTH_TOKEN_ENV, EXECUTOR_BIN_ENV};

/// How the session gets its executors.
#[derive(Debug, Clone, Default)]
pub(crate) enum Deployment {
    /// Executors inside the driver's process (the default).
    #[default]
    Embedded,
    /// `n` executor processes on loopback, started and stopped with the session.
    LocalCluster { executors: usize },
    /// Listen on `addr` and wait for `executors` to connect (started by someone else).
    Listen { addr: SocketAddr, executors: usize },
}

/// Settings of the cluster modes.
#[derive(Debug, Clone)]
pub(crate) struct ClusterOptions {
    pub(crate) token: Option<AuthToken>,
    pub(crate) heartbeat: Duration,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) register_timeout: Duration,
    /// TLS: PEM certificate chain and private key of the driver, and the authority that
    /// issued them (what `local_cluster` children trust).
    pub(crate) tls: Option<(PathBuf, PathBuf, PathBuf)>,
    /// Mutual TLS: the authority executors' certificates must be signed by (`local_cluster`
    /// children present the driver's own certificate).
    pub(crate) client_ca: Option<PathBuf>,
    /// Object-store retries handed to `local_cluster` children.
    pub(crate) store_retries: Option<(usize, Duration)>,
    /// Told the driver's address once it listens.
    pub(crate) announce: Option<Announce>,
    /// Executors as pods the driver creates (`kiln.cluster.kubernetes`).
    pub(crate) kubernetes: Option<crate::kubernetes::KubernetesOptions>,
}

/// A callback told the driver's address once it listens.
#[derive(Clone)]
pub(crate) struct Announce(pub(crate) Arc<dyn Fn(SocketAddr) + Send + Sync>);

impl std::fmt::Debug for Announce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Announce")
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            token: None,
            heartbeat: Duration::from_millis(500),
            heartbeat_timeout: Duration::from_secs(10),
            register_timeout: Duration::from_secs(60),
            tls: None,
            client_ca: None,
            store_retries: None,
            announce: None,
            kubernetes: None,
        }
    }
}

/// A running driver endpoint and what it owns.
pub(crate) struct Cluster {
    pub(crate) membership: Arc<Membership>,
    pub(crate) addr: SocketAddr,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    children: Mutex<Vec<Child>>,
    /// The executor pods this session created, deleted with it.
    pods: Mutex<Option<crate::kubernetes::ExecutorPods>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("addr", &self.addr)
            .field("membership", &self.membership)
            .finish()
    }
}

impl Cluster {
    /// Whether the executors were started elsewhere (a listening driver), not as this
    /// process's children (a local cluster).
    pub(crate) fn executors_elsewhere(&self) -> bool {
        self.children.lock().map(|c| c.is_empty()).unwrap_or(false)
    }

    /// Process ids of the executor processes this session started.
    pub(crate) fn child_pids(&self) -> Vec<u32> {
        self.children
            .lock()
            .map(|c| c.iter().filter_map(Child::id).collect())
            .unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let membership = Arc::clone(&self.membership);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { membership.shutdown("session closed").await });
        }
        if let Some(stop) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = stop.send(());
        }
        // Children are started with kill_on_drop: dropping them ends any that are left.
        if let Ok(mut children) = self.children.lock() {
            for c in children.iter_mut() {
                let _ = c.start_kill();
            }
        }
    }
}

/// Starts the driver endpoint for `deployment` and waits for its executors.
pub(crate) async fn start(
    deployment: &Deployment,
    options: &ClusterOptions,
    session_id: &str,
    config: &SessionConfig,
    slots_per_executor: usize,
    memory_per_executor: Option<usize>,
) -> Result<Cluster> {
    let (bind, executors, spawn) = match deployment {
        Deployment::Embedded => {
            return Err(EngineError::Internal("embedded mode has no cluster".into()))
        }
        Deployment::LocalCluster { executors } => {
            (SocketAddr::from(([127, 0, 0, 1], 0)), *executors, true)
        }
        Deployment::Listen { addr, executors } => (*addr, *executors, false),
    };
    let token = match (&options.token, spawn) {
        (Some(t), _) => Some(t.clone()),
        (None, true) => Some(AuthToken::generate()),
        // Pods this driver creates get the token it makes, unless they read it from a Secret
        // (which the driver must then share through the environment).
        (None, false)
            if options
                .kubernetes
                .as_ref()
                .is_some_and(|k| k.token_secret.is_none())
                && std::env::var(AUTH_TOKEN_ENV).is_err() =>
        {
            Some(AuthToken::generate())
        }
        (None, false) => match std::env::var(AUTH_TOKEN_ENV) {
            Ok(t) => Some(AuthToken::new(&t).map_err(|reason| EngineError::InvalidParameter {
                name: "auth_token",
                reason: format!("{AUTH_TOKEN_ENV}: {reason}"),
            })?),
            Err(_) => {
                return Err(EngineError::InvalidParameter {
                    name: "auth_token",
                    reason: format!(
                        "a listening driver needs a shared secret: set {AUTH_TOKEN_ENV} or SessionBuilder::auth_token"
                    ),
                })
            }
        },
    };
    let entries: Vec<(String, String)> = config
        .options()
        .entries()
        .into_iter()
        .filter_map(|e| e.value.map(|v| (e.key, v)))
        .collect();
    let membership = Membership::new(
        session_id.to_string(),
        entries,
        options.heartbeat,
        options.heartbeat_timeout,
    );
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    if let Some(announce) = &options.announce {
        (announce.0)(addr);
    }
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let check = CheckToken(
        token
            .clone()
            .ok_or_else(|| EngineError::Internal("cluster mode always has a token".into()))?,
    );
    let mut server = tonic::transport::Server::builder();
    if let Some((cert, key, _)) = &options.tls {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| EngineError::InvalidParameter {
                name: "tls",
                reason: format!("cannot read {}: {e}", p.display()),
            })
        };
        let identity = Identity::from_pem(read(cert)?, read(key)?);
        let mut tls = ServerTlsConfig::new().identity(identity);
        if let Some(client_ca) = &options.client_ca {
            // Executors must present a certificate this authority signed.
            tls = tls.client_ca_root(Certificate::from_pem(read(client_ca)?));
        }
        server = server
            .tls_config(tls)
            .map_err(|e| EngineError::InvalidParameter {
                name: "tls",
                reason: e.to_string(),
            })?;
    }
    let router = server
        .http2_keepalive_interval(Some(Duration::from_secs(2)))
        .http2_keepalive_timeout(Some(Duration::from_secs(6)))
        .tcp_nodelay(true)
        .add_service(InterceptedService::new(
            DriverServer::new(DriverService::new(Arc::clone(&membership)))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            check,
        ));
    tokio::spawn(async move {
        let incoming = TcpListenerStream::new(listener);
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            })
            .await
        {
            warn!(error = %e, "driver endpoint stopped");
        }
    });
    let cluster = Cluster {
        membership: Arc::clone(&membership),
        addr,
        stop: Mutex::new(Some(stop_tx)),
        children: Mutex::new(Vec::new()),
        pods: Mutex::new(None),
    };
    if let Some(k8s) = &options.kubernetes {
        let pods = create_pods(
            k8s,
            session_id,
            addr,
            executors,
            slots_per_executor,
            memory_per_executor,
            token.as_ref(),
        )
        .await?;
        if let Ok(mut slot) = cluster.pods.lock() {
            *slot = Some(pods);
        }
    }
    if spawn {
        let bin = executor_binary()?;
        let token = token
            .as_ref()
            .map(|t| t.expose().to_string())
            .unwrap_or_default();
        for i in 0..executors {
            let mut cmd = Command::new(&bin);
            let scheme = if options.tls.is_some() {
                "https"
            } else {
                "http"
            };
            cmd.arg("executor")
                .arg("--driver")
                .arg(format!("{scheme}://{addr}"))
                .arg("--slots")
                .arg(slots_per_executor.to_string())
                .arg("--id")
                .arg(format!("exec-{i}"))
                .env(AUTH_TOKEN_ENV, &token)
                .kill_on_drop(true)
                .stdin(std::process::Stdio::null());
            if let Some(m) = memory_per_executor {
                cmd.arg("--memory").arg(m.to_string());
            }
            if let Some((n, t)) = options.store_retries {
                cmd.env(kiln_executor::store::MAX_RETRIES_ENV, n.to_string())
                    .env(
                        kiln_executor::store::RETRY_TIMEOUT_ENV,
                        t.as_secs().to_string(),
                    );
            }
            if let Some((cert, key, ca)) = &options.tls {
                cmd.arg("--tls-ca")
                    .arg(ca)
                    .arg("--tls-domain")
                    .arg("localhost");
                if options.client_ca.is_some() {
                    cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
                }
            }
            let child = cmd.spawn().map_err(|e| EngineError::InvalidParameter {
                name: "local_cluster",
                reason: format!("cannot start the executor binary {bin:?}: {e}"),
            })?;
            if let Ok(mut c) = cluster.children.lock() {
                c.push(child);
            }
        }
    }
    // Wait for the executors, failing fast if a child exits before it registers.
    let deadline = std::time::Instant::now() + options.register_timeout;
    loop {
        let step = Duration::from_millis(200);
        if membership.wait_for(executors, step).await.is_ok() {
            break;
        }
        let exited = cluster.children.lock().ok().and_then(|mut children| {
            children
                .iter_mut()
                .find_map(|c| c.try_wait().ok().flatten())
        });
        if let Some(status) = exited {
            return Err(EngineError::InvalidParameter {
                name: "local_cluster",
                reason: format!(
                    "an executor process exited before registering ({status}); its stderr says why"
                ),
            });
        }
        if std::time::Instant::now() >= deadline {
            let connected = membership.all().len();
            let pods = cluster
                .pods
                .lock()
                .ok()
                .and_then(|p| {
                    p.as_ref().map(|p| {
                        format!(
                            " (executor pods {}: `kubectl describe pod NAME` and `kubectl logs \
                             NAME` say why)",
                            p.names().join(", ")
                        )
                    })
                })
                .unwrap_or_default();
            return Err(EngineError::InvalidParameter {
                name: "executors",
                reason: format!(
                    "{connected} of {executors} executors registered within {:?}{pods}",
                    options.register_timeout
                ),
            });
        }
    }
    Ok(cluster)
}

/// Creates the executor pods of `k8s` for the driver listening on `addr`.
async fn create_pods(
    k8s: &crate::kubernetes::KubernetesOptions,
    session_id: &str,
    addr: SocketAddr,
    executors: usize,
    slots_per_executor: usize,
    memory_per_executor: Option<usize>,
    token: Option<&AuthToken>,
) -> Result<crate::kubernetes::ExecutorPods> {
    use crate::kubernetes::{ExecutorPods, PodTemplate};
    let (client, namespace, owner) = ExecutorPods::resolve(k8s).await?;
    let driver_url = match &k8s.driver_url {
        Some(url) => url.clone(),
        None => {
            let host = std::env::var("KILN_POD_IP")
                .ok()
                .filter(|h| !h.is_empty())
                .or_else(|| std::env::var("HOSTNAME").ok())
                .or_else(|| {
                    std::fs::read_to_string("/etc/hostname")
                        .ok()
                        .map(|h| h.trim().to_string())
                })
                .ok_or_else(|| EngineError::InvalidParameter {
                    name: "kiln.kubernetes.driver_url",
                    reason: "cannot tell the executor pods where the driver is: set it, or \
                             $KILN_POD_IP (the downward API's status.podIP)"
                        .into(),
                })?;
            format!("http://{host}:{}", addr.port())
        }
    };
    let template = PodTemplate {
        session: session_id.to_string(),
        namespace,
        image: k8s.image.clone().unwrap_or_else(|| "kiln:latest".into()),
        image_pull_policy: k8s.image_pull_policy.clone(),
        driver_url,
        owner,
        slots: slots_per_executor,
        memory_bytes: memory_per_executor,
        cpu: k8s.executor_cpu.clone(),
        memory: k8s.executor_memory.clone(),
        token: match &k8s.token_secret {
            Some(secret) => Ok(secret.clone()),
            None => Err(token.map(|t| t.expose().to_string()).unwrap_or_default()),
        },
        env_config_maps: k8s.env_config_maps.clone(),
        env_secrets: k8s.env_secrets.clone(),
        service_account: k8s.service_account.clone(),
    };
    ExecutorPods::create(client, &template, executors).await
}

/// The `kiln` binary: `$KILN_EXECUTOR_BIN`, else `kiln` next to the running program or one
/// directory up (where Cargo puts binaries relative to test executables).
fn executor_binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var(EXECUTOR_BIN_ENV) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let name = format!("kiln{}", std::env::consts::EXE_SUFFIX);
    let candidates = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&name))
        .collect::<Vec<_>>();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| EngineError::InvalidParameter {
            name: "local_cluster",
            reason: format!(
                "the executor binary is not at {candidates:?}: build it with `cargo build -p kiln --bin kiln` or set {EXECUTOR_BIN_ENV}"
            ),
        })
}
