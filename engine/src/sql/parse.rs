//! Recognizing Kiln's statements in SQL text, with positions for errors.
//!
//! Kiln's dialect adds a few statements (`TRAIN MODEL`, `CREATE MODEL`, `SHOW MODELS`, ...) and
//! two table functions (`PREDICT(MODEL m, (query))`, `EVALUATE(MODEL m, (query))`) to
//! DataFusion's SQL. The text is tokenized with DataFusion's own SQL tokenizer, so strings,
//! quoted identifiers and comments are understood exactly as DataFusion understands them;
//! statements that are not Kiln's are handed to DataFusion unchanged.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::error::{EngineError, Result};

/// A token of the input with its place (whitespace and comments dropped).
#[derive(Debug, Clone)]
pub(crate) struct Tok {
    pub(crate) token: Token,
    /// Byte offset of the token's first character.
    pub(crate) start: usize,
    /// Byte offset just past the token.
    pub(crate) end: usize,
    /// Line and column (1-based) of the first character, for messages.
    pub(crate) at: Location,
}

/// The input's tokens, whitespace and comments dropped.
///
/// # Errors
/// [`EngineError::SqlSyntax`] for text the tokenizer rejects (an unterminated string, ...).
pub(crate) fn tokens(sql: &str) -> Result<Vec<Tok>> {
    let raw: Vec<TokenWithSpan> = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| EngineError::SqlSyntax(e.to_string()))?;
    let lines = LineIndex::new(sql);
    Ok(raw
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map(|t| Tok {
            start: lines.offset(sql, t.span.start),
            end: lines.offset(sql, t.span.end),
            at: t.span.start,
            token: t.token,
        })
        .collect())
}

/// Byte offsets of line starts, to turn the tokenizer's (line, column) into offsets.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(sql: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Self(starts)
    }

    fn offset(&self, sql: &str, at: Location) -> usize {
        let Some(&line_start) = usize::try_from(at.line)
            .ok()
            .and_then(|l| l.checked_sub(1))
            .and_then(|l| self.0.get(l))
        else {
            return sql.len();
        };
        let column = usize::try_from(at.column).unwrap_or(1).saturating_sub(1);
        sql[line_start..]
            .char_indices()
            .nth(column)
            .map_or(sql.len(), |(i, _)| line_start + i)
    }
}

/// Splits a script into statements at the semicolons outside strings, identifiers and
/// comments; empty statements are dropped.
///
/// # Errors
/// [`EngineError::SqlSyntax`] for text the tokenizer rejects (an unterminated string, ...).
pub fn split_statements(sql: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut start = 0;
    for t in tokens(sql)? {
        if t.token == Token::SemiColon {
            push_statement(&mut out, &sql[start..t.start]);
            start = t.end;
        }
    }
    push_statement(&mut out, &sql[start..]);
    Ok(out)
}

fn push_statement(out: &mut Vec<String>, text: &str) {
    // A piece holding only comments is no statement.
    if tokens(text).is_ok_and(|t| !t.is_empty()) {
        out.push(text.trim().to_string());
    }
}

/// A statement of Kiln's dialect.
#[derive(Debug, Clone, PartialEq)]
pub enum KilnStatement {
    /// `TRAIN MODEL ...` or `CREATE [OR REPLACE] MODEL ...`.
    Train(TrainModel),
    /// `EXPLAIN TRAIN MODEL ...`: the plan of the training, without running it.
    ExplainTrain(TrainModel),
    /// `EXPLAIN ANALYZE TRAIN MODEL ...`: trains (and keeps) the model, then shows its
    /// training report.
    ExplainAnalyzeTrain(TrainModel),
    /// `SHOW MODELS`.
    ShowModels,
    /// `SHOW ALGORITHMS`: every registered algorithm's parameters.
    ShowAlgorithms,
    /// `DESCRIBE MODEL name`.
    DescribeModel(String),
    /// `DROP MODEL [IF EXISTS] name`.
    DropModel {
        /// The model.
        name: String,
        /// Whether a missing model is fine.
        if_exists: bool,
    },
    /// `SAVE MODEL name TO 'url'`.
    SaveModel {
        /// The model.
        name: String,
        /// Where to write it: a directory or an object store URL.
        url: String,
    },
    /// `LOAD MODEL name FROM 'url'`.
    LoadModel {
        /// The name to register it under.
        name: String,
        /// Where to read it from.
        url: String,
    },
    /// `SET kiln.key = value` (or `TO value`); `SET datafusion.*` is DataFusion's.
    Set {
        /// The setting, lower case (`kiln.executors`).
        key: String,
        /// The value as written (quotes removed).
        value: String,
    },
    /// `SHOW ALL [VERBOSE]`: every setting with its value and source.
    ShowAll {
        /// Whether to add each setting's description.
        verbose: bool,
    },
    /// `SHOW kiln.key`.
    Show(String),
}

