//! Kiln's SQL dialect: the golden files under `tests/slt`, the metrics EVALUATE returns against
//! the Rust evaluators, and the `kiln sql` command.
//!
//! The golden files use the sqllogictest format (the subset below). Each file runs in a fresh
//! session (two executors) with its own scratch directory as the model catalog; `__SCRATCH__`
//! in a statement is replaced by that directory.
//!
//! ```text
//! statement ok              statement error <regex>        query <types> [rowsort]
//! <sql>                     <sql>                          <sql>
//!                                                          ----
//! query error <regex>                                      <row: values separated by spaces>
//! <sql>
//! ```
//!
//! Values print as `NULL` for null, `(empty)` for an empty string, floats rounded to six
//! decimals with trailing zeros dropped, everything else as Arrow displays it. An expected
//! row ending in ` *` matches any row starting with what comes before the `*` (for figures
//! that change from run to run, such as times). Records are separated by blank lines; `#`
//! starts a comment line.

use std::path::{Path, PathBuf};

use arrow::array::{Array, Float64Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::array_value_to_string;
use kiln::ml::{Average, ClassificationMetric, Evaluator, RegressionMetric};
use kiln::Session;

/// One record of a golden file.
#[derive(Debug)]
enum Record {
    Statement {
        line: usize,
        sql: String,
        error: Option<String>,
    },
    Query {
        line: usize,
        sql: String,
        rowsort: bool,
        expected: Vec<String>,
        error: Option<String>,
    },
}

fn parse_slt(text: &str, file: &Path) -> Vec<Record> {
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i + 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        let error = (words.get(1) == Some(&"error"))
            .then(|| line.split_once("error").map(|(_, r)| r.trim().to_string()))
            .flatten();
        i += 1;
        let mut sql = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() && lines[i].trim_end() != "----" {
            sql.push(lines[i]);
            i += 1;
        }
        let sql = sql.join("\n");
        match words.first() {
            Some(&"statement") => records.push(Record::Statement {
                line: start,
                sql,
                error,
            }),
            Some(&"query") => {
                let mut expected = Vec::new();
                if i < lines.len() && lines[i].trim_end() == "----" {
                    i += 1;
                    while i < lines.len() && !lines[i].trim().is_empty() {
                        expected.push(lines[i].trim_end().to_string());
                        i += 1;
                    }
                }
                records.push(Record::Query {
                    line: start,
                    sql,
                    rowsort: words.contains(&"rowsort"),
                    expected,
                    error,
                });
            }
            _ => panic!("{}:{start}: unknown record '{line}'", file.display()),
        }
    }
    records
}

/// A value as the golden files write it.
fn cell(column: &dyn Array, row: usize) -> String {
    if column.is_null(row) {
        return "NULL".into();
    }
    match column.data_type() {
        DataType::Float64 | DataType::Float32 => {
            let v = match column.as_any().downcast_ref::<Float64Array>() {
                Some(a) => a.value(row),
                None => array_value_to_string(column, row)
                    .expect("displayable")
                    .parse()
                    .expect("a float"),
            };
            round6(v)
        }
        _ => {
            let text = array_value_to_string(column, row).expect("displayable");
            if text.is_empty() {
                return "(empty)".into();
            }
            // Numbers inside text (a model's JSON summary) are rounded as float cells are.
            let long = regex::Regex::new(r"-?\d+\.\d{7,}(e-?\d+)?").expect("a valid regex");
            long.replace_all(&text, |c: &regex::Captures<'_>| {
                let v: f64 = c[0].parse().expect("a float");
                round6(v)
            })
            .into_owned()
        }
    }
}

/// `v` rounded to six decimals, trailing zeros dropped.
fn round6(v: f64) -> String {
    let text = format!("{v:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

fn render(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let row: Vec<String> = b.columns().iter().map(|c| cell(c.as_ref(), r)).collect();
            out.push(row.join(" "));
        }
    }
    out
}

