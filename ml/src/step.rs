//! The step-machine shape every training algorithm takes, and the plain loop that drives one
//! over in-memory partitions.
//!
//! ```text
//!  Algorithm::start(info) ─▶ Step::RunKernel(kernel) ─▶ run_kernel(kernel, partition) per partition
//!         ▲                                                     │ Partial per partition
//!         └──── Algorithm::next(merged) ◀── merge along the fixed tree over partition indices
//!  ... until Step::Done(model)
//! ```
//!
//! The engine runs the same loop with the partitions cached on executors: the kernel travels
//! as compact binary ([`Kernel::to_bytes`]), each executor merges the partials of the partitions it
//! holds as far as the fixed merge tree allows ([`merge_blocks`]) and the driver merges the rest
//! of the way, so the model is the same whatever the number of executors.

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

    /// The kernel as bytes for an executor (see [`WIRE_VERSION`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// A kernel from [`Kernel::to_bytes`].
    ///
    /// # Errors
    /// [`MlError::Codec`] for bytes that are not a kernel of this wire version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        decode(bytes, "kernel")
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

    /// Merges one partial per partition (`0..n`, in any order) along the fixed merge tree
    /// (see [`merge_blocks`]).
    ///
    /// # Errors
    /// [`MlError::Internal`] for an empty list, a repeated or missing partition, or mixed
    /// kernels.
    pub fn merge_ordered(partials: Vec<(u32, Partial)>) -> Result<Partial> {
        let total = partials
            .iter()
            .map(|(index, _)| index + 1)
            .max()
            .ok_or_else(|| MlError::Internal("no partials to merge".into()))?;
        let blocks = partials
            .into_iter()
            .map(|(index, partial)| Block::one(index, partial))
            .collect();
        merge_all(total, blocks)
    }

    /// The partial as bytes for the driver (see [`WIRE_VERSION`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// A partial from [`Partial::to_bytes`].
    ///
    /// # Errors
    /// [`MlError::Codec`] for bytes that are not a partial of this wire version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        decode(bytes, "partial")
    }
}

/// The first byte of every encoded kernel and partial: a driver and an executor of different
/// wire versions refuse each other's bytes by name instead of misreading them.
pub const WIRE_VERSION: u8 = 1;

/// Kernels and partials on the wire: [`WIRE_VERSION`], then the value in postcard's compact
/// binary form (floats as their 8 little-endian bytes, so every bit survives, NaN included;
/// lengths and integers as varints). Histograms and centre sums are megabytes per round: text
/// would cost several times the bytes and the parsing.
fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let out = vec![WIRE_VERSION];
    // Serializing plain data structs into a Vec cannot fail.
    match postcard::to_extend(value, out) {
        Ok(bytes) => bytes,
        Err(_) => vec![WIRE_VERSION],
    }
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &'static str) -> Result<T> {
    match bytes.split_first() {
        Some((&WIRE_VERSION, payload)) => {
            let (value, rest) = postcard::take_from_bytes(payload).map_err(|e| MlError::Codec {
                what,
                reason: e.to_string(),
            })?;
            if rest.is_empty() {
                Ok(value)
            } else {
                Err(MlError::Codec {
                    what,
                    reason: format!("{} bytes left over after the {what}", rest.len()),
                })
            }
        }
        Some((version, _)) => Err(MlError::Codec {
            what,
            reason: format!(
                "wire version {version}, this build reads version {WIRE_VERSION} (driver and \
                 executors must run the same Kiln release)"
            ),
        }),
        None => Err(MlError::Codec {
            what,
            reason: "no bytes".into(),
        }),
    }
}

/// The merged partial of partitions `start .. start + len`: one partition's own partial, or
/// a node of the merge tree (see [`merge_blocks`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The first partition.
    pub start: u32,
    /// How many partitions it covers.
    pub len: u32,
    /// Their merged partial.
    pub partial: Partial,
}

impl Block {
    /// Partition `index`'s own partial.
    pub fn one(index: u32, partial: Partial) -> Self {
        Self {
            start: index,
            len: 1,
            partial,
        }
    }
}

