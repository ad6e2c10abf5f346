//! `kiln._kiln.DataFrame`: a lazy query. Expressions arrive as SQL text (`"price * qty AS
//! total"`), parsed against the DataFrame's schema with the session's functions (so
//! `predict('model', ...)` works too).

use std::sync::{Arc, Mutex};

use datafusion::common::JoinType;
use datafusion::logical_expr::{Expr, SortExpr};
use kiln::ml::Precision;
use kiln::DataFrame;
use pyo3::prelude::*;

use crate::arrow_io::PyBatches;
use crate::errors::{parameter, IntoPy};
use crate::runtime::wait;
use crate::session::PySession;

/// A lazy query of a session.
#[pyclass(name = "DataFrame", module = "kiln._kiln", frozen)]
pub(crate) struct PyDataFrame {
    pub(crate) df: DataFrame,
    progress: Arc<Mutex<Option<Py<PyAny>>>>,
}

impl PyDataFrame {
    /// Wraps an engine DataFrame; `progress` is its session's progress callback.
    pub(crate) fn wrap(df: DataFrame, progress: Arc<Mutex<Option<Py<PyAny>>>>) -> Self {
        Self { df, progress }
    }

    fn with(&self, df: kiln::Result<DataFrame>) -> PyResult<Self> {
        Ok(Self::wrap(df.py_err()?, Arc::clone(&self.progress)))
    }

    /// Runs `work` for this DataFrame's session, reporting progress.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        py: Python<'_>,
        work: impl std::future::Future<Output = kiln::Result<T>> + Send + 'static,
    ) -> PyResult<T> {
        let watch = PySession::watch(self.df.session(), &self.progress, py);
        wait(py, Some(watch), work)
    }

    /// The progress callback shared with the session.
    pub(crate) fn progress(&self) -> Arc<Mutex<Option<Py<PyAny>>>> {
        Arc::clone(&self.progress)
    }

    /// `text` (`expr [AS name]`) as an expression over this DataFrame's columns.
    fn expr(&self, text: &str) -> PyResult<Expr> {
        let (body, alias) = split_alias(text);
        let e = self.df.inner().parse_sql_expr(body).map_err(|e| {
            crate::errors::to_py(kiln::EngineError::SqlSyntax(format!(
                "in the expression '{text}': {e}"
            )))
        })?;
        Ok(match alias {
            Some(name) => e.alias(name),
            None => e,
        })
    }

    fn exprs(&self, texts: &[String]) -> PyResult<Vec<Expr>> {
        texts.iter().map(|t| self.expr(t)).collect()
    }
}

#[pymethods]
impl PyDataFrame {
    /// The schema, as an empty result (read it with `pyarrow.schema` or a stream reader).
    fn schema(&self) -> PyBatches {
        PyBatches {
            schema: self.df.schema(),
            batches: Vec::new(),
        }
    }

