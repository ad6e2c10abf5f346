//! A training set cached on the executors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use futures::future::join_all;
use kiln_executor::cache::dataset_prefix;
use kiln_executor::StoreRoot;
use kiln_ml::step::{merge_all, Block};
use kiln_ml::{Algorithm, DatasetInfo, Kernel, Partial, Precision, Step, TrainingReport};
use kiln_planner::cut_stages;
use kiln_planner::task::{CacheSpec, CachedPartitionRef, FailureKind, KernelRequest};
use tracing::{debug, warn};

use super::columns::Columns;
use crate::context::short_id;
use crate::dataframe::DataFrame;
use crate::error::{EngineError, Result};
use crate::job;
use crate::session::Session;

/// One cached partition: where its bytes are in the cache store and which executor holds it
/// in memory.
#[derive(Debug, Clone)]
struct Placement {
    object: String,
    rows: u64,
    executor: usize,
}

/// Training data materialized once: one dense partition per task of the DataFrame's plan, in
/// the memory of the executor that computed it and in the cache store.
///
/// [`fit`](Self::fit) runs an algorithm over it, one kernel round per iteration. Dropping it
/// (or [`unpersist`](Self::unpersist)) frees the executors' memory and the store's objects.
#[derive(Debug)]
pub struct TrainingData {
    session: Session,
    id: String,
    cache_root: String,
    info: DatasetInfo,
    placements: Mutex<Vec<Placement>>,
    released: AtomicBool,
    /// Seconds the cache job took.
    cache_seconds: f64,
}

impl DataFrame {
    /// Caches the DataFrame as training data: runs its plan once, and keeps each partition as
    /// a dense matrix of the feature columns (plus the label) on the executor that computed it,
    /// with a copy in the cache store.
    ///
    /// # Errors
    /// Unknown columns; a feature or label that is not numeric, or holds a null, NaN or an
    /// infinite value (the message names the column); any error of running the plan.
    pub async fn cache_training(
        &self,
        columns: &Columns,
        supervised: bool,
        precision: Precision,
    ) -> Result<TrainingData> {
        let schema = self.schema();
        let (features, label) = columns.resolve(&schema, supervised)?;
        let mut keep: Vec<&str> = features.iter().map(String::as_str).collect();
        if let Some(l) = &label {
            keep.push(l);
        }
        let projected = self.clone().select_columns(&keep)?;
        let plan = projected.physical_plan().await?;
        let graph = cut_stages(plan)?;
        let session = self.session().clone();
        let id = format!("ds-{}", short_id());
        let spec = CacheSpec {
            dataset_id: id.clone(),
            cache_root: session.inner.cache_root.clone(),
            features: features.clone(),
            label: label.clone(),
            f32: precision == Precision::F32,
        };
        let mut data = TrainingData {
            session: session.clone(),
            id,
            cache_root: session.inner.cache_root.clone(),
            info: DatasetInfo {
                features,
                label,
                partitions: 0,
                rows: 0,
            },
            placements: Mutex::new(Vec::new()),
            released: AtomicBool::new(false),
            cache_seconds: 0.0,
        };
        // From here on, dropping `data` removes whatever the cache stage wrote.
        let caching = std::time::Instant::now();
        let maps = job::run_cache(&session.inner, &graph, spec).await?;
        data.cache_seconds = caching.elapsed().as_secs_f64();
        let mut placements = Vec::with_capacity(maps.len());
        let mut by_executor: Vec<(String, u64, u64, u64)> = Vec::new();
        for m in &maps {
            match by_executor.iter_mut().find(|(e, ..)| *e == m.executor_id) {
                Some((_, parts, rows, bytes)) => {
                    *parts += 1;
                    *rows += m.rows;
                    *bytes += m.bytes;
                }
                None => by_executor.push((m.executor_id.clone(), 1, m.rows, m.bytes)),
            }
        }
        session.inner.events.emit(crate::Event::DatasetCached {
            dataset: data.id.clone(),
            placements: by_executor,
        });
        for m in maps {
            // The latest to join with that name: a restarted executor rejoins under its old one.
            let executor = session
                .inner
                .pool
                .executors()
                .iter()
                .rposition(|e| e.id() == m.executor_id)
                .ok_or_else(|| {
                    EngineError::Internal(format!("unknown executor {}", m.executor_id))
                })?;
            placements.push(Placement {
                object: m.object,
                rows: m.rows,
                executor,
            });
        }
        data.info.partitions = placements.len();
        data.info.rows = placements.iter().map(|p| p.rows).sum();
        data.placements = Mutex::new(placements);
        Ok(data)
    }
}

