"""scikit-learn reference for Kiln's k-means (ml/tests/it/kmeans.rs).

stdin:  {"x": [[...], ...], "init_centers": [[...], ...], "max_iter": int}
stdout: {"centers": [[...]], "inertia": float, "n_iter": int, "labels": [int]}

Lloyd from the given centres, one run, tol = 0: scikit-learn then stops only on strict
convergence (labels unchanged between two iterations) or at max_iter.
"""

import json
import sys

import numpy as np
from sklearn.cluster import KMeans


def main():
    req = json.load(sys.stdin)
    x = np.asarray(req["x"], dtype=np.float64)
    init = np.asarray(req["init_centers"], dtype=np.float64)
    km = KMeans(
        n_clusters=init.shape[0],
        init=init,
        n_init=1,
        max_iter=int(req["max_iter"]),
        tol=0.0,
        algorithm="lloyd",
    ).fit(x)
    json.dump(
        {
            "centers": km.cluster_centers_.tolist(),
            "inertia": float(km.inertia_),
            "n_iter": int(km.n_iter_),
            "labels": km.labels_.tolist(),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
