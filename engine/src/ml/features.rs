//! Feature transformers: estimators whose fitted models are plain expressions in the plan.
//!
//! Kiln has no vector column type: a model's features are ordinary `Float64` columns. What
//! Spark calls a vector column is here a *feature group*, a name for an ordered list of
//! columns. [`VectorAssembler`] defines one (`features` by default); scalers and the imputer
//! read a group (or explicit columns) and rewrite it in place or into a new group;
//! [`OneHotEncoder`] writes one column per category into a group. Outside a
//! [`Pipeline`](super::Pipeline), give explicit columns with `input_cols`.
//!
//! Fitting runs one distributed aggregate over the input — per-task partial states merged on
//! the driver, the same shape as a training kernel round — and produces the statistics
//! (means, deviations, extremes, surrogates, labels). Transforming adds a projection of
//! `CASE`/arithmetic expressions, so the optimizer sees through it: it prunes unused
//! columns, pushes filters below it and fuses it with neighbouring projections.
//!
//! Values a fitted transformer cannot handle (an unseen label, a null feature) stop the query
//! with a message that names the stage, the column and the value, unless `handle_invalid`
//! says to keep or skip them.

use std::collections::HashMap;

use arrow::array::{Array, Float64Array, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::functions::math::expr_fn::floor;
use datafusion::functions::math::expr_fn::isnan;
use datafusion::functions::string::expr_fn::concat;
use datafusion::functions_aggregate::expr_fn::{avg, count, max, median, min, stddev};
use datafusion::logical_expr::{case, cast as cast_expr, ident, lit, when, Expr};
use datafusion::prelude::coalesce;
use kiln_planner::functions::{kiln_udf, KILN_RAISE_ERROR};
use serde::{Deserialize, Serialize};

use super::columns::check_exists;
use crate::dataframe::DataFrame;
use crate::error::{EngineError, Result};

/// Feature groups: a name for an ordered list of columns (what Spark keeps in a vector
/// column).
pub(crate) type Groups = HashMap<String, Vec<String>>;

/// The group a [`VectorAssembler`] writes and the scalers read by default.
pub const FEATURES: &str = "features";

/// What a transformer does with a value it cannot handle (Spark's `handleInvalid`).
#[derive(Debug, Clone, Serialize, Deserialize, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum HandleInvalid {
    /// Fail the query with a message naming the column and the value (the default).
    #[default]
    Error,
    /// Drop the row.
    Skip,
    /// Keep the row: an extra index (string indexer, one-hot encoder) or `NaN` (assembler).
    Keep,
}

/// Which columns a multi-column transformer reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Input {
    /// A feature group, or a single column of that name.
    Group(String),
    /// These columns.
    Columns(Vec<String>),
}

impl Default for Input {
    fn default() -> Self {
        Input::Group(FEATURES.to_string())
    }
}

impl Input {
    /// The columns, checked to exist and be numeric.
    fn resolve(
        &self,
        stage: &'static str,
        schema: &Schema,
        groups: &Groups,
    ) -> Result<Vec<String>> {
        let columns = match self {
            Input::Columns(c) => c.clone(),
            Input::Group(g) => match groups.get(g) {
                Some(c) => c.clone(),
                None if schema.index_of(g).is_ok() => vec![g.clone()],
                None => {
                    return Err(EngineError::InvalidParameter {
                        name: "input",
                        reason: format!(
                            "{stage}: '{g}' is neither a feature group (made by a VectorAssembler \
                             or OneHotEncoder earlier in the pipeline) nor a column; set input_cols"
                        ),
                    })
                }
            },
        };
        if columns.is_empty() {
            return Err(EngineError::InvalidParameter {
                name: "input_cols",
                reason: format!("{stage} needs at least one input column"),
            });
        }
        for c in &columns {
            numeric_column(stage, schema, c)?;
        }
        Ok(columns)
    }
}

/// The type of column `name`; an unknown column is named with the closest match.
fn check_column(schema: &Schema, name: &str) -> Result<DataType> {
    check_exists(schema, name)?;
    let field = schema
        .field_with_name(name)
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    Ok(field.data_type().clone())
}

fn numeric_column(stage: &'static str, schema: &Schema, name: &str) -> Result<()> {
    let ty = check_column(schema, name)?;
    if ty.is_numeric() || ty == DataType::Boolean {
        Ok(())
    } else {
        Err(EngineError::InvalidParameter {
            name: "input_cols",
            reason: format!(
                "{stage}: column '{name}' is {ty}, not numeric (index strings with a StringIndexer first)"
            ),
        })
    }
}

/// `name` as `Float64`.
fn f64_col(name: &str) -> Expr {
    cast_expr(ident(name), DataType::Float64)
}

/// A typed `Float64` null.
fn null_f64() -> Expr {
    lit(ScalarValue::Float64(None))
}

