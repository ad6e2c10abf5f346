//! The README's main job (`examples/quickstart.rs`) as a user runs it: it trains, evaluates,
//! saves and scores, embedded and on a local cluster, and the model it saves loads back and
//! predicts what it printed.

use std::path::PathBuf;
use std::process::Command;

use kiln::Session;

/// The example's binary (the test command builds every target).
fn quickstart() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| {
            d.join("examples")
                .join(format!("quickstart{}", std::env::consts::EXE_SUFFIX))
        })
        .find(|p| p.is_file())
        .expect("the quickstart example: cargo build -p kiln-examples --examples")
}

/// A number printed after `label` in the report.
fn figure(report: &str, label: &str) -> f64 {
    let at = report
        .find(label)
        .unwrap_or_else(|| panic!("no '{label}' in:\n{report}"));
    report[at + label.len()..]
        .split(|c: char| c == ',' || c.is_whitespace())
        .find(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number after '{label}' in:\n{report}"))
}

async fn check(args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(quickstart())
        .args(args)
        .args(["--out", dir.path().to_str().unwrap()])
        .env("KILN_EXECUTOR_BIN", crate::sql::kiln_bin())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The held-out figures of a model that learned the seeded relation (0.82 and 0.76 when
    // this was written), and a report that says what ran.
    let auc = figure(&report, "ROC AUC");
    assert!((0.78..=0.88).contains(&auc), "AUC {auc}\n{report}");
    let accuracy = figure(&report, "accuracy");
    assert!((0.7..=0.85).contains(&accuracy), "{report}");
    let iterations: u32 = report
        .find(" iterations")
        .and_then(|at| report[..at].rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no iteration count in:\n{report}"));
    assert!(iterations >= 1, "{report}");

    // The saved model loads back and predicts what the program printed for the new rows.
    let kiln = Session::builder().executors(1).build().await.unwrap();
    let model = kiln
        .load_model(dir.path().join("churn").to_str().unwrap())
        .await
        .unwrap();
    assert!(model.transform().is_some());
    kiln.register_model("churn", model);
    let scored = kiln
        .read_parquet(dir.path().join("scored.parquet").to_str().unwrap())
        .await
        .unwrap();
    kiln.register("scored", &scored).unwrap();
    let again = kiln
        .sql(
            "SELECT s.id, s.p_churn, round(predict_proba(churn, n.tenure, n.monthly_spend, \
             n.support_calls, n.plan)[2], 3) AS p FROM scored s JOIN (VALUES \
             (1, 2.0, 95.5, 6.0, 'basic'), (2, 60.0, 30.0, 0.0, 'pro'), \
             (3, 24.0, NULL, 2.0, 'plus'), (4, 6.0, 110.0, 3.0, 'basic'), \
             (5, 48.0, 55.0, 1.0, 'plus')) n(id, tenure, monthly_spend, support_calls, plan) \
             ON s.id = n.id ORDER BY s.id",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let rows = crate::common::rows(&again);
    assert_eq!(rows.len(), 5);
    for row in rows {
        assert_eq!(row[1], row[2], "{row:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_job_trains_evaluates_saves_and_scores() {
    check(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_job_runs_on_a_local_cluster() {
    check(&["--local-cluster", "2"]).await;
}
