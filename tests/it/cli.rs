//! The `kiln` command line as a user runs it: help and completions from `clap`, tables named
//! by files and URLs, writes, `--maxrows 0`, TLS flags, and clear errors.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::sql::kiln_bin;

fn kiln(args: &[&str], dir: &Path) -> Output {
    Command::new(kiln_bin())
        .args(args)
        .env_remove("KILN_CONFIG")
        .env("XDG_CONFIG_HOME", dir)
        .env("HOME", dir)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn every_subcommand_has_help_and_the_program_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = kiln(&["--help"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for sub in ["executor", "sql", "shell", "health", "gc", "completions"] {
        assert!(help.contains(sub), "{help}");
        let out = kiln(&[sub, "--help"], dir.path());
        assert_eq!(out.status.code(), Some(0), "{sub} --help");
        assert!(text(&out.stdout).contains("Usage: kiln"), "{sub}");
    }
    let sql = text(&kiln(&["sql", "--help"], dir.path()).stdout);
    for flag in [
        "--execute",
        "--file",
        "--format",
        "--maxrows",
        "--local-cluster",
        "--cluster",
        "--set",
        "--tls-cert",
        "--tls-client-ca",
    ] {
        assert!(sql.contains(flag), "{flag} missing from kiln sql --help");
    }
    let executor = text(&kiln(&["executor", "--help"], dir.path()).stdout);
    for flag in [
        "--driver",
        "--slots",
        "--memory",
        "--token-file",
        "--tls-ca",
        "--tls-cert",
        "--tls-key",
    ] {
        assert!(
            executor.contains(flag),
            "{flag} missing from kiln executor --help"
        );
    }
    let out = kiln(&["--version"], dir.path());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("kiln {}", env!("CARGO_PKG_VERSION"))
    );
    // No command, a bad one, or a missing value: usage on standard error, exit code 2.
    for args in [
        &[][..],
        &["nonsense"][..],
        &["sql", "--maxrows", "many", "-e", "SELECT 1"][..],
        &["sql"][..],
    ] {
        let out = kiln(args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("error") || text(&out.stderr).contains("Usage"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn completions_are_generated_for_the_common_shells() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = kiln(&["completions", shell], dir.path());
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        assert!(
            script.contains("executor") && script.contains("maxrows"),
            "{shell}: {script}"
        );
    }
    // Bash really loads it.
    let script = text(&kiln(&["completions", "bash"], dir.path()).stdout);
    let status = Command::new("bash")
        .args(["-c", &format!("{script}\ncomplete -p kiln")])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs `kiln sql -q --format csv` with statements; (exit code, stdout, stderr).
fn sql(statements: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let mut args = vec!["sql", "-q", "--format", "csv"];
    for s in statements {
        args.push("-e");
        args.push(s);
    }
    let out = kiln(&args, dir);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn tables_named_by_files_directories_and_globs() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = sql(
        &[
            "COPY (SELECT value AS v FROM generate_series(1, 10)) TO 'one.parquet'",
            "COPY (SELECT value AS v FROM generate_series(1, 5)) TO 'parts/a.parquet'",
            "COPY (SELECT value AS v FROM generate_series(6, 8)) TO 'parts/b.parquet'",
            "COPY (SELECT value AS v FROM generate_series(1, 4)) TO 'rows.csv'",
            "COPY (SELECT value AS v FROM generate_series(1, 3)) TO 'rows.json'",
            "SELECT count(*) AS n FROM 'one.parquet'",
            "SELECT count(*) AS n, sum(v) AS s FROM 'parts/'",
            "SELECT count(*) AS n FROM 'parts/*.parquet'",
            "SELECT count(*) AS n FROM 'rows.csv'",
            "SELECT count(*) AS n FROM 'rows.json'",
        ],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{err}");
    let counts: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with('n') && !l.starts_with("count"))
        .collect();
    assert_eq!(
        counts[counts.len() - 5..],
        ["10", "8,36", "8", "4", "3"],
        "{out}"
    );
    // A file that is not there is named.
    let (code, _, err) = sql(&["SELECT * FROM 'nope.parquet'"], dir.path());
    assert_eq!(code, Some(1));
    assert!(err.contains("nope.parquet"), "{err}");
}

#[test]
fn tables_named_by_s3_urls() {
    let _s3 = crate::s3::S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = sql(
        &[
            "COPY (SELECT value AS v FROM generate_series(1, 100)) TO 's3://kiln/url-table/a.parquet'",
            "COPY (SELECT value AS v FROM generate_series(101, 150)) TO 's3://kiln/url-table/b.parquet'",
            "SELECT count(*) AS n, sum(v) AS s FROM 's3://kiln/url-table/'",
            "SELECT count(*) AS n FROM 's3://kiln/url-table/a.parquet'",
        ],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("150,11325"), "{out}");
    assert!(out.trim_end().ends_with("100"), "{out}");
}

#[test]
fn insert_into_and_create_table_as_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = sql(
        &[
            "CREATE TABLE m (a INT, b VARCHAR)",
            "INSERT INTO m VALUES (1, 'x'), (2, 'y')",
            "CREATE TABLE c AS SELECT a * 10 AS a FROM m",
            "CREATE EXTERNAL TABLE p (a INT) STORED AS PARQUET LOCATION 'p/'",
            "INSERT INTO p SELECT a FROM c",
            "INSERT INTO p SELECT a + 1 FROM c",
            "SELECT sum(a) AS s FROM p",
        ],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.trim_end().ends_with("s\n62"), "{out}");
    let files: Vec<String> = std::fs::read_dir(dir.path().join("p"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().all(|f| f.starts_with("part-")), "{files:?}");
}

#[test]
fn maxrows_zero_prints_every_row_and_unknown_models_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = kiln(
        &[
            "sql",
            "-q",
            "--maxrows",
            "0",
            "-e",
            "SELECT value FROM generate_series(1, 100)",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let table = text(&out.stdout);
    assert!(table.contains("| 100   |"), "{table}");
    assert!(!table.contains("rows shown"), "{table}");
    let out = kiln(
        &[
            "sql",
            "-q",
            "--maxrows",
            "3",
            "-e",
            "SELECT value FROM generate_series(1, 100)",
        ],
        dir.path(),
    );
    assert!(
        text(&out.stdout).contains("(3 of 100 rows shown"),
        "{}",
        text(&out.stdout)
    );

    let (code, _, err) = sql(&["SELECT predict(nomodel, 1.0)"], dir.path());
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no model named 'nomodel'; registered models: none"),
        "{err}"
    );
}

/// `kiln sql --cluster` with the TLS flags, joined by one `kiln executor` started with
/// `executor_tls`; the executor's exit status when the query is done (or it gave up).
fn cluster_over_tls(
    dir: &Path,
    driver_tls: &[String],
    executor_tls: &[String],
) -> (Option<i32>, String, String) {
    let mut args: Vec<String> = [
        "sql",
        "-q",
        "--format",
        "csv",
        "--cluster",
        "127.0.0.1:0",
        "--executors",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(driver_tls.iter().cloned());
    args.extend([
        "--set".into(),
        "kiln.auth_token=tls-test".into(),
        "-e".into(),
        "SELECT count(*) AS n FROM generate_series(1, 1000)".into(),
    ]);
    let mut driver = Command::new(kiln_bin())
        .args(&args)
        .env_remove("KILN_CONFIG")
        .env("HOME", dir)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The driver says where executors connect.
    let stderr = driver.stderr.take().unwrap();
    let mut reader = std::io::BufReader::new(stderr);
    let mut line = String::new();
    let url = loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert!(n > 0, "the driver ended before listening");
        if let Some((_, url)) = line.trim().split_once("--driver ") {
            break url.replace("http://", "https://");
        }
    };
    let mut executor = Command::new(kiln_bin())
        .args([
            "executor",
            "--driver",
            &url,
            "--slots",
            "1",
            "--tls-domain",
            "localhost",
        ])
        .args(executor_tls)
        .env("KILN_AUTH_TOKEN", "tls-test")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Longer than an executor keeps trying to reach its driver (30 s).
    let deadline = Instant::now() + Duration::from_secs(45);
    let executor_status = loop {
        if let Some(status) = executor.try_wait().unwrap() {
            break status.code();
        }
        if driver.try_wait().unwrap().is_some() || Instant::now() > deadline {
            let _ = executor.kill();
            break executor.wait().unwrap().code();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut executor_err = String::new();
    let _ = std::io::Read::read_to_string(&mut executor.stderr.take().unwrap(), &mut executor_err);
    let _ = driver.kill();
    let out = driver.wait_with_output().unwrap();
    let _ = executor_status;
    (out.status.code(), text(&out.stdout), executor_err)
}

#[test]
fn tls_and_mutual_tls_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = crate::cluster::tls_files(dir.path());
    let (client, client_key) = (
        dir.path().join("client.pem"),
        dir.path().join("client-key.pem"),
    );
    let p = |p: &std::path::PathBuf| p.display().to_string();
    let tls = vec![
        "--tls-cert".to_string(),
        p(&cert),
        "--tls-key".into(),
        p(&key),
        "--tls-ca".into(),
        p(&ca),
    ];
    // TLS: the executor checks the driver's certificate.
    let (_, out, err) = cluster_over_tls(dir.path(), &tls, &["--tls-ca".into(), p(&ca)]);
    assert!(out.contains("1000"), "{out} / executor: {err}");
    // Mutual TLS: an executor with a certificate of the authority joins...
    let mut mutual = tls.clone();
    mutual.extend(["--tls-client-ca".to_string(), p(&ca)]);
    let (_, out, err) = cluster_over_tls(
        dir.path(),
        &mutual,
        &[
            "--tls-ca".into(),
            p(&ca),
            "--tls-cert".into(),
            p(&client),
            "--tls-key".into(),
            p(&client_key),
        ],
    );
    assert!(out.contains("1000"), "{out} / executor: {err}");
    // ...one without is refused and says it could not join.
    let (_, out, err) = cluster_over_tls(dir.path(), &mutual, &["--tls-ca".into(), p(&ca)]);
    assert!(!out.contains("1000"), "{out}");
    assert!(err.contains("kiln executor:"), "{err}");
    // A local cluster with mutual TLS: its children present the driver's certificate.
    let mut args: Vec<String> = vec![
        "sql".into(),
        "-q".into(),
        "--format".into(),
        "csv".into(),
        "--local-cluster".into(),
        "1".into(),
    ];
    args.extend(mutual.iter().cloned());
    args.extend([
        "-e".into(),
        "SELECT count(*) AS n FROM generate_series(1, 7)".into(),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = kiln(&refs, dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains('7'));
    // Incomplete TLS settings are refused naming what is missing.
    let out = kiln(
        &["sql", "--tls-cert", &p(&cert), "-e", "SELECT 1"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--tls-key"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_log_reaches_standard_error_as_text_or_json_and_warnings_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], rust_log: Option<&str>| {
        let mut c = Command::new(kiln_bin());
        c.args(args)
            .env_remove("KILN_CONFIG")
            .env_remove("RUST_LOG")
            .env("HOME", dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::null());
        if let Some(filter) = rust_log {
            c.env("RUST_LOG", filter);
        }
        c.output().unwrap()
    };
    // A damaged model in the catalog: a warning the user sees without asking.
    std::fs::create_dir_all(dir.path().join("models/broken")).unwrap();
    let out = run(
        &["sql", "--models-dir", "models", "-e", "SELECT 1 AS one"],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("WARN") && stderr.contains("skipping a model in the catalog"),
        "{stderr}"
    );
    // Nothing below warnings unless RUST_LOG asks.
    let out = run(
        &["sql", "-e", "SELECT count(*) FROM generate_series(1, 10)"],
        None,
    );
    assert!(
        !text(&out.stderr).contains("DEBUG"),
        "{}",
        text(&out.stderr)
    );
    // RUST_LOG and --log-format json: one JSON object per log line.
    let out = run(
        &[
            "sql",
            "--log-format",
            "json",
            "-e",
            "SELECT count(*) FROM generate_series(1, 10)",
        ],
        Some("kiln=debug"),
    );
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "DEBUG" && l["fields"]["message"] == "stage ready"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["--log-format", "yaml", "sql", "-e", "SELECT 1"], None);
    assert_eq!(out.status.code(), Some(2));
}
