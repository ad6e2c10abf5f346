//! Area under the ROC curve.

use super::{check_binary, check_pair};
use crate::error::{MlError, Result};

/// Area under the ROC curve of binary labels `{0, 1}` ranked by `y_score` (higher means more
/// likely 1).
///
/// As scikit-learn: the curve has one point per distinct score (tied scores move the false
/// and true positive rates together, a diagonal step), and the area is the trapezoid rule
/// over those points. Computed in integer counts, so it is exact up to the final division.
/// It sorts every score: in a distributed evaluation the scores are collected on the driver.
///
/// # Errors
/// Bad slices, labels outside `{0, 1}`, or only one class present in `y_true`.
pub fn roc_auc(y_true: &[f64], y_score: &[f64]) -> Result<f64> {
    check_pair("y_true", y_true, "y_score", y_score)?;
    check_binary("y_true", y_true)?;
    let positives = y_true.iter().filter(|&&y| y == 1.0).count() as u64;
    let negatives = y_true.len() as u64 - positives;
    if positives == 0 || negatives == 0 {
        return Err(MlError::param(
            "y_true",
            "ROC AUC needs both classes; only one is present",
        ));
    }
    let mut order: Vec<usize> = (0..y_true.len()).collect();
    order.sort_by(|&a, &b| y_score[b].total_cmp(&y_score[a]));
    // Twice the area in units of (false positives × true positives).
    let mut area2: u128 = 0;
    let (mut tp, mut fp) = (0u64, 0u64);
    let (mut tp_prev, mut fp_prev) = (0u64, 0u64);
    for (i, &row) in order.iter().enumerate() {
        if y_true[row] == 1.0 {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_score = order
            .get(i + 1)
            .is_none_or(|&next| y_score[next] != y_score[row]);
        if last_of_score {
            area2 += u128::from(fp - fp_prev) * u128::from(tp + tp_prev);
            tp_prev = tp;
            fp_prev = fp;
        }
    }
    Ok(area2 as f64 / (2.0 * positives as f64 * negatives as f64))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn examples_by_hand() {
        // scikit-learn's roc_auc_score docstring-style example: 0.75.
        let auc = roc_auc(&[0.0, 0.0, 1.0, 1.0], &[0.1, 0.4, 0.35, 0.8]).unwrap();
        assert!((auc - 0.75).abs() < 1e-15);
        // All scores tied: the diagonal, 0.5.
        assert_eq!(roc_auc(&[0.0, 1.0, 1.0], &[0.3, 0.3, 0.3]).unwrap(), 0.5);
        // A tie across classes counts half.
        let auc = roc_auc(&[0.0, 1.0, 0.0, 1.0], &[0.1, 0.5, 0.5, 0.9]).unwrap();
        assert!((auc - 0.875).abs() < 1e-15);
        let e = roc_auc(&[1.0, 1.0], &[0.1, 0.2]).unwrap_err().to_string();
        assert!(e.contains("needs both classes"), "{e}");
    }
}
