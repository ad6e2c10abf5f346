"""scikit-learn reference for Kiln's linear models (ml/tests/it/linear.rs).

Reads one JSON request on stdin:
    {"model": "ols" | "ridge" | "elastic_net" | "logistic",
     "x": [[...], ...], "y": [...],
     "reg_param": λ, "elastic_net_param": α,
     "standardize": bool}
and writes {"coef": [[...]] (K x d), "intercept": [...] (K), "proba": [[...]] (logistic)}.

The mapping to scikit-learn follows the objective Kiln documents (ml/src/linear):
    mean loss + λ (α ‖w‖₁ + (1 − α)/2 ‖w‖²), intercept unpenalized, so
    ridge:        Ridge(alpha = n λ)                (Ridge sums the squared error, no 1/2n)
    elastic net:  ElasticNet(alpha = λ, l1_ratio = α)
    logistic:     LogisticRegression(C = 1 / (n λ)) (the log-loss is summed, not averaged)
With "standardize", the model is fitted on (x − μ)/σ with σ the sample standard deviation
(ddof = 1, Spark's) and the coefficients are mapped back: w = β/σ, b = b' − Σ w μ.
"""
import json
import sys

import numpy as np
from sklearn.linear_model import ElasticNet, LinearRegression, LogisticRegression, Ridge


def main() -> None:
    req = json.load(sys.stdin)
    x = np.asarray(req["x"], dtype=float)
    y = np.asarray(req["y"], dtype=float)
    n, d = x.shape
    mu, sd = np.zeros(d), np.ones(d)
    if req.get("standardize"):
        mu, sd = x.mean(axis=0), x.std(axis=0, ddof=1)
    z = (x - mu) / sd
    lam = float(req.get("reg_param", 0.0))
    alpha = float(req.get("elastic_net_param", 0.0))
    kind = req["model"]
    if kind == "ols":
        model = LinearRegression()
    elif kind == "ridge":
        model = Ridge(alpha=n * lam, solver="cholesky")
    elif kind == "elastic_net":
        model = ElasticNet(alpha=lam, l1_ratio=alpha, tol=1e-12, max_iter=1_000_000)
    elif kind == "logistic":
        penalty = {"C": 1.0 / (n * lam)} if lam > 0 else {"penalty": None}
        model = LogisticRegression(tol=1e-12, max_iter=100_000, **penalty)
        y = y.astype(int)
    else:
        raise SystemExit(f"unknown model {kind!r}")
    model.fit(z, y)
    coef = np.atleast_2d(model.coef_) / sd
    intercept = np.atleast_1d(model.intercept_).astype(float) - coef @ mu
    out = {"coef": coef.tolist(), "intercept": intercept.tolist()}
    if kind == "logistic":
        out["proba"] = model.predict_proba(z).tolist()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
