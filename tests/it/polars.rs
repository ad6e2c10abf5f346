//! Polars interop: a Polars frame into Kiln, through a distributed query, and back.

use kiln::deps::polars_core::prelude::*;
use kiln::prelude::{col, lit, sum};

use crate::common::{session, sorted_rows};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polars_round_trip_through_a_query() {
    let kiln = session(2, 2).await;
    let pl = DataFrame::new(
        4,
        vec![
            Column::new("city".into(), ["oslo", "rome", "oslo", "lima"]),
            Column::new("temp".into(), [3.5f64, 21.0, -1.5, 18.25]),
            Column::new("n".into(), [Some(1i64), None, Some(3), Some(4)]),
        ],
    )
    .unwrap();

    let df = kiln.from_polars(&pl).unwrap();
    let back = df.to_polars().await.unwrap();
    assert_eq!(back.shape(), (4, 3));
    assert_eq!(
        back.column("temp").unwrap().f64().unwrap().sum(),
        Some(41.25)
    );
    assert_eq!(back.column("n").unwrap().null_count(), 1);

    let agg = df
        .filter(col("temp").gt(lit(0.0)))
        .unwrap()
        .group_by(vec![col("city")])
        .agg(vec![sum(col("temp")).alias("t")])
        .unwrap();
    let rows = sorted_rows(&agg.collect().await.unwrap());
    assert_eq!(rows.len(), 3);
    let out = agg.to_polars().await.unwrap();
    assert_eq!(out.height(), 3);
    let names: Vec<String> = out
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, vec!["city", "t"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_result_becomes_an_empty_polars_frame() {
    let kiln = session(1, 1).await;
    let df = kiln
        .sql("SELECT 1 AS a, 'x' AS b WHERE 1 = 0")
        .await
        .unwrap();
    let out = df.to_polars().await.unwrap();
    assert_eq!(out.shape(), (0, 2));
}
