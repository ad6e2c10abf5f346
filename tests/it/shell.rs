//! `kiln shell` driven in a real pseudo-terminal: multi-line input, a TRAIN with its progress
//! line, Ctrl-C cancelling a long query while the shell stays alive, the dot commands and tab
//! completion.

use std::process::Command;

use rexpect::session::{spawn_command, PtySession};

use crate::sql::kiln_bin;

/// The shell in a pseudo-terminal, in a scratch directory, with its own model catalog and
/// history file; every expectation waits at most 120 s.
fn shell(dir: &std::path::Path) -> PtySession {
    let mut cmd = Command::new(kiln_bin());
    cmd.args(["shell", "--executors", "2", "--models-dir"])
        .arg(dir.join("models"))
        .arg("--history")
        .arg(dir.join("history"))
        .current_dir(dir)
        .env("TERM", "xterm");
    let mut p = spawn_command(cmd, Some(120_000)).expect("spawn kiln shell in a pty");
    p.exp_string("kiln> ").expect("the prompt");
    p
}

#[test]
fn the_shell_reads_multi_line_input_shows_training_progress_and_survives_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = shell(dir.path());

    // One statement over three lines.
    p.send_line("SELECT 40 +").unwrap();
    p.send_line("  2").unwrap();
    p.send_line("  AS answer;").unwrap();
    p.exp_string("42").unwrap();
    p.exp_regex("1 row in [0-9.]+ s").unwrap();
    p.exp_string("kiln> ").unwrap();

    // A fit long enough for the progress line, which names the iteration and the loss.
    p.send_line(
        "CREATE TABLE pts AS SELECT CAST(value % 101 AS DOUBLE) AS a, \
         CAST((value * 7) % 89 AS DOUBLE) AS b FROM range(400000);",
    )
    .unwrap();
    // The prompt is redrawn while a line is echoed, so each statement's own result line is awaited
    // before the next prompt.
    p.exp_regex("0 rows in [0-9.]+ s").unwrap();
    p.exp_string("kiln> ").unwrap();
    p.send_line(
        "TRAIN MODEL km USING kmeans (k = 6, max_iter = 300, tol = 0, seed = 3) \
         FEATURES (a, b) AS SELECT a, b FROM pts;",
    )
    .unwrap();
    p.exp_regex("training iteration [0-9]+/300 loss [0-9.e+]+")
        .unwrap();
    p.exp_regex("rows? in [0-9.]+ s").unwrap();
    p.exp_string("kiln> ").unwrap();

    // Two statements arriving in one write (a paste, or typed ahead) both run, in order.
    p.send("SELECT 'first' || '!' AS a;\nSELECT 'second' || '!' AS b;\n")
        .unwrap();
    p.exp_string("first!").unwrap();
    p.exp_string("second!").unwrap();
    p.exp_regex("1 row in [0-9.]+ s").unwrap();
    p.exp_string("kiln> ").unwrap();

    // The dot commands see the new table and model.
    p.send_line(".tables").unwrap();
    p.exp_string("pts").unwrap();
    p.exp_string("kiln> ").unwrap();
    p.send_line("\\dm").unwrap();
    p.exp_string("km").unwrap();
    p.exp_string("kiln> ").unwrap();

    // Tab completes a table name.
    p.send("SELECT count(*) FROM pt").unwrap();
    p.send("\t").unwrap();
    p.send_line(";").unwrap();
    p.exp_string("400000").unwrap();
    p.exp_string("kiln> ").unwrap();

    // A long query, cancelled once it is running; the shell then takes the next statement.
    p.send_line("SELECT count(*) FROM range(2000000000) a WHERE (a.value * 7919) % 1000003 = 17;")
        .unwrap();
    p.exp_regex("stages [0-9]+/[0-9]+ [|] tasks").unwrap();
    p.send_control('c').unwrap();
    p.exp_regex("cancelled after [0-9.]+ s").unwrap();
    p.exp_string("kiln> ").unwrap();
    p.send_line("SELECT 'still' || ' here' AS alive;").unwrap();
    p.exp_string("still here").unwrap();
    p.exp_string("kiln> ").unwrap();

    // An error is reported and the shell goes on; .quit leaves.
    p.send_line("SELECT * FROM no_such_table;").unwrap();
    p.exp_regex("error: [^\\r\\n]*no_such_table").unwrap();
    p.exp_string("kiln> ").unwrap();
    p.send_line(".quit").unwrap();
    p.exp_eof().unwrap();

    // The history file kept the statements.
    let history = std::fs::read_to_string(dir.path().join("history")).unwrap();
    assert!(history.contains("TRAIN MODEL km"), "{history}");
}

#[test]
fn piped_input_runs_as_a_script_and_fails_on_the_first_error() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let run = |input: &str| {
        let mut child = Command::new(kiln_bin())
            .args(["shell", "--format", "csv", "--models-dir"])
            .arg(dir.path().join("models"))
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let ok = run("SELECT 1 AS one;\nSELECT 2 AS two;\n");
    assert!(ok.status.success(), "{ok:?}");
    let out = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(out, "one\n1\ntwo\n2\n");
    // No progress line or escape codes when nothing is a terminal.
    assert!(!String::from_utf8_lossy(&ok.stderr).contains('\x1b'));
    let bad = run("SELECT 1 AS one;\nSELECT * FROM missing;\nSELECT 3;\n");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("missing"));
    assert_eq!(String::from_utf8_lossy(&bad.stdout), "one\n1\n");
}
