//! [`InputTransform`]: how a model's features are computed from raw columns, kept with the
//! model as `transform.json` in its directory.
//!
//! The ML crate only keeps and checks the description; the engine fits it (SQL `TRANSFORM`)
//! and applies it (every way of predicting).

use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};

/// The file of a model directory holding its transform.
pub const TRANSFORM_FILE: &str = "transform.json";

/// A fitted feature transform: one SQL expression per model feature over the raw columns it
/// reads, its *inputs*, with the fitted numbers written in as literals (in their shortest
/// round-tripping form, so they read back bit for bit).
///
/// `transform.json` is this struct as JSON:
///
/// ```json
/// { "inputs": ["size", "region"],
///   "outputs": [{ "name": "s", "sql": "((CAST((\"size\") AS DOUBLE) - 30.5) / 17.4)" }],
///   "written": ["standard_scaler(size) AS s"] }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputTransform {
    /// The raw columns the expressions read, in the order of first use.
    pub inputs: Vec<String>,
    /// The output columns with their fitted SQL expressions over the inputs.
    pub outputs: Vec<TransformOutput>,
    /// The clause as written, for `DESCRIBE MODEL`.
    pub written: Vec<String>,
}

/// One output column of an [`InputTransform`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformOutput {
    /// The column name the model trains on.
    pub name: String,
    /// The fitted expression; inputs appear as double-quoted identifiers.
    pub sql: String,
}

impl InputTransform {
    /// The names of the output columns, in order.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|o| o.name.clone()).collect()
    }

    /// `transform.json`'s bytes.
    ///
    /// # Errors
    /// [`MlError::Internal`] if encoding fails, which only a bug can cause.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| MlError::Internal(e.to_string()))
    }

    /// A transform from `transform.json`'s bytes, checked against the features of the model
    /// it belongs to: every feature must be one of its outputs.
    ///
    /// # Errors
    /// [`MlError::ModelFile`] naming `transform.json` when it is not such a document or lacks
    /// a feature's output.
    pub fn from_json(bytes: &[u8], features: &[String]) -> Result<Self> {
        let bad = |reason: String| MlError::ModelFile {
            path: TRANSFORM_FILE.to_string(),
            reason,
        };
        let t: Self =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a Kiln transform: {e}")))?;
        if let Some(missing) = features
            .iter()
            .find(|f| !t.outputs.iter().any(|o| &o.name == *f))
        {
            return Err(bad(format!(
                "the model's feature '{missing}' is not one of the transform's outputs ({})",
                t.output_names().join(", ")
            )));
        }
        Ok(t)
    }
}
