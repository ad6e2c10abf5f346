//! A trained k-means model: its centres, cost and history, and nearest-centre prediction.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::centers::CenterSet;
use super::hyperparams::KMeansValidParams;
use super::nearest::{for_each_nearest, Nearest};
use crate::data::{block_ranges, DenseMatrix, Element, Features, BLOCK_ROWS};
use crate::error::{MlError, Result};
use crate::simd::code_path;
use crate::with_features;

/// The result of k-means training.
///
/// Besides the centres it carries what a model file records: the feature names (in centre
/// coordinate order) and the hyper-parameters it was trained with (`None` for a model built
/// from its parts with [`KMeansModel::new`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansModel {
    centers: Vec<Vec<f64>>,
    cost: f64,
    iterations: usize,
    cost_history: Vec<f64>,
    features: Vec<String>,
    params: Option<KMeansValidParams>,
}

impl KMeansModel {
    /// A model from its parts (e.g. trained elsewhere). Its features are named
    /// `x0 .. x{dim-1}` until [`with_feature_names`](Self::with_feature_names) and its
    /// hyper-parameters unknown until [`with_params`](Self::with_params).
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`] (`centers`) when the centres are empty, ragged or hold a
    /// non-finite value.
    pub fn new(
        centers: Vec<Vec<f64>>,
        cost: f64,
        iterations: usize,
        cost_history: Vec<f64>,
    ) -> Result<Self> {
        let set = CenterSet::from_rows(&centers)?;
        Ok(Self {
            centers,
            cost,
            iterations,
            cost_history,
            features: (0..set.dim).map(|j| format!("x{j}")).collect(),
            params: None,
        })
    }

    /// The model with its features named `features`, in centre coordinate order.
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`] (`features`) when there is not one name per coordinate.
    pub fn with_feature_names(mut self, features: Vec<String>) -> Result<Self> {
        if features.len() != self.dim() {
            return Err(MlError::param(
                "features",
                format!(
                    "{} feature names for centres of {} coordinates",
                    features.len(),
                    self.dim()
                ),
            ));
        }
        self.features = features;
        Ok(self)
    }

    /// The model recording the hyper-parameters it was trained with.
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`] (`k`) when `params.k()` differs from the number of
    /// centres.
    pub fn with_params(mut self, params: KMeansValidParams) -> Result<Self> {
        if params.k() != self.k() {
            return Err(MlError::param(
                "k",
                format!("k = {} but the model has {} centres", params.k(), self.k()),
            ));
        }
        self.params = Some(params);
        Ok(self)
    }

    /// The feature columns, in centre coordinate order.
    pub fn feature_names(&self) -> &[String] {
        &self.features
    }

    /// The hyper-parameters the model was trained with; `None` for a model built from its
    /// parts without [`with_params`](Self::with_params).
    pub fn params(&self) -> Option<&KMeansValidParams> {
        self.params.as_ref()
    }

    /// The centres, one row of `dim()` values per cluster.
    pub fn centers(&self) -> &[Vec<f64>] {
        &self.centers
    }

    /// Number of clusters.
    pub fn k(&self) -> usize {
        self.centers.len()
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.centers.first().map_or(0, Vec::len)
    }

    /// Sum of squared distances of the training rows to their nearest final centre
    /// (scikit-learn's `inertia_`).
    pub fn cost(&self) -> f64 {
        self.cost
    }

    /// Lloyd iterations run.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// The cost at each Lloyd iteration: entry `i` is the SSE of the assignment made with the
    /// centres at the start of iteration `i + 1`.
    pub fn cost_history(&self) -> &[f64] {
        &self.cost_history
    }

    /// The nearest centre of every row (ties to the lowest index), computed block by block in
    /// parallel with the same fused loop as training.
    ///
    /// # Errors
    /// [`MlError::InvalidData`] when the features have another width than the centres;
    /// [`MlError::InvalidParameter`] for a model whose centres are inconsistent (e.g. a
    /// hand-edited file).
    pub fn predict(&self, x: &Features) -> Result<Vec<u32>> {
        let centers = CenterSet::from_rows(&self.centers)?;
        if x.cols() != centers.dim {
            return Err(MlError::InvalidData(format!(
                "{} feature columns but the model was trained on {}",
                x.cols(),
                centers.dim
            )));
        }
        if u32::try_from(centers.k).is_err() {
            return Err(MlError::Internal(format!("{} centres", centers.k)));
        }
        Ok(with_features!(x, m => predict_matrix(m, &centers)))
    }

    /// [`KMeansModel::predict`] for a few rows given as slices.
    ///
    /// # Errors
    /// [`MlError::InvalidData`] when a row has another length than the centres.
    pub fn predict_rows<R: AsRef<[f64]>>(&self, rows: &[R]) -> Result<Vec<u32>> {
        let dim = self.dim();
        if let Some((i, r)) = rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.as_ref().len() != dim)
        {
            return Err(MlError::InvalidData(format!(
                "row {i} has {} values but the model was trained on {dim} features",
                r.as_ref().len()
            )));
        }
        let flat: Vec<f64> = rows
            .iter()
            .flat_map(|r| r.as_ref().iter().copied())
            .collect();
        let m = DenseMatrix::from_row_major(rows.len(), dim, &flat)
            .map_err(|n| MlError::Internal(format!("{n} values for {} rows", rows.len())))?;
        self.predict(&Features::F64(m))
    }
}

fn predict_matrix<T: Element>(m: &DenseMatrix<T>, centers: &CenterSet) -> Vec<u32> {
    let mut out = vec![0u32; m.rows()];
    let near = Nearest::new(centers, code_path());
    out.par_chunks_mut(BLOCK_ROWS)
        .zip(block_ranges(m.rows()).collect::<Vec<_>>())
        .for_each(|(labels, rows)| {
            let first = rows.start;
            for_each_nearest(m, rows, &near, None, |_, valid, row0, nearest, _| {
                let at = row0 - first;
                for (o, &c) in labels[at..at + valid].iter_mut().zip(nearest) {
                    // Fewer than 2^32 centres (checked by `predict`).
                    *o = c as u32;
                }
            });
        });
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn model() -> KMeansModel {
        KMeansModel::new(
            vec![vec![0.0, 0.0], vec![10.0, 0.0], vec![0.0, 10.0]],
            12.5,
            4,
            vec![100.0, 20.0, 13.0, 12.5],
        )
        .unwrap()
    }

    #[test]
    fn predict_picks_the_nearest_centre() {
        let m = model();
        let rows: Vec<Vec<f64>> = (0..10_000u32)
            .map(|i| {
                let c = (i % 3) as usize;
                let (x, y) = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)][c];
                vec![x + f64::from(i % 7) * 0.1, y - f64::from(i % 5) * 0.1]
            })
            .collect();
        let got = m.predict_rows(&rows).unwrap();
        let want: Vec<u32> = (0..10_000u32).map(|i| i % 3).collect();
        assert_eq!(got, want);
        let f32s: Vec<f32> = rows.iter().flatten().map(|v| *v as f32).collect();
        let x = Features::F32(DenseMatrix::from_row_major(rows.len(), 2, &f32s).unwrap());
        assert_eq!(m.predict(&x).unwrap(), want);
    }

    #[test]
    fn predict_rejects_another_width() {
        let err = model()
            .predict_rows(&[vec![1.0, 2.0, 3.0]])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("row 0 has 3 values but the model was trained on 2"),
            "{err}"
        );
    }

    #[test]
    fn model_round_trips_through_json() {
        let m = KMeansModel::new(
            vec![vec![0.1, 1.0 / 3.0], vec![-2.5e-300, 7.0]],
            0.1 + 0.2,
            3,
            vec![1.0 / 7.0, 0.3],
        )
        .unwrap();
        let json = serde_json::to_string(&m).unwrap();
        let back: KMeansModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert_eq!((back.k(), back.dim(), back.iterations()), (2, 2, 3));
    }
}