/// Merges what can be merged of `blocks` along the fixed merge tree over partitions
/// `0..total`, returning the highest nodes it reached, by start.
///
/// The tree is the same for every placement: node `(lo, size)` (`size` a power of two, `lo` a
/// multiple of it) covers `lo .. min(lo + size, total)` and is its two halves merged, left
/// first, a node whose right half is empty being its left half. An executor merges the nodes
/// whose partitions it holds all of and sends those; the driver merges the executors' nodes
/// the same way up to the root. Floating-point sums are then added in the same order whatever
/// the number of executors or the placement of partitions, so models are bit-identical.
///
/// # Errors
/// [`MlError::Internal`] for a block that is not a node of the tree, overlapping blocks, or
/// partials of different kernels.
pub fn merge_blocks(total: u32, blocks: Vec<Block>) -> Result<Vec<Block>> {
    let mut pending: std::collections::BTreeMap<u32, Block> = std::collections::BTreeMap::new();
    for block in blocks {
        if block.len == 0 || block.start.saturating_add(block.len) > total {
            return Err(MlError::Internal(format!(
                "partials of partitions {}..{} out of 0..{total}",
                block.start,
                block.start.saturating_add(block.len)
            )));
        }
        if pending.insert(block.start, block).is_some() {
            return Err(MlError::Internal("a partition answered twice".into()));
        }
    }
    let mut out = Vec::new();
    if total > 0 {
        let root = total.next_power_of_two();
        if let Some(partial) = merge_node(0, root, total, &mut pending, &mut out)? {
            out.push(Block {
                start: 0,
                len: total,
                partial,
            });
        }
    }
    if let Some(block) = pending.values().next() {
        return Err(MlError::Internal(format!(
            "partials of partitions {}..{} do not match the merge tree",
            block.start,
            block.start + block.len
        )));
    }
    out.sort_by_key(|b| b.start);
    Ok(out)
}

/// The merged partial of node `(lo, size)` when every partition under it has answered; else
/// `None`, with what was merged under it pushed to `out`.
fn merge_node(
    lo: u32,
    size: u32,
    total: u32,
    pending: &mut std::collections::BTreeMap<u32, Block>,
    out: &mut Vec<Block>,
) -> Result<Option<Partial>> {
    let end = lo.saturating_add(size).min(total);
    if pending.get(&lo).is_some_and(|b| b.start + b.len == end) {
        return Ok(pending.remove(&lo).map(|b| b.partial));
    }
    if size == 1 {
        return Ok(None);
    }
    let half = size / 2;
    let left = merge_node(lo, half, total, pending, out)?;
    if lo + half >= total {
        return Ok(left);
    }
    let right = merge_node(lo + half, half, total, pending, out)?;
    Ok(match (left, right) {
        (Some(l), Some(r)) => Some(l.merge(r)?),
        (Some(l), None) => {
            out.push(Block {
                start: lo,
                len: half,
                partial: l,
            });
            None
        }
        (None, Some(r)) => {
            out.push(Block {
                start: lo + half,
                len: end - (lo + half),
                partial: r,
            });
            None
        }
        (None, None) => None,
    })
}

