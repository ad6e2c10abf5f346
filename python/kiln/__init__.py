"""Kiln from Python: one engine from SQL to a trained model, on Arrow.

>>> import kiln
>>> session = kiln.Session.local()
>>> df = session.sql("SELECT 1 AS x")
>>> df.to_arrow().to_pydict()
{'x': [1]}

:class:`Session` runs queries (SQL or the DataFrame methods) and training on its executors;
:class:`DataFrame` is a lazy query whose results cross into pyarrow, pandas and polars
without copying (the Arrow PyCapsule interface); :mod:`kiln.ml` has the estimators. Every
call that runs the engine releases the GIL, shows progress on a terminal and is cancelled by
Ctrl-C (``KeyboardInterrupt``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
from typing import Any, Mapping, Sequence

import pyarrow as pa

from kiln import _kiln
from kiln.errors import (
    ExecutionError,
    KilnError,
    KilnIOError,
    NotFittedError,
    ParameterError,
    PlanningError,
)
from kiln.progress import ConsoleProgress, ProgressCallback

__version__: str = _kiln.__version__

_DEFAULT_PROGRESS: Any = object()
_default_session: "Session | None" = None


def _executor_command() -> str | None:
    """The ``kiln`` command this package installed, which local clusters start as executors."""
    name = "kiln.exe" if sys.platform == "win32" else "kiln"
    beside = os.path.join(sysconfig.get_path("scripts"), name)
    if os.path.isfile(beside):
        return beside
    return shutil.which("kiln")


def _tls_settings(cert: Any, key: Any, ca: Any, client_ca: Any) -> dict[str, str]:
    """The ``kiln.cluster.tls_*`` settings of the TLS arguments that were given."""
    given = {
        "kiln.cluster.tls_cert": cert,
        "kiln.cluster.tls_key": key,
        "kiln.cluster.tls_ca": ca,
        "kiln.cluster.tls_client_ca": client_ca,
    }
    return {k: os.fspath(v) for k, v in given.items() if v is not None}


class EventStream:
    """A session's events since :meth:`Session.events` made the stream."""

    def __init__(self, native: Any) -> None:
        self._native = native

    def poll(self) -> list[dict[str, Any]]:
        """The events received since the last call, oldest first."""
        return [json.loads(e) for e in self._native.poll()]


