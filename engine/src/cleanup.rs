//! Cleanup that must run when a value is dropped but needs the async runtime (deleting a
//! session's lease, its executor pods).

use std::future::Future;
use std::time::Duration;

/// Runs `work` (for at most `limit`) from a `Drop`: waited for on a multi-threaded runtime,
/// so that a process ending right after still finishes it; spawned on a current-thread one;
/// skipped outside any runtime. Whatever it leaves undone, the caller must be able to live
/// with (a lease expires, an owner reference deletes pods).
pub(crate) fn finish_during_drop<F>(work: F, limit: Duration)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let bounded = async move {
        let _ = tokio::time::timeout(limit, work).await;
    };
    if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| runtime.block_on(bounded));
    } else {
        runtime.spawn(bounded);
    }
}
