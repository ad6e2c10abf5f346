//! Classification metrics: a mergeable confusion matrix and the scores derived from it, and
//! log loss.

use serde::{Deserialize, Serialize};

use super::{check_binary, check_finite, check_pair, check_probabilities};
use crate::error::{MlError, Result};

/// How per-class precision, recall and F1 combine (scikit-learn's `average`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Average {
    /// Binary labels `{0, 1}`, the score of the positive class `1`.
    #[default]
    Binary,
    /// The unweighted mean over the labels present in `y_true` or `y_pred`.
    Macro,
    /// The mean over those labels weighted by their support (rows in `y_true`).
    Weighted,
}

/// A confusion matrix over the labels seen so far, mergeable across partitions.
///
/// `counts[t * labels.len() + p]` counts rows with true label `labels[t]` predicted as
/// `labels[p]`; `labels` is sorted ascending. A score whose denominator is 0 (no row predicted
/// or truly in a class) counts as 0, scikit-learn's `zero_division` default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfusionCounts {
    /// The distinct labels, ascending.
    pub labels: Vec<f64>,
    /// Row-major counts, true label by predicted label.
    pub counts: Vec<u64>,
}

impl ConfusionCounts {
    /// The confusion matrix of one set of rows.
    ///
    /// # Errors
    /// When the slices are empty, of different lengths or hold a non-finite value.
    pub fn from_slices(y_true: &[f64], y_pred: &[f64]) -> Result<Self> {
        check_pair("y_true", y_true, "y_pred", y_pred)?;
        let mut labels: Vec<f64> = y_true.iter().chain(y_pred).map(|v| v + 0.0).collect();
        labels.sort_by(f64::total_cmp);
        labels.dedup();
        let m = labels.len();
        let mut counts = vec![0; m * m];
        let index = |v: f64| labels.partition_point(|l| l.total_cmp(&(v + 0.0)).is_lt());
        for (t, p) in y_true.iter().zip(y_pred) {
            counts[index(*t) * m + index(*p)] += 1;
        }
        Ok(Self { labels, counts })
    }

    /// The confusion matrix of both sets of rows (labels united). Associative and exact.
    pub fn merge(&self, other: &Self) -> Self {
        let mut labels: Vec<f64> = self.labels.iter().chain(&other.labels).copied().collect();
        labels.sort_by(f64::total_cmp);
        labels.dedup();
        let m = labels.len();
        let mut counts = vec![0; m * m];
        for part in [self, other] {
            let map: Vec<usize> = part
                .labels
                .iter()
                .map(|l| labels.partition_point(|x| x.total_cmp(l).is_lt()))
                .collect();
            let k = part.labels.len();
            for (t, &mt) in map.iter().enumerate() {
                for (p, &mp) in map.iter().enumerate() {
                    counts[mt * m + mp] += part.counts[t * k + p];
                }
            }
        }
        Self { labels, counts }
    }

    /// Total rows.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Fraction of rows predicted right.
    pub fn accuracy(&self) -> f64 {
        let m = self.labels.len();
        let right: u64 = (0..m).map(|i| self.counts[i * m + i]).sum();
        right as f64 / self.total() as f64
    }

    /// Precision `tp / (tp + fp)`.
    ///
    /// # Errors
    /// For [`Average::Binary`], when a label is not 0 or 1.
    pub fn precision(&self, average: Average) -> Result<f64> {
        self.score(average, |s| ratio(s.tp, s.tp + s.fp))
    }

    /// Recall `tp / (tp + fn)`.
    ///
    /// # Errors
    /// As [`ConfusionCounts::precision`].
    pub fn recall(&self, average: Average) -> Result<f64> {
        self.score(average, |s| ratio(s.tp, s.tp + s.fn_))
    }

    /// F1 `2tp / (2tp + fp + fn)`, the harmonic mean of precision and recall.
    ///
    /// # Errors
    /// As [`ConfusionCounts::precision`].
    pub fn f1(&self, average: Average) -> Result<f64> {
        self.score(average, |s| ratio(2 * s.tp, 2 * s.tp + s.fp + s.fn_))
    }

