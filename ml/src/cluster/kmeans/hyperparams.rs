//! k-means hyper-parameters: a builder with Spark MLlib / scikit-learn names and defaults, and
//! its checked form, so invalid settings fail before any data moves.

use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::params::{ParamMap, ParamSpec, ParamType, ParamValue};

/// Default iteration limit (Spark's `maxIter`).
pub const DEFAULT_MAX_ITER: usize = 20;
/// Default convergence tolerance (Spark's `tol`).
pub const DEFAULT_TOL: f64 = 1e-4;
/// Default seed. Fixed, so that training the same data twice gives the same model.
pub const DEFAULT_SEED: u64 = 42;
/// Default number of k-means|| rounds (Spark's `initSteps`).
pub const DEFAULT_INIT_STEPS: usize = 2;

/// How the initial centres are chosen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum KMeansInit {
    /// k-means|| (Bahmani et al. 2012), Spark's default: `init_steps` rounds sampling about
    /// `2k` points each with probability proportional to their squared distance to the
    /// candidates so far, then weighted k-means++ on the candidates.
    #[default]
    KMeansParallel,
    /// `k` distinct points chosen uniformly at random (seeded).
    Random,
    /// These centres, `k` of them, each with one value per feature.
    Centers(Vec<Vec<f64>>),
}

/// k-means hyper-parameters, built as `KMeans::new(8).max_iter(50).seed(7)`.
///
/// Nothing is checked until [`KMeans::check`] (or [`KMeans::build`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeans {
    k: usize,
    max_iter: usize,
    tol: f64,
    seed: u64,
    init: KMeansInit,
    init_steps: usize,
}

impl KMeans {
    /// k-means with `k` clusters and the defaults: `max_iter` 20, `tol` 1e-4, `seed` 42,
    /// k-means|| initialisation with 2 steps.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            max_iter: DEFAULT_MAX_ITER,
            tol: DEFAULT_TOL,
            seed: DEFAULT_SEED,
            init: KMeansInit::default(),
            init_steps: DEFAULT_INIT_STEPS,
        }
    }

    /// The maximum number of Lloyd iterations (>= 1).
    pub fn max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Stop once every centre moves at most `tol` (Euclidean) in an iteration. With `0`,
    /// training runs `max_iter` iterations unless the centres stop moving exactly.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// The seed of every random choice (initialisation only; Lloyd iterations are
    /// deterministic).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How the initial centres are chosen.
    pub fn init(mut self, init: KMeansInit) -> Self {
        self.init = init;
        self
    }

    /// Rounds of k-means|| sampling (>= 1; ignored by other initialisations).
    pub fn init_steps(mut self, init_steps: usize) -> Self {
        self.init_steps = init_steps;
        self
    }

    /// Checks the hyper-parameters.
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`] naming the parameter: `k`, `max_iter`, `init_steps` below
    /// 1, `tol` negative or not finite, or initial centres whose count differs from `k`, whose
    /// lengths differ, or that hold a non-finite value.
    pub fn check(&self) -> Result<KMeansValidParams> {
        if self.k == 0 {
            return Err(MlError::param("k", "k must be >= 1, got 0"));
        }
        if self.max_iter == 0 {
            return Err(MlError::param("max_iter", "max_iter must be >= 1, got 0"));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(MlError::param(
                "tol",
                format!("tol must be >= 0 and finite, got {}", self.tol),
            ));
        }
        if self.init_steps == 0 {
            return Err(MlError::param(
                "init_steps",
                "init_steps must be >= 1, got 0",
            ));
        }
        if let KMeansInit::Centers(centers) = &self.init {
            check_centers(centers, self.k)?;
        }
        Ok(KMeansValidParams(self.clone()))
    }
}

fn check_centers(centers: &[Vec<f64>], k: usize) -> Result<()> {
    if centers.len() != k {
        return Err(MlError::param(
            "init",
            format!("{} initial centres given but k = {k}", centers.len()),
        ));
    }
    let dim = centers.first().map_or(0, Vec::len);
    if dim == 0 {
        return Err(MlError::param(
            "init",
            "initial centres need at least one coordinate",
        ));
    }
    for (i, c) in centers.iter().enumerate() {
        if c.len() != dim {
            return Err(MlError::param(
                "init",
                format!(
                    "initial centre {i} has {} coordinates but centre 0 has {dim}",
                    c.len()
                ),
            ));
        }
        if let Some(v) = c.iter().find(|v| !v.is_finite()) {
            return Err(MlError::param(
                "init",
                format!("initial centre {i} holds the non-finite value {v}"),
            ));
        }
    }
    Ok(())
}

/// Hyper-parameters that passed [`KMeans::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansValidParams(KMeans);

impl KMeansValidParams {
    /// Every parameter's value, by the registry's names and in its order (see [`PARAMS`]).
    pub fn values(&self) -> Vec<(&'static str, ParamValue)> {
        let p = &self.0;
        let mut out = vec![
            ("k", ParamValue::Integer(p.k as i64)),
            ("max_iter", ParamValue::Integer(p.max_iter as i64)),
            ("tol", ParamValue::Float(p.tol)),
            ("seed", ParamValue::Integer(p.seed as i64)),
        ];
        match &p.init {
            KMeansInit::KMeansParallel => out.push(("init", ParamValue::Text("k-means||".into()))),
            KMeansInit::Random => out.push(("init", ParamValue::Text("random".into()))),
            KMeansInit::Centers(_) => {}
        }
        out.push(("init_steps", ParamValue::Integer(p.init_steps as i64)));
        if let KMeansInit::Centers(c) = &p.init {
            out.push(("init_centers", ParamValue::Matrix(c.clone())));
        }
        out
    }

