//! The `kiln` command line, as a library function so that every front door runs the same
//! program: the `kiln` binary calls [`main`], and so does `python -m kiln`.
//!
//! Arguments are parsed by `clap` (`kiln --help`, `kiln SUBCOMMAND --help`, `kiln --version`,
//! `kiln completions bash|zsh|fish|elvish|powershell`).
//!
//! ```text
//! kiln executor --driver URL [--slots N] [--memory SIZE] [--id NAME] [--token-file PATH]
//!               [--tls-ca PEM [--tls-domain NAME] [--tls-cert PEM --tls-key PEM]]
//! ```
//!
//! `executor` joins a driver (a session built with `listen` or `local_cluster`) and runs its
//! tasks until the driver goes away. The shared secret comes from `--token-file` or
//! `$KILN_AUTH_TOKEN`.
//!
//! ```text
//! kiln sql [-e SQL]... [-f FILE]... [--format table|csv|tsv|json|ndjson] [--maxrows N]
//!          [--executors N] [--local-cluster N | --cluster ADDR] [--models-dir DIR]
//!          [--config FILE] [--set KEY=VALUE]... [--quiet]
//!          [--tls-cert PEM --tls-key PEM --tls-ca PEM [--tls-client-ca PEM]]
//! ```
//!
//! `sql` runs Kiln SQL statements (see [`crate::sql`]) and prints each one's result
//! (`--maxrows 0`: every row).
//!
//! ```text
//! kiln shell [--format table|csv|tsv|json|ndjson] [--maxrows N]
//!            [--executors N] [--local-cluster N | --cluster ADDR] [--models-dir DIR]
//!            [--config FILE] [--set KEY=VALUE]... [--history FILE] [--tls-... as sql]
//! ```
//!
//! `shell` is the interactive SQL shell (history, multi-line statements, completion, dot
//! commands, a progress line, Ctrl-C cancelling a statement).
//!
//! ```text
//! kiln health [--driver URL] [--timeout SECONDS]
//! kiln gc [--shuffle-root URL] [--cache-root URL] [--ttl SECONDS] [--config FILE] [--set KEY=VALUE]...
//! ```
//!
//! `health` exits 0 when the driver's endpoint accepts a connection (a container's health
//! check). `gc` removes the shuffle and cache prefixes of killed sessions whose lease expired
//! (see [`crate::Session::remove_orphans`]) and prints them.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use kiln_executor::rpc::{run_executor, AuthToken, ClientTls, WorkerOptions};
use kiln_executor::store::EnvObjectStoreRegistry;
use kiln_executor::ExecutorRuntime;

mod args;
mod shell;
mod sql;

use args::{Cli, Command, ExecutorArgs, GcArgs, HealthArgs, HistoryArgs, SqlSource};

