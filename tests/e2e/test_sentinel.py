"""``sentinel://`` brokers end to end: a real Redis primary and a real Sentinel that the test
starts, with and without passwords (the primary's and the sentinel's own, from files), and every
part that talks to the broker going through the Sentinel: ``run`` (its workers and its
producer), the readiness key, a Redis Streams sink, ``enqueue``, ``status``, ``health``,
``metrics`` and the HTTP server's intake (with its ``/readyz`` and ``/metrics``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from starlette.exceptions import StarletteDeprecationWarning

from tests.e2e.conftest import SAMPLE, Runner
from tests.services import Sentinel, closed_port, redis_sentinel
from worker.http.app import create_http_app
from worker.intake.generate import load_templates, write_cables
from worker.queue.brokers import ACK_KEY
from worker.settings import Settings
from worker.storage import upgrade
from worker.storage.tokens import TokenStore

with warnings.catch_warnings():  # as in tests/http/conftest.py
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

CABLES = 6
STREAM = "cables-out"
CLI_TIMEOUT_S = 120


@dataclass(frozen=True)
class Deployment:
    """A running primary and Sentinel, and the settings (``CABLE_INGEST_*`` without the prefix)
    that reach the primary through the Sentinel; ``secrets`` must never be printed."""

    sentinel: Sentinel
    settings: dict[str, str]
    sink_options: str  # the redis-stream sink's options, TOML inline-table entries
    secrets: tuple[str, ...]


@pytest.fixture(params=["plain", "passwords"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """``plain``: no passwords, the master name in CABLE_INGEST_SENTINEL_MASTER. ``passwords``:
    the primary and the sentinel each require their own password, read from files; the URL
    lists a sentinel that is gone before the live one, and names the master itself."""
    passwords = request.param == "passwords"
    with redis_sentinel(tmp_path / "redis", passwords=passwords) as sentinel:
        if not passwords:
            settings = {"broker_url": sentinel.url, "sentinel_master": sentinel.master}
            sink = f'url = "{sentinel.url}", master_name = "{sentinel.master}"'
            yield Deployment(sentinel, settings, sink, ())
            return
        assert sentinel.password is not None
        assert sentinel.sentinel_password is not None
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        (secrets / "redis").write_text(sentinel.password + "\n", encoding="utf-8")
        (secrets / "sentinel").write_text(sentinel.sentinel_password + "\n", encoding="utf-8")
        gone = f"sentinel://127.0.0.1:{closed_port()}"
        url = f"{gone};{sentinel.url}?master_name={sentinel.master}"
        settings = {
            "broker_url": url,
            "broker_password_file": str(secrets / "redis"),
            "sentinel_password_file": str(secrets / "sentinel"),
        }
        sink = (
            f'url = "{url}", password_file = "{secrets / "redis"}", '
            f'sentinel_password_file = "{secrets / "sentinel"}"'
        )
        yield Deployment(
            sentinel, settings, sink, (sentinel.password, sentinel.sentinel_password)
        )


def _cables(folder: Path, count: int = CABLES) -> Path:
    templates, _skipped = load_templates([SAMPLE])
    write_cables(templates, count, folder)
    return folder


def _config(tmp_path: Path, deployment: Deployment) -> Path:
    path = tmp_path / "sinks.toml"
    path.write_text(
        f"""
[sinks.storage]
type = "storage"

[sinks.stream]
type = "redis-stream"
max_classification = "SECRET//NOFORN"
options = {{ {deployment.sink_options}, stream = "{STREAM}", timeout_s = 5 }}

