"""The web UI and its /metrics from Python: the address a session serves, the metrics
parsed by Prometheus' own parser (``prometheus_client``) equal to ``Session.metrics()``, and
the training report from ``model.summary``, ``DESCRIBE MODEL`` and ``EXPLAIN ANALYZE TRAIN``.
(The pages in a real browser: ``tests/it/ui.rs`` with ``tests/python/browse_ui.py``.)"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pyarrow as pa
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import kiln
import kiln.ml as ml


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> kiln.Session:
    logs = tmp_path_factory.mktemp("events")
    return kiln.Session.local(
        2,
        slots_per_executor=1,
        progress=None,
        models_dir=str(tmp_path_factory.mktemp("models")),
        settings={"kiln.ui.port": 0, "kiln.eventlog.dir": str(logs)},
    )


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def points(session: kiln.Session) -> kiln.DataFrame:
    rng = np.random.default_rng(5)
    x = rng.normal(0, 3, size=(2000, 3))
    return session.create_dataframe(pa.table({f"f{j}": x[:, j] for j in range(3)}))


def test_a_session_serves_its_ui_only_when_asked(watched: kiln.Session, session: kiln.Session) -> None:
    assert session.ui_url is None
    url = watched.ui_url
    assert url is not None and url.startswith("http://127.0.0.1:")
    assert "Jobs" in fetch(url)


def test_metrics_parse_with_prometheus_and_match_the_counters(watched: kiln.Session) -> None:
    watched.sql(
        "SELECT value % 11 AS k, count(*) AS n FROM generate_series(1, 50000) GROUP BY 1"
    ).collect()
    ml.KMeans(3, max_iter=5, random_state=1).fit(points(watched))
    families = {f.name: f for f in text_string_to_metric_families(fetch(watched.ui_url + "metrics"))}
    counters = watched.metrics()

    def value(name: str, **labels: str) -> float:
        for sample in families[name].samples:
            if sample.name.endswith("_total") and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
        raise AssertionError(f"no sample of {name} {labels}")

    assert families["kiln_kernel_rounds"].type == "counter"
    assert value("kiln_kernel_rounds") == counters["kernel_rounds"] > 0
    assert value("kiln_shuffle_written_bytes") == counters["bytes_shuffled"] > 0
    assert value("kiln_executors_lost") == counters["executors_lost"] == 0
    assert value("kiln_tasks", outcome="succeeded") >= counters["tasks_finished"]
    assert families["kiln_task_duration_seconds"].type == "histogram"
    gauge = families["kiln_executors_registered"]
    assert gauge.type == "gauge" and gauge.samples[0].value == 2


def test_the_training_report_reaches_python_and_sql(watched: kiln.Session) -> None:
    model = ml.KMeans(4, max_iter=8, tol=0.0, random_state=3).fit(points(watched))
    report = model.summary["report"]
    assert report == model.report
    assert report["algorithm"] == "kmeans"
    assert report["iterations"] == 8
    assert report["rows"] == 2000
    assert 0 < report["utilization_pct"] <= 100
    assert report["compute_seconds"] + report["overhead_seconds"] == pytest.approx(
        report["training_seconds"], rel=0.10
    )
    assert set(report["rows_per_second"]) <= {"exec-0", "exec-1"}
    assert len(report["loss_curve"]) >= 8

    watched.register("pts", pa.table({"x": np.arange(300.0) % 7, "y": np.arange(300.0) % 5}))
    rows = watched.sql(
        "EXPLAIN ANALYZE TRAIN MODEL km USING kmeans (k = 3, seed = 1, max_iter = 4) AS SELECT x, y FROM pts"
    ).to_pylist()
    figures = {r["figure"]: r["value"] for r in rows}
    assert figures["algorithm"] == "kmeans"
    assert figures["communication overhead"].endswith("%")
    assert figures["utilization"].endswith("of 2 slots")
    described = {
        r["property"]: r["value"] for r in watched.sql("DESCRIBE MODEL km").to_pylist()
    }
    assert described["report: iterations"] == figures["iterations"]
    assert "report: training time" in described
    assert json.loads(described["summary"])["iterations"] >= 1


def test_events_reach_python(session: kiln.Session) -> None:
    stream = session.events()
    session.sql("SELECT value % 3 AS k, count(*) FROM generate_series(1, 3000) GROUP BY 1").collect()
    events = stream.poll()
    kinds = [e["event"] for e in events]
    assert kinds[0] == "job_started" and kinds[-1] == "job_finished", kinds
    started = events[0]
    assert started["description"].startswith("SELECT value % 3")
    tasks = [e for e in events if e["event"] == "task_finished"]
    assert tasks and all(t["failure"] is None for t in tasks)
    assert sum(1 for k in kinds if k == "stage_submitted") == started["stages"]
    assert stream.poll() == []
