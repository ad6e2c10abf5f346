"""Machine learning on Kiln: estimators, transformers, pipelines, models and evaluators.

Parameter names are scikit-learn's where scikit-learn has the parameter (``n_clusters``,
``max_iter``, ``tol``, ``random_state``, ``C``, ``penalty``, ``l1_ratio``, ``alpha``,
``fit_intercept``, ``with_mean``, ...), Spark's otherwise. Estimators take data two ways:

- a :class:`kiln.DataFrame`: ``fit(df, features=[...], label="y")`` (default: label
  ``label`` and every other numeric column as a feature) returns a :class:`Model`, whose
  ``transform(df)`` adds the predictions to the plan;
- array-likes, as scikit-learn takes them (NumPy arrays, pandas and polars DataFrames,
  pyarrow tables, anything with ``__arrow_c_stream__``): ``fit(X, y)`` fits the estimator
  itself and returns it, with ``predict``, ``predict_proba``, ``score``, ``transform``,
  ``fit_predict``, ``fit_transform`` and the fitted attributes (``coef_``, ``classes_``,
  ``cluster_centers_``, ``n_features_in_``, ``feature_names_in_``, ...), so that it works in
  scikit-learn's ``Pipeline``, ``GridSearchCV`` and ``clone``. The rows go to the
  estimator's ``session`` (default :meth:`kiln.Session.default`) as an Arrow table; class
  labels of any type are trained as ``0..K-1`` and predicted back as given.

Either way the input is cached once on the executors and every iteration runs on the cache.
Models are the same files Rust and SQL read (``model.save(path)``, :func:`load_model`,
SQL ``LOAD MODEL m FROM 'path'``); an array-fitted estimator's model is ``model_``.

>>> import kiln, kiln.ml
>>> s = kiln.Session.local(progress=None)
>>> df = s.create_dataframe({"x": [0.0, 0.1, 10.0, 10.1]})
>>> model = kiln.ml.KMeans(n_clusters=2, init=[[0.0], [10.0]]).fit(df)
>>> [round(float(c[0]), 2) for c in model.cluster_centers_]
[0.05, 10.05]

The same estimators as a scikit-learn user types them:

>>> import numpy as np
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
>>> reg = kiln.ml.LinearRegression(session=s).fit(X, 2 * X[:, 0] + 1)
>>> reg.predict(np.array([[4.0], [5.0]])).round(6)
array([ 9., 11.])
>>> clf = kiln.ml.LogisticRegression(session=s).fit(X, ["no", "no", "yes", "yes"])
>>> clf.predict(np.array([[-1.0], [4.0]])).tolist()
['no', 'yes']
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import sys
import tempfile
import weakref
from typing import Any, Callable, Sequence

from kiln import DataFrame, ParameterError, Session, _kiln
from kiln import _sklearn as _sk
from kiln.errors import NotFittedError

try:  # numpy arrays for weights when numpy is installed, lists otherwise
    import numpy as _np
except ImportError:  # pragma: no cover - numpy ships with pandas and scikit-learn
    _np = None


def _array(x: Any) -> Any:
    return _np.asarray(x, dtype=float) if _np is not None else x


def _tolist(x: Any) -> Any:
    return x.tolist() if hasattr(x, "tolist") else [list(map(float, r)) for r in x]


def _directory_bytes(write: Callable[[str], None]) -> dict[str, bytes]:
    """The files ``write(path)`` puts in a new directory, by relative path: how models and
    fitted transformers pickle (as the directory every Kiln front door reads)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "saved")
        write(root)
        files = {}
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, root).replace(os.sep, "/")] = f.read()
    return files


