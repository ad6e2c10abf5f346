"""scikit-learn reference for Kiln's feature transformers, pipelines and evaluators
(tests/it/features.rs).

Reads one JSON request on stdin:
    {"x": [[...], ...] (null = missing), "y": [0/1 ...], "reg_param": λ}
and writes
    {"impute_mean": [...], "impute_median": [...], "impute_mode": [...],   SimpleImputer
     "mean": [...], "sd": [...],            of the mean-imputed x, sd with ddof = 1 (Spark's)
     "minmax": [[...]],                     MinMaxScaler on the mean-imputed x
     "coef": [...], "intercept": b,         LogisticRegression(C = 1/(n λ)) on the standardized x
     "proba": [...],                        its probability of class 1
     "accuracy", "f1_weighted", "precision_macro", "recall_weighted",
     "log_loss", "roc_auc",                 of its predictions on the training rows
     "rmse", "mae", "r2"}                   of y against "proba" read as a regression
"""
import json
import sys

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)
from sklearn.preprocessing import MinMaxScaler


def main() -> None:
    req = json.load(sys.stdin)
    x = np.array([[np.nan if v is None else v for v in row] for row in req["x"]], dtype=float)
    y = np.asarray(req["y"], dtype=float)
    n = x.shape[0]
    out = {}
    for strategy, key in [("mean", "impute_mean"), ("median", "impute_median"),
                          ("most_frequent", "impute_mode")]:
        out[key] = SimpleImputer(strategy=strategy).fit(x).statistics_.tolist()
    xi = SimpleImputer(strategy="mean").fit_transform(x)
    mu, sd = xi.mean(axis=0), xi.std(axis=0, ddof=1)
    out["mean"], out["sd"] = mu.tolist(), sd.tolist()
    out["minmax"] = MinMaxScaler().fit_transform(xi).tolist()
    z = (xi - mu) / sd
    model = LogisticRegression(C=1.0 / (n * req["reg_param"]), tol=1e-12, max_iter=10000).fit(z, y)
    out["coef"] = model.coef_[0].tolist()
    out["intercept"] = float(model.intercept_[0])
    proba = model.predict_proba(z)
    pred = model.predict(z)
    out["proba"] = proba[:, 1].tolist()
    out["accuracy"] = accuracy_score(y, pred)
    out["f1_weighted"] = f1_score(y, pred, average="weighted")
    out["precision_macro"] = precision_score(y, pred, average="macro")
    out["recall_weighted"] = recall_score(y, pred, average="weighted")
    out["log_loss"] = log_loss(y, proba)
    out["roc_auc"] = roc_auc_score(y, proba[:, 1])
    out["rmse"] = float(np.sqrt(mean_squared_error(y, proba[:, 1])))
    out["mae"] = mean_absolute_error(y, proba[:, 1])
    out["r2"] = r2_score(y, proba[:, 1])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
