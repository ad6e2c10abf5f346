//! Clustering metrics: the SSE against given centres and the silhouette coefficient.

use crate::linalg::squared_distance;
use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::cluster::kmeans::SALT_SILHOUETTE;
use crate::error::{MlError, Result};
use crate::random::{mix64, SplitMix64};

/// Up to this many points the silhouette is exact; above, it is computed on a seeded sample of
/// this many points (pairwise distances: O(n²) time).
pub const SILHOUETTE_EXACT_MAX: usize = 10_000;

/// The seed of [`silhouette`]'s sample when there are more than [`SILHOUETTE_EXACT_MAX`]
/// points.
const SILHOUETTE_SEED: u64 = 42;

fn check_points<R: AsRef<[f64]>>(points: &[R]) -> Result<usize> {
    let dim = points
        .first()
        .map(|p| p.as_ref().len())
        .ok_or_else(|| MlError::param("points", "is empty; a metric needs at least one value"))?;
    for (i, p) in points.iter().enumerate() {
        let p = p.as_ref();
        if p.len() != dim {
            return Err(MlError::param(
                "points",
                format!("point {i} has {} values but point 0 has {dim}", p.len()),
            ));
        }
        if let Some(v) = p.iter().find(|v| !v.is_finite()) {
            return Err(MlError::param(
                "points",
                format!("point {i} holds {v}; metrics need finite values"),
            ));
        }
    }
    Ok(dim)
}

/// Sum of squared distances of every point to its nearest centre (k-means' cost, scikit-learn's
/// `inertia_`). Mergeable: the SSE of a union is the sum of the SSEs.
///
/// # Errors
/// Empty or ragged points or centres, non-finite values, centres of another width.
pub fn sse<R: AsRef<[f64]>>(points: &[R], centers: &[Vec<f64>]) -> Result<f64> {
    let dim = check_points(points)?;
    if centers.is_empty() {
        return Err(MlError::param("centers", "need at least one centre"));
    }
    if let Some((i, c)) = centers.iter().enumerate().find(|(_, c)| c.len() != dim) {
        return Err(MlError::param(
            "centers",
            format!(
                "centre {i} has {} values but the points have {dim}",
                c.len()
            ),
        ));
    }
    Ok(points
        .iter()
        .map(|p| {
            centers
                .iter()
                .map(|c| squared_distance(p.as_ref(), c))
                .fold(f64::INFINITY, f64::min)
        })
        .sum())
}

/// Mean silhouette coefficient `s = (b − a) / max(a, b)` over the points, with `a` the mean
/// distance to the other points of the same cluster and `b` the smallest mean distance to the
/// points of another cluster (Euclidean); a point alone in its cluster scores 0.
///
/// Exact for up to [`SILHOUETTE_EXACT_MAX`] points; above, computed on a sample of that many
/// points drawn without replacement with a fixed seed, like scikit-learn's
/// `silhouette_score(sample_size=...)` (the same semantics, another random generator). It needs
/// every point on the driver.
///
/// # Errors
/// Bad points, `labels` of another length, or a number of distinct labels outside
/// `2 ..= n − 1` (in the sample).
pub fn silhouette<R: AsRef<[f64]> + Sync>(points: &[R], labels: &[u32]) -> Result<f64> {
    silhouette_sampled(points, labels, SILHOUETTE_EXACT_MAX, SILHOUETTE_SEED)
}

