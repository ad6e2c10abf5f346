//! Evaluation metrics, checked against scikit-learn.
//!
//! All functions take plain slices, validate them (equal lengths, not empty, finite values,
//! labels in `{0, 1}` for binary metrics, probabilities in `[0, 1]`) and fail with an
//! [`crate::MlError::InvalidParameter`] naming the argument.
//!
//! ```text
//!  regression      mse rmse mae r2            RegressionSummary  (mergeable)
//!  classification  accuracy precision recall f1 (binary | macro | weighted)
//!                                             ConfusionCounts    (mergeable)
//!                  log_loss log_loss_multiclass roc_auc          (need every score)
//!  clustering      sse silhouette silhouette_sampled            (need the points)
//! ```
//!
//! For distributed evaluation, [`RegressionSummary`] and [`ConfusionCounts`] are computed per
//! partition and merged (associatively) on the driver. Log loss is a plain mean and can be
//! summed per partition too; ROC AUC needs every score on the driver (it sorts them), and the
//! silhouette needs every point (pairwise distances).

mod classification;
mod clustering;
mod regression;
mod roc;

pub use classification::{
    accuracy, f1, log_loss, log_loss_multiclass, precision, recall, Average, ConfusionCounts,
};
pub use clustering::{silhouette, silhouette_sampled, sse, SILHOUETTE_EXACT_MAX};
pub use regression::{mae, mse, r2, rmse, RegressionSummary};
pub use roc::roc_auc;

use crate::error::{MlError, Result};

/// Checks that `a` and `b` have the same non-zero length and finite values.
fn check_pair(a_name: &'static str, a: &[f64], b_name: &'static str, b: &[f64]) -> Result<()> {
    if a.is_empty() {
        return Err(MlError::param(
            a_name,
            "is empty; a metric needs at least one value",
        ));
    }
    if a.len() != b.len() {
        return Err(MlError::param(
            b_name,
            format!("has {} values but {a_name} has {}", b.len(), a.len()),
        ));
    }
    check_finite(a_name, a)?;
    check_finite(b_name, b)
}

fn check_finite(name: &'static str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(MlError::param(
            name,
            format!("{} at index {i}; metrics need finite values", values[i]),
        )),
        None => Ok(()),
    }
}

fn check_binary(name: &'static str, values: &[f64]) -> Result<()> {
    match values.iter().position(|&v| v != 0.0 && v != 1.0) {
        Some(i) => Err(MlError::param(
            name,
            format!(
                "binary metrics need labels 0 or 1, found {} at index {i}",
                values[i]
            ),
        )),
        None => Ok(()),
    }
}

fn check_probabilities(name: &'static str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !(0.0..=1.0).contains(v)) {
        Some(i) => Err(MlError::param(
            name,
            format!(
                "probabilities must be in [0, 1], found {} at index {i}",
                values[i]
            ),
        )),
        None => Ok(()),
    }
}
