//! `TRANSFORM (expr AS name, ...)`: feature preprocessing fitted with a model (see [`SqlTransform`]).

use arrow::array::{Array, Float64Array, StringArray};
use datafusion::sql::sqlparser::tokenizer::{Location, Token};

use super::parse::{call_arguments, error_at, tokens, TransformItem};
use crate::dataframe::DataFrame;
use crate::error::{EngineError, Result};
use crate::session::Session;

pub use kiln_ml::model::{InputTransform as SqlTransform, TransformOutput, TRANSFORM_FILE};

/// Most categories `string_indexer` and `one_hot_encoder` fit.
const MAX_CATEGORIES: usize = 1000;

// `TRANSFORM (expr AS name, ...)`: feature preprocessing fitted with a model and applied
// wherever the model predicts. The fitted transform is kiln-ml's `InputTransform` (kept in the
// model, written as `transform.json` in its directory); this module fits it and applies it.
//
// Each item is a plain SQL expression over the training query's columns, or one of these
// transformers of an expression, fitted on the training data:
//
// | item | fitted | becomes |
// |---|---|---|
// | `standard_scaler(e)` | mean, sample standard deviation | `(e - mean) / std` (0 when `std` is 0) |
// | `min_max_scaler(e)` | min, max | `(e - min) / (max - min)` (0.5 when they are equal) |
// | `imputer(e [, 'mean' \| 'median'])` | the mean (median) of `e` | `coalesce(e, surrogate)` |
// | `string_indexer(e)` | the values of `e`, most frequent first (ties by value) | the value's index, `NULL` for a value not seen |
// | `one_hot_encoder(e)` | the values, as `string_indexer` | one column `name_value` per value: 1 where `e` is the value, else 0 |
//
// A fitted transform is a list of SQL expressions over the raw columns it reads, its
// *inputs*, with the fitted numbers written in as literals (in their shortest round-tripping
// form, so they read back bit for bit). The model trains on the outputs; predicting runs the
// same expressions first: `PREDICT(MODEL m, (q))` and `EVALUATE` over `q`'s columns by name,
// `predict(m, a, b)` with its arguments in the place of the inputs, in their order (as
// `DESCRIBE MODEL` lists them), and the Rust API's `DataFrame::predict` by name.

/// The transformers a `TRANSFORM` item may call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    StandardScaler,
    MinMaxScaler,
    Imputer,
    StringIndexer,
    OneHotEncoder,
}

