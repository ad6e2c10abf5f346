"""scikit-learn's conventions for :mod:`kiln.ml`: array-likes checked as scikit-learn checks
them and turned into the Arrow tables Kiln trains on, class labels encoded, feature names
kept and compared, and the estimator tags scikit-learn reads.

::

    X: NumPy, pandas, polars, pyarrow, __arrow_c_stream__
      ─ read_matrix, check_finite ─> Matrix(values, names)
    y ─ regression_target / class_labels ─> float64 (class codes 0..K-1, and classes_)
    Matrix + y ─ arrow_table ─> pyarrow.Table ─ Session.create_dataframe ─> the native fit

Error messages keep scikit-learn's wording where its checks (and users' habits) rely on it
(``Reshape your data``, ``X has 3 features, but ... is expecting 4``, ``Unknown label
type``) and add what Kiln knows (the row and column of a NaN). Nothing here imports
scikit-learn up front: only its tags and its ``DataConversionWarning`` need it, and only
scikit-learn asks for those.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc


def numpy() -> Any:
    """NumPy, which the array-like API needs (the DataFrame API does not)."""
    try:
        import numpy as np
    except ImportError as e:  # pragma: no cover - numpy ships with pandas and scikit-learn
        raise ImportError("kiln.ml's scikit-learn style API (fit(X, y)) needs numpy") from e
    return np


class Matrix(NamedTuple):
    """Features read from an array-like."""

    values: Any
    """``(n_samples, n_features)`` float64, column-major (each column one contiguous run,
    which pyarrow takes without copying)."""
    names: list[str] | None
    """The input's column names, when it had names and all were strings."""


def read_matrix(X: Any, who: str) -> Matrix:
    """``X`` as a 2-D float64 matrix with at least one row and one column, and its column
    names. Its values are checked by :func:`check_finite`, once the names are.

    # Errors
    ``TypeError`` for sparse matrices and for values that are not numbers; ``ValueError``
    for a wrong shape, non-numeric columns or complex numbers."""
    np = numpy()
    if _is_sparse(X):
        raise TypeError(
            f"{who} takes dense data, got a sparse matrix ({type(X).__name__}): pass "
            "X.toarray(), or densify the columns you need"
        )
    module = type(X).__module__
    if module.startswith("pandas") and hasattr(X, "columns") and hasattr(X, "dtypes"):
        names = string_names(list(X.columns))
        values = _pandas_values(X, who)
    elif (table := _arrow_table(X)) is not None:
        names = list(table.column_names)
        values = _arrow_values(table, who)
    else:
        names = None
        values = _array_values(X, who)
    n, d = values.shape
    if n == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={values.shape}) while a minimum of 1 is "
            f"required by {who}."
        )
    if d == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={values.shape}) while a minimum of 1 is "
            f"required by {who}."
        )
    return Matrix(np.asfortranarray(values), names)


def check_finite(matrix: Matrix, who: str, *, allow_nan: bool = False) -> None:
    """Fails on the first NaN (unless ``allow_nan``) or infinite value of ``matrix``.

    # Errors
    ``ValueError`` naming the row and the column."""
    np = numpy()
    values = matrix.values
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        what = "NaN" if np.isnan(values[i, j]) else "infinity"
        column = repr(matrix.names[j]) if matrix.names is not None else str(j)
        advice = (
            "infinite values cannot be imputed"
            if allow_nan
            else f"{who} needs finite values: impute missing ones first (kiln.ml.Imputer)"
        )
        raise ValueError(f"Input X contains {what} (row {i}, column {column}); {advice}")


def _is_sparse(X: Any) -> bool:
    return type(X).__module__.startswith("scipy.sparse") or hasattr(X, "tocsr")


def string_names(columns: list[Any]) -> list[str] | None:
    """The column names if all are strings, ``None`` if none is (scikit-learn's rule).

    # Errors
    ``TypeError`` when only some are strings: feature names would then be ambiguous."""
    kinds = {isinstance(c, str) for c in columns}
    if kinds == {True}:
        return [str(c) for c in columns]
    if kinds == {True, False}:
        types = sorted({type(c).__name__ for c in columns})
        raise TypeError(
            "Feature names are only supported if all input features have string names, but "
            f"your input has {types} as feature name / column name types. Convert them all "
            "to strings (X.columns = X.columns.astype(str)) to keep them, or all to another "
            "type to drop them."
        )
    return None


def _pandas_values(X: Any, who: str) -> Any:
    np = numpy()
    try:
        return X.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        for name in X.columns:
            try:
                X[name].to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{who} takes numeric features, but column {name!r} is "
                    f"{X[name].dtype}: encode it first"
                ) from None
        raise


