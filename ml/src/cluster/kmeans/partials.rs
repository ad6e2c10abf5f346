//! What a k-means kernel answers for one partition, and how two answers merge.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::random::value_bits;

/// The per-centre sums of an [`crate::cluster::kmeans::KMeansKernel::Assign`] pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignPartial {
    /// Number of centres.
    pub k: usize,
    /// Coordinates per centre.
    pub dim: usize,
    /// Sum of the rows nearest each centre, `k × dim` row-major.
    pub sums: Vec<f64>,
    /// Rows nearest each centre.
    pub counts: Vec<u64>,
    /// Sum of squared distances of the rows to their nearest centre.
    pub cost: f64,
}

/// Distinct points, each with a 64-bit key, sorted by (key, coordinates) without duplicates.
///
/// The key is a hash of the point's coordinates (salted by the seed for random picks), so the
/// order, and which points a seeded pass selects, does not depend on how the rows are split
/// into partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointSet {
    /// Coordinates per point.
    pub dim: usize,
    /// The key of each point.
    pub keys: Vec<u64>,
    /// The points, row-major.
    pub values: Vec<f64>,
    /// Keep at most this many points (the smallest keys), if set.
    pub limit: Option<usize>,
}

/// The result of a [`crate::cluster::kmeans::KMeansKernel`] on one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KMeansPartial {
    /// See [`crate::cluster::kmeans::KMeansKernel::Assign`].
    Assign(AssignPartial),
    /// See [`crate::cluster::kmeans::KMeansKernel::Cost`].
    Cost(f64),
    /// See [`crate::cluster::kmeans::KMeansKernel::Sample`] and [`crate::cluster::kmeans::KMeansKernel::Pick`].
    Points(PointSet),
    /// See [`crate::cluster::kmeans::KMeansKernel::Weights`].
    Counts(Vec<u64>),
}

impl KMeansPartial {
    /// Combines the partials of one kernel on two sets of rows. Associative; sums are exact
    /// for counts and point sets and rounded in merge order for floating-point sums.
    ///
    /// # Errors
    /// [`MlError::Internal`] when the partials come from different kernels or shapes.
    pub fn merge(self, other: Self) -> Result<Self> {
        match (self, other) {
            (KMeansPartial::Assign(a), KMeansPartial::Assign(b)) => {
                a.merge(b).map(KMeansPartial::Assign)
            }
            (KMeansPartial::Cost(a), KMeansPartial::Cost(b)) => Ok(KMeansPartial::Cost(a + b)),
            (KMeansPartial::Counts(a), KMeansPartial::Counts(b)) => {
                if a.len() != b.len() {
                    return Err(shape_mismatch("weights"));
                }
                Ok(KMeansPartial::Counts(
                    a.iter().zip(&b).map(|(x, y)| x + y).collect(),
                ))
            }
            (KMeansPartial::Points(a), KMeansPartial::Points(b)) => {
                a.merge(&b).map(KMeansPartial::Points)
            }
            _ => Err(MlError::Internal(
                "k-means partials of different kernels cannot be merged".into(),
            )),
        }
    }
}

pub(super) fn shape_mismatch(what: &str) -> MlError {
    MlError::Internal(format!("k-means {what} partials of different shapes"))
}

impl AssignPartial {
    /// The Lloyd update: moves each of the centres `centers` (`k × dim` row-major, as in
    /// [`CenterSet::values`](crate::cluster::kmeans::CenterSet::values)) to the mean of its rows, a centre without rows staying where it
    /// is, and returns how far each moved, squared.
    pub fn move_centres(&self, centers: &mut [f64]) -> Vec<f64> {
        let dim = self.dim.max(1);
        centers
            .chunks_exact_mut(dim)
            .zip(self.sums.chunks_exact(dim))
            .zip(&self.counts)
            .map(|((center, sum), &count)| {
                if count == 0 {
                    return 0.0;
                }
                let n = count as f64;
                let mut shift2 = 0.0;
                for (c, s) in center.iter_mut().zip(sum) {
                    let new = s / n;
                    let t = new - *c;
                    shift2 += t * t;
                    *c = new;
                }
                shift2
            })
            .collect()
    }