/// True for a null or NaN value of an `f64` expression.
fn is_missing(x: Expr) -> Expr {
    x.clone().is_null().or(isnan(x))
}

/// Fails the query with `parts` concatenated (a `Float64` expression, for `CASE`).
fn raise(parts: Vec<Expr>) -> Result<Expr> {
    let udf = kiln_udf(KILN_RAISE_ERROR)
        .ok_or_else(|| EngineError::Internal(format!("{KILN_RAISE_ERROR} is not registered")))?;
    Ok(udf.call(vec![concat(parts)]))
}

/// A value rendered for an error message (`<null>` for null).
fn shown(x: Expr) -> Expr {
    coalesce(vec![cast_expr(x, DataType::Utf8), lit("<null>")])
}

/// Replaces columns in place and appends new ones, in one projection.
fn project(
    df: DataFrame,
    replaced: &[(String, Expr)],
    appended: &[(String, Expr)],
) -> Result<DataFrame> {
    let schema = df.schema();
    let mut exprs: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| {
            let name = f.name();
            match replaced.iter().find(|(n, _)| n == name) {
                Some((_, e)) => e.clone().alias(name),
                None => ident(name),
            }
        })
        .collect();
    for (name, e) in appended {
        if schema.index_of(name).is_ok() {
            exprs.retain(|x| x.schema_name().to_string() != *name);
        }
        exprs.push(e.clone().alias(name));
    }
    df.select(exprs)
}

/// Runs an aggregate with no grouping and returns its single row, every column as `f64`
/// (`None` for null).
async fn aggregate_row(df: &DataFrame, aggs: Vec<Expr>) -> Result<Vec<Option<f64>>> {
    let n = aggs.len();
    let grouped = df.clone().group_by(vec![]).agg(aggs)?;
    let batches = grouped.collect().await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| EngineError::Internal("an aggregate returned no row".into()))?;
    (0..n).map(|i| first_cell(batch, i)).collect()
}

/// Row 0 of column `i` as `f64` (`None` for null).
fn first_cell(batch: &RecordBatch, i: usize) -> Result<Option<f64>> {
    let a = cast(batch.column(i), &DataType::Float64)?;
    let a = a
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| EngineError::Internal("cast to Float64".into()))?;
    Ok(a.is_valid(0).then(|| a.value(0)))
}

/// Output column names: in place, or `{group}_{column}` in a new group.
fn output_names(inputs: &[String], output: Option<&str>) -> Vec<String> {
    match output {
        None => inputs.to_vec(),
        Some(g) => inputs.iter().map(|c| format!("{g}_{c}")).collect(),
    }
}

/// `input_cols`, `input` and `output` for a transformer with `input: Input` and
/// `output: Option<String>` fields.
macro_rules! io_builders {
    ($verb:literal) => {
        #[doc = concat!($verb, " these columns.")]
        pub fn input_cols<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cols: I) -> Self {
            self.input = Input::Columns(cols.into_iter().map(Into::into).collect());
            self
        }

        #[doc = concat!($verb, " this feature group (or the single column of that name).")]
        pub fn input(mut self, group: impl Into<String>) -> Self {
            self.input = Input::Group(group.into());
            self
        }

        /// Writes to new columns `{group}_{column}`, which form the feature group `group`,
        /// instead of replacing the inputs.
        pub fn output(mut self, group: impl Into<String>) -> Self {
            self.output = Some(group.into());
            self
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Affine scalers: out = (x - shift) * factor + offset.

/// A fitted per-column affine map `(x − shift) · factor + offset`, the shape of both scalers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Affine {
    inputs: Vec<String>,
    outputs: Vec<String>,
    group: Option<String>,
    shift: Vec<f64>,
    factor: Vec<f64>,
    offset: Vec<f64>,
}

impl Affine {
    fn transform(&self, df: DataFrame) -> Result<DataFrame> {
        let exprs: Vec<(String, Expr)> = self
            .inputs
            .iter()
            .zip(&self.outputs)
            .enumerate()
            .map(|(j, (input, output))| {
                let mut e = f64_col(input);
                if self.shift[j] != 0.0 {
                    e = e - lit(self.shift[j]);
                }
                if self.factor[j] != 1.0 {
                    e = e * lit(self.factor[j]);
                }
                if self.offset[j] != 0.0 {
                    e = e + lit(self.offset[j]);
                }
                (output.clone(), e)
            })
            .collect();
        if self.group.is_some() {
            project(df, &[], &exprs)
        } else {
            project(df, &exprs, &[])
        }
    }

    fn update_groups(&self, input: &Input, groups: &mut Groups) {
        match (&self.group, input) {
            (Some(g), _) => {
                groups.insert(g.clone(), self.outputs.clone());
            }
            (None, Input::Group(g)) => {
                groups.insert(g.clone(), self.outputs.clone());
            }
            (None, Input::Columns(_)) => {}
        }
    }
}

/// Standardizes features: `(x − mean) / std` per column, Spark's `StandardScaler`.
///
/// As in Spark, `with_mean` is off and `with_std` on by default, the deviation is the sample
/// one (`n − 1`), and a constant column scales to `0`. Nulls stay null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardScaler {
    input: Input,
    output: Option<String>,
    with_mean: bool,
    with_std: bool,
}

