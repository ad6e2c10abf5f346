//! The algorithm registry: every training algorithm's name, task and parameter table, read by
//! every front door.
//!
//! An algorithm registers once, in its own folder, as an [`AlgorithmSpec`]: its name and
//! aliases, whether it needs a label, and a [`ParamSpec`] per parameter (type, default, what
//! it does). SQL's `TRAIN MODEL ... USING name (...)` and `SHOW ALGORITHMS`, Python's
//! estimators and `kiln.algorithms()` all go through [`find`] and [`AlgorithmSpec::estimator`]:
//! a parameter's name, type and allowed values are checked here, once, and its range by the
//! algorithm's own `check` before any data moves.
//!
//! ```
//! use kiln_ml::registry::{self, ParamValue};
//!
//! let spec = registry::find("kmeans").unwrap();
//! let estimator = spec
//!     .estimator([("k".to_string(), ParamValue::Integer(3))])
//!     .unwrap();
//! assert_eq!(estimator.algorithm(), "kmeans");
//! assert!(spec.estimator([("kk".to_string(), ParamValue::Integer(3))]).is_err());
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::cluster::kmeans::KMeans;
use crate::error::{MlError, Result};
use crate::linear::{LinearRegression, LogisticRegression};

/// Every registered algorithm, in the order `SHOW ALGORITHMS` lists them. Adding an algorithm
/// adds one line here.
pub static ALGORITHMS: &[&AlgorithmSpec] = &[
    &crate::cluster::kmeans::SPEC,
    &crate::linear::linear_regression::SPEC,
    &crate::linear::logistic_regression::SPEC,
];

/// The algorithm called `name` (or one of its aliases), ignoring ASCII case.
pub fn find(name: &str) -> Option<&'static AlgorithmSpec> {
    ALGORITHMS.iter().copied().find(|a| {
        a.name.eq_ignore_ascii_case(name) || a.aliases.iter().any(|x| x.eq_ignore_ascii_case(name))
    })
}

/// The registered names, for error messages (`kmeans, linear_regression, ...`).
pub fn names() -> String {
    ALGORITHMS
        .iter()
        .map(|a| a.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an algorithm learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Groups rows without a label.
    Clustering,
    /// Predicts a class from a label of classes.
    Classification,
    /// Predicts a number.
    Regression,
}

impl Task {
    /// `clustering`, `classification` or `regression`.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Clustering => "clustering",
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
    }

    /// Whether training needs a label column.
    pub fn supervised(self) -> bool {
        !matches!(self, Task::Clustering)
    }
}

/// The type of a parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A non-negative integer.
    Integer,
    /// A number (integers accepted).
    Float,
    /// `true` or `false`.
    Bool,
    /// One of these words (compared ignoring ASCII case; the first spelling of each is the
    /// one [`ParamMap::text`] returns when several mean the same, see the algorithm).
    Choice(&'static [&'static str]),
    /// Rows of numbers (initial centres, say). Not expressible in SQL.
    Matrix,
}

impl ParamType {
    /// The type as the docs and `SHOW ALGORITHMS` name it.
    pub fn describe(self) -> Cow<'static, str> {
        match self {
            ParamType::Integer => "integer".into(),
            ParamType::Float => "float".into(),
            ParamType::Bool => "boolean".into(),
            ParamType::Choice(words) => format!("one of {}", quoted(words)).into(),
            ParamType::Matrix => "list of rows of numbers".into(),
        }
    }
}

fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One parameter of an algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    /// The name (Spark's, in snake case).
    pub name: &'static str,
    /// Its type.
    pub ty: ParamType,
    /// The default, as text (`20`, `1e-4`, `'k-means||'`, `none`).
    pub default: &'static str,
    /// What it does, in one sentence, with its allowed range.
    pub doc: &'static str,
}

/// A parameter's value as a front door gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// An integer.
    Integer(i64),
    /// A number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(String),
    /// Rows of numbers.
    Matrix(Vec<Vec<f64>>),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Integer(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Bool(v) => write!(f, "{v}"),
            ParamValue::Text(v) => write!(f, "'{v}'"),
            ParamValue::Matrix(rows) => write!(f, "{} rows", rows.len()),
        }
    }
}

/// An algorithm's registration.
#[derive(Debug)]
pub struct AlgorithmSpec {
    /// The name in `TRAIN MODEL ... USING name` and in model files.
    pub name: &'static str,
    /// Other accepted spellings (`k_means`, `logistic_reg`).
    pub aliases: &'static [&'static str],
    /// What it learns.
    pub task: Task,
    /// One sentence on the algorithm.
    pub doc: &'static str,
    /// Its parameters, in the order docs list them.
    pub params: &'static [ParamSpec],
    /// The estimator from checked parameters.
    pub build: fn(&ParamMap) -> Result<Estimator>,
}

