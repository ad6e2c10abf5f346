//! The model catalog: a directory (`kiln.models_dir`) holding one model directory per name,
//! which SQL's `TRAIN`, `CREATE MODEL` and `LOAD MODEL` write, `DROP MODEL` removes, and every
//! session on the directory registers when it starts, so that a model trained in one session
//! is there in the next.

use std::path::{Path, PathBuf};

use kiln_ml::Model;

use crate::error::{EngineError, Result};
use crate::Session;

/// Registers `model` as `name` and writes it to the catalog, if the session has one.
pub(crate) async fn keep(session: &Session, name: &str, model: Model) -> Result<()> {
    if let Some(dir) = model_dir(session, name)? {
        // A fresh directory: no file of an older model may survive next to the new ones.
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        session
            .save_model(&model, &dir.display().to_string())
            .await?;
    }
    session.register_model(name, model);
    Ok(())
}

/// Where model `name` lives in the session's catalog (`None` without a catalog).
///
/// # Errors
/// A name that cannot be a directory name.
pub(crate) fn model_dir(session: &Session, name: &str) -> Result<Option<PathBuf>> {
    let Some(dir) = session.models_dir() else {
        return Ok(None);
    };
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !plain {
        return Err(EngineError::InvalidParameter {
            name: "model",
            reason: format!(
                "'{name}' cannot name a model in the catalog: use letters, digits, '_', '-' and '.'"
            ),
        });
    }
    Ok(Some(dir.join(name)))
}

impl Session {
    /// The model catalog's directory (see [`SessionBuilder::models_dir`](crate::SessionBuilder::models_dir)).
    pub fn models_dir(&self) -> Option<&Path> {
        self.inner.models_dir.as_deref()
    }

    /// Creates the catalog directory and registers every model in it. A directory that does
    /// not hold a readable model is skipped with a warning, so that one damaged model does not
    /// keep the others out.
    pub(crate) async fn open_model_catalog(&self) -> Result<()> {
        let Some(dir) = self.models_dir() else {
            return Ok(());
        };
        std::fs::create_dir_all(dir).map_err(|e| EngineError::InvalidParameter {
            name: "models_dir",
            reason: format!("cannot create the model catalog {}: {e}", dir.display()),
        })?;
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        entries.sort();
        for path in entries {
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            let location = path.display().to_string();
            match self.load_model(&location).await {
                Ok(model) => self.register_model(&name, model),
                Err(e) => {
                    tracing::warn!(model = %name, error = %e, "skipping a model in the catalog")
                }
            }
        }
        Ok(())
    }
}

/// Removes model `name`'s directory from the catalog, if the session has one and it is there.
pub(crate) fn remove(session: &Session, name: &str) -> Result<()> {
    if let Some(dir) = model_dir(session, name)? {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
    }
    Ok(())
}
