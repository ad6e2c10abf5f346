//! A model as files, and as a plain local directory of those files.

use std::path::Path;

use super::metadata::{self, Kind};
use super::weights;
use super::{InputTransform, Model, ModelKind, METADATA_FILE, TRANSFORM_FILE, WEIGHTS_FILE};
use crate::cluster::kmeans::KMeansModel;
use crate::data::DenseMatrix;
use crate::error::{MlError, Result};
use crate::linear::{LinearRegressionModel, LogisticRegressionModel};

/// The files a model directory may hold, in the order they are written (`transform.json`
/// only for a model with a transform).
pub const MODEL_FILES: [&str; 3] = [TRANSFORM_FILE, WEIGHTS_FILE, METADATA_FILE];

impl Model {
    /// The model's files as `(file name, bytes)`: `transform.json` (when the model has a
    /// transform), `weights.arrow`, then `metadata.json` (layouts in the
    /// [module docs](super)). Writers store them in this order, so that a directory holding a
    /// `metadata.json` is complete.
    ///
    /// # Errors
    /// [`MlError::Arrow`] or [`MlError::Internal`] if an encoder fails, which only a bug can
    /// cause.
    pub fn to_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut files = Vec::with_capacity(3);
        if let Some(t) = self.transform() {
            files.push((TRANSFORM_FILE.to_string(), t.to_json()?));
        }
        files.push((
            WEIGHTS_FILE.to_string(),
            weights::to_ipc(&weights::batch(self)?)?,
        ));
        files.push((METADATA_FILE.to_string(), metadata::to_bytes(self)?));
        Ok(files)
    }

    /// A model from its files, `get(name)` giving a file's bytes or `None` when it is missing.
    /// Everything is validated before a model is returned; floats come back bit for bit.
    ///
    /// # Errors
    /// [`MlError::ModelFile`] naming the file (`metadata.json` or `weights.arrow`) and what is
    /// wrong: it is missing; `metadata.json` is not JSON, not of `format` `kiln-model`, of a
    /// `format_version` newer than [`FORMAT_VERSION`](super::FORMAT_VERSION), of an unknown
    /// algorithm, or has a malformed or inconsistent field; `weights.arrow` is not an Arrow
    /// IPC file, or its columns, rows, types or values (null, NaN, infinite) disagree with
    /// the metadata.
    pub fn from_files(get: impl Fn(&str) -> Option<Vec<u8>>) -> Result<Model> {
        let read = |name: &str| {
            get(name).ok_or_else(|| MlError::ModelFile {
                path: name.to_string(),
                reason: format!(
                    "missing; a model directory holds {METADATA_FILE} and {WEIGHTS_FILE}"
                ),
            })
        };
        let mut meta = metadata::parse(&read(METADATA_FILE)?)?;
        let report = meta.report.take();
        let transform = get(TRANSFORM_FILE);
        let batch = weights::read_ipc(read(WEIGHTS_FILE)?)?;
        // Errors of the model constructors left after the checks on both files concern
        // metadata.json (e.g. params.k against the centres).
        let from_parts = |e: MlError| metadata::bad(e.to_string());
        let model = match meta.kind {
            Kind::KMeans => {
                let m = meta.kmeans()?;
                let centers = weights::kmeans_centers(&batch, &m.features, m.num_clusters)?;
                let mut model = KMeansModel::new(centers, m.cost, m.iterations, m.cost_history)
                    .and_then(|model| model.with_feature_names(m.features))
                    .map_err(from_parts)?;
                if let Some(params) = m.params {
                    model = model.with_params(params).map_err(from_parts)?;
                }
                ModelKind::KMeans(model)
            }
            Kind::LinearRegression => {
                let m = meta.linear_regression()?;
                let columns = [weights::COEFFICIENT_COLUMN.to_string()];
                let values = weights::linear_columns(&batch, &m.features, &columns)?;
                // One column of `d` coefficients then the intercept, as checked above.
                let Ok([mut coefficients]) = <[Vec<f64>; 1]>::try_from(values) else {
                    return Err(MlError::Internal("not one coefficient column".into()));
                };
                let intercept = coefficients.pop().unwrap_or_default();
                ModelKind::LinearRegression(
                    LinearRegressionModel::try_new(
                        m.features,
                        m.label,
                        coefficients,
                        intercept,
                        m.summary,
                        m.params,
                    )
                    .map_err(from_parts)?,
                )
            }
            Kind::LogisticRegression => {
                let m = meta.logistic_regression()?;
                let columns = weights::logistic_columns(m.num_classes, m.multinomial);
                let values = weights::linear_columns(&batch, &m.features, &columns)?;
                let d = m.features.len();
                // Column k of the file is coefficient row k followed by its intercept.
                let mut rows = Vec::with_capacity(values.len() * d);
                let mut intercepts = Vec::with_capacity(values.len());
                for column in &values {
                    rows.extend_from_slice(&column[..d]);
                    intercepts.push(column[d]);
                }
                let coefficients = DenseMatrix::from_row_major(values.len(), d, &rows)
                    .map_err(|n| MlError::Internal(format!("{n} coefficients read")))?;
                ModelKind::LogisticRegression(
                    LogisticRegressionModel::try_new(
                        m.features,
                        m.label,
                        coefficients,
                        intercepts,
                        m.num_classes,
                        m.summary,
                        m.params,
                    )
                    .map_err(from_parts)?,
                )
            }
        };
        let model = Model::from(model);
        let transform = transform
            .map(|bytes| InputTransform::from_json(&bytes, model.feature_names()))
            .transpose()?;
        Ok(model
            .with_transform(transform.map(std::sync::Arc::new))
            .with_report(report))
    }

    /// Writes the model's files into the local directory `dir`, creating it if needed and
    /// replacing files of the same names (`metadata.json` last).
    /// Replacing a model is not atomic: save to a fresh directory when readers may be
    /// loading the old one.
    ///
    /// # Errors
    /// [`MlError::ModelFile`] naming the directory or file that could not be written.
    pub fn save_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| MlError::ModelFile {
            path: dir.display().to_string(),
            reason: format!("cannot create the directory: {e}"),
        })?;
        // A transform another model left in the directory would be read back with this one.
        if self.transform().is_none() {
            let stale = dir.join(TRANSFORM_FILE);
            match std::fs::remove_file(&stale) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(MlError::ModelFile {
                        path: stale.display().to_string(),
                        reason: format!("cannot remove the old transform: {e}"),
                    })
                }
            }
        }
        for (name, bytes) in self.to_files()? {
            let path = dir.join(&name);
            std::fs::write(&path, bytes).map_err(|e| MlError::ModelFile {
                path: path.display().to_string(),
                reason: format!("cannot write: {e}"),
            })?;
        }
        Ok(())
    }

    /// Reads a model saved by [`Model::save_dir`] (or any writer of the same files) from the
    /// local directory `dir`.
    ///
    /// # Errors
    /// [`MlError::ModelFile`] naming the directory or the file (with its path under `dir`):
    /// `dir` is not a directory, a file cannot be read, or any error of
    /// [`Model::from_files`].
    pub fn load_dir(dir: &Path) -> Result<Model> {
        if !dir.is_dir() {
            return Err(MlError::ModelFile {
                path: dir.display().to_string(),
                reason: "not a directory (a model is a directory of metadata.json and \
                         weights.arrow)"
                    .to_string(),
            });
        }
        let mut files = Vec::with_capacity(MODEL_FILES.len());
        for name in MODEL_FILES {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => files.push((name, bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(MlError::ModelFile {
                        path: path.display().to_string(),
                        reason: format!("cannot read: {e}"),
                    })
                }
            }
        }
        let get = |name: &str| {
            files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, bytes)| bytes.clone())
        };
        Model::from_files(get).map_err(|e| match e {
            MlError::ModelFile { path, reason } => MlError::ModelFile {
                path: dir.join(path).display().to_string(),
                reason,
            },
            other => other,
        })
    }
}
