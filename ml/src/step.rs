//! The step-machine shape every training algorithm takes, and the plain loop that drives one
//! over in-memory partitions.
//!
//! ```text
//!  Algorithm::start(info) ─▶ Step::RunKernel(kernel) ─▶ run_kernel(kernel, partition) per partition
//!         ▲                                                     │ Partial per partition
//!         └──── Algorithm::next(merged) ◀── merge in partition index order
//!  ... until Step::Done(model)
//! ```
//!
//! The engine runs the same loop with the partitions cached on executors: the kernel travels
//! as bytes ([`Kernel::to_bytes`]), each executor returns one partial per partition it holds,
//! and the driver merges them in partition index order, so the model is the same whatever the
//! number of executors.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::CachedPartition;
use crate::error::{MlError, Result};

/// What the driver knows of a cached training set before any kernel runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Feature column names, in matrix column order.
    pub features: Vec<String>,
    /// The label column, if any.
    pub label: Option<String>,
    /// Number of partitions.
    pub partitions: usize,
    /// Total rows over all partitions.
    pub rows: u64,
}

/// What an algorithm asks for next.
#[derive(Debug, Clone)]
pub enum Step<M> {
    /// Run this kernel on every cached partition and call [`Algorithm::next`] with the merged
    /// partials.
    RunKernel(Kernel),
    /// Training is over.
    Done(M),
}

/// Where a running algorithm stands, for progress displays.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// Iterations completed.
    pub iteration: usize,
    /// The iteration limit.
    pub max_iter: usize,
    /// The current objective (loss, cost), once known.
    pub loss: Option<f64>,
}

/// A training algorithm as a step machine. It never sees data, only merged partials: the
/// driver owns the loop and the data stays where it is cached.
pub trait Algorithm: Send {
    /// What training produces.
    type Model;

    /// The first step.
    ///
    /// # Errors
    /// When the dataset cannot train this model (e.g. no label for a supervised algorithm).
    fn start(&mut self, info: &DatasetInfo) -> Result<Step<Self::Model>>;

    /// The next step, given the partials of the last kernel merged over all partitions.
    ///
    /// # Errors
    /// When the data turns out unusable (empty, an invalid label, too few distinct points).
    fn next(&mut self, partial: Partial) -> Result<Step<Self::Model>>;

    /// Where training stands.
    fn progress(&self) -> Progress {
        Progress::default()
    }

    /// The algorithm's name in reports and events (`kmeans`, `logistic regression`, ...).
    fn name(&self) -> &'static str {
        "training"
    }
}

/// A computation to run on every cached partition. Each family of algorithms owns its variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Kernel {
    /// Column statistics (counts, moments, extrema, label values).
    Stats(crate::stats::StatsKernel),
    /// k-means assignment, cost and seeding kernels.
    KMeans(crate::cluster::kmeans::KMeansKernel),
    /// Loss and gradient of linear models.
    Linear(crate::linear::LinearKernel),
}

/// The result of a kernel on one partition; partials of one kernel merge associatively.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Partial {
    /// See [`Kernel::Stats`].
    Stats(crate::stats::StatsPartial),
    /// See [`Kernel::KMeans`].
    KMeans(crate::cluster::kmeans::KMeansPartial),
    /// See [`Kernel::Linear`].
    Linear(crate::linear::LinearPartial),
}

impl Kernel {
    /// Runs the kernel on one partition. Deterministic: the result depends on the kernel and
    /// the partition only (rayon inside, blocks folded in order).
    ///
    /// # Errors
    /// When the partition cannot take this kernel (e.g. no label).
    pub fn run(&self, partition: &CachedPartition) -> Result<Partial> {
        match self {
            Kernel::Stats(k) => k.run(partition).map(Partial::Stats),
            Kernel::KMeans(k) => k.run(partition).map(Partial::KMeans),
            Kernel::Linear(k) => k.run(partition).map(Partial::Linear),
        }
    }