impl TrainingData {
    /// The dataset's id (names its prefix in the cache store).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Feature and label columns, partition count and total rows.
    pub fn info(&self) -> &DatasetInfo {
        &self.info
    }

    /// The executor (its index in the session's pool) holding each partition, by partition.
    pub fn partition_executors(&self) -> Vec<usize> {
        self.placements
            .lock()
            .map(|p| p.iter().map(|p| p.executor).collect())
            .unwrap_or_default()
    }

    /// Rows per partition, in partition order.
    pub fn partition_rows(&self) -> Vec<u64> {
        self.placements
            .lock()
            .map(|p| p.iter().map(|p| p.rows).collect())
            .unwrap_or_default()
    }

    /// Trains `algorithm`: the driver loop of start, kernel rounds and updates.
    ///
    /// # Errors
    /// The algorithm's errors (parameters, data), or a kernel round that failed on the
    /// executors after retries.
    pub async fn fit<A: Algorithm>(&self, algorithm: A) -> Result<A::Model> {
        Ok(self.fit_reported(algorithm, |_| {}).await?.0)
    }

    /// As [`fit`](Self::fit), calling `progress` after every kernel round.
    ///
    /// # Errors
    /// As [`fit`](Self::fit).
    pub async fn fit_with_progress<A: Algorithm>(
        &self,
        algorithm: A,
        progress: impl FnMut(kiln_ml::Progress),
    ) -> Result<A::Model> {
        Ok(self.fit_reported(algorithm, progress).await?.0)
    }