def _from_directory_bytes(files: dict[str, bytes], read: Callable[[str], Any]) -> Any:
    """``read(path)`` of a directory holding ``files`` (from :func:`_directory_bytes`)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "saved")
        for relative, data in files.items():
            path = os.path.join(root, *relative.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        return read(root)


_registered_names = itertools.count()


def _deregister(native_session: Any, name: str) -> None:
    """Forgets a model a Python object had registered (the object is gone)."""
    native_session.deregister_model(name)


# ---------------------------------------------------------------------------------------
# Models


class Model:
    """A trained model. ``transform(df)`` adds its predictions; ``save(path)`` writes the
    model directory every Kiln front door reads."""

    def __init__(self, native: _kiln.Model, session: Session | None, prediction_col: str) -> None:
        self._native = native
        self._session = session
        self.prediction_col = prediction_col

    @property
    def algorithm(self) -> str:
        """``kmeans``, ``linear_regression`` or ``logistic_regression``."""
        return self._native.algorithm

    @property
    def feature_names(self) -> list[str]:
        """The feature columns, in the order prediction reads them."""
        return self._native.feature_names

    @property
    def feature_names_in_(self) -> list[str]:
        """scikit-learn's name for :attr:`feature_names`."""
        return self.feature_names

    @property
    def label(self) -> str | None:
        """The label column (supervised models)."""
        return self._native.label

    @property
    def params(self) -> dict[str, Any]:
        """The hyper-parameters, as written in the model's ``metadata.json``."""
        return json.loads(self._native.params_json()) or {}

    @property
    def summary(self) -> dict[str, Any]:
        """What training recorded: ``iterations`` and ``loss_history`` (the cost or
        objective after each iteration, a list), plus the algorithm's own fields as in
        ``metadata.json``."""
        raw = json.loads(self._native.summary_json())
        history = raw.get("cost_history", raw.get("objective_history", []))
        out = dict(raw)
        out["loss_history"] = [float(v) for v in history]
        report = self.report
        if report is not None:
            out["report"] = report
        return out

    @property
    def report(self) -> dict[str, Any] | None:
        """The training report, measured while the model was fitted (kept in its files; ``None``
        for a model built from its parts): ``training_seconds``, ``compute_seconds``,
        ``overhead_seconds``, ``communication_overhead_pct``, ``bytes_per_iteration``,
        ``utilization_pct``, ``slots``, ``rows_per_second`` (per executor),
        ``loss_curve``, ``iterations``, ``rows``, ``cache_seconds`` and ``validation`` (metric
        name to value, from SQL ``TRAIN ... (validation = 'table')``)."""
        report = json.loads(self._native.report_json())
        if report is None:
            return None
        report["rows_per_second"] = {e: float(r) for e, r in report["rows_per_second"]}
        report["validation"] = {m: float(v) for m, v in report["validation"]}
        return report

    def _registered_in(self, session: Session) -> str:
        # A name of its own for as long as the object lives: id(self) would be reused by a
        # later model once this one is freed, which would then predict with this one.
        name = self.__dict__.get("_registered_name")
        if name is None:
            name = self._registered_name = f"__python_model_{os.getpid()}_{next(_registered_names)}"
        if session._native.model(name) is None:
            session._native.register_model(name, self._native)
            # Registered for as long as this object lives: a grid search fits hundreds.
            weakref.finalize(self, _deregister, session._native, name)
        return name

    def _with_predictions(self, df: DataFrame, output: str) -> DataFrame:
        # One registration per model object and session, freed with the object.
        name = self._registered_in(df.session)
        return df._wrap(df._native.predict(name, output, False))

    def transform(self, df: DataFrame) -> DataFrame:
        """``df`` with the prediction column added (lazy)."""
        return self._with_predictions(df, self.prediction_col)

    def __getstate__(self) -> dict[str, Any]:
        # Pickled as its model directory; unpickled, it belongs to no session (saving and
        # predicting take the DataFrame's or the default one).
        session = self._session or Session.default()
        dropped = ("_native", "_session", "_registered_name")
        state = {k: v for k, v in self.__dict__.items() if k not in dropped}
        state["_files"] = _directory_bytes(
            lambda path: session._native.save_model(self._native, path)
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        files = state.pop("_files")
        self.__dict__.update(state)
        self._session = None
        self._native = _from_directory_bytes(files, Session.default()._native.load_model)

    predict = transform

    def save(self, path: str, session: Session | None = None) -> None:
        """Writes the model directory (``metadata.json`` + ``weights.arrow``) at ``path``: a
        local directory or an object-store URL."""
        (session or self._session or Session.default())._native.save_model(
            self._native, os.fspath(path)
        )

    @classmethod
    def load(cls, path: str, session: Session | None = None) -> "Model":
        """Reads a model directory (see :func:`load_model`)."""
        return load_model(path, session)

    def __repr__(self) -> str:
        return f"kiln.ml.{type(self).__name__}(features={self.feature_names})"


class KMeansModel(Model):
    """A k-means model; predicts the index of the nearest centre."""

    @property
    def cluster_centers_(self) -> Any:
        """The centres, ``(n_clusters, n_features)``."""
        return _array(self._native.weights()["centers"])

    @property
    def inertia_(self) -> float:
        """Sum of squared distances of the training rows to their centre (Spark's cost)."""
        return float(self.summary["cost"])

    @property
    def n_iter_(self) -> int:
        """Lloyd iterations run."""
        return int(self.summary["iterations"])


class LinearRegressionModel(Model):
    """A linear regression model; predicts ``X · coef_ + intercept_``."""

    @property
    def coef_(self) -> Any:
        """The coefficients, one per feature."""
        return _array(self._native.weights()["coefficients"])

    @property
    def intercept_(self) -> float:
        """The intercept."""
        return float(self._native.weights()["intercept"])

    @property
    def n_iter_(self) -> int:
        """Optimizer iterations run."""
        return int(self.summary["iterations"])


class LogisticRegressionModel(Model):
    """A logistic regression model; predicts a class index, and with
    ``probability_col`` set (default ``probability``) the class probabilities too."""

    def __init__(
        self,
        native: _kiln.Model,
        session: Session | None,
        prediction_col: str,
        probability_col: str | None = "probability",
    ) -> None:
        super().__init__(native, session, prediction_col)
        self.probability_col = probability_col

    @property
    def coef_(self) -> Any:
        """The coefficients: ``(1, n_features)`` for a binomial model (scikit-learn's
        shape), ``(n_classes, n_features)`` for a multinomial one."""
        return _array(self._native.weights()["coefficients"])

    @property
    def intercept_(self) -> Any:
        """The intercepts, one per row of :attr:`coef_`."""
        return _array(self._native.weights()["intercepts"])

    @property
    def n_iter_(self) -> int:
        """Optimizer iterations run."""
        return int(self.summary["iterations"])

    def transform(self, df: DataFrame) -> DataFrame:
        """``df`` with the predicted class and, with ``probability_col``, the class
        probabilities (a list column, class 0 first)."""
        out = super().transform(df)
        if self.probability_col:
            out = out.predict(self, self.probability_col, probability=True)
        return out

    predict = transform


def _wrap_model(
    native: _kiln.Model, session: Session | None, prediction_col: str = "prediction"
) -> Model:
    cls = {
        "kmeans": KMeansModel,
        "linear_regression": LinearRegressionModel,
        "logistic_regression": LogisticRegressionModel,
    }[native.algorithm]
    return cls(native, session, prediction_col)


def load_model(path: str, session: Session | None = None) -> Model | "PipelineModel":
    """Reads a model directory written by any Kiln front door (Rust ``save_model``, SQL
    ``TRAIN MODEL`` / ``SAVE MODEL``, Python ``save``), with the ``TRANSFORM`` it was trained
    with, if any; or a pipeline directory (:meth:`PipelineModel.save`, Rust
    ``save_pipeline``), as a :class:`PipelineModel`. Needs no executor."""
    session = session or Session.default()
    path = os.fspath(path)
    if session._native.is_pipeline(path):
        return PipelineModel._from_natives(session._native.load_pipeline(path), session)
    return _wrap_model(session._native.load_model(path), session)


# ---------------------------------------------------------------------------------------
# Estimators and transformers


def _same(value: Any, default: Any) -> bool:
    """Whether a parameter still has its default (for ``repr``), without comparing arrays."""
    if value is default:
        return True
    if type(value) is not type(default) or hasattr(value, "__array__"):
        return False
    try:
        return bool(value == default)
    except (TypeError, ValueError):
        return False


class _Stage:
    """Something with parameters that :class:`Pipeline` can fit and scikit-learn can clone:
    the constructor keeps its arguments, unchanged, as attributes of the same names and sets
    nothing else, so ``get_params`` reads them back and ``clone`` rebuilds the stage from
    them."""

    _kind: str = ""
    _sklearn_kind: str = "transformer"
    _allow_nan: bool = False

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _native_stage(self, **columns: Any) -> _kiln.Stage:
        params = {k: v for k, v in self._params().items() if v is not None}
        params.update({k: v for k, v in columns.items() if v is not None})
        return _kiln.Stage(self._kind, params)

    def _keep(self, params: dict[str, Any]) -> None:
        """Keeps the constructor's arguments (its ``locals()``) as attributes."""
        for key, value in params.items():
            if key not in ("self", "__class__"):
                setattr(self, key, value)

    @classmethod
    def _param_names(cls) -> list[str]:
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [
            p.name
            for p in parameters
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters (scikit-learn's ``get_params``; no parameter is an
        estimator, so ``deep`` changes nothing)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "_Stage":
        """Changes parameters (scikit-learn's ``set_params``); returns ``self``.

        Raises :class:`kiln.ParameterError` (a ``ValueError``) for a name the constructor
        does not take."""
        names = self._param_names()
        for key, value in params.items():
            if key not in names:
                raise ParameterError(
                    f"{type(self).__name__} has no parameter {key!r}; its parameters are {names}"
                )
            setattr(self, key, value)
        return self

    def __sklearn_tags__(self) -> Any:
        return _sk.tags(self._sklearn_kind, allow_nan=self._allow_nan)

    def __sklearn_clone__(self) -> "_Stage":
        # scikit-learn's clone, except that a session is shared, not copied: it is this
        # process's engine, not a value.
        from sklearn.base import clone

        params = {
            k: v if isinstance(v, Session) else clone(v, safe=False)
            for k, v in self.get_params(deep=False).items()
        }
        return type(self)(**params)

    def __getstate__(self) -> dict[str, Any]:
        # A session is this process's engine: a pickled stage forgets it, and once unpickled
        # uses the default session.
        state = dict(self.__dict__)
        if isinstance(state.get("session"), Session):
            state["session"] = None
        return state

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        args = ", ".join(
            f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults.get(k))
        )
        return f"{type(self).__name__}({args})"


_sklearn_not_fitted: type[NotFittedError] | None = None


def _not_fitted(message: str) -> NotFittedError:
    """A :class:`kiln.errors.NotFittedError`, which is also scikit-learn's ``NotFittedError``
    when scikit-learn is loaded (code catching scikit-learn's catches Kiln's), without
    importing scikit-learn when it is not."""
    global _sklearn_not_fitted
    exceptions = sys.modules.get("sklearn.exceptions")
    if exceptions is None:
        return NotFittedError(message)
    if _sklearn_not_fitted is None:
        _sklearn_not_fitted = type(
            "NotFittedError", (NotFittedError, exceptions.NotFittedError), {"__module__": __name__}
        )
    return _sklearn_not_fitted(message)


class _FitsArrays:
    """What fitting on array-likes needs, for estimators and transformers alike: the session
    the data goes to, the fitted Kiln object (``model_``) and the columns it was fitted on,
    which later input is checked against."""

    def _session_for_arrays(self) -> Session:
        return getattr(self, "session", None) or Session.default()

    def _fitted_model(self) -> Any:
        model = self.__dict__.get("model_")
        if model is None:
            raise _not_fitted(
                f"This {type(self).__name__} instance is not fitted yet: call fit(X, y) with "
                "array-likes first (fit on a kiln.DataFrame returns a model and leaves the "
                "estimator as it was)"
            )
        return model

    def _remember(self, matrix: _sk.Matrix, model: Any) -> None:
        self.model_ = model
        self.n_features_in_ = matrix.values.shape[1]
        if matrix.names is not None:
            self.feature_names_in_ = _sk.numpy().asarray(matrix.names, dtype=object)
        else:
            self.__dict__.pop("feature_names_in_", None)

    def _matrix(self, X: Any, method: str) -> _sk.Matrix:
        """``X`` read and checked against the columns ``fit`` saw."""
        self._fitted_model()
        who = type(self).__name__
        if isinstance(X, DataFrame):
            raise TypeError(
                f"{who}.{method} takes array-likes (NumPy, pandas, polars, pyarrow); for a "
                "kiln.DataFrame use the fitted model (model_) and kiln.ml.evaluate"
            )
        matrix = _sk.read_matrix(X, who)
        fitted_names = getattr(self, "feature_names_in_", None)
        _sk.check_columns(who, matrix, fitted_names, self.n_features_in_)
        _sk.check_finite(matrix, who, allow_nan=self._allow_nan)
        return matrix

    def _training_matrix(self, X: Any) -> _sk.Matrix:
        who = type(self).__name__
        matrix = _sk.read_matrix(X, who)
        _sk.check_finite(matrix, who, allow_nan=self._allow_nan)
        return matrix

    def _frame(
        self, values: Any, columns: list[str], extra: dict[str, Any] | None = None
    ) -> DataFrame:
        table = _sk.arrow_table(values, columns, extra)
        return self._session_for_arrays().create_dataframe(table)

    @staticmethod
    def _column(df: DataFrame, name: str) -> Any:
        """Runs ``df`` for its column ``name`` only (a ChunkedArray)."""
        quoted = '"' + name.replace('"', '""') + '"'
        return df.select(quoted).to_arrow().column(0)


def _frame_features(y: Any, features: Sequence[str] | None) -> Sequence[str] | None:
    """The feature columns of ``fit(df, features)`` / ``fit(df, features=...)``."""
    if y is None:
        return features
    if features is not None:
        raise ParameterError("fit got the features twice: as its second argument and as features=")
    if not (isinstance(y, (list, tuple)) and all(isinstance(c, str) for c in y)):
        raise ParameterError(
            "on a kiln.DataFrame, fit takes column names: fit(df, features=[...], label='y'); "
            f"got {type(y).__name__}. Array features and targets go together: fit(X, y)"
        )
    return y


class _Estimator(_Stage, _FitsArrays):
    """An estimator. On a :class:`kiln.DataFrame`, ``fit(df, features=..., label=...)``
    returns a :class:`Model`; on array-likes, ``fit(X, y)`` fits the estimator itself, as
    scikit-learn does, and returns it."""

    prediction_col: str = "prediction"

    def _stage_for(self, features: Sequence[str] | None, label: str | None) -> _kiln.Stage:
        return self._native_stage(
            features=list(features) if features is not None else None,
            label=label,
            prediction_col=self.prediction_col,
        )

    def fit(
        self,
        X: Any,
        y: Any = None,
        label: str | None = None,
        *,
        features: Sequence[str] | None = None,
    ) -> Any:
        """Trains the estimator.

        On a :class:`kiln.DataFrame` ``X``: trains on its ``features`` columns (the second
        argument or ``features=``; default: every numeric column but the label) and its
        ``label`` column (default ``label``; supervised estimators only), and returns the
        :class:`Model`. On an array-like ``X`` (NumPy, pandas, polars, pyarrow, anything with
        ``__arrow_c_stream__``) and target ``y``: trains on them in the estimator's session
        and returns the estimator, with scikit-learn's fitted attributes and ``model_``."""
        if isinstance(X, DataFrame):
            return self._fit_frame(X, _frame_features(y, features), label)
        if label is not None or features is not None:
            raise ParameterError(
                "features= and label= name columns of a kiln.DataFrame; for arrays, call fit(X, y)"
            )
        self._fit_arrays(X, y)
        return self

    def _fit_frame(
        self, df: DataFrame, features: Sequence[str] | None, label: str | None
    ) -> Model:
        fitted = self._stage_for(features, label).fit(df._native)
        return self._model(fitted.model(), df.session)

    def _model(self, native: Any, session: Session) -> Model:
        return _wrap_model(native, session, self.prediction_col)

    def _fit_arrays(self, X: Any, y: Any) -> None:
        matrix = self._training_matrix(X)
        n, d = matrix.values.shape
        target, fitted = self._target(y, n)
        columns = _sk.kiln_columns(matrix.names, d)
        label = _sk.free_name("label", columns) if target is not None else None
        df = self._frame(matrix.values, columns, {label: target} if label is not None else None)
        model = self._fit_frame(df, columns, label)
        self._remember(matrix, model)
        for key, value in fitted.items():
            setattr(self, key, value)
        self._fitted(model, df)

    def _target(self, y: Any, n_samples: int) -> tuple[Any, dict[str, Any]]:
        """The label column for ``y`` (``None`` for none) and the attributes it fixes."""
        return _sk.regression_target(y, n_samples, type(self).__name__), {}

    def _fitted(self, model: Any, df: DataFrame) -> None:
        """Sets scikit-learn's fitted attributes from the trained ``model``."""

    def _predictions(self, X: Any, method: str) -> Any:
        model = self._fitted_model()
        matrix = self._matrix(X, method)
        df = self._frame(matrix.values, model.feature_names)
        return self._column(model._with_predictions(df, self.prediction_col), self.prediction_col)

    def _decode(self, predictions: Any) -> Any:
        return predictions.to_numpy()

    def predict(self, X: Any) -> Any:
        """The prediction for each row of the array-like ``X``, a 1-D NumPy array (run in
        the engine, as every Kiln model predicts). For a :class:`kiln.DataFrame`, the fitted
        model's ``transform``: ``X`` with the prediction column added (lazy)."""
        if isinstance(X, DataFrame):
            return self._fitted_model().transform(X)
        return self._decode(self._predictions(X, "predict"))

    def _evaluate(self, matrix: _sk.Matrix, target: Any, metric: str) -> float:
        """``metric`` of the model's predictions for ``matrix`` against ``target``, by Kiln's
        evaluator (the numbers SQL's ``EVALUATE`` gives)."""
        model = self._fitted_model()
        label = _sk.free_name("label", [*model.feature_names, self.prediction_col])
        df = self._frame(matrix.values, model.feature_names, {label: target})
        scored = model._with_predictions(df, self.prediction_col)
        return evaluate(scored, metric, label_col=label, prediction_col=self.prediction_col)


class KMeans(_Estimator):
    """k-means clustering (Lloyd's iterations on the cached input).

    ``init`` is ``"k-means||"`` (default, Spark's), ``"random"``, or the initial centres as an
    array of shape ``(n_clusters, n_features)``. ``tol`` stops when no centre moves more than
    it (Spark's rule); ``tol=0`` runs ``max_iter`` iterations unless the centres stop moving.
    ``session``: where array-likes are clustered (default :meth:`kiln.Session.default`).

    Fitted on array-likes: ``cluster_centers_``, ``labels_`` (the training rows' clusters),
    ``inertia_``, ``n_iter_``, ``n_features_in_``, ``feature_names_in_`` and ``model_`` (the
    :class:`KMeansModel`).
    """

    _kind = "kmeans"
    _sklearn_kind = "clusterer"
    _estimator_type = "clusterer"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Any = "k-means||",
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: int = 0,
        init_steps: int = 2,
        prediction_col: str = "prediction",
        session: Session | None = None,
    ) -> None:
        self._keep(locals())

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = dict(
            k=self.n_clusters,
            max_iter=self.max_iter,
            tol=float(self.tol),
            seed=self.random_state,
            init_steps=self.init_steps,
        )
        if isinstance(self.init, str):
            params["init"] = self.init
        else:
            params["init_centers"] = _tolist(self.init)
        return params

    def fit(
        self,
        X: Any,
        y: Any = None,
        label: str | None = None,
        *,
        features: Sequence[str] | None = None,
    ) -> Any:
        """Clusters the rows. On a :class:`kiln.DataFrame`: its ``features`` columns
        (default: every numeric column), returning the :class:`KMeansModel`. On an array-like
        ``X``: its rows (``y`` is ignored, as in scikit-learn), returning the estimator."""
        if isinstance(X, DataFrame) and label is not None:
            raise ParameterError("KMeans is unsupervised: it takes no label")
        return super().fit(X, y, label, features=features)

    def _target(self, y: Any, n_samples: int) -> tuple[Any, dict[str, Any]]:
        return None, {}

    def _fitted(self, model: Any, df: DataFrame) -> None:
        self.cluster_centers_ = model.cluster_centers_
        self.inertia_ = model.inertia_
        self.n_iter_ = model.n_iter_
        labels = self._column(model._with_predictions(df, self.prediction_col), self.prediction_col)
        self.labels_ = self._decode(labels)

    def _decode(self, predictions: Any) -> Any:
        return predictions.to_numpy().astype(_sk.numpy().int32)

    def fit_predict(self, X: Any, y: Any = None) -> Any:
        """The cluster of each row of the array-like ``X`` after fitting on it (``labels_``).
        On a :class:`kiln.DataFrame`: ``fit(X).transform(X)``, ``X`` with the clusters."""
        if isinstance(X, DataFrame):
            return self.fit(X).transform(X)
        return self.fit(X).labels_

    def _squared_distances(self, X: Any, method: str) -> Any:
        np = _sk.numpy()
        values = self._matrix(X, method).values
        centres = self.cluster_centers_
        out = np.empty((values.shape[0], centres.shape[0]))
        block = 4096  # rows at a time: a block's differences take block·k·d floats
        for start in range(0, values.shape[0], block):
            diff = values[start : start + block, None, :] - centres[None, :, :]
            out[start : start + block] = (diff * diff).sum(axis=2)
        return out

    def transform(self, X: Any) -> Any:
        """The distance of each row of the array-like ``X`` to each centre, ``(n_samples,
        n_clusters)`` (scikit-learn's cluster-distance space), computed with NumPy from
        :attr:`cluster_centers_`. (A :class:`KMeansModel`'s ``transform`` adds the cluster
        index to a :class:`kiln.DataFrame` instead.)"""
        return _sk.numpy().sqrt(self._squared_distances(X, "transform"))

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """``fit(X).transform(X)`` for an array-like ``X``."""
        if isinstance(X, DataFrame):
            raise TypeError(
                "KMeans.fit_transform takes array-likes; for a kiln.DataFrame use fit_predict"
            )
        return self.fit(X).transform(X)

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the sum of squared distances of the rows of ``X`` to their nearest centre
        (scikit-learn's score: the opposite of the inertia on ``X``; ``y`` is ignored)."""
        return -float(self._squared_distances(X, "score").min(axis=1).sum())


class _Linear(_Estimator):
    """The parameters both linear estimators share."""

    def _linear_params(self) -> dict[str, Any]:
        return dict(
            max_iter=self.max_iter,
            tol=float(self.tol),
            fit_intercept=self.fit_intercept,
            standardization=self.standardization,
            solver=self.solver,
            seed=self.random_state,
            mini_batch_fraction=self.mini_batch_fraction,
            step_size=self.step_size,
        )


class LinearRegression(_Linear):
    """Least squares with an optional elastic-net penalty: minimizes
    ``1/(2n) ||y - Xw - b||² + alpha · (l1_ratio ||w||₁ + (1 - l1_ratio)/2 ||w||²)``,
    scikit-learn's ``ElasticNet`` objective (``alpha = 0``: ordinary least squares, as
    scikit-learn's ``LinearRegression``). Solvers: ``lbfgs`` (default) and ``sgd``.
    ``standardization=True`` penalizes standardized coefficients (Spark's default).
    ``session``: where array-likes are fitted (default :meth:`kiln.Session.default`).

    Fitted on array-likes: ``coef_``, ``intercept_``, ``n_iter_``, ``n_features_in_``,
    ``feature_names_in_`` and ``model_`` (the :class:`LinearRegressionModel`)."""

    _kind = "linear_regression"
    _sklearn_kind = "regressor"
    _estimator_type = "regressor"

    def __init__(
        self,
        *,
        fit_intercept: bool = True,
        alpha: float = 0.0,
        l1_ratio: float = 0.0,
        max_iter: int = 100,
        tol: float = 1e-6,
        solver: str = "lbfgs",
        standardization: bool = False,
        random_state: int = 0,
        mini_batch_fraction: float | None = None,
        step_size: float | None = None,
        prediction_col: str = "prediction",
        session: Session | None = None,
    ) -> None:
        self._keep(locals())

    def _params(self) -> dict[str, Any]:
        p = self._linear_params()
        p.update(reg_param=float(self.alpha), elastic_net_param=float(self.l1_ratio))
        return p

    def _fitted(self, model: Any, df: DataFrame) -> None:
        self.coef_ = model.coef_
        self.intercept_ = model.intercept_
        self.n_iter_ = model.n_iter_

    def score(self, X: Any, y: Any) -> float:
        """R² of the predictions for ``X`` against ``y`` (scikit-learn's regressor score),
        computed by Kiln's evaluator."""
        matrix = self._matrix(X, "score")
        target = _sk.regression_target(y, matrix.values.shape[0], type(self).__name__)
        return self._evaluate(matrix, target, "r2")


class LogisticRegression(_Linear):
    """Binary or multinomial logistic regression with scikit-learn's objective:
    ``C · Σ loss + penalty`` with ``penalty`` ``"l2"`` (default), ``"l1"``, ``"elasticnet"``
    (mixing ``l1_ratio``) or ``None``. ``family``: ``"auto"`` (binomial for labels {0, 1},
    multinomial otherwise), ``"binomial"`` or ``"multinomial"``. Solvers: ``lbfgs``
    (default; OWL-QN with an L1 part) and ``sgd``. ``session``: where array-likes are fitted
    (default :meth:`kiln.Session.default`).

    On array-likes the labels may be anything NumPy sorts (numbers, strings, booleans): they
    are trained as their indices ``0..K-1`` in ``classes_`` and predicted back as labels.
    Fitted: ``classes_``, ``coef_``, ``intercept_``, ``n_iter_`` (shape ``(1,)``, as
    scikit-learn's), ``n_features_in_``, ``feature_names_in_`` and ``model_`` (the
    :class:`LogisticRegressionModel`)."""

    _kind = "logistic_regression"
    _sklearn_kind = "classifier"
    _estimator_type = "classifier"

    def __init__(
        self,
        *,
        penalty: str | None = "l2",
        C: float = 1.0,
        l1_ratio: float | None = None,
        fit_intercept: bool = True,
        max_iter: int = 100,
        tol: float = 1e-6,
        solver: str = "lbfgs",
        family: str = "auto",
        threshold: float = 0.5,
        standardization: bool = False,
        random_state: int = 0,
        mini_batch_fraction: float | None = None,
        step_size: float | None = None,
        prediction_col: str = "prediction",
        probability_col: str | None = "probability",
        session: Session | None = None,
    ) -> None:
        self._keep(locals())

    def _params(self) -> dict[str, Any]:
        p = self._linear_params()
        p.update(family=self.family, threshold=float(self.threshold))
        if self.penalty is None:
            p.update(reg_param=0.0)
        elif self.penalty == "l2":
            p.update(C=float(self.C), elastic_net_param=0.0)
        elif self.penalty == "l1":
            p.update(C=float(self.C), elastic_net_param=1.0)
        elif self.penalty == "elasticnet":
            if self.l1_ratio is None:
                raise ParameterError("penalty='elasticnet' needs l1_ratio in [0, 1]")
            p.update(C=float(self.C), elastic_net_param=float(self.l1_ratio))
        else:
            raise ParameterError(
                f"penalty must be 'l2', 'l1', 'elasticnet' or None, got {self.penalty!r}"
            )
        return p

    def _model(self, native: Any, session: Session) -> Model:
        return LogisticRegressionModel(native, session, self.prediction_col, self.probability_col)

    def _target(self, y: Any, n_samples: int) -> tuple[Any, dict[str, Any]]:
        classes, codes = _sk.class_labels(y, n_samples, type(self).__name__)
        return codes, {"classes_": classes}

    def _fitted(self, model: Any, df: DataFrame) -> None:
        np = _sk.numpy()
        self.coef_ = model.coef_
        self.intercept_ = model.intercept_
        self.n_iter_ = np.array([model.n_iter_], dtype=np.int32)

    def _decode(self, predictions: Any) -> Any:
        return self.classes_[predictions.to_numpy().astype(_sk.numpy().intp)]

    def predict_proba(self, X: Any) -> Any:
        """The probability of each class (in the order of ``classes_``) for each row of the
        array-like ``X``, ``(n_samples, n_classes)``. For a :class:`kiln.DataFrame`, ``X``
        with the probabilities as a list column (lazy)."""
        model = self._fitted_model()
        column = self.probability_col or "probability"
        if isinstance(X, DataFrame):
            return X.predict(model, column, probability=True)
        matrix = self._matrix(X, "predict_proba")
        df = self._frame(matrix.values, model.feature_names)
        df = df.predict(model, column, probability=True)
        lists = self._column(df, column).combine_chunks()
        return lists.flatten().to_numpy().reshape(len(lists), -1)

    def predict_log_proba(self, X: Any) -> Any:
        """The logarithm of :meth:`predict_proba`, for an array-like ``X``."""
        if isinstance(X, DataFrame):
            raise TypeError(
                "predict_log_proba takes array-likes; for a kiln.DataFrame use predict_proba"
            )
        return _sk.numpy().log(self.predict_proba(X))

    def score(self, X: Any, y: Any) -> float:
        """The accuracy of the predictions for ``X`` against the labels ``y`` (scikit-learn's
        classifier score), computed by Kiln's evaluator; a label ``fit`` never saw counts as
        a miss."""
        matrix = self._matrix(X, "score")
        codes = _sk.class_codes(self.classes_, y, matrix.values.shape[0], type(self).__name__)
        return self._evaluate(matrix, codes, "accuracy")


class FeatureModel:
    """A fitted transformer: ``transform(df)`` adds plain expressions to the plan."""

    def __init__(self, native: _kiln.FittedStage, kind: str) -> None:
        self._native = native
        self._kind = kind
        self._attributes = dict(native.attributes())

    def transform(self, df: DataFrame) -> DataFrame:
        """``df`` with the transformation applied (lazy)."""
        return df._wrap(self._native.transform(df._native))

    @property
    def attributes(self) -> dict[str, Any]:
        """The fitted statistics and output columns."""
        return dict(self._attributes)

    def __getattr__(self, name: str) -> Any:
        aliases = {
            "mean_": "mean",
            "scale_": "std",
            "data_min_": "data_min",
            "data_max_": "data_max",
            "statistics_": "surrogates",
            "labels_": "labels",
            "classes_": "labels",
            "n_categories_": "categories",
        }
        key = aliases.get(name, name)
        attributes = self.__dict__.get("_attributes", {})
        if key in attributes:
            value = attributes[key]
            return _array(value) if isinstance(value, list) and key != "labels" and value and isinstance(value[0], float) else value
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __getstate__(self) -> dict[str, Any]:
        # Pickled as a one-stage pipeline directory, the form Kiln saves fitted transformers in.
        session = Session.default()
        files = _directory_bytes(lambda path: session._native.save_pipeline([self._native], path))
        return {"kind": self._kind, "files": files}

    def __setstate__(self, state: dict[str, Any]) -> None:
        load = Session.default()._native.load_pipeline
        self._native = _from_directory_bytes(state["files"], load)[0]
        self._kind = state["kind"]
        self._attributes = dict(self._native.attributes())

    def __repr__(self) -> str:
        return f"kiln.ml.FeatureModel({self._kind}, {self._attributes})"


class _Transformer(_Stage):
    """A feature transformer: ``fit(df)`` returns a :class:`FeatureModel`."""

    def fit(self, X: DataFrame, y: Any = None) -> Any:
        """Computes the statistics in one pass over the :class:`kiln.DataFrame` ``X`` and
        returns the :class:`FeatureModel` (``y`` is ignored)."""
        if not isinstance(X, DataFrame):
            raise TypeError(
                f"{type(self).__name__} works on the columns of a kiln.DataFrame, got "
                f"{type(X).__name__}"
            )
        return FeatureModel(self._native_stage().fit(X._native), self._kind)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """``fit(X).transform(X)``: for a :class:`kiln.DataFrame`, the transformed DataFrame
        (lazy); for an array-like (the scalers and the imputer), a NumPy array."""
        return self.fit(X).transform(X)


class _ColumnTransformer(_Transformer, _FitsArrays):
    """A transformer that works column by column, and so also on array-likes, as
    scikit-learn's: ``fit(X)`` fits the transformer itself and returns it, ``transform(X)``
    returns a NumPy array. ``input_cols`` and ``output`` apply to kiln.DataFrames only."""

    def fit(self, X: Any, y: Any = None) -> Any:
        """On a :class:`kiln.DataFrame`: computes the statistics in one pass and returns the
        :class:`FeatureModel`. On an array-like ``X`` (NumPy, pandas, polars, pyarrow, any
        ``__arrow_c_stream__``): fits on all its columns in the transformer's session and
        returns the transformer, with scikit-learn's fitted attributes and ``model_`` (the
        :class:`FeatureModel`). ``y`` is ignored."""
        if isinstance(X, DataFrame):
            return super().fit(X)
        matrix = self._training_matrix(X)
        columns = _sk.kiln_columns(matrix.names, matrix.values.shape[1])
        df = self._frame(matrix.values, columns)
        dropped = ("input", "input_cols", "output")  # the columns are the array's
        params = {k: v for k, v in self._params().items() if k not in dropped}
        params["input_cols"] = columns
        stage = _kiln.Stage(self._kind, {k: v for k, v in params.items() if v is not None})
        model = FeatureModel(stage.fit(df._native), self._kind)
        self._remember(matrix, model)
        self.n_samples_seen_ = matrix.values.shape[0]
        self._fitted(model)
        return self

    def _fitted(self, model: FeatureModel) -> None:
        """Sets scikit-learn's fitted attributes from the fitted ``model``."""

    def transform(self, X: Any) -> Any:
        """``X`` transformed: a float64 NumPy array ``(n_samples, n_features)`` for an
        array-like (run in the engine, as every Kiln transformer); for a
        :class:`kiln.DataFrame`, the DataFrame with the transformation added (lazy)."""
        model = self._fitted_model()
        if isinstance(X, DataFrame):
            return model.transform(X)
        np = _sk.numpy()
        matrix = self._matrix(X, "transform")
        columns = model.attributes["output_cols"]  # the input columns, transformed in place
        out = model.transform(self._frame(matrix.values, columns)).to_arrow()
        values = np.empty(matrix.values.shape, order="F")
        for j, name in enumerate(columns):
            values[:, j] = out.column(name).to_numpy()
        return values

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> Any:
        """The output columns' names: the input's, since each column is transformed in place
        (``feature_names_in_``, else ``x0``, ``x1``, ...; scikit-learn's
        ``get_feature_names_out``)."""
        np = _sk.numpy()
        self._fitted_model()
        fitted = getattr(self, "feature_names_in_", None)
        if input_features is None:
            if fitted is not None:
                return np.asarray(fitted, dtype=object)
            return np.asarray([f"x{j}" for j in range(self.n_features_in_)], dtype=object)
        given = [str(f) for f in input_features]
        if fitted is not None and given != list(fitted):
            raise ValueError("input_features is not equal to feature_names_in_")
        if len(given) != self.n_features_in_:
            raise ValueError(
                f"input_features should have length equal to number of features "
                f"({self.n_features_in_}), got {len(given)}"
            )
        return np.asarray(given, dtype=object)


def _io(input_cols: Sequence[str] | str | None, output: str | None) -> dict[str, Any]:
    if isinstance(input_cols, str):
        return {"input": input_cols, "output": output}
    return {"input_cols": list(input_cols) if input_cols is not None else None, "output": output}


class StandardScaler(_ColumnTransformer):
    """``(x - mean) / std`` per column (the sample standard deviation, as Spark; scikit-learn
    divides by the population one, ``sqrt((n-1)/n)`` times it, and leaves a constant column
    at ``x - mean`` where Kiln scales it to 0). ``input_cols``: columns, or a feature group
    name (default: the group ``features`` a :class:`VectorAssembler` made); ``output``: a
    new group ``{output}_{column}`` instead of replacing the inputs. ``session``: where
    array-likes are fitted and transformed (default :meth:`kiln.Session.default`).

    Fitted on array-likes: ``mean_``, ``scale_`` (the deviation divided by, ``None``
    without ``with_std``), ``var_``, ``n_samples_seen_``, ``n_features_in_``,
    ``feature_names_in_``, ``model_``."""

    _kind = "standard_scaler"

    def __init__(
        self,
        input_cols: Sequence[str] | str | None = None,
        *,
        output: str | None = None,
        with_mean: bool = True,
        with_std: bool = True,
        session: Session | None = None,
    ) -> None:
        self._keep(locals())

    def _params(self) -> dict[str, Any]:
        return {**_io(self.input_cols, self.output), "with_mean": self.with_mean, "with_std": self.with_std}

    def _fitted(self, model: FeatureModel) -> None:
        self.mean_ = model.mean_
        std = model.scale_
        self.scale_ = std if self.with_std else None
        self.var_ = std * std if self.with_std else None


class MinMaxScaler(_ColumnTransformer):
    """Rescales each column to ``feature_range`` (default ``(0, 1)``); a constant column maps
    to the middle of the range (Spark's rule; scikit-learn maps it to the lower end).
    ``session``: where array-likes are fitted and transformed (default
    :meth:`kiln.Session.default`).

    Fitted on array-likes: ``data_min_``, ``data_max_``, ``data_range_``,
    ``n_samples_seen_``, ``n_features_in_``, ``feature_names_in_``, ``model_``."""

    _kind = "min_max_scaler"

    def __init__(
        self,
        input_cols: Sequence[str] | str | None = None,
        *,
        output: str | None = None,
        feature_range: tuple[float, float] = (0.0, 1.0),
        session: Session | None = None,
    ) -> None:
        self._keep(locals())

    def _params(self) -> dict[str, Any]:
        lo, hi = self.feature_range
        return {**_io(self.input_cols, self.output), "min": float(lo), "max": float(hi)}

    def _fitted(self, model: FeatureModel) -> None:
        self.data_min_ = model.data_min_
        self.data_max_ = model.data_max_
        self.data_range_ = self.data_max_ - self.data_min_


class Imputer(_ColumnTransformer):
    """Replaces missing values (null, NaN, or ``missing_values``) by the column's
    ``strategy``: ``mean`` (default), ``median`` or ``most_frequent``. ``input_cols``: the
    columns of a kiln.DataFrame to impute (required there); array-likes are imputed in every
    column. ``session``: where array-likes are fitted and transformed (default
    :meth:`kiln.Session.default`).

    Fitted on array-likes: ``statistics_``, ``n_samples_seen_``, ``n_features_in_``,
    ``feature_names_in_``, ``model_``."""

    _kind = "imputer"
    _allow_nan = True

    def __init__(
        self,
        input_cols: Sequence[str] | None = None,
        *,
        strategy: str = "mean",
        missing_values: float | None = None,
        output: str | None = None,
        session: Session | None = None,
    ) -> None:
        self._keep(locals())

    def _params(self) -> dict[str, Any]:
        return {
            "input_cols": list(self.input_cols) if self.input_cols is not None else None,
            "strategy": self.strategy,
            "missing_value": self.missing_values,
            "output": self.output,
        }

    def _native_stage(self, **columns: Any) -> _kiln.Stage:
        if self.input_cols is None:
            raise ParameterError(
                "Imputer needs input_cols, the columns of the kiln.DataFrame to impute"
            )
        return super()._native_stage(**columns)

    def _fitted(self, model: FeatureModel) -> None:
        self.statistics_ = model.statistics_


class StringIndexer(_Transformer):
    """Maps the values of ``input_col`` to indices ``0.0, 1.0, ...`` (most frequent first
    by default); unseen values follow ``handle_invalid`` (``error``, ``skip``, ``keep``)."""

    _kind = "string_indexer"

    def __init__(
        self,
        input_col: str,
        output_col: str,
        *,
        string_order: str = "frequency_desc",
        handle_invalid: str = "error",
    ) -> None:
        self._keep(locals())

    def _params(self) -> dict[str, Any]:
        return self.get_params()


class OneHotEncoder(_Transformer):
    """One 0/1 column per category of the index column ``input_col`` (the last category
    dropped unless ``drop_last=False``), forming the feature group ``output_col``."""

    _kind = "one_hot_encoder"

    def __init__(
        self,
        input_col: str,
        output_col: str,
        *,
        drop_last: bool = True,
        handle_invalid: str = "error",
    ) -> None:
        self._keep(locals())

    def _params(self) -> dict[str, Any]:
        return self.get_params()


class VectorAssembler(_Transformer):
    """Names the feature columns (and groups) an estimator later in a :class:`Pipeline`
    trains on, as the feature group ``output`` (default ``features``)."""

    _kind = "vector_assembler"

    def __init__(
        self, input_cols: Sequence[str], *, output: str = "features", handle_invalid: str = "error"
    ) -> None:
        self._keep(locals())

    def _params(self) -> dict[str, Any]:
        return {
            "input_cols": list(self.input_cols),
            "output": self.output,
            "handle_invalid": self.handle_invalid,
        }


class Pipeline:
    """Stages fitted in order, each on the output of the ones before (Spark's and
    scikit-learn's ``Pipeline``). ``stages``: estimators and transformers, or
    ``(name, stage)`` pairs. An estimator without explicit ``features`` trains on the group
    a :class:`VectorAssembler` made."""

    def __init__(self, stages: Sequence[Any]) -> None:
        self.steps = [(s[0], s[1]) if isinstance(s, tuple) else (type(s).__name__, s) for s in stages]

    def fit(self, df: DataFrame, label: str | None = None) -> "PipelineModel":
        """Fits every stage; ``label`` for the estimator stages (default ``label``)."""
        natives = []
        for _, stage in self.steps:
            if isinstance(stage, _Estimator):
                natives.append(stage._native_stage(label=label, prediction_col=stage.prediction_col))
            else:
                natives.append(stage._native_stage())
        fitted = _kiln.Pipeline(natives).fit(df._native)
        out: list[tuple[str, Any]] = []
        for (name, stage), f in zip(self.steps, fitted):
            if isinstance(stage, _Estimator):
                out.append((name, stage._model(f.model(), df.session)))
            else:
                out.append((name, FeatureModel(f, stage._kind)))
        return PipelineModel(out, fitted)


_FEATURE_CLASSES = {
    "vector_assembler": "VectorAssembler",
    "standard_scaler": "StandardScaler",
    "min_max_scaler": "MinMaxScaler",
    "imputer": "Imputer",
    "string_indexer": "StringIndexer",
    "one_hot_encoder": "OneHotEncoder",
}


class PipelineModel:
    """A fitted :class:`Pipeline`: ``transform(df)`` applies every stage in order;
    ``save(path)`` writes it as a pipeline directory that :func:`load_model` (and Rust's
    ``Session::load_pipeline``) reads back."""

    def __init__(self, steps: list[tuple[str, Any]], natives: list[Any]) -> None:
        self.steps = steps
        self._natives = natives

    @classmethod
    def _from_natives(cls, natives: list[Any], session: Session) -> "PipelineModel":
        steps: list[tuple[str, Any]] = []
        for native in natives:
            kind = native.kind()
            if kind == "model":
                prediction = native.attributes()["prediction_col"]
                model = _wrap_model(native.model(), session, prediction)
                steps.append((type(model).__name__, model))
            else:
                steps.append((_FEATURE_CLASSES.get(kind, kind), FeatureModel(native, kind)))
        return cls(steps, natives)

    def save(self, path: str, session: Session | None = None) -> None:
        """Writes the pipeline directory (``pipeline.json`` and a model directory per model
        stage) at ``path``: a local directory or an object-store URL."""
        model = self.model
        owner = session or (model._session if model is not None else None) or Session.default()
        owner._native.save_pipeline(self._natives, os.fspath(path))

    @property
    def stages(self) -> list[Any]:
        """The fitted stages: :class:`FeatureModel` and :class:`Model` objects."""
        return [s for _, s in self.steps]

    @property
    def named_steps(self) -> dict[str, Any]:
        """The fitted stages by name."""
        return dict(self.steps)

    @property
    def model(self) -> Model | None:
        """The model of the last estimator stage."""
        models = [s for s in self.stages if isinstance(s, Model)]
        return models[-1] if models else None

    def transform(self, df: DataFrame) -> DataFrame:
        """``df`` through every stage (a lazy plan)."""
        native = df._native
        for (_, stage), f in zip(self.steps, self._natives):
            if isinstance(stage, LogisticRegressionModel):
                native = stage.transform(df._wrap(native))._native
            else:
                native = f.transform(native)
        return df._wrap(native)


# ---------------------------------------------------------------------------------------
# Evaluators


def algorithms() -> list[dict[str, Any]]:
    """Every training algorithm Kiln registers, as SQL's ``SHOW ALGORITHMS`` lists them: a dict
    per algorithm with ``name`` (what ``TRAIN MODEL ... USING`` takes), ``aliases``, ``task``
    (``clustering``, ``classification`` or ``regression``), ``doc`` and ``params`` (each with
    ``name``, ``type``, ``default`` and ``doc``, by Spark's names; the estimator classes here take
    scikit-learn's)."""
    return _kiln.algorithms()


def evaluate(
    df: DataFrame,
    metric: str,
    *,
    label_col: str = "label",
    prediction_col: str = "prediction",
    probability_col: str = "probability",
    average: str = "binary",
    features: Sequence[str] | None = None,
    seed: int = 42,
) -> float:
    """One metric of ``df``: ``rmse``, ``mse``, ``mae``, ``r2``; ``accuracy``,
    ``precision``, ``recall``, ``f1`` (``average``: ``binary``, ``macro``, ``weighted``),
    ``log_loss``, ``roc_auc`` (from ``probability_col``); ``silhouette`` (of the clusters in
    ``prediction_col`` over ``features``, sampled with ``seed`` on large data)."""
    return _kiln.evaluate(
        df._native,
        metric,
        label_col,
        prediction_col,
        probability_col,
        average,
        list(features) if features is not None else None,
        seed,
    )


class RegressionEvaluator:
    """``rmse`` (default), ``mse``, ``mae`` or ``r2`` of a prediction column."""

    def __init__(self, metric: str = "rmse", *, label_col: str = "label", prediction_col: str = "prediction") -> None:
        self.metric, self.label_col, self.prediction_col = metric, label_col, prediction_col

    def evaluate(self, df: DataFrame) -> float:
        """The metric of ``df``."""
        return evaluate(df, self.metric, label_col=self.label_col, prediction_col=self.prediction_col)


class ClassificationEvaluator:
    """``accuracy`` (default), ``precision``, ``recall``, ``f1``, ``log_loss`` or
    ``roc_auc`` of a classifier's output."""

    def __init__(
        self,
        metric: str = "accuracy",
        *,
        average: str = "binary",
        label_col: str = "label",
        prediction_col: str = "prediction",
        probability_col: str = "probability",
    ) -> None:
        self.metric, self.average = metric, average
        self.label_col, self.prediction_col, self.probability_col = label_col, prediction_col, probability_col

    def evaluate(self, df: DataFrame) -> float:
        """The metric of ``df``."""
        return evaluate(
            df,
            self.metric,
            label_col=self.label_col,
            prediction_col=self.prediction_col,
            probability_col=self.probability_col,
            average=self.average,
        )


class ClusteringEvaluator:
    """The mean silhouette of a clustering over ``features``."""

    def __init__(self, features: Sequence[str] | None = None, *, prediction_col: str = "prediction", seed: int = 42) -> None:
        self.features, self.prediction_col, self.seed = features, prediction_col, seed

    def evaluate(self, df: DataFrame) -> float:
        """The silhouette of ``df``'s clusters."""
        return evaluate(df, "silhouette", prediction_col=self.prediction_col, features=self.features, seed=self.seed)


__all__ = [
    "algorithms",
    "KMeans",
    "LinearRegression",
    "LogisticRegression",
    "StandardScaler",
    "MinMaxScaler",
    "Imputer",
    "StringIndexer",
    "OneHotEncoder",
    "VectorAssembler",
    "Pipeline",
    "PipelineModel",
    "Model",
    "KMeansModel",
    "LinearRegressionModel",
    "LogisticRegressionModel",
    "FeatureModel",
    "evaluate",
    "RegressionEvaluator",
    "ClassificationEvaluator",
    "ClusteringEvaluator",
    "load_model",
]
