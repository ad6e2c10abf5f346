//! Cluster mode: executors in other processes, over gRPC (`proto/kiln.proto`).
//!
//! ```text
//!  executor process                              driver process
//!  run_executor ──dial── Driver.Join ──────▶ DriverService (auth interceptor)
//!     Register ─────────────────────────────▶   RemoteExecutor registered in Membership
//!     ◀──────────────────────────────── Welcome (id, session settings)
//!     ◀──────────────────────────────── Request (task / kernel / release), by request id
//!     Reply (status bytes) ─────────────────▶   resolves the waiting launch()/run_kernel()
//!     Heartbeat every period (own task) ────▶   last-seen time; silence or a closed stream
//!                                               = executor lost: pending calls fail
//! ```
//!
//! [`RemoteExecutor`] implements the same [`Executor`](crate::Executor) trait as the in-process
//! executor, with the same encoded messages as payloads.

pub mod auth;
pub mod driver;
pub mod worker;

/// The generated protocol types and service stubs.
#[allow(missing_docs, clippy::all, clippy::pedantic, unreachable_pub)]
pub mod proto {
    tonic::include_proto!("kiln.v1");
}

pub use auth::{AuthToken, CheckToken, SendToken};
pub use driver::{DriverService, Membership, RemoteExecutor};
pub use worker::{run_executor, ClientTls, WorkerOptions};

/// Largest message either side accepts (plans carry in-memory batches and model files).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
