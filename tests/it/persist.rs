//! `DataFrame::persist` / `cache` / `unpersist`: results equal the uncached plan's, the source
//! is read once however many queries and fits follow, and unpersist frees memory and store.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::prelude::{col, lit};
use kiln::ml::{Fit, KMeans, KMeansInit, LinearRegression, Precision};
use kiln::{DataFrame, Session};

use crate::common::{rows, session};
use crate::shuffle::InstrumentedStore;

fn points(kiln: &Session, n: usize) -> DataFrame {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Float64, false),
        Field::new("label", DataType::Float64, false),
    ]));
    let batches = (0..n)
        .collect::<Vec<_>>()
        .chunks(250)
        .map(|c| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from_iter_values(
                        c.iter().map(|&i| (i % 13) as i64),
                    )),
                    Arc::new(Float64Array::from_iter_values(
                        c.iter().map(|&i| (i as f64 * 0.37).sin() * 4.0),
                    )),
                    Arc::new(Float64Array::from_iter_values(
                        c.iter()
                            .map(|&i| 2.0 * (i % 13) as f64 - (i as f64 * 0.37).sin()),
                    )),
                ],
            )
            .unwrap()
        })
        .collect();
    kiln.from_batches(schema, batches).unwrap()
}

async fn summary(df: &DataFrame) -> Vec<Vec<String>> {
    let grouped = df
        .clone()
        .filter(col("b").gt(lit(-1.0)))
        .unwrap()
        .group_by(vec![
            datafusion::prelude::cast(col("a"), DataType::Int64).alias("a")
        ])
        .agg(vec![count(col("b")).alias("n"), sum(col("b")).alias("s")])
        .unwrap()
        .sort(vec![col("a").sort(true, false)])
        .unwrap();
    rows(&grouped.collect().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_frames_answer_like_the_original() {
    let kiln = session(2, 2).await;
    let df = points(&kiln, 3000);
    let cached = df.cache().await.unwrap();
    assert!(cached.is_persisted());
    assert_eq!(summary(&cached).await, summary(&df).await);
    assert_eq!(cached.count().await.unwrap(), 3000);
    // Columns are cached as f64 (f32 on request).
    assert_eq!(cached.schema().field(0).data_type(), &DataType::Float64);
    let small = df.persist(Precision::F32).await.unwrap();
    assert_eq!(small.schema().field(1).data_type(), &DataType::Float32);
    assert_eq!(small.count().await.unwrap(), 3000);
    // The plan scans the cache.
    let plan = cached.explain().await.unwrap();
    assert!(plan.contains("CachedScan"), "{plan}");

    // Executors dropped their copies: tasks read the store's copy, same answer.
    cached
        .cached_data()
        .unwrap()
        .drop_from_memory()
        .await
        .unwrap();
    assert_eq!(summary(&cached).await, summary(&df).await);

    // A fit on the persisted frame equals a fit on the original.
    let fit = |d: DataFrame| async move {
        LinearRegression::new()
            .reg_param(0.1)
            .fit(&d)
            .await
            .unwrap()
    };
    let (a, b) = (fit(df.clone()).await, fit(cached.clone()).await);
    assert_eq!(a.coefficients(), b.coefficients());
    small.unpersist().await.unwrap();
    cached.unpersist().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisted_source_is_read_once_for_many_queries_and_fits() {
    let store = InstrumentedStore::new();
    let kiln = crate::shuffle::session_with_source(&store).await;
    points(&kiln, 4000)
        .write_parquet("memory://src/points/")
        .await
        .unwrap();
    let df = kiln.read_parquet("memory://src/points/").await.unwrap();
    let before = store.reads_under("points");
    let cached = df.cache().await.unwrap();
    let after_cache = store.reads_under("points");
    assert!(after_cache > before, "persist read the source");
    for k in [2, 3, 4] {
        KMeans::new(k)
            .init(KMeansInit::Random)
            .max_iter(5)
            .fit(&cached)
            .await
            .unwrap();
    }
    summary(&cached).await;
    cached.count().await.unwrap();
    assert_eq!(
        store.reads_under("points"),
        after_cache,
        "queries and fits after persist read the source again"
    );
    cached.unpersist().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpersist_frees_the_store_and_later_queries_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let kiln = Session::builder()
        .executors(2)
        .cache_root(dir.path().to_str().unwrap())
        .build()
        .await
        .unwrap();
    let cached = points(&kiln, 1000).cache().await.unwrap();
    let partitions = cached.cached_data().unwrap().info().partitions;
    let files = crate::ml::walk(dir.path());
    assert_eq!(files.len(), partitions, "{files:?}");
    cached.unpersist().await.unwrap();
    assert!(crate::ml::walk(dir.path()).is_empty());
    assert!(!cached.is_persisted());
    let err = cached.count().await.unwrap_err().to_string();
    assert!(err.contains("unpersisted"), "{err}");
    // A second unpersist is a no-op.
    cached.unpersist().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_rejects_columns_it_cannot_hold() {
    let kiln = session(2, 1).await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Float64, true),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Float64Array::from(vec![Some(1.0), None])),
            Arc::new(StringArray::from(vec!["a", "b"])),
        ],
    )
    .unwrap();
    let df = kiln.from_batches(schema, vec![batch]).unwrap();
    let err = df.cache().await.unwrap_err().to_string();
    assert!(err.contains("'name'") && err.contains("Utf8"), "{err}");
    let err = df
        .select_columns(&["x"])
        .unwrap()
        .cache()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains('x') && err.contains("null"), "{err}");
}