impl Default for StandardScaler {
    fn default() -> Self {
        Self::new()
    }
}

impl StandardScaler {
    /// Scales the `features` group in place (or a column named `features`).
    pub fn new() -> Self {
        Self {
            input: Input::default(),
            output: None,
            with_mean: false,
            with_std: true,
        }
    }

    io_builders!("Scales");

    /// Subtract the mean (default `false`, as in Spark).
    pub fn with_mean(mut self, yes: bool) -> Self {
        self.with_mean = yes;
        self
    }

    /// Divide by the sample standard deviation (default `true`).
    pub fn with_std(mut self, yes: bool) -> Self {
        self.with_std = yes;
        self
    }

    /// Computes the means and deviations in one pass over `df`.
    ///
    /// # Errors
    /// Unknown or non-numeric columns; a column without any non-null value; a failed job.
    pub async fn fit(&self, df: &DataFrame) -> Result<StandardScalerModel> {
        self.fit_in(df, &Groups::new()).await
    }

    pub(crate) async fn fit_in(
        &self,
        df: &DataFrame,
        groups: &Groups,
    ) -> Result<StandardScalerModel> {
        let inputs = self.input.resolve("StandardScaler", &df.schema(), groups)?;
        let mut aggs = Vec::new();
        for c in &inputs {
            aggs.push(count(ident(c)));
            aggs.push(avg(f64_col(c)));
            aggs.push(stddev(f64_col(c)));
        }
        let row = aggregate_row(df, aggs).await?;
        let mut mean = Vec::new();
        let mut std = Vec::new();
        for (j, c) in inputs.iter().enumerate() {
            if row[3 * j].unwrap_or(0.0) < 1.0 {
                return Err(no_values("StandardScaler", c));
            }
            mean.push(row[3 * j + 1].unwrap_or(0.0));
            std.push(row[3 * j + 2].unwrap_or(0.0));
        }
        let outputs = output_names(&inputs, self.output.as_deref());
        let d = inputs.len();
        let affine = Affine {
            shift: if self.with_mean {
                mean.clone()
            } else {
                vec![0.0; d]
            },
            factor: std
                .iter()
                .map(|s| match (self.with_std, *s > 0.0) {
                    (false, _) => 1.0,
                    (true, true) => 1.0 / s,
                    (true, false) => 0.0,
                })
                .collect(),
            offset: vec![0.0; d],
            inputs,
            outputs,
            group: self.output.clone(),
        };
        Ok(StandardScalerModel {
            mean,
            std,
            affine,
            input: self.input.clone(),
        })
    }
}

fn no_values(stage: &str, column: &str) -> EngineError {
    EngineError::InvalidParameter {
        name: "input_cols",
        reason: format!("{stage}: column '{column}' has no non-null value to fit on"),
    }
}

/// A fitted [`StandardScaler`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StandardScalerModel {
    mean: Vec<f64>,
    std: Vec<f64>,
    affine: Affine,
    input: Input,
}

impl StandardScalerModel {
    /// Mean of each input column.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Sample standard deviation of each input column.
    pub fn std(&self) -> &[f64] {
        &self.std
    }

    /// The input columns.
    pub fn input_cols(&self) -> &[String] {
        &self.affine.inputs
    }

    /// The output columns.
    pub fn output_cols(&self) -> &[String] {
        &self.affine.outputs
    }

    /// Adds the scaling to `df`'s plan.
    ///
    /// # Errors
    /// An input column missing from `df`.
    pub fn transform(&self, df: DataFrame) -> Result<DataFrame> {
        self.affine.transform(df)
    }
}

/// Rescales features to `[min, max]` (default `[0, 1]`), Spark's `MinMaxScaler`.
///
/// A constant column maps to `(min + max) / 2`, as in Spark.
#[derive(Debug, Clone, PartialEq)]
pub struct MinMaxScaler {
    input: Input,
    output: Option<String>,
    min: f64,
    max: f64,
}

impl Default for MinMaxScaler {
    fn default() -> Self {
        Self::new()
    }
}

impl MinMaxScaler {
    /// Rescales the `features` group in place to `[0, 1]`.
    pub fn new() -> Self {
        Self {
            input: Input::default(),
            output: None,
            min: 0.0,
            max: 1.0,
        }
    }

    io_builders!("Rescales");

    /// Lower end of the output range (default 0).
    pub fn min(mut self, min: f64) -> Self {
        self.min = min;
        self
    }

    /// Upper end of the output range (default 1).
    pub fn max(mut self, max: f64) -> Self {
        self.max = max;
        self
    }

