//! `kiln sql`: runs Kiln SQL from the command line.
//!
//! Statements come from `-e` (one or more statements each) and `-f` files, in the order given,
//! split at semicolons. Each statement's result is printed to standard output in the chosen
//! format; a timing line (`3 rows in 0.012 s`) goes to standard error unless `--quiet`. The
//! first failing statement stops the run with its message on standard error and exit code 1;
//! bad arguments exit with 2.
//!
//! The session is embedded (`--executors N`, default 2), a local cluster of executor
//! processes (`--local-cluster N`), or a cluster: `--cluster ADDR` listens on `ADDR` for
//! `--executors N` executors started with `kiln executor --driver http://ADDR` (port 0: any
//! free port, printed on standard error). Models trained or loaded are kept in the model
//! catalog: `--models-dir`, else `$KILN_MODELS_DIR`, else `./kiln-models`.
//!
//! Every setting of `crate::config` can also come from a config file (`--config FILE`,
//! `$KILN_CONFIG`, `~/.config/kiln/kiln.conf`), its environment variable, `--set KEY=VALUE`
//! or a `SET` statement. A `SET` of a setting fixed while a session runs (`SET kiln.executors
//! = 4`) restarts the session with the new value, keeping its tables.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use super::args::{Format, SessionArgs, SqlArgs, SqlSource};
use crate::config::{self, Config};
use crate::sql::KilnStatement;
use crate::Session;
use arrow::array::RecordBatch;

/// Where statements come from.
enum Source {
    Text(String),
    File(PathBuf),
}

struct Options {
    sources: Vec<Source>,
    common: Common,
    quiet: bool,
}

