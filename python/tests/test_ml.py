"""kiln.ml against scikit-learn on the same data, with the tolerances of the ML suite:
k-means centres from the same initial centres with tol = 0 within 1e-9; linear and logistic
regression coefficients within 1e-4; metrics within 1e-9."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from sklearn import datasets, metrics
from sklearn.cluster import KMeans as SkKMeans
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.preprocessing import MinMaxScaler as SkMinMaxScaler
from sklearn.preprocessing import StandardScaler as SkStandardScaler

import kiln
import kiln.ml as ml

CENTRES = 1e-9
COEFFICIENTS = 1e-4
METRICS = 1e-9


def frame(session: kiln.Session, x: np.ndarray, y: np.ndarray | None = None):
    columns = {f"f{j}": x[:, j] for j in range(x.shape[1])}
    if y is not None:
        columns["label"] = y.astype(float)
    return session.create_dataframe(pa.table(columns))


def blobs(n: int, d: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, size=(k, d))
    return centres[rng.integers(0, k, n)] + rng.normal(0, 1.5, size=(n, d))


def assert_close(a, b, tol: float) -> None:
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=0, atol=tol)


# -- k-means ----------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["seeded", "iris"])
def test_kmeans_matches_scikit_learns_lloyd(session: kiln.Session, source: str) -> None:
    if source == "seeded":
        x, k = blobs(3000, 5, 4, seed=17), 4
    else:
        x, k = datasets.load_iris().data, 3
    init = x[:k]
    ours = ml.KMeans(k, init=init, max_iter=15, tol=0.0).fit(frame(session, x))
    ref = SkKMeans(k, init=init, n_init=1, max_iter=15, tol=0.0, algorithm="lloyd").fit(x)
    assert_close(ours.cluster_centers_, ref.cluster_centers_, CENTRES)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)
    history = ours.summary["loss_history"]
    assert isinstance(history, list) and len(history) == ours.n_iter_
    labels = ours.transform(frame(session, x)).to_arrow().column("prediction").to_numpy()
    assert (labels == ref.predict(x)).all()


def test_kmeans_parallel_init_is_seeded(session: kiln.Session) -> None:
    df = frame(session, blobs(2000, 3, 3, seed=5))
    a = ml.KMeans(3, random_state=9).fit(df).cluster_centers_
    b = ml.KMeans(3, random_state=9).fit(df).cluster_centers_
    assert np.array_equal(a, b)
    c = ml.KMeans(3, init="random", random_state=9).fit(df)
    assert c.cluster_centers_.shape == (3, 3)


# -- linear regression ------------------------------------------------------------------


@pytest.mark.parametrize("source", ["seeded", "diabetes"])
def test_linear_regression_matches_scikit_learn(session: kiln.Session, source: str) -> None:
    if source == "seeded":
        rng = np.random.default_rng(3)
        x = rng.normal(size=(2000, 6))
        y = x @ np.array([1.5, -2.0, 0.5, 0.0, 3.0, -1.0]) + 4.0 + rng.normal(0, 0.3, 2000)
    else:
        x, y = datasets.load_diabetes(return_X_y=True)
    ours = ml.LinearRegression(tol=1e-12, max_iter=1000).fit(frame(session, x, y))
    ref = SkLinearRegression().fit(x, y)
    scale = max(1.0, float(np.abs(ref.coef_).max()))
    assert_close(ours.coef_ / scale, ref.coef_ / scale, COEFFICIENTS)
    assert ours.intercept_ == pytest.approx(ref.intercept_, abs=COEFFICIENTS * scale)
    history = ours.summary["loss_history"]
    assert isinstance(history, list) and history[-1] <= history[0]


def test_ridge_alpha_is_elastic_nets_alpha(session: kiln.Session) -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(1500, 4))
    y = x @ np.array([1.0, -1.0, 2.0, 0.5]) + rng.normal(0, 0.5, 1500)
    from sklearn.linear_model import Ridge

    ours = ml.LinearRegression(alpha=0.1, l1_ratio=0.0, tol=1e-12, max_iter=1000).fit(frame(session, x, y))
    # ElasticNet's objective with l1_ratio = 0, ‖y − Xw‖²/(2n) + α‖w‖²/2, is Ridge's
    # ‖y − Xw‖² + (nα)‖w‖² scaled by 1/(2n); Ridge solves it exactly (ElasticNet's coordinate
    # descent does not reach a 1e-12 duality gap without an L1 term).
    ref = Ridge(alpha=len(y) * 0.1, solver="cholesky").fit(x, y)
    assert_close(ours.coef_, ref.coef_, COEFFICIENTS)


# -- logistic regression ----------------------------------------------------------------


def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    x, y = datasets.load_breast_cancer(return_X_y=True)
    return SkStandardScaler().fit_transform(x), y


@pytest.mark.parametrize("source", ["seeded", "breast_cancer"])
def test_binary_logistic_regression_matches_scikit_learn(session: kiln.Session, source: str) -> None:
    if source == "seeded":
        rng = np.random.default_rng(11)
        x = rng.normal(size=(3000, 5))
        p = 1 / (1 + np.exp(-(x @ np.array([1.0, -2.0, 0.5, 0.0, 1.5]) - 0.3)))
        y = (rng.uniform(size=3000) < p).astype(int)
    else:
        x, y = breast_cancer()
    c = 0.5
    ours = ml.LogisticRegression(C=c, tol=1e-12, max_iter=1000).fit(frame(session, x, y))
    ref = SkLogisticRegression(C=c, tol=1e-12, max_iter=100000).fit(x, y)
    assert ours.coef_.shape == ref.coef_.shape
    assert_close(ours.coef_, ref.coef_, COEFFICIENTS)
    assert_close(ours.intercept_, ref.intercept_, COEFFICIENTS)


def test_multinomial_logistic_regression_on_iris(session: kiln.Session) -> None:
    x, y = datasets.load_iris(return_X_y=True)
    ours = ml.LogisticRegression(C=1.0, tol=1e-12, max_iter=2000).fit(frame(session, x, y))
    ref = SkLogisticRegression(C=1.0, tol=1e-12, max_iter=100000).fit(x, y)
    assert ours.coef_.shape == (3, 4)
    assert_close(ours.coef_, ref.coef_, COEFFICIENTS)
    assert_close(ours.intercept_, ref.intercept_, COEFFICIENTS)


def test_sgd_solver_and_penalties_train(session: kiln.Session) -> None:
    x, y = breast_cancer()
    df = frame(session, x, y)
    sgd = ml.LogisticRegression(solver="sgd", max_iter=50, step_size=1.0, random_state=3).fit(df)
    acc = ml.evaluate(sgd.transform(df), "accuracy")
    assert acc > 0.9
    lasso = ml.LogisticRegression(penalty="l1", C=0.05).fit(df)
    assert (lasso.coef_ == 0).sum() > 0  # L1 zeroes coefficients
    with pytest.raises(kiln.ParameterError, match="l1_ratio"):
        ml.LogisticRegression(penalty="elasticnet").fit(df)


# -- metrics ----------------------------------------------------------------------------


def test_metrics_match_sklearn_metrics(session: kiln.Session) -> None:
    x, y = breast_cancer()
    df = frame(session, x, y)
    model = ml.LogisticRegression(C=0.1).fit(df)
    out = model.transform(df).to_arrow()
    pred = out.column("prediction").to_numpy()
    proba = np.array(out.column("probability").to_pylist())[:, 1]
    scored = model.transform(df)
    checks = {
        "accuracy": metrics.accuracy_score(y, pred),
        "precision": metrics.precision_score(y, pred),
        "recall": metrics.recall_score(y, pred),
        "f1": metrics.f1_score(y, pred),
        "log_loss": metrics.log_loss(y, proba),
        "roc_auc": metrics.roc_auc_score(y, proba),
    }
    for name, expected in checks.items():
        assert ml.evaluate(scored, name) == pytest.approx(expected, abs=METRICS), name
    weighted = ml.ClassificationEvaluator("f1", average="weighted").evaluate(scored)
    assert weighted == pytest.approx(metrics.f1_score(y, pred, average="weighted"), abs=METRICS)

    xr, yr = datasets.load_diabetes(return_X_y=True)
    reg = ml.LinearRegression().fit(frame(session, xr, yr))
    scored = reg.transform(frame(session, xr, yr))
    p = scored.to_arrow().column("prediction").to_numpy()
    for name, expected in {
        "rmse": np.sqrt(metrics.mean_squared_error(yr, p)),
        "mse": metrics.mean_squared_error(yr, p),
        "mae": metrics.mean_absolute_error(yr, p),
        "r2": metrics.r2_score(yr, p),
    }.items():
        assert ml.RegressionEvaluator(name).evaluate(scored) == pytest.approx(expected, abs=METRICS * max(1, abs(expected)))

    xi = datasets.load_iris().data
    km = ml.KMeans(3, init=xi[:3], max_iter=20, tol=0.0).fit(frame(session, xi))
    clustered = km.transform(frame(session, xi))
    labels = clustered.to_arrow().column("prediction").to_numpy()
    sil = ml.ClusteringEvaluator([f"f{j}" for j in range(4)]).evaluate(clustered)
    assert sil == pytest.approx(metrics.silhouette_score(xi, labels), abs=METRICS)


# -- transformers and pipelines ---------------------------------------------------------


def test_scalers_and_imputer_match_their_references(session: kiln.Session) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(3, 2, size=(500, 3))
    df = frame(session, x)
    cols = ["f0", "f1", "f2"]
    scaler = ml.StandardScaler(cols).fit(df)
    assert_close(scaler.mean_, x.mean(axis=0), 1e-12)
    assert_close(scaler.scale_, x.std(axis=0, ddof=1), 1e-12)  # the sample std, as Spark
    scaled = scaler.transform(df).to_arrow()
    assert_close(scaled.column("f0").to_numpy(), (x[:, 0] - x[:, 0].mean()) / x[:, 0].std(ddof=1), 1e-12)

    mm = ml.MinMaxScaler(cols).fit(df).transform(df).to_arrow()
    ref = SkMinMaxScaler().fit_transform(x)
    assert_close(np.column_stack([mm.column(c).to_numpy() for c in cols]), ref, 1e-12)

    holes = x.copy()
    holes[::7, 1] = np.nan
    for strategy in ("mean", "median"):
        imp = ml.Imputer(cols, strategy=strategy).fit(frame(session, holes))
        ref = SimpleImputer(strategy=strategy).fit(holes)
        assert_close(imp.statistics_, ref.statistics_, 1e-12)


def test_indexer_encoder_assembler_pipeline(session: kiln.Session) -> None:
    rng = np.random.default_rng(4)
    n = 600
    colour = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
    size = rng.normal(0, 1, n)
    label = (2.0 * (colour == "red") + size > 1.0).astype(float)
    df = session.create_dataframe(pa.table({"colour": colour, "size": size, "label": label}))
    indexer = ml.StringIndexer("colour", "colour_idx").fit(df)
    assert indexer.labels_ == ["red", "green", "blue"]
    encoded = ml.OneHotEncoder("colour_idx", "colour_vec").fit(indexer.transform(df))
    assert encoded.n_categories_ == 3

    pipeline = ml.Pipeline(
        [
            ("index", ml.StringIndexer("colour", "colour_idx")),
            ("encode", ml.OneHotEncoder("colour_idx", "colour_vec")),
            ("assemble", ml.VectorAssembler(["colour_vec", "size"])),
            ("scale", ml.StandardScaler()),
            ("clf", ml.LogisticRegression(C=10.0)),
        ]
    )
    fitted = pipeline.fit(df)
    assert isinstance(fitted.model, ml.LogisticRegressionModel)
    assert fitted.model.feature_names == ["colour_vec_0", "colour_vec_1", "size"]
    out = fitted.transform(df)
    assert {"prediction", "probability"} <= set(out.columns)
    assert ml.evaluate(out, "accuracy") > 0.8


def test_a_fitted_pipeline_saves_and_loads_as_a_directory(session: kiln.Session, tmp_path) -> None:
    rng = np.random.default_rng(5)
    n = 300
    colour = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(0, 1, n)
    label = ((colour == "red") + size > 0.5).astype(float)
    df = session.create_dataframe(pa.table({"colour": colour, "size": size, "label": label}))
    fitted = ml.Pipeline(
        [
            ml.StringIndexer("colour", "colour_idx"),
            ml.OneHotEncoder("colour_idx", "colour_vec"),
            ml.VectorAssembler(["colour_vec", "size"]),
            ml.StandardScaler(),
            ml.LogisticRegression(),
        ]
    ).fit(df)
    path = tmp_path / "pipe"
    fitted.save(str(path))
    assert (path / "pipeline.json").exists()
    loaded = ml.load_model(str(path), session)
    assert isinstance(loaded, ml.PipelineModel)
    assert [name for name, _ in loaded.steps] == [
        "StringIndexer",
        "OneHotEncoder",
        "VectorAssembler",
        "StandardScaler",
        "LogisticRegressionModel",
    ]
    assert loaded.stages[3].mean_.tolist() == fitted.stages[3].mean_.tolist()
    assert loaded.model.coef_.tolist() == fitted.model.coef_.tolist()
    before = fitted.transform(df).to_arrow().column("prediction").to_pylist()
    after = loaded.transform(df).to_arrow().column("prediction").to_pylist()
    assert after == before


def test_a_loaded_model_applies_its_sql_transform(session: kiln.Session, tmp_path) -> None:
    # Trained in SQL with TRANSFORM, loaded in Python: it predicts from the raw columns through
    # the fitted transform, exactly as SQL does, never on the raw columns themselves.
    rng = np.random.default_rng(8)
    x = rng.normal(10.0, 3.0, 200)
    z = np.where(rng.random(200) < 0.2, np.nan, rng.normal(0, 1, 200))
    y = 2.0 * x - 1.0 + np.nan_to_num(z)
    session.register("tr_rows", session.create_dataframe(pa.table({"x": x, "z": z, "y": y})))
    session.sql(
        "TRAIN MODEL tr USING linear_regression TRANSFORM (standard_scaler(x) AS x,"
        " imputer(z) AS z) LABEL y AS SELECT x, CASE WHEN isnan(z) THEN NULL ELSE z END AS z,"
        " y FROM tr_rows"
    ).collect()
    session.sql(f"SAVE MODEL tr TO '{tmp_path / 'tr'}'").collect()
    by_sql = session.sql(
        "SELECT predict(tr, x, CASE WHEN isnan(z) THEN NULL ELSE z END) AS p FROM tr_rows"
    ).to_arrow().column("p").to_pylist()
    loaded = ml.load_model(str(tmp_path / "tr"), session)
    raw = session.sql("SELECT x, CASE WHEN isnan(z) THEN NULL ELSE z END AS z FROM tr_rows")
    by_python = loaded.transform(raw).to_arrow().column("prediction").to_pylist()
    np.testing.assert_allclose(by_python, by_sql, rtol=0, atol=1e-9)
    # The outputs reuse the inputs' names: the bare model applied to the raw columns (what
    # the loader used to do) gives other, silently wrong, answers.
    naive = loaded.coef_[0] * x + loaded.coef_[1] * np.nan_to_num(z) + loaded.intercept_
    assert np.abs(naive - np.asarray(by_python)).max() > 1.0


# -- model files are shared with Rust and SQL --------------------------------------------


def test_model_files_cross_front_doors(session: kiln.Session, tmp_path) -> None:
    x = blobs(400, 2, 3, seed=21)
    df = frame(session, x)
    model = ml.KMeans(3, init=x[:3], max_iter=10, tol=0.0).fit(df)
    path = str(tmp_path / "km")
    model.save(path)
    meta = json.loads((tmp_path / "km" / "metadata.json").read_text())
    assert meta["algorithm"] == "kmeans"
    # SQL loads what Python saved and predicts the same clusters.
    session.register("km_points", df)
    session.sql(f"LOAD MODEL py_km FROM '{path}'").collect()
    by_sql = session.sql("SELECT predict(py_km, f0, f1) AS c FROM km_points").to_arrow()
    by_py = model.transform(df).to_arrow()
    assert by_sql.column("c").to_pylist() == by_py.column("prediction").to_pylist()
    # Python loads what SQL trained and saved.
    session.sql(
        "TRAIN MODEL sql_lr USING linear_regression LABEL f1 FEATURES (f0) AS SELECT * FROM km_points"
    ).collect()
    session.sql(f"SAVE MODEL sql_lr TO '{tmp_path / 'lr'}'").collect()
    loaded = ml.load_model(str(tmp_path / "lr"), session)
    assert isinstance(loaded, ml.LinearRegressionModel)
    assert loaded.feature_names == ["f0"] and loaded.label == "f1"
    assert session.model("sql_lr").coef_.tolist() == loaded.coef_.tolist()


def test_sql_train_and_predict_from_python(session: kiln.Session) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(float)
    session.register("clf_rows", frame(session, x, y))
    summary = session.sql(
        "TRAIN MODEL clf_py USING logistic_regression (C = 1.0) AS SELECT * FROM clf_rows"
    ).to_pylist()
    assert summary[0]["model"] == "clf_py"
    ref = SkLogisticRegression(C=1.0, tol=1e-12, max_iter=10000).fit(x, y)
    # TRAIN's defaults (Spark's) standardize; the answer still classifies alike.
    pred = session.sql("SELECT predict(clf_py, f0, f1) AS p FROM clf_rows").to_arrow()
    agree = (pred.column("p").to_numpy() == ref.predict(x)).mean()
    assert agree > 0.97
    evaluated = session.sql("SELECT * FROM EVALUATE(MODEL clf_py, (SELECT * FROM clf_rows))").to_pylist()
    assert evaluated[0]["accuracy"] > 0.95


def test_estimators_reject_unknown_and_bad_parameters(session: kiln.Session) -> None:
    with pytest.raises(TypeError):
        ml.KMeans(3, nonsense=1)  # type: ignore[call-arg]
    km = ml.KMeans(3).set_params(max_iter=5)
    assert km.get_params()["max_iter"] == 5
    df = frame(session, blobs(50, 2, 2, seed=1))
    with pytest.raises(kiln.ParameterError, match="init"):
        ml.KMeans(2, init="kmeans++").fit(df)
    with pytest.raises(kiln.ParameterError, match="unsupervised"):
        ml.KMeans(2).fit(df, label="f0")
    # Names, types and choices come from the registry SQL reads too, with SQL's wording.
    with pytest.raises(kiln.ParameterError, match=r"init must be one of 'k-means\|\|'.*got 'kmeans\+\+'"):
        ml.KMeans(2, init="kmeans++").fit(df)
    with pytest.raises(kiln.ParameterError, match="step_size needs solver = 'sgd'"):
        ml.LinearRegression(step_size=0.5).fit(df, label="f0")
    with pytest.raises(kiln.ParameterError, match="max_iter must be a non-negative integer, got -1"):
        ml.LinearRegression(max_iter=-1).fit(df, label="f0")


def test_algorithms_lists_the_registry_sql_shows(session: kiln.Session) -> None:
    listed = ml.algorithms()
    names = [a["name"] for a in listed]
    assert names[:3] == ["kmeans", "linear_regression", "logistic_regression"]
    kmeans = listed[0]
    assert kmeans["task"] == "clustering" and "k_means" in kmeans["aliases"]
    k = next(p for p in kmeans["params"] if p["name"] == "k")
    assert (k["type"], k["default"]) == ("integer", "2") and k["doc"]
    rows = session.sql("SHOW ALGORITHMS").to_pylist()
    assert [(r["algorithm"], r["parameter"]) for r in rows] == [
        (a["name"], p["name"]) for a in listed for p in a["params"]
    ]


def test_a_model_predicts_probabilities_with_its_own_weights(session: kiln.Session) -> None:
    # A model predicts probabilities through the session's registry, under a name of its own.
    # That name was made from id(model), which a model created after a freed one usually gets
    # again (CPython reuses the address): the new model then predicted with the old weights.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] - x[:, 1] + rng.normal(0, 1, 200) > 0).astype(float)
    df = frame(session, x, y)
    weak, strong = (ml.LogisticRegression(C=c).fit(df)._native for c in (0.001, 10.0))
    first = ml.LogisticRegressionModel(weak, session, "prediction")
    df.predict(first, "p", probability=True).to_arrow()
    del first
    second = ml.LogisticRegressionModel(strong, session, "prediction")
    proba = np.array(df.predict(second, "p", probability=True).to_arrow().column("p").to_pylist())
    expected = 1 / (1 + np.exp(-(x @ second.coef_[0] + second.intercept_[0])))
    assert_close(proba[:, 1], expected, 1e-12)


def test_a_freed_model_leaves_no_registration_behind(session: kiln.Session) -> None:
    import gc

    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] > 0).astype(float)
    df = frame(session, x, y)
    before = set(session._native.model_names())
    model = ml.LogisticRegression().fit(df)
    model.transform(df).to_arrow()  # probabilities: the model is registered by name
    assert len(set(session._native.model_names()) - before) == 1
    del model
    gc.collect()
    assert set(session._native.model_names()) == before
