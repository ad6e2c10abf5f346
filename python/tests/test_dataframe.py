"""DataFrames from Python: round trips with pyarrow, pandas and polars (zero-copy where the
Arrow PyCapsule interface allows), transformations, files, notebook display."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import kiln
from kiln import _kiln


def data_buffer_address(table: pa.Table, column: str) -> int:
    chunks = table.column(column).chunks
    assert len(chunks) == 1
    return chunks[0].buffers()[1].address


def test_pyarrow_round_trip(session: kiln.Session) -> None:
    table = pa.table({"x": pa.array(range(1000), pa.int64()), "y": [float(i) / 3 for i in range(1000)]})
    assert session.create_dataframe(table).to_arrow().equals(table)


def test_the_boundary_shares_buffers_both_ways() -> None:
    # Into Rust through __arrow_c_stream__ and back out through Kiln's own capsule: the
    # very buffers pyarrow allocated, never copied. (A query in between runs on executors,
    # which own their inputs and outputs; only the crossing itself is measured here.)
    table = pa.table({"x": pa.array(range(1000), pa.int64()), "y": [float(i) / 3 for i in range(1000)]})
    held = _kiln.Batches.from_stream(table)
    out = pa.table(held)
    assert out.equals(table)
    assert data_buffer_address(out, "x") == data_buffer_address(table, "x")
    assert data_buffer_address(out, "y") == data_buffer_address(table, "y")
    # polars hands its buffers over the same way.
    frame = pl.DataFrame({"v": [1.0, 2.0, 3.0]})
    back = pl.DataFrame(_kiln.Batches.from_stream(frame))
    assert back.equals(frame)


def test_a_result_read_twice_through_the_capsule_is_the_same_memory(session: kiln.Session) -> None:
    df = session.create_dataframe({"v": [1.5, 2.5, 3.5]}).select("v * 2 AS w")
    result = df._result()
    a = pa.RecordBatchReader.from_stream(result).read_all()
    b = pa.RecordBatchReader.from_stream(result).read_all()
    assert a.column("w").to_pylist() == [3.0, 5.0, 7.0]
    assert data_buffer_address(a, "w") == data_buffer_address(b, "w")


def test_pandas_round_trip(session: kiln.Session) -> None:
    frame = pd.DataFrame({"name": ["a", "b", "c"], "score": [1.0, None, 3.0], "n": [1, 2, 3]})
    df = session.create_dataframe(frame)
    back = df.sort("n").to_pandas()
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


def test_polars_round_trip_both_ways(session: kiln.Session) -> None:
    frame = pl.DataFrame({"k": ["x", "y", "x"], "v": [1, 2, 3]})
    df = session.create_dataframe(frame)  # through polars' __arrow_c_stream__
    out = df.group_by("k").agg("sum(v) AS total").sort("k").to_polars()
    assert out.to_dicts() == [{"k": "x", "total": 4}, {"k": "y", "total": 2}]
    # polars reads a Kiln DataFrame directly through the capsule interface too.
    assert pl.DataFrame(df).shape == (3, 2)


def test_any_arrow_stream_producer_is_accepted(session: kiln.Session) -> None:
    table = pa.table({"a": [1, 2, 3]})
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    assert session.create_dataframe(reader).count() == 3
    assert session.create_dataframe(table.to_batches()[0]).count() == 3
    assert session.create_dataframe([{"a": 1}, {"a": 2}]).count() == 2
    # pyarrow consumes a DataFrame through __arrow_c_stream__.
    assert pa.table(session.create_dataframe(table)).equals(table)


def test_unsupported_input_is_a_type_error(session: kiln.Session) -> None:
    with pytest.raises(TypeError, match="create_dataframe takes"):
        session.create_dataframe(42)


def test_transformations_compose_as_in_rust(session: kiln.Session) -> None:
    orders = session.create_dataframe(
        {"id": [1, 2, 3, 4], "customer": [10, 10, 20, 30], "amount": [5.0, 7.0, 1.0, None]}
    )
    customers = session.create_dataframe({"customer": [10, 20], "name": ["ann", "bob"]})
    out = (
        orders.filter("amount IS NOT NULL")
        .with_column("double", "amount * 2")
        .join(customers, on="customer")
        .group_by("name")
        .agg("sum(double) AS total", "count(*) AS n")
        .sort("total DESC")
    )
    assert out.to_pylist() == [
        {"name": "ann", "total": 24.0, "n": 2},
        {"name": "bob", "total": 2.0, "n": 1},
    ]
    assert out.columns == ["name", "total", "n"]
    assert out.schema.field("total").type == pa.float64()
    left = orders.join(customers, on="customer", how="left")
    assert left.count() == 4 and left.columns == ["id", "customer", "amount", "name"]
    full = customers.join(orders.filter("customer > 10"), on="customer", how="full")
    assert sorted(r["customer"] for r in full.to_pylist()) == [10, 20, 30]
    assert orders.select("id").union(orders.select("id")).distinct().count() == 4
    assert orders.limit(2).count() == 2
    assert orders.drop("amount").with_column_renamed("id", "order_id").columns == [
        "order_id",
        "customer",
    ]
    assert [r["id"] for r in orders.sort("amount DESC NULLS FIRST", "id").to_pylist()] == [4, 2, 1, 3]


def test_sample_and_split_are_seeded(session: kiln.Session) -> None:
    df = session.sql("SELECT value AS v FROM generate_series(1, 2000)")
    a = df.sample(0.3, seed=7).to_arrow()
    b = df.sample(0.3, seed=7).to_arrow()
    assert a.equals(b) and 450 < a.num_rows < 750
    train, test = df.random_split([0.8, 0.2], seed=3)
    assert train.count() + test.count() == 2000


def test_files_round_trip(session: kiln.Session, tmp_path) -> None:
    df = session.create_dataframe({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert df.write_parquet(str(tmp_path / "p")) == 3
    assert session.read_parquet(str(tmp_path / "p")).sort("a").to_pylist() == df.to_pylist()
    assert df.write_csv(str(tmp_path / "c")) == 3
    back = session.read_csv(str(tmp_path / "c")).select("a", "b").sort("a").to_pylist()
    assert back == df.to_pylist()
    (tmp_path / "j.json").write_text('{"a": 1}\n{"a": 2}\n')
    assert session.read_json(str(tmp_path / "j.json")).count() == 2


def test_sql_tables_and_registration(session: kiln.Session) -> None:
    session.register("py_people", pa.table({"name": ["a", "b"], "age": [30, 40]}))
    assert session.sql("SELECT max(age) AS m FROM py_people").to_pylist() == [{"m": 40}]
    assert session.table("py_people").count() == 2


def test_repr_and_notebook_html(session: kiln.Session) -> None:
    df = session.create_dataframe({"a": list(range(12)), "b": ["<x>"] * 12})
    assert repr(df) == "kiln.DataFrame[a: int64, b: string]"
    html = df._repr_html_()
    assert html.count("<tr>") == 11  # header + 10 rows
    assert "&lt;x&gt;" in html and "first 10 rows" in html
    assert "Projection" in df.select("a").explain() or "projection" in df.select("a").explain().lower()


def test_persist_caches_and_unpersist_frees(session: kiln.Session) -> None:
    df = session.create_dataframe({"x": [1.0, 2.0, 3.0]})
    cached = df.persist()
    assert cached.is_persisted
    assert pc.sum(cached.to_arrow().column("x")).as_py() == 6.0
    cached.unpersist()


def test_insert_into_and_create_table_as(session: kiln.Session, tmp_path) -> None:
    session.sql("CREATE TABLE py_m (a INT)").collect()
    assert session.sql("INSERT INTO py_m VALUES (1), (2), (3)").to_arrow().to_pydict() == {"count": [3]}
    session.sql("CREATE TABLE py_c AS SELECT a * 10 AS b FROM py_m").collect()
    assert sorted(session.sql("SELECT b FROM py_c").to_arrow().column("b").to_pylist()) == [10, 20, 30]
    session.sql(
        f"CREATE EXTERNAL TABLE py_p (b INT) STORED AS PARQUET LOCATION '{tmp_path / 'p'}/'"
    ).collect()
    session.sql("INSERT INTO py_p SELECT b FROM py_c").collect()
    assert session.sql("SELECT sum(b) AS s FROM py_p").to_arrow().to_pydict() == {"s": [60]}
    assert all(p.name.startswith("part-") for p in (tmp_path / "p").iterdir())
