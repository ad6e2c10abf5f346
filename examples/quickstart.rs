//! Kiln's main job: from raw rows to a trained, evaluated, saved model that SQL scores with.
//!
//! ```text
//!  seeded customers ─▶ Parquet ─▶ read, split 80/20 (the same split on 1 or N executors)
//!    ─▶ TRAIN MODEL churn ... TRANSFORM (scaler, imputer, one-hot) : fitted on the executors,
//!       one kernel round per iteration over the cached training rows (progress on stderr)
//!    ─▶ EVALUATE on the held-out rows ─▶ report ─▶ SAVE MODEL ─▶ LOAD MODEL in a new session
//!    ─▶ SELECT predict(...) on new customers
//! ```
//!
//! `cargo run --example quickstart [-- --local-cluster N] [--out DIR] [--rows N]`: the embedded
//! default (2 in-process executors), or N executor processes. Files go under DIR (default
//! `kiln-quickstart/`): the data, the saved model and the scored new rows.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln::deps::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use kiln::deps::arrow::datatypes::{DataType, Field, Schema};
use kiln::deps::arrow::record_batch::RecordBatch;
use kiln::deps::arrow::util::pretty::pretty_format_batches;
use kiln::prelude::*;

/// Command-line options.
struct Options {
    local_cluster: Option<usize>,
    out: std::path::PathBuf,
    rows: usize,
}

fn options() -> std::result::Result<Options, String> {
    let mut o = Options {
        local_cluster: None,
        out: "kiln-quickstart".into(),
        rows: 20_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--local-cluster" => {
                o.local_cluster = Some(value()?.parse().map_err(|e| format!("--local-cluster: {e}"))?)
            }
            "--out" => o.out = value()?.into(),
            "--rows" => o.rows = value()?.parse().map_err(|e| format!("--rows: {e}"))?,
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: quickstart [--local-cluster N] [--out DIR] [--rows N]"
                ))
            }
        }
    }
    Ok(o)
}

/// SplitMix64: a seeded stream of uniform numbers in [0, 1), the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `rows` customers: tenure, monthly spend (5% missing), support calls, plan, and whether they
/// left, drawn from a logistic model of the other columns.
fn customers(
    rows: usize,
) -> std::result::Result<RecordBatch, kiln::deps::arrow::error::ArrowError> {
    let mut rng = Rng(2026);
    let plans = ["basic", "plus", "pro"];
    let (mut id, mut tenure, mut spend, mut calls, mut plan, mut churned) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..rows {
        let t = 1.0 + (rng.next() * 72.0).floor();
        let s = 20.0 + rng.next() * 100.0;
        let c = (rng.next() * rng.next() * 10.0).floor();
        let p = (rng.next() * 3.0).floor() as usize;
        let plan_effect = [0.6, 0.0, -0.8][p];
        let margin = -0.6 - 0.05 * t + 0.012 * s + 0.45 * c + plan_effect;
        let left = rng.next() < 1.0 / (1.0 + (-margin).exp());
        id.push(i as i64);
        tenure.push(t);
        spend.push((rng.next() >= 0.05).then_some((s * 100.0).round() / 100.0));
        calls.push(c);
        plan.push(plans[p]);
        churned.push(if left { 1.0 } else { 0.0 });
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("tenure", DataType::Float64, false),
        Field::new("monthly_spend", DataType::Float64, true),
        Field::new("support_calls", DataType::Float64, false),
        Field::new("plan", DataType::Utf8, false),
        Field::new("churned", DataType::Float64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(id)),
        Arc::new(Float64Array::from(tenure)),
        Arc::new(Float64Array::from(spend)),
        Arc::new(Float64Array::from(calls)),
        Arc::new(StringArray::from(plan)),
        Arc::new(Float64Array::from(churned)),
    ];
    RecordBatch::try_new(schema, columns)
}

/// Runs `work` while drawing the session's progress on standard error (when it is a terminal).
async fn with_progress<T>(
    kiln: &Session,
    what: &str,
    work: impl std::future::Future<Output = T>,
) -> T {
    let terminal = std::io::stderr().is_terminal();
    let before = kiln.activity();
    let start = Instant::now();
    let watched = kiln.clone();
    let label = what.to_string();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if terminal {
                let line = watched.activity().progress_line(&before, start.elapsed());
                eprint!("\r\x1b[2K{label}: {line}");
            }
        }
    });
    let out = work.await;
    ticker.abort();
    if terminal {
        eprint!("\r\x1b[2K");
    }
    out
}

