//! `/metrics`: the session in Prometheus' text format. Task, job and kernel-round figures
//! come from the scheduler's events (histograms of durations, counts by outcome); the
//! session's counters ([`crate::Metrics`]) are read at each scrape, so a scrape and
//! `Session::metrics()` agree.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::metrics::Metrics;
use crate::scheduler::{Event, Listener, Stamped};

/// A label set of one label, `outcome`: `succeeded` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

fn outcome(failed: bool) -> Outcome {
    Outcome {
        outcome: if failed { "failed" } else { "succeeded" },
    }
}

/// Reads the session's counters at scrape time.
pub(crate) type ReadCounters = Arc<dyn Fn() -> Metrics + Send + Sync>;

/// The session's counters as Prometheus counters.
struct Counters(ReadCounters);

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counters")
    }
}

impl Collector for Counters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = (self.0)();
        let counters: [(&'static str, &'static str, u64); 7] = [
            (
                "kiln_kernel_rounds",
                "Kernel rounds run by training algorithms",
                m.kernel_rounds,
            ),
            (
                "kiln_partitions_reloaded",
                "Cached training partitions reloaded from the cache store",
                m.partitions_reloaded,
            ),
            (
                "kiln_executors_lost",
                "Executors found unreachable",
                m.executors_lost,
            ),
            (
                "kiln_task_retries",
                "Task attempts run again after a failure",
                m.task_retries,
            ),
            (
                "kiln_stage_resubmits",
                "Map outputs computed again because a reader could not fetch them",
                m.stage_resubmits,
            ),
            (
                "kiln_fetch_failures",
                "Shuffle reads that found an object missing or corrupt",
                m.fetch_failures,
            ),
            (
                "kiln_shuffle_written_bytes",
                "Bytes written by map tasks for downstream stages",
                m.bytes_shuffled,
            ),
        ];
        encode_counters(&mut encoder, counters)
    }
}

/// Encodes `(name, help, value)` as counters read at scrape time.
fn encode_counters<N: prometheus_client::encoding::EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    counters: impl IntoIterator<Item = (&'static str, &'static str, N)>,
) -> Result<(), std::fmt::Error> {
    for (name, help, value) in counters {
        let counter = ConstCounter::new(value);
        let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
        counter.encode(metric)?;
    }
    Ok(())
}

/// The registry and the metrics the events update.
pub(crate) struct Prometheus {
    registry: Registry,
    tasks: Family<Outcome, Counter>,
    task_seconds: Histogram,
    task_output_bytes: Counter,
    jobs: Family<Outcome, Counter>,
    job_seconds: Histogram,
    round_seconds: Histogram,
    kernel_bytes: Counter,
    executors: Gauge,
    fits: Family<Outcome, Counter>,
    alive: Mutex<std::collections::HashSet<String>>,
}

impl Prometheus {
    /// A registry over the session's counters, read with `counters`.
    pub(crate) fn new(counters: ReadCounters) -> Self {
        let mut registry = Registry::default();
        let tasks = Family::<Outcome, Counter>::default();
        registry.register(
            "kiln_tasks",
            "Task attempts that ended, by outcome",
            tasks.clone(),
        );
        let task_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 18));
        registry.register(
            "kiln_task_duration_seconds",
            "Seconds from a task attempt's launch to its answer",
            task_seconds.clone(),
        );
        let task_output_bytes = Counter::default();
        registry.register(
            "kiln_task_output_bytes",
            "Bytes written by successful task attempts (shuffle, results, cached partitions)",
            task_output_bytes.clone(),
        );
        let jobs = Family::<Outcome, Counter>::default();
        registry.register("kiln_jobs", "Jobs that ended, by outcome", jobs.clone());
        let job_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        registry.register(
            "kiln_job_duration_seconds",
            "Seconds a job ran",
            job_seconds.clone(),
        );
        let round_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 20));
        registry.register(
            "kiln_kernel_round_duration_seconds",
            "Seconds from a kernel round's first request to the merged partial",
            round_seconds.clone(),
        );
        let kernel_bytes = Counter::default();
        registry.register(
            "kiln_kernel_bytes",
            "Bytes of kernels sent to and partials received from executors",
            kernel_bytes.clone(),
        );
        let executors = Gauge::default();
        registry.register(
            "kiln_executors_registered",
            "Executors registered and not lost",
            executors.clone(),
        );
        let fits = Family::<Outcome, Counter>::default();
        registry.register("kiln_fits", "Fits that ended, by outcome", fits.clone());
        registry.register_collector(Box::new(Counters(counters)));
        Self {
            registry,
            tasks,
            task_seconds,
            task_output_bytes,
            jobs,
            job_seconds,
            round_seconds,
            kernel_bytes,
            executors,
            fits,
            alive: Mutex::default(),
        }
    }

    /// The text a scrape gets.
    pub(crate) fn render(&self) -> String {
        render(&self.registry)
    }

    fn executor(&self, id: &str, alive: bool) {
        let mut set = self.alive.lock().unwrap_or_else(|e| e.into_inner());
        if alive {
            set.insert(id.to_string());
        } else {
            set.remove(id);
        }
        self.executors
            .set(i64::try_from(set.len()).unwrap_or(i64::MAX));
    }
}