    /// Computes the extremes in one pass over `df`.
    ///
    /// # Errors
    /// `min >= max` or a non-finite bound; unknown or non-numeric columns; a column without
    /// any non-null value; a failed job.
    pub async fn fit(&self, df: &DataFrame) -> Result<MinMaxScalerModel> {
        self.fit_in(df, &Groups::new()).await
    }

    pub(crate) async fn fit_in(
        &self,
        df: &DataFrame,
        groups: &Groups,
    ) -> Result<MinMaxScalerModel> {
        if !(self.min.is_finite() && self.max.is_finite() && self.min < self.max) {
            return Err(EngineError::InvalidParameter {
                name: "min",
                reason: format!(
                    "MinMaxScaler needs finite min < max, got min = {} and max = {}",
                    self.min, self.max
                ),
            });
        }
        let inputs = self.input.resolve("MinMaxScaler", &df.schema(), groups)?;
        let mut aggs = Vec::new();
        for c in &inputs {
            // NaN is ignored, as nulls are.
            let v = when(isnan(f64_col(c)), null_f64()).otherwise(f64_col(c))?;
            aggs.push(min(v.clone()));
            aggs.push(max(v));
        }
        let row = aggregate_row(df, aggs).await?;
        let mut data_min = Vec::new();
        let mut data_max = Vec::new();
        for (j, c) in inputs.iter().enumerate() {
            match (row[2 * j], row[2 * j + 1]) {
                (Some(lo), Some(hi)) => {
                    data_min.push(lo);
                    data_max.push(hi);
                }
                _ => return Err(no_values("MinMaxScaler", c)),
            }
        }
        let d = inputs.len();
        let (mut factor, mut offset) = (Vec::with_capacity(d), Vec::with_capacity(d));
        for j in 0..d {
            let range = data_max[j] - data_min[j];
            if range > 0.0 {
                factor.push((self.max - self.min) / range);
                offset.push(self.min);
            } else {
                factor.push(0.0);
                offset.push(0.5 * (self.max + self.min));
            }
        }
        let affine = Affine {
            outputs: output_names(&inputs, self.output.as_deref()),
            shift: data_min.clone(),
            factor,
            offset,
            inputs,
            group: self.output.clone(),
        };
        Ok(MinMaxScalerModel {
            data_min,
            data_max,
            affine,
            input: self.input.clone(),
        })
    }
}

/// A fitted [`MinMaxScaler`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MinMaxScalerModel {
    data_min: Vec<f64>,
    data_max: Vec<f64>,
    affine: Affine,
    input: Input,
}

impl MinMaxScalerModel {
    /// Smallest value of each input column.
    pub fn data_min(&self) -> &[f64] {
        &self.data_min
    }

    /// Largest value of each input column.
    pub fn data_max(&self) -> &[f64] {
        &self.data_max
    }

    /// The output columns.
    pub fn output_cols(&self) -> &[String] {
        &self.affine.outputs
    }

    /// Adds the rescaling to `df`'s plan.
    ///
    /// # Errors
    /// An input column missing from `df`.
    pub fn transform(&self, df: DataFrame) -> Result<DataFrame> {
        self.affine.transform(df)
    }
}

// ---------------------------------------------------------------------------------------------
// Imputer.

/// How an [`Imputer`] computes the value that replaces missing ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImputeStrategy {
    /// The mean of the present values (the default).
    #[default]
    Mean,
    /// Their (exact) median.
    Median,
    /// Their most frequent value; the smallest one among ties.
    Mode,
}

/// Replaces missing values (null, NaN, and optionally a sentinel) by a per-column statistic of
/// the present ones, Spark's `Imputer`. Outputs `Float64`.
#[derive(Debug, Clone, PartialEq)]
pub struct Imputer {
    input: Input,
    output: Option<String>,
    strategy: ImputeStrategy,
    missing_value: Option<f64>,
}