/// Runs the `kiln` command with `args` (the arguments after the program name) and returns
/// its exit status: 0, 1 after an error it printed, 2 for bad arguments. Prints results to
/// standard output and errors to standard error.
pub fn main(args: &[String]) -> ExitCode {
    let argv = std::iter::once("kiln".to_string()).chain(args.iter().cloned());
    let parsed = Cli::command()
        .try_get_matches_from(argv)
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(p) => p,
        Err(e) => {
            // --help and --version are "errors" that print to standard output and exit 0.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    install_log(&cli.log_format);
    match cli.command {
        Command::Executor(a) => match executor(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kiln executor: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Sql(a) => {
            let sources = matches
                .subcommand_matches("sql")
                .map(sql_sources)
                .unwrap_or_default();
            sql::main(&a, sources)
        }
        Command::Shell(a) => shell::main(&a),
        Command::Health(a) => match health(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kiln health: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Gc(a) => match gc(&a) {
            Ok(report) => {
                for prefix in &report.prefixes {
                    println!("{prefix}");
                }
                eprintln!(
                    "kiln gc: removed {} orphaned session prefix{} ({} object{})",
                    report.prefixes.len(),
                    if report.prefixes.len() == 1 { "" } else { "es" },
                    report.objects,
                    if report.objects == 1 { "" } else { "s" },
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kiln gc: {e}");
                ExitCode::FAILURE
            }
        },
        Command::History(a) => match history(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kiln history: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

/// Prints the engine's log on standard error: what `RUST_LOG` lets through (default:
/// warnings and errors), as text or as one JSON object per line. A program that already
/// installed a subscriber (a Python host, say) keeps its own.
fn install_log(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
}

/// The `-e` and `-f` arguments of `kiln sql`, in the order they were given.
fn sql_sources(m: &clap::ArgMatches) -> Vec<SqlSource> {
    let mut out: Vec<(usize, SqlSource)> = Vec::new();
    if let (Some(values), Some(indices)) =
        (m.get_many::<String>("execute"), m.indices_of("execute"))
    {
        out.extend(
            indices
                .zip(values)
                .map(|(i, v)| (i, SqlSource::Text(v.clone()))),
        );
    }
    if let (Some(values), Some(indices)) = (
        m.get_many::<std::path::PathBuf>("file"),
        m.indices_of("file"),
    ) {
        out.extend(
            indices
                .zip(values)
                .map(|(i, v)| (i, SqlSource::File(v.clone()))),
        );
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, s)| s).collect()
}

/// A one-executor embedded session on the roots `args` name, and its pass over them.
fn gc(args: &GcArgs) -> Result<crate::OrphanReport, String> {
    use crate::config::{Config, Source};
    let mut config = Config::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    let mut flags = args.set.clone();
    if let Some(root) = &args.shuffle_root {
        flags.push(("kiln.shuffle.root", root.clone()));
    }
    if let Some(root) = &args.cache_root {
        flags.push(("kiln.cache.root", root.clone()));
    }
    if let Some(ttl) = args.ttl {
        flags.push(("kiln.orphan_ttl_secs", ttl.to_string()));
    }
    for (key, value) in &flags {
        config
            .set(key, value, Source::Flag)
            .map_err(|e| e.to_string())?;
    }
    let runtime = sql::runtime("gc").ok_or("no async runtime")?;
    runtime.block_on(async {
        let session = embedded_session(config).await?;
        session.remove_orphans().await.map_err(|e| e.to_string())
    })
}

/// A one-executor embedded session with `config`, for a command that only needs the
/// session's stores and roots (`gc`, `history`).
async fn embedded_session(mut config: crate::config::Config) -> Result<crate::Session, String> {
    for (key, value) in [("kiln.mode", "embedded"), ("kiln.executors", "1")] {
        config
            .set(key, value, crate::config::Source::Flag)
            .map_err(|e| e.to_string())?;
    }
    config
        .builder()
        .map_err(|e| e.to_string())?
        .build()
        .await
        .map_err(|e| e.to_string())
}

/// Reads the event logs under the directory `args` names and serves the UI over them until
/// interrupted.
fn history(args: &HistoryArgs) -> Result<(), String> {
    use crate::config::Config;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => crate::eventlog::default_dir().ok_or("name the event log directory (no $HOME)")?,
    };
    let config = Config::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    let runtime = sql::runtime("history").ok_or("no async runtime")?;
    runtime.block_on(async {
        // A session only for its object stores (credentials from the settings).
        let session = embedded_session(config).await?;
        session
            .inner
            .stores
            .ensure(&dir)
            .map_err(|e| e.to_string())?;
        let states = crate::eventlog::read(&dir, &session.inner.ctx.runtime_env())
            .await
            .map_err(|e| e.to_string())?;
        let count = states.len();
        let server = crate::ui::serve(
            &args.host,
            args.port,
            crate::ui::history(states),
            std::env::var(crate::config::AUTH_TOKEN_ENV).ok(),
        )
        .await
        .map_err(|e| e.to_string())?;
        eprintln!(
            "kiln history: {count} session{} from {dir} at http://{}/",
            if count == 1 { "" } else { "s" },
            server.addr()
        );
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
        drop(server);
        Ok(())
    })
}

/// Connects to the driver's endpoint (TCP), within the timeout.
fn health(args: &HealthArgs) -> Result<(), String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let url = url::Url::parse(&args.driver)
        .map_err(|e| format!("'{}' is not a URL: {e}", args.driver))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("'{}' names no host", args.driver))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("'{}' names no port", args.driver))?;
    let timeout = std::time::Duration::from_secs(args.timeout.max(1));
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

fn executor(args: &ExecutorArgs) -> Result<(), String> {
    let slots = args
        .slots
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("exec-{}", std::process::id()));
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?,
        ),
        None => std::env::var(crate::AUTH_TOKEN_ENV).ok(),
    }
    .map(|t| AuthToken::new(&t))
    .transpose()?;
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
    };
    let tls = match &args.tls_ca {
        Some(ca) => Some(ClientTls {
            ca_pem: read("TLS authority", ca)?,
            domain: args.tls_domain.clone(),
            identity: match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => {
                    Some((read("TLS certificate", cert)?, read("TLS key", key)?))
                }
                _ => None,
            },
        }),
        None => None,
    };
    let memory = args.memory;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let options = WorkerOptions {
        driver: args.driver.clone(),
        token,
        id,
        slots,
        memory_bytes: memory,
        connect_timeout: Duration::from_secs(30),
        tls,
    };
    let driver = args.driver.clone();
    let joined = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let joined_once = Arc::clone(&joined);
    let stats: Arc<std::sync::OnceLock<Arc<kiln_executor::runtime::RuntimeStats>>> = Arc::default();
    let _metrics = match args.metrics_port {
        Some(port) => {
            let server = runtime
                .block_on(crate::ui::serve(
                    &args.metrics_host,
                    port,
                    crate::ui::executor_metrics(crate::prom::executor_registry(Arc::clone(&stats))),
                    std::env::var(crate::AUTH_TOKEN_ENV).ok(),
                ))
                .map_err(|e| e.to_string())?;
            eprintln!("kiln executor: metrics at http://{}/metrics", server.addr());
            Some(server)
        }
        None => None,
    };
    let stats_once = Arc::clone(&stats);
    let served = runtime.block_on(run_executor(options, move |id, config| {
        // The one line a container's log shows of a healthy executor.
        eprintln!("kiln executor: joined the driver at {driver} as {id}");
        joined_once.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut builder = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(EnvObjectStoreRegistry::new()));
        if let Some(limit) = memory {
            builder = builder.with_memory_limit(limit, 1.0);
        }
        let env = builder.build_arc()?;
        let runtime = ExecutorRuntime::new(id, config, env);
        let _ = stats_once.set(runtime.stats());
        Ok(runtime)
    }));
    match served {
        Ok(()) => eprintln!("kiln executor: the driver is gone; exiting"),
        // Once joined, a broken stream is a driver that went away without a word (killed,
        // or cut off): say so rather than how the connection broke.
        Err(e) if joined.load(std::sync::atomic::Ordering::Relaxed) => {
            return Err(format!("lost the driver at {} ({e}); exiting", args.driver))
        }
        Err(e) => return Err(e.to_string()),
    }
    // Tasks still running belong to a driver that is gone: do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(500));
    Ok(())
}
