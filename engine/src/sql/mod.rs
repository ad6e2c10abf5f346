//! Kiln's SQL dialect: DataFusion's SQL plus statements to train, inspect and keep models, and
//! table functions to predict and evaluate.
//!
//! ```sql
//! TRAIN MODEL churn USING logistic_regression (reg_param = 0.01, max_iter = 50)
//!     LABEL churned FEATURES (tenure, spend) AS SELECT * FROM customers;
//! CREATE OR REPLACE MODEL churn OPTIONS (type = 'logistic_regression', label = 'churned')
//!     AS SELECT tenure, spend, churned FROM customers;      -- BigQuery's shape
//! SELECT id, predict(churn, tenure, spend) FROM customers;  -- in any expression
//! SELECT * FROM PREDICT(MODEL churn, (SELECT * FROM customers));  -- adds `prediction`
//! SELECT * FROM EVALUATE(MODEL churn, (SELECT * FROM holdout));   -- one row of metrics
//! SHOW MODELS; DESCRIBE MODEL churn; DROP MODEL [IF EXISTS] churn;
//! SHOW ALGORITHMS;           -- every algorithm's parameters: type, default, description
//! SAVE MODEL churn TO 's3://bucket/models/churn'; LOAD MODEL churn FROM '/models/churn';
//! EXPLAIN TRAIN MODEL ...;   -- the training plan (cache and iterate stages), not run
//! EXPLAIN ANALYZE TRAIN MODEL ...;  -- trains, then shows the training report
//! TRAIN MODEL price USING linear_regression
//!     TRANSFORM (standard_scaler(size) AS s, one_hot_encoder(region) AS r,
//!                imputer(rooms, 'median') AS rooms, size * size AS sq)
//!     LABEL price AS SELECT * FROM houses;                  -- preprocessing kept with the model
//! SELECT predict(price, size, region, rooms) FROM houses;   -- the raw columns TRANSFORM reads
//! SET kiln.max_task_attempts = 6; SHOW kiln.max_task_attempts; SHOW ALL;
//! ```
//!
//! `TRANSFORM` (see [`SqlTransform`]) fits scalers, encoders and imputers on the training
//! query and keeps them with the model (`transform.json` in its directory); every way of
//! predicting applies them first.
//!
//! In `predict(m, ...)` and `predict_proba(m, ...)` the model may be a bare name (a registered
//! model's name wins over a column of that name) or a quoted string.
//!
//! Algorithms: `kmeans`, `linear_regression`, `logistic_regression`, with the parameter
//! names of the Rust API (Spark MLlib's, in snake case; `C`, scikit-learn's inverse strength,
//! is taken as well). Without `FEATURES`, every numeric
//! column but the label is a feature; without `LABEL`, the label is `label`.
//!
//! `PREDICT(MODEL m, (query))` is rewritten into a plain subquery calling the `predict` UDF
//! (and `predict_proba` for a classifier, as `probability`), so it stays lazy and the
//! optimizer sees through it. `EVALUATE` runs its query when the statement is planned and
//! answers with the same figures as the Rust API's [`Evaluator`]s: `rmse`, `mse`, `mae`, `r2`
//! for regression; `accuracy`, weighted `precision`, `recall`, `f1`, `log_loss` (and
//! `roc_auc` for two classes) for classification; `sse` and `silhouette` for k-means.

mod parse;
pub(crate) mod transform;

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::sql::sqlparser::tokenizer::Location;
use futures::future::BoxFuture;
use kiln_ml::cluster::kmeans::{CenterSet, KMeansKernel, KMeansPartial};
use kiln_ml::registry::{self, ParamValue as RegistryValue};
use kiln_ml::step::{Kernel, Partial};
use kiln_ml::{MlError, Model, ModelKind, Precision};

pub use parse::{
    parse_kiln_statement, split_statements, KilnStatement, Param, ParamValue, TrainModel,
    TransformItem,
};
use transform::{quote_ident, quote_string, ApplyTransform};
pub use transform::{SqlTransform, TransformOutput, TRANSFORM_FILE};

use crate::dataframe::DataFrame;
use crate::error::{EngineError, Result};
use crate::ml::fit::fit_estimator;
use crate::ml::models::unknown_model;
use crate::ml::{
    Average, ClassificationMetric, Columns, Estimator, Evaluator, LazyModel, RegressionMetric,
};
use crate::session::Session;
use parse::error_at;

