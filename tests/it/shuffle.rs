//! The shuffle really goes through the object store, and lost or damaged shuffle objects are
//! detected with a typed error.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use kiln::{EngineError, Session};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result as OsResult,
};
use url::Url;

use crate::common::sorted_rows;

/// What to do to the shuffle objects of one stage when they are written.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Accept the put but store nothing.
    Drop,
    /// Store all but the last 16 bytes.
    Truncate,
    /// Flip one byte in the middle.
    Corrupt,
}

/// An object store that counts puts and gets, and can damage one stage's outputs.
#[derive(Debug)]
pub(crate) struct InstrumentedStore {
    pub(crate) inner: InMemory,
    puts: AtomicUsize,
    ranged_gets: AtomicUsize,
    /// The location of every get and ranged get, in order.
    gets: Mutex<Vec<String>>,
    fault: Mutex<Option<(u32, Fault)>>,
    /// Damage only first attempts (`{map}-0.arrow`), so a recomputed output is intact.
    first_attempt_only: std::sync::atomic::AtomicBool,
}

impl InstrumentedStore {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: InMemory::new(),
            puts: AtomicUsize::new(0),
            ranged_gets: AtomicUsize::new(0),
            gets: Mutex::new(Vec::new()),
            fault: Mutex::new(None),
            first_attempt_only: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// How many reads (gets and ranged gets) touched objects under `prefix` so far.
    pub(crate) fn reads_under(&self, prefix: &str) -> usize {
        self.gets
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    /// The stage of a shuffle object path `.../{job}/{stage}/{map}-{attempt}.arrow`.
    fn stage_of(location: &Path) -> Option<u32> {
        let parts: Vec<_> = location.parts().collect();
        let n = parts.len();
        if n < 2 {
            return None;
        }
        parts[n - 2].as_ref().parse().ok()
    }
}

impl fmt::Display for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstrumentedStore")
    }
}

