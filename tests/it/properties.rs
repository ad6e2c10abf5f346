//! Property tests: the shuffle partitions rows exactly once, plans survive the codec, and
//! seeded sampling does not depend on the number of executors.

use std::sync::Arc;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{displayable, ExecutionPlan, Partitioning, PlanProperties};
use datafusion::prelude::{SessionConfig, SessionContext};
use kiln_executor::shuffle::{
    new_partitioner, write_task_output, MapOutputId, ReadLocation, ShuffleReaderExec, StoreRoot,
};
use kiln_planner::{cut_stages, plan_from_bytes, plan_to_bytes, KilnPhysicalCodec};
use object_store::memory::InMemory;
use proptest::prelude::*;

use crate::common::{session, sorted_rows};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]))
}

fn batch(keys: &[Option<i64>], strs: &[String]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(keys.to_vec())),
            Arc::new(StringArray::from(strs.to_vec())),
        ],
    )
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `batches` as one map task hash-partitioned on `k` into `reduce` partitions, then reads
/// every reduce partition back. Returns the rows of each partition.
async fn shuffle_once(batches: Vec<RecordBatch>, reduce: usize) -> Vec<Vec<RecordBatch>> {
    shuffle_once_with(batches, reduce, kiln_planner::task::ShuffleCompression::Lz4).await
}