/// Runs one statement of Kiln's SQL (see the [module docs](self)).
pub(crate) fn run<'a>(session: &'a Session, sql: &'a str) -> BoxFuture<'a, Result<DataFrame>> {
    Box::pin(run_statement(session, sql))
}

async fn run_statement(session: &Session, sql: &str) -> Result<DataFrame> {
    if let Some(statement) = parse_kiln_statement(sql)? {
        return execute(session, statement).await;
    }
    let sql = parse::quote_model_arguments(sql, |name| session.model(name).is_some())?;
    let sql = transform::transform_predict_arguments(&sql, |name| session.transform(name))?;
    let mut temporary = Vec::new();
    let rewritten = rewrite(session, &sql, &mut temporary).await;
    let planned = match rewritten {
        Ok(text) => session.datafusion_sql(&text).await,
        Err(e) => Err(e),
    };
    // `predict(nomodel, x)` with no model of that name leaves `nomodel` a column reference:
    // say that the model is missing rather than the column.
    let planned = planned.map_err(|e| match e {
        EngineError::UnknownColumn { ref column, .. }
            if parse::bare_model_arguments(&sql)
                .iter()
                .any(|m| m.eq_ignore_ascii_case(column.rsplit('.').next().unwrap_or(column))) =>
        {
            unknown_model(session, column.rsplit('.').next().unwrap_or(column))
        }
        other => other,
    });
    // The plan holds the tables it scans: the names can go.
    for name in temporary {
        // Deregistering a table that is there cannot fail in a meaningful way.
        let _ = session.datafusion_context().deregister_table(name.as_str());
    }
    planned
}

async fn execute(session: &Session, statement: KilnStatement) -> Result<DataFrame> {
    match statement {
        KilnStatement::Train(t) => train(session, &t).await,
        KilnStatement::ExplainTrain(t) => {
            let (_, t) = validation_of(&t)?;
            let (estimator, columns) = estimator(&t)?;
            let df = session.sql(&t.query).await?;
            let plan = LazyModel::new(estimator, &df, &columns)?.explain().await?;
            text_table(
                session,
                &["plan_type", "plan"],
                vec![vec!["train".into(), plan]],
            )
        }
        KilnStatement::ExplainAnalyzeTrain(t) => {
            train(session, &t).await?;
            let report = session
                .model(&t.name)
                .and_then(|m| m.report().cloned())
                .unwrap_or_default();
            let rows = report.rows().into_iter().map(|(k, v)| vec![k, v]).collect();
            text_table(session, &["figure", "value"], rows)
        }
        KilnStatement::ShowModels => {
            let rows = session
                .model_names()
                .into_iter()
                .filter_map(|name| session.model(&name).map(|m| (name, m)))
                .map(|(name, m)| {
                    vec![
                        name,
                        m.algorithm().to_string(),
                        m.feature_names().join(", "),
                        m.label().unwrap_or("").to_string(),
                    ]
                })
                .collect();
            text_table(session, &["model", "algorithm", "features", "label"], rows)
        }
        KilnStatement::ShowAlgorithms => {
            let rows = registry::ALGORITHMS
                .iter()
                .flat_map(|a| {
                    a.params.iter().map(|p| {
                        vec![
                            a.name.to_string(),
                            a.task.as_str().to_string(),
                            p.name.to_string(),
                            p.ty.describe().into_owned(),
                            p.default.to_string(),
                            p.doc.to_string(),
                        ]
                    })
                })
                .collect();
            text_table(
                session,
                &[
                    "algorithm",
                    "task",
                    "parameter",
                    "type",
                    "default",
                    "description",
                ],
                rows,
            )
        }
        KilnStatement::DescribeModel(name) => {
            let Some(m) = session.model(&name) else {
                return Err(unknown_model(session, &name));
            };
            let location = crate::catalog::model_dir(session, &name)?
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let transform = session
                .transform(&name)
                .map(|t| format!("{} (reads {})", t.written.join(", "), t.inputs.join(", ")))
                .unwrap_or_default();
            let mut rows: Vec<Vec<String>> = vec![
                vec!["model".into(), name.clone()],
                vec!["algorithm".into(), m.algorithm().to_string()],
                vec!["features".into(), m.feature_names().join(", ")],
                vec!["label".into(), m.label().unwrap_or("").to_string()],
            ];
            // Every parameter by the registry's names, defaults included.
            rows.extend(
                m.param_values()
                    .into_iter()
                    .map(|(p, v)| vec![format!("param: {p}"), v.to_string()]),
            );
            rows.extend([
                vec!["summary".into(), m.summary_json().to_string()],
                vec!["transform".into(), transform],
                vec!["location".into(), location],
            ]);
            rows.extend(
                m.report()
                    .map(kiln_ml::TrainingReport::rows)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| vec![format!("report: {k}"), v]),
            );
            text_table(session, &["property", "value"], rows)
        }
        KilnStatement::DropModel { name, if_exists } => {
            let known = session.deregister_model(&name);
            if !known && !if_exists {
                return Err(unknown_model(session, &name));
            }
            crate::catalog::remove(session, &name)?;
            text_table(session, &["dropped"], vec![vec![name]])
        }
        KilnStatement::SaveModel { name, url } => {
            let Some(m) = session.model(&name) else {
                return Err(unknown_model(session, &name));
            };
            session.save_model(&m, &url).await?;
            text_table(session, &["model", "saved_to"], vec![vec![name, url]])
        }
        KilnStatement::LoadModel { name, url } => {
            let model = session.load_model(&url).await?;
            crate::catalog::keep(session, &name, model).await?;
            text_table(session, &["model", "loaded_from"], vec![vec![name, url]])
        }
        KilnStatement::Set { key, value } => {
            session.set(&key, &value)?;
            // Like DataFusion's SET: no columns, no rows.
            let schema = Arc::new(Schema::empty());
            let batch = RecordBatch::try_new_with_options(
                Arc::clone(&schema),
                Vec::new(),
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(0)),
            )?;
            session.from_batches(schema, vec![batch])
        }
        KilnStatement::ShowAll { verbose } => {
            let rows = all_settings(session)
                .into_iter()
                .map(|s| {
                    let mut row = vec![s.name, s.value, s.source];
                    if verbose {
                        row.push(s.description);
                    }
                    row
                })
                .collect();
            let names: &[&str] = if verbose {
                &["name", "value", "source", "description"]
            } else {
                &["name", "value", "source"]
            };
            text_table(session, names, rows)
        }
        KilnStatement::Show(key) => {
            let config = session.config();
            let Some(value) = config.settings().into_iter().find(|s| s.name == key) else {
                return Err(crate::config::unknown_setting(&key));
            };
            text_table(
                session,
                &["name", "value", "source"],
                vec![vec![value.name, value.value, value.source]],
            )
        }
    }
}

