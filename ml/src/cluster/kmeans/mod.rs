//! k-means clustering: Lloyd's algorithm with k-means|| initialisation, as a step machine over
//! cached partitions.
//!
//! # The math
//!
//! k-means looks for centres `c_1 .. c_k` minimising the sum of squared errors
//! `SSE = Σ_x min_i ‖x − c_i‖²`. Lloyd's algorithm alternates
//!
//! ```text
//!   assign:  S_i = { x : i = argmin_j ‖x − c_j‖² }      (ties to the lowest index)
//!   update:  c_i ← (1 / |S_i|) Σ_{x ∈ S_i} x            (an empty S_i keeps c_i, like Spark)
//! ```
//!
//! One kernel pass ([`KMeansKernel::Assign`]) computes, per partition, `Σ_{x ∈ S_i} x`, `|S_i|`
//! and the SSE; they are merged along the fixed merge tree and the driver updates the centres. Training
//! stops when every centre moved at most `tol` (Euclidean, Spark's rule; `tol = 0` stops only
//! when the centres stop moving exactly, which is scikit-learn's "strict convergence") or after
//! `max_iter` iterations. The model's [`cost`](KMeansModel::cost) is the SSE of the *final*
//! centres (one more pass, like scikit-learn's `inertia_`).
//!
//! Once the centres move little (less than 1/20 of their smallest separation in a pass), the
//! trainer sends its Lloyd passes as [`KMeansKernel::Lloyd`]: the same pass, plus how far the
//! centres have moved since the fit began. Each cached partition then keeps distance bounds (a
//! row's centre and two numbers a chunk of 16 rows, 2.5 bytes a row, see [`BoundsSlot`]) and, in
//! later passes, skips the nearest-centre search for chunks of rows whose centres cannot have
//! changed (Hamerly's bounds, with a margin for the search's rounding). The first such pass reads
//! every row and answers bit for bit what [`KMeansKernel::Assign`] answers. The passes after it are
//! steady-state steps: the partition keeps per-centre sums about that pass's centres, reads only
//! the rows its bounds cannot settle, and moves the rows that changed centre between the sums; in
//! the steady state of a fit a step reads the chunks' bounds (0.5 bytes a row), and the centres and
//! values of the few percent of the rows whose chunks fail the test. Every row still gets the
//! centre a plain pass gives it; the sums and the SSE differ from a plain pass's by rounding only.
//! Each step carries the passes since the one that read every row ([`LloydRound`]), so a partition
//! without the sums (reloaded after a lost executor, or busy) replays them and answers with the
//! same bits; the trainer starts over with a full pass every 32 passes, or sooner for large centre
//! sets, to keep that history small.
//!
//! Initialisation (Spark's default) is k-means|| (Bahmani, Moseley, Vattani, Kumar,
//! Vassilvitskii, *Scalable K-Means++*, VLDB 2012): start from one random point `C`; for
//! `init_steps` rounds compute `φ = Σ_x d²(x, C)` and add each point with probability
//! `min(1, l · d²(x, C) / φ)`, `l = 2k`; weight each candidate by the number of points nearest to
//! it; then run weighted k-means++ and Lloyd on the candidates on the driver (Spark's
//! `LocalKMeans`).
//!
//! # Determinism
//!
//! Random draws are keyed by the seed, the purpose, the round and a hash of the point's
//! coordinates, never by a thread, an executor or a row position: the same data gives the same
//! initial centres however it is partitioned (duplicates of a point are drawn together; the
//! weights pass counts each of them). Floating-point sums are folded in block order within a
//! partition and along the fixed merge tree over partitions, so a model is bit-identical for any number
//! of threads or executors over the same partitioning, and agrees to rounding (about 1e-15
//! relative) over another partitioning.
//!
//! # Differences from Spark and scikit-learn
//!
//! - `k` larger than the number of distinct points is an error
//!   (`k = 8 but the data has only 3 distinct points`); Spark returns fewer centres.
//!   The random and k-means|| initialisations make one pass that picks `k` distinct random
//!   points, which checks this; given centres skip it (scikit-learn does not check either).
//!   Values that are not finite are refused when the data is cached, and again by the first
//!   Lloyd pass if a partition built by hand holds one.
//! - An empty cluster keeps its previous centre (Spark); scikit-learn moves it to a far point.
//!
//! # Example
//!
//! ```
//! use kiln_ml::cluster::kmeans::{KMeans, KMeansInit};
//! use kiln_ml::data::{DenseMatrix, Features};
//! use kiln_ml::{fit_local, CachedPartition};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rows = [[0.0, 0.0], [0.2, 0.0], [0.0, 0.2], [9.0, 9.0], [9.2, 9.0], [9.0, 9.2]];
//! let flat: Vec<f64> = rows.iter().flatten().copied().collect();
//! let x = DenseMatrix::from_row_major(6, 2, &flat).map_err(|n| format!("{n} values"))?;
//! let partition = CachedPartition::new(0, Features::F64(x), None)?;
//! let names = vec!["x".to_string(), "y".to_string()];
//!
//! let model = fit_local(KMeans::new(2).max_iter(10).build()?, &[partition], &names, None)?;
//! let labels = model.predict_rows(&[[0.1, 0.1], [9.1, 9.1]])?;
//! assert_ne!(labels[0], labels[1]);
//! assert!((model.cost() - 4.0 * 0.2 * 0.2 * 2.0 / 3.0).abs() < 1e-12);
//! # Ok(())
//! # }
//! ```

mod algorithm;
mod assign;
mod bounds;
mod centers;
mod hyperparams;
mod kernel;
mod model;
mod nearest;
mod partials;
mod seeding;
mod steady;

pub use algorithm::KMeansTrainer;
pub use bounds::BoundsHint;
pub use centers::CenterSet;
pub use hyperparams::{
    KMeans, KMeansInit, KMeansValidParams, DEFAULT_INIT_STEPS, DEFAULT_MAX_ITER, DEFAULT_SEED,
    DEFAULT_TOL, PARAMS,
};
pub use kernel::KMeansKernel;
pub use model::KMeansModel;
pub use partials::{AssignPartial, KMeansPartial, PointSet};
pub use steady::{BoundsSlot, LloydRound};

pub(crate) use seeding::SALT_SILHOUETTE;
