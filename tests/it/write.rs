//! Writes on the distributed path: `INSERT INTO` and `CREATE TABLE AS` into memory tables and
//! external Parquet/CSV tables, `COPY TO`, and the commit protocol that publishes exactly one
//! attempt per partition — checked against single-node DataFusion, across processes, after
//! failures and with an executor killed mid-write.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use kiln::Session;

use crate::common::{session, sorted_rows};

/// The statements of a small write workload over `dir`, in order; the last one reads every
/// table written.
fn workload(dir: &Path) -> Vec<String> {
    let d = dir.display();
    vec![
        "CREATE TABLE m (a INT, b VARCHAR)".into(),
        "INSERT INTO m VALUES (1, 'one'), (2, 'two')".into(),
        "INSERT INTO m SELECT CAST(value AS INT), 'n' || value FROM generate_series(3, 50)".into(),
        "CREATE TABLE src AS SELECT value AS k, value % 7 AS g, CAST(value AS DOUBLE) * 0.5 AS x FROM generate_series(1, 3000)".into(),
        "CREATE TABLE agg AS SELECT g, count(*) AS n, sum(x) AS s FROM src GROUP BY g".into(),
        format!("CREATE EXTERNAL TABLE pq (k BIGINT, g BIGINT, x DOUBLE) STORED AS PARQUET LOCATION '{d}/pq/'"),
        "INSERT INTO pq SELECT DISTINCT k, g, x FROM src WHERE k % 3 = 0".into(),
        "INSERT INTO pq SELECT k, g, x FROM src WHERE k % 3 = 1 ORDER BY k".into(),
        format!("CREATE EXTERNAL TABLE cv (g BIGINT, n BIGINT) STORED AS CSV LOCATION '{d}/cv/' OPTIONS ('format.has_header' 'true')"),
        "INSERT INTO cv SELECT g, count(*) FROM src GROUP BY g".into(),
        format!("COPY (SELECT k FROM src WHERE k <= 10) TO '{d}/single.parquet'"),
        format!("CREATE EXTERNAL TABLE single STORED AS PARQUET LOCATION '{d}/single.parquet'"),
        // Dates and timestamps in CSV (written with the writer's default formats, not empty),
        // and a zone-aware format set by the statement.
        "CREATE TABLE times AS SELECT CAST(t AS TIMESTAMP) AS t, \
         arrow_cast(t, 'Timestamp(Second, Some(\"UTC\"))') AS tz, CAST(d AS DATE) AS d, k \
         FROM (VALUES ('2020-12-10T01:02:03', '2020-12-10', 1), \
         ('2021-01-01T00:00:00', '2021-01-01', 2)) AS v(t, d, k)".into(),
        format!("COPY times TO '{d}/times/0.csv' STORED AS CSV OPTIONS ('format.timestamp_tz_format' '%Y/%m/%d %H.%M.%S%z')"),
        format!("CREATE EXTERNAL TABLE times_back (t VARCHAR, tz VARCHAR, d VARCHAR, k INT) STORED AS CSV LOCATION '{d}/times/' OPTIONS ('format.has_header' 'true')"),
        // Partitioned by a column: a directory of `g=…/` directories, even under a file name.
        format!("COPY (SELECT k, g FROM src WHERE k <= 30) TO '{d}/by_g.parquet' PARTITIONED BY (g)"),
        format!("CREATE EXTERNAL TABLE by_g STORED AS PARQUET PARTITIONED BY (g) LOCATION '{d}/by_g.parquet'"),
    ]
}

/// The queries whose answers must agree after the workload.
const CHECKS: [&str; 8] = [
    "SELECT * FROM times_back",
    "SELECT g, count(*), sum(k) FROM by_g GROUP BY g",
    "SELECT * FROM m",
    "SELECT * FROM agg",
    "SELECT count(*), sum(k), sum(x) FROM pq",
    "SELECT g, n FROM cv",
    "SELECT k FROM single",
    "SELECT g, count(*) FROM pq GROUP BY g",
];