/// What `SHOW ALL` lists, sorted by name: Kiln's settings, DataFusion's options (with the
/// config file as their source where it set them) and the object-store settings of the
/// environment; secrets redacted.
fn all_settings(session: &Session) -> Vec<crate::config::Setting> {
    let config = session.config();
    let mut kiln = config.settings();
    let from_file: Vec<(String, String)> = kiln
        .iter()
        .filter(|s| s.name.starts_with("datafusion."))
        .map(|s| (s.name.clone(), s.source.clone()))
        .collect();
    kiln.retain(|s| !s.name.starts_with("datafusion."));
    let state = session.datafusion_context().state();
    let datafusion =
        state
            .config()
            .options()
            .entries()
            .into_iter()
            .map(|e| crate::config::Setting {
                source: from_file
                    .iter()
                    .find(|(k, _)| *k == e.key)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default(),
                name: e.key,
                value: e.value.unwrap_or_default(),
                description: e.description.to_string(),
            });
    let mut all: Vec<_> = kiln
        .into_iter()
        .chain(datafusion)
        .chain(crate::config::store_environment())
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// `TRAIN MODEL` / `CREATE MODEL`: fits, registers, saves to the catalog, and answers with a
/// row of what training did.
/// The `validation` parameter of a `TRAIN`: the query (a table name, or a `SELECT`) whose
/// rows the trained model is evaluated on, and the statement without it.
fn validation_of(t: &TrainModel) -> Result<(Option<String>, TrainModel)> {
    let mut rest = t.clone();
    let Some(at) = rest.params.iter().position(|p| p.name == "validation") else {
        return Ok((None, rest));
    };
    let param = rest.params.remove(at);
    let parse::ParamValue::Text(text) = &param.value else {
        return Err(error_at(
            param.at,
            "validation takes a table name or a query in quotes, e.g. validation = 'holdout'",
        ));
    };
    let text = text.trim();
    let query = if text
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("select"))
        || text
            .get(..4)
            .is_some_and(|w| w.eq_ignore_ascii_case("with"))
    {
        text.to_string()
    } else {
        format!("SELECT * FROM {text}")
    };
    Ok((Some(query), rest))
}