    pub(super) fn zeros(k: usize, dim: usize, with_sums: bool) -> Self {
        Self {
            k,
            dim,
            sums: vec![0.0; if with_sums { k * dim } else { 0 }],
            counts: vec![0; k],
            cost: 0.0,
        }
    }

    /// Adds the sums, counts and cost of `other`.
    ///
    /// # Errors
    /// [`MlError::Internal`] when the shapes differ.
    pub fn merge(mut self, other: Self) -> Result<Self> {
        if self.k != other.k
            || self.dim != other.dim
            || self.sums.len() != other.sums.len()
            || self.counts.len() != other.counts.len()
        {
            return Err(shape_mismatch("assign"));
        }
        self.sums
            .iter_mut()
            .zip(&other.sums)
            .for_each(|(a, b)| *a += b);
        self.counts
            .iter_mut()
            .zip(&other.counts)
            .for_each(|(a, b)| *a += b);
        self.cost += other.cost;
        Ok(self)
    }
}

impl PointSet {
    pub(super) fn empty(dim: usize, limit: Option<usize>) -> Self {
        Self {
            dim,
            keys: Vec::new(),
            values: Vec::new(),
            limit,
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Point `i`.
    pub fn point(&self, i: usize) -> &[f64] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// The points as rows, in order.
    pub fn to_rows(&self) -> Vec<Vec<f64>> {
        (0..self.len()).map(|i| self.point(i).to_vec()).collect()
    }

    /// The sorted union without duplicates, cut to the limit.
    ///
    /// # Errors
    /// [`MlError::Internal`] when dimensions or limits differ.
    pub fn merge(&self, other: &Self) -> Result<Self> {
        if self.limit != other.limit
            || (self.dim != other.dim && !self.is_empty() && !other.is_empty())
        {
            return Err(shape_mismatch("point"));
        }
        let dim = if self.is_empty() { other.dim } else { self.dim };
        let mut out = Self::empty(dim, self.limit);
        let (mut i, mut j) = (0, 0);
        let cap = self.limit.unwrap_or(usize::MAX);
        while out.len() < cap && (i < self.len() || j < other.len()) {
            let order = if i == self.len() {
                Ordering::Greater
            } else if j == other.len() {
                Ordering::Less
            } else {
                compare_points(self.keys[i], self.point(i), other.keys[j], other.point(j))
            };
            match order {
                Ordering::Less => {
                    out.push(self.keys[i], self.point(i));
                    i += 1;
                }
                Ordering::Greater => {
                    out.push(other.keys[j], other.point(j));
                    j += 1;
                }
                Ordering::Equal => {
                    out.push(self.keys[i], self.point(i));
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(out)
    }

    fn push(&mut self, key: u64, point: &[f64]) {
        self.keys.push(key);
        self.values.extend_from_slice(point);
    }

    /// Inserts a point in order unless present; keeps the limit. Used for the rare rows whose
    /// key beats the current worst, so linear insertion is fine.
    pub(super) fn insert(&mut self, key: u64, point: &[f64]) {
        let pos = (0..self.len()).find_map(|i| {
            match compare_points(key, point, self.keys[i], self.point(i)) {
                Ordering::Less => Some(Some(i)),
                Ordering::Equal => Some(None),
                Ordering::Greater => None,
            }
        });
        let at = match pos {
            Some(Some(i)) => i,
            Some(None) => return,
            None => self.len(),
        };
        if self.limit.is_some_and(|l| at >= l) {
            return;
        }
        self.keys.insert(at, key);
        let offset = at * self.dim;
        self.values.splice(offset..offset, point.iter().copied());
        if let Some(l) = self.limit {
            self.keys.truncate(l);
            self.values.truncate(l * self.dim);
        }
    }

    /// The largest key when the set is full (rows with a larger key cannot enter).
    pub(super) fn threshold(&self) -> Option<u64> {
        match self.limit {
            Some(l) if self.len() >= l => self.keys.last().copied(),
            _ => None,
        }
    }
}

/// Total order on points: by key, then coordinates by their bits (`-0.0` counts as `0.0`).
pub(super) fn compare_points(ka: u64, a: &[f64], kb: u64, b: &[f64]) -> Ordering {
    ka.cmp(&kb).then_with(|| {
        a.iter()
            .map(|v| value_bits(*v))
            .cmp(b.iter().map(|v| value_bits(*v)))
    })
}