    /// As [`fit_with_progress`](Self::fit_with_progress), returning the fit's
    /// [`TrainingReport`] with the model. The fit's events (`fit_started`, a `kernel_round`
    /// and `fit_iteration` per iteration, `fit_finished`) go to the session's listeners.
    ///
    /// # Errors
    /// As [`fit`](Self::fit).
    pub async fn fit_reported<A: Algorithm>(
        &self,
        mut algorithm: A,
        mut progress: impl FnMut(kiln_ml::Progress),
    ) -> Result<(A::Model, TrainingReport)> {
        let inner = &self.session.inner;
        let metrics = &inner.metrics;
        // Cleared when the fit ends, however it ends (an error, a dropped future).
        struct Training<'a>(&'a crate::metrics::SessionMetrics);
        impl Drop for Training<'_> {
            fn drop(&mut self) {
                self.0.set_training(None);
            }
        }
        let _training = Training(metrics);
        let fit = format!("fit-{}", inner.fits.fetch_add(1, Ordering::Relaxed));
        let started = std::time::Instant::now();
        let mut measured = Measured::default();
        let outcome: Result<A::Model> = async {
            let mut step = algorithm.start(&self.info)?;
            let first = algorithm.progress();
            inner.events.emit(crate::Event::FitStarted {
                fit: fit.clone(),
                algorithm: algorithm.name().to_string(),
                dataset: self.id.clone(),
                rows: self.info.rows,
                partitions: self.info.partitions,
                max_iter: first.max_iter,
            });
            metrics.set_training(Some(first));
            loop {
                match step {
                    Step::Done(model) => return Ok(model),
                    Step::RunKernel(kernel) => {
                        let (partial, round) = self.run_round_measured(&kernel, &fit).await?;
                        let updating = std::time::Instant::now();
                        step = algorithm.next(partial)?;
                        let update_seconds = updating.elapsed().as_secs_f64();
                        let now = algorithm.progress();
                        measured.add(&round, update_seconds, now.loss);
                        inner.events.emit(crate::Event::FitIteration {
                            fit: fit.clone(),
                            round: measured.rounds,
                            iteration: now.iteration,
                            loss: now.loss,
                            update_seconds,
                        });
                        metrics.set_training(Some(now));
                        progress(now);
                    }
                }
            }
        }
        .await;
        let seconds = started.elapsed().as_secs_f64();
        let iterations = algorithm.progress().iteration;
        let report = outcome.as_ref().ok().map(|_| {
            measured.report(
                algorithm.name(),
                iterations,
                self.info.rows,
                seconds,
                self.cache_seconds,
                inner
                    .pool
                    .executors()
                    .iter()
                    .filter(|e| e.is_alive())
                    .map(|e| e.slots())
                    .sum(),
            )
        });
        inner.events.emit(crate::Event::FitFinished {
            fit,
            seconds,
            error: outcome.as_ref().err().map(ToString::to_string),
            report: report.clone(),
        });
        Ok((outcome?, report.unwrap_or_default()))
    }

    /// Runs one kernel on every partition: one request per executor holding partitions, the
    /// partials merged in partition order. An executor that cannot be reached has its
    /// partitions moved to the others (which reload them from the cache store); a transient
    /// kernel failure is retried, up to the session's attempt limit.
    ///
    /// # Errors
    /// A kernel that failed on the data (the executor's message), or no executor left.
    pub async fn run_round(&self, kernel: &Kernel) -> Result<Partial> {
        Ok(self.run_round_measured(kernel, "").await?.0)
    }

    /// As [`run_round`](Self::run_round), for the fit `fit` (empty outside one), with what
    /// the round measured.
    async fn run_round_measured(&self, kernel: &Kernel, fit: &str) -> Result<(Partial, Round)> {
        let inner = &self.session.inner;
        inner.metrics.kernel_rounds.fetch_add(1, Ordering::Relaxed);
        let bytes = kernel.to_bytes();
        let started = std::time::Instant::now();
        let mut attempts = 0;
        let mut round = Round::default();
        // Partials already answered survive a retry: only the missing partitions run again.
        let mut partials: Vec<Block> = Vec::new();
        loop {
            attempts += 1;
            let answered: Vec<u32> = partials
                .iter()
                .flat_map(|b| b.start..b.start + b.len)
                .collect();
            let by_executor = self.requests(&bytes, &answered)?;
            let executors = inner.pool.executors();
            let calls = by_executor.iter().map(|(exec, request)| {
                let executor = executors.get(*exec).cloned();
                let request = request.clone();
                async move {
                    match executor {
                        Some(executor) => executor.run_kernel(request).await,
                        None => Err(kiln_executor::ExecError::Internal(format!(
                            "no executor {exec}"
                        ))),
                    }
                }
            });
            let responses = join_all(calls).await;
            let mut retry: Option<String> = None;
            for ((exec, _), response) in by_executor.iter().zip(responses) {
                let executor_id = executors
                    .get(*exec)
                    .map(|e| e.id().to_string())
                    .unwrap_or_default();
                match response {
                    Err(e) => {
                        warn!(executor = %executor_id, error = %e, "executor lost during a kernel round");
                        self.move_partitions_off(*exec)?;
                        retry = Some(format!("executor {executor_id}: {e}"));
                    }
                    Ok(r) => {
                        inner
                            .metrics
                            .partitions_reloaded
                            .fetch_add(u64::from(r.reloaded), Ordering::Relaxed);
                        if let Some(f) = r.failure {
                            match f.failure_kind() {
                                FailureKind::UserError => return Err(EngineError::from_failure(f)),
                                _ => retry = Some(format!("executor {executor_id}: {}", f.message)),
                            }
                            continue;
                        }
                        round.executor(&executor_id, &r, bytes.len());
                        let decoding = std::time::Instant::now();
                        for p in r.partials {
                            partials.push(Block {
                                start: p.partition,
                                len: p.count.max(1),
                                partial: Partial::from_bytes(&p.partial)?,
                            });
                        }
                        round.merge_seconds += decoding.elapsed().as_secs_f64();
                    }
                }
            }
            match retry {
                None => {
                    let partitions = partials.iter().map(|b| b.len as usize).sum();
                    let received = partials.len();
                    let merging = std::time::Instant::now();
                    let total = u32::try_from(self.info.partitions).map_err(|_| {
                        EngineError::Internal("more partitions than a u32 counts".into())
                    })?;
                    let merged = merge_all(total, partials)?;
                    round.merge_seconds += merging.elapsed().as_secs_f64();
                    round.seconds = started.elapsed().as_secs_f64();
                    inner.events.emit(crate::Event::KernelRound {
                        dataset: self.id.clone(),
                        seconds: round.seconds,
                        attempts,
                        partitions,
                        partials: received,
                        fit: fit.to_string(),
                        compute_seconds: round.compute_seconds,
                        busy_seconds: round.busy_seconds,
                        merge_seconds: round.merge_seconds,
                        bytes: round.bytes,
                        rows_by_executor: round.rows_by_executor.clone(),
                        compute_by_executor: round.compute_by_executor.clone(),
                    });
                    return Ok((merged, round));
                }
                Some(message)
                    if inner
                        .retry_policy()
                        .after(FailureKind::TaskFailed, attempts)
                        == crate::scheduler::Retry::GiveUp =>
                {
                    return Err(EngineError::TaskFailed {
                        stage: 0,
                        partition: 0,
                        attempts,
                        message: format!("kernel round on dataset {}: {message}", self.id),
                    })
                }
                Some(message) => {
                    debug!(dataset = %self.id, attempts, %message, "retrying kernel round");
                }
            }
        }
    }

    /// One request per executor that holds partitions not yet `answered`.
    fn requests(&self, kernel: &[u8], answered: &[u32]) -> Result<Vec<(usize, KernelRequest)>> {
        let placements = self
            .placements
            .lock()
            .map_err(|_| EngineError::Internal("placements lock poisoned".into()))?;
        let mut out: Vec<(usize, KernelRequest)> = Vec::new();
        for (index, p) in placements.iter().enumerate() {
            if answered.contains(&(index as u32)) {
                continue;
            }
            let part = CachedPartitionRef {
                partition: index as u32,
                object: p.object.clone(),
            };
            match out.iter_mut().find(|(e, _)| *e == p.executor) {
                Some((_, request)) => request.partitions.push(part),
                None => out.push((
                    p.executor,
                    KernelRequest {
                        dataset_id: self.id.clone(),
                        cache_root: self.cache_root.clone(),
                        kernel: kernel.to_vec(),
                        partitions: vec![part],
                        partitions_total: u32::try_from(placements.len()).unwrap_or(0),
                    },
                )),
            }
        }
        Ok(out)
    }

    /// Reassigns the partitions of a lost executor to the others, round-robin.
    fn move_partitions_off(&self, lost: usize) -> Result<()> {
        let inner = &self.session.inner;
        inner.note_executor_lost(lost);
        let executors = inner.pool.executors();
        let others: Vec<usize> = (0..executors.len())
            .filter(|e| *e != lost && executors[*e].is_alive())
            .collect();
        if others.is_empty() {
            return Err(EngineError::ExecutorLost {
                executor: executors
                    .get(lost)
                    .map(|e| e.id().to_string())
                    .unwrap_or_default(),
                message: "no executor left to hold the training data".into(),
            });
        }
        let mut placements = self
            .placements
            .lock()
            .map_err(|_| EngineError::Internal("placements lock poisoned".into()))?;
        for (next, p) in placements
            .iter_mut()
            .filter(|p| p.executor == lost)
            .enumerate()
        {
            p.executor = others[next % others.len()];
        }
        Ok(())
    }

    /// Frees the executors' memory but keeps the copy in the cache store: the next kernel round
    /// reloads each partition on the executor that runs it (counted in
    /// [`Metrics::partitions_reloaded`](crate::Metrics::partitions_reloaded)). For memory
    /// pressure between fits.
    ///
    /// # Errors
    /// When an executor cannot be reached.
    pub async fn drop_from_memory(&self) -> Result<()> {
        for executor in self.session.inner.pool.executors() {
            if executor.is_alive() {
                executor.release_dataset(&self.id).await?;
            }
        }
        Ok(())
    }

    /// Frees the executors' memory and deletes the cached objects.
    ///
    /// # Errors
    /// If the cache store cannot delete the objects.
    pub async fn unpersist(self) -> Result<()> {
        self.release().await
    }

    /// [`unpersist`](Self::unpersist) through a shared reference; later calls do nothing.
    ///
    /// # Errors
    /// As [`unpersist`](Self::unpersist).
    pub async fn release(&self) -> Result<()> {
        if self.released.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        release(&self.session, &self.id, &self.cache_root).await
    }

    /// Bytes of the dataset's copy in the cache store (the dense values plus a small header
    /// per partition: what the executors hold in memory, to within that header).
    ///
    /// # Errors
    /// If the cache store cannot be listed.
    pub async fn stored_bytes(&self) -> Result<u64> {
        use futures::TryStreamExt;
        let root = StoreRoot::resolve(&self.cache_root, &self.session.inner.ctx.runtime_env())?;
        let prefix = dataset_prefix(&root, &self.id);
        let sizes: Vec<u64> = root
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.size)
            .try_collect()
            .await?;
        Ok(sizes.iter().sum())
    }

    /// Whether [`release`](Self::release) or [`unpersist`](Self::unpersist) ran.
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }

    /// The cache root the partitions are stored under.
    pub fn cache_root(&self) -> &str {
        &self.cache_root
    }

    /// The store object of each partition, in partition order.
    pub fn objects(&self) -> Vec<String> {
        self.placements
            .lock()
            .map(|p| p.iter().map(|p| p.object.clone()).collect())
            .unwrap_or_default()
    }
}

