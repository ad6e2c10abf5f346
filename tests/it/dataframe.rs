//! The DataFrame API, operation by operation, on small data with known answers.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use kiln::prelude::*;
use kiln::Session;

use crate::common::{rows, session, sorted_rows};

fn people() -> (Arc<Schema>, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("dept", DataType::Utf8, true),
        Field::new("salary", DataType::Float64, true),
    ]));
    let b1 = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["ann", "bob", "cid"])),
            Arc::new(StringArray::from(vec!["eng", "eng", "ops"])),
            Arc::new(Float64Array::from(vec![100.0, 80.0, 70.0])),
        ],
    )
    .unwrap();
    let b2 = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![4, 5])),
            Arc::new(StringArray::from(vec![Some("dee"), None])),
            Arc::new(StringArray::from(vec![Some("ops"), Some("hr")])),
            Arc::new(Float64Array::from(vec![Some(90.0), None])),
        ],
    )
    .unwrap();
    (schema, vec![b1, b2])
}

async fn frame(kiln: &Session) -> DataFrame {
    let (schema, batches) = people();
    kiln.from_batches(schema, batches).unwrap()
}

fn depts(kiln: &Session) -> DataFrame {
    let schema = Arc::new(Schema::new(vec![
        Field::new("dept_name", DataType::Utf8, false),
        Field::new("floor", DataType::Int64, false),
    ]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["eng", "ops", "sales"])),
            Arc::new(Int64Array::from(vec![3, 1, 2])),
        ],
    )
    .unwrap();
    kiln.from_batches(schema, vec![b]).unwrap()
}