async fn train(session: &Session, t: &TrainModel) -> Result<DataFrame> {
    let (validation, t) = validation_of(t)?;
    let t = &t;
    if !t.replace && session.model(&t.name).is_some() {
        return Err(EngineError::InvalidParameter {
            name: "model",
            reason: format!(
                "a model named '{}' already exists; use CREATE OR REPLACE MODEL or DROP MODEL",
                t.name
            ),
        });
    }
    // A name the catalog cannot hold is refused before any data moves.
    crate::catalog::model_dir(session, &t.name)?;
    let (estimator, columns) = estimator(t)?;
    let (df, columns, fitted) = if t.transform.is_empty() {
        (session.sql(&t.query).await?, columns, None)
    } else {
        let fitted = transform::fit(session, &t.transform, &t.query).await?;
        let outputs = fitted.output_names();
        if let Some(chosen) = &t.features {
            if let Some(missing) = chosen.iter().find(|f| !outputs.contains(f)) {
                return Err(EngineError::InvalidParameter {
                    name: "features",
                    reason: format!(
                        "'{missing}' is not an output of TRANSFORM; its outputs: {}",
                        outputs.join(", ")
                    ),
                });
            }
        }
        let label = estimator
            .supervised()
            .then(|| t.label.as_deref().unwrap_or("label"));
        if let Some(clash) = label.filter(|l| outputs.iter().any(|o| o == l)) {
            return Err(EngineError::InvalidParameter {
                name: "label",
                reason: format!("the label '{clash}' cannot also be a TRANSFORM output"),
            });
        }
        let features = t.features.clone().unwrap_or(outputs);
        let mut columns = Columns::new().features(features);
        if let Some(l) = label {
            columns = columns.label(l);
        }
        let df = session.sql(&fitted.select(&t.query, label)).await?;
        (df, columns, Some(Arc::new(fitted)))
    };
    let model = fit_estimator(&estimator, &df, columns)
        .await?
        .with_transform(fitted);
    let summary = model.summary_json();
    let iterations = summary["iterations"].as_u64();
    let loss = match model.kind() {
        ModelKind::KMeans(m) => Some(m.cost()),
        _ => summary["final_objective"].as_f64(),
    };
    let (algorithm, features) = (model.algorithm(), model.feature_names().join(", "));
    let label = model.label().map(str::to_string);
    crate::catalog::keep(session, &t.name, model).await?;
    if let Some(query) = validation {
        validate(session, &t.name, &query).await?;
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("algorithm", DataType::Utf8, false),
        Field::new("features", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, true),
        Field::new("iterations", DataType::UInt64, true),
        Field::new("loss", DataType::Float64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![t.name.as_str()])),
        Arc::new(StringArray::from(vec![algorithm])),
        Arc::new(StringArray::from(vec![features])),
        Arc::new(StringArray::from(vec![label])),
        Arc::new(UInt64Array::from(vec![iterations])),
        Arc::new(Float64Array::from(vec![loss])),
    ];
    session.from_batches(
        Arc::clone(&schema),
        vec![RecordBatch::try_new(schema, columns)?],
    )
}

/// Evaluates model `name` on the rows of `query` (SQL `EVALUATE`) and records every metric
/// in its training report.
async fn validate(session: &Session, name: &str, query: &str) -> Result<()> {
    let batches = session
        .sql(&format!("SELECT * FROM EVALUATE(MODEL {name}, ({query}))"))
        .await?
        .collect()
        .await?;
    let mut metrics = Vec::new();
    for batch in &batches {
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            if let Some(values) = column.as_any().downcast_ref::<Float64Array>() {
                if let Some(v) = values.iter().flatten().next() {
                    metrics.push((field.name().clone(), v));
                }
            }
        }
    }
    if let Some(model) = session.model(name) {
        let mut report = model.report().cloned().unwrap_or_default();
        report.validation = metrics;
        // Saved again: the catalog's copy carries the report too.
        crate::catalog::keep(session, name, (*model).clone().with_report(Some(report))).await?;
    }
    Ok(())
}