async fn run_kiln(kiln: &Session, dir: &Path) -> Vec<Vec<Vec<String>>> {
    for statement in workload(dir) {
        let df = kiln
            .sql(&statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
        df.collect()
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let mut out = Vec::new();
    for q in CHECKS {
        let batches = kiln.sql(q).await.unwrap().collect().await.unwrap();
        out.push(sorted_rows(&batches));
    }
    out
}

async fn run_datafusion(dir: &Path) -> Vec<Vec<Vec<String>>> {
    let ctx = SessionContext::new();
    for statement in workload(dir) {
        ctx.sql(&statement).await.unwrap().collect().await.unwrap();
    }
    let mut out = Vec::new();
    for q in CHECKS {
        out.push(sorted_rows(
            &ctx.sql(q).await.unwrap().collect().await.unwrap(),
        ));
    }
    out
}

/// Files below `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_and_create_table_as_agree_with_datafusion() {
    let expected = {
        let dir = tempfile::tempdir().unwrap();
        run_datafusion(dir.path()).await
    };
    let dir = tempfile::tempdir().unwrap();
    let kiln = session(2, 2).await;
    assert_eq!(run_kiln(&kiln, dir.path()).await, expected);
    // Every file published once, named by its partition; nothing left staged.
    let written = files(dir.path());
    assert!(
        written.iter().all(|f| !f.contains(".kiln-staging")),
        "{written:?}"
    );
    assert!(
        written.contains(&"single.parquet".to_string()),
        "{written:?}"
    );
    assert!(
        written.iter().any(|f| f.starts_with("by_g.parquet/g=3/")),
        "{written:?}"
    );
    let times = std::fs::read_to_string(dir.path().join("times/0.csv")).unwrap();
    assert!(
        times.contains("2020-12-10T01:02:03,2020/12/10 01.02.03+0000,2020-12-10,1"),
        "{times}"
    );
    let parquet: Vec<&String> = written.iter().filter(|f| f.starts_with("pq/")).collect();
    assert!(
        parquet.iter().all(|f| f.starts_with("pq/part-")),
        "{parquet:?}"
    );
    // The unordered insert writes from every partition of its (hash-partitioned) input.
    assert!(parquet.len() > 2, "{parquet:?}");
    assert!(!dir.path().join("pq/.kiln-staging").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_run_on_executor_processes() {
    let expected = {
        let dir = tempfile::tempdir().unwrap();
        run_datafusion(dir.path()).await
    };
    let dir = tempfile::tempdir().unwrap();
    let kiln = crate::cluster::cluster(2, 1).await;
    assert_eq!(run_kiln(&kiln, dir.path()).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_publishes_nothing_and_retried_tasks_publish_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let kiln = session(2, 2).await;
    kiln.sql("CREATE TABLE m (a BIGINT)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    kiln.sql(&format!(
        "CREATE EXTERNAL TABLE pq (a BIGINT) STORED AS PARQUET LOCATION '{d}/pq/'"
    ))
    .await
    .unwrap();
    // Division by zero at one row: the query fails part-way, after other tasks wrote.
    let failing = "SELECT 10 / (value - 2900) AS a FROM generate_series(1, 3000) \
                   CROSS JOIN (VALUES (1), (2), (3), (4)) t(r)";
    for table in ["m", "pq"] {
        let e = kiln
            .sql(&format!("INSERT INTO {table} {failing}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(
            e.to_string().to_lowercase().contains("divide by zero"),
            "{e}"
        );
    }
    let count = |t: &'static str| {
        let kiln = kiln.clone();
        async move {
            kiln.sql(&format!("SELECT count(*) AS n FROM {t}"))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap()
        }
    };
    assert_eq!(sorted_rows(&count("m").await), [["0"]]);
    assert_eq!(sorted_rows(&count("pq").await), [["0"]]);
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));

    // Every write task's first attempt fails after writing its files: only the retries'
    // files are published, each partition once.
    let retrying = Session::builder()
        .executors(2)
        .slots_per_executor(2)
        .inject_task_failures(1)
        .build()
        .await
        .unwrap();
    retrying
        .sql(&format!(
            "CREATE EXTERNAL TABLE pq (a BIGINT) STORED AS PARQUET LOCATION '{d}/pq/'"
        ))
        .await
        .unwrap();
    let written = retrying
        .sql("INSERT INTO pq SELECT value FROM generate_series(1, 1000) CROSS JOIN (VALUES (1), (2), (3), (4)) t(r)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(sorted_rows(&written), [["4000"]]);
    assert!(retrying.metrics().task_retries > 0);
    let n = retrying
        .sql("SELECT count(*), sum(a) FROM pq")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(sorted_rows(&n), [["4000", "2002000"]]);
}

/// `part-{partition}-{n}-{job}.parquet` → (partition, n).
fn part_of(name: &str) -> (u32, u32) {
    let mut it = name.trim_start_matches("part-").split('-');
    let p = it.next().unwrap().parse().unwrap();
    let n = it.next().unwrap().parse().unwrap();
    (p, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_killed_mid_write_leaves_exactly_one_copy_of_each_file() {
    // The source: 8 Parquet files, read by the write stage's tasks (one per slot).
    let source = tempfile::tempdir().unwrap();
    {
        let kiln = session(1, 1).await;
        for f in 0..8 {
            let df = kiln
                .sql(&format!(
                    "SELECT value AS k, value * {f} AS v, repeat('x', 40) AS pad FROM generate_series({}, {})",
                    f * 150_000 + 1,
                    (f + 1) * 150_000
                ))
                .await
                .unwrap();
            df.write_parquet(
                source
                    .path()
                    .join(format!("in{f}.parquet"))
                    .to_str()
                    .unwrap(),
            )
            .await
            .unwrap();
        }
    }
    let src = source.path().display();
    let mut hits = 0;
    for (round, (delay, victim)) in crate::cluster::kill_points(0xfeed, 40, 2)
        .take(4)
        .enumerate()
    {
        let out = tempfile::tempdir().unwrap();
        let o = out.path().display();
        let kiln = Session::builder()
            .local_cluster(2)
            .slots_per_executor(2)
            .build()
            .await
            .unwrap();
        kiln.sql(&format!(
            "CREATE EXTERNAL TABLE src STORED AS PARQUET LOCATION '{src}/'"
        ))
        .await
        .unwrap();
        kiln.sql(&format!(
            "CREATE EXTERNAL TABLE dst (k BIGINT, v BIGINT, pad VARCHAR) STORED AS PARQUET LOCATION '{o}/dst/'"
        ))
        .await
        .unwrap();
        let victim = kiln.executor_pids()[victim];
        let write = async {
            kiln.sql("INSERT INTO dst SELECT k, v, pad FROM src")
                .await?
                .collect()
                .await
        };
        let killer = async {
            let deadline = Instant::now() + Duration::from_secs(20);
            while kiln.activity().tasks_finished == 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(delay).await;
            crate::cluster::kill(victim);
        };
        let (written, ()) = tokio::join!(write, killer);
        let written = written.unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(sorted_rows(&written), [["1200000"]], "round {round}");
        hits += usize::from(kiln.metrics().executors_lost > 0);
        // Every partition published, from one attempt: the files and the rows below are
        // each row once (a second attempt's files would add rows).
        let names = files(&out.path().join("dst"));
        assert!(
            names.iter().all(|n| n.starts_with("part-")),
            "round {round}: {names:?}"
        );
        let parts: Vec<(u32, u32)> = names.iter().map(|n| part_of(n)).collect();
        // One task per scan partition (the 8 files in as many groups as slots).
        let partitions: BTreeSet<u32> = parts.iter().map(|(p, _)| *p).collect();
        let tasks = u32::try_from(kiln.total_slots()).unwrap();
        assert_eq!(partitions, (0..tasks).collect(), "round {round}: {names:?}");
        assert!(
            !out.path().join("dst/.kiln-staging").exists(),
            "round {round}"
        );
        let check = session(1, 1).await;
        check
            .sql(&format!(
                "CREATE EXTERNAL TABLE dst STORED AS PARQUET LOCATION '{o}/dst/'"
            ))
            .await
            .unwrap();
        let total = check
            .sql("SELECT count(*), count(DISTINCT k), sum(k) FROM dst")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            sorted_rows(&total),
            [["1200000", "1200000", "720000600000"]],
            "round {round}"
        );
    }
    eprintln!("{hits} of 4 kills hit a running write");
    assert!(hits >= 3, "only {hits} of 4 kills hit a running write");
}
