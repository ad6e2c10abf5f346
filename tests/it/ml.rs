//! Training through the engine: cached partitions on executors, kernel rounds, and the same
//! model whatever the number of executors — checked against scikit-learn.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use kiln::ml::{Columns, Fit};
use kiln::ml::{KMeans, KMeansInit, KMeansModel, LinearRegression, LogisticRegression};
use kiln::{DataFrame, Session};
use kiln_ml::Precision;
use kiln_tests::reference::reference;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::common::session;
use crate::shuffle::InstrumentedStore;

/// `n` points around `k` seeded centres in `d` dimensions (Box–Muller normals, sd 0.6).
fn blobs(n: usize, d: usize, k: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f64>> = (0..k)
        .map(|_| (0..d).map(|_| rng.random_range(-8.0..8.0)).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % k];
            c.iter()
                .map(|m| {
                    let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
                    m + 0.6 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
                })
                .collect()
        })
        .collect()
}

fn schema(d: usize) -> SchemaRef {
    Arc::new(Schema::new(
        (0..d)
            .map(|j| Field::new(format!("x{j}"), DataType::Float64, false))
            .collect::<Vec<_>>(),
    ))
}

/// The rows as batches of `batch` rows (a DataFrame over them has one partition per batch, up
/// to the session's slots).
fn batches(rows: &[Vec<f64>], batch: usize) -> Vec<RecordBatch> {
    let d = rows[0].len();
    rows.chunks(batch)
        .map(|chunk| {
            let cols: Vec<ArrayRef> = (0..d)
                .map(|j| Arc::new(Float64Array::from_iter_values(chunk.iter().map(|r| r[j]))) as _)
                .collect();
            RecordBatch::try_new(schema(d), cols).unwrap()
        })
        .collect()
}

fn frame(kiln: &Session, rows: &[Vec<f64>]) -> DataFrame {
    kiln.from_batches(schema(rows[0].len()), batches(rows, 500))
        .unwrap()
}

