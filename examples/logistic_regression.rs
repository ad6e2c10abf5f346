//! A logistic-regression pipeline on the embedded engine: generate labelled rows with a
//! categorical column in SQL, then index → one-hot encode → assemble → standardize → train
//! (L-BFGS, L2), all fitted in one `Pipeline`; evaluate held-out rows with `Evaluator`s; and
//! show how a lazily trained model composes with prediction into one plan (`EXPLAIN` before
//! anything runs).

use kiln::ml::{Average, Model, ModelKind};
use kiln::prelude::*;

#[tokio::main]
async fn main() -> Result<()> {
    let kiln = Session::builder().executors(2).build().await?;

    // label = 1 when 1.5 a - 2 b + (a bonus per colour) + noise > 0.
    let data = kiln
        .sql(
            "SELECT a, b, colour, \
                    CASE WHEN 1.5 * a - 2.0 * b + CASE colour WHEN 'red' THEN 0.8 \
                                                       WHEN 'green' THEN -0.5 ELSE 0.0 END \
                              + 0.8 * sin(CAST(i * 13 AS DOUBLE)) > 0 \
                         THEN 1.0 ELSE 0.0 END AS label \
             FROM (SELECT value AS i, sin(CAST(value AS DOUBLE)) AS a, \
                          cos(CAST(value * 3 AS DOUBLE)) AS b, \
                          CASE value % 3 WHEN 0 THEN 'red' WHEN 1 THEN 'green' ELSE 'blue' END AS colour \
                   FROM generate_series(1, 100000))",
        )
        .await?;
    let (train, test) = data.random_split(0.8, 7)?;

    let pipeline = Pipeline::new()
        .stage(StringIndexer::new("colour", "colour_index"))
        .stage(OneHotEncoder::new("colour_index", "colour_vec"))
        .stage(VectorAssembler::new(["a", "b", "colour_vec"]))
        .stage(StandardScaler::new().with_mean(true))
        .stage(LogisticRegression::new().reg_param(0.001).max_iter(100));
    let fitted = pipeline.fit(&train).await?;
    if let Some(ModelKind::LogisticRegression(m)) = fitted.model().map(Model::kind) {
        println!(
            "logistic regression on {:?}: {} iterations, intercept {:.3}",
            m.feature_names(),
            m.total_iterations(),
            m.intercepts()[0]
        );
    }

    let scored = fitted.transform(test.clone())?;
    for (name, metric) in [
        ("accuracy", ClassificationMetric::Accuracy),
        ("F1", ClassificationMetric::F1(Average::Binary)),
    ] {
        let value = Evaluator::classification(metric).evaluate(&scored).await?;
        println!("held-out {name}: {value:.4}");
    }

    // Lazy: train on the assembled features, predict the test rows, one plan.
    let features = VectorAssembler::new(["a", "b"]);
    let lazy = LogisticRegression::new()
        .reg_param(0.001)
        .train(&features.transform(train)?)?;
    let predicted = lazy.transform(&features.transform(test)?)?;
    println!("{}", predicted.explain().await?);
    let auc = Evaluator::classification(ClassificationMetric::Accuracy)
        .evaluate(&predicted)
        .await?;
    println!("lazily trained model, held-out accuracy {auc:.4}");
    Ok(())
}
