//! The `kiln` command line's arguments, parsed by `clap`: every subcommand has `--help`, the
//! program has `--version`, and `kiln completions SHELL` prints a completion script.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// Kiln: one engine from SQL to a trained model.
#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Kiln: a dataflow engine for machine-learning pipelines, from SQL to a trained model",
    arg_required_else_help = true,
    propagate_version = true
)]
pub(crate) struct Cli {
    /// How log lines print on standard error: text or json (one object per line). Which
    /// lines print is `RUST_LOG`'s to say [default: warnings and errors].
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub(crate) log_format: String,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Join a driver (a session that listens, or a local cluster) and run its tasks until it
    /// goes away. The shared secret comes from --token-file or $KILN_AUTH_TOKEN.
    Executor(ExecutorArgs),
    /// Run Kiln SQL statements from -e and -f, in the order given, and print each result.
    Sql(SqlArgs),
    /// The interactive SQL shell: history, multi-line statements, completion, dot commands,
    /// a progress line, Ctrl-C cancelling a statement. Reads a script from standard input
    /// when it is not a terminal.
    Shell(ShellArgs),
    /// Exit 0 when the driver's executor endpoint accepts a connection within the timeout, 1
    /// otherwise: a container's health check (an executor's driver, or a driver's own
    /// endpoint).
    Health(HealthArgs),
    /// Remove what killed sessions left under the shuffle and cache roots: the prefixes of
    /// sessions whose lease expired more than the orphan TTL ago (kiln.orphan_ttl_secs).
    /// Live sessions are never touched; every session also makes this pass when it starts.
    Gc(GcArgs),
    /// Serve the web UI over the event logs in DIR (kiln.eventlog.dir; the command line's
    /// default is ~/.kiln/events): every session logged there, finished or killed, with its
    /// jobs, stages, tasks, executors and fits as they were. Runs until interrupted.
    History(HistoryArgs),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell), e.g.
    /// `kiln completions bash > ~/.local/share/bash-completion/completions/kiln`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `kiln history`.
#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// The event log directory or object-store URL [default: ~/.kiln/events].
    #[arg(value_name = "DIR")]
    pub(crate) dir: Option<String>,
    /// The port to serve on (0: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 18080)]
    pub(crate) port: u16,
    /// The address to listen on (off loopback, requests need $KILN_AUTH_TOKEN).
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// A settings file (for an object store's credentials).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// `kiln executor`.
#[derive(Debug, Args)]
pub(crate) struct ExecutorArgs {
    /// The driver's URL: http://HOST:PORT, or https:// when the driver serves TLS.
    #[arg(long, value_name = "URL", env = "KILN_DRIVER")]
    pub(crate) driver: String,
    /// Tasks this executor runs at once [default: the machine's cores].
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub(crate) slots: Option<usize>,
    /// Memory for running tasks, with a binary suffix: 512m, 4g.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub(crate) memory: Option<usize>,
    /// Serve this executor's own /metrics (Prometheus) on this port (0: any free port,
    /// printed on standard error) [default: none].
    #[arg(long, value_name = "PORT", env = "KILN_EXECUTOR_METRICS_PORT")]
    pub(crate) metrics_port: Option<u16>,
    /// The address the metrics listen on (off loopback they need $KILN_AUTH_TOKEN).
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
    pub(crate) metrics_host: String,
    /// The name this executor asks for (the driver makes it unique) [default: exec-PID].
    #[arg(long, value_name = "NAME")]
    pub(crate) id: Option<String>,
    /// A file holding the shared secret [default: $KILN_AUTH_TOKEN].
    #[arg(long, value_name = "PATH")]
    pub(crate) token_file: Option<PathBuf>,
    /// TLS: the PEM certificate authority that signed the driver's certificate.
    #[arg(long, value_name = "PEM")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// TLS: the name the driver's certificate must carry [default: the URL's host].
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub(crate) tls_domain: Option<String>,
    /// Mutual TLS: this executor's PEM certificate, presented to a driver that checks
    /// executors' certificates (--tls-client-ca on the driver).
    #[arg(long, value_name = "PEM", requires_all = ["tls_key", "tls_ca"])]
    pub(crate) tls_cert: Option<PathBuf>,
    /// Mutual TLS: the private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
}

/// `kiln health`.
#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// The driver's URL: http://HOST:PORT or https://HOST:PORT.
    #[arg(long, value_name = "URL", env = "KILN_DRIVER")]
    pub(crate) driver: String,
    /// How long to wait for the connection, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3)]
    pub(crate) timeout: u64,
}