impl Imputer {
    /// Imputes these columns in place with their means.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(cols: I) -> Self {
        Self {
            input: Input::Columns(cols.into_iter().map(Into::into).collect()),
            output: None,
            strategy: ImputeStrategy::Mean,
            missing_value: None,
        }
    }

    io_builders!("Imputes");

    /// The statistic (default mean).
    pub fn strategy(mut self, strategy: ImputeStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Also treat this value as missing (null and NaN always are).
    pub fn missing_value(mut self, value: f64) -> Self {
        self.missing_value = Some(value);
        self
    }

    /// `x` as `f64`, null where it is missing.
    fn present(&self, c: &str) -> Result<Expr> {
        let x = f64_col(c);
        let mut missing = isnan(x.clone());
        if let Some(v) = self.missing_value {
            missing = missing.or(x.clone().eq(lit(v)));
        }
        Ok(when(missing, null_f64()).otherwise(x)?)
    }

    /// Computes the surrogates: one pass for means or medians, one per column for modes.
    ///
    /// # Errors
    /// Unknown or non-numeric columns; a column whose values are all missing; a failed job.
    pub async fn fit(&self, df: &DataFrame) -> Result<ImputerModel> {
        self.fit_in(df, &Groups::new()).await
    }

    pub(crate) async fn fit_in(&self, df: &DataFrame, groups: &Groups) -> Result<ImputerModel> {
        let inputs = self.input.resolve("Imputer", &df.schema(), groups)?;
        let surrogates: Vec<Option<f64>> = match self.strategy {
            ImputeStrategy::Mean | ImputeStrategy::Median => {
                let aggs = inputs
                    .iter()
                    .map(|c| {
                        let v = self.present(c)?;
                        Ok(if self.strategy == ImputeStrategy::Mean {
                            avg(v)
                        } else {
                            median(v)
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                aggregate_row(df, aggs).await?
            }
            ImputeStrategy::Mode => {
                let mut out = Vec::with_capacity(inputs.len());
                for c in &inputs {
                    let counted = df
                        .clone()
                        .select(vec![self.present(c)?.alias("v")])?
                        .filter(ident("v").is_not_null())?
                        .group_by(vec![ident("v")])
                        .agg(vec![count(lit(1)).alias("n")])?
                        .sort(vec![
                            ident("n").sort(false, false),
                            ident("v").sort(true, false),
                        ])?
                        .limit(1)?;
                    let batches = counted.collect().await?;
                    out.push(first_f64(&batches));
                }
                out
            }
        };
        let surrogates = inputs
            .iter()
            .zip(surrogates)
            .map(|(c, s)| {
                s.ok_or_else(|| EngineError::InvalidParameter {
                    name: "input_cols",
                    reason: format!(
                        "Imputer: every value of column '{c}' is missing, so no surrogate can be computed"
                    ),
                })
            })
            .collect::<Result<Vec<f64>>>()?;
        Ok(ImputerModel {
            outputs: output_names(&inputs, self.output.as_deref()),
            inputs,
            group: self.output.clone(),
            surrogates,
            missing_value: self.missing_value,
            input: self.input.clone(),
        })
    }
}

fn first_f64(batches: &[RecordBatch]) -> Option<f64> {
    let b = batches.iter().find(|b| b.num_rows() > 0)?;
    first_cell(b, 0).ok().flatten()
}

/// A fitted [`Imputer`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImputerModel {
    inputs: Vec<String>,
    outputs: Vec<String>,
    group: Option<String>,
    surrogates: Vec<f64>,
    missing_value: Option<f64>,
    input: Input,
}

impl ImputerModel {
    /// The value that replaces a missing one, per input column.
    pub fn surrogates(&self) -> &[f64] {
        &self.surrogates
    }

    /// The output columns.
    pub fn output_cols(&self) -> &[String] {
        &self.outputs
    }

    /// Adds the imputation to `df`'s plan.
    ///
    /// # Errors
    /// An input column missing from `df`.
    pub fn transform(&self, df: DataFrame) -> Result<DataFrame> {
        let exprs = self
            .inputs
            .iter()
            .zip(&self.outputs)
            .zip(&self.surrogates)
            .map(|((c, o), s)| {
                let x = f64_col(c);
                let mut missing = is_missing(x.clone());
                if let Some(v) = self.missing_value {
                    missing = missing.or(x.clone().eq(lit(v)));
                }
                Ok((o.clone(), when(missing, lit(*s)).otherwise(x)?))
            })
            .collect::<Result<Vec<_>>>()?;
        if self.group.is_some() {
            project(df, &[], &exprs)
        } else {
            project(df, &exprs, &[])
        }
    }

    fn update_groups(&self, groups: &mut Groups) {
        match (&self.group, &self.input) {
            (Some(g), _) | (None, Input::Group(g)) => {
                groups.insert(g.clone(), self.outputs.clone());
            }
            (None, Input::Columns(_)) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// StringIndexer.

/// How a [`StringIndexer`] orders its labels (index 0 first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StringOrder {
    /// Most frequent first, ties alphabetically (the default, as in Spark).
    #[default]
    FrequencyDesc,
    /// Least frequent first, ties alphabetically.
    FrequencyAsc,
    /// Alphabetical.
    AlphabetAsc,
    /// Reverse alphabetical.
    AlphabetDesc,
}

/// Maps a string (or any value, as its string form) column to label indices `0.0, 1.0, ...`,
/// Spark's `StringIndexer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringIndexer {
    input: String,
    output: String,
    order: StringOrder,
    handle_invalid: HandleInvalid,
}

impl StringIndexer {
    /// Indexes `input` into the new `Float64` column `output`.
    pub fn new(input: impl Into<String>, output: impl Into<String>) -> Self {
        Self {
            input: input.into(),
            output: output.into(),
            order: StringOrder::default(),
            handle_invalid: HandleInvalid::default(),
        }
    }

    /// The label order (default most frequent first).
    pub fn string_order_type(mut self, order: StringOrder) -> Self {
        self.order = order;
        self
    }

    /// What to do with nulls and labels not seen when fitting: fail (default), drop the
    /// row, or give them the extra index `labels.len()`.
    pub fn handle_invalid(mut self, handle: HandleInvalid) -> Self {
        self.handle_invalid = handle;
        self
    }

    /// Counts the distinct values in one pass.
    ///
    /// # Errors
    /// An unknown column; a column with no non-null value; a failed job.
    pub async fn fit(&self, df: &DataFrame) -> Result<StringIndexerModel> {
        check_column(&df.schema(), &self.input)?;
        let counted = df
            .clone()
            .select(vec![
                cast_expr(ident(&self.input), DataType::Utf8).alias("v")
            ])?
            .filter(ident("v").is_not_null())?
            .group_by(vec![ident("v")])
            .agg(vec![count(lit(1)).alias("n")])?;
        let batches = counted.collect().await?;
        let mut labels: Vec<(String, i64)> = Vec::new();
        for b in &batches {
            let v = cast(b.column(0), &DataType::Utf8)?;
            let n = cast(b.column(1), &DataType::Int64)?;
            let (Some(v), Some(n)) = (
                v.as_any().downcast_ref::<StringArray>(),
                n.as_any().downcast_ref::<Int64Array>(),
            ) else {
                return Err(EngineError::Internal(
                    "label counts of unexpected types".into(),
                ));
            };
            for i in 0..b.num_rows() {
                labels.push((v.value(i).to_string(), n.value(i)));
            }
        }
        if labels.is_empty() {
            return Err(no_values("StringIndexer", &self.input));
        }
        match self.order {
            StringOrder::FrequencyDesc => labels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0))),
            StringOrder::FrequencyAsc => labels.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0))),
            StringOrder::AlphabetAsc => labels.sort_by(|a, b| a.0.cmp(&b.0)),
            StringOrder::AlphabetDesc => labels.sort_by(|a, b| b.0.cmp(&a.0)),
        }
        Ok(StringIndexerModel {
            input: self.input.clone(),
            output: self.output.clone(),
            labels: labels.into_iter().map(|(l, _)| l).collect(),
            handle_invalid: self.handle_invalid,
        })
    }
}