def _arrow_table(X: Any) -> pa.Table | None:
    """``X`` as a pyarrow Table if it is Arrow tabular data (pyarrow, polars, anything with
    ``__arrow_c_stream__`` of a struct); ``None`` otherwise."""
    if isinstance(X, pa.Table):
        return X
    if isinstance(X, pa.RecordBatch):
        return pa.Table.from_batches([X])
    if not hasattr(X, "__arrow_c_stream__"):
        return None
    try:
        return pa.RecordBatchReader.from_stream(X).read_all()
    except (TypeError, ValueError, pa.ArrowException):
        return None  # a stream of plain arrays, not of rows: read it as an array


def _arrow_values(table: pa.Table, who: str) -> Any:
    np = numpy()
    out = np.empty((table.num_rows, table.num_columns), dtype=np.float64, order="F")
    for j, (name, column) in enumerate(zip(table.column_names, table.columns)):
        t = column.type
        if not (
            pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_boolean(t)
            or pa.types.is_decimal(t)
            or pa.types.is_null(t)
        ):
            raise ValueError(f"{who} takes numeric features, but column {name!r} is {t}")
        # Nulls become NaN: missing values, which only the Imputer accepts.
        out[:, j] = pc.cast(column, pa.float64()).to_numpy()
    return out


def _array_values(X: Any, who: str) -> Any:
    np = numpy()
    array = np.asarray(X)
    if array.ndim == 0:
        raise ValueError(
            f"Expected a 2-D array, got a scalar instead: {array!r}. {who} takes X of shape "
            "(n_samples, n_features)."
        )
    if array.ndim == 1:
        raise ValueError(
            f"Expected a 2-D array, got a 1-D array of shape {array.shape} instead. Reshape "
            "your data either using array.reshape(-1, 1) if your data has a single feature "
            "or array.reshape(1, -1) if it contains a single sample."
        )
    if array.ndim > 2:
        raise ValueError(
            f"Found array with dim {array.ndim}: {who} takes X of shape (n_samples, "
            "n_features)."
        )
    if array.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {who} takes real numbers.")
    if array.dtype.kind in "biuf":
        return array.astype(np.float64, order="F", copy=False)
    try:  # object and string arrays: numbers stored as objects or text
        return array.astype(np.float64, order="F")
    except ValueError as e:  # a TypeError (a dict, say) stays one: it is not a value at all
        raise ValueError(f"{who} takes numeric features: {e}") from None


def kiln_columns(names: list[str] | None, n_features: int) -> list[str]:
    """The column names Kiln trains on: the input's names when it had distinct ones, else
    ``x0``, ``x1``, ..."""
    if names is not None and len(set(names)) == n_features:
        return list(names)
    return [f"x{j}" for j in range(n_features)]


def free_name(base: str, taken: list[str]) -> str:
    """``base``, with underscores in front until no column in ``taken`` has that name."""
    name = base
    while name in taken:
        name = "_" + name
    return name


def arrow_table(values: Any, columns: list[str], extra: dict[str, Any] | None = None) -> pa.Table:
    """The features as named float64 columns (sharing ``values``' memory), plus ``extra``
    columns (the label)."""
    arrays = [pa.array(values[:, j]) for j in range(values.shape[1])]
    names = list(columns)
    for name, column in (extra or {}).items():
        arrays.append(pa.array(column))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def check_columns(who: str, matrix: Matrix, fitted_names: Any, n_features: int) -> None:
    """Fails unless ``matrix`` has the columns the estimator was fitted with: the same names
    in the same order when both have names (a warning when only one has), and as many.

    # Errors
    ``ValueError`` naming the unexpected and missing columns, or the counts."""
    fitted = list(fitted_names) if fitted_names is not None else None
    given = matrix.names
    if fitted is not None and given is not None and fitted != given:
        message = "The feature names should match those that were passed during fit.\n"
        unexpected = sorted(set(given) - set(fitted))
        missing = sorted(set(fitted) - set(given))
        if unexpected:
            message += "Feature names unseen at fit time:\n" + _bullets(unexpected)
        if missing:
            message += "Feature names seen at fit time, yet now missing:\n" + _bullets(missing)
        if not unexpected and not missing:
            message += "Feature names must be in the same order as they were in fit.\n"
        raise ValueError(message)
    if fitted is None and given is not None:
        warnings.warn(
            f"X has feature names, but {who} was fitted without feature names",
            UserWarning,
            stacklevel=3,
        )
    if fitted is not None and given is None:
        warnings.warn(
            f"X does not have valid feature names, but {who} was fitted with feature names",
            UserWarning,
            stacklevel=3,
        )
    d = matrix.values.shape[1]
    if d != n_features:
        raise ValueError(
            f"X has {d} features, but {who} is expecting {n_features} features as input."
        )


