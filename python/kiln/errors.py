"""Kiln's exceptions. Every error the engine reports is one of these, carrying its message."""


class KilnError(Exception):
    """Base class of every error Kiln raises."""


class PlanningError(KilnError):
    """A query could not be planned: SQL syntax, unknown tables or columns, type errors."""


class ExecutionError(KilnError):
    """A job failed while it ran: a task failed, executors were lost, a computation failed."""


class ParameterError(KilnError, ValueError):
    """A parameter or setting is out of range or unknown (``k must be >= 1, got 0``), or the
    data cannot be used as asked (a non-numeric feature column, an empty training set)."""


class KilnIOError(KilnError, OSError):
    """Reading or writing failed: a missing or malformed file, an object store error."""


class NotFittedError(KilnError, ValueError, AttributeError):
    """An estimator was asked to predict or transform before ``fit`` (a ``ValueError`` and an
    ``AttributeError``, as scikit-learn's ``NotFittedError``)."""


__all__ = [
    "KilnError",
    "PlanningError",
    "ExecutionError",
    "ParameterError",
    "KilnIOError",
    "NotFittedError",
]