class Session:
    """A Kiln session: the engine, its executors, its tables and its models.

    Build one with :meth:`local` (executors in this process, the default),
    :meth:`local_cluster` (executors in separate processes on this machine) or
    :meth:`listen` (a driver that executors on other machines join). Settings come from
    Kiln's defaults, the config file (``config=``, ``$KILN_CONFIG`` or
    ``~/.config/kiln/kiln.conf``), ``KILN_*`` environment variables and ``settings``, in that
    order; see ``SHOW ALL`` in the SQL shell for the list.
    """

    def __init__(self, native: _kiln.Session, progress: ProgressCallback | None = None) -> None:
        self._native = native
        self.progress = progress

    # -- construction -------------------------------------------------------------------

    @classmethod
    def _build(
        cls,
        mode: str,
        executors: int | None,
        slots_per_executor: int | None,
        models_dir: str | None,
        config: str | os.PathLike[str] | None,
        settings: Mapping[str, Any] | None,
        progress: Any,
        extra: Mapping[str, str] | None = None,
        on_listen: Any = None,
    ) -> "Session":
        pairs: list[tuple[str, str]] = [("kiln.mode", mode)]
        if executors is not None:
            pairs.append(("kiln.executors", str(executors)))
        if slots_per_executor is not None:
            pairs.append(("kiln.slots_per_executor", str(slots_per_executor)))
        if models_dir is not None:
            pairs.append(("kiln.models_dir", str(models_dir)))
        for key, value in (extra or {}).items():
            pairs.append((key, value))
        for key, value in (settings or {}).items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            pairs.append((key, str(value)))
        if mode != "embedded" and "KILN_EXECUTOR_BIN" not in os.environ:
            command = _executor_command()
            if command is not None:
                os.environ["KILN_EXECUTOR_BIN"] = command
        native = _kiln.Session.build(
            pairs, os.fspath(config) if config is not None else None, on_listen
        )
        if progress is _DEFAULT_PROGRESS:
            progress = ConsoleProgress()
        return cls(native, progress)

    @classmethod
    def local(
        cls,
        executors: int | None = None,
        *,
        slots_per_executor: int | None = None,
        models_dir: str | None = None,
        config: str | os.PathLike[str] | None = None,
        settings: Mapping[str, Any] | None = None,
        progress: ProgressCallback | None = _DEFAULT_PROGRESS,
    ) -> "Session":
        """An embedded session: ``executors`` in-process executors (default 2), starting in
        milliseconds. ``progress`` is called with progress events (default: a line on a
        terminal; ``None`` for none)."""
        return cls._build(
            "embedded", executors, slots_per_executor, models_dir, config, settings, progress
        )

    @classmethod
    def local_cluster(
        cls,
        executors: int = 2,
        *,
        slots_per_executor: int | None = None,
        models_dir: str | None = None,
        config: str | os.PathLike[str] | None = None,
        settings: Mapping[str, Any] | None = None,
        progress: ProgressCallback | None = _DEFAULT_PROGRESS,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_client_ca: str | os.PathLike[str] | None = None,
    ) -> "Session":
        """A driver with ``executors`` executor processes on this machine (the ``kiln``
        command this package installed, or ``$KILN_EXECUTOR_BIN``), talking gRPC over
        loopback; they stop with the session. The ``tls_*`` paths turn on TLS as for
        :meth:`listen` (the children present the driver's certificate under mutual TLS)."""
        return cls._build(
            "local_cluster",
            executors,
            slots_per_executor,
            models_dir,
            config,
            settings,
            progress,
            _tls_settings(tls_cert, tls_key, tls_ca, tls_client_ca),
        )

    @classmethod
    def listen(
        cls,
        address: str,
        executors: int,
        *,
        on_listen: Any = None,
        auth_token: str | None = None,
        models_dir: str | None = None,
        config: str | os.PathLike[str] | None = None,
        settings: Mapping[str, Any] | None = None,
        progress: ProgressCallback | None = _DEFAULT_PROGRESS,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_client_ca: str | os.PathLike[str] | None = None,
    ) -> "Session":
        """A driver listening on ``address`` (``"0.0.0.0:7077"``; port 0 picks one) that
        returns once ``executors`` executors joined (``kiln executor --driver URL`` on each
        machine). ``on_listen(address)`` is called when it listens, before waiting.

        TLS: ``tls_cert`` and ``tls_key`` (PEM) are what the driver serves with and
        ``tls_ca`` the authority that signed them; executors then dial ``https://`` with
        ``--tls-ca``. With ``tls_client_ca`` too (mutual TLS), an executor must present a
        certificate that authority signed (``kiln executor --tls-cert PEM --tls-key PEM``).
        The same as the ``kiln.cluster.tls_*`` settings."""
        extra = {"kiln.cluster.listen": address}
        if auth_token is not None:
            extra["kiln.auth_token"] = auth_token
        extra.update(_tls_settings(tls_cert, tls_key, tls_ca, tls_client_ca))
        return cls._build(
            "cluster", executors, None, models_dir, config, settings, progress, extra, on_listen
        )

    @classmethod
    def default(cls) -> "Session":
        """The process's shared embedded session, built on first use."""
        global _default_session
        if _default_session is None:
            _default_session = cls.local()
        return _default_session

    # -- facts --------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The session's id."""
        return self._native.id

    @property
    def executor_count(self) -> int:
        """Executors that have joined."""
        return self._native.executor_count

    @property
    def executors(self) -> list[dict]:
        """The executors that joined, in joining order, lost ones included: each a dict of
        ``id``, ``slots`` and ``alive``. Executors may join a running session (``kiln executor
        --driver``); a restarted one joins again under its name."""
        return [
            {"id": name, "slots": slots, "alive": alive}
            for name, slots, alive in self._native.executors
        ]

    def events(self) -> "EventStream":
        """The session's events from now on: ``stream.poll()`` returns those received since
        the last call, each a dict tagged by ``"event"`` (``job_started``, ``stage_submitted``,
        ``task_finished``, ``executor_lost``, ``fit_iteration``, ... as in the event log)."""
        return EventStream(self._native.events())

    @property
    def ui_url(self) -> str | None:
        """The web UI's address (``http://127.0.0.1:4040/``) when the session serves one:
        build it with ``settings={"kiln.ui.port": 0}`` (any free port) or a port number.
        ``/metrics`` there is the session in Prometheus' text format."""
        return self._native.ui_url

    @property
    def executor_pids(self) -> list[int]:
        """Process ids of the executors a local cluster started."""
        return self._native.executor_pids

    @property
    def driver_address(self) -> str | None:
        """The address executors connect to, in cluster modes."""
        return self._native.driver_address

    @property
    def progress(self) -> ProgressCallback | None:
        """The progress callback (see :mod:`kiln.progress`); ``None`` for none."""
        return self._progress

    @progress.setter
    def progress(self, callback: ProgressCallback | None) -> None:
        self._progress = callback
        self._native.set_progress(callback)

    def metrics(self) -> dict[str, int]:
        """The session's counters: kernel rounds, partitions reloaded, executors lost,
        task retries, stages and tasks planned and finished, bytes shuffled."""
        return dict(self._native.metrics())

    def remove_orphans(self) -> dict[str, Any]:
        """Removes what killed sessions left under this session's shuffle and cache roots:
        the prefixes of sessions whose lease expired more than ``kiln.orphan_ttl_secs`` ago.
        Live sessions are never touched; every session makes this pass when it starts, and
        ``kiln gc`` runs it from the command line. Returns ``{"prefixes": [...], "objects": n}``.
        """
        prefixes, objects = self._native.remove_orphans()
        return {"prefixes": prefixes, "objects": objects}

    def settings(self) -> dict[str, dict[str, str]]:
        """Every setting: ``{name: {"value", "source", "description"}}``, secrets redacted."""
        return {
            name: {"value": value, "source": source, "description": description}
            for name, value, source, description in self._native.settings()
        }

    def set(self, key: str, value: Any) -> None:
        """Changes a setting of the running session, as SQL's ``SET key = value``."""
        if isinstance(value, bool):
            value = "true" if value else "false"
        self._native.set(key, str(value))

    # -- data ---------------------------------------------------------------------------

    def _df(self, native: _kiln.DataFrame) -> "DataFrame":
        return DataFrame(native, self)

    def sql(self, query: str) -> "DataFrame":
        """Runs one Kiln SQL statement: queries return a lazy DataFrame; ``CREATE MODEL``,
        ``TRAIN``, ``SET`` and DDL run now and return their result rows."""
        return self._df(self._native.sql(query))

    def read_parquet(self, path: str) -> "DataFrame":
        """Parquet files: a file, a directory or an object-store URL (``s3://...``)."""
        return self._df(self._native.read_parquet(os.fspath(path)))

    def read_csv(
        self,
        path: str,
        *,
        has_header: bool = True,
        delimiter: str = ",",
        mode: str = "permissive",
        file_extension: str | None = None,
    ) -> "DataFrame":
        """CSV files. ``mode`` is ``permissive`` (bad fields become null),
        ``drop_malformed`` or ``fail_fast`` (an error naming the file and line)."""
        return self._df(
            self._native.read_csv(os.fspath(path), has_header, delimiter, mode, file_extension)
        )

    def read_json(self, path: str) -> "DataFrame":
        """Newline-delimited JSON files."""
        return self._df(self._native.read_json(os.fspath(path)))

    def create_dataframe(self, data: Any) -> "DataFrame":
        """A DataFrame over in-memory data: a pyarrow Table, RecordBatch or
        RecordBatchReader, a pandas or polars DataFrame, any object with
        ``__arrow_c_stream__``, or a dict of columns. Arrow buffers are shared, not copied."""
        return self._df(self._native.create_dataframe(_arrow_stream(data)))

    def register(self, name: str, data: Any) -> None:
        """Makes a DataFrame (or any data :meth:`create_dataframe` takes) a table for SQL."""
        df = data if isinstance(data, DataFrame) else self.create_dataframe(data)
        self._native.register(name, df._native)

    def table(self, name: str) -> "DataFrame":
        """A registered table."""
        return self._df(self._native.table(name))

    # -- models -------------------------------------------------------------------------

    def register_model(self, name: str, model: Any) -> None:
        """Makes a trained model callable as ``predict('name', ...)`` in SQL."""
        self._native.register_model(name, model._native)

    def model(self, name: str) -> Any:
        """A registered model (``None`` if there is none of that name)."""
        from kiln import ml

        native = self._native.model(name)
        return None if native is None else ml._wrap_model(native, self)

    def model_names(self) -> list[str]:
        """Names of the registered models."""
        return self._native.model_names()

    def load_model(self, path: str) -> Any:
        """Reads a model directory written by any Kiln front door (Rust, SQL or Python)."""
        from kiln import ml

        return ml._wrap_model(self._native.load_model(os.fspath(path)), self)

    def __repr__(self) -> str:
        return f"kiln.Session(id={self.id!r}, executors={self.executor_count})"


