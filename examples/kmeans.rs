//! A k-means pipeline on the embedded engine: generate points around four centres with SQL,
//! split them, fit assembler → k-means as a `Pipeline` (the training input is cached once on
//! the executors, one kernel round per iteration), score the held-out part with the silhouette,
//! save the model, and predict clusters with `predict(...)` in SQL.

use kiln::ml::{Model, ModelKind};
use kiln::prelude::*;

#[tokio::main]
async fn main() -> Result<()> {
    let kiln = Session::builder().executors(2).build().await?;

    // 200k points around (0,0), (10,0), (0,10), (10,10), with a deterministic wobble.
    let points = kiln
        .sql(
            "SELECT CAST(value % 2 AS DOUBLE) * 10.0 + sin(CAST(value AS DOUBLE)) AS x, \
                    CAST((value / 2) % 2 AS DOUBLE) * 10.0 + cos(CAST(value * 7 AS DOUBLE)) AS y \
             FROM generate_series(1, 200000)",
        )
        .await?;
    let (train, test) = points.random_split(0.8, 42)?;

    let fitted = Pipeline::new()
        .stage(VectorAssembler::new(["x", "y"]))
        .stage(KMeans::new(4).max_iter(20).seed(1))
        .fit(&train)
        .await?;
    let silhouette = Evaluator::silhouette(Columns::new().features(["x", "y"]))
        .evaluate(&fitted.transform(test.clone())?)
        .await?;
    println!("held-out silhouette: {silhouette:.4}");
    let Some(ModelKind::KMeans(model)) = fitted.model().map(|m| m.kind().clone()) else {
        return Err(EngineError::Internal(
            "the pipeline ends with k-means".into(),
        ));
    };
    println!(
        "k-means: {} iterations, cost {:.1}, cost per iteration {:?}",
        model.iterations(),
        model.cost(),
        model
            .cost_history()
            .iter()
            .map(|c| c.round())
            .collect::<Vec<_>>()
    );
    for (i, c) in model.centers().iter().enumerate() {
        println!("  centre {i}: ({:.3}, {:.3})", c[0], c[1]);
    }

    let model: Model = model.into();
    let dir = std::env::temp_dir().join(format!("kiln-example-km-{}", kiln.id()));
    kiln.save_model(&model, &dir.display().to_string()).await?;
    kiln.register_model("km", kiln.load_model(&dir.display().to_string()).await?);
    kiln.register("test_points", &test)?;
    kiln.sql(
        "SELECT predict('km', x, y) AS cluster, count(*) AS points, \
                round(avg(x), 2) AS mean_x, round(avg(y), 2) AS mean_y \
         FROM test_points GROUP BY cluster ORDER BY cluster",
    )
    .await?
    .show()
    .await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
