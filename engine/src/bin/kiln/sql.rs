//! `kiln sql`: runs Kiln SQL from the command line.
//!
//! Statements come from `-e` (one or more statements each) and `-f` files, in the order given,
//! split at semicolons. Each statement's result is printed to standard output in the chosen
//! format; a timing line (`3 rows in 0.012 s`) goes to standard error unless `--quiet`. The
//! first failing statement stops the run with its message on standard error and exit code 1;
//! bad arguments exit with 2.
//!
//! The session is embedded (`--executors N`, default 2) or a local cluster of executor
//! processes (`--local-cluster N`). Models trained or loaded are kept in the model catalog:
//! `--models-dir`, else `$KILN_MODELS_DIR`, else `./kiln-models`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use arrow::array::RecordBatch;
use kiln::Session;

const USAGE: &str = "usage: kiln sql [-e SQL]... [-f FILE]... [--format table|csv|tsv|json|ndjson] [--maxrows N] [--executors N | --local-cluster N] [--models-dir DIR] [--quiet]";

/// Where statements come from.
enum Source {
    Text(String),
    File(PathBuf),
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Table,
    Csv,
    Tsv,
    Json,
    NdJson,
}

struct Options {
    sources: Vec<Source>,
    common: Common,
    quiet: bool,
}

/// The options `kiln sql` and `kiln shell` share: how results print and where the session
/// runs.
pub(crate) struct Common {
    pub(crate) format: Format,
    pub(crate) maxrows: Option<usize>,
    executors: usize,
    local_cluster: Option<usize>,
    models_dir: PathBuf,
}

impl Common {
    /// The defaults: tables, 2 in-process executors, the models in `--models-dir`, else
    /// `$KILN_MODELS_DIR`, else `./kiln-models`.
    pub(crate) fn new() -> Self {
        Self {
            format: Format::Table,
            maxrows: None,
            executors: 2,
            local_cluster: None,
            models_dir: std::env::var_os("KILN_MODELS_DIR")
                .map_or_else(|| PathBuf::from("kiln-models"), PathBuf::from),
        }
    }

    /// Takes `flag` (its value from `value`) when it is one of the shared options; returns
    /// whether it was.
    pub(crate) fn take(
        &mut self,
        flag: &str,
        value: impl FnOnce() -> Result<String, String>,
    ) -> Result<bool, String> {
        match flag {
            "--format" => self.format = parse_format(&value()?)?,
            "--maxrows" => self.maxrows = Some(row_limit(&value()?)?),
            "--executors" => self.executors = count(flag, &value()?)?,
            "--local-cluster" => self.local_cluster = Some(count(flag, &value()?)?),
            "--models-dir" => self.models_dir = PathBuf::from(value()?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The session the options describe.
    pub(crate) async fn session(&self) -> Result<Session, String> {
        let builder = Session::builder().models_dir(&self.models_dir);
        let builder = match self.local_cluster {
            Some(n) => builder.local_cluster(n),
            None => builder.executors(self.executors),
        };
        builder.build().await.map_err(|e| e.to_string())
    }
}

/// The multi-threaded tokio runtime the commands run on; `None` after saying why not.
pub(crate) fn runtime(command: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("kiln {command}: cannot start the async runtime: {e}");
            None
        }
    }
}

/// A row limit for `table` output.
pub(crate) fn row_limit(text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("the row limit must be a number of rows, got '{text}'"))
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    let options = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("kiln sql: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime("sql") else {
        return ExitCode::FAILURE;
    };
    exit_code(runtime.block_on(run(options)))
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        sources: Vec::new(),
        common: Common::new(),
        quiet: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        if options.common.take(flag, &mut value)? {
            continue;
        }
        match flag.as_str() {
            "-e" | "--execute" => options.sources.push(Source::Text(value()?)),
            "-f" | "--file" => options.sources.push(Source::File(PathBuf::from(value()?))),
            "-q" | "--quiet" => options.quiet = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if options.sources.is_empty() {
        return Err("give statements with -e or a script with -f".into());
    }
    Ok(options)
}

fn count(flag: &str, text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("{flag} must be a number >= 1, got '{text}'"))
}