/// The options `kiln sql` and `kiln shell` share: how results print and the session's
/// settings (see `crate::config`).
pub(crate) struct Common {
    pub(crate) format: Format,
    pub(crate) maxrows: Option<usize>,
    /// `--config FILE`.
    config_file: Option<PathBuf>,
    /// Settings from flags, in order.
    flags: Vec<(&'static str, String)>,
    /// The settings of the running session, once there is one.
    config: Option<Config>,
    /// Whether the web UI is on unless the settings say otherwise (`kiln shell`, `kiln sql
    /// --cluster`): on port 4040 or the next free one, and a warning when none is free.
    pub(crate) ui_by_default: bool,
}

impl Common {
    /// The options of `args`: the output format and row limit (`--maxrows 0`: every row),
    /// and the settings the flags give, applied in order over the config file and the
    /// environment.
    pub(crate) fn new(args: &SessionArgs) -> Self {
        let mut flags: Vec<(&'static str, String)> = Vec::new();
        if let Some(n) = &args.executors {
            flags.push(("kiln.executors", n.to_string()));
        }
        if let Some(n) = &args.local_cluster {
            flags.push(("kiln.mode", "local_cluster".into()));
            flags.push(("kiln.executors", n.to_string()));
        }
        if let Some(addr) = &args.cluster {
            flags.push(("kiln.mode", "cluster".into()));
            flags.push(("kiln.cluster.listen", addr.clone()));
        }
        if let Some(dir) = &args.models_dir {
            flags.push(("kiln.models_dir", dir.clone()));
        }
        for (key, path) in [
            ("kiln.cluster.tls_cert", &args.tls_cert),
            ("kiln.cluster.tls_key", &args.tls_key),
            ("kiln.cluster.tls_ca", &args.tls_ca),
            ("kiln.cluster.tls_client_ca", &args.tls_client_ca),
        ] {
            if let Some(p) = path {
                flags.push((key, p.display().to_string()));
            }
        }
        flags.extend(args.set.iter().cloned());
        Self {
            format: args.format,
            maxrows: args.maxrows.map(|n| if n == 0 { usize::MAX } else { n }),
            config_file: args.config.clone(),
            flags,
            config: None,
            ui_by_default: args.cluster.is_some(),
        }
    }

    /// The settings: defaults, the config file, the environment, then the flags.
    fn resolve(&self) -> Result<Config, String> {
        let mut config = Config::load(self.config_file.as_deref()).map_err(|e| e.to_string())?;
        for (key, value) in &self.flags {
            config
                .set(key, value, config::Source::Flag)
                .map_err(|e| e.to_string())?;
        }
        // The command line keeps an event log unless told not to (`kiln history` reads it).
        if matches!(
            config.source("kiln.eventlog.dir"),
            Some(config::Source::Default)
        ) {
            if let Some(dir) = crate::eventlog::default_dir() {
                config
                    .set("kiln.eventlog.dir", &dir, config::Source::Default)
                    .map_err(|e| e.to_string())?;
            }
        }
        if self.ui_by_default
            && matches!(config.source("kiln.ui.port"), Some(config::Source::Default))
        {
            config
                .set("kiln.ui.port", "4040", config::Source::Default)
                .map_err(|e| e.to_string())?;
        }
        Ok(config)
    }

    /// Starts the session the options describe.
    pub(crate) async fn session(&mut self) -> Result<Session, String> {
        let config = match self.config.take() {
            Some(c) => c,
            None => self.resolve()?,
        };
        let built = start(&config).await;
        self.config = Some(config);
        built
    }

    /// Handles `SET` of a setting fixed while a session runs (`SET kiln.executors = 4`): starts
    /// a session with the new value, takes the old one's tables over and replaces it. Returns
    /// `None` for any other statement.
    pub(crate) async fn restart_on_set(
        &mut self,
        session: &mut Session,
        statement: &str,
    ) -> Option<Result<String, String>> {
        let Ok(Some(KilnStatement::Set { key, value })) =
            crate::sql::parse_kiln_statement(statement)
        else {
            return None;
        };
        if !Config::is_startup(&key) {
            return None;
        }
        Some(self.restart(session, &key, &value).await)
    }

    async fn restart(
        &mut self,
        session: &mut Session,
        key: &str,
        value: &str,
    ) -> Result<String, String> {
        let mut config = match &self.config {
            Some(c) => c.clone(),
            None => self.resolve()?,
        };
        config
            .set(key, value, config::Source::Set)
            .map_err(|e| e.to_string())?;
        let fresh = start(&config).await?;
        let tables = fresh
            .adopt_tables(session)
            .await
            .map_err(|e| e.to_string())?;
        *session = fresh;
        self.config = Some(config);
        Ok(format!(
            "session restarted with {key} = {}; {tables} table{} kept",
            session.config().get(key).unwrap_or_default(),
            if tables == 1 { "" } else { "s" }
        ))
    }
}

/// A session with `config`, saying on standard error where executors should connect in
/// cluster mode.
async fn start(config: &Config) -> Result<Session, String> {
    let executors = config.get("kiln.executors").unwrap_or("1").to_string();
    // A UI the user did not ask for does not stop the session when no port is free.
    let optional = matches!(config.source("kiln.ui.port"), Some(config::Source::Default));
    let session = config
        .builder()
        .map_err(|e| e.to_string())?
        .ui_optional(optional)
        .on_listen(move |addr| {
            eprintln!(
                "kiln: waiting for {executors} executor(s); start each with: kiln executor --driver http://{addr}"
            );
        })
        .build()
        .await
        .map_err(|e| e.to_string())?;
    if let Some(url) = session.ui_url() {
        eprintln!("kiln: web UI at {url}");
    }
    Ok(session)
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

/// Runs `kiln sql`; `sources` are the `-e` and `-f` arguments in the order given.
pub(crate) fn main(args: &SqlArgs, sources: Vec<SqlSource>) -> ExitCode {
    let options = Options {
        sources: sources
            .into_iter()
            .map(|s| match s {
                SqlSource::Text(t) => Source::Text(t),
                SqlSource::File(f) => Source::File(f),
            })
            .collect(),
        common: Common::new(&args.session),
        quiet: args.quiet,
    };
    let Some(runtime) = runtime("sql") else {
        return ExitCode::FAILURE;
    };
    exit_code(runtime.block_on(run(options)))
}

async fn run(mut options: Options) -> Result<(), String> {
    let mut session = options.common.session().await?;
    for source in &options.sources {
        let (text, origin) = match source {
            Source::Text(t) => (t.clone(), None),
            Source::File(path) => (
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                Some(path.as_path()),
            ),
        };
        run_script(
            &mut session,
            &text,
            origin,
            &mut options.common,
            !options.quiet,
        )
        .await?;
    }
    Ok(())
}

/// Runs every statement of `text` in order, printing each result (and, with `timing`, a
/// timing line on standard error); stops at the first error, which names `origin` if given.
pub(crate) async fn run_script(
    session: &mut Session,
    text: &str,
    origin: Option<&std::path::Path>,
    common: &mut Common,
    timing: bool,
) -> Result<(), String> {
    let located = |e: String| match origin {
        Some(p) => format!("{}: {e}", p.display()),
        None => e,
    };
    let statements = crate::sql::split_statements(text).map_err(|e| located(e.to_string()))?;
    for statement in statements {
        let start = Instant::now();
        if let Some(restarted) = common.restart_on_set(session, &statement).await {
            let message = restarted.map_err(located)?;
            if timing {
                eprintln!("{message}");
            }
            continue;
        }
        let before = session.metrics();
        let batches = execute(session, &statement).await.map_err(located)?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut out = std::io::stdout().lock();
        print(&mut out, &batches, common.format, common.maxrows)
            .and_then(|()| out.flush().map_err(|e| e.to_string()))?;
        if timing {
            eprintln!(
                "{rows} row{} in {:.3} s{}",
                if rows == 1 { "" } else { "s" },
                start.elapsed().as_secs_f64(),
                faults(&before, &session.metrics())
            );
        }
    }
    Ok(())
}

/// What went wrong and was recovered while a statement ran, for its timing line:
/// ` (executors lost: 1, tasks retried: 2)`, or nothing.
fn faults(before: &crate::Metrics, after: &crate::Metrics) -> String {
    let counts = [
        (
            "executors lost",
            after.executors_lost.saturating_sub(before.executors_lost),
        ),
        (
            "tasks retried",
            after.task_retries.saturating_sub(before.task_retries),
        ),
        (
            "map outputs recomputed",
            after.stage_resubmits.saturating_sub(before.stage_resubmits),
        ),
    ];
    let said: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what}: {n}"))
        .collect();
    if said.is_empty() {
        String::new()
    } else {
        format!(" ({})", said.join(", "))
    }
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