/// A fitted [`StringIndexer`]: its labels, index 0 first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StringIndexerModel {
    input: String,
    output: String,
    labels: Vec<String>,
    handle_invalid: HandleInvalid,
}

impl StringIndexerModel {
    /// The labels in index order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The output column.
    pub fn output_col(&self) -> &str {
        &self.output
    }

    /// Adds the indexing to `df`'s plan: a `CASE` over the labels.
    ///
    /// # Errors
    /// The input column missing from `df`.
    pub fn transform(&self, df: DataFrame) -> Result<DataFrame> {
        let v = cast_expr(ident(&self.input), DataType::Utf8);
        let mut builder = case(v.clone());
        for (i, label) in self.labels.iter().enumerate() {
            builder = builder.when(lit(label.as_str()), lit(i as f64));
        }
        let otherwise = match self.handle_invalid {
            HandleInvalid::Keep => lit(self.labels.len() as f64),
            HandleInvalid::Skip => null_f64(),
            HandleInvalid::Error => raise(vec![
                lit(format!("StringIndexer: column '{}' has the value '", self.input)),
                shown(ident(&self.input)),
                lit("', which was not seen when fitting (set handle_invalid to Keep or Skip to accept it)"),
            ])?,
        };
        let expr = builder.otherwise(otherwise)?;
        let out = project(df, &[], &[(self.output.clone(), expr)])?;
        if self.handle_invalid == HandleInvalid::Skip {
            out.filter(ident(&self.output).is_not_null())
        } else {
            Ok(out)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OneHotEncoder.

/// Turns a category index column (`0, 1, ...`, e.g. from a [`StringIndexer`]) into one `0/1`
/// column per category, forming a feature group; Spark's `OneHotEncoder`. With `drop_last`
/// (the default) the last category gets no column, so the columns stay linearly independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneHotEncoder {
    input: String,
    output: String,
    drop_last: bool,
    handle_invalid: HandleInvalid,
}

impl OneHotEncoder {
    /// Encodes the index column `input` into the group `output` (columns `{output}_{i}`).
    pub fn new(input: impl Into<String>, output: impl Into<String>) -> Self {
        Self {
            input: input.into(),
            output: output.into(),
            drop_last: true,
            handle_invalid: HandleInvalid::Error,
        }
    }

    /// Whether the last category gets no column (default `true`).
    pub fn drop_last(mut self, yes: bool) -> Self {
        self.drop_last = yes;
        self
    }

    /// `Error` (default) fails on a null, negative, fractional or too large index; `Keep`
    /// gives such rows an extra category (the last one). `Skip` is not offered, as in Spark.
    pub fn handle_invalid(mut self, handle: HandleInvalid) -> Self {
        self.handle_invalid = handle;
        self
    }

    /// Finds the number of categories (largest index + 1) in one pass.
    ///
    /// # Errors
    /// `Skip`; an unknown or non-numeric column; an index that is negative or fractional; no
    /// non-null value; a failed job.
    pub async fn fit(&self, df: &DataFrame) -> Result<OneHotEncoderModel> {
        if self.handle_invalid == HandleInvalid::Skip {
            return Err(EngineError::InvalidParameter {
                name: "handle_invalid",
                reason: "OneHotEncoder takes Error or Keep, not Skip".into(),
            });
        }
        numeric_column("OneHotEncoder", &df.schema(), &self.input)?;
        let x = f64_col(&self.input);
        let row = aggregate_row(
            df,
            vec![
                min(x.clone()),
                max(x.clone()),
                count(when(x.clone().eq(floor(x.clone())), lit(1)).end()?),
                count(x),
            ],
        )
        .await?;
        let (Some(lo), Some(hi)) = (row[0], row[1]) else {
            return Err(no_values("OneHotEncoder", &self.input));
        };
        if lo < 0.0 || !hi.is_finite() || row[2] != row[3] {
            return Err(EngineError::InvalidParameter {
                name: "input",
                reason: format!(
                    "OneHotEncoder: column '{}' must hold category indices 0, 1, 2, ... (found values from {lo} to {hi}, not all whole numbers or not all finite)",
                    self.input
                ),
            });
        }
        let categories = hi as usize + 1;
        let slots = categories + usize::from(self.handle_invalid == HandleInvalid::Keep);
        let emitted = slots - usize::from(self.drop_last);
        Ok(OneHotEncoderModel {
            input: self.input.clone(),
            output: self.output.clone(),
            categories,
            columns: (0..emitted)
                .map(|i| format!("{}_{i}", self.output))
                .collect(),
            handle_invalid: self.handle_invalid,
        })
    }
}

/// A fitted [`OneHotEncoder`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OneHotEncoderModel {
    input: String,
    output: String,
    categories: usize,
    columns: Vec<String>,
    handle_invalid: HandleInvalid,
}

impl OneHotEncoderModel {
    /// Number of categories seen when fitting.
    pub fn categories(&self) -> usize {
        self.categories
    }