def _bullets(names: list[str], at_most: int = 5) -> str:
    lines = [f"- {n}\n" for n in names[:at_most]]
    if len(names) > at_most:
        lines.append("- ...\n")
    return "".join(lines)


# ---------------------------------------------------------------------------------------
# Targets


def _column(y: Any, n_samples: int, who: str) -> Any:
    np = numpy()
    if y is None:
        raise ValueError(f"{who} requires y to be passed, but the target y is None.")
    if isinstance(y, (pa.Array, pa.ChunkedArray)):
        y = y.to_numpy(zero_copy_only=False)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the "
            "shape of y to (n_samples,), for example using ravel().",
            _conversion_warning(),
            stacklevel=4,
        )
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(
            f"y should be a 1d array, got an array of shape {y.shape} instead: {who} "
            "predicts one target."
        )
    if len(y) != n_samples:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: X has "
            f"{n_samples} rows and y has {len(y)}."
        )
    return y


def _check_finite(y: Any) -> None:
    np = numpy()
    if not np.isfinite(y).all():
        i = int(np.argwhere(~np.isfinite(y))[0][0])
        what = "NaN" if np.isnan(y[i]) else "infinity"
        raise ValueError(f"Input y contains {what} (row {i}).")


def regression_target(y: Any, n_samples: int, who: str) -> Any:
    """``y`` as a finite float64 vector of ``n_samples`` values.

    # Errors
    ``ValueError``: ``y`` is missing, not 1-D, of another length, not numeric, or not
    finite."""
    np = numpy()
    y = _column(y, n_samples, who)
    try:
        y = y.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{who} needs a numeric target y: {e}") from None
    _check_finite(y)
    return y


def class_labels(y: Any, n_samples: int, who: str) -> tuple[Any, Any]:
    """``(classes_, codes)``: the sorted distinct labels of ``y`` (any type NumPy sorts:
    numbers, strings, booleans) and each row's index into them as float64, the label Kiln's
    logistic regression takes (0/1, or 0..K-1).

    # Errors
    ``ValueError``: as :func:`regression_target`; continuous values (``Unknown label
    type``); labels that cannot be compared; fewer than two classes."""
    np = numpy()
    y = _column(y, n_samples, who)
    if y.dtype.kind == "f":
        _check_finite(y)
        if (y != np.round(y)).any():
            raise ValueError(
                f"Unknown label type: continuous. {who} is a classifier: it expects discrete "
                "classes, and y holds continuous values (a regression target?)."
            )
    try:
        classes, codes = np.unique(y, return_inverse=True)
    except TypeError as e:
        raise ValueError(
            f"Unknown label type: {who} cannot order the labels of y ({e}); use labels of "
            "one type, all numbers or all strings."
        ) from None
    if len(classes) < 2:
        only = classes[0].item() if hasattr(classes[0], "item") else classes[0]
        raise ValueError(
            f"{who} needs samples of at least 2 classes in the data, but y holds only one "
            f"class: {only!r}."
        )
    return classes, codes.reshape(-1).astype(np.float64)


def class_codes(classes: Any, y: Any, n_samples: int, who: str) -> Any:
    """Each label of ``y`` as its index in ``classes`` (float64), ``-1`` for a label
    ``fit`` never saw (never predicted, so it counts as a miss)."""
    np = numpy()
    y = _column(y, n_samples, who)
    try:
        at = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
        seen = classes[at] == y
    except TypeError:  # labels of another type than the training ones: none was seen
        return np.full(len(y), -1.0)
    return np.where(seen, at, -1).astype(np.float64)


def _conversion_warning() -> type[Warning]:
    try:
        from sklearn.exceptions import DataConversionWarning
    except ImportError:
        return UserWarning
    return DataConversionWarning


# ---------------------------------------------------------------------------------------
# Tags


def tags(kind: str, *, allow_nan: bool = False) -> Any:
    """scikit-learn's ``Tags`` for a ``classifier``, ``regressor``, ``clusterer`` (which
    also transforms: distances to the centres) or ``transformer``."""
    from sklearn.utils import (
        ClassifierTags,
        InputTags,
        RegressorTags,
        Tags,
        TargetTags,
        TransformerTags,
    )

    return Tags(
        estimator_type=kind if kind != "transformer" else None,
        target_tags=TargetTags(required=kind in ("classifier", "regressor")),
        transformer_tags=TransformerTags() if kind in ("clusterer", "transformer") else None,
        classifier_tags=ClassifierTags() if kind == "classifier" else None,
        regressor_tags=RegressorTags() if kind == "regressor" else None,
        input_tags=InputTags(allow_nan=allow_nan),
    )
