//! Models in a session: saving and loading model files through the object store, and naming
//! models for `predict(...)` in DataFrames and SQL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::{ident, lit};
use kiln_ml::model::{MODEL_FILES, TRANSFORM_FILE};
use kiln_ml::Model;
use kiln_planner::predict::{PREDICT, PREDICT_PROBA};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use crate::dataframe::DataFrame;
use crate::error::{EngineError, Result};
use crate::session::Session;
use crate::sql::transform::ApplyTransform;

impl Session {
    /// Makes `model` callable as `predict('name', c1, ...)` in SQL and DataFrame expressions
    /// (and by [`DataFrame::predict`]). Replaces a model of the same name. A model with a
    /// transform ([`Model::transform`]) predicts from the raw columns its transform reads.
    pub fn register_model(&self, name: &str, model: impl Into<Model>) {
        self.inner.models.register(name, Arc::new(model.into()));
    }

    /// Registers a shared model (a pipeline's, without copying it).
    pub(crate) fn register_model_arc(&self, name: &str, model: Arc<Model>) {
        self.inner.models.register(name, model);
    }

    /// Forgets a registered model; returns whether it was registered.
    pub fn deregister_model(&self, name: &str) -> bool {
        self.inner.models.deregister(name)
    }

    /// The fitted transform of the registered model `name`, if it has one.
    pub(crate) fn transform(&self, name: &str) -> Option<Arc<crate::sql::transform::SqlTransform>> {
        self.model(name).and_then(|m| m.transform().cloned())
    }

    /// A registered model.
    pub fn model(&self, name: &str) -> Option<Arc<Model>> {
        self.inner.models.get(name)
    }

    /// Names of the registered models, sorted.
    pub fn model_names(&self) -> Vec<String> {
        self.inner.models.names()
    }