[[rules]]
name = "everything"
sinks = ["stream"]
""",
        encoding="utf-8",
    )
    return path


def _environment(tmp_path: Path, settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env |= {"CABLE_INGEST_VAR_DIR": str(tmp_path / "var"), "CABLE_INGEST_LOG_FORMAT": "json"}
    return env | {f"CABLE_INGEST_{k.upper()}": v for k, v in settings.items()}


def _cli(tmp_path: Path, settings: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=_environment(tmp_path, settings),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
        cwd=tmp_path,
    )


def _count(database_url: str, table: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def _shown(tmp_path: Path, *outputs: str) -> str:
    """What a person could read: the outputs and every worker log ``run`` wrote."""
    logs = [p.read_text(errors="replace") for p in (tmp_path / "var" / "logs").glob("*.log")]
    return "\n".join([*outputs, *logs])


def test_run_stores_every_cable_through_the_sentinel(
    run_cli: Runner, deployment: Deployment, tmp_path: Path
) -> None:
    """``run`` through a sentinel:// URL stores every cable (its producer and workers reach
    the primary the Sentinel names), the workers record the readiness key there, the Redis
    Streams sink adds one entry per cable through the Sentinel, and no password is printed."""
    database = f"sqlite:///{tmp_path / 'var' / 'cable-ingest.db'}"
    settings = {**deployment.settings, "database_url": database}
    config = str(_config(tmp_path, deployment))
    code, summary, stderr = run_cli([str(_cables(tmp_path / "in"))], config=config, **settings)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert _count(database, "cables") == CABLES
    primary = deployment.sentinel.primary()
    try:
        assert primary.xlen(STREAM) == CABLES
        assert primary.get(ACK_KEY) is not None
    finally:
        primary.close()
    shown = _shown(tmp_path, stderr, orjson.dumps(summary).decode())
    assert shown.strip()
    for secret in deployment.secrets:
        assert secret not in shown


def test_enqueue_status_health_metrics_and_worker_through_the_sentinel(
    deployment: Deployment, tmp_path: Path
) -> None:
    """With no worker, ``enqueue`` puts one message on the primary's intake queue; ``status``
    and ``metrics`` read its depth through the Sentinel and ``health`` says why it is not
    ready (work waits, nothing acknowledged): each reached the broker. Then a ``worker``
    consumes it, answers ``status``'s broadcast, and ``health`` is ready."""
    settings = deployment.settings
    enqueued = _cli(tmp_path, settings, "enqueue", str(_cables(tmp_path / "in")))
    assert enqueued.returncode == 0, enqueued.stderr
    primary = deployment.sentinel.primary()
    try:
        assert primary.llen("intake") == 1
    finally:
        primary.close()

    status = _cli(tmp_path, settings, "status", "--json")
    assert status.returncode == 0, status.stderr
    queues = {q["name"]: q for q in orjson.loads(status.stdout)["queues"]}
    assert (queues["intake"]["depth"], queues["intake"]["unacked"]) == (1, 0)

    health = _cli(tmp_path, settings, "health", "--json")
    answer = orjson.loads(health.stdout)
    assert (health.returncode, answer["ready"]) == (1, False), health.stderr
    assert answer["details"]["broker"] == "ok"
    assert answer["details"]["queues"]["intake"] == 1

    depth = _scraped_depth(tmp_path, settings)
    assert depth == 1

    worker = subprocess.Popen(
        [sys.executable, "-m", "worker", "worker"], env=_environment(tmp_path, settings),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        _wait_for_ack(deployment.sentinel, worker)
        online = _cli(tmp_path, settings, "status", "--json")
        ready = _cli(tmp_path, settings, "health")
    finally:
        worker.terminate()
        _out, errors = worker.communicate(timeout=60)
    assert online.returncode == 0, online.stderr
    assert len(orjson.loads(online.stdout)["workers"]) == 1
    assert ready.returncode == 0, ready.stdout + ready.stderr
    outputs = (enqueued, status, health, online, ready)
    shown = _shown(tmp_path, errors, *(p.stdout + p.stderr for p in outputs))
    for secret in deployment.secrets:
        assert secret not in shown


def _wait_for_ack(sentinel: Sentinel, worker: subprocess.Popen[str]) -> None:
    """Until the worker records the readiness key on the primary (it acknowledged a task)."""
    primary = sentinel.primary()
    deadline = time.monotonic() + CLI_TIMEOUT_S
    try:
        while primary.get(ACK_KEY) is None:
            assert worker.poll() is None, f"the worker exited with code {worker.returncode}"
            assert time.monotonic() < deadline, "the worker acknowledged nothing"
            time.sleep(0.2)
    finally:
        primary.close()


def test_http_intake_publishes_through_the_sentinel(
    deployment: Deployment, tmp_path: Path
) -> None:
    """``serve``'s app (its real broker queue) answers a posted cable with 202 once it is on
    the primary's intake queue; ``/readyz`` and ``/metrics`` read that queue through the
    Sentinel."""
    database = f"sqlite:///{tmp_path / 'cable-ingest.db'}"
    upgrade(database)
    store = TokenStore(database)
    token, _info = store.create("feed-a", ("ingest",), None)
    store.close()
    environ = {f"CABLE_INGEST_{k.upper()}": v for k, v in deployment.settings.items()}
    settings = Settings.from_env(
        environ | {"CABLE_INGEST_DATABASE_URL": database, "CABLE_INGEST_GROUP_COMMIT_MS": "0",
                   "CABLE_INGEST_VAR_DIR": str(tmp_path / "var")}
    )  # fmt: skip
    with TestClient(create_http_app(settings)) as client:
        posted = client.post(
            "/v1/cables",
            content=SAMPLE.read_bytes(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
        )
        assert posted.status_code == 202, posted.text
        ready = client.get("/readyz")
        scraped = client.get("/metrics").text
    primary = deployment.sentinel.primary()
    try:
        assert primary.llen("intake") == 1
    finally:
        primary.close()
    assert ready.status_code == 503
    assert (ready.json()["details"]["broker"], ready.json()["details"]["queues"]["intake"]) == (
        "ok",
        1,
    )
    assert _depth(scraped) == 1


def _depth(scraped: str) -> float:
    for family in text_string_to_metric_families(scraped):
        for sample in family.samples:
            if sample.name == "cable_ingest_queue_depth" and sample.labels == {"queue": "intake"}:
                return sample.value
    raise AssertionError(f"no intake depth in the scrape: {scraped[:500]}")


def _scraped_depth(tmp_path: Path, settings: dict[str, str]) -> float:
    """The intake depth that ``cable-ingest metrics --port 0`` serves."""
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "metrics", "--port", "0"],
        env=_environment(tmp_path, settings), stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = ""
        while "serving http://" not in line:
            line = process.stderr.readline()
            assert line, f"metrics exited with code {process.wait()}"
        with urllib.request.urlopen(line.split()[1], timeout=30) as response:
            body = response.read().decode()
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()
    return _depth(body)
