"""How long calls behave from Python: Ctrl-C cancels the running job, progress reaches the
callback (and the terminal display degrades quietly elsewhere), local clusters use separate
processes and agree with the embedded engine, and ``python -m kiln`` is the Kiln shell."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

import kiln
import kiln.ml as ml
from kiln.progress import ConsoleProgress, format_event

# 400 million joined rows: about 20 s of work in a debug build, far longer than the
# interrupt may take to land.
ENDLESS = (
    "SELECT sum(a.value * b.value) AS s "
    "FROM generate_series(1, 20000) a, generate_series(1, 20000) b"
)


def interrupt_after(seconds: float) -> threading.Timer:
    import _thread

    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    return timer


def test_ctrl_c_cancels_the_running_job() -> None:
    session = kiln.Session.local(2, progress=None)
    before = session.metrics()
    started = time.monotonic()
    timer = interrupt_after(1.0)
    with pytest.raises(KeyboardInterrupt):
        session.sql(ENDLESS).collect()
    elapsed = time.monotonic() - started
    timer.cancel()
    assert elapsed < 10, f"the interrupt took {elapsed:.1f} s to land"
    # The job is cancelled: it never completes its tasks, and the session goes on. (Tasks
    # computing on an executor stop within a few batches; Rust's
    # `shuffle::a_cancelled_task_stops_computing_at_once` checks the CPU goes idle.)
    assert session.sql("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    after = session.metrics()
    assert after["tasks_finished"] - before["tasks_finished"] < (
        after["tasks_planned"] - before["tasks_planned"]
    )


def test_ctrl_c_cancels_a_fit() -> None:
    session = kiln.Session.local(2, progress=None)
    rng = np.random.default_rng(0)
    df = session.create_dataframe(pa.table({"a": rng.normal(size=20000), "b": rng.normal(size=20000)}))
    timer = interrupt_after(1.0)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        # tol = 0 on structureless data with many centres: thousands of rounds.
        ml.KMeans(64, max_iter=1_000_000, tol=0.0, init="random").fit(df)
    timer.cancel()
    assert time.monotonic() - started < 10
    assert session.sql("SELECT 2 AS two").to_pylist() == [{"two": 2}]


def test_progress_reaches_the_callback() -> None:
    events: list[dict] = []
    session = kiln.Session.local(2, progress=events.append)
    rows = session.sql(
        # Well over the 300 ms a call stays quiet, on a fast machine too.
        "SELECT sum(a.value + b.value) AS n FROM generate_series(1, 10000) a, generate_series(1, 10000) b"
    ).to_pylist()
    assert rows == [{"n": 10000 * 10000 * 10001}]
    assert events, "a call of more than 300 ms reports progress"
    assert events[-1]["done"] is True
    assert all(e["tasks_finished"] <= e["tasks_planned"] for e in events)
    assert "stages" in format_event(events[0])


def test_training_progress_carries_the_iteration() -> None:
    events: list[dict] = []
    session = kiln.Session.local(2, progress=events.append)
    rng = np.random.default_rng(1)
    # Long enough (well over the 300 ms a call stays quiet) that progress is reported mid-fit.
    n = 200_000
    df = session.create_dataframe(pa.table({"a": rng.normal(size=n), "b": rng.normal(size=n)}))
    ml.KMeans(32, max_iter=60, tol=0.0, init="random").fit(df)
    iterations = [e["iteration"] for e in events if e["iteration"] is not None]
    assert iterations and iterations == sorted(iterations)
    assert all(e["max_iter"] == 60 for e in events if e["iteration"] is not None)


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_the_default_display_shows_on_a_terminal_only() -> None:
    event = {
        "stages_finished": 1,
        "stages_planned": 2,
        "tasks_finished": 3,
        "tasks_planned": 4,
        "iteration": 5,
        "max_iter": 20,
        "loss": 12.5,
        "elapsed": 1.25,
        "done": False,
    }
    terminal = FakeTerminal(True)
    display = ConsoleProgress(terminal)
    display(event)
    display({**event, "done": True})
    assert "stages 1/2 | tasks 3/4 | training iteration 5/20 loss 12.5 | 1.2 s" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r\x1b[2K")
    piped = FakeTerminal(False)
    ConsoleProgress(piped)(event)
    assert piped.getvalue() == ""


@pytest.mark.skipif("KILN_EXECUTOR_BIN" not in os.environ and not kiln._executor_command(), reason="needs the kiln executor binary")
def test_a_local_cluster_runs_separate_processes_and_agrees_with_embedded() -> None:
    rng = np.random.default_rng(12)
    table = pa.table({"a": rng.normal(size=5000), "b": rng.normal(size=5000) * 3})
    embedded = kiln.Session.local(2, progress=None)
    cluster = kiln.Session.local_cluster(2, progress=None)
    pids = cluster.executor_pids
    assert len(pids) == 2 and os.getpid() not in pids
    init = [[0.0, 0.0], [1.0, 1.0], [-1.0, -1.0]]
    fits = [
        ml.KMeans(3, init=init, max_iter=20, tol=0.0).fit(s.create_dataframe(table))
        for s in (embedded, cluster)
    ]
    # The same partitioning gives the same model, bit for bit.
    assert np.array_equal(fits[0].cluster_centers_, fits[1].cluster_centers_)
    q = "SELECT count(*) AS n, sum(value) AS s FROM generate_series(1, 100000) WHERE value % 7 = 0"
    assert embedded.sql(q).to_pylist() == cluster.sql(q).to_pylist()


def test_python_dash_m_kiln_is_the_shell() -> None:
    env = {**os.environ}
    shell = subprocess.run(
        [sys.executable, "-m", "kiln"],
        input="SELECT 41 + 1 AS answer;\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert shell.returncode == 0, shell.stderr
    assert "42" in shell.stdout
    sql = subprocess.run(
        [sys.executable, "-m", "kiln", "sql", "-e", "SELECT nope", "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sql.returncode != 0 and "nope" in sql.stderr


def _certificates(directory) -> dict[str, str]:
    """A test authority, a ``localhost`` certificate and an executor's client certificate."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiln test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def issue(name, usage, san):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(ca_key, hashes.SHA256()), key

    files = {}

    def write(name, data):
        path = directory / name
        path.write_bytes(data)
        files[name] = str(path)

    pem = serialization.Encoding.PEM
    private = lambda k: k.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())  # noqa: E731
    server, server_key = issue("localhost", ExtendedKeyUsageOID.SERVER_AUTH, True)
    client, client_key = issue("kiln executor", ExtendedKeyUsageOID.CLIENT_AUTH, False)
    write("ca.pem", ca.public_bytes(pem))
    write("cert.pem", server.public_bytes(pem))
    write("key.pem", private(server_key))
    write("client.pem", client.public_bytes(pem))
    write("client-key.pem", private(client_key))
    return files