/// Merges `blocks` covering every partition of `0..total` into one partial.
///
/// # Errors
/// As [`merge_blocks`], and when a partition is missing.
pub fn merge_all(total: u32, blocks: Vec<Block>) -> Result<Partial> {
    let mut merged = merge_blocks(total, blocks)?;
    match (merged.pop(), merged.is_empty()) {
        (Some(b), true) if b.start == 0 && b.len == total => Ok(b.partial),
        _ => Err(MlError::Internal(format!(
            "the partials of some of partitions 0..{total} are missing"
        ))),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::linear::{LinearPartial, LossGradientSums};

    fn gradient(values: Vec<f64>) -> Partial {
        Partial::Linear(LinearPartial::LossGradient(LossGradientSums {
            count: 1_000_000,
            loss_sum: 0.1 + 0.2,
            gradient_sum: values,
        }))
    }

    #[test]
    fn partials_travel_as_compact_binary_keeping_every_bit() {
        let values: Vec<f64> = (0..4096).map(|i| (i as f64).sqrt() / 3.0 - 7.0).collect();
        let partial = gradient(values.clone());
        let bytes = partial.to_bytes();
        assert_eq!(bytes[0], WIRE_VERSION);
        // Eight bytes per float plus a few for tags, lengths and the count.
        assert!(bytes.len() < 4096 * 8 + 32, "{} bytes", bytes.len());
        let json = serde_json::to_vec(&partial).unwrap();
        assert!(
            json.len() > 2 * bytes.len(),
            "JSON {} vs {}",
            json.len(),
            bytes.len()
        );
        assert_eq!(Partial::from_bytes(&bytes).unwrap(), partial);
        // Bits JSON could not carry survive: NaN's payload, -0.0, infinities, subnormals.
        let odd = vec![
            f64::from_bits(0x7FF8_0000_DEAD_BEEF),
            -0.0,
            f64::INFINITY,
            f64::MIN_POSITIVE / 8.0,
        ];
        let Partial::Linear(LinearPartial::LossGradient(back)) =
            Partial::from_bytes(&gradient(odd.clone()).to_bytes()).unwrap()
        else {
            panic!("not a gradient")
        };
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.gradient_sum), bits(&odd));
    }

    #[test]
    fn bytes_of_another_version_or_truncated_or_padded_are_refused_by_name() {
        let bytes = gradient(vec![1.0, 2.0]).to_bytes();
        let message = |b: &[u8]| Partial::from_bytes(b).unwrap_err().to_string();
        let mut other = bytes.clone();
        other[0] = WIRE_VERSION + 1;
        assert!(message(&other).contains("wire version 2, this build reads version 1"));
        assert!(message(&bytes[..bytes.len() - 3]).contains("cannot encode or decode partial"));
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(message(&padded).contains("1 bytes left over after the partial"));
        assert!(message(&[]).contains("no bytes"));
    }

    /// A partial whose sum depends on the order of additions.
    fn part(index: u32) -> Partial {
        let v = 1.0 / f64::from(index + 3) * 1e16_f64.powi(i32::from(index.is_multiple_of(3)));
        gradient(vec![v, -v / 7.0, 0.1 * f64::from(index)])
    }

    #[test]
    fn any_placement_merges_to_the_same_bits_as_one_place() {
        for total in [1u32, 2, 3, 5, 8, 13] {
            let all: Vec<(u32, Partial)> = (0..total).map(|i| (i, part(i))).collect();
            let one = Partial::merge_ordered(all.clone()).unwrap();
            // Executors holding partitions round-robin, in blocks, or scattered.
            for executors in 1..=4u32 {
                for placement in 0..3 {
                    let owner = |i: u32| match placement {
                        0 => i % executors,
                        1 => i * executors / total,
                        _ => (i * 7 + 3) % executors,
                    };
                    let mut sent = Vec::new();
                    for e in 0..executors {
                        let mine = all
                            .iter()
                            .filter(|(i, _)| owner(*i) == e)
                            .map(|(i, p)| Block::one(*i, p.clone()))
                            .collect();
                        sent.extend(merge_blocks(total, mine).unwrap());
                    }
                    if placement == 1 && executors == 1 {
                        assert_eq!(sent.len(), 1, "one executor sends one block");
                    }
                    let merged = merge_all(total, sent).unwrap();
                    assert_eq!(
                        format!("{merged:?}"),
                        format!("{one:?}"),
                        "{total} {executors} {placement}"
                    );
                }
            }
        }
        // Four partitions in two halves: each executor sends one block.
        let half =
            |lo: u32| merge_blocks(4, (lo..lo + 2).map(|i| Block::one(i, part(i))).collect());
        assert_eq!(half(0).unwrap().len(), 1);
        assert_eq!(half(2).unwrap()[0].start, 2);
    }

    #[test]
    fn blocks_off_the_tree_or_missing_are_internal_errors() {
        let block = |start, len| Block {
            start,
            len,
            partial: part(start),
        };
        let err = |total, blocks| merge_all(total, blocks).unwrap_err().to_string();
        assert!(err(4, vec![block(1, 2), block(0, 1), block(3, 1)])
            .contains("do not match the merge tree"));
        assert!(err(4, vec![block(0, 1), block(0, 1)]).contains("answered twice"));
        assert!(err(4, vec![block(0, 2)]).contains("missing"));
        assert!(err(2, vec![block(1, 2)]).contains("out of 0..2"));
    }
}