    /// Column names, in order.
    fn columns(&self) -> Vec<String> {
        self.df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// Keeps these expressions (`"a"`, `"a + b AS c"`).
    fn select(&self, exprs: Vec<String>) -> PyResult<Self> {
        let exprs = self.exprs(&exprs)?;
        self.with(self.df.clone().select(exprs))
    }

    /// Keeps the rows where the predicate (SQL text) is true.
    fn filter(&self, predicate: &str) -> PyResult<Self> {
        let p = self.expr(predicate)?;
        self.with(self.df.clone().filter(p))
    }

    /// Adds or replaces column `name`.
    fn with_column(&self, name: &str, expr: &str) -> PyResult<Self> {
        let e = self.expr(expr)?;
        self.with(self.df.clone().with_column(name, e))
    }

    /// Renames a column.
    fn with_column_renamed(&self, old: &str, new: &str) -> PyResult<Self> {
        self.with(self.df.clone().with_column_renamed(old, new))
    }

    /// Drops columns.
    fn drop(&self, columns: Vec<String>) -> PyResult<Self> {
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        self.with(self.df.clone().drop(&names))
    }

    /// Joins on equal keys; `how` is inner, left, right, full, semi or anti.
    fn join(
        &self,
        right: &PyDataFrame,
        how: &str,
        left_on: Vec<String>,
        right_on: Vec<String>,
    ) -> PyResult<Self> {
        let join_type = match how {
            "inner" => JoinType::Inner,
            "left" => JoinType::Left,
            "right" => JoinType::Right,
            "full" | "outer" => JoinType::Full,
            "semi" | "left_semi" => JoinType::LeftSemi,
            "anti" | "left_anti" => JoinType::LeftAnti,
            other => {
                return Err(parameter(format!(
                    "how must be one of inner, left, right, full, semi, anti; got '{other}'"
                )))
            }
        };
        let l: Vec<&str> = left_on.iter().map(String::as_str).collect();
        let r: Vec<&str> = right_on.iter().map(String::as_str).collect();
        self.with(self.df.clone().join(right.df.clone(), join_type, &l, &r))
    }

    /// Groups by `keys` and computes `aggs` (`"sum(x) AS total"`).
    fn aggregate(&self, keys: Vec<String>, aggs: Vec<String>) -> PyResult<Self> {
        let keys = self.exprs(&keys)?;
        let aggs = self.exprs(&aggs)?;
        self.with(self.df.clone().group_by(keys).agg(aggs))
    }

    /// Sorts by `(expr, ascending, nulls_first)` keys.
    fn sort(&self, keys: Vec<(String, bool, bool)>) -> PyResult<Self> {
        let keys = keys
            .iter()
            .map(|(e, asc, nulls_first)| Ok(SortExpr::new(self.expr(e)?, *asc, *nulls_first)))
            .collect::<PyResult<Vec<_>>>()?;
        self.with(self.df.clone().sort(keys))
    }

    /// At most `n` rows.
    fn limit(&self, n: usize) -> PyResult<Self> {
        self.with(self.df.clone().limit(n))
    }

    /// Distinct rows.
    fn distinct(&self) -> PyResult<Self> {
        self.with(self.df.clone().distinct())
    }

    /// The rows of both (`UNION ALL`).
    fn union(&self, other: &PyDataFrame) -> PyResult<Self> {
        self.with(self.df.clone().union(other.df.clone()))
    }

    /// About `fraction` of the rows, seeded (independent of the number of executors).
    fn sample(&self, fraction: f64, seed: u64) -> PyResult<Self> {
        self.with(self.df.clone().sample(fraction, seed))
    }

    /// Splits the rows by `weights`, seeded.
    fn random_split(&self, weights: Vec<f64>, seed: u64) -> PyResult<Vec<Self>> {
        let parts = self
            .df
            .clone()
            .random_split_weights(&weights, seed)
            .py_err()?;
        Ok(parts
            .into_iter()
            .map(|df| Self::wrap(df, Arc::clone(&self.progress)))
            .collect())
    }

    /// Adds column `output` with the prediction of the registered model `model` (and, with
    /// `probability`, the probability of each class as a list column).
    #[pyo3(signature = (model, output, probability = false))]
    fn predict(&self, model: &str, output: &str, probability: bool) -> PyResult<Self> {
        if probability {
            self.with(self.df.clone().predict_proba(model, output))
        } else {
            self.with(self.df.clone().predict(model, output))
        }
    }

    /// Runs the query; the result is shared with Python without copying.
    fn collect(&self, py: Python<'_>) -> PyResult<PyBatches> {
        let df = self.df.clone();
        let batches = self.run(py, async move { df.collect().await })?;
        Ok(PyBatches {
            schema: self.df.schema(),
            batches,
        })
    }

    /// Number of rows.
    fn count(&self, py: Python<'_>) -> PyResult<usize> {
        let df = self.df.clone();
        self.run(py, async move { df.count().await })
    }

    /// Up to `n` rows rendered as a table.
    fn show_string(&self, py: Python<'_>, n: usize) -> PyResult<String> {
        let df = self.df.clone();
        self.run(py, async move { df.show_string(n).await })
    }

    /// The logical plan, the physical plan and the stages.
    fn explain(&self, py: Python<'_>) -> PyResult<String> {
        let df = self.df.clone();
        self.run(py, async move { df.explain().await })
    }

    /// Writes Parquet under `path`; returns the rows written.
    fn write_parquet(&self, py: Python<'_>, path: &str) -> PyResult<usize> {
        let (df, path) = (self.df.clone(), path.to_string());
        self.run(py, async move { df.write_parquet(&path).await })
    }

    /// Writes CSV under `path`; returns the rows written.
    fn write_csv(&self, py: Python<'_>, path: &str) -> PyResult<usize> {
        let (df, path) = (self.df.clone(), path.to_string());
        self.run(py, async move { df.write_csv(&path).await })
    }

    /// Caches the rows on the executors as dense numeric partitions (`"f64"` or `"f32"`).
    fn persist(&self, py: Python<'_>, precision: &str) -> PyResult<Self> {
        let precision = match precision {
            "f64" | "float64" => Precision::F64,
            "f32" | "float32" => Precision::F32,
            other => {
                return Err(parameter(format!(
                    "precision must be 'f64' or 'f32', got '{other}'"
                )))
            }
        };
        let df = self.df.clone();
        let cached = self.run(py, async move { df.persist(precision).await })?;
        Ok(Self::wrap(cached, Arc::clone(&self.progress)))
    }

    /// Whether the rows are cached.
    fn is_persisted(&self) -> bool {
        self.df.is_persisted()
    }

    /// Frees the cache (memory and store).
    fn unpersist(&self, py: Python<'_>) -> PyResult<()> {
        let df = self.df.clone();
        self.run(py, async move { df.unpersist().await })
    }
}

/// Splits `expr AS name` at its last top-level `AS` (outside quotes and parentheses).
fn split_alias(text: &str) -> (&str, Option<String>) {
    let bytes = text.as_bytes();
    let (mut depth, mut quote) = (0i32, None::<u8>);
    let mut last = None;
    for (i, &b) in bytes.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'\'' | b'"' => quote = Some(b),
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ if depth == 0
                    && b.is_ascii_whitespace()
                    && bytes.len() > i + 3
                    && bytes[i + 1..i + 3].eq_ignore_ascii_case(b"as")
                    && bytes[i + 3].is_ascii_whitespace() =>
                {
                    last = Some(i);
                }
                _ => {}
            },
        }
    }
    match last {
        Some(i) => {
            let name = text[i + 4..].trim();
            let name = name
                .strip_prefix('"')
                .and_then(|n| n.strip_suffix('"'))
                .unwrap_or(name);
            if name.is_empty() {
                (text, None)
            } else {
                (text[..i].trim(), Some(name.to_string()))
            }
        }
        None => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_alias;

    #[test]
    fn aliases_split_at_the_last_top_level_as() {
        assert_eq!(split_alias("a + b AS c"), ("a + b", Some("c".into())));
        assert_eq!(split_alias("a"), ("a", None));
        assert_eq!(
            split_alias("cast(x as int) as y"),
            ("cast(x as int)", Some("y".into()))
        );
        assert_eq!(split_alias("'x as y'"), ("'x as y'", None));
        assert_eq!(
            split_alias("a AS \"Total Sum\""),
            ("a", Some("Total Sum".into()))
        );
    }
}
