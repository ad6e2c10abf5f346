"""kiln.ml as a scikit-learn user types it: ``fit(X, y)`` on NumPy, pandas, polars, pyarrow and
any ``__arrow_c_stream__`` input, inside scikit-learn's ``Pipeline`` and ``GridSearchCV``, and
through scikit-learn's own estimator checks.

Against scikit-learn on the same seeded data, with Kiln's objective matched to scikit-learn's
(least squares with ``alpha=0``; ``C`` with ``tol=1e-12``; k-means from the same initial
centres with ``tol=0``): coefficients within 1e-4 (the tolerance of test_ml.py), class
probabilities within 1e-5 (their logarithms within 1e-4), k-means centres and distances
within 1e-9, scaler and imputer statistics and outputs within 1e-12, scores within 1e-9, and
the same predicted labels.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import scipy.sparse
from sklearn import datasets
from sklearn.base import clone
from sklearn.cluster import KMeans as SkKMeans
from sklearn.exceptions import NotFittedError as SkNotFittedError
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler as SkMinMaxScaler
from sklearn.preprocessing import StandardScaler as SkStandardScaler
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

import kiln
import kiln.errors
import kiln.ml as ml

COEFFICIENTS = 1e-4
PROBABILITIES = 1e-5
LOG_PROBABILITIES = 1e-4
CENTRES = 1e-9
STATISTICS = 1e-12
SCORES = 1e-9

# Kiln's estimators do not inherit scikit-learn's BaseEstimator (scikit-learn is not a
# dependency of kiln), which the checks note with a warning; they implement its protocol.
pytestmark = pytest.mark.filterwarnings("ignore:Estimator .* does not inherit from:UserWarning")


def assert_close(a, b, tol: float) -> None:
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=0, atol=tol)


# -- scikit-learn's estimator checks ------------------------------------------------------

# Default parameters and the default session (Session.default()), as a user would start.
CHECKED = [
    ml.KMeans(),
    ml.LinearRegression(),
    ml.LogisticRegression(),
    ml.StandardScaler(),
    ml.MinMaxScaler(),
    ml.Imputer(),
]

# Checks expected to fail, by estimator: none. Every check scikit-learn 1.7 generates for
# these estimators passes. Checks it does not generate for them, and why:
# - sample weights (check_sample_weights_*, check_sample_weight_equivalence_*,
#   check_classifiers_one_label_sample_weights runs but returns early): fit takes no
#   sample_weight, because Kiln's trainers have no per-row weights;
# - check_set_output_transform*, check_global_*_output_transform_*: no set_output; transform
#   returns NumPy arrays for array-likes (scikit-learn's default output);
# - check_classifiers_multilabel_*, check_*_multioutput: one target only;
# - check_class_weight_*: no class_weight parameter;
# - check_decision_proba_consistency runs but returns early: LogisticRegression has
#   predict_proba and no decision_function;
# - check_param_validation, check_sparsify_coefficients, check_array_api_*,
#   check_inplace_ensure_writeable: scikit-learn's own machinery (_parameter_constraints,
#   SparseCoefMixin, the array API, copy= parameters) that Kiln does not have;
# - check_fit_non_negative, check_outlier_*: positive-only input and outlier detectors.
# Checks it generates only for subclasses of its mixins or only in its own test suite are run
# below in test_checks_scikit_learn_runs_only_for_its_own_estimators.
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {type(e).__name__: {} for e in CHECKED}



def _with_checks():
    """``parametrize_with_checks`` with its checks listed now, where the warning that the
    estimators are not BaseEstimators can be silenced (pytest collects them later)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Estimator .* does not inherit from", UserWarning)
        mark = parametrize_with_checks(
            CHECKED, expected_failed_checks=lambda e: EXPECTED_FAILED_CHECKS[type(e).__name__]
        )
        names, checks = mark.args
        return pytest.mark.parametrize(names, list(checks), **mark.kwargs)


@_with_checks()
def test_scikit_learns_estimator_checks(estimator, check) -> None:
    check(estimator)


