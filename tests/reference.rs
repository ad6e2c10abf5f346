//! Runs the Python reference implementations (`tests/python/*.py`, scikit-learn) that Kiln's
//! ML results are compared against. Shared by the `kiln-ml` and `kiln-tests` suites (both
//! crates sit one level below the workspace root).

#![allow(dead_code, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The Python interpreter with the reference packages: `$KILN_PYTHON`, else the project's
/// `.venv` (created by `./scripts/test.sh`).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("KILN_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python reference environment at {venv:?}: run ./scripts/test.sh (it creates .venv) or set KILN_PYTHON"
    );
    venv
}

/// Runs `tests/python/{script}` with `input` as JSON on stdin and returns its JSON stdout.
pub fn reference(script: &str, input: &serde_json::Value) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/python")
        .join(script);
    let mut child = Command::new(python())
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python reference");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write reference input");
    let out = child.wait_with_output().expect("run the Python reference");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("reference output is JSON")
}