    /// Number of clusters (>= 1).
    pub fn k(&self) -> usize {
        self.0.k
    }

    /// Iteration limit (>= 1).
    pub fn max_iter(&self) -> usize {
        self.0.max_iter
    }

    /// Convergence tolerance (>= 0, finite).
    pub fn tol(&self) -> f64 {
        self.0.tol
    }

    /// Seed of the random choices.
    pub fn seed(&self) -> u64 {
        self.0.seed
    }

    /// Initialisation.
    pub fn init(&self) -> &KMeansInit {
        &self.0.init
    }

    /// k-means|| rounds (>= 1).
    pub fn init_steps(&self) -> usize {
        self.0.init_steps
    }
}

/// k-means' parameters, as the registry lists them (Spark's names and defaults).
pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "k",
        ty: ParamType::Integer,
        default: "2",
        doc: "Number of clusters, >= 1.",
    },
    ParamSpec {
        name: "max_iter",
        ty: ParamType::Integer,
        default: "20",
        doc: "Maximum number of Lloyd iterations, >= 1.",
    },
    ParamSpec {
        name: "tol",
        ty: ParamType::Float,
        default: "1e-4",
        doc: "Stop once every centre moves at most this far in an iteration, >= 0.",
    },
    ParamSpec {
        name: "seed",
        ty: ParamType::Integer,
        default: "42",
        doc: "Seed of the initialisation's random choices.",
    },
    ParamSpec {
        name: "init",
        ty: ParamType::Choice(&["k-means||", "kmeans||", "k_means_parallel", "random"]),
        default: "'k-means||'",
        doc: "How the initial centres are chosen.",
    },
    ParamSpec {
        name: "init_steps",
        ty: ParamType::Integer,
        default: "2",
        doc: "Rounds of k-means|| sampling, >= 1.",
    },
    ParamSpec {
        name: "init_centers",
        ty: ParamType::Matrix,
        default: "none",
        doc: "The initial centres themselves, k rows of one value per feature (replaces init).",
    },
];

impl KMeans {
    /// k-means from the registry's checked values (defaults for the rest), not yet range
    /// checked (see [`KMeans::check`]).
    ///
    /// # Errors
    /// `init_centers` given with `init`, or an integer too large.
    pub fn from_params(map: &ParamMap) -> Result<Self> {
        // Spark's default k.
        let mut e = KMeans::new(map.integer("k")?.unwrap_or(2));
        if let Some(v) = map.integer("max_iter")? {
            e = e.max_iter(v);
        }
        if let Some(v) = map.float("tol") {
            e = e.tol(v);
        }
        if let Some(v) = map.integer("seed")? {
            e = e.seed(v as u64);
        }
        if let Some(v) = map.integer("init_steps")? {
            e = e.init_steps(v);
        }
        match (map.matrix("init_centers"), map.choice("init")) {
            (Some(_), Some(_)) => {
                return Err(MlError::param(
                    "init_centers",
                    "init_centers replaces init: give one of them",
                ))
            }
            (Some(centers), None) => e = e.init(KMeansInit::Centers(centers.to_vec())),
            (None, Some("random")) => e = e.init(KMeansInit::Random),
            (None, _) => {}
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn message(k: KMeans) -> String {
        k.check().unwrap_err().to_string()
    }

    #[test]
    fn defaults_follow_spark() {
        let p = KMeans::new(3).check().unwrap();
        assert_eq!(
            (p.k(), p.max_iter(), p.tol(), p.seed(), p.init_steps()),
            (3, 20, 1e-4, 42, 2)
        );
        assert_eq!(p.init(), &KMeansInit::KMeansParallel);
    }

    #[test]
    fn invalid_parameters_are_named() {
        assert!(message(KMeans::new(0)).contains("k must be >= 1, got 0"));
        assert!(message(KMeans::new(2).max_iter(0)).contains("max_iter must be >= 1, got 0"));
        assert!(message(KMeans::new(2).tol(-1.0)).contains("tol must be >= 0 and finite, got -1"));
        assert!(message(KMeans::new(2).tol(f64::NAN)).contains("got NaN"));
        assert!(message(KMeans::new(2).init_steps(0)).contains("init_steps must be >= 1, got 0"));
        let three = vec![vec![0.0, 0.0]; 3];
        assert!(message(KMeans::new(5).init(KMeansInit::Centers(three)))
            .contains("3 initial centres given but k = 5"));
        let ragged = vec![vec![0.0, 0.0], vec![1.0, 1.0, 1.0]];
        assert!(message(KMeans::new(2).init(KMeansInit::Centers(ragged)))
            .contains("initial centre 1 has 3 coordinates but centre 0 has 2"));
        let nan = vec![vec![0.0], vec![f64::INFINITY]];
        assert!(message(KMeans::new(2).init(KMeansInit::Centers(nan))).contains("non-finite"));
    }
}
