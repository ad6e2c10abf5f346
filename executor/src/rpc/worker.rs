//! The executor process's side: dial the driver, register, heartbeat, run what it asks, exit
//! when it goes away.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::prelude::SessionConfig;
use kiln_planner::task::{KernelRequest, TaskDefinition, WireMessage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tracing::{info, warn};

use super::auth::{AuthToken, SendToken};
use super::proto::driver_client::DriverClient;
use super::proto::driver_message::Body as DriverBody;
use super::proto::executor_message::Body as ExecutorBody;
use super::proto::{ExecutorMessage, Heartbeat, Register, Reply, RequestKind};
use super::MAX_MESSAGE_BYTES;
use crate::error::{ExecError, Result};
use crate::runtime::ExecutorRuntime;

/// How an executor process joins a driver.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The driver's URL, e.g. `http://127.0.0.1:7077`.
    pub driver: String,
    /// The shared secret, if the driver requires one.
    pub token: Option<AuthToken>,
    /// Proposed executor id (the driver makes it unique).
    pub id: String,
    /// Tasks run at once.
    pub slots: usize,
    /// Memory limit for task execution.
    pub memory_bytes: Option<usize>,
    /// How long to keep trying to reach the driver at start.
    pub connect_timeout: Duration,
    /// TLS: the PEM certificate authority that signed the driver's certificate, and the name
    /// to check it against (`None`: plaintext).
    pub tls: Option<ClientTls>,
}

/// How an executor checks the driver's TLS certificate.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// PEM of the certificate authority (or the driver's self-signed certificate).
    pub ca_pem: Vec<u8>,
    /// The name the certificate must carry (default: the driver URL's host).
    pub domain: Option<String>,
    /// Mutual TLS: this executor's PEM certificate and private key, for a driver that checks
    /// executors' certificates.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Connects to the driver and serves it until it closes the stream, asks the executor to
/// shut down, or stops answering (HTTP/2 keepalive: about 10 s). `make_runtime` builds the
/// runtime once the driver has sent its settings.
///
/// # Errors
/// The driver cannot be reached within `connect_timeout`, refuses the token, or the
/// runtime cannot be built.
pub async fn run_executor(
    options: WorkerOptions,
    make_runtime: impl FnOnce(String, SessionConfig) -> Result<ExecutorRuntime>,
) -> Result<()> {
    let mut endpoint = Endpoint::from_shared(options.driver.clone())
        .map_err(|e| ExecError::Internal(format!("bad driver URL '{}': {e}", options.driver)))?;
    if let Some(tls) = &options.tls {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
        if let Some(domain) = &tls.domain {
            config = config.domain_name(domain.clone());
        }
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| ExecError::Internal(format!("TLS settings: {e}")))?;
    }
    let endpoint = endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(6))
        .keep_alive_while_idle(true);
    let deadline = Instant::now() + options.connect_timeout;
    let channel = loop {
        match endpoint.connect().await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                warn!(driver = %options.driver, error = %e, "driver not reachable yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(ExecError::Internal(format!(
                    "cannot reach the driver at {}: {e}",
                    options.driver
                )))
            }
        }
    };
    let mut client = DriverClient::with_interceptor(channel, SendToken(options.token.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    let (tx, rx) = mpsc::channel::<ExecutorMessage>(1024);
    tx.send(ExecutorMessage {
        body: Some(ExecutorBody::Register(Register {
            executor_id: options.id.clone(),
            slots: u32::try_from(options.slots.max(1)).unwrap_or(u32::MAX),
            memory_bytes: options.memory_bytes.unwrap_or(0) as u64,
            pid: std::process::id(),
            host: std::env::var("HOSTNAME").unwrap_or_default(),
        })),
    })
    .await
    .map_err(|_| ExecError::Internal("outbound stream closed".into()))?;
    let mut inbound = client
        .join(ReceiverStream::new(rx))
        .await
        .map_err(|s| ExecError::Internal(format!("the driver refused the connection: {s}")))?
        .into_inner();

    let welcome = match inbound.next().await {
        Some(Ok(m)) => match m.body {
            Some(DriverBody::Welcome(w)) => w,
            _ => {
                return Err(ExecError::Internal(
                    "the driver did not send Welcome".into(),
                ))
            }
        },
        Some(Err(s)) => return Err(ExecError::Internal(format!("driver stream: {s}"))),
        None => return Err(ExecError::Internal("the driver closed the stream".into())),
    };
    let mut config = SessionConfig::new();
    for entry in &welcome.config {
        if let Err(e) = config.options_mut().set(&entry.key, &entry.value) {
            warn!(key = %entry.key, error = %e, "setting from the driver not applied");
        }
    }
    let runtime = Arc::new(make_runtime(welcome.executor_id.clone(), config)?);
    info!(executor = %welcome.executor_id, session = %welcome.session_id, "executor connected");

    // Heartbeats come from their own task, whatever the slots are doing.
    let running = Arc::new(AtomicU32::new(0));
    let heartbeat = {
        let tx = tx.clone();
        let running = Arc::clone(&running);
        let period = Duration::from_millis(welcome.heartbeat_ms.max(50));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            for sequence in 0.. {
                tick.tick().await;
                let beat = ExecutorMessage {
                    body: Some(ExecutorBody::Heartbeat(Heartbeat {
                        sequence,
                        running: running.load(Ordering::Relaxed),
                    })),
                };
                if tx.send(beat).await.is_err() {
                    break;
                }
            }
        })
    };

    let outcome = loop {
        match inbound.next().await {
            Some(Ok(message)) => match message.body {
                Some(DriverBody::Request(request)) => {
                    let tx = tx.clone();
                    let runtime = Arc::clone(&runtime);
                    let running = Arc::clone(&running);
                    running.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        let reply = serve(&runtime, request).await;
                        running.fetch_sub(1, Ordering::Relaxed);
                        let _ = tx
                            .send(ExecutorMessage {
                                body: Some(ExecutorBody::Reply(reply)),
                            })
                            .await;
                    });
                }
                Some(DriverBody::Shutdown(s)) => {
                    info!(reason = %s.reason, "driver asked the executor to stop");
                    break Ok(());
                }
                Some(DriverBody::Welcome(_)) | None => {}
            },
            Some(Err(status)) => {
                break Err(ExecError::Internal(format!(
                    "driver stream failed: {status}"
                )))
            }
            None => break Ok(()),
        }
    };
    heartbeat.abort();
    outcome
}

/// Runs one request; never panics, failures travel in the reply.
async fn serve(runtime: &ExecutorRuntime, request: super::proto::Request) -> Reply {
    let request_id = request.request_id;
    let result: Result<Vec<u8>> = async {
        match RequestKind::try_from(request.kind) {
            Ok(RequestKind::RunTask) => {
                let task = TaskDefinition::from_bytes(&request.payload)?;
                Ok(runtime.run_task(&task).await.to_bytes())
            }
            Ok(RequestKind::RunKernel) => {
                let kernel = KernelRequest::from_bytes(&request.payload)?;
                Ok(runtime.run_kernel(&kernel).await.to_bytes())
            }
            Ok(RequestKind::ReleaseDataset) => {
                let dataset = String::from_utf8_lossy(&request.payload).to_string();
                runtime.cache().release(&dataset);
                Ok(Vec::new())
            }
            _ => Err(ExecError::Internal(format!(
                "unknown request kind {}",
                request.kind
            ))),
        }
    }
    .await;
    match result {
        Ok(payload) => Reply {
            request_id,
            payload,
            error: String::new(),
        },
        Err(e) => Reply {
            request_id,
            payload: Vec::new(),
            error: e.to_string(),
        },
    }
}