/// `kiln gc`.
#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// The shuffle root to clean (kiln.shuffle.root) [default: the temporary directory].
    #[arg(long, value_name = "URL")]
    pub(crate) shuffle_root: Option<String>,
    /// The cache root to clean, when it is not under the shuffle root (kiln.cache.root).
    #[arg(long, value_name = "URL")]
    pub(crate) cache_root: Option<String>,
    /// Seconds since a session's lease was last renewed before its files count as orphaned
    /// (kiln.orphan_ttl_secs; a lease is kept at least as long as the TTL its session gave).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) ttl: Option<u64>,
    /// A config file of `key = value` settings [default: $KILN_CONFIG, else
    /// ~/.config/kiln/kiln.conf].
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// A setting, e.g. --set kiln.shuffle.root=s3://bucket/shuffle/ (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = setting, action = ArgAction::Append)]
    pub(crate) set: Vec<(&'static str, String)>,
}

/// The options of a session and its output, shared by `kiln sql` and `kiln shell`. Every
/// `kiln.*` setting can also come from the config file, its environment variable or --set.
#[derive(Debug, Args)]
pub(crate) struct SessionArgs {
    /// How results print: table, csv, tsv, json or ndjson.
    #[arg(long, value_name = "FORMAT", default_value = "table", value_parser = parse_format)]
    pub(crate) format: Format,
    /// Rows a table shows (0: all) [default: 40 for tables, all otherwise].
    #[arg(long, value_name = "N", value_parser = row_limit)]
    pub(crate) maxrows: Option<usize>,
    /// Executors of the session (kiln.executors).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub(crate) executors: Option<usize>,
    /// Run N executors as child processes of this one (kiln.mode = local_cluster).
    #[arg(long, value_name = "N", value_parser = at_least_one, conflicts_with = "cluster")]
    pub(crate) local_cluster: Option<usize>,
    /// Listen on ADDR for executors started elsewhere with `kiln executor --driver`
    /// (kiln.mode = cluster, kiln.cluster.listen; port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    pub(crate) cluster: Option<String>,
    /// The model catalog's directory (kiln.models_dir).
    #[arg(long, value_name = "DIR")]
    pub(crate) models_dir: Option<String>,
    /// A config file of `key = value` settings [default: $KILN_CONFIG, else
    /// ~/.config/kiln/kiln.conf].
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// A setting, e.g. --set kiln.max_task_attempts=6 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = setting, action = ArgAction::Append)]
    pub(crate) set: Vec<(&'static str, String)>,
    /// TLS of the driver's executor endpoint: its PEM certificate (kiln.cluster.tls_cert).
    #[arg(long, value_name = "PEM", requires_all = ["tls_key", "tls_ca"])]
    pub(crate) tls_cert: Option<PathBuf>,
    /// TLS: the private key of --tls-cert (kiln.cluster.tls_key).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// TLS: the authority that signed --tls-cert, which local-cluster executors trust
    /// (kiln.cluster.tls_ca).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Mutual TLS: executors must present a certificate signed by this authority
    /// (kiln.cluster.tls_client_ca).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_client_ca: Option<PathBuf>,
}

/// `kiln sql`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("statements").required(true).multiple(true).args(["execute", "file"]))]
pub(crate) struct SqlArgs {
    /// Statements to run (one or more, separated by ';'); repeatable.
    #[arg(short = 'e', long = "execute", value_name = "SQL", action = ArgAction::Append)]
    pub(crate) execute: Vec<String>,
    /// A script of statements to run; repeatable, in order with -e.
    #[arg(short = 'f', long = "file", value_name = "FILE", action = ArgAction::Append)]
    pub(crate) file: Vec<PathBuf>,
    /// No timing line on standard error.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) session: SessionArgs,
}

/// `kiln shell`.
#[derive(Debug, Args)]
pub(crate) struct ShellArgs {
    /// The history file [default: $KILN_HISTORY, else ~/.kiln_history].
    #[arg(long, value_name = "FILE")]
    pub(crate) history: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) session: SessionArgs,
}

/// A statement source of `kiln sql`, in command-line order.
pub(crate) enum SqlSource {
    Text(String),
    File(PathBuf),
}

fn at_least_one(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("must be a number >= 1, got '{text}'"))
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

/// A row limit for `table` output.
pub(crate) fn row_limit(text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("the row limit must be a number of rows, got '{text}'"))
}

/// The output format named `text`.
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

fn size(text: &str) -> Result<usize, String> {
    crate::config::parse_size(text).ok_or_else(|| format!("'{text}' is not a size (e.g. 512m, 4g)"))
}

fn setting(text: &str) -> Result<(&'static str, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("--set takes KEY=VALUE, got '{text}'"))?;
    let key = crate::config::known_key(key.trim()).map_err(|e| e.to_string())?;
    Ok((key, value.trim().to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
