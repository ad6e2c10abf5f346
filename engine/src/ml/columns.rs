//! Which columns of a DataFrame an estimator trains on.

use arrow::datatypes::Schema;

use crate::error::{EngineError, Result};

/// The feature and label columns of a fit, Spark-style: by default the label is `label` for a
/// supervised algorithm and the features are every other numeric column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    features: Option<Vec<String>>,
    label: Option<String>,
}

impl Columns {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Train on exactly these feature columns, in this order.
    pub fn features<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.features = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// The label column, if any (`None` keeps the default).
    pub(crate) fn label_opt(mut self, column: Option<String>) -> Self {
        if column.is_some() {
            self.label = column;
        }
        self
    }

    /// The label column (default `label`).
    pub fn label(mut self, column: impl Into<String>) -> Self {
        self.label = Some(column.into());
        self
    }

    /// The feature and label columns for `schema`.
    ///
    /// # Errors
    /// [`EngineError::UnknownColumn`] for a named column that does not exist (with the closest
    /// match); [`EngineError::Ml`] for a named feature that is not numeric;
    /// [`EngineError::InvalidParameter`] when no feature column is left.
    pub(crate) fn resolve(
        &self,
        schema: &Schema,
        supervised: bool,
    ) -> Result<(Vec<String>, Option<String>)> {
        let label = if supervised {
            let name = self.label.clone().unwrap_or_else(|| "label".to_string());
            check_exists(schema, &name)?;
            Some(name)
        } else {
            if let Some(name) = &self.label {
                check_exists(schema, name)?;
            }
            self.label.clone()
        };
        let features = match &self.features {
            Some(names) => {
                for name in names {
                    check_exists(schema, name)?;
                    check_numeric(schema, name)?;
                }
                names.clone()
            }
            None => schema
                .fields()
                .iter()
                .filter(|f| Some(f.name()) != label.as_ref())
                .filter(|f| f.data_type().is_numeric())
                .map(|f| f.name().clone())
                .collect(),
        };
        if features.is_empty() {
            return Err(EngineError::InvalidParameter {
                name: "features",
                reason: format!(
                    "no numeric feature column among [{}]",
                    schema
                        .fields()
                        .iter()
                        .map(|f| format!("{}: {}", f.name(), f.data_type()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        Ok((features, label))
    }
}

/// `Ok` if column `name` of `schema` can be a feature (numbers or booleans), checked from the
/// schema so that a string feature fails before any data moves.
fn check_numeric(schema: &Schema, name: &str) -> Result<()> {
    let field = schema.field_with_name(name)?;
    let t = field.data_type();
    if t.is_numeric() || matches!(t, arrow::datatypes::DataType::Boolean) {
        return Ok(());
    }
    Err(kiln_ml::MlError::InvalidColumn {
        column: name.to_string(),
        reason: format!(
            "type {t} is not numeric; index strings with StringIndexer or cast the column"
        ),
    }
    .into())
}

/// `Ok` if `schema` has column `name`, else [`EngineError::UnknownColumn`] with the closest
/// match.
pub(crate) fn check_exists(schema: &Schema, name: &str) -> Result<()> {
    if schema.index_of(name).is_ok() {
        return Ok(());
    }
    let available: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    Err(EngineError::UnknownColumn {
        column: name.to_string(),
        suggestion: crate::error::closest(name, available.iter().map(String::as_str)),
        available,
    })
}
