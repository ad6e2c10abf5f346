//! Feature transformers, pipelines and evaluators through the engine, checked against
//! scikit-learn (`tests/python/ref_features.py`).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use kiln::ml::{
    Average, ClassificationMetric, Columns, Evaluator, FittedStage, HandleInvalid, ImputeStrategy,
    Imputer, LogisticRegression, MinMaxScaler, Model, ModelKind, OneHotEncoder, Pipeline,
    RegressionMetric, StandardScaler, StringIndexer, StringOrder, VectorAssembler,
};
use kiln::{DataFrame, Session};
use kiln_tests::reference::reference;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::common::session;

/// `n` rows of three features with some nulls and NaNs, and a string label `yes`/`no` drawn
/// from a logistic model.
struct Data {
    x: Vec<[Option<f64>; 3]>,
    label: Vec<&'static str>,
}

fn data(n: usize, seed: u64) -> Data {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n);
    let mut label = Vec::with_capacity(n);
    for i in 0..n {
        let a: f64 = rng.random_range(-3.0..3.0);
        // x1 takes few distinct values, so its mode is meaningful.
        let b = (rng.random_range(0.0..5.0f64) * 2.0).round() / 2.0;
        let c: f64 = rng.random_range(10.0..20.0);
        let margin = 1.5 * a - 0.8 * b + 0.3 * (c - 15.0) + 1.0;
        let p = 1.0 / (1.0 + (-margin).exp());
        label.push(if rng.random::<f64>() < p { "yes" } else { "no" });
        x.push([
            (i % 17 != 3).then_some(a),
            (i % 29 != 5).then_some(b),
            // NaN is missing too.
            Some(if i % 23 == 7 { f64::NAN } else { c }),
        ]);
    }
    Data { x, label }
}

fn frame(kiln: &Session, d: &Data) -> DataFrame {
    let schema = Arc::new(Schema::new(vec![
        Field::new("x0", DataType::Float64, true),
        Field::new("x1", DataType::Float64, true),
        Field::new("x2", DataType::Float64, true),
        Field::new("answer", DataType::Utf8, false),
        Field::new("id", DataType::Int64, false),
    ]));
    let rows: Vec<usize> = (0..d.x.len()).collect();
    let batches = rows
        .chunks(100)
        .map(|chunk| {
            let mut cols: Vec<ArrayRef> = (0..3)
                .map(|j| Arc::new(chunk.iter().map(|&i| d.x[i][j]).collect::<Float64Array>()) as _)
                .collect();
            cols.push(Arc::new(StringArray::from(
                chunk.iter().map(|&i| d.label[i]).collect::<Vec<_>>(),
            )));
            cols.push(Arc::new(arrow::array::Int64Array::from_iter_values(
                chunk.iter().map(|&i| i as i64),
            )));
            RecordBatch::try_new(Arc::clone(&schema), cols).unwrap()
        })
        .collect();
    kiln.from_batches(schema, batches).unwrap()
}

/// The reference input: NaN written as null (missing either way).
fn reference_input(d: &Data, y: &[f64], reg_param: f64) -> Value {
    let x: Vec<Vec<Option<f64>>> =
        d.x.iter()
            .map(|r| r.iter().map(|v| v.filter(|v| !v.is_nan())).collect())
            .collect();
    json!({"x": x, "y": y, "reg_param": reg_param})
}

fn floats(v: &Value) -> Vec<f64> {
    serde_json::from_value(v.clone()).unwrap()
}

/// Column `name` as `f64`, in row order (by `id` when there is one: a multi-partition result
/// comes back in no particular partition order).
async fn column(df: &DataFrame, name: &str) -> Vec<f64> {
    let mut df = df.clone();
    if df.schema().index_of("id").is_ok() {
        df = df
            .sort(vec![datafusion::prelude::col("id").sort(true, false)])
            .unwrap();
    }
    let batches = df.select_columns(&[name]).unwrap().collect().await.unwrap();
    let schema = batches[0].schema();
    let all = concat_batches(&schema, &batches).unwrap();
    let a = arrow::compute::cast(all.column(0), &DataType::Float64).unwrap();
    a.as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .values()
        .to_vec()
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: {g} vs scikit-learn {w} (tolerance {tol})"
        );
    }
}