/// Fits `items` on the rows of `query`.
///
/// # Errors
/// A malformed item (naming its position), a transformer with nothing to fit on, an
/// expression DataFusion cannot plan, or two outputs with the same name.
pub(crate) async fn fit(
    session: &Session,
    items: &[TransformItem],
    query: &str,
) -> Result<SqlTransform> {
    let schema = session.sql(query).await?.schema();
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut inputs: Vec<String> = Vec::new();
    let mut outputs: Vec<TransformOutput> = Vec::new();
    for item in items {
        let (kind, inner, option) = split_call(item)?;
        let inner = canonical(&inner, &columns, &mut inputs)?;
        if !matches!(kind, Kind::StringIndexer | Kind::OneHotEncoder) {
            numeric(session, query, &inner, item).await?;
        }
        let value = format!("CAST(({inner}) AS DOUBLE)");
        let mut add = |name: String, sql: String| -> Result<()> {
            if outputs.iter().any(|o| o.name == name) {
                return Err(error_at(
                    item.at,
                    format!("TRANSFORM names the column '{name}' twice"),
                ));
            }
            outputs.push(TransformOutput { name, sql });
            Ok(())
        };
        match kind {
            Kind::Plain => add(item.name.clone(), value)?,
            Kind::StandardScaler => {
                let s = stats(session, query, &value, "avg(v), stddev_samp(v)", item).await?;
                let sql = match s[1] {
                    Some(std) if std > 0.0 => {
                        format!("(({value} - {}) / {})", literal(s[0]), literal(Some(std)))
                    }
                    _ => format!("({value} * 0.0)"),
                };
                add(item.name.clone(), sql)?;
            }
            Kind::MinMaxScaler => {
                let s = stats(session, query, &value, "min(v), max(v)", item).await?;
                let (lo, hi) = (s[0].unwrap_or(0.0), s[1].unwrap_or(0.0));
                let sql = if hi > lo {
                    format!(
                        "(({value} - {}) / {})",
                        literal(Some(lo)),
                        literal(Some(hi - lo))
                    )
                } else {
                    format!("({value} * 0.0 + 0.5)")
                };
                add(item.name.clone(), sql)?;
            }
            Kind::Imputer => {
                let strategy = option.as_deref().unwrap_or("mean").to_ascii_lowercase();
                let aggregate = match strategy.as_str() {
                    "mean" => "avg(v)",
                    "median" => "median(v)",
                    other => {
                        return Err(error_at(
                            item.at,
                            format!("imputer strategy must be 'mean' or 'median', got '{other}'"),
                        ))
                    }
                };
                let s = stats(session, query, &value, aggregate, item).await?;
                add(
                    item.name.clone(),
                    format!("coalesce({value}, {})", literal(s[0])),
                )?;
            }
            Kind::StringIndexer | Kind::OneHotEncoder => {
                let text = format!("CAST(({inner}) AS VARCHAR)");
                let labels = categories(session, query, &text, item).await?;
                if kind == Kind::StringIndexer {
                    let mut sql = format!("CASE {text}");
                    for (i, l) in labels.iter().enumerate() {
                        sql.push_str(&format!(" WHEN {} THEN {i}.0", quote_string(l)));
                    }
                    sql.push_str(" END");
                    add(item.name.clone(), sql)?;
                } else {
                    for l in &labels {
                        add(
                            format!("{}_{l}", item.name),
                            format!(
                                "CASE WHEN {text} = {} THEN 1.0 ELSE 0.0 END",
                                quote_string(l)
                            ),
                        )?;
                    }
                }
            }
        }
    }
    Ok(SqlTransform {
        inputs,
        outputs,
        written: items
            .iter()
            .map(|i| format!("{} AS {}", i.expr, i.name))
            .collect(),
    })
}

/// How the engine applies a fitted [`SqlTransform`].
pub(crate) trait ApplyTransform {
    /// `SELECT <outputs> [, label] FROM (query)`: the rows the model trains or is evaluated on.
    fn select(&self, query: &str, keep: Option<&str>) -> String;

    /// The outputs' expressions with `args` (SQL text, one per input, in order) in the place
    /// of the inputs: the arguments `predict(m, args...)` passes the model.
    ///
    /// # Errors
    /// A number of arguments other than the number of inputs.
    fn substitute(&self, model: &str, args: &[String], at: Location) -> Result<Vec<String>>;

    /// The outputs as DataFusion expressions over `df`'s columns.
    ///
    /// # Errors
    /// An input missing from `df`.
    fn exprs(&self, df: &DataFrame) -> Result<Vec<datafusion::prelude::Expr>>;
}

impl ApplyTransform for SqlTransform {
    fn select(&self, query: &str, keep: Option<&str>) -> String {
        let mut items: Vec<String> = self
            .outputs
            .iter()
            .map(|o| format!("{} AS {}", o.sql, quote_ident(&o.name)))
            .collect();
        if let Some(label) = keep {
            items.push(quote_ident(label));
        }
        format!(
            "SELECT {} FROM ({query}) AS __kiln_transform_input",
            items.join(", ")
        )
    }

    fn substitute(&self, model: &str, args: &[String], at: Location) -> Result<Vec<String>> {
        if args.len() != self.inputs.len() {
            return Err(error_at(
                at,
                format!(
                    "predict({model}, ...) takes the {} column(s) its TRANSFORM reads ({}), got {}",
                    self.inputs.len(),
                    self.inputs.join(", "),
                    args.len()
                ),
            ));
        }
        self.outputs
            .iter()
            .map(|o| {
                let toks = tokens(&o.sql)?;
                let mut out = String::with_capacity(o.sql.len());
                let mut last = 0;
                for t in &toks {
                    if let Token::Word(w) = &t.token {
                        if w.quote_style == Some('"') {
                            if let Some(i) = self.inputs.iter().position(|c| *c == w.value) {
                                out.push_str(&o.sql[last..t.start]);
                                out.push('(');
                                out.push_str(&args[i]);
                                out.push(')');
                                last = t.end;
                            }
                        }
                    }
                }
                out.push_str(&o.sql[last..]);
                Ok(out)
            })
            .collect()
    }