/// A `TRAIN MODEL` / `CREATE MODEL` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainModel {
    /// The model's name.
    pub name: String,
    /// Whether an existing model of that name may be replaced (`TRAIN MODEL` and `CREATE OR
    /// REPLACE MODEL` replace; `CREATE MODEL` does not).
    pub replace: bool,
    /// The algorithm as written.
    pub algorithm: String,
    /// Where the algorithm was named.
    pub algorithm_at: Location,
    /// Hyper-parameters in the order written.
    pub params: Vec<Param>,
    /// The label column, if given.
    pub label: Option<String>,
    /// The feature columns, if given (otherwise every numeric column but the label, or every
    /// output of `TRANSFORM`).
    pub features: Option<Vec<String>>,
    /// The `TRANSFORM (expr AS name, ...)` items, in order (empty without the clause).
    pub transform: Vec<TransformItem>,
    /// The training query.
    pub query: String,
}

/// One `expr AS name` of a `TRANSFORM` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformItem {
    /// The expression as written.
    pub expr: String,
    /// The output column.
    pub name: String,
    /// Where the expression starts.
    pub at: Location,
}

/// One `name = value` hyper-parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The name, lower case.
    pub name: String,
    /// The value.
    pub value: ParamValue,
    /// Where the parameter was written.
    pub at: Location,
}