/// The label as scikit-learn sees it: the index the fitted StringIndexer gives.
fn indexed(d: &Data, labels: &[String]) -> Vec<f64> {
    d.label
        .iter()
        .map(|l| labels.iter().position(|x| x == l).unwrap() as f64)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transformers_match_scikit_learn() {
    // Surrogates, means and deviations within 1e-12; scaled values within 1e-12.
    let d = data(600, 3);
    let kiln = session(2, 2).await;
    let df = frame(&kiln, &d);
    let cols = ["x0", "x1", "x2"];
    let indexer = StringIndexer::new("answer", "label")
        .fit(&df)
        .await
        .unwrap();
    let y = indexed(&d, indexer.labels());
    let sk = reference("ref_features.py", &reference_input(&d, &y, 0.01));

    for (strategy, key) in [
        (ImputeStrategy::Mean, "impute_mean"),
        (ImputeStrategy::Median, "impute_median"),
        (ImputeStrategy::Mode, "impute_mode"),
    ] {
        let m = Imputer::new(cols)
            .strategy(strategy)
            .fit(&df)
            .await
            .unwrap();
        close(m.surrogates(), &floats(&sk[key]), 1e-12, key);
    }
    let imputed = Imputer::new(cols)
        .fit(&df)
        .await
        .unwrap()
        .transform(df.clone())
        .unwrap();
    let scaler = StandardScaler::new()
        .input_cols(cols)
        .with_mean(true)
        .fit(&imputed)
        .await
        .unwrap();
    close(scaler.mean(), &floats(&sk["mean"]), 1e-12, "mean");
    close(scaler.std(), &floats(&sk["sd"]), 1e-12, "sd");

    let minmax = MinMaxScaler::new().input_cols(cols).output("mm");
    let scaled = minmax
        .fit(&imputed)
        .await
        .unwrap()
        .transform(imputed.clone())
        .unwrap();
    let want: Vec<Vec<f64>> = serde_json::from_value(sk["minmax"].clone()).unwrap();
    for (j, c) in cols.iter().enumerate() {
        let got = column(&scaled, &format!("mm_{c}")).await;
        let want: Vec<f64> = want.iter().map(|r| r[j]).collect();
        close(&got, &want, 1e-12, &format!("minmax {c}"));
        // The input column is still there, untouched.
        assert_eq!(column(&scaled, c).await.len(), d.x.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_matches_scikit_learn_and_evaluators_match_sklearn_metrics() {
    // Imputer → assembler → standard scaler → logistic regression, against scikit-learn's
    // SimpleImputer → (x − μ)/σ → LogisticRegression(C = 1/(nλ)): coefficients within 1e-4,
    // probabilities within 1e-4. Evaluators on the same predictions as sklearn.metrics: 1e-9.
    let d = data(800, 11);
    let lambda = 0.01;
    let kiln = session(2, 2).await;
    let df = frame(&kiln, &d);
    let pipeline = Pipeline::new()
        .stage(StringIndexer::new("answer", "label"))
        .stage(Imputer::new(["x0", "x1", "x2"]))
        .stage(VectorAssembler::new(["x0", "x1", "x2"]))
        .stage(StandardScaler::new().with_mean(true))
        .stage(
            LogisticRegression::new()
                .reg_param(lambda)
                .standardization(false)
                .tol(1e-12)
                .max_iter(500),
        );
    let fitted = pipeline.fit(&df).await.unwrap();
    let FittedStage::Features(kiln::ml::FeatureModel::StringIndexer(indexer)) = &fitted.stages()[0]
    else {
        panic!("stage 0 is the indexer")
    };
    let y = indexed(&d, indexer.labels());
    let sk = reference("ref_features.py", &reference_input(&d, &y, lambda));
    let Some(ModelKind::LogisticRegression(model)) = fitted.model().map(Model::kind) else {
        panic!("the pipeline ends with a logistic model")
    };
    let coef = model.coefficient_matrix();
    let got: Vec<f64> = (0..3).map(|j| coef.get(0, j)).collect();
    close(&got, &floats(&sk["coef"]), 1e-4, "coefficient");
    close(
        &model.intercepts()[..1],
        &[sk["intercept"].as_f64().unwrap()],
        1e-4,
        "intercept",
    );

    // Transform new data (here: the same rows) in one lazy plan, with probabilities.
    let out = fitted.transform(df.clone()).unwrap();
    let model_name = match &fitted.stages()[4] {
        FittedStage::Model { name, .. } => name.clone(),
        _ => panic!("stage 4 is the model"),
    };
    let out = out.predict_proba(&model_name, "probability").unwrap();
    let batches = out
        .clone()
        .sort(vec![datafusion::prelude::col("id").sort(true, false)])
        .unwrap()
        .select_columns(&["probability"])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut proba = Vec::new();
    for b in &batches {
        let list = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::FixedSizeListArray>()
            .unwrap();
        for i in 0..list.len() {
            let row = list.value(i);
            proba.push(
                row.as_any()
                    .downcast_ref::<Float64Array>()
                    .unwrap()
                    .value(1),
            );
        }
    }
    close(
        &proba,
        &floats(&sk["proba"]),
        1e-4,
        "probability of class 1",
    );

    // Kiln's evaluators against sklearn.metrics, on scikit-learn's own predictions.
    let sk_proba = floats(&sk["proba"]);
    let sk_pred: Vec<f64> = sk_proba
        .iter()
        .map(|p| if *p > 0.5 { 1.0 } else { 0.0 })
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("label", DataType::Float64, false),
        Field::new("prediction", DataType::Float64, false),
        Field::new("probability", DataType::Float64, false),
    ]));
    let scored = kiln
        .from_batches(
            Arc::clone(&schema),
            (0..4)
                .map(|part| {
                    let r = part * 200..(part + 1) * 200;
                    RecordBatch::try_new(
                        Arc::clone(&schema),
                        vec![
                            Arc::new(Float64Array::from(y[r.clone()].to_vec())) as _,
                            Arc::new(Float64Array::from(sk_pred[r.clone()].to_vec())) as _,
                            Arc::new(Float64Array::from(sk_proba[r].to_vec())) as _,
                        ],
                    )
                    .unwrap()
                })
                .collect(),
        )
        .unwrap();
    let checks = [
        (
            Evaluator::classification(ClassificationMetric::Accuracy),
            "accuracy",
        ),
        (
            Evaluator::classification(ClassificationMetric::F1(Average::Weighted)),
            "f1_weighted",
        ),
        (
            Evaluator::classification(ClassificationMetric::Precision(Average::Macro)),
            "precision_macro",
        ),
        (
            Evaluator::classification(ClassificationMetric::Recall(Average::Weighted)),
            "recall_weighted",
        ),
        (
            Evaluator::classification(ClassificationMetric::LogLoss),
            "log_loss",
        ),
        (
            Evaluator::classification(ClassificationMetric::AreaUnderRoc),
            "roc_auc",
        ),
        (
            Evaluator::regression(RegressionMetric::Rmse).prediction_col("probability"),
            "rmse",
        ),
        (
            Evaluator::regression(RegressionMetric::Mae).prediction_col("probability"),
            "mae",
        ),
        (
            Evaluator::regression(RegressionMetric::R2).prediction_col("probability"),
            "r2",
        ),
    ];
    for (evaluator, key) in checks {
        let got = evaluator.evaluate(&scored).await.unwrap();
        let want = sk[key].as_f64().unwrap();
        assert!((got - want).abs() <= 1e-9, "{key}: {got} vs sklearn {want}");
    }

    // The evaluator also reads a probability list column (from predict_proba) directly.
    let auc = Evaluator::classification(ClassificationMetric::AreaUnderRoc)
        .evaluate(&out)
        .await
        .unwrap();
    assert!(
        (auc - sk["roc_auc"].as_f64().unwrap()).abs() < 1e-3,
        "AUC {auc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_are_bit_identical_on_1_and_3_executors() {
    // Same partitioning (3 slots in total): the statistics' partial aggregates and the
    // training partials are merged in partition order.
    let d = data(900, 5);
    let mut results = Vec::new();
    for (executors, slots) in [(1, 3), (3, 1)] {
        let kiln = session(executors, slots).await;
        let df = frame(&kiln, &d);
        let fitted = Pipeline::new()
            .stage(StringIndexer::new("answer", "label"))
            .stage(Imputer::new(["x0", "x1", "x2"]).strategy(ImputeStrategy::Median))
            .stage(VectorAssembler::new(["x0", "x1", "x2"]))
            .stage(StandardScaler::new().with_mean(true))
            .stage(LogisticRegression::new().reg_param(0.05))
            .fit(&df)
            .await
            .unwrap();
        let Some(ModelKind::LogisticRegression(m)) = fitted.model().map(Model::kind) else {
            panic!("logistic model")
        };
        let coef = m.coefficient_matrix();
        let bits: Vec<u64> = (0..3)
            .map(|j| coef.get(0, j).to_bits())
            .chain([m.intercepts()[0].to_bits()])
            .collect();
        let predicted = column(&fitted.transform(df).unwrap(), "prediction").await;
        results.push((bits, predicted));
    }
    assert_eq!(results[0], results[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_indexer_orders_and_handles_unseen_labels() {
    let kiln = session(2, 1).await;
    let words = |w: &[&str]| {
        let schema = Arc::new(Schema::new(vec![Field::new("w", DataType::Utf8, true)]));
        let a: StringArray = w.iter().map(|s| (!s.is_empty()).then_some(*s)).collect();
        kiln.from_batches(
            Arc::clone(&schema),
            vec![RecordBatch::try_new(schema, vec![Arc::new(a)]).unwrap()],
        )
        .unwrap()
    };
    let train = words(&["b", "a", "c", "a", "b", "a", ""]);
    // Frequency first, ties alphabetically; the null is not a label.
    let m = StringIndexer::new("w", "i").fit(&train).await.unwrap();
    assert_eq!(m.labels(), ["a", "b", "c"]);
    let m2 = StringIndexer::new("w", "i")
        .string_order_type(StringOrder::AlphabetDesc)
        .fit(&train)
        .await
        .unwrap();
    assert_eq!(m2.labels(), ["c", "b", "a"]);

    let test = words(&["c", "zebra", "a"]);
    let err = m
        .transform(test.clone())
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("'w'") && err.contains("zebra"), "{err}");
    let keep = StringIndexer::new("w", "i")
        .handle_invalid(HandleInvalid::Keep)
        .fit(&train)
        .await
        .unwrap();
    assert_eq!(
        column(&keep.transform(test.clone()).unwrap(), "i").await,
        [2.0, 3.0, 0.0]
    );
    let skip = StringIndexer::new("w", "i")
        .handle_invalid(HandleInvalid::Skip)
        .fit(&train)
        .await
        .unwrap();
    assert_eq!(
        column(&skip.transform(test).unwrap(), "i").await,
        [2.0, 0.0]
    );

    let empty = words(&["", ""]);
    let err = StringIndexer::new("w", "i")
        .fit(&empty)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("'w'") && err.contains("no non-null"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hot_encoder_and_assembler_feed_a_model() {
    let kiln = session(2, 1).await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("color", DataType::Utf8, false),
        Field::new("size", DataType::Int64, false),
    ]));
    let df = kiln
        .from_batches(
            Arc::clone(&schema),
            vec![RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(StringArray::from(vec![
                        "red", "blue", "red", "green", "red",
                    ])),
                    Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3, 4, 5])),
                ],
            )
            .unwrap()],
        )
        .unwrap();
    let indexed = StringIndexer::new("color", "ci").fit(&df).await.unwrap();
    assert_eq!(indexed.labels(), ["red", "blue", "green"]);
    let df2 = indexed.transform(df.clone()).unwrap();
    let enc = OneHotEncoder::new("ci", "color_vec")
        .fit(&df2)
        .await
        .unwrap();
    assert_eq!(enc.categories(), 3);
    assert_eq!(enc.output_cols(), ["color_vec_0", "color_vec_1"]);
    let out = enc.transform(df2.clone()).unwrap();
    assert_eq!(column(&out, "color_vec_0").await, [1.0, 0.0, 1.0, 0.0, 1.0]);
    assert_eq!(column(&out, "color_vec_1").await, [0.0, 1.0, 0.0, 0.0, 0.0]);

    // In a pipeline, the assembler expands the group; k-means trains on it.
    let fitted = Pipeline::new()
        .stage(StringIndexer::new("color", "ci"))
        .stage(OneHotEncoder::new("ci", "color_vec").drop_last(false))
        .stage(VectorAssembler::new(["color_vec", "size"]))
        .stage(MinMaxScaler::new())
        .stage(kiln::ml::KMeans::new(2).seed(1))
        .fit(&df)
        .await
        .unwrap();
    let model = fitted.model().unwrap();
    assert_eq!(
        model.feature_names(),
        ["color_vec_0", "color_vec_1", "color_vec_2", "size"]
    );
    let clusters = column(&fitted.transform(df.clone()).unwrap(), "prediction").await;
    assert_eq!(clusters.len(), 5);

    // A fitted pipeline is a directory like a model: saved, loaded, predicting the same.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipe");
    let path = path.to_str().unwrap();
    kiln.save_pipeline(&fitted, path).await.unwrap();
    assert!(kiln.is_pipeline(path).await.unwrap());
    let loaded = kiln.load_pipeline(path).await.unwrap();
    assert_eq!(loaded.stages().len(), fitted.stages().len());
    for (a, b) in loaded.stages().iter().zip(fitted.stages()) {
        match (a, b) {
            (FittedStage::Features(a), FittedStage::Features(b)) => assert_eq!(a, b),
            (FittedStage::Model { model: a, .. }, FittedStage::Model { model: b, .. }) => {
                assert_eq!(a, b)
            }
            _ => panic!("stage kinds differ"),
        }
    }
    // In a new session too.
    let other = session(1, 1).await;
    let loaded = other.load_pipeline(path).await.unwrap();
    let df_other = other
        .from_batches(df.schema(), df.collect().await.unwrap())
        .unwrap();
    assert_eq!(
        column(&loaded.transform(df_other).unwrap(), "prediction").await,
        clusters
    );
    // The model loaders say what the directory is.
    let e = kiln.load_model(path).await.unwrap_err().to_string();
    assert!(e.contains("pipeline") && e.contains("load_pipeline"), "{e}");
    let e = kiln
        .sql(&format!("LOAD MODEL p FROM '{path}'"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("pipeline"), "{e}");
    let stage = dir.path().join("pipe/stage-4");
    let e = kiln
        .load_pipeline(stage.to_str().unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a pipeline directory"), "{e}");

    // An index the encoder never saw fails, naming the column and the value.
    let err = enc
        .transform(
            df2.with_column("ci", datafusion::prelude::lit(7.0))
                .unwrap(),
        )
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("'ci'") && err.contains('7'), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transformers_reject_bad_input_by_name() {
    let d = data(200, 9);
    let kiln = session(2, 1).await;
    let df = frame(&kiln, &d);
    // A null feature reaches the assembler: the query fails naming the column.
    let err = VectorAssembler::new(["x0", "x1"])
        .transform(df.clone())
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("'x0'") && err.contains("null or NaN"), "{err}");
    // Skip drops those rows; Keep keeps them as NaN.
    let skipped = VectorAssembler::new(["x0", "x1"])
        .handle_invalid(HandleInvalid::Skip)
        .transform(df.clone())
        .unwrap();
    let want =
        d.x.iter()
            .filter(|r| r[0].is_some() && r[1].is_some())
            .count();
    assert_eq!(skipped.count().await.unwrap(), want);
    // A string column is not a feature.
    let err = StandardScaler::new()
        .input_cols(["answer"])
        .fit(&df)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'answer'") && err.contains("StringIndexer"),
        "{err}"
    );
    // An unknown column is named with a suggestion.
    let err = Imputer::new(["x9"]).fit(&df).await.unwrap_err().to_string();
    assert!(err.contains("x9"), "{err}");
    // Bounds are checked before any data moves.
    let err = MinMaxScaler::new()
        .input_cols(["x0"])
        .min(1.0)
        .max(1.0)
        .fit(&df)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("min < max"), "{err}");
    // No `features` group and no such column.
    let err = StandardScaler::new()
        .fit(&df)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("features") && err.contains("input_cols"),
        "{err}"
    );
    // A column with nothing to impute from.
    let all_missing = df
        .clone()
        .with_column("x0", datafusion::prelude::lit(f64::NAN))
        .unwrap();
    let err = Imputer::new(["x0"])
        .fit(&all_missing)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("'x0'") && err.contains("missing"), "{err}");
    // Evaluators name what is wrong.
    let err = Evaluator::regression(RegressionMetric::Rmse)
        .evaluate(&df)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("label"), "{err}");
    let err = Evaluator::silhouette(Columns::new().features(["x2"]))
        .prediction_col("answer")
        .evaluate(&df)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("answer"), "{err}");
}
