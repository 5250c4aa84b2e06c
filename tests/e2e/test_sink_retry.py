"""A storage sink that cannot write: retried with backoff, dead-lettered after its last
attempt, and replayed from the dead letters once it recovers (real worker, Redis, PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.e2e.conftest import SAMPLE
from tests.services import postgres_schema_url, redis_db_url
from worker.intake.producer import Producer
from worker.settings import Settings
from worker.storage import DeadLetterStore, ReceiptStore, upgrade

WAIT_S = 60


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Redis and a PostgreSQL schema whose writers give up on a lock after 500 ms."""
    with redis_db_url() as broker, postgres_schema_url() as schema_url:
        url = make_url(schema_url)
        options = f"{url.query['options']} -clock_timeout=500"
        database = url.update_query_dict({"options": options}).render_as_string(False)
        values = Settings(
            broker_url=broker, database_url=database, var_dir=tmp_path / "var", sink_max_retries=1
        )
        upgrade(values.database_url)
        yield values


def _start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env.update(
        CABLE_INGEST_BROKER_URL=settings.broker_url,
        CABLE_INGEST_DATABASE_URL=settings.database_url,
        CABLE_INGEST_VAR_DIR=str(settings.var_dir),
        CABLE_INGEST_SINK_MAX_RETRIES=str(settings.sink_max_retries),
        CABLE_INGEST_LOG_FORMAT="json",
    )
    with log.open("wb") as out:
        command = [sys.executable, "-m", "worker", "worker", "-c", "1"]
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_locked_storage_is_retried_dead_lettered_then_replayed(
    settings: Settings, tmp_path: Path
) -> None:
    """While the cables table is locked, the ingest task's inline write fails and hands the
    batch to sink.storage, where the delivery fails, is retried once with backoff and
    becomes a sink:storage dead letter; replayed after the lock is gone, the cable is stored."""
    admin = create_engine(settings.database_url)
    letters = DeadLetterStore(settings.database_url)
    receipts = ReceiptStore(settings.database_url)
    worker = _start_worker(settings, tmp_path / "worker.log")
    try:
        with admin.connect() as lock:
            lock.execute(text("LOCK TABLE cables IN ACCESS EXCLUSIVE MODE"))
            with Producer(settings) as producer:
                message_id = producer.enqueue(SAMPLE.read_bytes(), source="tests/retry")
            _wait_for(lambda: letters.for_messages([message_id]), "the sink dead letter")
            lock.rollback()
        [letter] = letters.list(stage="sink:storage")
        assert letter["attempts"] == 2
        assert letter["error_class"] == "TransientSinkError"
        assert "lock" in letter["reason"]
        assert letter["reference_id"] == "06ALMATY598"
        assert receipts.received([message_id], "storage") == set()

        with Producer(settings) as producer:
            producer.replay(letter)
        _wait_for(lambda: receipts.received([message_id], "storage"), "the replayed delivery")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        admin.dispose()
        letters.close()
        receipts.close()
    events = (tmp_path / "worker.log").read_text(errors="replace")
    assert events.count('"event":"inline_failed"') == 1
    assert events.count('"event":"retried"') == 1