    fn exprs(&self, df: &DataFrame) -> Result<Vec<datafusion::prelude::Expr>> {
        self.outputs
            .iter()
            .map(|o| Ok(df.inner().parse_sql_expr(&o.sql)?))
            .collect()
    }
}

/// The transformer an item calls (or [`Kind::Plain`]), its first argument's text, and its
/// second argument (a quoted option) if any.
fn split_call(item: &TransformItem) -> Result<(Kind, String, Option<String>)> {
    let toks = tokens(&item.expr)?;
    let plain = Ok((Kind::Plain, item.expr.clone(), None));
    let Some(first) = toks.first() else {
        return plain;
    };
    let kind = match &first.token {
        Token::Word(w) if w.quote_style.is_none() => match w.value.to_ascii_lowercase().as_str() {
            "standard_scaler" => Kind::StandardScaler,
            "min_max_scaler" => Kind::MinMaxScaler,
            "imputer" => Kind::Imputer,
            "string_indexer" => Kind::StringIndexer,
            "one_hot_encoder" => Kind::OneHotEncoder,
            _ => return plain,
        },
        _ => return plain,
    };
    // A call only when its parentheses span the whole item (not `f(a) + f(b)`).
    let is_open = toks.get(1).is_some_and(|t| t.token == Token::LParen);
    let Some((args, close)) = is_open
        .then(|| call_arguments(&item.expr, &toks, 1))
        .flatten()
    else {
        return plain;
    };
    if close + 1 != toks.len() {
        return plain;
    }
    let name = match &first.token {
        Token::Word(w) => w.value.to_ascii_lowercase(),
        _ => String::new(),
    };
    let takes = if kind == Kind::Imputer { 2 } else { 1 };
    if args.is_empty() || args[0].is_empty() || args.len() > takes {
        return Err(error_at(
            item.at,
            format!(
                "{name} takes {}, got {} argument(s)",
                if takes == 1 {
                    "one expression"
                } else {
                    "an expression and an optional strategy"
                },
                args.len()
            ),
        ));
    }
    let option = match args.get(1) {
        None => None,
        Some(text) => {
            let t = tokens(text)?;
            match t.as_slice() {
                [only] => match &only.token {
                    Token::SingleQuotedString(s) => Some(s.clone()),
                    _ => None,
                },
                _ => None,
            }
            .map(Some)
            .ok_or_else(|| {
                error_at(
                    item.at,
                    format!("{name}'s strategy must be a quoted word, got {text}"),
                )
            })?
        }
    };
    Ok((kind, args[0].clone(), option))
}

/// `expr` with every column of `columns` it names written as a double-quoted identifier;
/// adds the columns to `inputs` (first use first).
fn canonical(expr: &str, columns: &[String], inputs: &mut Vec<String>) -> Result<String> {
    let toks = tokens(expr)?;
    let mut out = String::with_capacity(expr.len() + 8);
    let mut last = 0;
    for (i, t) in toks.iter().enumerate() {
        let Token::Word(w) = &t.token else {
            continue;
        };
        let called = toks.get(i + 1).is_some_and(|n| n.token == Token::LParen);
        let qualified = i > 0 && toks[i - 1].token == Token::Period;
        if called || qualified {
            continue;
        }
        let name = match w.quote_style {
            None => w.value.to_ascii_lowercase(),
            Some(_) => w.value.clone(),
        };
        let Some(column) = columns
            .iter()
            .find(|c| **c == name || (w.quote_style.is_none() && c.eq_ignore_ascii_case(&name)))
        else {
            continue;
        };
        if !inputs.contains(column) {
            inputs.push(column.clone());
        }
        out.push_str(&expr[last..t.start]);
        out.push_str(&quote_ident(column));
        last = t.end;
    }
    out.push_str(&expr[last..]);
    Ok(out)
}