/// [`silhouette`] on at most `sample_size` points, drawn without replacement with `seed` when
/// there are more (all points otherwise).
///
/// # Errors
/// As [`silhouette`], and a `sample_size` below 2.
pub fn silhouette_sampled<R: AsRef<[f64]> + Sync>(
    points: &[R],
    labels: &[u32],
    sample_size: usize,
    seed: u64,
) -> Result<f64> {
    check_points(points)?;
    if labels.len() != points.len() {
        return Err(MlError::param(
            "labels",
            format!(
                "has {} values but there are {} points",
                labels.len(),
                points.len()
            ),
        ));
    }
    if sample_size < 2 {
        return Err(MlError::param(
            "sample_size",
            format!("must be >= 2, got {sample_size}"),
        ));
    }
    let rows: Vec<usize> = if points.len() > sample_size {
        // Partial Fisher-Yates: the first `sample_size` of a seeded permutation.
        let mut rng = SplitMix64::new(mix64(seed ^ SALT_SILHOUETTE));
        let mut all: Vec<usize> = (0..points.len()).collect();
        for i in 0..sample_size {
            let j = i + rng.below(all.len() - i);
            all.swap(i, j);
        }
        all.truncate(sample_size);
        all
    } else {
        (0..points.len()).collect()
    };
    // Dense cluster ids 0..m over the sample.
    let ids: BTreeMap<u32, usize> = rows
        .iter()
        .map(|&r| labels[r])
        .collect::<std::collections::BTreeSet<u32>>()
        .into_iter()
        .enumerate()
        .map(|(i, l)| (l, i))
        .collect();
    let m = ids.len();
    let n = rows.len();
    if m < 2 || m > n - 1 {
        return Err(MlError::param(
            "labels",
            format!(
                "the silhouette needs 2 to n - 1 = {} distinct labels, got {m}",
                n - 1
            ),
        ));
    }
    let cluster: Vec<usize> = rows.iter().map(|&r| ids[&labels[r]]).collect();
    let mut sizes = vec![0usize; m];
    for &c in &cluster {
        sizes[c] += 1;
    }
    let scores: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| {
            let own = cluster[i];
            if sizes[own] == 1 {
                return 0.0;
            }
            let x = points[rows[i]].as_ref();
            let mut sums = vec![0.0; m];
            for (j, &r) in rows.iter().enumerate() {
                sums[cluster[j]] += squared_distance(x, points[r].as_ref()).sqrt();
            }
            let a = sums[own] / (sizes[own] - 1) as f64;
            let b = sums
                .iter()
                .zip(&sizes)
                .enumerate()
                .filter(|(c, _)| *c != own)
                .map(|(_, (s, &size))| s / size as f64)
                .fold(f64::INFINITY, f64::min);
            let denom = a.max(b);
            if denom > 0.0 {
                (b - a) / denom
            } else {
                0.0
            }
        })
        .collect();
    Ok(scores.iter().sum::<f64>() / n as f64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn silhouette_by_hand() {
        // Two pairs on a line: 0, 1 | 10, 11.
        let points = [[0.0], [1.0], [10.0], [11.0]];
        let labels = [0, 0, 1, 1];
        // point 0: a = 1, b = (10 + 11) / 2 = 10.5 → 9.5 / 10.5
        // point 1: a = 1, b = (9 + 10) / 2 = 9.5 → 8.5 / 9.5; symmetric for the others.
        let want = (9.5 / 10.5 + 8.5 / 9.5) / 2.0;
        assert!((silhouette(&points, &labels).unwrap() - want).abs() < 1e-15);
        let e = silhouette(&points, &[0, 0, 0, 0]).unwrap_err().to_string();
        assert!(e.contains("2 to n - 1 = 3 distinct labels, got 1"), "{e}");
    }

    #[test]
    fn sampled_silhouette_is_deterministic_and_close_to_exact() {
        let points: Vec<Vec<f64>> = (0..3000)
            .map(|i| {
                let c = f64::from(i % 3) * 4.0;
                vec![c + f64::from(i % 101) / 50.0, f64::from(i % 37) / 20.0]
            })
            .collect();
        let labels: Vec<u32> = (0..3000u32).map(|i| i % 3).collect();
        let exact = silhouette(&points, &labels).unwrap();
        let a = silhouette_sampled(&points, &labels, 800, 1).unwrap();
        let b = silhouette_sampled(&points, &labels, 800, 1).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, exact);
        assert!((a - exact).abs() < 0.02, "{a} vs {exact}");
    }

    #[test]
    fn sse_is_the_distance_to_the_nearest_centre() {
        let got = sse(&[[0.0, 1.0], [5.0, 5.0]], &[vec![0.0, 0.0], vec![5.0, 7.0]]).unwrap();
        assert_eq!(got, 1.0 + 4.0);
        let e = sse(&[[0.0, 1.0]], &[vec![0.0]]).unwrap_err().to_string();
        assert!(
            e.contains("centre 0 has 1 values but the points have 2"),
            "{e}"
        );
    }
}
