"""Kiln from Python, end to end: data in from pyarrow, SQL and DataFrame transformations, a
feature pipeline and a classifier trained on the executors, evaluation, a model file that
SQL reads back, and the results out to pandas.

Run it with the package installed (`pip install ./python`, or the test command's venv):

    python examples/python/quickstart.py
"""

from __future__ import annotations

import tempfile

import numpy as np
import pyarrow as pa

import kiln
import kiln.ml as ml


def main() -> None:
    session = kiln.Session.local(executors=2)

    # Customers with a plan, tenure, spend and whether they left: made with numpy, handed
    # to Kiln as Arrow without a copy.
    rng = np.random.default_rng(7)
    n = 5000
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    tenure = rng.integers(1, 72, n).astype(float)
    spend = rng.gamma(2.0, 30.0, n)
    score = -0.04 * tenure + 0.02 * spend + np.where(plan == "basic", 0.8, -0.4)
    churned = (rng.uniform(size=n) < 1 / (1 + np.exp(-score))).astype(float)
    session.register(
        "customers",
        pa.table({"plan": plan, "tenure": tenure, "spend": spend, "churned": churned}),
    )

    # SQL and DataFrame methods compose into one lazy plan.
    df = session.sql("SELECT * FROM customers WHERE spend > 5").with_column(
        "spend_per_month", "spend / tenure"
    )
    df.group_by("plan").agg("avg(churned) AS churn_rate", "count(*) AS customers").sort("plan").show()

    train, test = df.random_split([0.8, 0.2], seed=1)
    pipeline = ml.Pipeline(
        [
            ("index", ml.StringIndexer("plan", "plan_idx")),
            ("encode", ml.OneHotEncoder("plan_idx", "plan_vec")),
            ("assemble", ml.VectorAssembler(["plan_vec", "tenure", "spend", "spend_per_month"])),
            ("scale", ml.StandardScaler()),
            ("model", ml.LogisticRegression(C=1.0)),
        ]
    )
    fitted = pipeline.fit(train, label="churned")
    model = fitted.model
    print("loss per iteration:", [round(v, 4) for v in model.summary["loss_history"]])

    scored = fitted.transform(test)
    for metric in ("accuracy", "roc_auc", "log_loss"):
        value = ml.evaluate(scored, metric, label_col="churned")
        print(f"{metric}: {value:.4f}")

    # The model file is the one Rust and SQL read.
    with tempfile.TemporaryDirectory() as tmp:
        model.save(f"{tmp}/churn")
        session.sql(f"LOAD MODEL churn FROM '{tmp}/churn'").collect()
    print(scored.select("plan", "tenure", "prediction").limit(5).to_pandas())


if __name__ == "__main__":
    main()