def _arrow_stream(data: Any) -> Any:
    """Something with ``__arrow_c_stream__`` for ``data``."""
    if isinstance(data, DataFrame):
        return data
    module = type(data).__module__
    if module.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if hasattr(data, "__arrow_c_stream__"):
        return data
    if isinstance(data, Mapping):
        return pa.table(dict(data))
    if isinstance(data, list) and all(isinstance(r, Mapping) for r in data):
        return pa.Table.from_pylist(data)
    raise TypeError(
        "create_dataframe takes a pyarrow Table/RecordBatch/RecordBatchReader, a pandas or "
        f"polars DataFrame, an object with __arrow_c_stream__, or a dict of columns; got {module}."
        f"{type(data).__name__}"
    )


def _sort_key(key: str, ascending: bool) -> tuple[str, bool, bool]:
    """``"x DESC NULLS FIRST"`` as ``(expr, ascending, nulls_first)``."""
    words = key.split()
    asc = ascending
    nulls_first: bool | None = None
    upper = [w.upper() for w in words]
    if len(words) >= 3 and upper[-2] == "NULLS" and upper[-1] in ("FIRST", "LAST"):
        nulls_first = upper[-1] == "FIRST"
        words, upper = words[:-2], upper[:-2]
    if len(words) >= 2 and upper[-1] in ("ASC", "DESC"):
        asc = upper[-1] == "ASC"
        words = words[:-1]
    if nulls_first is None:
        nulls_first = not asc  # SQL's default: nulls are largest
    return " ".join(words), asc, nulls_first