fn center_bits(model: &KMeansModel) -> Vec<u64> {
    model
        .centers()
        .iter()
        .flatten()
        .map(|v| v.to_bits())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmeans_through_the_engine_matches_scikit_learn() {
    // Lloyd from the same initial centres, tol = 0 and a fixed max_iter: the same iterations
    // as scikit-learn (which also stops early only on strict convergence). Tolerance 1e-9.
    let rows = blobs(4000, 3, 4, 7);
    let init: Vec<Vec<f64>> = rows[..4].to_vec();
    let kiln = session(2, 2).await;
    let model = KMeans::new(4)
        .init(KMeansInit::Centers(init.clone()))
        .tol(0.0)
        .max_iter(6)
        .fit(&frame(&kiln, &rows))
        .await
        .unwrap();
    let sk = reference(
        "ref_kmeans.py",
        &json!({"x": rows, "init_centers": init, "max_iter": 6}),
    );
    let sk_centers: Vec<Vec<f64>> = serde_json::from_value(sk["centers"].clone()).unwrap();
    for (ours, theirs) in model.centers().iter().zip(&sk_centers) {
        for (a, b) in ours.iter().zip(theirs) {
            assert!((a - b).abs() <= 1e-9, "centre {a} vs scikit-learn {b}");
        }
    }
    let inertia = sk["inertia"].as_f64().unwrap();
    assert!(
        (model.cost() - inertia).abs() <= 1e-9 * inertia,
        "cost {} vs scikit-learn inertia {inertia}",
        model.cost()
    );
    assert_eq!(model.iterations() as i64, sk["n_iter"].as_i64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmeans_model_is_bit_identical_on_1_2_and_4_executors() {
    // Same partitioning (4 slots in total), different executor counts: the partials are merged
    // in partition order, so the centres must agree to the last bit.
    let rows = blobs(6000, 4, 5, 11);
    let mut models = Vec::new();
    for (executors, slots) in [(1, 4), (2, 2), (4, 1)] {
        let kiln = session(executors, slots).await;
        let model = KMeans::new(5)
            .max_iter(8)
            .seed(3)
            .fit(&frame(&kiln, &rows))
            .await
            .unwrap();
        models.push((executors, model));
    }
    let (_, first) = &models[0];
    for (executors, m) in &models[1..] {
        assert_eq!(
            center_bits(first),
            center_bits(m),
            "{executors} executors gave other centres"
        );
        assert_eq!(first.cost().to_bits(), m.cost().to_bits());
        assert_eq!(first.iterations(), m.iterations());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_hold_contiguous_partitions_and_merge_their_partials_before_sending() {
    // 4 partitions on 2 executors of 2 slots: each executor holds one half, a whole node of
    // the merge tree, and sends one partial a round; on 4 executors each sends its own.
    let rows = blobs(4000, 3, 4, 5);
    for (executors, slots, placed, partials) in [
        (2, 2, vec![0, 0, 1, 1], 2usize),
        (4, 1, vec![0, 1, 2, 3], 4),
        (1, 4, vec![0, 0, 0, 0], 1),
    ] {
        let kiln = session(executors, slots).await;
        let mut events = kiln.events();
        let data = frame(&kiln, &rows)
            .cache_training(&Columns::new(), false, Precision::F64)
            .await
            .unwrap();
        assert_eq!(data.partition_executors(), placed, "{executors} executors");
        data.fit(KMeans::new(4).seed(2).max_iter(3).build().unwrap())
            .await
            .unwrap();
        let rounds = crate::common::partials_per_round(&mut events, 4);
        assert!(
            !rounds.is_empty(),
            "no kernel round seen on {executors} executors"
        );
        assert!(
            rounds.iter().all(|r| *r == partials),
            "{executors} executors: {rounds:?}"
        );
        data.unpersist().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_reads_the_source_once_per_fit() {
    // The source is Parquet in an instrumented store. A fit of 2 iterations and a fit of 12
    // read the source exactly as often: iterations read the cache, never the source.
    let store = InstrumentedStore::new();
    let kiln = crate::shuffle::session_with_source(&store).await;
    // One Gaussian blob, eight centres: Lloyd takes many iterations to settle exactly.
    let rows = blobs(3000, 3, 1, 5);
    frame(&kiln, &rows)
        .write_parquet("memory://src/points/")
        .await
        .unwrap();
    let df = kiln.read_parquet("memory://src/points/").await.unwrap();
    let mut reads = Vec::new();
    let mut rounds = Vec::new();
    // The first fit warms the readers' metadata caches; the next two are compared.
    for max_iter in [1, 2, 12] {
        let before_reads = store.reads_under("points");
        let before_rounds = kiln.metrics().kernel_rounds;
        let model = KMeans::new(8)
            .tol(0.0)
            .init(KMeansInit::Centers(rows[..8].to_vec()))
            .max_iter(max_iter)
            .fit(&df)
            .await
            .unwrap();
        let ran = kiln.metrics().kernel_rounds - before_rounds;
        assert!(ran as usize >= model.iterations(), "{ran} kernel rounds");
        rounds.push(ran);
        reads.push(store.reads_under("points") - before_reads);
    }
    assert!(
        rounds[2] >= rounds[1] + 5,
        "kernel rounds per fit: {rounds:?}"
    );
    assert!(reads[1] > 0, "the fit never read the source");
    assert_eq!(reads[1], reads[2], "source reads for 2 vs 12 iterations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_lost_from_memory_are_reloaded_from_the_cache_store() {
    let kiln = session(2, 2).await;
    let rows = blobs(2000, 2, 3, 9);
    let data = frame(&kiln, &rows)
        .cache_training(&Columns::new(), false, Precision::F64)
        .await
        .unwrap();
    let algorithm = || {
        KMeans::new(3)
            .tol(0.0)
            .max_iter(4)
            .init(KMeansInit::Centers(rows[..3].to_vec()))
            .build()
            .unwrap()
    };
    let before = data.fit(algorithm()).await.unwrap();
    assert_eq!(kiln.metrics().partitions_reloaded, 0);
    data.drop_from_memory().await.unwrap();
    let after = data.fit(algorithm()).await.unwrap();
    assert_eq!(
        kiln.metrics().partitions_reloaded,
        data.info().partitions as u64
    );
    assert_eq!(center_bits(&before), center_bits(&after));
    data.unpersist().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpersist_removes_the_cached_objects() {
    let dir = tempfile::tempdir().unwrap();
    let kiln = Session::builder()
        .executors(2)
        .cache_root(dir.path().to_str().unwrap())
        .build()
        .await
        .unwrap();
    let rows = blobs(1000, 2, 2, 1);
    let data = frame(&kiln, &rows)
        .cache_training(&Columns::new(), false, Precision::F32)
        .await
        .unwrap();
    let files = walk(dir.path());
    assert_eq!(files.len(), data.info().partitions, "{files:?}");
    assert!(files.iter().all(|f| f.ends_with(".kpart")));
    data.unpersist().await.unwrap();
    assert!(walk(dir.path()).is_empty());
}

/// The files under `dir`, without the leases of the sessions using it as a root.
pub fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.ends_with("_kiln-sessions") {
            continue;
        }
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_training_input_names_the_culprit() {
    let kiln = session(2, 1).await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Float64, true),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Float64Array::from(vec![Some(1.0), None, Some(3.0)])),
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
        ],
    )
    .unwrap();
    let df = kiln.from_batches(schema, vec![batch]).unwrap();

    let err = KMeans::new(2)
        .fit_columns(&df, Columns::new().features(["x", "name"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'name'") && err.contains("not numeric"),
        "{err}"
    );

    let err = KMeans::new(2)
        .fit_columns(&df, Columns::new().features(["x"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'x'") && err.contains("null") && err.contains("Imputer"),
        "{err}"
    );

    let err = KMeans::new(2)
        .fit_columns(&df, Columns::new().features(["xx"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'xx'") && err.contains("did you mean 'x'"),
        "{err}"
    );

    // Parameters are checked before any data moves: no kernel round runs.
    let rounds = kiln.metrics().kernel_rounds;
    let err = KMeans::new(0).fit(&df).await.unwrap_err().to_string();
    assert!(err.contains("k must be >= 1, got 0"), "{err}");
    assert_eq!(kiln.metrics().kernel_rounds, rounds);
}

/// Seeded binary classification data: `x` in 4 dimensions, `label` drawn from a logistic model.
pub fn labelled(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = [1.5, -2.0, 0.5, 0.0];
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f64> = (0..4).map(|_| rng.random_range(-2.0..2.0)).collect();
        let margin: f64 = 0.3 + row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>();
        let p = 1.0 / (1.0 + (-margin).exp());
        y.push(if rng.random::<f64>() < p { 1.0 } else { 0.0 });
        x.push(row);
    }
    (x, y)
}

pub fn labelled_frame(kiln: &Session, x: &[Vec<f64>], y: &[f64]) -> DataFrame {
    let mut fields: Vec<Field> = (0..4)
        .map(|j| Field::new(format!("x{j}"), DataType::Float64, false))
        .collect();
    fields.push(Field::new("label", DataType::Float64, false));
    let schema = Arc::new(Schema::new(fields));
    let batches = x
        .chunks(400)
        .zip(y.chunks(400))
        .map(|(rows, labels)| {
            let mut cols: Vec<ArrayRef> = (0..4)
                .map(|j| Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r[j]))) as _)
                .collect();
            cols.push(Arc::new(Float64Array::from(labels.to_vec())));
            RecordBatch::try_new(Arc::clone(&schema), cols).unwrap()
        })
        .collect();
    kiln.from_batches(schema, batches).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logistic_regression_through_the_engine_matches_scikit_learn() {
    // Same objective as scikit-learn's LogisticRegression(C = 1/(n λ)); coefficients and
    // intercept within 1e-4.
    let (x, y) = labelled(3000, 21);
    let lambda = 0.01;
    let kiln = session(2, 2).await;
    let model = LogisticRegression::new()
        .reg_param(lambda)
        .standardization(false)
        .tol(1e-12)
        .max_iter(500)
        .fit(&labelled_frame(&kiln, &x, &y))
        .await
        .unwrap();
    let sk = reference(
        "ref_linear.py",
        &json!({"model": "logistic", "x": x, "y": y, "reg_param": lambda}),
    );
    let coef: Vec<Vec<f64>> = serde_json::from_value(sk["coef"].clone()).unwrap();
    let intercept: Vec<f64> = serde_json::from_value(sk["intercept"].clone()).unwrap();
    let ours = model.coefficient_matrix();
    for (j, want) in coef[0].iter().enumerate() {
        let got = ours.get(0, j);
        assert!(
            (got - want).abs() <= 1e-4,
            "coefficient {j}: {got} vs scikit-learn {want}"
        );
    }
    assert!(
        (model.intercepts()[0] - intercept[0]).abs() <= 1e-4,
        "intercept {} vs scikit-learn {}",
        model.intercepts()[0],
        intercept[0]
    );
    assert!(!model.objective_history().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linear_models_are_bit_identical_on_1_2_and_4_executors() {
    let (x, y) = labelled(2400, 5);
    let mut fits = Vec::new();
    for (executors, slots) in [(1, 4), (2, 2), (4, 1)] {
        let kiln = session(executors, slots).await;
        let df = labelled_frame(&kiln, &x, &y);
        let logistic = LogisticRegression::new()
            .reg_param(0.05)
            .elastic_net_param(0.5)
            .max_iter(50)
            .fit(&df)
            .await
            .unwrap();
        let linear = LinearRegression::new()
            .reg_param(0.1)
            .max_iter(50)
            .fit(&df)
            .await
            .unwrap();
        let mut bits: Vec<u64> = logistic
            .coefficient_matrix()
            .as_slice()
            .iter()
            .chain(logistic.intercepts())
            .chain(linear.coefficients())
            .map(|v| v.to_bits())
            .collect();
        bits.push(linear.intercept().to_bits());
        fits.push((executors, bits));
    }
    for (executors, bits) in &fits[1..] {
        assert_eq!(&fits[0].1, bits, "{executors} executors gave another model");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_that_is_not_a_class_index_is_named() {
    let (x, mut y) = labelled(500, 2);
    y[17] = 2.5;
    let kiln = session(2, 1).await;
    let err = LogisticRegression::new()
        .fit(&labelled_frame(&kiln, &x, &y))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("2.5"), "{err}");
    let err = LinearRegression::new()
        .fit_columns(
            &labelled_frame(&kiln, &x, &y),
            Columns::new().label("lable"),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean 'label'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_model_predicts_in_sql_on_the_executors() {
    let rows = blobs(3000, 3, 4, 17);
    let kiln = session(2, 2).await;
    let df = frame(&kiln, &rows);
    let trained = KMeans::new(4).max_iter(10).seed(2).fit(&df).await.unwrap();

    // Save, load (no executor involved), register under a name.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("km");
    let path = path.to_str().unwrap();
    kiln.save_model(&trained.clone().into(), path)
        .await
        .unwrap();
    let loaded = kiln.load_model(path).await.unwrap();
    assert_eq!(loaded.algorithm(), "kmeans");
    kiln.register_model("km", loaded);

    // predict(...) runs inside the distributed plan: the model travels in the plan bytes.
    kiln.register("points", &df).unwrap();
    let batches = kiln
        .sql("SELECT x0, x1, x2, predict('km', x0, x1, x2) AS cluster FROM points")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut seen = 0;
    for b in &batches {
        let xs: Vec<Vec<f64>> = (0..b.num_rows())
            .map(|i| {
                (0..3)
                    .map(|j| {
                        b.column(j)
                            .as_any()
                            .downcast_ref::<Float64Array>()
                            .unwrap()
                            .value(i)
                    })
                    .collect()
            })
            .collect();
        let want = trained.predict_rows(&xs).unwrap();
        let got = b
            .column(3)
            .as_any()
            .downcast_ref::<arrow::array::UInt32Array>()
            .unwrap();
        assert_eq!(got.values().to_vec(), want);
        seen += b.num_rows();
    }
    assert_eq!(seen, rows.len());

    // The DataFrame form names the features for you.
    let n = frame(&kiln, &rows)
        .predict("km", "cluster")
        .unwrap()
        .filter(datafusion::prelude::col("cluster").lt(datafusion::prelude::lit(4u32)))
        .unwrap()
        .count()
        .await
        .unwrap();
    assert_eq!(n, rows.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_errors_name_the_model_and_its_features() {
    let rows = blobs(500, 2, 2, 3);
    let kiln = session(1, 2).await;
    let df = frame(&kiln, &rows);
    let model = KMeans::new(2).fit(&df).await.unwrap();
    kiln.register_model("km", model);
    kiln.register("points", &df).unwrap();

    let err = kiln
        .sql("SELECT predict('nope', x0, x1) FROM points")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no model named 'nope'") && err.contains("km"),
        "{err}"
    );

    let err = kiln
        .sql("SELECT predict('km', x0) FROM points")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("takes 2 feature columns (x0, x1), got 1"),
        "{err}"
    );

    let missing = tempfile::tempdir().unwrap();
    let err = kiln
        .load_model(missing.path().join("none").to_str().unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("none") && err.contains("metadata.json"),
        "{err}"
    );
}