/// A literal hyper-parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A number as written.
    Number(String),
    /// A string (or a bare word such as `lbfgs`).
    Text(String),
    /// `TRUE` / `FALSE`.
    Bool(bool),
    /// A bracketed list, `['a', 'b']`.
    List(Vec<ParamValue>),
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Number(n) => f.write_str(n),
            ParamValue::Text(t) => write!(f, "'{t}'"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// A syntax error at `at`, in the form DataFusion's parser uses.
pub(crate) fn error_at(at: Location, message: impl std::fmt::Display) -> EngineError {
    EngineError::SqlSyntax(format!(
        "{message} at Line: {}, Column: {}",
        at.line, at.column
    ))
}

/// The statement if it is one of Kiln's, `None` for SQL that DataFusion handles.
///
/// # Errors
/// [`EngineError::SqlSyntax`] naming the position of a malformed Kiln statement.
pub fn parse_kiln_statement(sql: &str) -> Result<Option<KilnStatement>> {
    let toks = tokens(sql)?;
    let mut p = Parser {
        sql,
        toks: &toks,
        pos: 0,
    };
    let analyze = p.peek_words(&["EXPLAIN", "ANALYZE", "TRAIN"]);
    let explain = analyze || p.peek_words(&["EXPLAIN", "TRAIN"]);
    if explain {
        p.pos += if analyze { 2 } else { 1 };
    }
    let statement = if p.peek_words(&["TRAIN", "MODEL"]) {
        p.pos += 2;
        p.train(true)?
    } else if p.peek_words(&["CREATE", "MODEL"])
        || p.peek_words(&["CREATE", "OR", "REPLACE", "MODEL"])
    {
        let replace = p.peek_words(&["CREATE", "OR"]);
        p.pos += if replace { 4 } else { 2 };
        p.create_model(replace)?
    } else if p.peek_words(&["SHOW", "MODELS"]) {
        p.pos += 2;
        KilnStatement::ShowModels
    } else if p.peek_words(&["SHOW", "ALGORITHMS"]) {
        p.pos += 2;
        KilnStatement::ShowAlgorithms
    } else if p.peek_words(&["DESCRIBE", "MODEL"]) || p.peek_words(&["DESC", "MODEL"]) {
        p.pos += 2;
        KilnStatement::DescribeModel(p.ident("a model name")?)
    } else if p.peek_words(&["DROP", "MODEL"]) {
        p.pos += 2;
        let if_exists = p.peek_words(&["IF", "EXISTS"]);
        if if_exists {
            p.pos += 2;
        }
        KilnStatement::DropModel {
            name: p.ident("a model name")?,
            if_exists,
        }
    } else if p.peek_words(&["SAVE", "MODEL"]) {
        p.pos += 2;
        let name = p.ident("a model name")?;
        p.expect_word("TO")?;
        KilnStatement::SaveModel {
            name,
            url: p.string("a quoted location")?,
        }
    } else if p.peek_words(&["LOAD", "MODEL"]) {
        p.pos += 2;
        let name = p.ident("a model name")?;
        p.expect_word("FROM")?;
        KilnStatement::LoadModel {
            name,
            url: p.string("a quoted location")?,
        }
    } else if p.peek_words(&["SET", "KILN"]) || p.peek_words(&["SET", "SESSION", "KILN"]) {
        p.pos += if p.peek_words(&["SET", "SESSION"]) {
            2
        } else {
            1
        };
        let key = p.setting_name()?;
        if !p.eat(&Token::Eq) {
            p.expect_word("TO")?;
        }
        let at = p.here();
        let value = match p.value()? {
            ParamValue::Number(n) | ParamValue::Text(n) => n,
            ParamValue::Bool(b) => b.to_string(),
            ParamValue::List(_) => {
                return Err(error_at(at, "a setting takes one value, not a list"));
            }
        };
        KilnStatement::Set { key, value }
    } else if p.peek_words(&["SHOW", "ALL"]) {
        p.pos += 2;
        let verbose = p.peek_words(&["VERBOSE"]);
        if verbose {
            p.pos += 1;
        }
        KilnStatement::ShowAll { verbose }
    } else if p.peek_words(&["SHOW", "KILN"]) {
        p.pos += 1;
        KilnStatement::Show(p.setting_name()?)
    } else {
        return Ok(None);
    };
    if explain {
        return match statement {
            KilnStatement::Train(t) if analyze => Ok(Some(KilnStatement::ExplainAnalyzeTrain(t))),
            KilnStatement::Train(t) => Ok(Some(KilnStatement::ExplainTrain(t))),
            _ => Ok(None),
        };
    }
    p.end()?;
    Ok(Some(statement))
}

/// A cursor over the tokens of one statement.
struct Parser<'a> {
    sql: &'a str,
    toks: &'a [Tok],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    /// Where the next token is, or the end of the input.
    fn here(&self) -> Location {
        match self.peek() {
            Some(t) => t.at,
            None => end_location(self.sql),
        }
    }

    fn word_at(&self, i: usize) -> Option<&str> {
        match self.toks.get(i).map(|t| &t.token) {
            Some(Token::Word(w)) if w.quote_style.is_none() => Some(&w.value),
            _ => None,
        }
    }

    /// Whether the next tokens are these (unquoted, any case) words.
    fn peek_words(&self, words: &[&str]) -> bool {
        words.iter().enumerate().all(|(i, w)| {
            self.word_at(self.pos + i)
                .is_some_and(|v| v.eq_ignore_ascii_case(w))
        })
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(t) => format!("found '{}'", t.token),
            None => "found the end of the statement".into(),
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<()> {
        if self.peek_words(&[word]) {
            self.pos += 1;
            Ok(())
        } else {
            Err(error_at(
                self.here(),
                format!("expected {word}, {}", self.found()),
            ))
        }
    }

    fn expect(&mut self, token: &Token) -> Result<()> {
        if self.peek().is_some_and(|t| &t.token == token) {
            self.pos += 1;
            Ok(())
        } else {
            Err(error_at(
                self.here(),
                format!("expected '{token}', {}", self.found()),
            ))
        }
    }

    fn eat(&mut self, token: &Token) -> bool {
        let hit = self.peek().is_some_and(|t| &t.token == token);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// An identifier: a bare word (kept as written) or a quoted one.
    fn ident(&mut self, what: &str) -> Result<String> {
        match self.peek().map(|t| &t.token) {
            Some(Token::Word(w)) => {
                let v = w.value.clone();
                self.pos += 1;
                Ok(v)
            }
            _ => Err(error_at(
                self.here(),
                format!("expected {what}, {}", self.found()),
            )),
        }
    }

    fn string(&mut self, what: &str) -> Result<String> {
        match self.peek().map(|t| &t.token) {
            Some(Token::SingleQuotedString(s)) => {
                let v = s.clone();
                self.pos += 1;
                Ok(v)
            }
            _ => Err(error_at(
                self.here(),
                format!("expected {what}, {}", self.found()),
            )),
        }
    }

    /// Nothing but an optional semicolon may follow.
    fn end(&mut self) -> Result<()> {
        self.eat(&Token::SemiColon);
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(error_at(
                t.at,
                format!("unexpected '{}' after the statement", t.token),
            )),
        }
    }

    /// The text from the next token to the end (a trailing semicolon dropped); consumes it.
    fn rest(&mut self, what: &str) -> Result<String> {
        let Some(first) = self.peek() else {
            return Err(error_at(self.here(), format!("expected {what}")));
        };
        let text = self.sql[first.start..].trim_end();
        self.pos = self.toks.len();
        Ok(text
            .strip_suffix(';')
            .unwrap_or(text)
            .trim_end()
            .to_string())
    }

    /// `name USING algorithm [(params)] [LABEL col] [FEATURES (cols)] AS query`.
    fn train(&mut self, replace: bool) -> Result<KilnStatement> {
        let name = self.ident("a model name")?;
        self.expect_word("USING")?;
        let algorithm_at = self.here();
        let algorithm = self.ident("an algorithm")?;
        let mut params = Vec::new();
        if self.eat(&Token::LParen) {
            params = self.params()?;
        }
        let mut label = None;
        let mut features = None;
        let mut transform = Vec::new();
        loop {
            if self.peek_words(&["TRANSFORM"]) {
                self.pos += 1;
                transform = self.transform_items()?;
            } else if self.peek_words(&["LABEL"]) {
                self.pos += 1;
                label = Some(self.ident("a label column")?);
            } else if self.peek_words(&["FEATURES"]) {
                self.pos += 1;
                self.expect(&Token::LParen)?;
                let mut cols = vec![self.ident("a feature column")?];
                while self.eat(&Token::Comma) {
                    cols.push(self.ident("a feature column")?);
                }
                self.expect(&Token::RParen)?;
                features = Some(cols);
            } else {
                break;
            }
        }
        self.expect_word("AS")?;
        let query = self.rest("a training query")?;
        Ok(KilnStatement::Train(TrainModel {
            name,
            replace,
            algorithm,
            algorithm_at,
            params,
            label,
            features,
            transform,
            query,
        }))
    }

    /// `(expr AS name, ...)` after `TRANSFORM`.
    fn transform_items(&mut self) -> Result<Vec<TransformItem>> {
        self.expect(&Token::LParen)?;
        let mut items = Vec::new();
        loop {
            let first = self.pos;
            let mut depth = 0usize;
            // The expression runs to the `AS` at the top level of the item.
            loop {
                match self.peek().map(|t| &t.token) {
                    None => {
                        return Err(error_at(
                            self.here(),
                            "expected `expr AS name` in TRANSFORM, found the end of the statement",
                        ))
                    }
                    Some(Token::LParen) => depth += 1,
                    Some(Token::RParen) if depth == 0 => {
                        return Err(error_at(
                            self.here(),
                            "every TRANSFORM item needs a name: `expr AS name`",
                        ))
                    }
                    Some(Token::RParen) => depth -= 1,
                    Some(Token::Comma) if depth == 0 => {
                        return Err(error_at(
                            self.here(),
                            "every TRANSFORM item needs a name: `expr AS name`",
                        ))
                    }
                    Some(Token::Word(w))
                        if depth == 0
                            && w.quote_style.is_none()
                            && w.value.eq_ignore_ascii_case("AS")
                            && self.pos > first =>
                    {
                        break
                    }
                    _ => {}
                }
                self.pos += 1;
            }
            let expr = self.sql[self.toks[first].start..self.toks[self.pos - 1].end].to_string();
            let at = self.toks[first].at;
            self.pos += 1;
            let name = self.ident("an output column name")?;
            items.push(TransformItem { expr, name, at });
            if self.eat(&Token::RParen) {
                return Ok(items);
            }
            self.expect(&Token::Comma)?;
        }
    }

    /// `name [TRANSFORM (...)] OPTIONS (type = '...', label = '...', ...) AS query`, BigQuery's
    /// shape.
    fn create_model(&mut self, replace: bool) -> Result<KilnStatement> {
        let name = self.ident("a model name")?;
        let transform = if self.peek_words(&["TRANSFORM"]) {
            self.pos += 1;
            self.transform_items()?
        } else {
            Vec::new()
        };
        let options_at = self.here();
        self.expect_word("OPTIONS")?;
        self.expect(&Token::LParen)?;
        let mut params = self.params()?;
        // BigQuery writes TRANSFORM before OPTIONS; after them reads as well.
        let transform = if transform.is_empty() && self.peek_words(&["TRANSFORM"]) {
            self.pos += 1;
            self.transform_items()?
        } else {
            transform
        };
        self.expect_word("AS")?;
        let query = self.rest("a training query")?;
        let take = |params: &mut Vec<Param>, names: &[&str]| {
            params
                .iter()
                .position(|p| names.contains(&p.name.as_str()))
                .map(|i| params.remove(i))
        };
        let Some(kind) = take(&mut params, &["type", "model_type"]) else {
            return Err(error_at(
                options_at,
                "CREATE MODEL needs OPTIONS (type = '<algorithm>', ...)",
            ));
        };
        let algorithm = match kind.value {
            ParamValue::Text(t) => t,
            other => {
                return Err(error_at(
                    kind.at,
                    format!("type must be a quoted algorithm name, got {other}"),
                ))
            }
        };
        let label = match take(&mut params, &["label", "input_label_cols"]) {
            None => None,
            Some(p) => Some(one_name(p)?),
        };
        let features = match take(&mut params, &["features"]) {
            None => None,
            Some(Param {
                value: ParamValue::List(items),
                at,
                ..
            }) => Some(
                items
                    .into_iter()
                    .map(|v| match v {
                        ParamValue::Text(t) => Ok(t),
                        other => Err(error_at(at, format!("features must be names, got {other}"))),
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(p) => Some(vec![one_name(p)?]),
        };
        Ok(KilnStatement::Train(TrainModel {
            name,
            replace,
            algorithm,
            algorithm_at: kind.at,
            params,
            label,
            features,
            transform,
            query,
        }))
    }

    /// `name = value, ...)` after the opening parenthesis.
    fn params(&mut self) -> Result<Vec<Param>> {
        let mut params = Vec::new();
        if self.eat(&Token::RParen) {
            return Ok(params);
        }
        loop {
            let at = self.here();
            let name = self.ident("a parameter name")?.to_lowercase();
            self.expect(&Token::Eq)?;
            let value = self.value()?;
            params.push(Param { name, value, at });
            if self.eat(&Token::RParen) {
                return Ok(params);
            }
            self.expect(&Token::Comma)?;
        }
    }

    /// A dotted setting name (`kiln.store.max_retries`), lower case.
    fn setting_name(&mut self) -> Result<String> {
        let mut name = self.ident("a setting name")?;
        while self.eat(&Token::Period) {
            name.push('.');
            name.push_str(&self.ident("a setting name")?);
        }
        Ok(name.to_ascii_lowercase())
    }

    fn value(&mut self) -> Result<ParamValue> {
        let negative = self.eat(&Token::Minus);
        let tok = self.peek().map(|t| t.token.clone());
        let value = match tok {
            Some(Token::Number(n, _)) => {
                ParamValue::Number(if negative { format!("-{n}") } else { n })
            }
            Some(Token::SingleQuotedString(s)) if !negative => ParamValue::Text(s),
            Some(Token::Word(w)) if !negative && w.quote_style.is_none() => {
                match w.value.to_ascii_lowercase().as_str() {
                    "true" => ParamValue::Bool(true),
                    "false" => ParamValue::Bool(false),
                    _ => ParamValue::Text(w.value),
                }
            }
            Some(Token::LBracket) if !negative => {
                self.pos += 1;
                let mut items = Vec::new();
                if !self.eat(&Token::RBracket) {
                    loop {
                        items.push(self.value()?);
                        if self.eat(&Token::RBracket) {
                            break;
                        }
                        self.expect(&Token::Comma)?;
                    }
                }
                return Ok(ParamValue::List(items));
            }
            _ => {
                return Err(error_at(
                    self.here(),
                    format!("expected a parameter value, {}", self.found()),
                ))
            }
        };
        self.pos += 1;
        Ok(value)
    }
}

/// A single column name from a string or a one-element list.
fn one_name(p: Param) -> Result<String> {
    match p.value {
        ParamValue::Text(t) => Ok(t),
        ParamValue::List(mut items) if items.len() == 1 => match items.pop() {
            Some(ParamValue::Text(t)) => Ok(t),
            _ => Err(error_at(p.at, format!("{} must be a column name", p.name))),
        },
        other => Err(error_at(
            p.at,
            format!("{} must be a column name, got {other}", p.name),
        )),
    }
}

fn end_location(sql: &str) -> Location {
    let trimmed = sql.trim_end();
    let line = trimmed.lines().count().max(1);
    let column = trimmed.lines().last().map_or(0, |l| l.chars().count()) + 1;
    Location::new(line as u64, column as u64)
}

/// A `PREDICT(MODEL m, (query))` or `EVALUATE(MODEL m, (query))` found in a statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableCall {
    /// `true` for EVALUATE.
    pub(crate) evaluate: bool,
    /// The model's name.
    pub(crate) model: String,
    /// Where the model was named.
    pub(crate) model_at: Location,
    /// The inner query's text.
    pub(crate) query: String,
    /// Byte range of the whole call in the statement.
    pub(crate) range: std::ops::Range<usize>,
}

/// The outermost table-function calls of Kiln's (`PREDICT(MODEL ...)`, `EVALUATE(MODEL ...)`)
/// in a statement, in order. A call inside another's query is left to the inner query's own
/// rewriting.
///
/// # Errors
/// [`EngineError::SqlSyntax`] for a malformed call.
pub(crate) fn table_calls(sql: &str) -> Result<Vec<TableCall>> {
    let toks = tokens(sql)?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let p = Parser {
            sql,
            toks: &toks,
            pos: i,
        };
        let evaluate = p.peek_words(&["EVALUATE"]);
        let is_call = (evaluate || p.peek_words(&["PREDICT"]))
            && toks.get(i + 1).is_some_and(|t| t.token == Token::LParen)
            && p.word_at(i + 2)
                .is_some_and(|w| w.eq_ignore_ascii_case("MODEL"));
        if !is_call {
            i += 1;
            continue;
        }
        let mut p = Parser {
            sql,
            toks: &toks,
            pos: i + 3,
        };
        let model_at = p.here();
        let model = p.ident("a model name")?;
        p.expect(&Token::Comma)?;
        let open = p.here();
        p.expect(&Token::LParen)?;
        let query_start = p.peek().map_or(sql.len(), |t| t.start);
        // The matching parenthesis.
        let mut depth = 1usize;
        let mut query_end = None;
        while let Some(t) = p.peek() {
            match t.token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        query_end = Some(t.start);
                        p.pos += 1;
                        break;
                    }
                }
                _ => {}
            }
            p.pos += 1;
        }
        let Some(query_end) = query_end else {
            return Err(error_at(open, "unclosed '(' of the query"));
        };
        let close = p.peek().map(|t| (t.token.clone(), t.end));
        let end = match close {
            Some((Token::RParen, end)) => end,
            _ => {
                return Err(error_at(
                    p.here(),
                    format!("expected ')' closing the call, {}", p.found()),
                ))
            }
        };
        out.push(TableCall {
            evaluate,
            model,
            model_at,
            query: sql[query_start..query_end].trim().to_string(),
            range: toks[i].start..end,
        });
        i = p.pos + 1;
    }
    Ok(out)
}