impl Drop for TrainingData {
    fn drop(&mut self) {
        if self.released.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (session, id, root) = (
                self.session.clone(),
                self.id.clone(),
                self.cache_root.clone(),
            );
            handle.spawn(async move {
                if let Err(e) = release(&session, &id, &root).await {
                    warn!(dataset = %id, error = %e, "could not release cached training data");
                }
            });
        }
    }
}

async fn release(session: &Session, id: &str, cache_root: &str) -> Result<()> {
    session.inner.events.emit(crate::Event::DatasetReleased {
        dataset: id.to_string(),
    });
    for executor in session.inner.pool.executors() {
        if !executor.is_alive() {
            continue;
        }
        if let Err(e) = executor.release_dataset(id).await {
            warn!(executor = %executor.id(), error = %e, "could not release cached partitions");
        }
    }
    let root = StoreRoot::resolve(cache_root, &session.inner.ctx.runtime_env())?;
    crate::orphans::delete_prefix(&root, &dataset_prefix(&root, id)).await
}

/// What one kernel round measured.
#[derive(Debug, Default)]
struct Round {
    seconds: f64,
    compute_seconds: f64,
    busy_seconds: f64,
    merge_seconds: f64,
    bytes: u64,
    rows_by_executor: Vec<(String, u64)>,
    compute_by_executor: Vec<(String, f64)>,
}