/// As [`shuffle_once`], with the given compression.
async fn shuffle_once_with(
    batches: Vec<RecordBatch>,
    reduce: usize,
    compression: kiln_planner::task::ShuffleCompression,
) -> Vec<Vec<RecordBatch>> {
    let ctx = SessionContext::new();
    let store = Arc::new(InMemory::new());
    let url = ObjectStoreUrl::parse("memory://prop").unwrap();
    ctx.runtime_env().register_object_store(url.as_ref(), store);
    let root = StoreRoot::resolve("memory://prop/shuffle/", &ctx.runtime_env()).unwrap();
    let partitioning = Partitioning::Hash(vec![Arc::new(Column::new("k", 0))], reduce);
    let partitioner = new_partitioner(partitioning, 0, 1).unwrap();
    let stream = Box::pin(MemoryStream::try_new(batches, schema(), None).unwrap());
    let id = MapOutputId {
        job_id: "job".into(),
        stage_id: 1,
        map_partition: 0,
        attempt: 0,
        executor_id: "test".into(),
        compression,
    };
    let status = write_task_output(stream, Some(partitioner), reduce, &root, &id)
        .await
        .unwrap();
    assert_eq!(status.ranges.len(), reduce);
    let locations: Vec<Vec<ReadLocation>> = status
        .ranges
        .iter()
        .map(|r| {
            vec![ReadLocation {
                stage_id: 1,
                map_partition: 0,
                object: status.object.clone(),
                range: r.clone(),
            }]
        })
        .collect();
    let props = PlanProperties::new(
        EquivalenceProperties::new(schema()),
        Partitioning::UnknownPartitioning(reduce),
        EmissionType::Incremental,
        Boundedness::Bounded,
    );
    let reader = ShuffleReaderExec::new(url, locations, Arc::new(props));
    let mut out = Vec::new();
    for p in 0..reduce {
        let s = reader.execute(p, ctx.task_ctx()).unwrap();
        out.push(datafusion::physical_plan::common::collect(s).await.unwrap());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_row_lands_in_exactly_one_partition(
        rows in proptest::collection::vec((proptest::option::of(-50i64..50), "[a-z]{0,6}"), 0..400),
        split in 1usize..5,
        reduce in 1usize..9,
    ) {
        let keys: Vec<Option<i64>> = rows.iter().map(|r| r.0).collect();
        let strs: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
        // Feed the rows as `split` batches.
        let chunk = rows.len().div_ceil(split).max(1);
        let batches: Vec<RecordBatch> = keys
            .chunks(chunk)
            .zip(strs.chunks(chunk))
            .map(|(k, s)| batch(k, s))
            .collect();
        let parts = runtime().block_on(shuffle_once(batches.clone(), reduce));

        // Same multiset of rows overall...
        let all: Vec<RecordBatch> = parts.iter().flatten().cloned().collect();
        prop_assert_eq!(sorted_rows(&all), sorted_rows(&batches));
        // ...and every key in exactly one partition.
        let mut owner = std::collections::HashMap::new();
        for (p, bs) in parts.iter().enumerate() {
            for row in sorted_rows(bs) {
                let prev = owner.insert(row[0].clone(), p);
                prop_assert!(prev.is_none() || prev == Some(p), "key {} in partitions {:?} and {}", row[0], prev, p);
            }
        }
    }

    #[test]
    fn plans_round_trip_through_the_codec(
        threshold in -100i64..100,
        key in prop_oneof![Just("a % 3"), Just("b"), Just("a + 1")],
        agg in prop_oneof![Just("sum(a)"), Just("count(*)"), Just("max(b)"), Just("avg(a)")],
        order in any::<bool>(),
        join in any::<bool>(),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
            ctx.sql("CREATE TABLE t AS SELECT value AS a, CAST(value % 5 AS VARCHAR) AS b FROM generate_series(1, 100)")
                .await.unwrap().collect().await.unwrap();
            let from = if join { "t JOIN t AS u ON t.a = u.a" } else { "t" };
            let key = key.replace('a', "t.a").replace('b', "t.b");
            let agg = agg.replace("(a)", "(t.a)").replace("(b)", "(t.b)");
            let order = if order { " ORDER BY 1" } else { "" };
            let sql = format!("SELECT {key} AS k, {agg} AS v FROM {from} WHERE t.a > {threshold} GROUP BY {key}{order}");
            let plan = ctx.sql(&sql).await.unwrap().create_physical_plan().await.unwrap();
            let codec = KilnPhysicalCodec;

            // The whole plan...
            let bytes = plan_to_bytes(Arc::clone(&plan), &codec).unwrap();
            let back = plan_from_bytes(&bytes, &ctx.task_ctx(), &codec).unwrap();
            assert_eq!(
                displayable(plan.as_ref()).indent(true).to_string(),
                displayable(back.as_ref()).indent(true).to_string(),
                "{sql}"
            );
            assert_eq!(plan_to_bytes(back, &codec).unwrap(), bytes);

            // ...and every stage fragment with its shuffle-read placeholders.
            for stage in cut_stages(plan).unwrap().stages {
                let bytes = plan_to_bytes(Arc::clone(&stage.plan), &codec).unwrap();
                let back = plan_from_bytes(&bytes, &ctx.task_ctx(), &codec).unwrap();
                assert_eq!(plan_to_bytes(back, &codec).unwrap(), bytes, "{sql} stage {}", stage.id);
            }
        });
    }

    #[test]
    fn random_split_does_not_depend_on_executor_count(
        seed in any::<u64>(),
        fraction in 0.05f64..0.95,
    ) {
        let rt = runtime();
        rt.block_on(async {
            let sql = "SELECT value AS id, value % 13 AS g FROM generate_series(1, 3000)";
            let mut answers = Vec::new();
            for executors in [1usize, 4] {
                let kiln = session(executors, 1).await;
                let df = kiln.sql(sql).await.unwrap();
                let (a, b) = df.random_split(fraction, seed).unwrap();
                let a = sorted_rows(&a.collect().await.unwrap());
                let b = sorted_rows(&b.collect().await.unwrap());
                assert_eq!(a.len() + b.len(), 3000, "the split loses or duplicates rows");
                answers.push((a, b));
            }
            assert_eq!(answers[0], answers[1]);
        });
    }
}

/// A map output larger than one upload part goes up as a multipart upload and reads back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_map_outputs_are_uploaded_in_parts() {
    let n = 1_500_000i64; // 12 MB of keys, uncompressed: more than one 8 MiB part
    let keys: Vec<Option<i64>> = (0..n).map(Some).collect();
    let strs: Vec<String> = vec![String::new(); n as usize];
    let input: Vec<RecordBatch> = keys
        .chunks(100_000)
        .zip(strs.chunks(100_000))
        .map(|(k, s)| batch(k, s))
        .collect();
    let parts = shuffle_once_with(input, 3, kiln_planner::task::ShuffleCompression::None).await;
    let total: usize = parts.iter().flatten().map(|b| b.num_rows()).sum();
    assert_eq!(total, n as usize);
    let sum: i64 = parts
        .iter()
        .flatten()
        .map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .iter()
                .sum::<i64>()
        })
        .sum();
    assert_eq!(sum, n * (n - 1) / 2);
}
