//! Every metric against `sklearn.metrics` on seeded data, and the mergeable summaries against
//! the same reference after a split into partitions.

use kiln_ml::metrics::{
    accuracy, f1, log_loss, log_loss_multiclass, mae, mse, precision, r2, recall, rmse, roc_auc,
    silhouette, sse, Average, ConfusionCounts, RegressionSummary,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::common::reference;

struct Data {
    reg_true: Vec<f64>,
    reg_pred: Vec<f64>,
    bin_true: Vec<f64>,
    bin_pred: Vec<f64>,
    bin_prob: Vec<f64>,
    bin_score: Vec<f64>,
    multi_true: Vec<f64>,
    multi_pred: Vec<f64>,
    multi_prob: Vec<f64>,
    points: Vec<Vec<f64>>,
    clusters: Vec<u32>,
    centers: Vec<Vec<f64>>,
}

const CLASSES: usize = 4;

fn data() -> Data {
    let mut rng = StdRng::seed_from_u64(2024);
    let n = 2000;
    let reg_true: Vec<f64> = (0..n).map(|_| 50.0 + 10.0 * rng.random::<f64>()).collect();
    let reg_pred: Vec<f64> = reg_true
        .iter()
        .map(|y| y + rng.random_range(-3.0..3.0))
        .collect();
    let bin_true: Vec<f64> = (0..n).map(|_| f64::from(rng.random_bool(0.4))).collect();
    let bin_pred: Vec<f64> = bin_true
        .iter()
        .map(|&y| if rng.random_bool(0.8) { y } else { 1.0 - y })
        .collect();
    // Probabilities with exact 0s and 1s (clipped) and scores on a coarse grid (many ties).
    let bin_prob: Vec<f64> = bin_true
        .iter()
        .map(|&y| match rng.random_range(0..20) {
            0 => 0.0,
            1 => 1.0,
            _ => (0.3 * y + 0.7 * rng.random::<f64>()).clamp(0.0, 1.0),
        })
        .collect();
    let bin_score: Vec<f64> = bin_prob.iter().map(|p| (p * 10.0).round() / 10.0).collect();
    // Four true classes; predictions sometimes name a fifth class that never occurs, and class
    // 3 is never predicted: both exercise scikit-learn's zero_division = 0.
    let multi_true: Vec<f64> = (0..n)
        .map(|_| f64::from(rng.random_range(0..CLASSES as u32)))
        .collect();
    let multi_pred: Vec<f64> = multi_true
        .iter()
        .map(|&y| match rng.random_range(0..10) {
            0..=5 if y != 3.0 => y,
            6 => 4.0,
            _ => f64::from(rng.random_range(0..3u32)),
        })
        .collect();
    let mut multi_prob = Vec::with_capacity(n * CLASSES);
    for &y in &multi_true {
        let mut row: Vec<f64> = (0..CLASSES).map(|_| rng.random::<f64>()).collect();
        row[y as usize] += 1.0;
        if rng.random_range(0..25) == 0 {
            row[y as usize] = 0.0; // a confident mistake, clipped
        }
        let total: f64 = row.iter().sum();
        multi_prob.extend(row.iter().map(|v| v / total));
    }
    let centers = vec![
        vec![0.0, 0.0, 0.0],
        vec![3.0, 1.0, 0.0],
        vec![0.0, 3.0, 2.0],
    ];
    let points: Vec<Vec<f64>> = (0..400)
        .map(|i| {
            centers[i % 3]
                .iter()
                .map(|c| c + rng.random_range(-1.5..1.5))
                .collect()
        })
        .collect();
    let clusters: Vec<u32> = (0..400u32).map(|i| i % 3).collect();
    Data {
        reg_true,
        reg_pred,
        bin_true,
        bin_pred,
        bin_prob,
        bin_score,
        multi_true,
        multi_pred,
        multi_prob,
        points,
        clusters,
        centers,
    }
}

fn check(name: &str, got: f64, want: &Value) {
    let want = want[name]
        .as_f64()
        .unwrap_or_else(|| panic!("no reference for {name}"));
    let diff = (got - want).abs();
    assert!(
        diff <= 1e-9 * want.abs().max(1.0),
        "{name}: kiln {got} vs scikit-learn {want} ({diff:e})"
    );
}

#[test]
fn metrics_match_scikit_learn() {
    let d = data();
    let want = reference(
        "ref_metrics.py",
        &json!({
            "reg": { "y_true": d.reg_true, "y_pred": d.reg_pred },
            "bin": { "y_true": d.bin_true, "y_pred": d.bin_pred,
                     "y_prob": d.bin_prob, "y_score": d.bin_score },
            "multi": { "y_true": d.multi_true, "y_pred": d.multi_pred,
                       "y_prob": d.multi_prob, "n_classes": CLASSES },
            "clu": { "x": d.points, "labels": d.clusters, "centers": d.centers },
        }),
    );
    let (rt, rp) = (&d.reg_true, &d.reg_pred);
    check("mse", mse(rt, rp).unwrap(), &want);
    check("rmse", rmse(rt, rp).unwrap(), &want);
    check("mae", mae(rt, rp).unwrap(), &want);
    check("r2", r2(rt, rp).unwrap(), &want);

    let (bt, bp) = (&d.bin_true, &d.bin_pred);
    check("accuracy", accuracy(bt, bp).unwrap(), &want);
    check(
        "precision",
        precision(bt, bp, Average::Binary).unwrap(),
        &want,
    );
    check("recall", recall(bt, bp, Average::Binary).unwrap(), &want);
    check("f1", f1(bt, bp, Average::Binary).unwrap(), &want);
    check("log_loss", log_loss(bt, &d.bin_prob).unwrap(), &want);
    check("roc_auc", roc_auc(bt, &d.bin_score).unwrap(), &want);

    let (mt, mp) = (&d.multi_true, &d.multi_pred);
    check("accuracy_multi", accuracy(mt, mp).unwrap(), &want);
    for (avg, name) in [(Average::Macro, "macro"), (Average::Weighted, "weighted")] {
        check(
            &format!("precision_{name}"),
            precision(mt, mp, avg).unwrap(),
            &want,
        );
        check(
            &format!("recall_{name}"),
            recall(mt, mp, avg).unwrap(),
            &want,
        );
        check(&format!("f1_{name}"), f1(mt, mp, avg).unwrap(), &want);
    }
    check(
        "log_loss_multi",
        log_loss_multiclass(mt, &d.multi_prob, CLASSES).unwrap(),
        &want,
    );

    check("sse", sse(&d.points, &d.centers).unwrap(), &want);
    check(
        "silhouette",
        silhouette(&d.points, &d.clusters).unwrap(),
        &want,
    );

    // The same figures from per-partition summaries merged on the "driver".
    let summary = d
        .reg_true
        .chunks(700)
        .zip(d.reg_pred.chunks(700))
        .map(|(t, p)| RegressionSummary::from_slices(t, p).unwrap())
        .fold(RegressionSummary::default(), RegressionSummary::merge);
    check("mse", summary.mse(), &want);
    check("rmse", summary.rmse(), &want);
    check("mae", summary.mae(), &want);
    check("r2", summary.r2(), &want);
    let merged = |t: &[f64], p: &[f64]| {
        t.chunks(600)
            .zip(p.chunks(600))
            .map(|(t, p)| ConfusionCounts::from_slices(t, p).unwrap())
            .fold(ConfusionCounts::default(), |a, b| a.merge(&b))
    };
    let bin = merged(bt, bp);
    check("accuracy", bin.accuracy(), &want);
    check("precision", bin.precision(Average::Binary).unwrap(), &want);
    check("recall", bin.recall(Average::Binary).unwrap(), &want);
    check("f1", bin.f1(Average::Binary).unwrap(), &want);
    let multi = merged(mt, mp);
    check("accuracy_multi", multi.accuracy(), &want);
    check("f1_macro", multi.f1(Average::Macro).unwrap(), &want);
    check(
        "precision_weighted",
        multi.precision(Average::Weighted).unwrap(),
        &want,
    );
}