    /// The kernel as bytes for an executor.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data structs to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A kernel from [`Kernel::to_bytes`].
    ///
    /// # Errors
    /// [`MlError::Codec`] for bytes that are not a kernel.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| MlError::Codec {
            what: "kernel",
            reason: e.to_string(),
        })
    }
}

impl Partial {
    /// Combines two partials of the same kernel. Associative; callers merge in partition index
    /// order so that floating-point sums are the same on any number of executors.
    ///
    /// # Errors
    /// [`MlError::Internal`] when the partials come from different kernels.
    pub fn merge(self, other: Partial) -> Result<Partial> {
        match (self, other) {
            (Partial::Stats(a), Partial::Stats(b)) => a.merge(b).map(Partial::Stats),
            (Partial::KMeans(a), Partial::KMeans(b)) => a.merge(b).map(Partial::KMeans),
            (Partial::Linear(a), Partial::Linear(b)) => a.merge(b).map(Partial::Linear),
            _ => Err(MlError::Internal(
                "partials of different kernels cannot be merged".into(),
            )),
        }
    }

    /// Merges per-partition partials in partition index order.
    ///
    /// # Errors
    /// [`MlError::Internal`] for an empty list, a repeated partition, or mixed kernels.
    pub fn merge_ordered(mut partials: Vec<(u32, Partial)>) -> Result<Partial> {
        partials.sort_by_key(|(index, _)| *index);
        if partials.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(MlError::Internal("a partition answered twice".into()));
        }
        let mut iter = partials.into_iter().map(|(_, p)| p);
        let first = iter
            .next()
            .ok_or_else(|| MlError::Internal("no partials to merge".into()))?;
        iter.try_fold(first, Partial::merge)
    }

    /// The partial as bytes for the driver.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data structs to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A partial from [`Partial::to_bytes`].
    ///
    /// # Errors
    /// [`MlError::Codec`] for bytes that are not a partial.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| MlError::Codec {
            what: "partial",
            reason: e.to_string(),
        })
    }
}

/// Runs `kernel` on each partition (in parallel) and returns `(index, partial)` pairs.
///
/// # Errors
/// The first kernel error, by partition order.
pub fn run_on_partitions(
    kernel: &Kernel,
    partitions: &[&CachedPartition],
) -> Result<Vec<(u32, Partial)>> {
    Ok(run_on_partitions_timed(kernel, partitions)?
        .into_iter()
        .map(|(index, partial, _)| (index, partial))
        .collect())
}

/// As [`run_on_partitions`], with the seconds each partition's kernel took (what an executor
/// reports as its busy time).
///
/// # Errors
/// The first kernel error.
pub fn run_on_partitions_timed(
    kernel: &Kernel,
    partitions: &[&CachedPartition],
) -> Result<Vec<(u32, Partial, f64)>> {
    partitions
        .par_iter()
        .map(|p| {
            let started = std::time::Instant::now();
            kernel
                .run(p)
                .map(|partial| (p.index(), partial, started.elapsed().as_secs_f64()))
        })
        .collect()
}

/// Drives `algorithm` to completion over in-memory partitions: the reference loop the engine's
/// distributed loop must agree with, and the way to test an algorithm without an engine.
///
/// # Errors
/// Whatever the algorithm or its kernels report.
pub fn fit_local<A: Algorithm>(
    mut algorithm: A,
    partitions: &[CachedPartition],
    features: &[String],
    label: Option<&str>,
) -> Result<A::Model> {
    let info = DatasetInfo {
        features: features.to_vec(),
        label: label.map(str::to_string),
        partitions: partitions.len(),
        rows: partitions.iter().map(|p| p.rows() as u64).sum(),
    };
    let refs: Vec<&CachedPartition> = partitions.iter().collect();
    let mut step = algorithm.start(&info)?;
    loop {
        match step {
            Step::Done(model) => return Ok(model),
            Step::RunKernel(kernel) => {
                let partials = run_on_partitions(&kernel, &refs)?;
                step = algorithm.next(Partial::merge_ordered(partials)?)?;
            }
        }
    }
}