fn r(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_filter_with_column_rename_drop() {
    let kiln = session(2, 2).await;
    let df = frame(&kiln)
        .await
        .filter(col("salary").gt(lit(75.0)))
        .unwrap()
        .with_column("bonus", col("salary") * lit(0.1))
        .unwrap()
        .with_column_renamed("name", "who")
        .unwrap()
        .drop(&["dept"])
        .unwrap()
        .select(vec![col("who"), col("bonus")])
        .unwrap();
    assert_eq!(
        sorted_rows(&df.collect().await.unwrap()),
        vec![
            r(&["ann", "1.00000000e1"]),
            r(&["bob", "8.00000000e0"]),
            r(&["dee", "9.00000000e0"])
        ]
    );
    let cols = kiln.sql("SELECT 1 AS a, 2 AS b").await.unwrap();
    let only_b = cols.select_columns(&["b"]).unwrap();
    assert_eq!(rows(&only_b.collect().await.unwrap()), vec![r(&["2"])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_of_every_type() {
    let kiln = session(2, 2).await;
    let left = frame(&kiln)
        .await
        .select_columns(&["name", "dept"])
        .unwrap();
    let cases = [
        (JoinType::Inner, 4usize),
        (JoinType::Left, 5),
        (JoinType::Right, 5),
        (JoinType::Full, 6),
        (JoinType::LeftSemi, 4),
        (JoinType::LeftAnti, 1),
    ];
    for (join_type, expected) in cases {
        let joined = left
            .clone()
            .join(depts(&kiln), join_type, &["dept"], &["dept_name"])
            .unwrap();
        let got = joined.count().await.unwrap();
        assert_eq!(got, expected, "{join_type:?}");
    }
    let anti = left
        .join(depts(&kiln), JoinType::LeftAnti, &["dept"], &["dept_name"])
        .unwrap();
    assert_eq!(
        rows(&anti.collect().await.unwrap()),
        vec![r(&["NULL", "hr"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_window_sort_limit_distinct_union() {
    let kiln = session(2, 2).await;
    let df = frame(&kiln).await;
    let by_dept = df
        .clone()
        .group_by(vec![col("dept")])
        .agg(vec![
            count(col("id")).alias("n"),
            sum(col("salary")).alias("total"),
        ])
        .unwrap()
        .sort(vec![col("dept").sort(true, false)])
        .unwrap();
    assert_eq!(
        rows(&by_dept.collect().await.unwrap()),
        vec![
            r(&["eng", "2", "1.80000000e2"]),
            r(&["hr", "1", "NULL"]),
            r(&["ops", "2", "1.60000000e2"])
        ]
    );

    let ranked = df
        .clone()
        .window(vec![row_number()
            .partition_by(vec![col("dept")])
            .order_by(vec![col("salary").sort(false, true)])
            .build()
            .unwrap()
            .alias("rank_in_dept")])
        .unwrap()
        .filter(col("rank_in_dept").eq(lit(1u64)))
        .unwrap()
        .select_columns(&["dept", "id"])
        .unwrap();
    assert_eq!(
        sorted_rows(&ranked.collect().await.unwrap()),
        vec![r(&["eng", "1"]), r(&["hr", "5"]), r(&["ops", "4"])]
    );

    let top2 = df
        .clone()
        .sort(vec![col("salary").sort(false, false)])
        .unwrap()
        .limit(2)
        .unwrap()
        .select_columns(&["id"])
        .unwrap();
    assert_eq!(
        rows(&top2.collect().await.unwrap()),
        vec![r(&["1"]), r(&["4"])]
    );

    let distinct = df
        .clone()
        .select_columns(&["dept"])
        .unwrap()
        .distinct()
        .unwrap();
    assert_eq!(distinct.count().await.unwrap(), 3);

    let twice = df.clone().union(df.clone()).unwrap();
    assert_eq!(twice.count().await.unwrap(), 10);
    assert_eq!(df.count().await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_and_random_split_are_seeded_and_cover_every_row() {
    let kiln = session(2, 2).await;
    let df = kiln
        .sql("SELECT value AS id FROM generate_series(1, 10000)")
        .await
        .unwrap();
    let s1 = sorted_rows(&df.clone().sample(0.3, 7).unwrap().collect().await.unwrap());
    let s2 = sorted_rows(&df.clone().sample(0.3, 7).unwrap().collect().await.unwrap());
    let s3 = sorted_rows(&df.clone().sample(0.3, 8).unwrap().collect().await.unwrap());
    assert_eq!(s1, s2, "same seed, same sample");
    assert_ne!(s1, s3, "another seed, another sample");
    assert!((2700..3300).contains(&s1.len()), "about 30%: {}", s1.len());

    let parts = df
        .clone()
        .random_split_weights(&[1.0, 2.0, 1.0], 3)
        .unwrap();
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    for p in parts {
        let rows = sorted_rows(&p.collect().await.unwrap());
        sizes.push(rows.len());
        all.extend(rows);
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 10000, "every row in exactly one part");
    assert_eq!(sizes.iter().sum::<usize>(), 10000);
    assert!(
        (4500..5500).contains(&sizes[1]),
        "middle part about half: {sizes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_and_read_back_parquet_csv_json() {
    let kiln = session(2, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let df = frame(&kiln).await;
    let expected = sorted_rows(&df.collect().await.unwrap());

    let pq = dir.path().join("out_parquet");
    let written = df
        .write_parquet(&format!("{}/", pq.display()))
        .await
        .unwrap();
    assert_eq!(written, 5);
    let back = kiln
        .read_parquet(&format!("{}/", pq.display()))
        .await
        .unwrap();
    assert_eq!(sorted_rows(&back.collect().await.unwrap()), expected);

    let csv = dir.path().join("out_csv");
    assert_eq!(
        df.write_csv(&format!("{}/", csv.display())).await.unwrap(),
        5
    );
    let back = kiln
        .read_csv(
            &format!("{}/", csv.display()),
            CsvOptions::default().mode(CsvMode::FailFast),
        )
        .await
        .unwrap();
    assert_eq!(back.count().await.unwrap(), 5);

    let json = dir.path().join("people.json");
    std::fs::write(
        &json,
        "{\"id\": 1, \"tag\": \"a\"}\n{\"id\": 2, \"tag\": \"b\"}\n{\"id\": 3, \"tag\": \"a\"}\n",
    )
    .unwrap();
    let j = kiln.read_json(json.to_str().unwrap()).await.unwrap();
    let a = j.filter(col("tag").eq(lit("a"))).unwrap();
    assert_eq!(a.count().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_and_explain() {
    let kiln = session(2, 1).await;
    let df = frame(&kiln)
        .await
        .group_by(vec![col("dept")])
        .agg(vec![avg(col("salary")).alias("avg_salary")])
        .unwrap();
    let table = df.show_string(10).await.unwrap();
    assert!(
        table.contains("avg_salary") && table.contains("eng"),
        "{table}"
    );
    let plan = df.explain().await.unwrap();
    assert!(plan.contains("== Stages =="), "{plan}");
    assert!(plan.contains("Stage 1 ["), "{plan}");
    assert!(plan.contains("ShuffleRead: stage="), "{plan}");
    assert!(plan.contains("hash("), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_shuffle_root_gives_the_same_answer() {
    let on_disk = session(2, 2).await;
    let in_memory = Session::builder()
        .executors(2)
        .slots_per_executor(2)
        .shuffle_root("memory://kiln-shuffle/")
        .build()
        .await
        .unwrap();
    let sql = "SELECT value % 10 AS k, sum(value) AS s FROM generate_series(1, 5000) GROUP BY 1";
    let a = sorted_rows(&on_disk.sql(sql).await.unwrap().collect().await.unwrap());
    let b = sorted_rows(&in_memory.sql(sql).await.unwrap().collect().await.unwrap());
    assert_eq!(a, b);
    assert_eq!(a.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_urls_for_sources_and_sinks() {
    let kiln = session(2, 1).await;
    let df = frame(&kiln).await;
    let expected = sorted_rows(&df.collect().await.unwrap());
    let written = df.write_parquet("memory://lake/people/").await.unwrap();
    assert_eq!(written, 5);
    let back = kiln.read_parquet("memory://lake/people/").await.unwrap();
    assert_eq!(sorted_rows(&back.collect().await.unwrap()), expected);

    df.write_csv("memory://lake/people_csv/").await.unwrap();
    let csv = kiln
        .read_csv("memory://lake/people_csv/", CsvOptions::default())
        .await
        .unwrap();
    assert_eq!(csv.count().await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_is_enforced_with_a_clear_error() {
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(1)
        .memory_limit(64 * 1024)
        .max_task_attempts(2)
        .build()
        .await
        .unwrap();
    let e = kiln
        .sql("SELECT value, count(*) FROM generate_series(1, 300000) GROUP BY value")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    let m = e.to_string();
    assert!(m.contains("Resources exhausted"), "{m}");
    assert!(m.contains("after 2 attempt(s)"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_preserving_exchanges_stay_sorted() {
    // generate_series is ordered, so DataFusion plans an order-preserving hash exchange feeding
    // a streaming (sorted-input) aggregate; the reduce side must see sorted partitions.
    let kiln = session(2, 2).await;
    let df = kiln
        .sql("SELECT value, count(*) AS c FROM generate_series(1, 50000) GROUP BY value")
        .await
        .unwrap();
    let plan = df.explain().await.unwrap();
    assert!(plan.contains("preserve_order=true"), "{plan}");
    let batches = df.collect().await.unwrap();
    let rows = rows(&batches);
    assert_eq!(rows.len(), 50000, "{plan}");
    assert!(
        rows.iter().all(|r| r[1] == "1"),
        "a group was split: {plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_on_a_broadcast_build_side_is_kept() {
    // The limited side is small, so it is collected; the outer join makes Kiln turn it into a
    // partitioned join, which must not apply the limit once per partition.
    let kiln = session(2, 2).await;
    let sql = "SELECT count(*) FROM \
               (SELECT value AS k FROM generate_series(1, 1000) ORDER BY value LIMIT 10) a \
               LEFT JOIN (SELECT value AS k FROM generate_series(1, 100000)) b ON a.k = b.k";
    let got = rows(&kiln.sql(sql).await.unwrap().collect().await.unwrap());
    assert_eq!(got, vec![vec!["10".to_string()]]);
    let sql = "SELECT count(*) FROM \
               (SELECT value AS k FROM generate_series(1, 1000) LIMIT 10) a \
               LEFT JOIN (SELECT value AS k FROM generate_series(1, 100000)) b ON a.k = b.k";
    let got = rows(&kiln.sql(sql).await.unwrap().collect().await.unwrap());
    assert_eq!(got, vec![vec!["10".to_string()]]);
}
