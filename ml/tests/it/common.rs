//! Shared helpers: seeded data and the scikit-learn reference runner.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use kiln_ml::data::{DenseMatrix, Features};
use kiln_ml::CachedPartition;

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

/// Splits row-major `rows` (and an optional label) into `parts` f64 partitions of
/// near-equal size, in order.
pub fn partitions(rows: &[Vec<f64>], label: Option<&[f64]>, parts: usize) -> Vec<CachedPartition> {
    let n = rows.len();
    let d = rows.first().map_or(0, Vec::len);
    let per = n.div_ceil(parts.max(1)).max(1);
    (0..parts)
        .map(|p| {
            let lo = (p * per).min(n);
            let hi = ((p + 1) * per).min(n);
            let flat: Vec<f64> = rows[lo..hi].iter().flatten().copied().collect();
            let m = DenseMatrix::from_row_major(hi - lo, d, &flat).expect("shape");
            CachedPartition::new(
                p as u32,
                Features::F64(m),
                label.map(|l| l[lo..hi].to_vec()),
            )
            .expect("partition")
        })
        .collect()
}

/// Feature names `x0..x{d-1}`.
pub fn names(d: usize) -> Vec<String> {
    (0..d).map(|j| format!("x{j}")).collect()
}