/// The first value of column `name` of a one-row answer, as text.
fn cell(batches: &[RecordBatch], name: &str) -> String {
    batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| {
            let i = b.schema().index_of(name).ok()?;
            kiln::deps::arrow::util::display::array_value_to_string(b.column(i), 0).ok()
        })
        .unwrap_or_default()
}

fn number(batches: &[RecordBatch], name: &str) -> f64 {
    cell(batches, name).parse().unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = options().map_err(|reason| EngineError::InvalidParameter {
        name: "argument",
        reason,
    })?;
    let out = std::path::absolute(&options.out)?;
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    let models = out.join("models");
    let mut builder = Session::builder().models_dir(&models);
    if let Some(n) = options.local_cluster {
        builder = builder.local_cluster(n);
    }
    let kiln = builder.build().await?;
    println!(
        "Kiln quickstart: {} session, {} executors, {} task slots",
        if options.local_cluster.is_some() {
            "local-cluster"
        } else {
            "embedded"
        },
        kiln.executor_count(),
        kiln.total_slots()
    );

    // Data: seeded customers, written as Parquet and read back, then split 80/20.
    let batch = customers(options.rows)?;
    let data = out.join("customers");
    kiln.from_batches(batch.schema(), vec![batch])?
        .write_parquet(&data.display().to_string())
        .await?;
    let all = kiln.read_parquet(&format!("{}/", data.display())).await?;
    let (train, test) = all.random_split(0.8, 42)?;
    kiln.register("train", &train)?;
    kiln.register("test", &test)?;
    let (n_train, n_test) = (train.count().await?, test.count().await?);
    println!(
        "data:      {} customers (seeded), {n_train} to train on, {n_test} held out",
        options.rows
    );

    // Train: feature transformers and a model, fitted on the executors.
    let start = Instant::now();
    let trained = with_progress(&kiln, "training", async {
        kiln.sql(
            "TRAIN MODEL churn USING logistic_regression (reg_param = 0.001, max_iter = 100) \
             TRANSFORM (standard_scaler(tenure) AS tenure, imputer(monthly_spend) AS spend, \
                        standard_scaler(support_calls) AS calls, one_hot_encoder(plan) AS plan) \
             LABEL churned AS SELECT * FROM train",
        )
        .await?
        .collect()
        .await
    })
    .await?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "training:  logistic regression on {} features (standard scaler, imputer, one-hot) in \
         {seconds:.2} s, {} iterations, final loss {:.4}",
        cell(&trained, "features").split(", ").count(),
        cell(&trained, "iterations"),
        number(&trained, "loss")
    );

    // Evaluate on the held-out rows.
    let metrics = kiln
        .sql("SELECT * FROM EVALUATE(MODEL churn, (SELECT * FROM test))")
        .await?
        .collect()
        .await?;
    println!(
        "held out:  ROC AUC {:.3}, accuracy {:.3}, log loss {:.3}",
        number(&metrics, "roc_auc"),
        number(&metrics, "accuracy"),
        number(&metrics, "log_loss")
    );

    // Save it, load it in a fresh session, and score new customers in SQL.
    let saved = out.join("churn");
    kiln.sql(&format!("SAVE MODEL churn TO '{}'", saved.display()))
        .await?
        .collect()
        .await?;
    println!("saved:     {}", saved.display());
    let scoring = Session::builder().build().await?;
    scoring
        .sql(&format!("LOAD MODEL churn FROM '{}'", saved.display()))
        .await?
        .collect()
        .await?;
    scoring
        .sql(
            "CREATE TABLE new_customers (id BIGINT, tenure DOUBLE, monthly_spend DOUBLE, \
                                         support_calls DOUBLE, plan VARCHAR)",
        )
        .await?
        .collect()
        .await?;
    scoring
        .sql(
            "INSERT INTO new_customers VALUES (1, 2, 95.5, 6, 'basic'), (2, 60, 30.0, 0, 'pro'), \
             (3, 24, NULL, 2, 'plus'), (4, 6, 110.0, 3, 'basic'), (5, 48, 55.0, 1, 'plus')",
        )
        .await?
        .collect()
        .await?;
    let scored = scoring
        .sql(
            "SELECT id, plan, predict(churn, tenure, monthly_spend, support_calls, plan) AS churns, \
                    round(predict_proba(churn, tenure, monthly_spend, support_calls, plan)[2], 3) \
                      AS p_churn \
             FROM new_customers ORDER BY id",
        )
        .await?;
    let rows = scored.collect().await?;
    println!(
        "scored in SQL by the reloaded model:\n{}",
        pretty_format_batches(&rows)?
    );
    scored
        .write_parquet(&out.join("scored.parquet").display().to_string())
        .await?;
    Ok(())
}