impl AlgorithmSpec {
    /// The parameter called `name`, ignoring ASCII case.
    pub fn param(&self, name: &str) -> Option<&'static ParamSpec> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The parameter names, for error messages.
    pub fn param_names(&self) -> String {
        self.params
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The estimator with `values`: each name must be one of [`params`](Self::params) (once)
    /// and each value of its type; ranges are checked by the estimator's `check`, which this
    /// also runs, so the estimator returned is ready to fit.
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`] naming the parameter: unknown (with the accepted list),
    /// given twice, of the wrong type, not one of its choices, or out of range.
    pub fn estimator(
        &'static self,
        values: impl IntoIterator<Item = (String, ParamValue)>,
    ) -> Result<Estimator> {
        let map = ParamMap::new(self, values)?;
        let estimator = (self.build)(&map)?;
        estimator.check()?;
        Ok(estimator)
    }
}

/// Checked parameter values of one algorithm: every name known and every value of its type.
#[derive(Debug, Clone)]
pub struct ParamMap {
    spec: &'static AlgorithmSpec,
    values: Vec<(&'static ParamSpec, ParamValue)>,
}

impl ParamMap {
    /// Checks `values` against `spec`'s table.
    ///
    /// # Errors
    /// As [`AlgorithmSpec::estimator`].
    pub fn new(
        spec: &'static AlgorithmSpec,
        values: impl IntoIterator<Item = (String, ParamValue)>,
    ) -> Result<Self> {
        let mut checked: Vec<(&'static ParamSpec, ParamValue)> = Vec::new();
        for (name, value) in values {
            let param = spec.param(&name).ok_or_else(|| MlError::InvalidParameter {
                name: Cow::Owned(name.clone()),
                reason: format!(
                    "unknown parameter '{name}' for {}; accepted parameters: {}",
                    spec.name,
                    spec.param_names()
                ),
            })?;
            if checked.iter().any(|(p, _)| p.name == param.name) {
                return Err(MlError::param(
                    param.name,
                    format!("{} is given twice", param.name),
                ));
            }
            checked.push((param, coerce(param, value)?));
        }
        Ok(Self {
            spec,
            values: checked,
        })
    }

    /// The algorithm these parameters are for.
    pub fn spec(&self) -> &'static AlgorithmSpec {
        self.spec
    }

    fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values
            .iter()
            .find(|(p, _)| p.name == name)
            .map(|(_, v)| v)
    }

    /// Whether `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// An [`ParamType::Integer`] parameter, if given.
    ///
    /// # Errors
    /// A value that does not fit a `usize`.
    pub fn integer(&self, name: &'static str) -> Result<Option<usize>> {
        match self.get(name) {
            Some(ParamValue::Integer(v)) => usize::try_from(*v).map(Some).map_err(|_| {
                MlError::param(
                    name,
                    format!("{name} must be a non-negative integer, got {v}"),
                )
            }),
            _ => Ok(None),
        }
    }

    /// A [`ParamType::Float`] parameter, if given.
    pub fn float(&self, name: &'static str) -> Option<f64> {
        match self.get(name) {
            Some(ParamValue::Float(v)) => Some(*v),
            _ => None,
        }
    }

    /// A [`ParamType::Bool`] parameter, if given.
    pub fn boolean(&self, name: &'static str) -> Option<bool> {
        match self.get(name) {
            Some(ParamValue::Bool(v)) => Some(*v),
            _ => None,
        }
    }

    /// A [`ParamType::Choice`] parameter, if given, in lower case.
    pub fn choice(&self, name: &'static str) -> Option<&str> {
        match self.get(name) {
            Some(ParamValue::Text(v)) => Some(v.as_str()),
            _ => None,
        }
    }

    /// A [`ParamType::Matrix`] parameter, if given.
    pub fn matrix(&self, name: &'static str) -> Option<&[Vec<f64>]> {
        match self.get(name) {
            Some(ParamValue::Matrix(v)) => Some(v.as_slice()),
            _ => None,
        }
    }
}

/// `value` as `param`'s type, or an error naming the parameter and what it must be.
fn coerce(param: &'static ParamSpec, value: ParamValue) -> Result<ParamValue> {
    let wrong = |value: &ParamValue| {
        MlError::param(
            param.name,
            format!(
                "{} must be {}, got {value}",
                param.name,
                param.ty.describe_article()
            ),
        )
    };
    Ok(match (param.ty, value) {
        (ParamType::Integer, ParamValue::Integer(v)) if v >= 0 => ParamValue::Integer(v),
        (ParamType::Integer, ParamValue::Float(v))
            if v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_992.0 =>
        {
            ParamValue::Integer(v as i64)
        }
        (ParamType::Float, ParamValue::Float(v)) => ParamValue::Float(v),
        (ParamType::Float, ParamValue::Integer(v)) => ParamValue::Float(v as f64),
        (ParamType::Bool, ParamValue::Bool(v)) => ParamValue::Bool(v),
        (ParamType::Choice(words), ParamValue::Text(v)) => {
            match words.iter().find(|w| w.eq_ignore_ascii_case(&v)) {
                Some(w) => ParamValue::Text((*w).to_string()),
                None => {
                    return Err(MlError::param(
                        param.name,
                        format!("{} must be one of {}, got '{v}'", param.name, quoted(words)),
                    ))
                }
            }
        }
        (ParamType::Matrix, ParamValue::Matrix(v)) => ParamValue::Matrix(v),
        (_, other) => return Err(wrong(&other)),
    })
}

impl ParamType {
    fn describe_article(self) -> Cow<'static, str> {
        match self {
            ParamType::Integer => "a non-negative integer".into(),
            ParamType::Float => "a number".into(),
            ParamType::Bool => "true or false".into(),
            ParamType::Choice(words) => format!("one of {}", quoted(words)).into(),
            ParamType::Matrix => "a list of rows of numbers".into(),
        }
    }
}

