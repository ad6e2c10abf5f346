//! DataFusion's sqllogictest files through the distributed path, with single-node DataFusion
//! as the oracle (see `kiln_tests::conformance`). The files are split into shards so that the
//! test runner spreads them over the machine's cores.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::FutureExt;
use kiln::Session;
use kiln_tests::conformance::{
    default_dir, known_failures, nondeterministic, parse_file, shape, test_files, RecordKind,
};

use crate::common::rows;

/// Shards of the file list; each is one test.
const SHARDS: usize = 8;
/// Longest a statement may take on either engine.
const TIMEOUT: Duration = Duration::from_secs(60);

/// What a record did on one engine: its rows in the order they came, or its error.
enum Outcome {
    Rows(Vec<Vec<String>>),
    Error(String),
}

async fn run_on<F>(work: F) -> Outcome
where
    F: std::future::Future<Output = Result<Vec<RecordBatch>, String>>,
{
    match tokio::time::timeout(TIMEOUT, AssertUnwindSafe(work).catch_unwind()).await {
        Err(_) => Outcome::Error(format!("timed out after {TIMEOUT:?}")),
        Ok(Err(_)) => Outcome::Error("panicked".to_string()),
        Ok(Ok(Err(e))) => Outcome::Error(e),
        Ok(Ok(Ok(batches))) => Outcome::Rows(rows(&batches)),
    }
}

/// `outcome` with the engine's scratch directory (`scratch`, which ends in `/`) written as
/// `SCRATCH/` wherever a value names a path in it (`input_file_name()`), so the two engines'
/// answers compare.
fn neutral(outcome: Outcome, scratch: &str) -> Outcome {
    let Outcome::Rows(rows) = outcome else {
        return outcome;
    };
    let relative = scratch.trim_start_matches('/');
    Outcome::Rows(
        rows.into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| v.replace(scratch, "SCRATCH/").replace(relative, "SCRATCH/"))
                    .collect()
            })
            .collect(),
    )
}

fn sorted(mut r: Vec<Vec<String>>) -> Vec<Vec<String>> {
    r.sort();
    r
}

/// Counts of one shard.
#[derive(Debug, Default)]
struct Tally {
    files: usize,
    compared: usize,
    passed: usize,
    skipped: usize,
    failures: Vec<(String, String)>,
}

/// Runs every record of `file` on a fresh Kiln session and a fresh DataFusion context.
async fn run_file(root: &Path, file: &Path, scratch: &Path, tally: &mut Tally) {
    let Ok(records) = parse_file(root, file) else {
        return;
    };
    tally.files += 1;
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(2)
        .build()
        .await
        .expect("session starts");
    let mut oracle = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(4)
            .with_information_schema(true),
    );
    // DataFusion's own runner reads files named in FROM for this file only; Kiln always does.
    if file == Path::new("dynamic_file.slt") {
        oracle = oracle.enable_url_table();
    }
    // Paths the files write to and read back from: a scratch directory per file and per
    // engine, so that each reads back only what it wrote itself.
    let scratch_of = |engine: &str| {
        let dir = scratch.join(engine).join(file.with_extension(""));
        format!("{}/", dir.display())
    };
    let (oracle_scratch, kiln_scratch) = (scratch_of("datafusion"), scratch_of("kiln"));
    for record in records {
        let sql = record.sql.replace("test_files/scratch/", &kiln_scratch);
        let oracle_sql = record.sql.replace("test_files/scratch/", &oracle_scratch);
        let expected = run_on(async {
            let df = oracle.sql(&oracle_sql).await.map_err(|e| e.to_string())?;
            df.collect().await.map_err(|e| e.to_string())
        })
        .await;
        let got = run_on(async {
            let df = kiln.sql(&sql).await.map_err(|e| e.to_string())?;
            df.collect().await.map_err(|e| e.to_string())
        })
        .await;
        let is_query = record.kind == RecordKind::Query;
        // An included file is named after the file that includes it: `top.slt>part:line`.
        let top = file.display().to_string();
        let key = if record.file == top {
            format!("{top}:{}", record.line)
        } else {
            format!("{top}>{}:{}", record.file, record.line)
        };
        let show = |r: &[Vec<String>]| {
            r.iter()
                .take(4)
                .map(|row| row.join(","))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        match (
            neutral(expected, &oracle_scratch),
            neutral(got, &kiln_scratch),
        ) {
            (Outcome::Error(_), Outcome::Error(_)) => tally.skipped += 1,
            // DataFusion refuses what Kiln answers: a difference too (unless the answer
            // depends on time or randomness).
            (Outcome::Error(e), Outcome::Rows(b)) => {
                if nondeterministic(&sql) {
                    tally.skipped += 1;
                } else {
                    tally.compared += 1;
                    tally.failures.push((
                        key,
                        format!(
                            "DataFusion failed ({e}), Kiln answered {} rows [{}]",
                            b.len(),
                            show(&b)
                        ),
                    ));
                }
            }
            (Outcome::Rows(_), Outcome::Error(e)) => {
                tally.compared += 1;
                tally.failures.push((key, format!("Kiln failed: {e}")));
            }
            (Outcome::Rows(a), Outcome::Rows(b)) => {
                if nondeterministic(&sql) {
                    tally.skipped += 1;
                    continue;
                }
                tally.compared += 1;
                let form = shape(&sql);
                // Rows in order where the query sorts them and the file does not; a limit
                // without an order picks arbitrary rows, so only their number counts then.
                let equal = if is_query && form.limited && !form.ordered {
                    a.len() == b.len()
                } else if is_query && form.ordered && !record.sorted {
                    a == b
                } else {
                    sorted(a.clone()) == sorted(b.clone())
                };
                if equal {
                    tally.passed += 1;
                } else {
                    tally.failures.push((
                        key,
                        format!(
                            "different rows: DataFusion {} [{}], Kiln {} [{}]",
                            a.len(),
                            show(&a),
                            b.len(),
                            show(&b)
                        ),
                    ));
                }
            }
        }
    }
}

