//! Margins of a trained linear model over a feature matrix, column by column.

use crate::data::{DenseMatrix, Element, Features};
use crate::error::{MlError, Result};
use crate::linalg::axpy;
use crate::with_features;

/// `mₖ = Σⱼ wₖⱼ xⱼ + bₖ` for every row: one vector per coefficient row.
///
/// # Errors
/// [`MlError::InvalidData`] when `features` has another number of columns than the model.
pub(crate) fn margins(
    features: &Features,
    coefficients: &[f64],
    intercepts: &[f64],
) -> Result<Vec<Vec<f64>>> {
    let rows = intercepts.len();
    let d = coefficients.len() / rows.max(1);
    if features.cols() != d {
        return Err(MlError::InvalidData(format!(
            "the model was trained on {d} features, the data has {}",
            features.cols()
        )));
    }
    Ok(with_features!(features, m => margins_of(m, coefficients, intercepts, d)))
}

fn margins_of<T: Element>(
    m: &DenseMatrix<T>,
    coefficients: &[f64],
    intercepts: &[f64],
    d: usize,
) -> Vec<Vec<f64>> {
    intercepts
        .iter()
        .enumerate()
        .map(|(k, b)| {
            let mut out = vec![*b; m.rows()];
            for j in 0..d {
                axpy(&mut out, coefficients[k * d + j], m.col(j));
            }
            out
        })
        .collect()
}