async fn run_statement(kiln: &Session, sql: &str) -> Result<Vec<RecordBatch>, String> {
    let df = kiln.sql(sql).await.map_err(|e| e.to_string())?;
    df.collect().await.map_err(|e| e.to_string())
}

fn check_error(place: &str, sql: &str, got: Result<Vec<RecordBatch>, String>, pattern: &str) {
    match got {
        Ok(_) => panic!("{place}: expected an error matching '{pattern}', got success:\n{sql}"),
        Err(message) => {
            let re = regex::Regex::new(pattern).expect("a valid regex");
            assert!(
                re.is_match(&message),
                "{place}: the error does not match '{pattern}':\n{message}\n{sql}"
            );
        }
    }
}

async fn run_file(path: &Path) {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(1)
        .models_dir(scratch.path().join("models"))
        .build()
        .await
        .expect("session");
    let text = std::fs::read_to_string(path).expect("readable golden file");
    let scratch_text = scratch.path().display().to_string();
    // `KILN_SLT_COMPLETE=1` writes the results into the file instead of comparing (review
    // the diff before committing it).
    let complete = std::env::var_os("KILN_SLT_COMPLETE").is_some();
    let mut completions: Vec<(usize, Vec<String>)> = Vec::new();
    for record in parse_slt(&text, path) {
        match record {
            Record::Statement { line, sql, error } => {
                let sql = sql.replace("__SCRATCH__", &scratch_text);
                let place = format!("{}:{line}", path.display());
                let got = run_statement(&kiln, &sql).await;
                match error {
                    Some(pattern) => check_error(&place, &sql, got, &pattern),
                    None => {
                        if let Err(e) = got {
                            panic!("{place}: statement failed: {e}\n{sql}");
                        }
                    }
                }
            }
            Record::Query {
                line,
                sql,
                rowsort,
                expected,
                error,
            } => {
                let sql = sql.replace("__SCRATCH__", &scratch_text);
                let place = format!("{}:{line}", path.display());
                let got = run_statement(&kiln, &sql).await;
                if let Some(pattern) = error {
                    check_error(&place, &sql, got, &pattern);
                    continue;
                }
                let batches = got.unwrap_or_else(|e| panic!("{place}: query failed: {e}\n{sql}"));
                let mut rows: Vec<String> = render(&batches)
                    .into_iter()
                    .map(|r| r.replace(&scratch_text, "__SCRATCH__"))
                    .collect();
                let mut expected = expected;
                if rowsort {
                    rows.sort();
                    expected.sort();
                }
                if complete {
                    completions.push((line, rows));
                    continue;
                }
                // An expected row ending in ` *` matches any row that starts with the rest
                // (figures that vary from run to run, such as times).
                let matches = rows.len() == expected.len()
                    && rows.iter().zip(&expected).all(|(got, want)| {
                        got == want
                            || want.strip_suffix('*').is_some_and(|prefix| {
                                prefix.ends_with(' ') && got.starts_with(prefix)
                            })
                    });
                assert!(
                    matches,
                    "{place}: query results differ\n{sql}\n--- got:\n{}\n--- expected:\n{}\n",
                    rows.join("\n"),
                    expected.join("\n")
                );
            }
        }
    }
    if complete {
        std::fs::write(path, completed(&text, &completions)).expect("writable golden file");
    }
}

/// `text` with the results of the queries whose records start at the given lines.
fn completed(text: &str, completions: &[(usize, Vec<String>)]) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        out.push(lines[i].to_string());
        i += 1;
        if let Some((_, rows)) = completions.iter().find(|(l, _)| *l == i) {
            while i < lines.len() && !lines[i].trim().is_empty() && lines[i].trim_end() != "----" {
                out.push(lines[i].to_string());
                i += 1;
            }
            out.push("----".into());
            if i < lines.len() && lines[i].trim_end() == "----" {
                i += 1;
                while i < lines.len() && !lines[i].trim().is_empty() {
                    i += 1;
                }
            }
            out.extend(rows.iter().cloned());
        }
    }
    out.join("\n") + "\n"
}

