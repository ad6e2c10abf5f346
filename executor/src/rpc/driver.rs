//! The driver's side: the `Driver` service executors connect to, the [`Membership`] of
//! connected executors, and [`RemoteExecutor`], the [`Executor`] the scheduler sends work to.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::Stream;
use kiln_planner::task::{KernelRequest, KernelResponse, TaskDefinition, TaskStatus, WireMessage};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use super::proto::driver_message::Body as DriverBody;
use super::proto::executor_message::Body as ExecutorBody;
use super::proto::{
    self, ConfigEntry, DriverMessage, ExecutorMessage, RequestKind, Shutdown, Welcome,
};
use crate::error::{ExecError, Result};
use crate::executor::Executor;

type Pending = HashMap<u64, oneshot::Sender<std::result::Result<Vec<u8>, String>>>;

/// An executor in another process, reached over its `Join` stream.
pub struct RemoteExecutor {
    id: String,
    slots: usize,
    pid: u32,
    /// Where it connected from, and the host name it reported.
    address: String,
    /// The memory limit it reported (0: none).
    memory_bytes: u64,
    outbound: mpsc::Sender<std::result::Result<DriverMessage, Status>>,
    pending: Mutex<Pending>,
    next_request: AtomicU64,
    last_seen: Mutex<Instant>,
    alive: AtomicBool,
    lost_reason: Mutex<Option<String>>,
}

impl fmt::Debug for RemoteExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteExecutor")
            .field("id", &self.id)
            .field("slots", &self.slots)
            .field("pid", &self.pid)
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl RemoteExecutor {
    /// Whether the executor's stream is open and it has been heard from recently.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// The executor process's id (as it reported it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Marks the executor lost: every waiting call fails, later calls fail at once.
    pub fn mark_lost(&self, reason: &str) {
        self.end(reason, true);
    }

    /// Ends the executor's membership, as [`mark_lost`](Self::mark_lost); a warning only
    /// when it was `lost`, not when the session let it go.
    fn end(&self, reason: &str, lost: bool) {
        if !self.alive.swap(false, Ordering::SeqCst) {
            return;
        }
        if lost {
            warn!(executor = %self.id, reason, "executor lost");
        } else {
            tracing::debug!(executor = %self.id, reason, "executor released");
        }
        if let Ok(mut r) = self.lost_reason.lock() {
            *r = Some(reason.to_string());
        }
        let waiting: Vec<_> = self
            .pending
            .lock()
            .map(|mut p| p.drain().collect())
            .unwrap_or_default();
        for (_, tx) in waiting {
            let _ = tx.send(Err(format!("executor {} lost: {reason}", self.id)));
        }
    }

    fn lost_error(&self) -> ExecError {
        let reason = self
            .lost_reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "connection closed".into());
        ExecError::ExecutorLost {
            executor: self.id.clone(),
            reason,
        }
    }

    fn seen(&self) {
        if let Ok(mut t) = self.last_seen.lock() {
            *t = Instant::now();
        }
    }

    fn silent_for(&self) -> Duration {
        self.last_seen
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    fn reply(&self, reply: proto::Reply) {
        let waiter = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&reply.request_id));
        if let Some(tx) = waiter {
            let result = if reply.error.is_empty() {
                Ok(reply.payload)
            } else {
                Err(reply.error)
            };
            let _ = tx.send(result);
        }
    }

    /// Sends a request and waits for its reply.
    async fn call(&self, kind: RequestKind, payload: Vec<u8>) -> Result<Vec<u8>> {
        if !self.is_alive() {
            return Err(self.lost_error());
        }
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(request_id, tx);
        }
        let message = DriverMessage {
            body: Some(DriverBody::Request(proto::Request {
                request_id,
                kind: kind as i32,
                payload,
            })),
        };
        if self.outbound.send(Ok(message)).await.is_err() {
            self.mark_lost("stream closed");
            return Err(self.lost_error());
        }
        // A request dropped before its reply (a cancelled job) leaves no waiter behind.
        let guard = PendingGuard {
            executor: self,
            request_id,
        };
        let result = rx.await;
        drop(guard);
        match result {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(message)) if !self.is_alive() => Err(ExecError::ExecutorLost {
                executor: self.id.clone(),
                reason: message,
            }),
            Ok(Err(message)) => Err(ExecError::Internal(message)),
            Err(_) => Err(self.lost_error()),
        }
    }
}