#[async_trait]
impl ObjectStore for InstrumentedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> OsResult<PutResult> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        let fault = *self.fault.lock().unwrap();
        let payload = match fault {
            Some((stage, f))
                if Self::stage_of(location) == Some(stage)
                    && (!self.first_attempt_only.load(Ordering::SeqCst)
                        || location.as_ref().ends_with("-0.arrow")) =>
            {
                let bytes: Vec<u8> = payload.iter().flat_map(|b| b.iter().copied()).collect();
                match f {
                    Fault::Drop => {
                        return Ok(PutResult {
                            e_tag: None,
                            version: None,
                        })
                    }
                    Fault::Truncate => {
                        PutPayload::from(bytes[..bytes.len().saturating_sub(16)].to_vec())
                    }
                    Fault::Corrupt => {
                        let mut bytes = bytes;
                        let mid = bytes.len() / 2;
                        if let Some(b) = bytes.get_mut(mid) {
                            *b ^= 0xff;
                        }
                        PutPayload::from(bytes)
                    }
                }
            }
            _ => payload,
        };
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> OsResult<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> OsResult<GetResult> {
        if options.range.is_some() {
            self.ranged_gets.fetch_add(1, Ordering::SeqCst);
        }
        self.gets.lock().unwrap().push(location.to_string());
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> OsResult<Vec<Bytes>> {
        self.ranged_gets.fetch_add(ranges.len(), Ordering::SeqCst);
        self.gets
            .lock()
            .unwrap()
            .extend(ranges.iter().map(|_| location.to_string()));
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, OsResult<Path>>,
    ) -> BoxStream<'static, OsResult<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, OsResult<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> OsResult<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> OsResult<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A session of 2 executors × 2 slots that reads sources under `memory://src` from `store`.
pub(crate) async fn session_with_source(store: &Arc<InstrumentedStore>) -> Session {
    Session::builder()
        .executors(2)
        .slots_per_executor(2)
        .object_store(Url::parse("memory://src").unwrap(), Arc::clone(store) as _)
        .build()
        .await
        .unwrap()
}

async fn session_over(store: Arc<InstrumentedStore>, executors: usize) -> Session {
    Session::builder()
        .executors(executors)
        .slots_per_executor(2)
        .shuffle_root("memory://shuffle/root")
        .object_store(Url::parse("memory://shuffle").unwrap(), store)
        .build()
        .await
        .unwrap()
}

const QUERY: &str = "SELECT value % 7 AS k, count(*) AS n, sum(value) AS s \
                     FROM generate_series(1, 20000) GROUP BY value % 7";

fn expected() -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for k in 0..7i64 {
        let vals: Vec<i64> = (1..=20000).filter(|v| v % 7 == k).collect();
        rows.push(vec![
            k.to_string(),
            vals.len().to_string(),
            vals.iter().sum::<i64>().to_string(),
        ]);
    }
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffle_goes_through_the_object_store_and_is_cleaned_up() {
    let store = InstrumentedStore::new();
    let kiln = session_over(Arc::clone(&store), 2).await;
    let df = kiln.sql(QUERY).await.unwrap();
    let stages = df.explain().await.unwrap().matches("\nStage ").count();
    assert!(stages >= 2, "query should have several stages");
    let batches = df.collect().await.unwrap();
    assert_eq!(sorted_rows(&batches), expected());

    // One object per task of every stage, at least one task per stage.
    let puts = store.puts.load(Ordering::SeqCst);
    assert!(puts >= stages, "{puts} puts for {stages} stages");
    // Reducers and the driver read byte ranges, never whole objects.
    assert!(store.ranged_gets.load(Ordering::SeqCst) > 0);
    // The job's prefix is empty afterwards.
    let left: Vec<_> = store.inner.list(None).collect().await;
    assert!(left.is_empty(), "shuffle objects left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_shuffle_files_keeps_them() {
    let store = InstrumentedStore::new();
    let kiln = Session::builder()
        .executors(2)
        .shuffle_root("memory://shuffle/root")
        .object_store(
            Url::parse("memory://shuffle").unwrap(),
            Arc::clone(&store) as _,
        )
        .keep_shuffle_files(true)
        .build()
        .await
        .unwrap();
    kiln.sql(QUERY).await.unwrap().collect().await.unwrap();
    let left: Vec<_> = store.inner.list(None).collect().await;
    assert!(!left.is_empty());
    assert!(left
        .iter()
        .all(|m| m.as_ref().unwrap().location.as_ref().ends_with(".arrow")));
}

async fn fetch_failure(fault: Fault) -> EngineError {
    let store = InstrumentedStore::new();
    *store.fault.lock().unwrap() = Some((1, fault));
    let kiln = session_over(Arc::clone(&store), 2).await;
    let err = kiln
        .sql(QUERY)
        .await
        .unwrap()
        .collect()
        .await
        .expect_err("a damaged shuffle must not give an answer");
    // Nothing is left behind even when the job fails.
    let left: Vec<_> = store.inner.list(None).collect().await;
    assert!(left.is_empty(), "shuffle objects left behind: {left:?}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_shuffle_object_is_a_fetch_failure() {
    match fetch_failure(Fault::Drop).await {
        EngineError::FetchFailed { stage, message, .. } => {
            assert_eq!(stage, 1);
            assert!(message.to_lowercase().contains("not found"), "{message}");
        }
        other => panic!("expected FetchFailed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_shuffle_object_is_a_fetch_failure() {
    match fetch_failure(Fault::Truncate).await {
        EngineError::FetchFailed { stage, .. } => assert_eq!(stage, 1),
        other => panic!("expected FetchFailed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_shuffle_object_is_a_fetch_failure() {
    match fetch_failure(Fault::Corrupt).await {
        EngineError::FetchFailed { stage, message, .. } => {
            assert_eq!(stage, 1);
            assert!(message.contains("checksum mismatch"), "{message}");
        }
        other => panic!("expected FetchFailed, got {other:?}"),
    }
}

/// Damages the first attempt of every stage-1 output; the job must recompute them.
async fn recovered(fault: Fault) {
    let store = InstrumentedStore::new();
    *store.fault.lock().unwrap() = Some((1, fault));
    store.first_attempt_only.store(true, Ordering::SeqCst);
    let kiln = session_over(Arc::clone(&store), 2).await;
    let batches = kiln.sql(QUERY).await.unwrap().collect().await.unwrap();
    assert_eq!(sorted_rows(&batches), expected(), "{fault:?}");
    let m = kiln.metrics();
    assert!(m.fetch_failures >= 1, "{fault:?}: {m:?}");
    assert!(m.stage_resubmits >= 1, "{fault:?}: {m:?}");
    let left: Vec<_> = store.inner.list(None).collect().await;
    assert!(left.is_empty(), "shuffle objects left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_shuffle_object_is_recomputed() {
    recovered(Fault::Drop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_shuffle_object_is_recomputed() {
    recovered(Fault::Truncate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_shuffle_object_is_recomputed() {
    recovered(Fault::Corrupt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_task_failures_are_retried_and_counted() {
    // Every task fails once: same answer, one retry per task.
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(2)
        .inject_task_failures(1)
        .build()
        .await
        .unwrap();
    let df = kiln.sql(QUERY).await.unwrap();
    let plan = df.explain().await.unwrap();
    let tasks: u64 = plan
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Stage "))
        .filter_map(|l| l.split('[').nth(1)?.split(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(tasks >= 2, "{plan}");
    let batches = df.collect().await.unwrap();
    assert_eq!(sorted_rows(&batches), expected());
    assert_eq!(kiln.metrics().task_retries, tasks);
    assert!(kiln.metrics().bytes_shuffled > 0);

    // Failing as often as a task may be attempted fails the job, naming the task.
    let kiln = Session::builder()
        .executors(2)
        .inject_task_failures(4)
        .build()
        .await
        .unwrap();
    let err = kiln.sql(QUERY).await.unwrap().collect().await.unwrap_err();
    match &err {
        EngineError::TaskFailed {
            attempts, message, ..
        } => {
            assert_eq!(*attempts, 4);
            assert!(message.contains("injected failure"), "{message}");
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    assert!(
        err.to_string().contains("stage ") && err.to_string().contains(" task "),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_shuffle_root_is_left_empty() {
    let dir = tempfile::tempdir().unwrap();
    let kiln = Session::builder()
        .executors(2)
        .shuffle_root(dir.path().to_str().unwrap())
        .build()
        .await
        .unwrap();
    let batches = kiln.sql(QUERY).await.unwrap().collect().await.unwrap();
    assert_eq!(sorted_rows(&batches), expected());
    // While the session lives, only its lease.
    assert!(crate::ml::walk(dir.path()).is_empty());
    assert!(dir.path().join("_kiln-sessions").join(kiln.id()).exists());
    drop(kiln);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_share_the_slots_and_agree() {
    let store = InstrumentedStore::new();
    let kiln = session_over(Arc::clone(&store), 2).await;
    let jobs = (0..4).map(|_| {
        let kiln = kiln.clone();
        tokio::spawn(async move { kiln.sql(QUERY).await.unwrap().collect().await.unwrap() })
    });
    for job in futures::future::join_all(jobs).await {
        assert_eq!(sorted_rows(&job.unwrap()), expected());
    }
    let left: Vec<_> = store.inner.list(None).collect().await;
    assert!(left.is_empty(), "shuffle objects left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_cleans_up_after_itself() {
    let store = InstrumentedStore::new();
    let kiln = session_over(Arc::clone(&store), 2).await;
    let slow = "SELECT a.value % 100 AS k, count(*) FROM generate_series(1, 3000000) a GROUP BY 1";
    let df = kiln.sql(slow).await.unwrap();
    let cancelled = tokio::time::timeout(std::time::Duration::from_millis(300), df.collect()).await;
    assert!(cancelled.is_err(), "the query should still be running");
    // The cleanup runs in the background; give it a moment.
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let left: Vec<_> = store.inner.list(None).collect().await;
        if left.is_empty() {
            return;
        }
    }
    let left: Vec<_> = store.inner.list(None).collect().await;
    panic!("shuffle objects left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shuffle_compression_gives_the_same_answer() {
    use kiln::ShuffleCompression;
    for compression in [
        ShuffleCompression::None,
        ShuffleCompression::Lz4,
        ShuffleCompression::Zstd,
    ] {
        let store = InstrumentedStore::new();
        *store.fault.lock().unwrap() = None;
        let kiln = Session::builder()
            .executors(2)
            .slots_per_executor(2)
            .shuffle_root("memory://shuffle/root")
            .object_store(
                Url::parse("memory://shuffle").unwrap(),
                Arc::clone(&store) as _,
            )
            .shuffle_compression(compression)
            .build()
            .await
            .unwrap();
        let batches = kiln.sql(QUERY).await.unwrap().collect().await.unwrap();
        assert_eq!(sorted_rows(&batches), expected(), "{compression:?}");
    }
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command name (in parentheses, which may hold spaces).
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_task_stops_computing_at_once() {
    let kiln = Session::builder()
        .executors(1)
        .slots_per_executor(1)
        .build()
        .await
        .unwrap();
    // A cross join of 400 million rows under an aggregate: each probe batch is seconds of
    // work inside the join, which hands the aggregate batch after batch without a pause.
    let endless = "SELECT sum(a.value * b.value) AS s FROM generate_series(1, 20000) a, generate_series(1, 20000) b";
    let df = kiln.sql(endless).await.unwrap();
    let cancelled =
        tokio::time::timeout(std::time::Duration::from_millis(1000), df.collect()).await;
    assert!(cancelled.is_err(), "the query should still be running");
    // The task is aborted; once it has stopped, the process idles. (A second's grace: on a
    // loaded machine the task may take a while to reach its next batch.)
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let before = cpu_seconds();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let busy = cpu_seconds() - before;
    assert!(
        busy < 0.3,
        "the cancelled task kept computing: {busy:.2} CPU seconds in an idle second"
    );
    let one = kiln
        .sql("SELECT 1 AS one")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(one[0].num_rows(), 1);
}
