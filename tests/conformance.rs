//! A conformance suite for the distributed path: DataFusion's own sqllogictest files, each
//! statement and query run through Kiln (cut into stages, shipped to executors, shuffled
//! through the store) and through a plain single-node DataFusion `SessionContext`, whose
//! answer is the oracle. The files' recorded answers are not used: only the two engines'
//! answers are compared, so every query DataFusion answers is a test of Kiln.
//!
//! The files come from the `datafusion-sqllogictest` package of the DataFusion version Kiln
//! builds on (`scripts/fetch-conformance.sh` downloads and checks it; the README's test
//! command runs that first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The DataFusion version whose test files the suite runs (the one in `Cargo.lock`).
pub const DATAFUSION_VERSION: &str = "55.2.0";

/// Where `scripts/fetch-conformance.sh` puts the files.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("conformance")
        .join(format!("datafusion-sqllogictest-{DATAFUSION_VERSION}"))
        .join("test_files")
}

/// One record of a test file, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line of the record's header (`statement ...`, `query ...`) in its file (or
    /// the included file).
    pub line: usize,
    /// The file the record comes from, relative to the test files' directory.
    pub file: String,
    /// What it is.
    pub kind: RecordKind,
    /// The SQL text.
    pub sql: String,
    /// The record sorts the rows before comparing them (`rowsort`, `valuesort`).
    pub sorted: bool,
}

/// The kinds of record the suite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// `statement ok` / `statement count N`: must succeed.
    Statement,
    /// `statement error`: expected to fail (run on both engines to keep their state alike).
    StatementError,
    /// `query ...`: rows to compare (in order unless `rowsort`/`valuesort` and the query
    /// sorts them).
    Query,
    /// `query error`: expected to fail.
    QueryError,
}

/// The records of `path` (relative to `root`), with `include`d files expanded in place and
/// records for other engines (`onlyif`/`skipif`) dropped. Stops at `halt`.
///
/// # Errors
/// A file that cannot be read.
pub fn parse_file(root: &Path, path: &Path) -> std::io::Result<Vec<Record>> {
    let text = std::fs::read_to_string(root.join(path))?;
    let name = path.display().to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut skip_next = false;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            None => {
                i += 1;
            }
            Some(w) if w.starts_with('#') => {
                i += 1;
            }
            Some("halt") => break,
            Some("onlyif") => {
                skip_next =
                    words.get(1) != Some(&"DataFusion") && words.get(1) != Some(&"datafusion");
                i += 1;
            }
            Some("skipif") => {
                skip_next =
                    words.get(1) == Some(&"DataFusion") || words.get(1) == Some(&"datafusion");
                i += 1;
            }
            Some("include") => {
                let pattern = words.get(1).copied().unwrap_or("");
                let dir = path.parent().unwrap_or(Path::new(""));
                for included in glob_files(root, dir, pattern) {
                    out.extend(parse_file(root, &included)?);
                }
                i += 1;
            }
            Some(kind @ ("statement" | "query")) => {
                let start = i + 1;
                let expects_error = words.get(1) == Some(&"error");
                let mut sql = Vec::new();
                i += 1;
                while i < lines.len() && !lines[i].trim().is_empty() && lines[i].trim() != "----" {
                    sql.push(lines[i]);
                    i += 1;
                }
                // The expected answer (or error text) after `----`, up to a blank line.
                if i < lines.len() && lines[i].trim() == "----" {
                    while i < lines.len() && !lines[i].trim().is_empty() {
                        i += 1;
                    }
                }
                let kind = match (kind, expects_error) {
                    ("statement", false) => RecordKind::Statement,
                    ("statement", true) => RecordKind::StatementError,
                    (_, false) => RecordKind::Query,
                    (_, true) => RecordKind::QueryError,
                };
                if !std::mem::take(&mut skip_next) && !sql.is_empty() {
                    out.push(Record {
                        line: start,
                        file: name.clone(),
                        kind,
                        sql: sql.join("\n"),
                        sorted: words.iter().any(|w| *w == "rowsort" || *w == "valuesort"),
                    });
                }
            }
            // hash-threshold, control, subtest, sleep, let, connection: nothing to run.
            Some(_) => {
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The files `pattern` (relative to `dir`, `*` matching within a name) names, sorted.
fn glob_files(root: &Path, dir: &Path, pattern: &str) -> Vec<PathBuf> {
    let pattern = pattern.trim_start_matches("./");
    let (sub, name) = match pattern.rsplit_once('/') {
        Some((s, n)) => (dir.join(s), n.to_string()),
        None => (dir.to_path_buf(), pattern.to_string()),
    };
    let Ok(entries) = std::fs::read_dir(root.join(&sub)) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| wildcard(&name, n))
        .map(|n| sub.join(n))
        .collect();
    out.sort();
    out
}

/// `*`-only glob matching.
fn wildcard(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head)
                && (0..=name.len() - head.len().min(name.len()))
                    .any(|k| wildcard(tail, &name[head.len() + k..]))
        }
    }
}