/// `sql` with the bare model names of `predict(m, ...)` / `predict_proba(m, ...)` quoted
/// (`predict('m', ...)`, what the UDF takes), for the words `is_model` accepts; other text is
/// left as written.
///
/// # Errors
/// As [`tokens`].
pub(crate) fn quote_model_arguments(sql: &str, is_model: impl Fn(&str) -> bool) -> Result<String> {
    let toks = tokens(sql)?;
    let mut out = String::with_capacity(sql.len() + 8);
    let mut last = 0;
    for w in toks.windows(4) {
        let is_predict = matches!(&w[0].token, Token::Word(f) if f.quote_style.is_none()
            && (f.value.eq_ignore_ascii_case("predict") || f.value.eq_ignore_ascii_case("predict_proba")));
        let model = match &w[2].token {
            Token::Word(m) if m.quote_style.is_none() && is_model(&m.value) => Some(&m.value),
            _ => None,
        };
        if let (true, Token::LParen, Some(model), Token::Comma | Token::RParen) =
            (is_predict, &w[1].token, model, &w[3].token)
        {
            out.push_str(&sql[last..w[2].start]);
            out.push('\'');
            out.push_str(&model.replace('\'', "''"));
            out.push('\'');
            last = w[2].end;
        }
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

/// The bare names written as the model of a `predict(m, ...)` or `predict_proba(m, ...)` call
/// (what [`quote_model_arguments`] leaves alone when no model has that name).
pub(crate) fn bare_model_arguments(sql: &str) -> Vec<String> {
    let Ok(toks) = tokens(sql) else {
        return Vec::new();
    };
    toks.windows(4)
        .filter_map(|w| {
            let is_predict = matches!(&w[0].token, Token::Word(f) if f.quote_style.is_none()
                && (f.value.eq_ignore_ascii_case("predict") || f.value.eq_ignore_ascii_case("predict_proba")));
            match (is_predict, &w[1].token, &w[2].token, &w[3].token) {
                (true, Token::LParen, Token::Word(m), Token::Comma | Token::RParen)
                    if m.quote_style.is_none() =>
                {
                    Some(m.value.clone())
                }
                _ => None,
            }
        })
        .collect()
}

/// The arguments of the call whose `(` is `toks[open]`, as trimmed text, and the index of the
/// matching `)`; `None` when the call is not closed.
pub(crate) fn call_arguments(sql: &str, toks: &[Tok], open: usize) -> Option<(Vec<String>, usize)> {
    let mut args = Vec::new();
    let mut depth = 0usize;
    let mut start = toks.get(open)?.end;
    for (j, t) in toks.iter().enumerate().skip(open + 1) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => {
                let last = sql[start..t.start].trim();
                if !(last.is_empty() && args.is_empty()) {
                    args.push(last.to_string());
                }
                return Some((args, j));
            }
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                args.push(sql[start..t.start].trim().to_string());
                start = t.end;
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn train(sql: &str) -> TrainModel {
        match parse_kiln_statement(sql).unwrap() {
            Some(KilnStatement::Train(t)) => t,
            other => panic!("not a train: {other:?}"),
        }
    }

    #[test]
    fn train_statements_parse_with_every_clause() {
        let t = train(
            "train model m USING kmeans (k = 3, tol = -0.5, init = 'random', flag = true) \
             FEATURES (a, \"B\") AS SELECT a, \"B\" FROM t;",
        );
        assert_eq!(t.name, "m");
        assert!(t.replace);
        assert_eq!(t.algorithm, "kmeans");
        assert_eq!(t.features, Some(vec!["a".into(), "B".into()]));
        assert_eq!(t.query, "SELECT a, \"B\" FROM t");
        assert_eq!(
            t.params
                .iter()
                .map(|p| p.value.to_string())
                .collect::<Vec<_>>(),
            ["3", "-0.5", "'random'", "true"]
        );
        let c = train(
            "CREATE OR REPLACE MODEL m2 OPTIONS (model_type = 'logistic_regression', \
             input_label_cols = ['y'], max_iter = 5) AS SELECT * FROM t",
        );
        assert_eq!(
            (c.algorithm.as_str(), c.label.as_deref(), c.replace),
            ("logistic_regression", Some("y"), true)
        );
        assert_eq!(c.params.len(), 1);
        assert!(!train("CREATE MODEL m OPTIONS (type = 'kmeans') AS SELECT 1").replace);
    }

    #[test]
    fn catalog_statements_parse() {
        let p = |s: &str| parse_kiln_statement(s).unwrap();
        assert_eq!(p("show models"), Some(KilnStatement::ShowModels));
        assert_eq!(p("SHOW algorithms"), Some(KilnStatement::ShowAlgorithms));
        assert_eq!(
            p("DESCRIBE MODEL m"),
            Some(KilnStatement::DescribeModel("m".into()))
        );
        assert_eq!(
            p("DROP MODEL IF EXISTS m;"),
            Some(KilnStatement::DropModel {
                name: "m".into(),
                if_exists: true
            })
        );
        assert_eq!(
            p("SAVE MODEL m TO '/tmp/x'"),
            Some(KilnStatement::SaveModel {
                name: "m".into(),
                url: "/tmp/x".into()
            })
        );
        assert!(matches!(
            p("EXPLAIN TRAIN MODEL m USING kmeans AS SELECT 1"),
            Some(KilnStatement::ExplainTrain(_))
        ));
        assert!(matches!(
            p("EXPLAIN ANALYZE TRAIN MODEL m USING kmeans AS SELECT 1"),
            Some(KilnStatement::ExplainAnalyzeTrain(_))
        ));
        assert_eq!(p("SELECT 'TRAIN MODEL'"), None);
        assert_eq!(p("EXPLAIN SELECT 1"), None);
        assert_eq!(p("DESCRIBE t"), None);
    }

    #[test]
    fn errors_point_at_the_place() {
        let err = |s: &str| parse_kiln_statement(s).unwrap_err().to_string();
        assert_eq!(
            err("TRAIN MODEL m kmeans AS SELECT 1"),
            "SQL syntax error: expected USING, found 'kmeans' at Line: 1, Column: 15"
        );
        assert_eq!(
            err("TRAIN MODEL m USING kmeans (k 3) AS SELECT 1"),
            "SQL syntax error: expected '=', found '3' at Line: 1, Column: 31"
        );
        assert_eq!(
            err("TRAIN MODEL m USING kmeans\n(k = 3)"),
            "SQL syntax error: expected AS, found the end of the statement at Line: 2, Column: 8"
        );
        assert_eq!(
            err("SHOW MODELS extra"),
            "SQL syntax error: unexpected 'extra' after the statement at Line: 1, Column: 13"
        );
        assert!(err("CREATE MODEL m OPTIONS (k = 3) AS SELECT 1").contains("type = '<algorithm>'"));
    }

    #[test]
    fn scripts_split_outside_strings_and_comments() {
        let parts = split_statements(
            "SELECT ';' AS a; -- a comment; still a comment\nSELECT 2;\n/* c; */ ;  ",
        )
        .unwrap();
        assert_eq!(
            parts,
            ["SELECT ';' AS a", "-- a comment; still a comment\nSELECT 2"]
        );
    }

    #[test]
    fn bare_model_names_in_predict_are_quoted() {
        let is_model = |m: &str| m == "km";
        assert_eq!(
            quote_model_arguments("SELECT predict(km, x), PREDICT_PROBA(km, y), predict(other, x), predict('km', x), km FROM t", is_model).unwrap(),
            "SELECT predict('km', x), PREDICT_PROBA('km', y), predict(other, x), predict('km', x), km FROM t"
        );
    }

    #[test]
    fn table_calls_are_found_with_their_queries() {
        let sql = "SELECT * FROM PREDICT(MODEL m, (SELECT (1 + 2) AS x FROM t)) p \
                   JOIN evaluate(model \"E\", (SELECT 1)) e ON true";
        let calls = table_calls(sql).unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].query, "SELECT (1 + 2) AS x FROM t");
        assert_eq!(
            &sql[calls[0].range.clone()],
            "PREDICT(MODEL m, (SELECT (1 + 2) AS x FROM t))"
        );
        assert!(calls[1].evaluate);
        assert_eq!(calls[1].model, "E");
        assert!(table_calls("SELECT predict('m', a) FROM t")
            .unwrap()
            .is_empty());
        let e = table_calls("SELECT * FROM PREDICT(MODEL m, (SELECT 1)").unwrap_err();
        assert!(
            e.to_string().contains("expected ')' closing the call"),
            "{e}"
        );
    }
}