    fn class(&self, i: usize) -> ClassCounts {
        let m = self.labels.len();
        let tp = self.counts[i * m + i];
        let true_total: u64 = self.counts[i * m..(i + 1) * m].iter().sum();
        let pred_total: u64 = (0..m).map(|t| self.counts[t * m + i]).sum();
        ClassCounts {
            tp,
            fp: pred_total - tp,
            fn_: true_total - tp,
        }
    }

    fn score(&self, average: Average, f: impl Fn(&ClassCounts) -> f64) -> Result<f64> {
        match average {
            Average::Binary => {
                if let Some(l) = self.labels.iter().find(|&&l| l != 0.0 && l != 1.0) {
                    return Err(MlError::param(
                        "average",
                        format!(
                            "binary metrics need labels 0 or 1, found {l}; use Average::Macro or Average::Weighted for multiclass labels"
                        ),
                    ));
                }
                Ok(self
                    .labels
                    .iter()
                    .position(|&l| l == 1.0)
                    .map_or(0.0, |i| f(&self.class(i))))
            }
            Average::Macro => {
                let m = self.labels.len();
                Ok((0..m).map(|i| f(&self.class(i))).sum::<f64>() / m as f64)
            }
            Average::Weighted => {
                let mut total = 0.0;
                let mut support = 0u64;
                for i in 0..self.labels.len() {
                    let c = self.class(i);
                    let n = c.tp + c.fn_;
                    total += f(&c) * n as f64;
                    support += n;
                }
                Ok(if support == 0 {
                    0.0
                } else {
                    total / support as f64
                })
            }
        }
    }
}

