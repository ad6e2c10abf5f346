"""Machine learning on Kiln: estimators, transformers, pipelines, models and evaluators.

Parameter names are scikit-learn's where scikit-learn has the parameter (``n_clusters``,
``max_iter``, ``tol``, ``random_state``, ``C``, ``penalty``, ``l1_ratio``, ``alpha``,
``fit_intercept``, ``with_mean``, ...), Spark's otherwise. Estimators train on a
:class:`kiln.DataFrame`: ``fit(df, features=[...], label="y")`` (default: label ``label``
and every other numeric column as a feature). The input is cached once on the executors and
every iteration runs on the cache. Models are the same files Rust and SQL read
(``model.save(path)``, :func:`load_model`, ``CREATE MODEL ... FROM 'path'``).

>>> import kiln, kiln.ml
>>> s = kiln.Session.local(progress=None)
>>> df = s.create_dataframe({"x": [0.0, 0.1, 10.0, 10.1]})
>>> model = kiln.ml.KMeans(n_clusters=2, init=[[0.0], [10.0]]).fit(df)
>>> [round(float(c[0]), 2) for c in model.cluster_centers_]
[0.05, 10.05]
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from kiln import DataFrame, ParameterError, Session, _kiln

try:  # numpy arrays for weights when numpy is installed, lists otherwise
    import numpy as _np
except ImportError:  # pragma: no cover - numpy ships with pandas and scikit-learn
    _np = None


def _array(x: Any) -> Any:
    return _np.asarray(x, dtype=float) if _np is not None else x


def _tolist(x: Any) -> Any:
    return x.tolist() if hasattr(x, "tolist") else [list(map(float, r)) for r in x]


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
        return out

    def _registered_in(self, session: Session) -> str:
        name = f"__python_model_{id(self):x}"
        if session._native.model(name) is None:
            session._native.register_model(name, self._native)
        return name

    def transform(self, df: DataFrame) -> DataFrame:
        """``df`` with the prediction column added (lazy)."""
        stage = _kiln.FittedStage.of_model(self._native, self.prediction_col)
        return df._wrap(stage.transform(df._native))

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


class _Stage:
    """Something with parameters that :class:`Pipeline` can fit."""

    _kind: str = ""

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _native_stage(self, **columns: Any) -> _kiln.Stage:
        params = {k: v for k, v in self._params().items() if v is not None}
        params.update({k: v for k, v in columns.items() if v is not None})
        return _kiln.Stage(self._kind, params)

    def _keep(self, params: dict[str, Any]) -> None:
        """Keeps the constructor's arguments as attributes and for :meth:`get_params`."""
        self._init_params = {k: v for k, v in params.items() if k not in ("self", "__class__")}
        for key, value in self._init_params.items():
            setattr(self, key, value)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters (scikit-learn's ``get_params``)."""
        return dict(self._init_params)

    def set_params(self, **params: Any) -> "_Stage":
        """Changes parameters (scikit-learn's ``set_params``); returns ``self``."""
        merged = {**self._init_params, **params}
        self.__init__(**merged)  # type: ignore[misc]
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._init_params.items())
        return f"{type(self).__name__}({args})"


class _Estimator(_Stage):
    """An estimator: ``fit(df, features=..., label=...)`` returns a :class:`Model`."""

    prediction_col: str = "prediction"

    def _stage_for(self, features: Sequence[str] | None, label: str | None) -> _kiln.Stage:
        return self._native_stage(
            features=list(features) if features is not None else None,
            label=label,
            prediction_col=self.prediction_col,
        )

    def fit(
        self, df: DataFrame, features: Sequence[str] | None = None, label: str | None = None
    ) -> Any:
        """Trains on ``df``: ``features`` (default: every numeric column but the label) and
        ``label`` (default ``label``; supervised estimators only)."""
        fitted = self._stage_for(features, label).fit(df._native)
        return self._model(fitted.model(), df.session)

    def _model(self, native: Any, session: Session) -> Model:
        return _wrap_model(native, session, self.prediction_col)


