//! Training in the lazy DAG: `train` builds a `Train` node, `transform` composes prediction
//! into the same plan, EXPLAIN shows the training stages, and nothing runs before an action.

use kiln::ml::{Columns, Fit, KMeans, LogisticRegression, ModelKind, Train};

use crate::common::{rows, session};
use crate::ml::{labelled, labelled_frame};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_then_transform_is_one_lazy_plan() {
    let kiln = session(2, 2).await;
    let (x, y) = labelled(2000, 4);
    let train_df = labelled_frame(&kiln, &x[..1500], &y[..1500]);
    let test_df = labelled_frame(&kiln, &x[1500..], &y[1500..]);
    let estimator = || LogisticRegression::new().reg_param(0.01).max_iter(50);

    let lazy = estimator().train(&train_df).unwrap();
    let predicted = lazy.transform(&test_df).unwrap();
    let rounds_before = kiln.metrics().kernel_rounds;

    // EXPLAIN shows the plan with the Train node, its cache stage and its iterations — and
    // runs nothing.
    let plan = predicted.explain().await.unwrap();
    for part in [
        "Predict: prediction",
        "Train[",
        "Cache stage",
        "Stage 1",
        "Iterate:",
    ] {
        assert!(plan.contains(part), "missing {part:?} in\n{plan}");
    }
    assert!(lazy.explain().await.unwrap().contains("Cache stage"));
    assert!(!lazy.is_fitted());
    assert_eq!(kiln.metrics().kernel_rounds, rounds_before);

    // The action trains, then predicts; the same predictions as an eager fit.
    let lazy_rows = rows(&predicted.collect().await.unwrap());
    assert!(lazy.is_fitted());
    let rounds_after = kiln.metrics().kernel_rounds;
    assert!(rounds_after > rounds_before);
    let eager = estimator().fit(&train_df).await.unwrap();
    kiln.register_model("eager", eager);
    let eager_rows = rows(
        &test_df
            .clone()
            .predict("eager", "prediction")
            .unwrap()
            .collect()
            .await
            .unwrap(),
    );
    let mut a = lazy_rows.clone();
    let mut b = eager_rows;
    a.sort();
    b.sort();
    assert_eq!(a, b);

    // A second action reuses the model: no more kernel rounds.
    let rounds = kiln.metrics().kernel_rounds;
    predicted.count().await.unwrap();
    assert_eq!(kiln.metrics().kernel_rounds, rounds);
    let explained = predicted.explain().await.unwrap();
    assert!(explained.contains("fitted"), "{explained}");
    // The fitted model is registered under the lazy model's name, for SQL.
    let model = lazy.fit().await.unwrap();
    assert!(matches!(model.kind(), ModelKind::LogisticRegression(_)));
    assert!(kiln.model(lazy.name()).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_model_can_train_on_another_lazy_models_predictions() {
    // Cluster ids from a lazy k-means feed a lazy logistic regression: both Train nodes sit in
    // one plan and run in order when it is collected.
    let kiln = session(2, 1).await;
    let (x, y) = labelled(1200, 8);
    let df = labelled_frame(&kiln, &x, &y);
    let clusters = KMeans::new(3)
        .seed(5)
        .train_columns(&df, Columns::new().features(["x0", "x1"]))
        .unwrap();
    let with_cluster = clusters.transform_to(&df, "cluster").unwrap();
    let logistic = LogisticRegression::new()
        .train_columns(
            &with_cluster,
            Columns::new().features(["x0", "x1", "x2", "cluster"]),
        )
        .unwrap();
    let out = logistic.transform(&with_cluster).unwrap();
    let plan = out.explain().await.unwrap();
    assert!(plan.matches("Train[").count() >= 2, "{plan}");
    assert_eq!(out.count().await.unwrap(), 1200);
    assert!(clusters.is_fitted() && logistic.is_fitted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_training_checks_columns_before_anything_runs() {
    let kiln = session(1, 1).await;
    let (x, y) = labelled(100, 1);
    let df = labelled_frame(&kiln, &x, &y);
    let err = LogisticRegression::new()
        .train_columns(&df, Columns::new().label("target"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("target"), "{err}");
    let lazy = LogisticRegression::new().train(&df).unwrap();
    let other = df.clone().drop(&["x2"]).unwrap();
    let err = lazy.transform(&other).unwrap_err().to_string();
    assert!(err.contains("x2"), "{err}");
    // An invalid parameter surfaces when the plan runs, naming the parameter.
    let bad = KMeans::new(0).train(&df).unwrap().transform(&df).unwrap();
    let err = bad.collect().await.unwrap_err().to_string();
    assert!(err.contains("k must be >= 1"), "{err}");
}