struct PendingGuard<'a> {
    executor: &'a RemoteExecutor,
    request_id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.executor.pending.lock() {
            p.remove(&self.request_id);
        }
    }
}

#[async_trait]
impl Executor for RemoteExecutor {
    fn id(&self) -> &str {
        &self.id
    }

    fn slots(&self) -> usize {
        self.slots
    }

    fn address(&self) -> String {
        self.address.clone()
    }

    fn memory_limit(&self) -> Option<u64> {
        (self.memory_bytes > 0).then_some(self.memory_bytes)
    }

    fn last_heard(&self) -> Option<Duration> {
        Some(self.silent_for())
    }

    fn is_alive(&self) -> bool {
        RemoteExecutor::is_alive(self)
    }

    async fn launch(&self, task: TaskDefinition) -> Result<TaskStatus> {
        let bytes = self.call(RequestKind::RunTask, task.to_bytes()).await?;
        Ok(TaskStatus::from_bytes(&bytes)?)
    }

    async fn run_kernel(&self, request: KernelRequest) -> Result<KernelResponse> {
        let bytes = self
            .call(RequestKind::RunKernel, request.to_bytes())
            .await?;
        Ok(KernelResponse::from_bytes(&bytes)?)
    }

    async fn release_dataset(&self, dataset_id: &str) -> Result<()> {
        self.call(RequestKind::ReleaseDataset, dataset_id.as_bytes().to_vec())
            .await
            .map(|_| ())
    }
}

/// The executors connected to a driver.
pub struct Membership {
    session_id: String,
    config: Vec<(String, String)>,
    heartbeat: Duration,
    timeout: Duration,
    executors: Mutex<Vec<Arc<RemoteExecutor>>>,
    changed: Notify,
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership")
            .field("session_id", &self.session_id)
            .field("executors", &self.executors.lock().map(|e| e.len()).ok())
            .finish()
    }
}

impl Membership {
    /// Membership for session `session_id`, whose executors run with the DataFusion settings
    /// `config`, heartbeat every `heartbeat`, and are lost after `timeout` of silence.
    pub fn new(
        session_id: String,
        config: Vec<(String, String)>,
        heartbeat: Duration,
        timeout: Duration,
    ) -> Arc<Self> {
        let membership = Arc::new(Self {
            session_id,
            config,
            heartbeat,
            timeout,
            executors: Mutex::new(Vec::new()),
            changed: Notify::new(),
        });
        // The watchdog: executors silent for longer than the timeout are lost.
        let weak = Arc::downgrade(&membership);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(heartbeat.max(Duration::from_millis(50)));
            loop {
                tick.tick().await;
                let Some(m) = weak.upgrade() else { break };
                for e in m.all() {
                    if e.is_alive() && e.silent_for() > m.timeout {
                        e.mark_lost(&format!("no heartbeat for {:?}", e.silent_for()));
                        m.changed.notify_waiters();
                    }
                }
            }
        });
        membership
    }

    /// Every executor that ever connected, in connection order.
    pub fn all(&self) -> Vec<Arc<RemoteExecutor>> {
        self.executors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Waits until `n` executors are connected and alive; `Err` after `timeout`.
    ///
    /// # Errors
    /// [`ExecError::Internal`] naming how many connected when the time ran out.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<Arc<RemoteExecutor>>> {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            let alive: Vec<_> = self.all().into_iter().filter(|e| e.is_alive()).collect();
            if alive.len() >= n {
                return Ok(alive.into_iter().take(n).collect());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ExecError::Internal(format!(
                    "{} of {n} executors connected within {timeout:?}",
                    alive.len()
                )));
            }
            let _ = tokio::time::timeout(left, changed).await;
        }
    }

    /// Resolves at the next change of membership: an executor joined or was lost. Create it
    /// before looking at [`all`](Self::all), so no change between the two is missed.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Asks every connected executor to exit.
    pub async fn shutdown(&self, reason: &str) {
        for e in self.all() {
            let _ = e
                .outbound
                .send(Ok(DriverMessage {
                    body: Some(DriverBody::Shutdown(Shutdown {
                        reason: reason.to_string(),
                    })),
                }))
                .await;
            e.end(reason, false);
        }
    }

    fn unique_id(&self, proposed: &str) -> String {
        // Names of live executors only: a restarted executor takes its old name back.
        let taken: Vec<String> = self
            .all()
            .iter()
            .filter(|e| e.is_alive())
            .map(|e| e.id.clone())
            .collect();
        let base = if proposed.is_empty() {
            "exec"
        } else {
            proposed
        };
        if !taken.iter().any(|t| t == base) {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}-{i}"))
            .find(|c| !taken.contains(c))
            .unwrap_or_else(|| base.to_string())
    }
}