pub(crate) fn parse_format(text: &str) -> Result<Format, String> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "table" => Format::Table,
        "csv" => Format::Csv,
        "tsv" => Format::Tsv,
        "json" => Format::Json,
        "ndjson" => Format::NdJson,
        other => {
            return Err(format!(
                "unknown format '{other}'; formats: table, csv, tsv, json, ndjson"
            ))
        }
    })
}

async fn run(options: Options) -> Result<(), String> {
    let session = options.common.session().await?;
    for source in &options.sources {
        let (text, origin) = match source {
            Source::Text(t) => (t.clone(), None),
            Source::File(path) => (
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                Some(path.as_path()),
            ),
        };
        run_script(&session, &text, origin, &options.common, !options.quiet).await?;
    }
    Ok(())
}

/// Runs every statement of `text` in order, printing each result (and, with `timing`, a
/// timing line on standard error); stops at the first error, which names `origin` if given.
pub(crate) async fn run_script(
    session: &Session,
    text: &str,
    origin: Option<&std::path::Path>,
    common: &Common,
    timing: bool,
) -> Result<(), String> {
    let located = |e: String| match origin {
        Some(p) => format!("{}: {e}", p.display()),
        None => e,
    };
    let statements = kiln::sql::split_statements(text).map_err(|e| located(e.to_string()))?;
    for statement in statements {
        let start = Instant::now();
        let batches = execute(session, &statement).await.map_err(located)?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut out = std::io::stdout().lock();
        print(&mut out, &batches, common.format, common.maxrows)
            .and_then(|()| out.flush().map_err(|e| e.to_string()))?;
        if timing {
            eprintln!(
                "{rows} row{} in {:.3} s",
                if rows == 1 { "" } else { "s" },
                start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// The exit code of a command's run: 1 after printing the error.
pub(crate) fn exit_code(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) async fn execute(
    session: &Session,
    statement: &str,
) -> Result<Vec<RecordBatch>, String> {
    let df = session.sql(statement).await.map_err(|e| e.to_string())?;
    df.collect().await.map_err(|e| e.to_string())
}

/// Writes `batches` in `format`; `table` shows at most `maxrows` rows (default 40) and says
/// how many it left out.
pub(crate) fn print(
    out: &mut impl Write,
    batches: &[RecordBatch],
    format: Format,
    maxrows: Option<usize>,
) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let arrow = |e: arrow::error::ArrowError| e.to_string();
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let limit = maxrows.unwrap_or(if format == Format::Table {
        40
    } else {
        usize::MAX
    });
    let shown = head(batches, limit);
    match format {
        Format::Table => {
            if batches.first().is_some_and(|b| b.num_columns() > 0) {
                let table = arrow::util::pretty::pretty_format_batches(&shown).map_err(arrow)?;
                writeln!(out, "{table}").map_err(io)?;
                if total > limit {
                    writeln!(out, "({} of {total} rows shown; see --maxrows)", limit)
                        .map_err(io)?;
                }
            }
        }
        Format::Csv | Format::Tsv => {
            let delimiter = if format == Format::Csv { b',' } else { b'\t' };
            let mut w = arrow::csv::WriterBuilder::new()
                .with_delimiter(delimiter)
                .build(&mut *out);
            for b in &shown {
                w.write(b).map_err(arrow)?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut *out);
            let refs: Vec<&RecordBatch> = shown.iter().collect();
            w.write_batches(&refs).map_err(arrow)?;
            w.finish().map_err(arrow)?;
            writeln!(out).map_err(io)?;
        }
        Format::NdJson => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut *out);
            let refs: Vec<&RecordBatch> = shown.iter().collect();
            w.write_batches(&refs).map_err(arrow)?;
            w.finish().map_err(arrow)?;
        }
    }
    Ok(())
}

/// The first `limit` rows of `batches`.
fn head(batches: &[RecordBatch], limit: usize) -> Vec<RecordBatch> {
    let mut left = limit;
    let mut out = Vec::new();
    for b in batches {
        if left == 0 {
            break;
        }
        let take = b.num_rows().min(left);
        out.push(b.slice(0, take));
        left -= take;
    }
    out
}
