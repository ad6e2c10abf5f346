//! Kiln's main job on the embedded default: generate a small dataset, run a multi-stage query
//! (join + aggregate + sort) on two in-process executors, print the result and the stage graph.

use kiln::prelude::*;

#[tokio::main]
async fn main() -> Result<()> {
    let kiln = Session::builder().executors(2).build().await?;
    println!(
        "Kiln session {}: {} executors, {} task slots, shuffle at {}",
        kiln.id(),
        kiln.executor_count(),
        kiln.total_slots(),
        kiln.shuffle_root()
    );

    // A small generated dataset: 100k orders over 1000 customers in 10 regions.
    let orders = kiln
        .sql(
            "SELECT value AS order_id, value % 1000 AS customer_id, \
                    CAST((value * 7919) % 10000 AS DOUBLE) / 100.0 AS amount \
             FROM generate_series(1, 100000)",
        )
        .await?;
    let customers = kiln
        .sql(
            "SELECT value AS customer_id, concat('region-', CAST(value % 10 AS VARCHAR)) AS region \
             FROM generate_series(0, 999)",
        )
        .await?;
    kiln.register("orders", &orders)?;
    kiln.register("customers", &customers)?;

    let report = kiln
        .sql(
            "SELECT c.region, count(*) AS orders, round(sum(o.amount), 2) AS revenue, \
                    round(avg(o.amount), 4) AS avg_amount \
             FROM orders o JOIN customers c ON o.customer_id = c.customer_id \
             WHERE o.amount > 10 \
             GROUP BY c.region ORDER BY revenue DESC",
        )
        .await?;

    report.show().await?;
    println!("{}", report.explain().await?);
    Ok(())
}
