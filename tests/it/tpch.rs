//! The result-equality harness: all 22 TPC-H queries through Kiln with 1, 2 and 4 executors and
//! several partition counts, compared row for row with single-node DataFusion.

use std::path::Path;

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use kiln::Session;
use kiln_tests::tpch;

use crate::common::{rows, session, sorted_rows};

/// Scale factor of the generated data (lineitem ~60k rows).
const SF: f64 = 0.01;
/// Files per large table, so scans have several partitions.
const FILES: i32 = 3;

/// Queries that do not run through Kiln yet, with the reason. The goal is an empty list.
const NOT_YET: &[(usize, &str)] = &[];

fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    tpch::generate_parquet(dir.path(), SF, FILES).expect("generate TPC-H");
    dir
}

pub(crate) async fn register_kiln(kiln: &Session, dir: &Path) {
    for t in tpch::TABLES {
        let path = tpch::table_dir(dir, t);
        kiln.register_parquet(t, &format!("{}/", path.display()))
            .await
            .expect("register table");
    }
}

async fn datafusion_context(dir: &Path) -> SessionContext {
    let ctx = SessionContext::new();
    for t in tpch::TABLES {
        let path = tpch::table_dir(dir, t);
        ctx.register_parquet(
            t,
            &format!("{}/", path.display()),
            ParquetReadOptions::default(),
        )
        .await
        .expect("register table");
    }
    ctx
}

/// Runs every query on `executors × slots` and compares with DataFusion; panics listing every
/// query that differs or fails.
async fn check_all(executors: usize, slots: usize) {
    check_all_on(session(executors, slots).await, executors, slots).await;
}

pub async fn check_all_on(kiln: Session, executors: usize, slots: usize) {
    let dir = data_dir();
    let reference = datafusion_context(dir.path()).await;
    register_kiln(&kiln, dir.path()).await;

    let mut problems = Vec::new();
    for q in 1..=22 {
        if NOT_YET.iter().any(|(n, _)| *n == q) {
            continue;
        }
        let sql = tpch::query(q).expect("query exists");
        let expected = reference
            .sql(sql)
            .await
            .expect("DataFusion plans")
            .collect()
            .await
            .expect("DataFusion runs");
        let got = match kiln.sql(sql).await {
            Ok(df) => df.collect().await,
            Err(e) => Err(e),
        };
        let got = match got {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("q{q}: Kiln failed: {e}"));
                continue;
            }
        };
        let ordered = sql.to_lowercase().contains("order by");
        let (e, g) = if ordered {
            (rows(&expected), rows(&got))
        } else {
            (sorted_rows(&expected), sorted_rows(&got))
        };
        if e.is_empty() && q != 0 {
            // Every query returns rows at this scale; an empty reference means bad data.
            problems.push(format!("q{q}: reference returned no rows"));
        }
        if e != g {
            problems.push(format!(
                "q{q}: {} rows expected, {} got; first expected {:?}, first got {:?}",
                e.len(),
                g.len(),
                e.first(),
                g.first()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{executors} executor(s) x {slots} slot(s):\n{}",
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_one_executor_one_slot() {
    check_all(1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_two_executors() {
    check_all(2, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_four_executors() {
    check_all(4, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_two_executors_three_slots() {
    check_all(2, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_four_executors_two_slots() {
    check_all(4, 2).await;
}

/// At this scale every build side is under the broadcast threshold; with broadcasts off, every
/// equi-join is a partitioned (both sides shuffled) join instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_two_executors_two_slots_without_broadcasts() {
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(2)
        .broadcast_threshold(0)
        .build()
        .await
        .expect("session starts");
    check_all_on(kiln, 2, 2).await;
}

/// The two join strategies the harness covers are the ones planned: TPC-H Q3's inner joins are
/// broadcasts by default and partitioned with broadcasts off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broadcast_threshold_picks_the_join_strategy() {
    let dir = data_dir();
    let q3 = tpch::query(3).expect("q3");
    for (threshold, collect, partitioned) in [(10 << 20, 2, 0), (0, 0, 2)] {
        let kiln = Session::builder()
            .executors(2)
            .broadcast_threshold(threshold)
            .build()
            .await
            .expect("session starts");
        register_kiln(&kiln, dir.path()).await;
        let plan = kiln.sql(q3).await.unwrap().explain().await.unwrap();
        let physical = plan.split("== Stages ==").next().expect("plan text");
        assert_eq!(
            physical.matches("mode=CollectLeft").count(),
            collect,
            "threshold {threshold}:\n{physical}"
        );
        assert_eq!(
            physical.matches("mode=Partitioned").count(),
            partitioned,
            "threshold {threshold}:\n{physical}"
        );
    }
}

#[test]
fn all_queries_are_present() {
    for q in 1..=22 {
        let sql = tpch::query(q).expect("query text");
        assert!(sql.to_lowercase().contains("select"), "q{q} is not a query");
    }
    assert!(tpch::query(23).is_none());
    assert!(tpch::query(0).is_none());
}