/// The estimator and columns a `TRAIN` statement asks for. The algorithm, and the names,
/// types and ranges of its parameters, are the registry's ([`kiln_ml::registry`]); an error names the
/// parameter at its place in the statement, before any data moves.
fn estimator(t: &TrainModel) -> Result<(Estimator, Columns)> {
    let mut columns = Columns::new();
    if let Some(features) = &t.features {
        columns = columns.features(features.iter().cloned());
    }
    if let Some(label) = &t.label {
        columns = columns.label(label.as_str());
    }
    let spec = registry::find(&t.algorithm).ok_or_else(|| {
        error_at(
            t.algorithm_at,
            format!(
                "unknown algorithm '{}'; known algorithms: {}",
                t.algorithm,
                registry::names()
            ),
        )
    })?;
    let values = t
        .params
        .iter()
        .map(|p| Ok((p.name.clone(), registry_value(p)?)))
        .collect::<Result<Vec<_>>>()?;
    let estimator = spec.estimator(values).map_err(|e| match e {
        MlError::InvalidParameter { name, reason } => {
            match t.params.iter().find(|p| p.name.eq_ignore_ascii_case(&name)) {
                Some(p) => error_at(p.at, reason),
                None => EngineError::Ml(MlError::InvalidParameter { name, reason }),
            }
        }
        other => EngineError::Ml(other),
    })?;
    if !spec.task.supervised() && t.label.is_some() {
        return Err(EngineError::InvalidParameter {
            name: "label",
            reason: format!("{} is unsupervised and takes no LABEL", spec.name),
        });
    }
    Ok((estimator, columns))
}

/// A `TRAIN` parameter's value as the registry takes it: numbers as integers when they are
/// written as one, bracketed lists of bracketed numbers as rows.
fn registry_value(p: &Param) -> Result<RegistryValue> {
    fn number(p: &Param, n: &str) -> Result<f64> {
        n.parse()
            .map_err(|_| error_at(p.at, format!("{} must be a number, got {n}", p.name)))
    }
    Ok(match &p.value {
        ParamValue::Number(n) => match n.parse::<i64>() {
            Ok(i) => RegistryValue::Integer(i),
            Err(_) => RegistryValue::Float(number(p, n)?),
        },
        ParamValue::Text(t) => RegistryValue::Text(t.clone()),
        ParamValue::Bool(b) => RegistryValue::Bool(*b),
        ParamValue::List(rows) => RegistryValue::Matrix(
            rows.iter()
                .map(|row| match row {
                    ParamValue::List(values) => values
                        .iter()
                        .map(|v| match v {
                            ParamValue::Number(n) => number(p, n),
                            other => Err(error_at(
                                p.at,
                                format!("{} must hold rows of numbers, got {other}", p.name),
                            )),
                        })
                        .collect(),
                    other => Err(error_at(
                        p.at,
                        format!("{} must hold rows of numbers, got {other}", p.name),
                    )),
                })
                .collect::<Result<_>>()?,
        ),
    })
}

/// Rewrites the outermost `PREDICT(MODEL ...)` / `EVALUATE(MODEL ...)` calls of `sql` (and,
/// recursively, those in their queries) into plain SQL. EVALUATE's one-row tables are
/// registered under names pushed to `temporary`.
fn rewrite<'a>(
    session: &'a Session,
    sql: &'a str,
    temporary: &'a mut Vec<String>,
) -> BoxFuture<'a, Result<String>> {
    Box::pin(async move {
        let calls = parse::table_calls(sql)?;
        if calls.is_empty() {
            return Ok(sql.to_string());
        }
        let mut out = String::with_capacity(sql.len());
        let mut last = 0;
        for call in calls {
            out.push_str(&sql[last..call.range.start]);
            let Some(model) = session.model(&call.model) else {
                return Err(located(unknown_model(session, &call.model), call.model_at));
            };
            let inner = rewrite(session, &call.query, temporary).await?;
            if call.evaluate {
                let table = evaluate(session, &call.model, &model, &inner).await?;
                out.push_str(&quote_ident(&table));
                temporary.push(table);
            } else {
                // The added columns must not clash with the query's own.
                let schema = session.datafusion_sql(&inner).await?.schema();
                let added: &[&str] = match model.kind() {
                    ModelKind::LogisticRegression(_) => &["prediction", "probability"],
                    _ => &["prediction"],
                };
                if let Some(clash) = added.iter().find(|c| schema.field_with_name(c).is_ok()) {
                    return Err(error_at(
                        call.model_at,
                        format!(
                            "PREDICT(MODEL {}, ...) adds the column '{clash}', which its query \
                             already has: rename it in the query",
                            call.model
                        ),
                    ));
                }
                let transform = session.transform(&call.model);
                out.push_str(&predict_subquery(
                    &call.model,
                    &model,
                    transform.as_deref(),
                    &inner,
                ));
            }
            last = call.range.end;
        }
        out.push_str(&sql[last..]);
        Ok(out)
    })
}