impl Round {
    /// Adds an executor's answer to a request of `request_bytes` bytes.
    fn executor(
        &mut self,
        executor: &str,
        r: &kiln_planner::task::KernelResponse,
        request_bytes: usize,
    ) {
        self.compute_seconds = self.compute_seconds.max(r.compute_seconds);
        self.busy_seconds += r.busy_seconds;
        let answer: usize = r.partials.iter().map(|p| p.partial.len()).sum();
        self.bytes += (request_bytes + answer) as u64;
        self.rows_by_executor.push((executor.to_string(), r.rows));
        self.compute_by_executor
            .push((executor.to_string(), r.compute_seconds));
    }
}

/// Adds `value` to `executor`'s total in `totals`.
fn add_to<T: std::ops::AddAssign + Copy>(totals: &mut Vec<(String, T)>, executor: &str, value: T) {
    match totals.iter_mut().find(|(e, _)| e == executor) {
        Some((_, total)) => *total += value,
        None => totals.push((executor.to_string(), value)),
    }
}

/// The rounds of one fit, summed for its report.
#[derive(Debug, Default)]
struct Measured {
    rounds: usize,
    compute_seconds: f64,
    overhead_seconds: f64,
    busy_seconds: f64,
    bytes: u64,
    rows: Vec<(String, u64)>,
    compute: Vec<(String, f64)>,
    losses: Vec<f64>,
}

impl Measured {
    fn add(&mut self, round: &Round, update_seconds: f64, loss: Option<f64>) {
        self.rounds += 1;
        self.compute_seconds += round.compute_seconds;
        // Everything of the round outside the slowest executor's kernel, and the update.
        self.overhead_seconds += (round.seconds - round.compute_seconds).max(0.0) + update_seconds;
        self.busy_seconds += round.busy_seconds;
        self.bytes += round.bytes;
        for (executor, rows) in &round.rows_by_executor {
            add_to(&mut self.rows, executor, *rows);
        }
        for (executor, seconds) in &round.compute_by_executor {
            add_to(&mut self.compute, executor, *seconds);
        }
        if let Some(loss) = loss {
            self.losses.push(loss);
        }
    }

    fn report(
        &self,
        algorithm: &str,
        iterations: usize,
        rows: u64,
        training_seconds: f64,
        cache_seconds: f64,
        slots: usize,
    ) -> TrainingReport {
        let pct = |part: f64, whole: f64| {
            if whole > 0.0 {
                (100.0 * part / whole).clamp(0.0, 100.0)
            } else {
                0.0
            }
        };
        let mut rows_per_second: Vec<(String, f64)> = self
            .rows
            .iter()
            .map(|(executor, rows)| {
                let seconds = self
                    .compute
                    .iter()
                    .find(|(e, _)| e == executor)
                    .map_or(0.0, |(_, s)| *s);
                let rate = if seconds > 0.0 {
                    *rows as f64 / seconds
                } else {
                    0.0
                };
                (executor.clone(), rate)
            })
            .collect();
        rows_per_second.sort_by(|a, b| a.0.cmp(&b.0));
        TrainingReport {
            algorithm: algorithm.to_string(),
            iterations,
            rounds: self.rounds,
            rows,
            training_seconds,
            cache_seconds,
            compute_seconds: self.compute_seconds,
            overhead_seconds: self.overhead_seconds,
            communication_overhead_pct: pct(self.overhead_seconds, training_seconds),
            bytes_per_iteration: self.bytes as f64 / iterations.max(1) as f64,
            utilization_pct: pct(self.busy_seconds, slots.max(1) as f64 * training_seconds),
            slots,
            rows_per_second,
            loss_curve: self.losses.clone(),
            validation: Vec::new(),
        }
    }
}
