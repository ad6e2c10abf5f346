//! Bad input gets a clear error naming the culprit, never a panic.

use kiln::prelude::*;
use kiln::{EngineError, Session};

use crate::common::{rows, session};

fn message(e: &EngineError) -> String {
    e.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_files_name_the_path() {
    let kiln = session(1, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.parquet");
    let p = missing.to_str().unwrap();
    let e = kiln.read_parquet(p).await.unwrap_err();
    assert!(matches!(e, EngineError::Read { .. }), "{e:?}");
    assert!(message(&e).contains(p), "{e}");

    let e = kiln
        .read_csv(&p.replace("parquet", "csv"), CsvOptions::default())
        .await
        .unwrap_err();
    assert!(message(&e).contains("nope.csv"), "{e}");
    let e = kiln
        .read_json(&p.replace("parquet", "json"))
        .await
        .unwrap_err();
    assert!(message(&e).contains("nope.json"), "{e}");

    // An object store location with nothing under it.
    let e = kiln
        .read_parquet("memory://empty-bucket/data/x.parquet")
        .await
        .unwrap_err();
    assert!(
        message(&e).contains("memory://empty-bucket/data/x.parquet"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_parquet_names_the_file() {
    let kiln = session(1, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.parquet");
    std::fs::write(&path, b"this is not parquet at all").unwrap();
    let e = kiln.read_parquet(path.to_str().unwrap()).await.unwrap_err();
    assert!(message(&e).contains("garbage.parquet"), "{e}");
    assert!(message(&e).to_lowercase().contains("parquet"), "{e}");
}

fn people_schema() -> std::sync::Arc<arrow::datatypes::Schema> {
    use arrow::datatypes::{DataType, Field, Schema};
    std::sync::Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
    ]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_inference_skips_malformed_lines() {
    let kiln = session(1, 1).await;
    let dir = malformed_csv();
    let df = kiln
        .read_csv(dir.path().to_str().unwrap(), CsvOptions::default())
        .await
        .unwrap();
    let schema = df.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, vec!["id", "name", "score", "_corrupt_record"]);
    // "oops" is a well-formed string, so the inferred score column is text (as in Spark).
    assert_eq!(
        schema.field(2).data_type(),
        &arrow::datatypes::DataType::Utf8
    );
    assert_eq!(
        schema.field(0).data_type(),
        &arrow::datatypes::DataType::Int64
    );
}

fn malformed_csv() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("people.csv"),
        "id,name,score\n1,ann,3.5\n2,bob\n3,cid,4.0\n4,dee,oops\n5,eve,1.0,extra\n6,fay,2.0\n",
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_fail_fast_names_file_and_line() {
    let kiln = session(1, 1).await;
    let dir = malformed_csv();
    let path = dir.path().join("people.csv");
    let df = kiln
        .read_csv(
            path.to_str().unwrap(),
            CsvOptions::default().mode(CsvMode::FailFast),
        )
        .await
        .unwrap();
    let e = df.collect().await.unwrap_err();
    let m = message(&e);
    assert!(m.contains("people.csv"), "{m}");
    assert!(m.contains("line 3"), "{m}");
    assert!(m.contains("expected 3 fields, found 2"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_drop_malformed_keeps_only_good_rows() {
    let kiln = session(2, 1).await;
    let dir = malformed_csv();
    let df = kiln
        .read_csv(
            dir.path().to_str().unwrap(),
            CsvOptions::default()
                .mode(CsvMode::DropMalformed)
                .schema(people_schema()),
        )
        .await
        .unwrap();
    let got = rows(
        &df.sort(vec![col("id").sort(true, true)])
            .unwrap()
            .collect()
            .await
            .unwrap(),
    );
    let ids: Vec<&str> = got.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, vec!["1", "3", "6"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_permissive_keeps_the_raw_line() {
    let kiln = session(2, 1).await;
    let dir = malformed_csv();
    let df = kiln
        .read_csv(
            dir.path().to_str().unwrap(),
            CsvOptions::default().schema(people_schema()),
        )
        .await
        .unwrap();
    let corrupt = df
        .filter(col("_corrupt_record").is_not_null())
        .unwrap()
        .select_columns(&["id", "_corrupt_record"])
        .unwrap();
    let mut got = rows(&corrupt.collect().await.unwrap());
    got.sort();
    assert_eq!(
        got,
        vec![
            vec!["NULL".to_string(), "2,bob".to_string()],
            vec!["NULL".to_string(), "4,dee,oops".to_string()],
            vec!["NULL".to_string(), "5,eve,1.0,extra".to_string()],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_column_is_named_with_a_suggestion() {
    let kiln = session(1, 1).await;
    let df = kiln.sql("SELECT 1 AS price, 2 AS quantity").await.unwrap();
    let e = df.clone().select(vec![col("prise")]).unwrap_err();
    match &e {
        EngineError::UnknownColumn {
            column, suggestion, ..
        } => {
            assert_eq!(column, "prise");
            assert_eq!(suggestion.as_deref(), Some("price"));
        }
        other => panic!("expected UnknownColumn, got {other:?}"),
    }
    assert!(message(&e).contains("did you mean 'price'"), "{e}");

    let e = kiln
        .sql("SELECT quantitty FROM (SELECT 1 AS quantity)")
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::UnknownColumn { .. }), "{e:?}");
    assert!(message(&e).contains("quantitty"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_mismatch_names_the_types() {
    let kiln = session(1, 1).await;
    let df = kiln.sql("SELECT 'abc' AS name, 1 AS n").await.unwrap();
    // Reported when the plan is built or, at the latest, when it runs.
    let e = match df.with_column("bad", col("name") - col("n")) {
        Err(e) => e,
        Ok(d) => d.collect().await.unwrap_err(),
    };
    let m = message(&e);
    assert!(m.contains("Utf8") && m.contains("Int64"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_syntax_error_has_a_position() {
    let kiln = session(1, 1).await;
    let e = kiln.sql("SELECT a FROM t WHERE").await.unwrap_err();
    assert!(matches!(e, EngineError::SqlSyntax(_)), "{e:?}");
    let m = message(&e);
    assert!(m.contains("Line: 1, Column: 22"), "{m}");

    let e = kiln
        .sql("SELECT *\nFROM t\nWHERE a = = 1")
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::SqlSyntax(_)), "{e:?}");
    let m = message(&e);
    assert!(m.contains("Line: 3, Column: 11"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_parameters_are_rejected_before_anything_runs() {
    let e = Session::builder().executors(0).build().await.unwrap_err();
    assert!(
        message(&e).contains("executors must be >= 1, got 0")
            || message(&e).contains("`executors`"),
        "{e}"
    );
    let kiln = session(1, 1).await;
    let df = kiln.sql("SELECT 1 AS x").await.unwrap();
    let e = df.clone().sample(1.5, 1).unwrap_err();
    assert!(
        message(&e).contains("fraction") && message(&e).contains("1.5"),
        "{e}"
    );
    let e = df.random_split_weights(&[-1.0, 2.0], 1).unwrap_err();
    assert!(message(&e).contains("weights"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_errors_surface_from_executors() {
    let kiln = session(2, 1).await;
    let e = kiln
        .sql("SELECT CAST(x AS INT) FROM (VALUES ('1'), ('two')) t(x)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    let m = message(&e);
    assert!(m.contains("two"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_schema_comes_from_the_first_non_empty_file() {
    let kiln = session(1, 1).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "").unwrap();
    std::fs::write(dir.path().join("b.csv"), "x,y\n1,2\n3,4\n").unwrap();
    let df = kiln
        .read_csv(
            dir.path().to_str().unwrap(),
            CsvOptions::default().mode(CsvMode::FailFast),
        )
        .await
        .unwrap();
    assert_eq!(df.count().await.unwrap(), 2);

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("a.csv"), "").unwrap();
    let e = kiln
        .read_csv(empty.path().to_str().unwrap(), CsvOptions::default())
        .await
        .unwrap_err();
    assert!(message(&e).contains("every file is empty"), "{e}");
}

/// `PAR1`, bytes, `PAR1`: a footer whose metadata length runs past the start of the file,
/// which the Parquet reader's footer decoder crashes on (see ARCHITECTURE.md, "Panics").
fn corrupt_parquet(path: &std::path::Path) {
    let mut bytes = b"PAR1".to_vec();
    let mut x: u32 = 12345;
    for _ in 0..5000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        bytes.push((x >> 16) as u8);
    }
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
    bytes.extend_from_slice(b"PAR1");
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_crashing_on_a_corrupt_file_is_an_error_naming_it_not_a_crash() {
    let kiln = session(2, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.parquet");
    corrupt_parquet(&path);
    let p = path.to_str().unwrap();

    // Planning on the driver: schema inference reads the footer.
    let e = kiln
        .sql(&format!(
            "CREATE EXTERNAL TABLE c STORED AS PARQUET LOCATION '{p}'"
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::Panicked { .. }), "{e:?}");
    assert!(message(&e).contains(p), "{e}");
    let e = kiln.read_parquet(p).await.unwrap_err();
    assert!(message(&e).contains(p), "{e}");

    // The session lives on.
    let n = kiln.sql("SELECT 1 AS one").await.unwrap().count().await;
    assert_eq!(n.unwrap(), 1);
}

/// A table planned over a good file whose bytes are then replaced with corrupt ones: the
/// crash happens in a task, on an executor.
async fn crash_in_a_task(kiln: &Session) {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("t.parquet");
    let df = kiln
        .sql("SELECT value AS x FROM generate_series(1, 100)")
        .await
        .unwrap();
    df.write_parquet(dir.path().join("w").to_str().unwrap())
        .await
        .unwrap();
    let written = std::fs::read_dir(dir.path().join("w"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    std::fs::copy(&written, &good).unwrap();
    kiln.sql("SET datafusion.execution.collect_statistics = false")
        .await
        .unwrap();
    let g = good.to_str().unwrap();
    kiln.sql(&format!(
        "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{g}'"
    ))
    .await
    .unwrap();
    corrupt_parquet(&good);
    let e = kiln
        .sql("SELECT count(*) FROM t WHERE x > 0")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::Panicked { .. }), "{e:?}");
    let text = message(&e);
    assert!(text.contains("t.parquet"), "{text}");
    assert!(text.contains("stage "), "{text}");
    // The executors live on.
    let n = kiln
        .sql("SELECT value FROM generate_series(1, 1000)")
        .await
        .unwrap()
        .count()
        .await
        .unwrap();
    assert_eq!(n, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_crashes_fails_its_job_naming_the_file_and_the_executor_lives_on() {
    crash_in_a_task(&session(2, 1).await).await;
    crash_in_a_task(&crate::cluster::cluster(1, 1).await).await;
}

/// A feature column with a null: the check runs where the partition is cached, on an
/// executor, and raises the ML error the driver would raise.
async fn null_feature_error(kiln: &Session) -> EngineError {
    let df = kiln
        .sql("SELECT CASE WHEN value = 7 THEN NULL ELSE CAST(value AS DOUBLE) END AS x, CAST(value % 2 AS DOUBLE) AS label FROM generate_series(1, 20)")
        .await
        .unwrap();
    kiln::ml::LinearRegression::new()
        .fit(&df)
        .await
        .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ml_errors_raised_on_executors_keep_their_type() {
    use kiln::ml::MlError;
    for kiln in [session(2, 1).await, crate::cluster::cluster(1, 1).await] {
        let e = null_feature_error(&kiln).await;
        assert!(
            matches!(&e, EngineError::Ml(MlError::InvalidColumn { column, .. }) if column == "x"),
            "{e:?}"
        );
    }
}
