"""The redelivery cap on Redis, with a real worker: a message that came back after its
worker was lost is split into single cables, and one that keeps coming back is dead-lettered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.e2e.conftest import SAMPLE
from tests.services import redis_db_url
from worker.intake.envelope import make_envelope
from worker.queue.app import INGEST_TASK, INTAKE_QUEUE, create_app
from worker.settings import Settings
from worker.storage import DeadLetterStore, ReceiptStore, upgrade

WAIT_S = 60


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings on the test Redis database and a fresh SQLite file, with a cap of 2."""
    with redis_db_url() as url:
        values = Settings(broker_url=url, var_dir=tmp_path / "var", max_deliveries=2)
        upgrade(values.database_url)
        yield values


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env.update(
        CABLE_INGEST_BROKER_URL=settings.broker_url,
        CABLE_INGEST_VAR_DIR=str(settings.var_dir),
        CABLE_INGEST_MAX_DELIVERIES=str(settings.max_deliveries),
    )
    return env


def _publish_as_redelivered(settings: Settings, envelopes: list[dict[str, object]]) -> str:
    """Queue a batch the way Redis restores a message whose worker was lost; return its id."""
    app = create_app(settings)
    result = app.send_task(INGEST_TASK, args=[envelopes], queue=INTAKE_QUEUE)
    client = redis.Redis.from_url(settings.broker_url)
    raw = client.rpop(INTAKE_QUEUE)
    assert isinstance(raw, bytes)
    message = json.loads(raw)
    message["headers"]["redelivered"] = True
    message["properties"]["delivery_info"]["redelivered"] = True
    client.lpush(INTAKE_QUEUE, json.dumps(message))
    client.close()
    return str(result.id)


def _worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "worker", "worker", "--concurrency", "1"]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=_env(settings), stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _envelope(text: str, n: int) -> dict[str, object]:
    return make_envelope(text, source=f"tests/redelivery-{n}")


def test_redelivered_batch_is_split_and_every_cable_stored(
    settings: Settings, tmp_path: Path
) -> None:
    """A batch of three that came back is re-sent as three single messages, all stored."""
    text = SAMPLE.read_text(encoding="utf-8")
    batch = [_envelope(text.replace("598", f"59{n}", 1), n) for n in range(3)]
    task_id = _publish_as_redelivered(settings, batch)
    process = _worker(settings, tmp_path / "worker.log")
    receipts = ReceiptStore(settings.database_url)
    try:
        ids = {str(e["id"]) for e in batch}
        deadline = time.monotonic() + WAIT_S
        while receipts.received(ids, "storage") != ids and time.monotonic() < deadline:
            time.sleep(0.2)
        assert receipts.received(ids, "storage") == ids
        # the split message's count was forgotten: a new redelivery would start from 1
        assert receipts.count_redelivery(f"{INGEST_TASK}:{task_id}") == 1
    finally:
        _stop(process)
        receipts.close()
    assert "batch_split" in (tmp_path / "worker.log").read_text(errors="replace")


def test_message_delivered_past_the_cap_is_dead_lettered(
    settings: Settings, tmp_path: Path
) -> None:
    """A single cable whose worker was lost more than max_deliveries times becomes a dead
    letter with the reason, instead of being processed (and killing a worker) again."""
    envelope = _envelope(SAMPLE.read_text(encoding="utf-8"), 0)
    task_id = _publish_as_redelivered(settings, [envelope])
    receipts = ReceiptStore(settings.database_url)
    letters = DeadLetterStore(settings.database_url)
    for _ in range(settings.max_deliveries):  # the deliveries before this one
        receipts.count_redelivery(f"{INGEST_TASK}:{task_id}")
    process = _worker(settings, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + WAIT_S
        while not letters.for_messages([str(envelope["id"])]) and time.monotonic() < deadline:
            time.sleep(0.2)
        [letter] = letters.for_messages([str(envelope["id"])])
        assert letter["error_class"] == "RedeliveryLimitExceeded"
        assert "delivered 3 times" in letter["reason"]
        assert receipts.received([str(envelope["id"])], "storage") == set()
    finally:
        _stop(process)
        receipts.close()
        letters.close()
