"""scikit-learn reference for Kiln's metrics (ml/tests/it/metrics.rs).

stdin: {"reg": {"y_true", "y_pred"}, "bin": {"y_true", "y_pred", "y_prob", "y_score"},
        "multi": {"y_true", "y_pred", "y_prob" (row-major), "n_classes"},
        "clu": {"x", "labels", "centers"}}
stdout: one float per metric name.
"""

import json
import sys

import numpy as np
from sklearn import metrics


def main():
    req = json.load(sys.stdin)
    out = {}

    reg = req["reg"]
    t, p = np.asarray(reg["y_true"]), np.asarray(reg["y_pred"])
    out["mse"] = metrics.mean_squared_error(t, p)
    out["rmse"] = metrics.root_mean_squared_error(t, p)
    out["mae"] = metrics.mean_absolute_error(t, p)
    out["r2"] = metrics.r2_score(t, p)

    b = req["bin"]
    t, p = np.asarray(b["y_true"]), np.asarray(b["y_pred"])
    out["accuracy"] = metrics.accuracy_score(t, p)
    out["precision"] = metrics.precision_score(t, p, zero_division=0)
    out["recall"] = metrics.recall_score(t, p, zero_division=0)
    out["f1"] = metrics.f1_score(t, p, zero_division=0)
    out["log_loss"] = metrics.log_loss(t, np.asarray(b["y_prob"]), labels=[0.0, 1.0])
    out["roc_auc"] = metrics.roc_auc_score(t, np.asarray(b["y_score"]))

    m = req["multi"]
    t, p = np.asarray(m["y_true"]), np.asarray(m["y_pred"])
    k = int(m["n_classes"])
    out["accuracy_multi"] = metrics.accuracy_score(t, p)
    for avg in ("macro", "weighted"):
        out[f"precision_{avg}"] = metrics.precision_score(t, p, average=avg, zero_division=0)
        out[f"recall_{avg}"] = metrics.recall_score(t, p, average=avg, zero_division=0)
        out[f"f1_{avg}"] = metrics.f1_score(t, p, average=avg, zero_division=0)
    prob = np.asarray(m["y_prob"]).reshape(-1, k)
    out["log_loss_multi"] = metrics.log_loss(t, prob, labels=list(range(k)))

    c = req["clu"]
    x = np.asarray(c["x"])
    centers = np.asarray(c["centers"])
    d2 = ((x[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    out["sse"] = float(d2.min(axis=1).sum())
    out["silhouette"] = metrics.silhouette_score(x, np.asarray(c["labels"]))

    json.dump({key: float(v) for key, v in out.items()}, sys.stdout)


if __name__ == "__main__":
    main()