/// Every `.slt` file under `root`, relative, sorted.
pub fn test_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let rel = dir.join(e.file_name());
            if e.path().is_dir() {
                stack.push(rel);
            } else if rel.extension().is_some_and(|x| x == "slt") {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// Queries whose answer is not a function of the data (time, randomness, plans, settings).
pub fn nondeterministic(sql: &str) -> bool {
    let s = sql.to_ascii_lowercase();
    let words = [
        "random(",
        "now(",
        "uuid(",
        "current_date",
        "current_time",
        "localtime",
        "to_timestamp_seconds(now",
        "df_settings",
        "explain ",
        "explain\n",
        "show all",
        "version(",
        "pg_sleep",
    ];
    s.trim_start().starts_with("explain") || words.iter().any(|w| s.contains(w))
}

/// How a query's rows may be compared: in order when its top level sorts them (and it is not
/// marked `rowsort`), as a multiset otherwise; and whether a `LIMIT` without a total order
/// makes which rows come back arbitrary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    /// The outermost query has `ORDER BY`.
    pub ordered: bool,
    /// The outermost query has `LIMIT`, `OFFSET` or `FETCH` (any of them, anywhere: a limit in
    /// a subquery without order picks arbitrary rows too).
    pub limited: bool,
}

/// The [`Shape`] of a statement, from DataFusion's parser.
pub fn shape(sql: &str) -> Shape {
    use datafusion::sql::parser::{DFParser, Statement};
    use datafusion::sql::sqlparser::ast;
    let limited = sql.to_ascii_lowercase().contains("limit")
        || sql.to_ascii_lowercase().contains("offset")
        || sql.to_ascii_lowercase().contains("fetch");
    let ordered = DFParser::parse_sql(sql)
        .ok()
        .and_then(|statements| statements.into_iter().next())
        .map(|s| match s {
            Statement::Statement(inner) => match *inner {
                ast::Statement::Query(q) => q.order_by.is_some(),
                _ => false,
            },
            _ => false,
        })
        .unwrap_or(false);
    Shape { ordered, limited }
}

/// The known differences: `file:line` → reason, from `tests/conformance/known_failures.txt`.
pub fn known_failures() -> BTreeMap<String, String> {
    let text = include_str!("conformance/known_failures.txt");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (key, reason) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (key.to_string(), reason.trim().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn records_are_read_with_their_lines_and_includes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.slt"),
            "# comment\nstatement ok\nCREATE TABLE t(a INT)\n\nquery I rowsort\nSELECT a\nFROM t\n----\n1\n2\n\nonlyif postgres\nquery I\nSELECT 9\n----\n9\n\ninclude ./p*.slt.part\n\nquery error bad\nSELECT x\n\nhalt\n\nquery I\nSELECT 2\n----\n2\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("part1.slt.part"),
            "statement error\nDROP TABLE nope\n",
        )
        .unwrap();
        let records = parse_file(dir.path(), Path::new("a.slt")).unwrap();
        let got: Vec<(usize, &str, RecordKind, &str)> = records
            .iter()
            .map(|r| (r.line, r.file.as_str(), r.kind, r.sql.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, "a.slt", RecordKind::Statement, "CREATE TABLE t(a INT)"),
                (5, "a.slt", RecordKind::Query, "SELECT a\nFROM t"),
                (
                    1,
                    "part1.slt.part",
                    RecordKind::StatementError,
                    "DROP TABLE nope"
                ),
                (20, "a.slt", RecordKind::QueryError, "SELECT x"),
            ]
        );
        assert!(wildcard("q*.slt.part", "q12.slt.part"));
        assert!(!wildcard("q*.slt.part", "x12.slt.part"));
    }
}