/// Refuses an item whose expression is not a number, naming it.
async fn numeric(session: &Session, query: &str, inner: &str, item: &TransformItem) -> Result<()> {
    let sql = format!("SELECT {inner} AS v FROM ({query}) AS __kiln_fit");
    let schema = session.sql(&sql).await?.schema();
    let Some(field) = schema.fields().first() else {
        return Ok(());
    };
    let t = field.data_type();
    if t.is_numeric()
        || *t == arrow::datatypes::DataType::Boolean
        || *t == arrow::datatypes::DataType::Null
    {
        return Ok(());
    }
    Err(error_at(
        item.at,
        format!(
            "TRANSFORM {} AS {}: the expression is {t}, not a number; encode text with string_indexer(...) or one_hot_encoder(...)",
            item.expr, item.name
        ),
    ))
}

/// One row of aggregates (`select`, over `v`) of `value` on the rows of `query`.
async fn stats(
    session: &Session,
    query: &str,
    value: &str,
    select: &str,
    item: &TransformItem,
) -> Result<Vec<Option<f64>>> {
    let sql = format!(
        "SELECT {select} FROM (SELECT {value} AS v FROM ({query}) AS __kiln_fit) AS __kiln_v"
    );
    let batches = session.sql(&sql).await?.collect().await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Err(nothing_to_fit(item));
    };
    let mut out = Vec::new();
    for c in batch.columns() {
        let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Float64)?;
        let v = c.as_any().downcast_ref::<Float64Array>();
        out.push(v.filter(|v| v.is_valid(0)).map(|v| v.value(0)));
    }
    if out.first().is_none_or(|v| v.is_none_or(|v| !v.is_finite())) {
        return Err(nothing_to_fit(item));
    }
    Ok(out)
}

fn nothing_to_fit(item: &TransformItem) -> EngineError {
    error_at(
        item.at,
        format!(
            "TRANSFORM {} AS {}: the training query has no non-null value to fit it on",
            item.expr, item.name
        ),
    )
}

/// The distinct non-null values of `text` on the rows of `query`, most frequent first.
async fn categories(
    session: &Session,
    query: &str,
    text: &str,
    item: &TransformItem,
) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT v FROM (SELECT {text} AS v FROM ({query}) AS __kiln_fit) AS __kiln_v \
         WHERE v IS NOT NULL GROUP BY v ORDER BY count(*) DESC, v LIMIT {}",
        MAX_CATEGORIES + 1
    );
    let mut labels = Vec::new();
    for batch in session.sql(&sql).await?.collect().await? {
        let v = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?;
        if let Some(v) = v.as_any().downcast_ref::<StringArray>() {
            labels.extend(v.iter().flatten().map(str::to_string));
        }
    }
    if labels.is_empty() {
        return Err(nothing_to_fit(item));
    }
    if labels.len() > MAX_CATEGORIES {
        return Err(error_at(
            item.at,
            format!(
                "{} has more than {MAX_CATEGORIES} distinct values to encode",
                item.expr
            ),
        ));
    }
    Ok(labels)
}

