//! `kiln shell`: the interactive Kiln SQL shell.
//!
//! A line editor with history (`--history FILE`, else `$KILN_HISTORY`, else `.kiln_history`
//! in the home directory), statements over several lines (a statement ends at a `;` outside
//! quotes and comments), tab completion of keywords, tables and models, and dot or backslash
//! commands (`.help`). Each statement's result is printed in the chosen format with a timing
//! line. While a statement runs on a terminal, standard error shows a progress line: stages
//! and tasks finished, and a running fit's iteration and loss. Ctrl-C cancels the running
//! statement and returns to the prompt; Ctrl-D (or `.quit`) leaves.
//!
//! When standard input is not a terminal, the shell reads it as a script instead, like
//! `kiln sql -f`: no prompt, no progress, and the first failing statement ends the run with
//! exit code 1.

use std::borrow::Cow;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Activity, Session};
use arrow::array::{Array, RecordBatch, StringArray};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use super::args::{parse_format, row_limit, Format, ShellArgs};
use super::sql::{execute, exit_code, print, run_script, runtime, Common};

const HELP: &str = "\
Statements end with ';' and may span lines. Besides SQL:
  .help, \\?              this help
  .tables, \\dt           the tables
  .models, \\dm           the models in the catalog (SHOW MODELS)
  .describe NAME, \\d NAME  a table's columns or a model's summary
  .format FORMAT         table, csv, tsv, json or ndjson
  .maxrows N             rows a table shows (0: all)
  .timing on|off         the timing line after each statement
  .quit, .exit, \\q       leave (or Ctrl-D)
Ctrl-C cancels the running statement; Tab completes keywords, tables and models.";

/// Words offered by Tab besides the tables and models.
const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "JOIN",
    "LEFT",
    "RIGHT",
    "INNER",
    "OUTER",
    "ON",
    "AS",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "IS",
    "IN",
    "BETWEEN",
    "LIKE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "DISTINCT",
    "UNION",
    "ALL",
    "WITH",
    "VALUES",
    "INSERT",
    "INTO",
    "CREATE",
    "EXTERNAL",
    "TABLE",
    "VIEW",
    "DROP",
    "IF",
    "EXISTS",
    "STORED",
    "LOCATION",
    "COPY",
    "TO",
    "EXPLAIN",
    "DESCRIBE",
    "SHOW",
    "TABLES",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "CAST",
    "TRAIN",
    "MODEL",
    "MODELS",
    "USING",
    "LABEL",
    "FEATURES",
    "OPTIONS",
    "REPLACE",
    "PREDICT",
    "EVALUATE",
    "SAVE",
    "LOAD",
    "kmeans",
    "linear_regression",
    "logistic_regression",
];

struct Options {
    common: Common,
    history: Option<PathBuf>,
}

pub(crate) fn main(args: &ShellArgs) -> ExitCode {
    let mut common = Common::new(&args.session);
    common.ui_by_default = true;
    let mut options = Options {
        common,
        history: args.history.clone().or_else(|| {
            std::env::var_os("KILN_HISTORY")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kiln_history"))
                })
        }),
    };
    let Some(runtime) = runtime("shell") else {
        return ExitCode::FAILURE;
    };
    let mut session = match runtime.block_on(options.common.session()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if std::io::stdin().is_terminal() {
        interactive(&runtime, &mut session, options)
    } else {
        script(&runtime, &mut session, &mut options)
    };
    exit_code(result)
}

/// Runs standard input as a script: every statement in order, stopping at the first error.
fn script(
    runtime: &tokio::runtime::Runtime,
    session: &mut Session,
    options: &mut Options,
) -> Result<(), String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    runtime.block_on(run_script(session, &text, None, &mut options.common, false))
}

/// The settings `.format`, `.maxrows` and `.timing` change.
struct Display {
    format: Format,
    maxrows: Option<usize>,
    timing: bool,
}

