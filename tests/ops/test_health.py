"""Readiness means consuming: the broker and the database answer, and waiting work is acked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import redis

from tests.holders import sigkill, stuck_worker
from tests.services import redis_db_url
from worker.intake.producer import Producer
from worker.ops.health import check_health, last_ack
from worker.queue.app import prepare_broker
from worker.queue.brokers import ACK_KEY, record_ack
from worker.settings import Settings
from worker.storage import upgrade

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"
CLOSED_PG = "postgresql+psycopg://postgres@127.0.0.1:1/x"
CLOSED_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded broker and SQLite under a fresh folder, prepared as a starting worker does."""
    settings = Settings(var_dir=tmp_path / "var", batch_size=2)
    prepare_broker(settings)
    upgrade(settings.database_url)
    return settings


def _enqueue(settings: Settings, n: int) -> None:
    text = SAMPLE.read_text(encoding="utf-8")
    with Producer(settings) as producer:
        producer.enqueue_many(
            [text.replace("000598", f"{i + 3000:06d}", 1) for i in range(n)], source="tests"
        )


def test_ready_on_an_empty_embedded_broker(settings: Settings) -> None:
    """Nothing waits, the queue folder and SQLite answer: ready, alive, no reasons."""
    health = check_health(settings)
    assert (health.alive, health.ready, health.reasons) == (True, True, [])
    assert health.details["queues"] == {"intake": 0, "sink.storage": 0, "reparse": 0}


def test_waiting_work_without_a_recent_ack_is_not_ready(settings: Settings) -> None:
    """Three cables wait (two messages) and the last ack, written in record_ack's format, is 340 s
    old: not ready, saying so; within a wider window, or after record_ack, ready again."""
    _enqueue(settings, 3)
    health = check_health(settings)
    assert health.reasons == [
        "intake has 2 messages waiting and no task was ever acknowledged (window 120 s)"
    ]
    (settings.var_dir / "broker" / "last-ack").write_text(repr(time.time() - 340))
    health = check_health(settings)
    assert not health.ready
    assert health.reasons == [
        "intake has 2 messages waiting and nothing was acknowledged for 340 s (window 120 s)"
    ]
    assert check_health(settings, ready_window_s=600).ready
    record_ack(settings)
    health = check_health(settings)
    assert health.ready, health.reasons
    assert health.details["last_ack_age_s"] < 5


def test_redis_readiness_needs_a_connected_worker_then_acks(tmp_path: Path) -> None:
    """On Redis: idle with no worker is ready; work waiting with no worker connected is not,
    whatever the last ack; with a worker connected, the ack key decides (an old one is a stuck
    worker, a fresh one is ready); that worker killed with SIGKILL: not ready at once."""
    with redis_db_url() as url:
        settings = Settings(broker_url=url, var_dir=tmp_path / "var", batch_size=2)
        upgrade(settings.database_url)
        idle = check_health(settings)
        assert (idle.ready, idle.details["workers_online"]) == (True, 0)
        _enqueue(settings, 1)
        record_ack(settings)  # a worker acknowledged something a moment ago
        health = check_health(settings)
        assert health.reasons == [
            "intake has 1 message waiting, and no worker is connected to the broker"
        ]
        worker = stuck_worker(url)
        try:
            client = redis.Redis.from_url(url)
            client.set(ACK_KEY, repr(time.time() - 500))
            health = check_health(settings)
            assert health.details["workers_online"] == 1
            assert health.reasons == [
                "intake has 1 message waiting and nothing was acknowledged for 500 s (window 120 s)"
            ]
            record_ack(settings)
            assert time.time() - float(client.get(ACK_KEY) or 0) < 5
            assert check_health(settings).ready
            client.close()
        finally:
            sigkill(worker)
        health = check_health(settings)
        assert not health.ready
        assert health.details["workers_online"] == 0


def test_kill_9_of_the_only_worker_is_not_ready_at_once(tmp_path: Path) -> None:
    """A real worker stores a cable (its ack is recorded), then is killed with SIGKILL; a cable
    enqueued after that waits with no worker: not ready, although the last ack is seconds old
    (it used to say ready for the whole READY_WINDOW_S)."""
    with redis_db_url() as url:
        settings = Settings(broker_url=url, var_dir=tmp_path / "var", batch_size=2)
        upgrade(settings.database_url)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
        environ |= settings.to_env()
        with (tmp_path / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "worker", "worker", "--concurrency", "1"],
                env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            _enqueue(settings, 1)
            deadline = time.monotonic() + 120
            while last_ack(settings) is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert last_ack(settings) is not None, "the worker acknowledged nothing"
            assert check_health(settings).ready
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        _enqueue(settings, 1)
        health = check_health(settings)
        assert not health.ready
        assert health.reasons == [
            "intake has 1 message waiting, and no worker is connected to the broker"
        ]
        assert (time.time() - (last_ack(settings) or 0)) < settings.ready_window_s


@pytest.mark.parametrize(
    ("broker_url", "database_url", "reason"),
    [
        ("", CLOSED_PG, "database postgresql+psycopg://postgres@127.0.0.1:1/x does not answer"),
        (CLOSED_REDIS, "", "broker redis://127.0.0.1:1/0 does not answer"),
    ],
)
@pytest.mark.timeout(30)  # a hang guard: each probe gives up after a few seconds
def test_a_closed_port_is_not_ready(
    settings: Settings, broker_url: str, database_url: str, reason: str
) -> None:
    """A database or a Redis broker on a closed port: not ready within seconds, naming it."""
    changed = Settings(
        broker_url=broker_url or settings.broker_url,
        database_url=database_url or settings.database_url,
        var_dir=settings.var_dir,
    )
    health = check_health(changed)  # bounded by the probes' timeouts, not pytest's 120 s
    assert not health.ready
    assert len(health.reasons) == 1
    assert health.reasons[0].startswith(reason), health.reasons


def _health(var_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    environ["CABLE_INGEST_VAR_DIR"] = str(var_dir)
    return subprocess.run(
        [sys.executable, "-m", "worker", "health", *args],
        capture_output=True, text=True, timeout=60, check=False, env=environ,
    )  # fmt: skip


def test_health_command_exit_codes(tmp_path: Path) -> None:
    """``cable-ingest health`` exits 1 before a worker prepared the broker and the database
    (the reasons on stderr), 0 after; --json prints the checks."""
    var_dir = tmp_path / "var"
    done = _health(var_dir)
    assert done.returncode == 1
    assert "not ready: broker folder" in done.stderr
    assert "cable-ingest.db does not exist" in done.stderr
    settings = Settings(var_dir=var_dir)
    prepare_broker(settings)
    upgrade(settings.database_url)
    done = _health(var_dir, "--json")
    assert (done.returncode, done.stderr) == (0, "")
    answer = orjson.loads(done.stdout)
    assert (answer["ready"], answer["reasons"], answer["details"]["database"]) == (True, [], "ok")