/// The `Driver` gRPC service.
#[derive(Debug, Clone)]
pub struct DriverService {
    membership: Arc<Membership>,
}

impl DriverService {
    /// The service registering executors into `membership`.
    pub fn new(membership: Arc<Membership>) -> Self {
        Self { membership }
    }
}

type OutStream = Pin<Box<dyn Stream<Item = std::result::Result<DriverMessage, Status>> + Send>>;

#[tonic::async_trait]
impl proto::driver_server::Driver for DriverService {
    type JoinStream = OutStream;

    async fn join(
        &self,
        request: Request<Streaming<ExecutorMessage>>,
    ) -> std::result::Result<Response<Self::JoinStream>, Status> {
        let peer = request.remote_addr();
        let mut inbound = request.into_inner();
        let first = inbound
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("stream closed before Register"))??;
        let Some(ExecutorBody::Register(register)) = first.body else {
            return Err(Status::invalid_argument(
                "the first message must be Register",
            ));
        };
        if register.slots == 0 {
            return Err(Status::invalid_argument(
                "an executor needs at least one slot",
            ));
        }
        let (tx, rx) = mpsc::channel(1024);
        let m = &self.membership;
        let id = m.unique_id(&register.executor_id);
        let executor = Arc::new(RemoteExecutor {
            id: id.clone(),
            slots: register.slots as usize,
            pid: register.pid,
            address: match peer {
                Some(addr) if register.host.is_empty() => addr.to_string(),
                Some(addr) => format!("{} ({addr}, pid {})", register.host, register.pid),
                None => register.host.clone(),
            },
            memory_bytes: register.memory_bytes,
            outbound: tx.clone(),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            last_seen: Mutex::new(Instant::now()),
            alive: AtomicBool::new(true),
            lost_reason: Mutex::new(None),
        });
        let welcome = DriverMessage {
            body: Some(DriverBody::Welcome(Welcome {
                executor_id: id.clone(),
                session_id: m.session_id.clone(),
                config: m
                    .config
                    .iter()
                    .map(|(key, value)| ConfigEntry {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                heartbeat_ms: m.heartbeat.as_millis() as u64,
            })),
        };
        tx.send(Ok(welcome))
            .await
            .map_err(|_| Status::unavailable("executor stream closed"))?;
        if let Ok(mut all) = m.executors.lock() {
            all.push(Arc::clone(&executor));
        }
        info!(executor = %id, slots = register.slots, pid = register.pid, host = %register.host, "executor registered");
        m.changed.notify_waiters();

        let membership = Arc::clone(m);
        tokio::spawn(async move {
            loop {
                match inbound.next().await {
                    Some(Ok(message)) => {
                        executor.seen();
                        match message.body {
                            Some(ExecutorBody::Reply(reply)) => executor.reply(reply),
                            Some(ExecutorBody::Heartbeat(_)) | None => {}
                            Some(ExecutorBody::Register(_)) => {
                                warn!(executor = %executor.id, "second Register ignored");
                            }
                        }
                    }
                    Some(Err(status)) => {
                        executor.mark_lost(&format!("stream error: {}", status.message()));
                        break;
                    }
                    None => {
                        executor.mark_lost("stream closed");
                        break;
                    }
                }
            }
            membership.changed.notify_waiters();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
