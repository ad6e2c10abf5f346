//! The `kiln` command line, as a library function so that every front door runs the same
//! program: the `kiln` binary calls [`main`], and so does `python -m kiln`.
//!
//! ```text
//! kiln executor --driver URL [--slots N] [--memory SIZE] [--id NAME] [--token-file PATH]
//!               [--tls-ca PEM [--tls-domain NAME]]
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
//! ```
//!
//! `sql` runs Kiln SQL statements (see [`crate::sql`]) and prints each one's result.
//!
//! ```text
//! kiln shell [--format table|csv|tsv|json|ndjson] [--maxrows N]
//!            [--executors N] [--local-cluster N | --cluster ADDR] [--models-dir DIR]
//!            [--config FILE] [--set KEY=VALUE]... [--history FILE]
//! ```
//!
//! `shell` is the interactive SQL shell (history, multi-line statements, completion, dot
//! commands, a progress line, Ctrl-C cancelling a statement).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use kiln_executor::rpc::{run_executor, AuthToken, ClientTls, WorkerOptions};
use kiln_executor::store::EnvObjectStoreRegistry;
use kiln_executor::ExecutorRuntime;

mod shell;
mod sql;

const USAGE: &str = "usage: kiln executor --driver URL [--slots N] [--memory SIZE] [--id NAME] [--token-file PATH] [--tls-ca PEM [--tls-domain NAME]]
       kiln sql [-e SQL]... [-f FILE]... [--format table|csv|tsv|json|ndjson] [--maxrows N] [--executors N] [--local-cluster N | --cluster ADDR] [--models-dir DIR] [--config FILE] [--set KEY=VALUE]... [--quiet]
       kiln shell [--format table|csv|tsv|json|ndjson] [--maxrows N] [--executors N] [--local-cluster N | --cluster ADDR] [--models-dir DIR] [--config FILE] [--set KEY=VALUE]... [--history FILE]";

/// Runs the `kiln` command with `args` (the arguments after the program name) and returns
/// its exit status. Prints results to standard output and errors to standard error.
pub fn main(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        Some("executor") => match executor(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kiln executor: {e}");
                ExitCode::FAILURE
            }
        },
        Some("sql") => sql::main(&args[1..]),
        Some("shell") => shell::main(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn executor(args: &[String]) -> Result<(), String> {
    let mut driver = None;
    let mut slots = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut memory = None;
    let mut id = format!("exec-{}", std::process::id());
    let mut token_file = None;
    let mut tls_ca = None;
    let mut tls_domain = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--driver" => driver = Some(value()?),
            "--slots" => {
                slots = value()?.parse().map_err(|e| format!("--slots: {e}"))?;
            }
            "--memory" => memory = Some(parse_size(&value()?)?),
            "--id" => id = value()?,
            "--token-file" => token_file = Some(value()?),
            "--tls-ca" => tls_ca = Some(value()?),
            "--tls-domain" => tls_domain = Some(value()?),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let driver = driver.ok_or_else(|| format!("--driver is required\n{USAGE}"))?;
    if slots == 0 {
        return Err("--slots must be >= 1".into());
    }
    let token = match token_file {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the token file {path}: {e}"))?,
        ),
        None => std::env::var(crate::AUTH_TOKEN_ENV).ok(),
    }
    .map(|t| AuthToken::new(&t))
    .transpose()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let options = WorkerOptions {
        driver,
        token,
        id,
        slots,
        memory_bytes: memory,
        connect_timeout: Duration::from_secs(30),
        tls: match tls_ca {
            Some(path) => Some(ClientTls {
                ca_pem: std::fs::read(&path)
                    .map_err(|e| format!("cannot read the TLS authority {path}: {e}"))?,
                domain: tls_domain,
            }),
            None => None,
        },
    };
    runtime
        .block_on(run_executor(options, move |id, config| {
            let mut builder = RuntimeEnvBuilder::new()
                .with_object_store_registry(Arc::new(EnvObjectStoreRegistry::new()));
            if let Some(limit) = memory {
                builder = builder.with_memory_limit(limit, 1.0);
            }
            let env = builder.build_arc()?;
            Ok(ExecutorRuntime::new(id, config, env))
        }))
        .map_err(|e| e.to_string())?;
    // Tasks still running belong to a driver that is gone: do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(500));
    Ok(())
}

/// A byte count with an optional binary suffix: `512m`, `2g`, `1048576`.
fn parse_size(text: &str) -> Result<usize, String> {
    crate::config::parse_size(text)
        .ok_or_else(|| format!("--memory: '{text}' is not a size (e.g. 512m, 4g)"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("4gb").unwrap(), 4 << 30);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
    }
}