/// A float as SQL that reads back to the same bits.
fn literal(v: Option<f64>) -> String {
    match v {
        Some(v) if v < 0.0 => format!("({v:?})"),
        Some(v) => format!("{v:?}"),
        None => "NULL".into(),
    }
}

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a SQL string literal.
pub(crate) fn quote_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `sql` with the arguments of every `predict('m', ...)` / `predict_proba('m', ...)` whose
/// model has a `TRANSFORM` replaced by the transform's outputs computed from them (see
/// [`ApplyTransform::substitute`]). Runs after
/// [`quote_model_arguments`](super::parse::quote_model_arguments), so the model is a string.
///
/// # Errors
/// A call with a number of arguments other than the transform's inputs.
pub(crate) fn transform_predict_arguments(
    sql: &str,
    transform: impl Fn(&str) -> Option<std::sync::Arc<SqlTransform>>,
) -> Result<String> {
    let toks = tokens(sql)?;
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    let mut i = 0;
    while i + 2 < toks.len() {
        let is_predict = matches!(&toks[i].token, Token::Word(f) if f.quote_style.is_none()
            && (f.value.eq_ignore_ascii_case("predict") || f.value.eq_ignore_ascii_case("predict_proba")));
        let found = match (&toks[i + 1].token, &toks[i + 2].token) {
            (Token::LParen, Token::SingleQuotedString(m)) if is_predict => {
                transform(m).map(|t| (m.clone(), t))
            }
            _ => None,
        };
        let Some((model, t)) = found else {
            i += 1;
            continue;
        };
        // The arguments after the model, to the call's closing parenthesis.
        let Some((mut args, close)) = call_arguments(sql, &toks, i + 1) else {
            return Err(error_at(toks[i].at, "predict(...) is not closed"));
        };
        args.remove(0);
        let replaced = ApplyTransform::substitute(t.as_ref(), &model, &args, toks[i].at)?;
        out.push_str(&sql[last..toks[i + 2].end]);
        for r in replaced {
            out.push_str(", ");
            out.push_str(&r);
        }
        out.push(')');
        last = toks[close].end;
        i = close + 1;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn item(expr: &str, name: &str) -> TransformItem {
        TransformItem {
            expr: expr.into(),
            name: name.into(),
            at: Location::new(1, 1),
        }
    }

    #[test]
    fn columns_become_quoted_inputs_in_order_of_use() {
        let columns = vec!["a".to_string(), "Size".to_string(), "b".to_string()];
        let mut inputs = Vec::new();
        let out = canonical(
            "log(b) + A * \"Size\" - CAST(a AS DOUBLE) + t.b + 'a'",
            &columns,
            &mut inputs,
        )
        .unwrap();
        assert_eq!(
            out,
            "log(\"b\") + \"a\" * \"Size\" - CAST(\"a\" AS DOUBLE) + t.b + 'a'"
        );
        assert_eq!(inputs, ["b", "a", "Size"]);
    }

    #[test]
    fn transformer_calls_are_recognised_with_their_arguments() {
        let (k, inner, opt) = split_call(&item("imputer(coalesce(a, b), 'median')", "x")).unwrap();
        assert_eq!(
            (k, inner.as_str(), opt.as_deref()),
            (Kind::Imputer, "coalesce(a, b)", Some("median"))
        );
        let (k, inner, _) = split_call(&item("standard_scaler(a) + 1", "x")).unwrap();
        assert_eq!((k, inner.as_str()), (Kind::Plain, "standard_scaler(a) + 1"));
        let err = split_call(&item("min_max_scaler(a, b)", "x")).unwrap_err();
        assert!(
            err.to_string()
                .contains("min_max_scaler takes one expression, got 2"),
            "{err}"
        );
        let err = split_call(&item("imputer(a, mean)", "x")).unwrap_err();
        assert!(
            err.to_string().contains("strategy must be a quoted word"),
            "{err}"
        );
    }

    #[test]
    fn arguments_replace_the_inputs() {
        let t = SqlTransform {
            inputs: vec!["a".into(), "b".into()],
            outputs: vec![TransformOutput {
                name: "x".into(),
                sql: "((CAST((\"a\" * \"b\") AS DOUBLE) - 1.5) / 2.0)".into(),
            }],
            written: vec![],
        };
        let got = t
            .substitute("m", &["t.p + 1".into(), "q".into()], Location::new(1, 1))
            .unwrap();
        assert_eq!(got, ["((CAST(((t.p + 1) * (q)) AS DOUBLE) - 1.5) / 2.0)"]);
        let err = t
            .substitute("m", &["p".into()], Location::new(1, 1))
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("takes the 2 column(s) its TRANSFORM reads (a, b), got 1"));
    }

    #[test]
    fn literals_read_back_to_the_same_bits() {
        for v in [0.1, -2.5e-7, 1e300, 3.0, -0.0] {
            let text = literal(Some(v));
            let back: f64 = text.trim_matches(|c| c == '(' || c == ')').parse().unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{text}");
        }
    }
}
