"""Kiln's errors as Python exceptions: the class says what kind, the message is Rust's."""

from __future__ import annotations

import pytest

import kiln
import kiln.ml


def test_the_hierarchy() -> None:
    for cls in (kiln.PlanningError, kiln.ExecutionError, kiln.ParameterError, kiln.KilnIOError):
        assert issubclass(cls, kiln.KilnError)
    assert issubclass(kiln.ParameterError, ValueError)
    assert issubclass(kiln.KilnIOError, OSError)


def test_planning_errors(session: kiln.Session) -> None:
    with pytest.raises(kiln.PlanningError, match="no_such_table"):
        session.sql("SELECT * FROM no_such_table")
    with pytest.raises(kiln.PlanningError):
        session.sql("SELEC 1")
    df = session.create_dataframe({"price": [1.0]})
    with pytest.raises(kiln.PlanningError, match="prise"):
        df.select("prise * 2").collect()


def test_parameter_errors_name_the_parameter(session: kiln.Session) -> None:
    df = session.create_dataframe({"x": [1.0, 2.0]})
    with pytest.raises(kiln.ParameterError, match="k must be >= 1, got 0"):
        kiln.ml.KMeans(0).fit(df)
    with pytest.raises(kiln.ParameterError, match="C must be > 0"):
        kiln.ml.LogisticRegression(C=-1.0).fit(df, label="x")
    with pytest.raises(kiln.ParameterError, match="kiln.no_such_setting"):
        session.set("kiln.no_such_setting", 1)
    with pytest.raises(kiln.ParameterError, match="delimiter"):
        session.read_csv("x.csv", delimiter=";;")
    with pytest.raises(kiln.ParameterError, match="solver"):
        kiln.ml.LinearRegression(solver="newton").fit(df, label="x")
    # Data the algorithm cannot take is named too.
    strings = session.create_dataframe({"s": ["a", "b"], "label": [0.0, 1.0]})
    with pytest.raises(kiln.ParameterError, match="s"):
        kiln.ml.LinearRegression().fit(strings, features=["s"])


def test_io_errors_name_the_path(session: kiln.Session, tmp_path) -> None:
    missing = str(tmp_path / "nothing.parquet")
    with pytest.raises(kiln.KilnIOError, match="nothing.parquet"):
        session.read_parquet(missing).collect()
    with pytest.raises(kiln.KilnIOError, match="no_model_here"):
        session.load_model(str(tmp_path / "no_model_here"))


def test_execution_errors(session: kiln.Session) -> None:
    df = session.create_dataframe({"a": [1, 2], "b": [1, 0]})
    with pytest.raises(kiln.ExecutionError, match="(?i)divide by zero"):
        df.select("a / b AS q").collect()


def test_bad_settings_fail_the_session_build() -> None:
    with pytest.raises(kiln.ParameterError, match="kiln.executors"):
        kiln.Session.local(settings={"kiln.executors": "many"}, progress=None)


def test_errors_raised_on_executors_keep_their_class(session: kiln.Session) -> None:
    # The null is found where the partition is cached, on an executor: still a ParameterError,
    # as the same check raises on the driver.
    df = session.sql(
        "SELECT CASE WHEN value = 7 THEN NULL ELSE CAST(value AS DOUBLE) END AS x,"
        " CAST(value % 2 AS DOUBLE) AS label FROM generate_series(1, 20)"
    )
    with pytest.raises(kiln.ParameterError, match="'x'"):
        kiln.ml.LinearRegression().fit(df)


def test_a_reader_crashing_on_a_corrupt_file_names_it(session: kiln.Session, tmp_path) -> None:
    path = tmp_path / "c.parquet"
    path.write_bytes(b"PAR1" + bytes(range(256)) * 20 + b"\xff\xff\xff\x7fPAR1")
    with pytest.raises(kiln.KilnIOError, match="c.parquet"):
        session.sql(f"CREATE EXTERNAL TABLE c STORED AS PARQUET LOCATION '{path}'")
    assert session.sql("SELECT 1 AS one").to_arrow().to_pydict() == {"one": [1]}