    /// The output columns (the group's members).
    pub fn output_cols(&self) -> &[String] {
        &self.columns
    }

    /// Adds the encoding to `df`'s plan.
    ///
    /// # Errors
    /// The input column missing from `df`.
    pub fn transform(&self, df: DataFrame) -> Result<DataFrame> {
        let x = f64_col(&self.input);
        let valid = x
            .clone()
            .is_not_null()
            .and(x.clone().gt_eq(lit(0.0)))
            .and(x.clone().lt(lit(self.categories as f64)))
            .and(x.clone().eq(floor(x.clone())));
        let exprs = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let hit = cast_expr(x.clone().eq(lit(i as f64)), DataType::Float64);
                let otherwise = match self.handle_invalid {
                    HandleInvalid::Error => raise(vec![
                        lit(format!(
                            "OneHotEncoder: column '{}' has the value '",
                            self.input
                        )),
                        shown(ident(&self.input)),
                        lit(format!(
                            "', not a category index in 0..{} (set handle_invalid to Keep to accept it)",
                            self.categories
                        )),
                    ])?,
                    _ => lit(if i == self.categories { 1.0 } else { 0.0 }),
                };
                Ok((name.clone(), when(valid.clone(), hit).otherwise(otherwise)?))
            })
            .collect::<Result<Vec<_>>>()?;
        project(df, &[], &exprs)
    }
}

// ---------------------------------------------------------------------------------------------
// VectorAssembler.

/// Chooses a model's feature columns, Spark's `VectorAssembler`: the inputs (columns, or
/// groups made earlier in a pipeline) are cast to `Float64` and become the feature group
/// `features` (or [`output`](Self::output)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorAssembler {
    inputs: Vec<String>,
    output: String,
    handle_invalid: HandleInvalid,
}

