"""One k-means fit through Kiln's Python package, for ``py-overhead`` (benches/py_overhead.rs).

Does what the Rust side's ``--once`` run does, through ``kiln.ml.KMeans``: an embedded session
(2 executors x 1 slot), ml-bench's Parquet data, the first ``k`` rows as initial centres,
``tol=0``; one fit unmeasured, then ``--fits`` timed; prints one JSON line with the seconds to
start (``import kiln`` and the session) and of each timed fit, and the model's iterations and
cost, and the median of 50 fits on 1000 rows (the fixed cost of a call).
"""

import argparse
import json
import time

started = time.perf_counter()
import kiln  # noqa: E402  (the import is part of the start-up being timed)
import kiln.ml  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, default=2_000_000)
parser.add_argument("--dims", type=int, default=16)
parser.add_argument("--k", type=int, default=8)
parser.add_argument("--iters", type=int, default=20)
parser.add_argument("--fits", type=int, default=5)
args = parser.parse_args()

session = kiln.Session.local(executors=2, slots_per_executor=1)
start_s = time.perf_counter() - started
df = session.read_parquet(f"data/ml/points-{args.rows}x{args.dims}/")
features = [f"x{j}" for j in range(args.dims)]
first = df.select(*features).limit(args.k).to_arrow()
init = [[first.column(j)[i].as_py() for j in range(args.dims)] for i in range(args.k)]

# One fit unmeasured (it faults in the memory the cache then reuses), then ``--fits`` timed.
fit_s = []
for i in range(args.fits + 1):
    t = time.perf_counter()
    model = kiln.ml.KMeans(n_clusters=args.k, init=init, max_iter=args.iters, tol=0.0).fit(
        df, features=features
    )
    if i > 0:
        fit_s.append(time.perf_counter() - t)
# The fixed cost of a call: fits on 1000 rows (the same query as the Rust side's TINY).
tiny = session.sql(
    "SELECT CAST(value % 17 AS DOUBLE) AS a, CAST(value % 5 AS DOUBLE) AS b "
    "FROM generate_series(1, 1000)"
)
tiny_s = []
for i in range(55):
    t = time.perf_counter()
    kiln.ml.KMeans(n_clusters=2, init=[[0.0, 0.0], [1.0, 1.0]], max_iter=20, tol=0.0).fit(
        tiny, features=["a", "b"]
    )
    if i >= 5:
        tiny_s.append(time.perf_counter() - t)
tiny_s.sort()

print(
    json.dumps(
        {
            "start_s": start_s,
            "tiny_s": tiny_s[len(tiny_s) // 2],
            "fit_s": fit_s,
            "iterations": model.n_iter_,
            "cost": model.inertia_,
        }
    )
)