fn interactive(
    runtime: &tokio::runtime::Runtime,
    session: &mut Session,
    mut options: Options,
) -> Result<(), String> {
    let names = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut editor: Editor<ShellHelper, DefaultHistory> =
        Editor::new().map_err(|e| format!("cannot start the line editor: {e}"))?;
    editor.set_helper(Some(ShellHelper {
        names: Arc::clone(&names),
    }));
    if let Some(path) = &options.history {
        // A missing history file is the normal first start.
        let _ = editor.load_history(path);
    }
    let mut display = Display {
        format: options.common.format,
        maxrows: options.common.maxrows,
        timing: true,
    };
    refresh_names(runtime, session, &names);
    println!("Kiln SQL shell. Statements end with ';'. Type .help for help, .quit to leave.");
    loop {
        let line = match editor.readline("kiln> ") {
            Ok(line) => line,
            // Ctrl-C at the prompt drops the line being typed.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(format!("cannot read a line: {e}")),
        };
        let input = line.trim();
        if input.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(input);
        if let Some(history) = &options.history {
            let _ = editor.save_history(history);
        }
        if input.starts_with('.') || input.starts_with('\\') {
            match command(runtime, session, &mut display, input) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => eprintln!("error: {e}"),
            }
            continue;
        }
        match crate::sql::split_statements(input) {
            Ok(statements) => {
                for statement in statements {
                    let restarted =
                        runtime.block_on(options.common.restart_on_set(session, &statement));
                    match restarted {
                        Some(Ok(message)) => eprintln!("{message}"),
                        Some(Err(e)) => {
                            eprintln!("error: {e}");
                            break;
                        }
                        None => {
                            if !run_statement(runtime, session, &display, &statement) {
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => eprintln!("error: {e}"),
        }
        refresh_names(runtime, session, &names);
    }
    Ok(())
}

/// Runs one statement with a progress line and Ctrl-C cancelling it; prints its result or
/// error. Returns whether the next statement of the same input should run.
fn run_statement(
    runtime: &tokio::runtime::Runtime,
    session: &Session,
    display: &Display,
    statement: &str,
) -> bool {
    let start = Instant::now();
    let before = session.activity();
    let show_progress = std::io::stderr().is_terminal();
    let outcome = runtime.block_on(async {
        let work = execute(session, statement);
        tokio::pin!(work);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut shown = false;
        let outcome = loop {
            tokio::select! {
                result = &mut work => break Some(result),
                _ = tokio::signal::ctrl_c() => break None,
                _ = tick.tick() => {
                    if show_progress && start.elapsed() >= Duration::from_millis(300) {
                        let line = progress_line(&before, &session.activity(), start.elapsed());
                        eprint!("\r\x1b[2K{line}");
                        let _ = std::io::stderr().flush();
                        shown = true;
                    }
                }
            }
        };
        if shown {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
        outcome
    });
    match outcome {
        None => {
            eprintln!("cancelled after {:.3} s", start.elapsed().as_secs_f64());
            false
        }
        Some(Err(e)) => {
            eprintln!("error: {e}");
            false
        }
        Some(Ok(batches)) => {
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            let mut out = std::io::stdout().lock();
            if let Err(e) = print(&mut out, &batches, display.format, display.maxrows)
                .and_then(|()| out.flush().map_err(|e| e.to_string()))
            {
                eprintln!("error: {e}");
                return false;
            }
            if display.timing {
                eprintln!(
                    "{rows} row{} in {:.3} s",
                    if rows == 1 { "" } else { "s" },
                    start.elapsed().as_secs_f64()
                );
            }
            true
        }
    }
}

/// The progress line of a statement that started with `before` and has `now`.
fn progress_line(before: &Activity, now: &Activity, elapsed: Duration) -> String {
    now.progress_line(before, elapsed)
}

/// Runs a dot or backslash command; returns whether the shell should end.
fn command(
    runtime: &tokio::runtime::Runtime,
    session: &Session,
    display: &mut Display,
    input: &str,
) -> Result<bool, String> {
    let input = input.trim_end_matches(';').trim();
    let (name, arg) = match input.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (input, ""),
    };
    let sql = |statement: &str| {
        run_statement(runtime, session, display, statement);
        Ok(false)
    };
    match name {
        ".quit" | ".exit" | "\\q" => Ok(true),
        ".help" | "\\?" | "\\h" => {
            println!("{HELP}");
            Ok(false)
        }
        ".tables" | "\\dt" => {
            for table in table_names(session) {
                println!("{table}");
            }
            Ok(false)
        }
        ".models" | "\\dm" => sql("SHOW MODELS"),
        ".describe" | "\\d" if !arg.is_empty() => {
            if model_names(runtime, session).iter().any(|m| m == arg) {
                sql(&format!("DESCRIBE MODEL {arg}"))
            } else {
                sql(&format!("DESCRIBE {arg}"))
            }
        }
        ".describe" | "\\d" => Err(format!("{name} needs a table or model name")),
        ".format" => {
            display.format = parse_format(arg)?;
            Ok(false)
        }
        ".maxrows" => {
            let n = row_limit(arg)?;
            display.maxrows = (n > 0).then_some(n).or(Some(usize::MAX));
            Ok(false)
        }
        ".timing" => {
            display.timing = match arg {
                "on" => true,
                "off" => false,
                other => return Err(format!(".timing takes on or off, got '{other}'")),
            };
            Ok(false)
        }
        other => Err(format!("unknown command {other}; .help lists the commands")),
    }
}

/// Every table the session's catalogs hold, as `name` (default schema) or `schema.name`.
fn table_names(session: &Session) -> Vec<String> {
    let ctx = session.datafusion_context();
    let mut names = Vec::new();
    for catalog in ctx.catalog_names() {
        let Some(c) = ctx.catalog(&catalog) else {
            continue;
        };
        for schema in c.schema_names() {
            if schema == "information_schema" {
                continue;
            }
            if let Some(s) = c.schema(&schema) {
                for table in s.table_names() {
                    names.push(if schema == "public" {
                        table
                    } else {
                        format!("{schema}.{table}")
                    });
                }
            }
        }
    }
    names.sort();
    names
}

/// The models in the catalog (the first column of `SHOW MODELS`).
fn model_names(runtime: &tokio::runtime::Runtime, session: &Session) -> Vec<String> {
    let Ok(batches) = runtime.block_on(execute(session, "SHOW MODELS")) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for batch in &batches {
        if let Some(col) = batch
            .columns()
            .first()
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        {
            names.extend(
                (0..col.len())
                    .filter(|&i| col.is_valid(i))
                    .map(|i| col.value(i).to_string()),
            );
        }
    }
    names
}

fn refresh_names(
    runtime: &tokio::runtime::Runtime,
    session: &Session,
    names: &Arc<Mutex<Vec<String>>>,
) {
    let mut all = table_names(session);
    all.extend(model_names(runtime, session));
    if let Ok(mut n) = names.lock() {
        *n = all;
    }
}

/// Completion, multi-line input and the rest of the line editor's hooks.
struct ShellHelper {
    names: Arc<Mutex<Vec<String>>>,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        let start = head
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .map_or(0, |i| i + 1);
        let word = &head[start..];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let lower = word.to_ascii_lowercase();
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        let mut out: Vec<Pair> = Vec::new();
        for name in names
            .iter()
            .map(String::as_str)
            .chain(KEYWORDS.iter().copied())
        {
            if name.to_ascii_lowercase().starts_with(&lower)
                && !out.iter().any(|p| p.replacement == name)
            {
                // Keywords keep the case being typed.
                let replacement =
                    if KEYWORDS.contains(&name) && word.chars().all(|c| !c.is_uppercase()) {
                        name.to_ascii_lowercase()
                    } else {
                        name.to_string()
                    };
                out.push(Pair {
                    display: replacement.clone(),
                    replacement,
                });
            }
        }
        Ok((start, out))
    }
}

impl Validator for ShellHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input().trim();
        Ok(
            if input.is_empty()
                || input.starts_with('.')
                || input.starts_with('\\')
                || ends_statement(input)
            {
                ValidationResult::Valid(None)
            } else {
                ValidationResult::Incomplete
            },
        )
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Helper for ShellHelper {}

/// Whether `input` ends with a `;` that is outside quotes and comments.
fn ends_statement(input: &str) -> bool {
    let mut last_semicolon = false;
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                // A quoted string or identifier; a doubled quote stays inside.
                loop {
                    match chars.next() {
                        Some(q) if q == c => {
                            if chars.peek() == Some(&c) {
                                chars.next();
                            } else {
                                break;
                            }
                        }
                        Some(_) => {}
                        None => return false,
                    }
                }
                last_semicolon = false;
            }
            '-' if chars.peek() == Some(&'-') => {
                // A comment to the end of the line.
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            ';' => last_semicolon = true,
            c if c.is_whitespace() => {}
            _ => last_semicolon = false,
        }
    }
    last_semicolon
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_ends_at_a_semicolon_outside_quotes_and_comments() {
        assert!(ends_statement("select 1;"));
        assert!(ends_statement("select 1;  -- done"));
        assert!(ends_statement("select ';';"));
        assert!(!ends_statement("select 1"));
        assert!(!ends_statement("select ';"));
        assert!(!ends_statement("select 1 -- ;"));
        assert!(!ends_statement("select 'it''s;'"));
        assert!(ends_statement("select 'it''s';"));
    }

    #[test]
    fn the_progress_line_counts_from_the_statement_start() {
        let before = Activity {
            stages_planned: 3,
            stages_finished: 3,
            tasks_planned: 10,
            tasks_finished: 10,
            training: None,
        };
        let now = Activity {
            stages_planned: 5,
            stages_finished: 4,
            tasks_planned: 18,
            tasks_finished: 13,
            training: Some(crate::ml::Progress {
                iteration: 4,
                max_iter: 20,
                loss: Some(1.5),
            }),
        };
        assert_eq!(
            progress_line(&before, &now, Duration::from_millis(1500)),
            "stages 1/2 | tasks 3/8 | training iteration 4/20 loss 1.500000 | 1.5 s"
        );
    }
}