/// An error with the statement position it is about.
fn located(e: EngineError, at: Location) -> EngineError {
    match e {
        EngineError::InvalidParameter { name, reason } => EngineError::InvalidParameter {
            name,
            reason: format!("{reason} (at Line: {}, Column: {})", at.line, at.column),
        },
        other => other,
    }
}

/// `(SELECT *, predict('m', f...) AS prediction [, predict_proba(...) AS probability] FROM
/// (query))`.
fn predict_subquery(
    name: &str,
    model: &Model,
    transform: Option<&SqlTransform>,
    query: &str,
) -> String {
    let mut args = quote_string(name);
    let features: Vec<String> = match transform {
        Some(t) => t.outputs.iter().map(|o| o.sql.clone()).collect(),
        None => model
            .feature_names()
            .iter()
            .map(|f| quote_ident(f))
            .collect(),
    };
    for f in features {
        args.push_str(", ");
        args.push_str(&f);
    }
    let proba = match model.kind() {
        ModelKind::LogisticRegression(_) => format!(", predict_proba({args}) AS probability"),
        _ => String::new(),
    };
    format!("(SELECT *, predict({args}) AS prediction{proba} FROM ({query}) AS __kiln_input)")
}

/// Prediction and probability columns of EVALUATE (names no user column is likely to have).
const PREDICTION: &str = "__kiln_prediction";
const PROBABILITY: &str = "__kiln_probability";