impl Listener for Prometheus {
    fn on_event(&self, stamped: &Stamped) {
        match &stamped.event {
            Event::TaskFinished {
                seconds,
                failure,
                bytes,
                ..
            } => {
                self.tasks.get_or_create(&outcome(failure.is_some())).inc();
                self.task_seconds.observe(*seconds);
                self.task_output_bytes.inc_by(*bytes);
            }
            Event::JobFinished { seconds, error, .. } => {
                self.jobs.get_or_create(&outcome(error.is_some())).inc();
                self.job_seconds.observe(*seconds);
            }
            Event::KernelRound { seconds, bytes, .. } => {
                self.round_seconds.observe(*seconds);
                self.kernel_bytes.inc_by(*bytes);
            }
            Event::FitFinished { error, .. } => {
                self.fits.get_or_create(&outcome(error.is_some())).inc();
            }
            Event::ExecutorJoined { executor, .. } => self.executor(executor, true),
            Event::ExecutorLost { executor } => self.executor(executor, false),
            _ => {}
        }
    }
}

/// An executor's own metrics, read from its runtime at scrape time (none until it joined).
struct ExecutorCounters(Arc<std::sync::OnceLock<Arc<kiln_executor::runtime::RuntimeStats>>>);

impl std::fmt::Debug for ExecutorCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExecutorCounters")
    }
}

impl Collector for ExecutorCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::gauge::ConstGauge;
        use std::sync::atomic::Ordering::Relaxed;
        let Some(stats) = self.0.get() else {
            return Ok(());
        };
        let counters: [(&'static str, &'static str, u64); 4] = [
            (
                "kiln_executor_tasks_succeeded",
                "Task attempts this executor ran to success",
                stats.tasks_succeeded.load(Relaxed),
            ),
            (
                "kiln_executor_tasks_failed",
                "Task attempts this executor ran that failed",
                stats.tasks_failed.load(Relaxed),
            ),
            (
                "kiln_executor_kernel_rounds",
                "Kernel rounds this executor ran",
                stats.kernel_rounds.load(Relaxed),
            ),
            (
                "kiln_executor_partitions_reloaded",
                "Cached partitions reloaded from the cache store",
                stats.cache.reloads(),
            ),
        ];
        encode_counters(&mut encoder, counters)?;
        let seconds: [(&'static str, &'static str, u64); 2] = [
            (
                "kiln_executor_task_seconds",
                "Seconds spent running tasks",
                stats.task_nanos.load(Relaxed),
            ),
            (
                "kiln_executor_kernel_seconds",
                "Seconds spent in training kernels",
                stats.kernel_nanos.load(Relaxed),
            ),
        ];
        encode_counters(
            &mut encoder,
            seconds.map(|(name, help, nanos)| (name, help, nanos as f64 / 1e9)),
        )?;
        let gauges: [(&str, &str, i64); 2] = [
            (
                "kiln_executor_cached_partitions",
                "Cached training partitions held in memory",
                i64::try_from(stats.cache.len()).unwrap_or(i64::MAX),
            ),
            (
                "kiln_executor_cached_bytes",
                "Bytes of cached training partitions held in memory",
                i64::try_from(stats.cache.size_bytes()).unwrap_or(i64::MAX),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// The `/metrics` text of an executor whose runtime `stats` will hold once it has joined.
pub(crate) fn executor_registry(
    stats: Arc<std::sync::OnceLock<Arc<kiln_executor::runtime::RuntimeStats>>>,
) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ExecutorCounters(stats)));
    registry
}

/// Renders `registry` in Prometheus' text format.
pub(crate) fn render(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(error = %e, "could not encode the metrics");
    }
    text
}