async fn shard(index: usize) {
    let root = std::env::var_os("KILN_CONFORMANCE_DIR")
        .map(Into::into)
        .unwrap_or_else(default_dir);
    assert!(
        root.is_dir(),
        "the conformance files are not at {}: run scripts/fetch-conformance.sh (the test \
         command does)",
        root.display()
    );
    let files = test_files(&root);
    assert!(files.len() > 100, "only {} test files found", files.len());
    let scratch = tempfile::tempdir().expect("scratch directory");
    let mut tally = Tally::default();
    for (i, file) in files.iter().enumerate() {
        if i % SHARDS == index {
            run_file(&root, file, scratch.path(), &mut tally).await;
        }
    }
    let known = known_failures();
    let unexpected: Vec<&(String, String)> = tally
        .failures
        .iter()
        .filter(|(k, _)| !known.contains_key(k))
        .collect();
    let failed: std::collections::BTreeSet<&str> =
        tally.failures.iter().map(|(k, _)| k.as_str()).collect();
    let stale: Vec<&String> = known
        .keys()
        .filter(|k| shard_of(&files, k) == Some(index) && !failed.contains(k.as_str()))
        .collect();
    let summary = format!(
        "shard {index}: {} files, {} compared, {} passed, {} known differences, {} skipped (DataFusion refuses them, or not a function of the data)",
        tally.files,
        tally.compared,
        tally.passed,
        tally.failures.len() - unexpected.len(),
        tally.skipped
    );
    eprintln!("{summary}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/conformance/results");
    if std::fs::create_dir_all(&out).is_ok() {
        let body = serde_json::json!({
            "shard": index,
            "files": tally.files,
            "compared": tally.compared,
            "passed": tally.passed,
            "known": tally.failures.len() - unexpected.len(),
            "skipped": tally.skipped,
        });
        let _ = std::fs::write(out.join(format!("shard-{index}.json")), body.to_string());
    }
    let report: Vec<String> = unexpected
        .iter()
        .map(|(k, why)| format!("{k}  {why}"))
        .collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "{summary}\n{} unexpected difference(s):\n{}\n{} entries of known_failures.txt no longer differ: {:?}",
        unexpected.len(),
        report.join("\n"),
        stale.len(),
        stale
    );
}

/// The shard that runs the file of a `file:line` (or `file>part:line`) key.
fn shard_of(files: &[std::path::PathBuf], key: &str) -> Option<usize> {
    let file = key.split(['>', ':']).next()?;
    files
        .iter()
        .position(|f| f.display().to_string() == file)
        .map(|i| i % SHARDS)
}

macro_rules! shards {
    ($($name:ident = $i:expr),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            shard($i).await;
        }
    )*};
}

shards!(
    datafusion_slt_shard_0 = 0,
    datafusion_slt_shard_1 = 1,
    datafusion_slt_shard_2 = 2,
    datafusion_slt_shard_3 = 3,
    datafusion_slt_shard_4 = 4,
    datafusion_slt_shard_5 = 5,
    datafusion_slt_shard_6 = 6,
    datafusion_slt_shard_7 = 7
);