impl VectorAssembler {
    /// Assembles these columns or groups, in order, into the group `features`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(inputs: I) -> Self {
        Self {
            inputs: inputs.into_iter().map(Into::into).collect(),
            output: FEATURES.to_string(),
            handle_invalid: HandleInvalid::Error,
        }
    }

    /// The group's name (default `features`).
    pub fn output(mut self, group: impl Into<String>) -> Self {
        self.output = group.into();
        self
    }

    /// Rows with a null or NaN input: fail (default), drop them, or keep them (nulls become
    /// NaN).
    pub fn handle_invalid(mut self, handle: HandleInvalid) -> Self {
        self.handle_invalid = handle;
        self
    }

    /// The assembler with its inputs resolved against `df` (no data is read).
    ///
    /// # Errors
    /// No inputs; an unknown or non-numeric column.
    pub fn fit(&self, df: &DataFrame) -> Result<VectorAssemblerModel> {
        self.fit_in(df, &Groups::new())
    }

    pub(crate) fn fit_in(&self, df: &DataFrame, groups: &Groups) -> Result<VectorAssemblerModel> {
        let schema = df.schema();
        let mut columns = Vec::new();
        for name in &self.inputs {
            match groups.get(name) {
                Some(members) => columns.extend(members.iter().cloned()),
                None => {
                    numeric_column("VectorAssembler", &schema, name)?;
                    columns.push(name.clone());
                }
            }
        }
        if columns.is_empty() {
            return Err(EngineError::InvalidParameter {
                name: "input_cols",
                reason: "VectorAssembler needs at least one input column".into(),
            });
        }
        Ok(VectorAssemblerModel {
            columns,
            output: self.output.clone(),
            handle_invalid: self.handle_invalid,
        })
    }

    /// Resolves and applies the assembler.
    ///
    /// # Errors
    /// As [`fit`](Self::fit).
    pub fn transform(&self, df: DataFrame) -> Result<DataFrame> {
        self.fit(&df)?.transform(df)
    }
}

/// A [`VectorAssembler`] with its columns resolved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VectorAssemblerModel {
    columns: Vec<String>,
    output: String,
    handle_invalid: HandleInvalid,
}

impl VectorAssemblerModel {
    /// The group's columns, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The group's name.
    pub fn output(&self) -> &str {
        &self.output
    }

    /// Casts the columns to `Float64` and applies the invalid-value policy.
    ///
    /// # Errors
    /// A column missing from `df`.
    pub fn transform(&self, df: DataFrame) -> Result<DataFrame> {
        let exprs = self
            .columns
            .iter()
            .map(|c| {
                let x = f64_col(c);
                let e = match self.handle_invalid {
                    HandleInvalid::Error => when(
                        is_missing(x.clone()),
                        raise(vec![lit(format!(
                            "VectorAssembler: feature column '{c}' has a null or NaN value (impute it, or set handle_invalid to Skip or Keep)"
                        ))])?,
                    )
                    .otherwise(x)?,
                    HandleInvalid::Keep => coalesce(vec![x, lit(f64::NAN)]),
                    HandleInvalid::Skip => x,
                };
                Ok((c.clone(), e))
            })
            .collect::<Result<Vec<_>>>()?;
        let df = if self.handle_invalid == HandleInvalid::Skip {
            let keep = self
                .columns
                .iter()
                .map(|c| !is_missing(f64_col(c)))
                .reduce(Expr::and)
                .unwrap_or(lit(true));
            df.filter(keep)?
        } else {
            df
        };
        project(df, &exprs, &[])
    }
}

// ---------------------------------------------------------------------------------------------
// Pipeline plumbing.

/// A fitted feature stage of a pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureModel {
    /// See [`VectorAssemblerModel`].
    VectorAssembler(VectorAssemblerModel),
    /// See [`StandardScalerModel`].
    StandardScaler(StandardScalerModel),
    /// See [`MinMaxScalerModel`].
    MinMaxScaler(MinMaxScalerModel),
    /// See [`ImputerModel`].
    Imputer(ImputerModel),
    /// See [`StringIndexerModel`].
    StringIndexer(StringIndexerModel),
    /// See [`OneHotEncoderModel`].
    OneHotEncoder(OneHotEncoderModel),
}

impl FeatureModel {
    /// Adds the stage's expressions to `df`'s plan.
    ///
    /// # Errors
    /// An input column missing from `df`.
    pub fn transform(&self, df: DataFrame) -> Result<DataFrame> {
        match self {
            FeatureModel::VectorAssembler(m) => m.transform(df),
            FeatureModel::StandardScaler(m) => m.transform(df),
            FeatureModel::MinMaxScaler(m) => m.transform(df),
            FeatureModel::Imputer(m) => m.transform(df),
            FeatureModel::StringIndexer(m) => m.transform(df),
            FeatureModel::OneHotEncoder(m) => m.transform(df),
        }
    }

    /// Records the groups the stage defines.
    pub(crate) fn update_groups(&self, groups: &mut Groups) {
        match self {
            FeatureModel::VectorAssembler(m) => {
                groups.insert(m.output.clone(), m.columns.clone());
            }
            FeatureModel::StandardScaler(m) => m.affine.update_groups(&m.input, groups),
            FeatureModel::MinMaxScaler(m) => m.affine.update_groups(&m.input, groups),
            FeatureModel::Imputer(m) => m.update_groups(groups),
            FeatureModel::StringIndexer(_) => {}
            FeatureModel::OneHotEncoder(m) => {
                groups.insert(m.output.clone(), m.columns.clone());
            }
        }
    }
}