def _executor_binary() -> str | None:
    return os.environ.get("KILN_EXECUTOR_BIN") or kiln._executor_command()


@pytest.mark.skipif(_executor_binary() is None, reason="needs the kiln executor binary")
def test_listen_serves_executors_over_mutual_tls(tmp_path) -> None:
    files = _certificates(tmp_path)
    executors: list[subprocess.Popen] = []

    def start_executor(address: str) -> None:
        executors.append(
            subprocess.Popen(
                [
                    _executor_binary(), "executor", "--driver", f"https://{address}",
                    "--slots", "1", "--tls-ca", files["ca.pem"], "--tls-domain", "localhost",
                    "--tls-cert", files["client.pem"], "--tls-key", files["client-key.pem"],
                ],
                env={**os.environ, "KILN_AUTH_TOKEN": "py-tls"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    try:
        session = kiln.Session.listen(
            "127.0.0.1:0",
            1,
            on_listen=start_executor,
            auth_token="py-tls",
            progress=None,
            tls_cert=files["cert.pem"],
            tls_key=files["key.pem"],
            tls_ca=files["ca.pem"],
            tls_client_ca=files["ca.pem"],
        )
        assert session.executor_count == 1
        assert session.sql("SELECT count(*) AS n FROM generate_series(1, 500)").to_pylist() == [{"n": 500}]
        # Another executor joins the running session.
        start_executor(session.driver_address.split("://")[-1])
        deadline = time.monotonic() + 30
        while len([e for e in session.executors if e["alive"]]) < 2:
            assert time.monotonic() < deadline, session.executors
            time.sleep(0.1)
        assert [e["slots"] for e in session.executors] == [1, 1]
        settings = {name: value for name, value, _, _ in session._native.settings()}
        assert settings["kiln.cluster.tls_client_ca"] == files["ca.pem"]
    finally:
        for p in executors:
            p.kill()
            p.wait()
    # Half the TLS settings is refused, naming what is missing.
    with pytest.raises(kiln.ParameterError, match="tls_key"):
        kiln.Session.listen("127.0.0.1:0", 1, auth_token="x", progress=None, tls_cert=files["cert.pem"])


def test_a_killed_drivers_files_are_removed_by_a_later_session(tmp_path) -> None:
    root = tmp_path / "shuffle"
    driver = subprocess.Popen(
        [
            sys.executable, "-m", "kiln", "sql", "--quiet",
            "--set", f"kiln.shuffle.root={root}",
            "--set", "kiln.orphan_ttl_secs=1",
            "--set", "kiln.shuffle.keep_files=true",
            "-e", "SELECT value % 7 AS k, count(*) FROM generate_series(1, 10000) GROUP BY 1",
            "-e", "SELECT sum(a.value * b.value) FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(root.glob("kiln-*/**/*.arrow")):
            assert time.monotonic() < deadline and driver.poll() is None
            time.sleep(0.1)
    finally:
        driver.kill()
        driver.wait()
    (killed,) = [p.name for p in root.glob("kiln-*")]
    time.sleep(1.5)
    later = kiln.Session.local(1, settings={"kiln.shuffle.root": str(root), "kiln.orphan_ttl_secs": 1})
    report = later.remove_orphans()
    assert [p.rstrip("/").rsplit("/", 1)[-1] for p in report["prefixes"]] == [killed]
    assert report["objects"] > 1
    assert not list(root.glob("kiln-*"))
    assert [p.name for p in (root / "_kiln-sessions").iterdir()] == [later.id]


def test_a_driver_that_creates_kubernetes_pods_without_an_api_says_so(monkeypatch, tmp_path) -> None:
    # No service account and no kubeconfig: a clear error at once, not a wait for executors.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "")
    monkeypatch.setenv("KILN_AUTH_TOKEN", "t0ken")
    started = time.monotonic()
    with pytest.raises(kiln.KilnError, match="kiln.cluster.kubernetes.*no Kubernetes API"):
        kiln.Session.local(
            2,
            settings={"kiln.cluster.kubernetes": True, "kiln.cluster.listen": "127.0.0.1:0"},
        )
    assert time.monotonic() - started < 10