fn golden_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_files_pass() {
    let files = golden_files();
    assert!(files.len() >= 6, "golden files missing: {files:?}");
    for file in files {
        run_file(&file).await;
    }
}

#[test]
fn the_golden_file_reader_reads_every_record_kind() {
    let records = parse_slt(
        "# c\nstatement ok\nSELECT 1\n\nstatement error no model named\nDROP MODEL x\n\n\
         query IT rowsort\nSELECT 1, 'a'\n----\n1 a\n2 b\n\nquery error bad\nSELECT x\n",
        Path::new("inline"),
    );
    assert_eq!(records.len(), 4);
    assert!(
        matches!(&records[1], Record::Statement { error: Some(e), .. } if e == "no model named")
    );
    assert!(
        matches!(&records[2], Record::Query { rowsort: true, expected, line: 8, .. } if expected.len() == 2)
    );
    assert!(matches!(&records[3], Record::Query { error: Some(e), .. } if e == "bad"));
}

/// Labelled points where a logistic model is good but not perfect.
async fn scored_points(kiln: &Session) {
    kiln.sql(
        "CREATE TABLE points AS SELECT \
           CAST(value % 17 AS DOUBLE) / 4.0 AS x1, \
           CAST((value * 7) % 13 AS DOUBLE) / 3.0 AS x2, \
           CASE WHEN (value % 17) + ((value * 7) % 13) + (value % 5) > 16 THEN 1.0 ELSE 0.0 END AS y \
         FROM generate_series(1, 600)",
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_returns_what_the_rust_evaluators_compute() {
    let kiln = crate::common::session(2, 2).await;
    scored_points(&kiln).await;
    let one_row = |batches: Vec<RecordBatch>| -> Vec<(String, f64)> {
        let b = &batches[0];
        assert_eq!(b.num_rows(), 1);
        b.schema()
            .fields()
            .iter()
            .zip(b.columns())
            .map(|(f, c)| {
                let v = c.as_any().downcast_ref::<Float64Array>().unwrap().value(0);
                (f.name().clone(), v)
            })
            .collect()
    };

    // Logistic regression: the classification metrics.
    run_statement(
        &kiln,
        "TRAIN MODEL clf USING logistic_regression (reg_param = 0.01) LABEL y \
         FEATURES (x1, x2) AS SELECT * FROM points",
    )
    .await
    .unwrap();
    let sql = one_row(
        run_statement(
            &kiln,
            "SELECT * FROM EVALUATE(MODEL clf, (SELECT * FROM points))",
        )
        .await
        .unwrap(),
    );
    let df = kiln
        .table("points")
        .await
        .unwrap()
        .predict("clf", "prediction")
        .unwrap()
        .predict_proba("clf", "probability")
        .unwrap();
    let classification = |m| Evaluator::classification(m).label_col("y");
    let mut rust = Vec::new();
    for (name, m) in [
        ("accuracy", ClassificationMetric::Accuracy),
        (
            "precision",
            ClassificationMetric::Precision(Average::Weighted),
        ),
        ("recall", ClassificationMetric::Recall(Average::Weighted)),
        ("f1", ClassificationMetric::F1(Average::Weighted)),
        ("log_loss", ClassificationMetric::LogLoss),
        ("roc_auc", ClassificationMetric::AreaUnderRoc),
    ] {
        rust.push((
            name.to_string(),
            classification(m).evaluate(&df).await.unwrap(),
        ));
    }
    assert_eq!(sql, rust, "EVALUATE differs from the Rust evaluators");
    let accuracy = rust[0].1;
    assert!(accuracy > 0.7 && accuracy < 1.0, "accuracy {accuracy}");

    // Linear regression: the regression metrics.
    run_statement(
        &kiln,
        "CREATE MODEL reg OPTIONS (type = 'linear_regression', label = 'x2', features = ['x1', 'y']) \
         AS SELECT * FROM points",
    )
    .await
    .unwrap();
    let sql = one_row(
        run_statement(
            &kiln,
            "SELECT * FROM EVALUATE(MODEL reg, (SELECT * FROM points WHERE x1 > 1))",
        )
        .await
        .unwrap(),
    );
    let df = kiln
        .sql("SELECT * FROM points WHERE x1 > 1")
        .await
        .unwrap()
        .predict("reg", "prediction")
        .unwrap();
    let mut rust = Vec::new();
    for (name, m) in [
        ("rmse", RegressionMetric::Rmse),
        ("mse", RegressionMetric::Mse),
        ("mae", RegressionMetric::Mae),
        ("r2", RegressionMetric::R2),
    ] {
        let v = Evaluator::regression(m)
            .label_col("x2")
            .evaluate(&df)
            .await
            .unwrap();
        rust.push((name.to_string(), v));
    }
    assert_eq!(sql, rust, "EVALUATE differs from the Rust evaluators");

    // k-means: the cost equals the training cost on the training data, and the silhouette
    // the Rust evaluator's.
    let trained = run_statement(
        &kiln,
        "TRAIN MODEL km USING kmeans (k = 3, seed = 5, tol = 0, max_iter = 15) FEATURES (x1, x2) \
         AS SELECT * FROM points",
    )
    .await
    .unwrap();
    let sql = one_row(
        run_statement(
            &kiln,
            "SELECT * FROM EVALUATE(MODEL km, (SELECT * FROM points))",
        )
        .await
        .unwrap(),
    );
    let model = kiln.model("km").unwrap();
    let kiln::ml::ModelKind::KMeans(km) = model.kind() else {
        panic!("not k-means");
    };
    let loss = trained[0]
        .column_by_name("loss")
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .value(0);
    assert_eq!(loss, km.cost());
    let silhouette = Evaluator::silhouette(kiln::ml::Columns::new().features(["x1", "x2"]))
        .evaluate(
            &kiln
                .table("points")
                .await
                .unwrap()
                .predict("km", "prediction")
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(sql[1], ("silhouette".to_string(), silhouette));
    // The last Lloyd step's cost is of the centres before it; within a relative 1e-9 of the
    // cost of the final centres once converged or near it.
    let (name, sse) = &sql[0];
    assert_eq!(name, "sse");
    assert!(
        (sse - km.cost()).abs() <= 1e-2 * km.cost(),
        "sse {sse} vs {}",
        km.cost()
    );
}

/// The `kiln` binary Cargo built next to this test (`target/<profile>/kiln`), which the test
/// command builds first.
pub(crate) fn kiln_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let name = format!("kiln{}", std::env::consts::EXE_SUFFIX);
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
        .expect("the kiln binary: cargo build -p kiln --bin kiln")
}

#[test]
fn kiln_sql_runs_the_example_pipeline_and_exits_non_zero_on_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let scratch = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(kiln_bin())
        .args(["sql", "--quiet", "--format", "csv", "-f"])
        .arg(root.join("examples/sql/pipeline.sql"))
        .arg("--models-dir")
        .arg(scratch.path().join("models"))
        .current_dir(scratch.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pipeline.sql failed:\n{stderr}\n{stdout}"
    );
    for header in [
        "model,algorithm,features,label,iterations,loss",
        "accuracy,precision,recall,f1,log_loss,roc_auc",
        "sse,silhouette",
    ] {
        assert!(stdout.contains(header), "no '{header}' in:\n{stdout}");
    }
    // The models are in the catalog for the next session.
    let again = std::process::Command::new(kiln_bin())
        .args(["sql", "--quiet", "--format", "ndjson", "-e", "SHOW MODELS"])
        .arg("--models-dir")
        .arg(scratch.path().join("models"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success());
    assert!(
        listed.contains(r#""model":"churn""#) && listed.contains(r#""model":"segments""#),
        "{listed}"
    );

    // An error: exit code 1, the message on stderr, the statements before it done.
    let failed = std::process::Command::new(kiln_bin())
        .args([
            "sql",
            "--format",
            "tsv",
            "-e",
            "SELECT 1 AS one; TRAIN MODEL m USING kmean AS SELECT 1 AS a; SELECT 2",
        ])
        .arg("--models-dir")
        .arg(scratch.path().join("models"))
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&failed.stdout), "one\n1\n");
    let message = String::from_utf8_lossy(&failed.stderr);
    assert!(
        message.contains("unknown algorithm 'kmean'; known algorithms: kmeans, linear_regression, logistic_regression at Line: 1, Column: 21"),
        "{message}"
    );
    // Bad arguments: exit code 2 with the usage.
    let usage = std::process::Command::new(kiln_bin())
        .args(["sql", "--format", "xml", "-e", "SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("unknown format 'xml'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_train_shows_the_cache_and_iterate_stages_without_training() {
    let kiln = crate::common::session(2, 1).await;
    let rounds = kiln.metrics().kernel_rounds;
    let batches = run_statement(
        &kiln,
        "EXPLAIN TRAIN MODEL e USING logistic_regression (max_iter = 5) FEATURES (a) AS \
         SELECT CAST(value AS DOUBLE) AS a, CAST(value % 2 AS DOUBLE) AS label FROM generate_series(1, 100)",
    )
    .await
    .unwrap();
    let rows = render(&batches);
    let text = rows.join("\n");
    for part in ["Train[", "Cache stage", "Iterate", "Stage 1"] {
        assert!(text.contains(part), "no '{part}' in:\n{text}");
    }
    assert_eq!(
        kiln.metrics().kernel_rounds,
        rounds,
        "EXPLAIN TRAIN trained"
    );
    assert!(
        kiln.model("e").is_none(),
        "EXPLAIN TRAIN registered a model"
    );
}

#[tokio::test]
async fn activity_counts_the_stages_and_tasks_of_a_query_and_the_running_fit() {
    let kiln = Session::builder().executors(2).build().await.unwrap();
    let before = kiln.activity();
    let batches = kiln
        .sql("SELECT v % 7 AS k, count(*) AS n FROM (SELECT value AS v FROM range(10000)) GROUP BY v % 7")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 7);
    let after = kiln.activity();
    let stages = after.stages_finished - before.stages_finished;
    assert!(stages >= 1, "{before:?} -> {after:?}");
    assert_eq!(stages, after.stages_planned - before.stages_planned);
    assert_eq!(
        after.tasks_finished - before.tasks_finished,
        after.tasks_planned - before.tasks_planned
    );
    assert!(after.tasks_finished > before.tasks_finished);
    // No fit is running before or after one.
    assert!(after.training.is_none());
    kiln.sql("TRAIN MODEL act USING kmeans (k = 2, seed = 1) AS SELECT CAST(value AS DOUBLE) AS x FROM range(100)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(kiln.activity().training.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_changes_a_running_session_and_show_all_redacts_secrets() {
    use kiln::config::{Config, Source};
    let mut config = Config::new();
    config.set("kiln.executors", "2", Source::Flag).unwrap();
    config
        .set("kiln.slots_per_executor", "1", Source::Flag)
        .unwrap();
    config.set("kiln.models_dir", "", Source::Flag).unwrap();
    config
        .set("kiln.max_task_attempts", "2", Source::Flag)
        .unwrap();
    config
        .set("kiln.auth_token", "hunter2-never-shown", Source::Flag)
        .unwrap();
    let kiln = config
        .builder()
        .unwrap()
        .inject_task_failures(2)
        .build()
        .await
        .unwrap();
    // Every task's first two attempts fail: two attempts are not enough, three are.
    let query = "SELECT x % 3 AS k, count(*) AS n FROM generate_series(1, 100) t(x) GROUP BY k";
    let err = run_statement(&kiln, query).await.unwrap_err();
    assert!(err.contains("after 2 attempt(s)"), "{err}");
    run_statement(&kiln, "SET kiln.max_task_attempts = 3")
        .await
        .unwrap();
    let rows = render(&run_statement(&kiln, query).await.unwrap());
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        kiln.config().source("kiln.max_task_attempts"),
        Some(&Source::Set)
    );

    let all = render(&run_statement(&kiln, "SHOW ALL").await.unwrap());
    let text = all.join("\n");
    assert!(!text.contains("hunter2"), "{text}");
    for expected in [
        "kiln.auth_token ******** flag",
        "kiln.executors 2 flag",
        "kiln.max_task_attempts 3 SET",
        "kiln.mode embedded default",
        "datafusion.execution.batch_size 8192 NULL",
    ] {
        assert!(
            all.iter().any(|r| r == expected),
            "no '{expected}' in:\n{text}"
        );
    }
    let mut names: Vec<&str> = all.iter().filter_map(|r| r.split(' ').next()).collect();
    let listed = names.clone();
    names.sort_unstable();
    assert_eq!(names, listed, "SHOW ALL is sorted by name");
    let verbose = run_statement(&kiln, "SHOW ALL VERBOSE").await.unwrap();
    assert_eq!(verbose[0].num_columns(), 4);
}

/// Runs `kiln sql` with `args` and `env`; returns (exit code, stdout, stderr).
fn kiln_sql(args: &[&str], env: &[(&str, &str)], dir: &Path) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(kiln_bin())
        .arg("sql")
        .args(args)
        .envs(env.iter().copied())
        .env_remove("KILN_CONFIG")
        .env("XDG_CONFIG_HOME", dir)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kiln_sql_takes_settings_from_the_file_the_environment_flags_and_set() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kiln.conf");
    std::fs::write(
        &conf,
        "# test settings\nkiln.executors = 3\nkiln.max_task_attempts = 6\n\
         kiln.broadcast_threshold = 5\ndatafusion.execution.batch_size = 1000\n",
    )
    .unwrap();
    let conf_text = conf.display().to_string();
    let (code, stdout, stderr) = kiln_sql(
        &[
            "--quiet",
            "--format",
            "csv",
            "--config",
            &conf_text,
            "--set",
            "kiln.broadcast_threshold=7",
            "-e",
            "SHOW ALL",
        ],
        &[
            ("KILN_MAX_TASK_ATTEMPTS", "5"),
            ("KILN_AUTH_TOKEN", "token-never-shown"),
            ("AWS_SECRET_ACCESS_KEY", "key-never-shown"),
            ("AWS_REGION", "us-east-1"),
        ],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{stderr}");
    for expected in [
        format!("kiln.executors,3,{conf_text}:2"),
        "kiln.max_task_attempts,5,env KILN_MAX_TASK_ATTEMPTS".into(),
        "kiln.broadcast_threshold,7,flag".into(),
        format!("datafusion.execution.batch_size,1000,{conf_text}:5"),
        "kiln.auth_token,********,env KILN_AUTH_TOKEN".into(),
        "env.AWS_SECRET_ACCESS_KEY,********,env AWS_SECRET_ACCESS_KEY".into(),
        "env.AWS_REGION,us-east-1,env AWS_REGION".into(),
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&expected)),
            "no '{expected}' in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("never-shown"), "{stdout}");

    // SET of a setting fixed while the session runs restarts it, keeping the tables.
    let (code, stdout, stderr) = kiln_sql(
        &[
            "--format",
            "csv",
            "-e",
            "CREATE TABLE t AS SELECT * FROM (VALUES (1), (2), (3)) v(x); \
             SET kiln.executors = 3; SHOW kiln.executors; SELECT sum(x) AS s FROM t",
        ],
        &[],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("session restarted with kiln.executors = 3; 1 table kept"),
        "{stderr}"
    );
    assert!(stdout.contains("kiln.executors,3,SET"), "{stdout}");
    assert!(stdout.ends_with("s\n6\n"), "{stdout}");

    // A bad setting names itself and its source, and the run fails with exit code 1.
    std::fs::write(&conf, "kiln.executors = 2\nkiln.mode = galaxy\n").unwrap();
    let (code, _, stderr) = kiln_sql(&["--config", &conf_text, "-e", "SELECT 1"], &[], dir.path());
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("invalid setting `kiln.mode`: must be one of embedded, local_cluster, cluster, got 'galaxy'")
            && stderr.contains(&format!("{conf_text}:2")),
        "{stderr}"
    );
    let (code, _, stderr) = kiln_sql(
        &["-e", "SELECT 1"],
        &[("KILN_EXECUTORS", "many")],
        dir.path(),
    );
    assert_eq!(code, Some(1));
    assert!(stderr.contains("KILN_EXECUTORS"), "{stderr}");
    let (code, _, stderr) = kiln_sql(&["--set", "kiln.nope=1", "-e", "SELECT 1"], &[], dir.path());
    assert_eq!(code, Some(2));
    assert!(stderr.contains("unknown setting"), "{stderr}");
}

#[test]
fn kiln_sql_with_cluster_runs_on_executors_started_elsewhere() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let query =
        "SELECT x % 4 AS k, sum(x) AS s FROM generate_series(1, 10000) t(x) GROUP BY k ORDER BY k";
    let (code, embedded, stderr) = kiln_sql(
        &["--quiet", "--format", "csv", "-e", query],
        &[],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{stderr}");

    let mut driver = std::process::Command::new(kiln_bin())
        .args([
            "sql",
            "--quiet",
            "--format",
            "csv",
            "--cluster",
            "127.0.0.1:0",
        ])
        .args(["--executors", "2", "-e", query])
        .env("KILN_AUTH_TOKEN", "cluster-test-token")
        .env_remove("KILN_CONFIG")
        .env("XDG_CONFIG_HOME", dir.path())
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(driver.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the driver says where executors connect")
            .unwrap();
        if let Some((_, url)) = line.split_once("--driver ") {
            break url.trim().to_string();
        }
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let executors: Vec<_> = (0..2)
        .map(|i| {
            std::process::Command::new(kiln_bin())
                .args(["executor", "--driver", &url, "--slots", "1", "--id"])
                .arg(format!("remote-{i}"))
                .env("KILN_AUTH_TOKEN", "cluster-test-token")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let out = driver.wait_with_output().unwrap();
    let stderr = rest.join().unwrap().join("\n");
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), embedded);
    // The executors leave when their driver goes away.
    for mut e in executors {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while e.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = e.kill();
        let _ = e.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_is_kept_in_the_catalog_and_applied_by_every_front_door() {
    let scratch = tempfile::tempdir().unwrap();
    let open = || async {
        Session::builder()
            .executors(2)
            .slots_per_executor(1)
            .models_dir(scratch.path().join("models"))
            .build()
            .await
            .unwrap()
    };
    let table = "CREATE TABLE pts AS SELECT CAST(value AS DOUBLE) AS x, \
                 CASE WHEN value % 4 = 0 THEN NULL ELSE CAST(value % 9 AS DOUBLE) END AS z, \
                 3.0 * value - 7.0 AS y FROM generate_series(1, 40)";
    let kiln = open().await;
    run_statement(&kiln, table).await.unwrap();
    run_statement(
        &kiln,
        "TRAIN MODEL m USING linear_regression TRANSFORM (standard_scaler(x) AS xs, \
         imputer(z) AS zi) LABEL y AS SELECT * FROM pts",
    )
    .await
    .unwrap();
    let predict = "SELECT x, predict(m, x, z) AS p FROM pts ORDER BY x";
    let before = render(&run_statement(&kiln, predict).await.unwrap());
    // The fit is exact: y is linear in x.
    assert_eq!(before[0], "1 -4", "{before:?}");
    let fitted: serde_json::Value = serde_json::from_slice(
        &std::fs::read(scratch.path().join("models/m/transform.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(fitted["inputs"], serde_json::json!(["x", "z"]));
    // x = 1..40: mean 20.5, sample standard deviation sqrt(136.666...).
    let xs = fitted["outputs"][0]["sql"].as_str().unwrap();
    assert!(
        xs.contains(&format!("- 20.5) / {:?})", (4100.0f64 / 30.0).sqrt())),
        "{xs}"
    );
    drop(kiln);

    // A new session finds the model and its transform in the catalog.
    let kiln = open().await;
    run_statement(&kiln, table).await.unwrap();
    assert_eq!(
        render(&run_statement(&kiln, predict).await.unwrap()),
        before
    );
    let describe = render(&run_statement(&kiln, "DESCRIBE MODEL m").await.unwrap());
    assert!(
        describe.contains(
            &"transform standard_scaler(x) AS xs, imputer(z) AS zi (reads x, z)".to_string()
        ),
        "{describe:?}"
    );
    // The Rust API predicts through the transform too, by column name.
    let df = kiln
        .sql("SELECT x, z FROM pts ORDER BY x")
        .await
        .unwrap()
        .predict("m", "p")
        .unwrap()
        .select_columns(&["x", "p"])
        .unwrap();
    assert_eq!(render(&df.collect().await.unwrap()), before);
    // The Rust loader reads the transform with the model: registered under another name,
    // the loaded model predicts from the raw columns exactly as SQL's LOAD MODEL does.
    let dir = scratch.path().join("models/m");
    let loaded = kiln.load_model(dir.to_str().unwrap()).await.unwrap();
    assert!(loaded.transform().is_some());
    kiln.register_model("loaded", loaded.clone());
    let df = kiln
        .sql("SELECT x, z FROM pts ORDER BY x")
        .await
        .unwrap()
        .predict("loaded", "p")
        .unwrap()
        .select_columns(&["x", "p"])
        .unwrap();
    assert_eq!(render(&df.collect().await.unwrap()), before);
    let again = "SELECT x, predict(loaded, x, z) AS p FROM pts ORDER BY x";
    assert_eq!(render(&run_statement(&kiln, again).await.unwrap()), before);
    // Saved from Rust, the transform goes with it.
    let copy = scratch.path().join("copy");
    kiln.save_model(&loaded, copy.to_str().unwrap())
        .await
        .unwrap();
    assert!(copy.join("transform.json").exists());
    // Only a model stripped of its transform takes its features as given.
    kiln.register_model("m", loaded.with_transform(None));
    let bare = render(&run_statement(&kiln, predict).await.unwrap());
    assert_ne!(bare, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semi_join_with_few_keys_becomes_an_in_filter_pushed_to_the_scans() {
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(2)
        .build()
        .await
        .unwrap();
    run_statement(
        &kiln,
        "CREATE TABLE facts AS SELECT value AS k, value % 97 AS v FROM generate_series(1, 50000)",
    )
    .await
    .unwrap();
    let physical = |plan: String| {
        plan.split_once("== Physical plan ==")
            .map(|(_, p)| p.to_string())
            .unwrap_or_default()
    };
    // A filtering side with 5 keys (3, 100, 197, 294, 391): run first, its keys become
    // `k IN (...)` at the scan.
    let few = "SELECT count(*), sum(v) FROM facts WHERE k IN (SELECT k FROM facts WHERE v = 3 AND k < 400)";
    let plan = physical(kiln.sql(few).await.unwrap().explain().await.unwrap());
    assert!(plan.contains("IN (SET)"), "{plan}");
    assert!(!plan.contains("Semi"), "{plan}");
    assert_eq!(render(&run_statement(&kiln, few).await.unwrap()), ["5 15"]);
    // More keys than the limit: the semi join stays, with the same answer as DataFusion.
    let many = "SELECT count(*), sum(v) FROM facts WHERE k IN (SELECT k FROM facts WHERE v < 50)";
    let plan = physical(kiln.sql(many).await.unwrap().explain().await.unwrap());
    assert!(plan.contains("Semi"), "{plan}");
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.sql(
        "CREATE TABLE facts AS SELECT value AS k, value % 97 AS v FROM generate_series(1, 50000)",
    )
    .await
    .unwrap()
    .collect()
    .await
    .unwrap();
    let expected = render(&ctx.sql(many).await.unwrap().collect().await.unwrap());
    assert_eq!(render(&run_statement(&kiln, many).await.unwrap()), expected);
}