class KMeans(_Estimator):
    """k-means clustering (Lloyd's iterations on the cached input).

    ``init`` is ``"k-means||"`` (default, Spark's), ``"random"``, or the initial centres as an
    array of shape ``(n_clusters, n_features)``. ``tol`` stops when no centre moves more than
    it (Spark's rule); ``tol=0`` runs ``max_iter`` iterations unless the centres stop moving.
    """

    _kind = "kmeans"

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
        self, df: DataFrame, features: Sequence[str] | None = None, label: str | None = None
    ) -> KMeansModel:
        """Clusters ``df``'s ``features`` (default: every numeric column)."""
        if label is not None:
            raise ParameterError("KMeans is unsupervised: it takes no label")
        return super().fit(df, features, None)


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
    ``standardization=True`` penalizes standardized coefficients (Spark's default)."""

    _kind = "linear_regression"

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
    ) -> None:
        self._keep(locals())

    def _params(self) -> dict[str, Any]:
        p = self._linear_params()
        p.update(reg_param=float(self.alpha), elastic_net_param=float(self.l1_ratio))
        return p


class LogisticRegression(_Linear):
    """Binary or multinomial logistic regression with scikit-learn's objective:
    ``C · Σ loss + penalty`` with ``penalty`` ``"l2"`` (default), ``"l1"``, ``"elasticnet"``
    (mixing ``l1_ratio``) or ``None``. ``family``: ``"auto"`` (binomial for labels {0, 1},
    multinomial otherwise), ``"binomial"`` or ``"multinomial"``. Solvers: ``lbfgs``
    (default; OWL-QN with an L1 part) and ``sgd``."""

    _kind = "logistic_regression"

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

    def __repr__(self) -> str:
        return f"kiln.ml.FeatureModel({self._kind}, {self._attributes})"


class _Transformer(_Stage):
    """A feature transformer: ``fit(df)`` returns a :class:`FeatureModel`."""

    def fit(self, df: DataFrame) -> FeatureModel:
        """Computes the statistics in one pass over ``df``."""
        return FeatureModel(self._native_stage().fit(df._native), self._kind)

    def fit_transform(self, df: DataFrame) -> DataFrame:
        """``fit(df).transform(df)``."""
        return self.fit(df).transform(df)


def _io(input_cols: Sequence[str] | str | None, output: str | None) -> dict[str, Any]:
    if isinstance(input_cols, str):
        return {"input": input_cols, "output": output}
    return {"input_cols": list(input_cols) if input_cols is not None else None, "output": output}


class StandardScaler(_Transformer):
    """``(x - mean) / std`` per column (the sample standard deviation, as Spark).
    ``input_cols``: columns, or a feature group name (default: the group ``features`` a
    :class:`VectorAssembler` made); ``output``: a new group ``{output}_{column}`` instead of
    replacing the inputs."""

    _kind = "standard_scaler"

    def __init__(
        self,
        input_cols: Sequence[str] | str | None = None,
        *,
        output: str | None = None,
        with_mean: bool = True,
        with_std: bool = True,
    ) -> None:
        self._keep(locals())

    def _params(self) -> dict[str, Any]:
        return {**_io(self.input_cols, self.output), "with_mean": self.with_mean, "with_std": self.with_std}


class MinMaxScaler(_Transformer):
    """Rescales each column to ``feature_range`` (default ``(0, 1)``)."""

    _kind = "min_max_scaler"

    def __init__(
        self,
        input_cols: Sequence[str] | str | None = None,
        *,
        output: str | None = None,
        feature_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self._keep(locals())

    def _params(self) -> dict[str, Any]:
        lo, hi = self.feature_range
        return {**_io(self.input_cols, self.output), "min": float(lo), "max": float(hi)}


class Imputer(_Transformer):
    """Replaces missing values (null, NaN, or ``missing_values``) by the column's
    ``strategy``: ``mean`` (default), ``median`` or ``most_frequent``."""

    _kind = "imputer"

    def __init__(
        self,
        input_cols: Sequence[str],
        *,
        strategy: str = "mean",
        missing_values: float | None = None,
        output: str | None = None,
    ) -> None:
        self._keep(locals())

    def _params(self) -> dict[str, Any]:
        return {
            "input_cols": list(self.input_cols),
            "strategy": self.strategy,
            "missing_value": self.missing_values,
            "output": self.output,
        }


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
        return dict(self._init_params)


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
        return dict(self._init_params)


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
