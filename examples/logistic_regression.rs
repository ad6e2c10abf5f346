//! Logistic regression on the embedded engine: generate labelled data with SQL, train with
//! L-BFGS and an L2 penalty, evaluate on held-out rows with Kiln's metrics, and score rows with
//! `DataFrame::predict`.

use kiln::deps::arrow::array::{Array, Float64Array};
use kiln::ml::metrics;
use kiln::prelude::*;

#[tokio::main]
async fn main() -> Result<()> {
    let kiln = Session::builder().executors(2).build().await?;

    // label = 1 when 1.5 a - 2 b + noise > 0.
    let data = kiln
        .sql(
            "SELECT a, b, CASE WHEN 1.5 * a - 2.0 * b + 0.8 * sin(CAST(i * 13 AS DOUBLE)) > 0 \
                          THEN 1.0 ELSE 0.0 END AS label \
             FROM (SELECT value AS i, sin(CAST(value AS DOUBLE)) AS a, \
                          cos(CAST(value * 3 AS DOUBLE)) AS b \
                   FROM generate_series(1, 100000))",
        )
        .await?;
    let (train, test) = data.random_split(0.8, 7)?;

    let model = LogisticRegression::new()
        .reg_param(0.001)
        .max_iter(100)
        .fit(&train)
        .await?;
    let w = model.coefficient_matrix();
    println!(
        "logistic regression: {} iterations, coefficients ({:.3}, {:.3}), intercept {:.3}",
        model.total_iterations(),
        w.get(0, 0),
        w.get(0, 1),
        model.intercepts()[0]
    );

    kiln.register_model("clf", model);
    let scored = test.predict("clf", "prediction")?.collect().await?;
    let (mut label, mut prediction) = (Vec::new(), Vec::new());
    for b in &scored {
        for (name, out) in [("label", &mut label), ("prediction", &mut prediction)] {
            let column = b
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
                .ok_or_else(|| EngineError::Internal(format!("no f64 column {name}")))?;
            out.extend(column.iter().flatten());
        }
    }
    println!(
        "held-out rows: {}, accuracy {:.4}, F1 {:.4}",
        label.len(),
        metrics::accuracy(&label, &prediction)?,
        metrics::f1(&label, &prediction, metrics::Average::Binary)?
    );
    Ok(())
}