@pytest.mark.parametrize(
    "estimator, check",
    [
        # Generated only for ClusterMixin subclasses.
        (ml.KMeans(), estimator_checks.check_clustering),
        (ml.KMeans(), estimator_checks.check_clusterer_compute_labels_predict),
        # Run by scikit-learn's own suite only: feature names kept, checked, and given out.
        *[(e, estimator_checks.check_dataframe_column_names_consistency) for e in CHECKED],
        *[
            (e, check)
            for e in CHECKED[3:]
            for check in (
                estimator_checks.check_transformer_get_feature_names_out,
                estimator_checks.check_transformer_get_feature_names_out_pandas,
                estimator_checks.check_get_feature_names_out_error,
            )
        ],
    ],
    ids=lambda p: getattr(p, "__name__", type(p).__name__),
)
def test_checks_scikit_learn_runs_only_for_its_own_estimators(estimator, check) -> None:
    check(type(estimator).__name__, clone(estimator))


# -- every kind of input ------------------------------------------------------------------

KINDS = ["numpy", "pandas", "polars", "pyarrow", "arrow_stream"]


class ArrowStream:
    """Nothing but the Arrow PyCapsule stream of a table."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


def features(kind: str, x: np.ndarray, names: list[str] | None = None):
    names = names or [f"f{j}" for j in range(x.shape[1])]
    if kind == "numpy":
        return x
    if kind == "pandas":
        return pd.DataFrame(x, columns=names)
    if kind == "polars":
        return pl.DataFrame(x, schema=names)
    table = pa.table({n: x[:, j] for j, n in enumerate(names)})
    return table if kind == "pyarrow" else ArrowStream(table)


def target(kind: str, y: np.ndarray):
    if kind == "pandas":
        return pd.Series(y, name="y")
    if kind == "polars":
        return pl.Series("y", y)
    if kind in ("pyarrow", "arrow_stream"):
        return pa.chunked_array([y])
    return y


def assert_names(estimator, kind: str, n: int) -> None:
    assert estimator.n_features_in_ == n
    if kind == "numpy":
        assert not hasattr(estimator, "feature_names_in_")
    else:
        assert estimator.feature_names_in_.tolist() == [f"f{j}" for j in range(n)]


@pytest.mark.parametrize("kind", KINDS)
def test_linear_regression_matches_scikit_learn(session: kiln.Session, kind: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 4))
    y = x @ np.array([1.5, -2.0, 0.5, 3.0]) + 4.0 + rng.normal(0, 0.3, 500)
    ours = ml.LinearRegression(tol=1e-12, max_iter=1000, session=session)
    assert ours.fit(features(kind, x), target(kind, y)) is ours
    ref = SkLinearRegression().fit(x, y)
    assert_close(ours.coef_, ref.coef_, COEFFICIENTS)
    assert ours.intercept_ == pytest.approx(ref.intercept_, abs=COEFFICIENTS)
    assert_names(ours, kind, 4)
    predicted = ours.predict(features(kind, x[:50]))
    assert predicted.shape == (50,)
    assert_close(predicted, ref.predict(x[:50]), COEFFICIENTS)
    score = ours.score(features(kind, x), target(kind, y))
    assert score == pytest.approx(ref.score(x, y), abs=SCORES)


@pytest.mark.parametrize("kind", KINDS)
def test_binary_logistic_regression_with_string_labels(session: kiln.Session, kind: str) -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(800, 4))
    p = 1 / (1 + np.exp(-(x @ np.array([1.0, -2.0, 0.5, 0.0]) - 0.3)))
    y = np.where(rng.uniform(size=800) < p, "churned", "stayed")
    ours = ml.LogisticRegression(C=0.5, tol=1e-12, max_iter=1000, session=session)
    ours.fit(features(kind, x), target(kind, y))
    ref = SkLogisticRegression(C=0.5, tol=1e-12, max_iter=100000).fit(x, y)
    assert ours.classes_.tolist() == ref.classes_.tolist() == ["churned", "stayed"]
    assert ours.coef_.shape == ref.coef_.shape == (1, 4)
    assert_close(ours.coef_, ref.coef_, COEFFICIENTS)
    assert_close(ours.intercept_, ref.intercept_, COEFFICIENTS)
    assert ours.n_iter_.shape == (1,) and ours.n_iter_[0] >= 1
    assert_names(ours, kind, 4)
    assert ours.predict(features(kind, x)).tolist() == ref.predict(x).tolist()
    proba = ours.predict_proba(features(kind, x))
    assert proba.shape == (800, 2)
    assert_close(proba, ref.predict_proba(x), PROBABILITIES)
    log_proba = ours.predict_log_proba(features(kind, x[:20]))
    assert_close(log_proba, ref.predict_log_proba(x[:20]), LOG_PROBABILITIES)
    score = ours.score(features(kind, x), target(kind, y))
    assert score == pytest.approx(ref.score(x, y), abs=SCORES)


@pytest.mark.parametrize("kind", KINDS)
def test_multinomial_logistic_regression_on_iris_names(session: kiln.Session, kind: str) -> None:
    iris = datasets.load_iris()
    x, y = iris.data, iris.target_names[iris.target]
    ours = ml.LogisticRegression(C=1.0, tol=1e-12, max_iter=2000, session=session)
    ours.fit(features(kind, x), target(kind, y))
    ref = SkLogisticRegression(C=1.0, tol=1e-12, max_iter=100000).fit(x, y)
    assert ours.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    assert_close(ours.coef_, ref.coef_, COEFFICIENTS)
    assert_close(ours.intercept_, ref.intercept_, COEFFICIENTS)
    assert ours.predict(features(kind, x)).tolist() == ref.predict(x).tolist()
    assert_close(ours.predict_proba(features(kind, x)), ref.predict_proba(x), PROBABILITIES)
    assert ours.score(features(kind, x), y) == pytest.approx(ref.score(x, y), abs=SCORES)


def test_integer_and_boolean_labels_come_back_as_given(session: kiln.Session) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 2))
    side = x[:, 0] + x[:, 1] > 0
    for y in (np.where(side, 7, 3), side):
        clf = ml.LogisticRegression(session=session).fit(x, y)
        assert clf.classes_.tolist() == sorted(set(y.tolist()))
        predicted = clf.predict(x)
        assert predicted.dtype == y.dtype
        assert (predicted == y).mean() > 0.95


@pytest.mark.parametrize("kind", KINDS)
def test_kmeans_matches_scikit_learns_lloyd(session: kiln.Session, kind: str) -> None:
    x = datasets.load_iris().data
    init = x[:3]
    ours = ml.KMeans(3, init=init, max_iter=15, tol=0.0, session=session).fit(features(kind, x))
    ref = SkKMeans(3, init=init, n_init=1, max_iter=15, tol=0.0, algorithm="lloyd").fit(x)
    assert_close(ours.cluster_centers_, ref.cluster_centers_, CENTRES)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=CENTRES)
    assert ours.n_iter_ == ref.n_iter_
    assert ours.labels_.tolist() == ref.labels_.tolist()
    assert_names(ours, kind, 4)
    assert ours.predict(features(kind, x)).tolist() == ref.predict(x).tolist()
    assert_close(ours.transform(features(kind, x)), ref.transform(x), CENTRES)
    assert ours.score(features(kind, x)) == pytest.approx(ref.score(x), rel=CENTRES)
    again = ml.KMeans(3, init=init, max_iter=15, tol=0.0, session=session)
    assert again.fit_predict(features(kind, x)).tolist() == ref.labels_.tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_scalers_and_imputer_match_scikit_learn(session: kiln.Session, kind: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(3, 2, size=(400, 3))
    n = len(x)

    scaler = ml.StandardScaler(session=session).fit(features(kind, x))
    ref = SkStandardScaler().fit(x)
    assert_names(scaler, kind, 3)
    assert_close(scaler.mean_, ref.mean_, STATISTICS)
    # Kiln divides by the sample deviation (Spark's), scikit-learn by the population one.
    assert_close(scaler.scale_, ref.scale_ * np.sqrt(n / (n - 1)), STATISTICS)
    scaled = scaler.transform(features(kind, x))
    assert scaled.shape == x.shape and scaled.dtype == np.float64
    assert_close(scaled, ref.transform(x) * np.sqrt((n - 1) / n), STATISTICS)

    minmax = ml.MinMaxScaler(feature_range=(-1.0, 2.0), session=session)
    ref_minmax = SkMinMaxScaler(feature_range=(-1.0, 2.0)).fit(x)
    assert_close(minmax.fit_transform(features(kind, x)), ref_minmax.transform(x), STATISTICS)
    assert_close(minmax.data_min_, ref_minmax.data_min_, STATISTICS)
    assert_close(minmax.data_range_, ref_minmax.data_range_, STATISTICS)

    holes = x.copy()
    holes[::7, 1] = np.nan
    holes[3::11, 2] = np.nan
    for strategy in ("mean", "median"):
        imputer = ml.Imputer(strategy=strategy, session=session).fit(features(kind, holes))
        ref_imputer = SimpleImputer(strategy=strategy).fit(holes)
        assert_close(imputer.statistics_, ref_imputer.statistics_, STATISTICS)
        imputed = imputer.transform(features(kind, holes))
        assert_close(imputed, ref_imputer.transform(holes), STATISTICS)
    assert scaler.get_feature_names_out().tolist() == [
        f"f{j}" if kind != "numpy" else f"x{j}" for j in range(3)
    ]


# -- inside scikit-learn's meta-estimators ---------------------------------------------------


def test_in_a_scikit_learn_pipeline(session: kiln.Session) -> None:
    cancer = datasets.load_breast_cancer()
    x, y = cancer.data, cancer.target_names[cancer.target]

    def pipeline(clf):
        return Pipeline([("scale", SkStandardScaler()), ("clf", clf)]).fit(x, y)

    ours = pipeline(ml.LogisticRegression(C=0.5, tol=1e-12, max_iter=1000, session=session))
    ref = pipeline(SkLogisticRegression(C=0.5, tol=1e-12, max_iter=100000))
    assert_close(ours["clf"].coef_, ref["clf"].coef_, COEFFICIENTS)
    assert ours.predict(x).tolist() == ref.predict(x).tolist()
    assert_close(ours.predict_proba(x), ref.predict_proba(x), PROBABILITIES)
    assert ours.score(x, y) == pytest.approx(ref.score(x, y), abs=SCORES)

    # Kiln at both steps: its MinMaxScaler feeding its LinearRegression.
    xr, yr = datasets.load_diabetes(return_X_y=True)
    kiln_steps = Pipeline(
        [
            ("scale", ml.MinMaxScaler(session=session)),
            ("reg", ml.LinearRegression(tol=1e-12, max_iter=1000, session=session)),
        ]
    ).fit(xr, yr)
    sk_steps = Pipeline([("scale", SkMinMaxScaler()), ("reg", SkLinearRegression())]).fit(xr, yr)
    scale = max(1.0, float(np.abs(sk_steps["reg"].coef_).max()))
    assert_close(kiln_steps["reg"].coef_ / scale, sk_steps["reg"].coef_ / scale, COEFFICIENTS)
    assert_close(kiln_steps.predict(xr) / scale, sk_steps.predict(xr) / scale, COEFFICIENTS)
    assert kiln_steps.score(xr, yr) == pytest.approx(sk_steps.score(xr, yr), abs=1e-6)


def test_in_grid_search_over_c(session: kiln.Session) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(600, 5))
    p = 1 / (1 + np.exp(-(x @ np.array([0.8, -1.2, 0.4, 0.0, 0.6]))))
    y = (rng.uniform(size=600) < p).astype(int)
    grid = {"C": [0.001, 0.01, 0.1, 1.0]}
    clf = ml.LogisticRegression(tol=1e-12, max_iter=1000, session=session)
    ours = GridSearchCV(clf, grid, cv=3)
    ref = GridSearchCV(SkLogisticRegression(tol=1e-12, max_iter=100000), grid, cv=3)
    ours.fit(x, y)
    ref.fit(x, y)
    assert ours.best_params_ == ref.best_params_
    assert_close(ours.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"], SCORES)
    assert_close(ours.best_estimator_.coef_, ref.best_estimator_.coef_, COEFFICIENTS)
    assert ours.best_estimator_.session is session  # cloned estimators share the session


# -- the scikit-learn protocol ----------------------------------------------------------------


def test_parameters_clone_and_pickle(session: kiln.Session) -> None:
    est = ml.LogisticRegression(C=0.3, session=session)
    assert set(vars(est)) == set(est.get_params())  # nothing but the parameters before fit
    assert est.get_params()["C"] == 0.3
    twin = clone(est)
    assert twin is not est and twin.C == 0.3 and twin.session is session
    assert est.set_params(C=2.0) is est and est.C == 2.0
    with pytest.raises(ValueError, match="no parameter 'nonsense'"):
        est.set_params(nonsense=1)
    assert repr(ml.KMeans(3, max_iter=5)) == "KMeans(n_clusters=3, max_iter=5)"

    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 3))
    y = np.where(x[:, 0] > 0, "a", "b")
    est.fit(x, y)
    for back in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        assert back.session is None  # a session belongs to its process
        assert back.classes_.tolist() == ["a", "b"]
        assert_close(back.coef_, est.coef_, 0.0)
        assert back.predict(x).tolist() == est.predict(x).tolist()
        assert_close(back.predict_proba(x), est.predict_proba(x), 0.0)
    scaler = pickle.loads(pickle.dumps(ml.StandardScaler(session=session).fit(x)))
    assert_close(scaler.transform(x), (x - x.mean(axis=0)) / x.std(axis=0, ddof=1), STATISTICS)


def test_kiln_dataframes_keep_their_api(session: kiln.Session) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 2))
    y = 3.0 * x[:, 0] - x[:, 1] + 1.0
    df = session.create_dataframe(pa.table({"a": x[:, 0], "b": x[:, 1], "label": y}))
    est = ml.LinearRegression(session=session)
    model = est.fit(df, ["a", "b"], "label")  # positional features and label, as before
    assert isinstance(model, ml.LinearRegressionModel) and model.feature_names == ["a", "b"]
    assert not hasattr(est, "coef_")  # a DataFrame fit returns a model, the estimator is unchanged
    with pytest.raises(kiln.errors.NotFittedError, match="not fitted"):
        est.predict(x)
    with pytest.raises(kiln.ParameterError, match="column names"):
        est.fit(df, y)
    # Fitted on a pandas frame, the estimator predicts a kiln.DataFrame with the same columns.
    est.fit(pd.DataFrame(x, columns=["a", "b"]), y)
    out = est.predict(df).to_arrow()
    by_arrays = est.predict(pd.DataFrame(x, columns=["a", "b"]))
    assert_close(out.column("prediction").to_numpy(), by_arrays, 1e-12)
    assert isinstance(ml.StandardScaler(["a", "b"]).fit(df), ml.FeatureModel)
    assert isinstance(ml.MinMaxScaler(["a"]).fit_transform(df), kiln.DataFrame)
    with pytest.raises(kiln.ParameterError, match="input_cols"):
        ml.Imputer().fit(df)


def test_bad_input_fails_naming_what_is_wrong(session: kiln.Session) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 3))
    y = x[:, 0]
    reg = ml.LinearRegression(session=session)
    with pytest.raises(ValueError, match="Reshape your data"):
        reg.fit(x[:, 0], y)
    holes = pd.DataFrame(x, columns=["a", "b", "c"])
    holes.loc[2, "b"] = np.nan
    with pytest.raises(ValueError, match=r"Input X contains NaN \(row 2, column 'b'\)"):
        reg.fit(holes, y)
    with pytest.raises(ValueError, match="X has 30 rows and y has 29"):
        reg.fit(x, y[:-1])
    with pytest.raises(ValueError, match="requires y"):
        reg.fit(x, None)
    with pytest.raises(ValueError, match="column 'colour' is"):
        reg.fit(pd.DataFrame({"colour": ["red"] * 30, "size": y}), y)
    with pytest.raises(TypeError, match="sparse"):
        reg.fit(scipy.sparse.csr_matrix(x), y)
    with pytest.raises(SkNotFittedError):  # scikit-learn's class, as well as Kiln's
        reg.predict(x)
    reg.fit(x, y)
    with pytest.raises(ValueError, match="X has 2 features, but LinearRegression is expecting 3"):
        reg.predict(x[:, :2])
    clf = ml.LogisticRegression(session=session)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        clf.fit(x, y)
    with pytest.raises(ValueError, match="only one class: 'yes'"):
        clf.fit(x, ["yes"] * 30)
