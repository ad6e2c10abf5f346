//! Parameters as the front doors give them, checked against an algorithm's table: names, types
//! and allowed words (see [`crate::registry`], which pairs each table with its algorithm).

use std::borrow::Cow;
use std::fmt;

use crate::error::{MlError, Result};

/// The type of a parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A non-negative integer.
    Integer,
    /// A number (integers accepted).
    Float,
    /// `true` or `false`.
    Bool,
    /// One of these words, compared ignoring ASCII case; [`ParamMap::choice`] returns the
    /// table's spelling.
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

/// Checked parameter values of one algorithm: every name known and every value of its type.
#[derive(Debug, Clone)]
pub struct ParamMap {
    algorithm: &'static str,
    values: Vec<(&'static ParamSpec, ParamValue)>,
}

impl ParamMap {
    /// Checks `values` against `table`, the parameters of `algorithm`.
    ///
    /// # Errors
    /// [`MlError::InvalidParameter`] naming the parameter: unknown (with the accepted list),
    /// given twice, of the wrong type or not one of its choices.
    pub fn new(
        algorithm: &'static str,
        table: &'static [ParamSpec],
        values: impl IntoIterator<Item = (String, ParamValue)>,
    ) -> Result<Self> {
        let mut checked: Vec<(&'static ParamSpec, ParamValue)> = Vec::new();
        for (name, value) in values {
            let param = find(table, &name).ok_or_else(|| MlError::InvalidParameter {
                name: Cow::Owned(name.clone()),
                reason: format!(
                    "unknown parameter '{name}' for {algorithm}; accepted parameters: {}",
                    names(table)
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
            algorithm,
            values: checked,
        })
    }

    /// The algorithm these parameters are for.
    pub fn algorithm(&self) -> &'static str {
        self.algorithm
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

/// The parameter of `table` called `name`, ignoring ASCII case.
pub fn find(table: &'static [ParamSpec], name: &str) -> Option<&'static ParamSpec> {
    table.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// The names of `table`, for error messages.
pub fn names(table: &[ParamSpec]) -> String {
    table.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}