class DataFrame:
    """A lazy query of a :class:`Session`. Transformations build a plan; :meth:`collect`,
    :meth:`to_arrow`, :meth:`to_pandas`, :meth:`to_polars`, :meth:`count`, :meth:`show` and
    the writers run it. Expressions are SQL text: ``df.select("a", "b * 2 AS c")``."""

    def __init__(self, native: _kiln.DataFrame, session: Session) -> None:
        self._native = native
        self._session = session

    def _wrap(self, native: _kiln.DataFrame) -> "DataFrame":
        return DataFrame(native, self._session)

    @property
    def session(self) -> Session:
        """The session the DataFrame runs in."""
        return self._session

    @property
    def schema(self) -> pa.Schema:
        """The output schema."""
        return pa.RecordBatchReader.from_stream(self._native.schema()).schema

    @property
    def columns(self) -> list[str]:
        """The column names, in order."""
        return self._native.columns()

    # -- transformations ----------------------------------------------------------------

    def select(self, *exprs: str) -> "DataFrame":
        """Keeps these expressions: column names or SQL (``"a + b AS c"``)."""
        return self._wrap(self._native.select(list(exprs)))

    def filter(self, predicate: str) -> "DataFrame":
        """Keeps the rows where ``predicate`` (SQL) is true."""
        return self._wrap(self._native.filter(predicate))

    where = filter

    def with_column(self, name: str, expr: str) -> "DataFrame":
        """Adds (or replaces) column ``name`` computed by ``expr``."""
        return self._wrap(self._native.with_column(name, expr))

    def with_column_renamed(self, old: str, new: str) -> "DataFrame":
        """Renames a column."""
        return self._wrap(self._native.with_column_renamed(old, new))

    def drop(self, *columns: str) -> "DataFrame":
        """Drops columns."""
        return self._wrap(self._native.drop(list(columns)))

    def join(
        self,
        other: "DataFrame",
        on: str | Sequence[str] | None = None,
        how: str = "inner",
        *,
        left_on: str | Sequence[str] | None = None,
        right_on: str | Sequence[str] | None = None,
    ) -> "DataFrame":
        """Joins on equal keys: ``on`` names columns of both sides, or ``left_on`` /
        ``right_on`` pair them. ``how``: inner, left, right, full, semi or anti."""

        def names(x: str | Sequence[str] | None) -> list[str]:
            if x is None:
                return []
            return [x] if isinstance(x, str) else list(x)

        if on is not None:
            return self._join_on(other, names(on), how)
        left, right = names(left_on), names(right_on)
        if not left or len(left) != len(right):
            raise ParameterError("join needs `on`, or `left_on` and `right_on` of equal length")
        return self._wrap(self._native.join(other._native, how, left, right))

    def _join_on(self, other: "DataFrame", keys: list[str], how: str) -> "DataFrame":
        """A join on same-named keys that keeps one column per key (as Spark's and pandas'
        ``on``): the left one, the right one for a right join, and their coalesce for a full
        join."""
        if not keys:
            raise ParameterError("join needs at least one key in `on`")
        hidden = {k: f"__kiln_right_{k}" for k in keys}
        right = other._native
        for k, h in hidden.items():
            right = right.with_column_renamed(k, h)
        joined = self._native.join(right, how, keys, [hidden[k] for k in keys])
        if how in ("semi", "left_semi", "anti", "left_anti"):
            return self._wrap(joined)
        for k, h in hidden.items():
            if how == "right":
                joined = joined.with_column(k, f'"{h}"')
            elif how in ("full", "outer"):
                joined = joined.with_column(k, f'coalesce("{k}", "{h}")')
        return self._wrap(joined.drop(list(hidden.values())))

    def group_by(self, *keys: str) -> "GroupedData":
        """Groups by ``keys``; aggregate with :meth:`GroupedData.agg`."""
        return GroupedData(self, list(keys))

    def sort(self, *keys: str, ascending: bool = True) -> "DataFrame":
        """Sorts by ``keys``; each may end with ``ASC``/``DESC`` and ``NULLS FIRST``/``LAST``."""
        return self._wrap(self._native.sort([_sort_key(k, ascending) for k in keys]))

    order_by = sort

    def limit(self, n: int) -> "DataFrame":
        """At most ``n`` rows."""
        return self._wrap(self._native.limit(n))

    def distinct(self) -> "DataFrame":
        """Distinct rows."""
        return self._wrap(self._native.distinct())

    def union(self, other: "DataFrame") -> "DataFrame":
        """The rows of both (``UNION ALL``); columns match by position."""
        return self._wrap(self._native.union(other._native))

    def sample(self, fraction: float, seed: int = 0) -> "DataFrame":
        """About ``fraction`` of the rows, chosen by ``seed`` and the rows' values: the same
        rows whatever the number of executors."""
        return self._wrap(self._native.sample(fraction, seed))

    def random_split(self, weights: Sequence[float], seed: int = 0) -> list["DataFrame"]:
        """Splits the rows in proportion to ``weights`` (seeded, as :meth:`sample`)."""
        return [self._wrap(d) for d in self._native.random_split(list(weights), seed)]

    def predict(
        self, model: Any, output: str = "prediction", *, probability: bool = False
    ) -> "DataFrame":
        """Adds column ``output`` with ``model``'s prediction (a model object or the name of
        a registered model); with ``probability=True`` the class probabilities instead."""
        name = model if isinstance(model, str) else model._registered_in(self._session)
        return self._wrap(self._native.predict(name, output, probability))

    # -- caching ------------------------------------------------------------------------

    def persist(self, precision: str = "f64") -> "DataFrame":
        """Computes the rows once and caches them on the executors (dense ``f64`` or
        ``f32``, and in the cache store); later queries and fits read the cache."""
        return self._wrap(self._native.persist(precision))

    def cache(self) -> "DataFrame":
        """:meth:`persist` with ``f64``."""
        return self.persist("f64")

    def unpersist(self) -> None:
        """Frees the cache, in memory and in the store."""
        self._native.unpersist()

    @property
    def is_persisted(self) -> bool:
        """Whether the rows are cached."""
        return self._native.is_persisted()

    # -- results ------------------------------------------------------------------------

    def _result(self) -> Any:
        return self._native.collect()

    def collect(self) -> list[pa.RecordBatch]:
        """Runs the query: its record batches."""
        return self.to_arrow().to_batches()

    def to_arrow(self) -> pa.Table:
        """Runs the query: a pyarrow Table sharing Kiln's buffers."""
        return pa.RecordBatchReader.from_stream(self._result()).read_all()

    def to_pandas(self) -> Any:
        """Runs the query: a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        """Runs the query: a polars DataFrame (over the same Arrow buffers where polars can)."""
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    def to_pylist(self) -> list[dict[str, Any]]:
        """Runs the query: one dict per row."""
        return self.to_arrow().to_pylist()

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The Arrow PyCapsule stream of the query's result (runs it): how pyarrow
        (``pa.table(df)``), polars (``pl.DataFrame(df)``) and others read a DataFrame."""
        return self._result().__arrow_c_stream__(requested_schema)

    def count(self) -> int:
        """Number of rows."""
        return self._native.count()

    def show(self, n: int = 20) -> None:
        """Prints up to ``n`` rows as a table."""
        print(self._native.show_string(n))

    def explain(self) -> str:
        """The logical plan, the physical plan and the stages (with training stages)."""
        return self._native.explain()

    def write_parquet(self, path: str) -> int:
        """Writes Parquet files under ``path``; returns the rows written."""
        return self._native.write_parquet(os.fspath(path))

    def write_csv(self, path: str) -> int:
        """Writes CSV files (with a header) under ``path``; returns the rows written."""
        return self._native.write_csv(os.fspath(path))

    # -- notebooks ----------------------------------------------------------------------

    def __repr__(self) -> str:
        fields = ", ".join(f"{f.name}: {f.type}" for f in self.schema)
        return f"kiln.DataFrame[{fields}]"

    def _repr_html_(self) -> str:
        import html

        table = self.limit(11).to_arrow()
        names = table.column_names
        rows = table.slice(0, 10).to_pylist()
        head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(r[n]))}</td>" for n in names) + "</tr>"
            for r in rows
        )
        more = "<p>showing the first 10 rows</p>" if table.num_rows > 10 else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


class GroupedData:
    """A DataFrame grouped by keys (from :meth:`DataFrame.group_by`)."""

    def __init__(self, df: DataFrame, keys: list[str]) -> None:
        self._df = df
        self._keys = keys

    def agg(self, *aggs: str) -> DataFrame:
        """One row per group: the keys and ``aggs`` (``"sum(x) AS total"``, ``"count(*)"``)."""
        return self._df._wrap(self._df._native.aggregate(self._keys, list(aggs)))


def sql(query: str) -> DataFrame:
    """Runs ``query`` in the :meth:`Session.default` session."""
    return Session.default().sql(query)


__all__ = [
    "Session",
    "EventStream",
    "DataFrame",
    "GroupedData",
    "KilnError",
    "PlanningError",
    "ExecutionError",
    "ParameterError",
    "KilnIOError",
    "NotFittedError",
    "ConsoleProgress",
    "sql",
    "__version__",
    "ml",
]

# `import kiln` makes `kiln.ml` reachable; kiln.ml imports Session and DataFrame from above.
from kiln import ml  # noqa: E402