struct ClassCounts {
    tp: u64,
    fp: u64,
    fn_: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Fraction of rows whose prediction equals the label.
///
/// # Errors
/// When the slices are empty, of different lengths or hold a non-finite value.
pub fn accuracy(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    ConfusionCounts::from_slices(y_true, y_pred).map(|c| c.accuracy())
}

/// Precision, see [`ConfusionCounts::precision`].
///
/// # Errors
/// Bad slices, or labels outside `{0, 1}` for [`Average::Binary`].
pub fn precision(y_true: &[f64], y_pred: &[f64], average: Average) -> Result<f64> {
    ConfusionCounts::from_slices(y_true, y_pred)?.precision(average)
}

/// Recall, see [`ConfusionCounts::recall`].
///
/// # Errors
/// As [`precision`].
pub fn recall(y_true: &[f64], y_pred: &[f64], average: Average) -> Result<f64> {
    ConfusionCounts::from_slices(y_true, y_pred)?.recall(average)
}

/// F1, see [`ConfusionCounts::f1`].
///
/// # Errors
/// As [`precision`].
pub fn f1(y_true: &[f64], y_pred: &[f64], average: Average) -> Result<f64> {
    ConfusionCounts::from_slices(y_true, y_pred)?.f1(average)
}

/// Binary cross-entropy `−(1/n) Σ [y log p + (1 − y) log(1 − p)]`, `p` the probability of
/// class 1. As scikit-learn 1.7, the probabilities of both classes (`1 − p` and `p`) are
/// clipped to `[ε, 1 − ε]`, `ε = f64::EPSILON`, so a confident mistake costs about 36, not ∞.
///
/// # Errors
/// Bad slices, labels outside `{0, 1}`, probabilities outside `[0, 1]`.
pub fn log_loss(y_true: &[f64], y_prob: &[f64]) -> Result<f64> {
    check_pair("y_true", y_true, "y_prob", y_prob)?;
    check_binary("y_true", y_true)?;
    check_probabilities("y_prob", y_prob)?;
    let total: f64 = y_true
        .iter()
        .zip(y_prob)
        .map(|(&y, &p)| {
            let q = if y == 1.0 { p } else { 1.0 - p };
            -clip(q).ln()
        })
        .sum();
    Ok(total / y_true.len() as f64)
}

/// Multiclass cross-entropy `−(1/n) Σ log p_{i, y_i}` for labels `0 .. n_classes` and a
/// row-major `n × n_classes` probability matrix; entries are clipped to `[ε, 1 − ε]` as in
/// scikit-learn 1.7 (rows are not renormalised).
///
/// # Errors
/// Bad slices, a label that is not an integer in `0 .. n_classes`, a matrix of the wrong size,
/// probabilities outside `[0, 1]`, fewer than 2 classes.
pub fn log_loss_multiclass(y_true: &[f64], y_prob: &[f64], n_classes: usize) -> Result<f64> {
    if n_classes < 2 {
        return Err(MlError::param(
            "n_classes",
            format!("log loss needs at least 2 classes, got {n_classes}"),
        ));
    }
    if y_true.is_empty() {
        return Err(MlError::param(
            "y_true",
            "is empty; a metric needs at least one value",
        ));
    }
    if y_prob.len() != y_true.len() * n_classes {
        return Err(MlError::param(
            "y_prob",
            format!(
                "has {} values but {} rows x {n_classes} classes need {}",
                y_prob.len(),
                y_true.len(),
                y_true.len() * n_classes
            ),
        ));
    }
    check_finite("y_true", y_true)?;
    check_finite("y_prob", y_prob)?;
    check_probabilities("y_prob", y_prob)?;
    let mut total = 0.0;
    for (i, (&y, row)) in y_true
        .iter()
        .zip(y_prob.chunks_exact(n_classes))
        .enumerate()
    {
        if y.fract() != 0.0 || y < 0.0 || y >= n_classes as f64 {
            return Err(MlError::param(
                "y_true",
                format!("labels must be integers in 0..{n_classes}, found {y} at index {i}"),
            ));
        }
        total += -clip(row[y as usize]).ln();
    }
    Ok(total / y_true.len() as f64)
}

fn clip(p: f64) -> f64 {
    p.clamp(f64::EPSILON, 1.0 - f64::EPSILON)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn binary_scores_by_hand() {
        let t = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        let p = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        // tp 2, fp 1, fn 1, tn 3
        assert!((precision(&t, &p, Average::Binary).unwrap() - 2.0 / 3.0).abs() < 1e-15);
        assert!((recall(&t, &p, Average::Binary).unwrap() - 2.0 / 3.0).abs() < 1e-15);
        assert!((f1(&t, &p, Average::Binary).unwrap() - 2.0 / 3.0).abs() < 1e-15);
        assert!((accuracy(&t, &p).unwrap() - 5.0 / 7.0).abs() < 1e-15);
        assert_eq!(
            precision(&[0.0, 0.0], &[0.0, 0.0], Average::Binary).unwrap(),
            0.0
        );
    }

    #[test]
    fn merged_counts_equal_the_whole() {
        let t: Vec<f64> = (0..100).map(|i| f64::from(i % 3)).collect();
        let p: Vec<f64> = (0..100).map(|i| f64::from((i / 2) % 4)).collect();
        let whole = ConfusionCounts::from_slices(&t, &p).unwrap();
        let a = ConfusionCounts::from_slices(&t[..10], &p[..10]).unwrap();
        let b = ConfusionCounts::from_slices(&t[10..], &p[10..]).unwrap();
        assert_eq!(a.merge(&b), whole);
        assert_eq!(ConfusionCounts::default().merge(&whole), whole);
        assert_eq!(whole.total(), 100);
    }

    #[test]
    fn bad_labels_and_probabilities_are_named() {
        let e = precision(&[0.0, 2.0], &[0.0, 1.0], Average::Binary)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("binary metrics need labels 0 or 1, found 2"),
            "{e}"
        );
        let e = log_loss(&[0.0, 1.0], &[0.5, 1.5]).unwrap_err().to_string();
        assert!(
            e.contains("probabilities must be in [0, 1], found 1.5 at index 1"),
            "{e}"
        );
        let e = log_loss(&[0.0, 3.0], &[0.5, 0.5]).unwrap_err().to_string();
        assert!(e.contains("found 3 at index 1"), "{e}");
        let e = log_loss_multiclass(&[0.0, 2.0], &[0.5; 4], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("integers in 0..2, found 2 at index 1"), "{e}");
        let e = log_loss_multiclass(&[0.0], &[0.5; 3], 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("has 3 values but 1 rows x 2 classes need 2"),
            "{e}"
        );
    }

    #[test]
    fn log_loss_clips_confident_mistakes() {
        let l = log_loss(&[1.0], &[0.0]).unwrap();
        assert!((l + f64::EPSILON.ln()).abs() < 1e-12);
    }
}