/// An estimator of any registered algorithm, its parameters set but not yet fitted.
#[derive(Debug, Clone)]
pub enum Estimator {
    /// k-means clustering.
    KMeans(KMeans),
    /// Least squares, ridge, lasso, elastic net.
    LinearRegression(LinearRegression),
    /// Binary or multinomial logistic regression.
    LogisticRegression(LogisticRegression),
}

impl Estimator {
    /// The registered name of its algorithm.
    pub fn algorithm(&self) -> &'static str {
        self.spec().name
    }

    /// Its algorithm's registration.
    pub fn spec(&self) -> &'static AlgorithmSpec {
        match self {
            Estimator::KMeans(_) => &crate::cluster::kmeans::SPEC,
            Estimator::LinearRegression(_) => &crate::linear::linear_regression::SPEC,
            Estimator::LogisticRegression(_) => &crate::linear::logistic_regression::SPEC,
        }
    }

    /// Whether training needs a label.
    pub fn supervised(&self) -> bool {
        self.spec().task.supervised()
    }

    /// Checks every parameter's range.
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`] naming the first parameter out of range.
    pub fn check(&self) -> Result<()> {
        match self {
            Estimator::KMeans(e) => e.check().map(drop),
            Estimator::LinearRegression(e) => e.check().map(drop),
            Estimator::LogisticRegression(e) => e.check().map(drop),
        }
    }
}

impl From<KMeans> for Estimator {
    fn from(e: KMeans) -> Self {
        Estimator::KMeans(e)
    }
}

impl From<LinearRegression> for Estimator {
    fn from(e: LinearRegression) -> Self {
        Estimator::LinearRegression(e)
    }
}

impl From<LogisticRegression> for Estimator {
    fn from(e: LogisticRegression) -> Self {
        Estimator::LogisticRegression(e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn p(name: &str, value: ParamValue) -> (String, ParamValue) {
        (name.to_string(), value)
    }

    #[test]
    fn every_algorithm_has_unique_names_and_documented_params() {
        let mut seen = Vec::new();
        for a in ALGORITHMS {
            for name in std::iter::once(&a.name).chain(a.aliases) {
                assert!(!seen.contains(name), "{name} registered twice");
                seen.push(*name);
                assert_eq!(find(name).map(|f| f.name), Some(a.name));
            }
            for param in a.params {
                assert!(
                    !param.doc.is_empty(),
                    "{}.{} has no doc",
                    a.name,
                    param.name
                );
                assert_eq!(a.param(param.name).map(|q| q.name), Some(param.name));
            }
            // Defaults alone make a valid estimator of this very algorithm.
            let e = a.estimator([]).unwrap();
            assert_eq!(e.algorithm(), a.name);
        }
    }

    #[test]
    fn values_are_checked_by_name_type_choice_and_range() {
        let kmeans = find("K_MEANS").unwrap();
        let e = kmeans
            .estimator([
                p("k", ParamValue::Integer(4)),
                p("tol", ParamValue::Integer(0)),
                p("init", ParamValue::Text("RANDOM".into())),
            ])
            .unwrap();
        let Estimator::KMeans(e) = e else {
            panic!("not k-means: {e:?}")
        };
        assert_eq!(
            e,
            KMeans::new(4)
                .tol(0.0)
                .init(crate::cluster::kmeans::KMeansInit::Random)
        );
        let err =
            |values: Vec<(String, ParamValue)>| kmeans.estimator(values).unwrap_err().to_string();
        assert!(err(vec![p("kk", ParamValue::Integer(1))])
            .contains("unknown parameter 'kk' for kmeans; accepted parameters: k, "));
        assert!(err(vec![p("k", ParamValue::Float(2.5))])
            .contains("`k`: k must be a non-negative integer, got 2.5"));
        assert!(err(vec![p("k", ParamValue::Integer(-1))]).contains("`k`"));
        assert!(err(vec![p("init", ParamValue::Text("best".into()))]).contains("got 'best'"));
        assert!(err(vec![
            p("k", ParamValue::Integer(2)),
            p("K", ParamValue::Integer(3))
        ])
        .contains("given twice"));
        // Range: k-means' own check.
        assert!(err(vec![p("max_iter", ParamValue::Integer(0))]).contains("max_iter"));
    }
}