    /// Writes `model` as a model directory (`metadata.json`, `weights.arrow`, and
    /// `transform.json` for a model with a transform) at `path`: a local directory or an
    /// object store URL (`s3://bucket/models/km`, `memory://m/km`).
    ///
    /// # Errors
    /// If the location cannot be written.
    pub async fn save_model(&self, model: &Model, path: &str) -> Result<()> {
        let (store, prefix) = self.model_location(path, true)?;
        // A transform another model left in the directory would be read back with this one.
        if model.transform().is_none() {
            match store.delete(&prefix.clone().join(TRANSFORM_FILE)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // In the order `to_files` gives (metadata last): a directory with its metadata is
        // complete.
        for (name, bytes) in model.to_files()? {
            store
                .put(&prefix.clone().join(name.as_str()), PutPayload::from(bytes))
                .await?;
        }
        Ok(())
    }

    /// Reads a model directory written by [`save_model`](Self::save_model) (or by any Kiln
    /// front door), with its transform when it has one: the one loader of every front door
    /// (SQL `LOAD MODEL`, the model catalog, Python's `load_model`). Needs no executor.
    ///
    /// # Errors
    /// [`EngineError::Read`] naming the path when a file is missing, unreadable, or not a Kiln
    /// model of a format this build reads.
    pub async fn load_model(&self, path: &str) -> Result<Model> {
        let (store, prefix) = self.model_location(path, false)?;
        if self.is_pipeline(path).await? {
            return Err(EngineError::Read {
                format: "model",
                path: path.to_string(),
                reason: format!(
                    "the directory holds a fitted pipeline ({}), not a single model: load it \
                     with Session::load_pipeline (Python: kiln.ml.load_model)",
                    super::pipeline::PIPELINE_FILE
                ),
            });
        }
        let mut files = HashMap::new();
        for name in MODEL_FILES {
            match store.get(&prefix.clone().join(name)).await {
                Ok(got) => {
                    files.insert(name, got.bytes().await?.to_vec());
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Model::from_files(|name| files.get(name).cloned()).map_err(|e| EngineError::Read {
            format: "model",
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    pub(crate) fn model_location(
        &self,
        path: &str,
        create: bool,
    ) -> Result<(Arc<dyn ObjectStore>, Path)> {
        if path.contains("://") {
            self.inner.stores.ensure(path)?;
            let url = Url::parse(path).map_err(|e| EngineError::InvalidParameter {
                name: "path",
                reason: format!("'{path}' is not a valid URL: {e}"),
            })?;
            let store_url =
                ObjectStoreUrl::parse(format!("{}://{}", url.scheme(), url.authority()))?;
            let store = self.inner.ctx.runtime_env().object_store(&store_url)?;
            let prefix = Path::from_url_path(url.path()).map_err(|e| bad_path(path, e))?;
            return Ok((store, prefix));
        }
        let dir = PathBuf::from(path);
        let dir = if dir.is_absolute() {
            dir
        } else {
            std::env::current_dir()?.join(dir)
        };
        if create {
            std::fs::create_dir_all(&dir)?;
        }
        let prefix = Path::from_absolute_path(&dir).map_err(|e| bad_path(path, e))?;
        Ok((Arc::new(LocalFileSystem::new()), prefix))
    }
}

fn bad_path(path: &str, e: object_store::path::Error) -> EngineError {
    EngineError::InvalidParameter {
        name: "path",
        reason: format!("'{path}' is not a usable model location: {e}"),
    }
}

impl DataFrame {
    /// Adds column `output` holding the prediction of the registered model `model` (see
    /// [`Session::register_model`]) from the columns named as the model's features (for a
    /// model trained in SQL with `TRANSFORM`, from the columns its transform reads, through
    /// the fitted transform). Lazy, like every transformation: the model travels to the
    /// executors inside the plan.
    ///
    /// # Errors
    /// An unknown model (the message lists the registered ones), or a feature column missing
    /// from this DataFrame.
    pub fn predict(self, model: &str, output: &str) -> Result<Self> {
        let Some(m) = self.session().model(model) else {
            return Err(unknown_model(self.session(), model));
        };
        let args = self.model_args(model, &m)?;
        let expr = self.predict_expr(PREDICT, args)?;
        self.with_column(output, expr)
    }

    /// Adds column `output` holding the class probabilities (`FixedSizeList<Float64>`, class 0
    /// first) of the registered classifier `model`, as Spark's `probability` column.
    ///
    /// # Errors
    /// As [`predict`](Self::predict), or a model without class probabilities (k-means, linear
    /// regression).
    pub fn predict_proba(self, model: &str, output: &str) -> Result<Self> {
        let Some(m) = self.session().model(model) else {
            return Err(unknown_model(self.session(), model));
        };
        let args = self.model_args(model, &m)?;
        let expr = self.predict_expr(PREDICT_PROBA, args)?;
        self.with_column(output, expr)
    }

    /// The arguments of `predict` for `model` over this DataFrame: its name, then its feature
    /// columns, or the outputs of its `TRANSFORM` computed from this DataFrame's columns.
    fn model_args(&self, name: &str, model: &Model) -> Result<Vec<Expr>> {
        let mut args = vec![lit(name)];
        match self.session().transform(name) {
            Some(t) => args.extend(t.exprs(self)?),
            None => args.extend(model.feature_names().iter().map(|f| ident(f.as_str()))),
        }
        Ok(args)
    }

    /// `predict('model', c1, ...)` (or `predict_proba`) as a DataFusion expression over this
    /// DataFrame's session.
    fn predict_expr(&self, function: &str, args: Vec<Expr>) -> Result<Expr> {
        let udf = self.session().datafusion_context().udf(function)?;
        Ok(udf.call(args))
    }
}

pub(crate) fn unknown_model(session: &Session, model: &str) -> EngineError {
    let names = session.model_names();
    EngineError::InvalidParameter {
        name: "model",
        reason: format!(
            "no model named '{model}'; registered models: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ),
    }
}