/// EVALUATE: runs `query`, predicts with `model`, computes the model kind's metrics with the
/// same evaluators as the Rust API, and registers the one-row answer under a fresh name.
async fn evaluate(session: &Session, name: &str, model: &Model, query: &str) -> Result<String> {
    if let Some(t) = model.transform() {
        // Evaluate the bare model on the transformed rows, under a name of its own.
        let bare = format!("__kiln_evaluate_{}", crate::context::short_id());
        let bare_model = model.clone().with_transform(None);
        session.register_model(&bare, bare_model.clone());
        let transformed = t.select(query, model.label());
        let result = Box::pin(evaluate(session, &bare, &bare_model, &transformed)).await;
        session.deregister_model(&bare);
        return result;
    }
    let df = session.datafusion_sql(query).await?;
    let label = model.label().unwrap_or("label").to_string();
    let mut metrics: Vec<(&str, f64)> = Vec::new();
    match model.kind() {
        ModelKind::KMeans(km) => {
            let features = Columns::new().features(model.feature_names().iter().cloned());
            let predicted = materialize(
                df.clone().predict(name, PREDICTION)?,
                model
                    .feature_names()
                    .iter()
                    .map(String::as_str)
                    .chain([PREDICTION]),
            )
            .await?;
            let silhouette = Evaluator::silhouette(features.clone())
                .prediction_col(PREDICTION)
                .evaluate(&predicted)
                .await?;
            metrics.push(("sse", kmeans_cost(&df, &features, km.centers()).await?));
            metrics.push(("silhouette", silhouette));
        }
        ModelKind::LinearRegression(_) => {
            let predicted =
                materialize(df.predict(name, PREDICTION)?, [label.as_str(), PREDICTION]).await?;
            for (metric, key) in [
                (RegressionMetric::Rmse, "rmse"),
                (RegressionMetric::Mse, "mse"),
                (RegressionMetric::Mae, "mae"),
                (RegressionMetric::R2, "r2"),
            ] {
                let value = Evaluator::regression(metric)
                    .label_col(label.as_str())
                    .prediction_col(PREDICTION)
                    .evaluate(&predicted)
                    .await?;
                metrics.push((key, value));
            }
        }
        ModelKind::LogisticRegression(lr) => {
            let predicted = materialize(
                df.predict(name, PREDICTION)?
                    .predict_proba(name, PROBABILITY)?,
                [label.as_str(), PREDICTION, PROBABILITY],
            )
            .await?;
            let mut wanted = vec![
                (ClassificationMetric::Accuracy, "accuracy"),
                (
                    ClassificationMetric::Precision(Average::Weighted),
                    "precision",
                ),
                (ClassificationMetric::Recall(Average::Weighted), "recall"),
                (ClassificationMetric::F1(Average::Weighted), "f1"),
                (ClassificationMetric::LogLoss, "log_loss"),
            ];
            if lr.num_classes() == 2 {
                wanted.push((ClassificationMetric::AreaUnderRoc, "roc_auc"));
            }
            for (metric, key) in wanted {
                let value = Evaluator::classification(metric)
                    .label_col(label.as_str())
                    .prediction_col(PREDICTION)
                    .probability_col(PROBABILITY)
                    .evaluate(&predicted)
                    .await?;
                metrics.push((key, value));
            }
        }
    }
    let schema = Arc::new(Schema::new(
        metrics
            .iter()
            .map(|(k, _)| Field::new(*k, DataType::Float64, false))
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = metrics
        .iter()
        .map(|(_, v)| Arc::new(Float64Array::from(vec![*v])) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let table = format!("__kiln_evaluate_{}", uuid::Uuid::new_v4().simple());
    session.datafusion_context().register_table(
        table.as_str(),
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(table)
}

/// Runs `df` once, keeping only `columns`, so that several metrics read it without running
/// the query again.
async fn materialize<'a>(
    df: DataFrame,
    columns: impl IntoIterator<Item = &'a str>,
) -> Result<DataFrame> {
    let columns: Vec<&str> = columns.into_iter().collect();
    let df = df.select_columns(&columns)?;
    let schema = df.schema();
    let batches = df.collect().await?;
    df.session().from_batches(schema, batches)
}

/// The k-means cost (sum of squared distances to the nearest centre) of `df`, with the same
/// distributed kernel training uses.
async fn kmeans_cost(df: &DataFrame, features: &Columns, centers: &[Vec<f64>]) -> Result<f64> {
    let data = df.cache_training(features, false, Precision::F64).await?;
    let kernel = Kernel::KMeans(KMeansKernel::Cost(CenterSet::from_rows(centers)?));
    let partial = data.run_round(&kernel).await;
    data.unpersist().await?;
    match partial? {
        Partial::KMeans(KMeansPartial::Cost(cost)) => Ok(cost),
        other => Err(EngineError::Internal(format!(
            "a cost kernel answered {other:?}"
        ))),
    }
}

/// A table of text columns; an empty string is a null (a model without a label, ...).
fn text_table(session: &Session, names: &[&str], rows: Vec<Vec<String>>) -> Result<DataFrame> {
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|c| {
            Arc::new(StringArray::from_iter(
                rows.iter()
                    .map(|r| r.get(c).map(String::as_str).filter(|v| !v.is_empty())),
            )) as ArrayRef
        })
        .collect();
    session.from_batches(
        Arc::clone(&schema),
        vec![RecordBatch::try_new(schema, columns)?],
    )
}

/// Kiln's SQL, as a session method: written here, above the session.
impl Session {
    /// Runs one SQL statement: DataFusion's SQL plus Kiln's dialect (`TRAIN MODEL`,
    /// `CREATE MODEL`, `PREDICT(MODEL m, (query))`, `EVALUATE(MODEL m, (query))`, `SHOW MODELS`,
    /// `DESCRIBE MODEL`, `DROP MODEL`, `SAVE MODEL`, `LOAD MODEL`, `EXPLAIN TRAIN`; see
    /// [`crate::sql`]). Queries are lazy: nothing runs until an action on the returned
    /// DataFrame. DDL (`CREATE VIEW`, `CREATE EXTERNAL TABLE`, ...) and Kiln's statements take
    /// effect at once; those answer with a small table (the trained model's summary, the list
    /// of models, ...).
    ///
    /// # Errors
    /// [`EngineError::SqlSyntax`] with the position of a syntax error; planning errors such as
    /// [`EngineError::UnknownColumn`].
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        let df = crate::scheduler::described(
            std::sync::Arc::from(sql.trim()),
            crate::panic::guard(
                || format!("planning `{}`", crate::panic::statement_text(sql)),
                || crate::panic::statement_files(sql),
                crate::sql::run(self, sql),
            ),
        )
        .await?;
        Ok(df.with_origin(sql.trim()))
    }
}
