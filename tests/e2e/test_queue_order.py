"""A real worker consuming intake and reparse takes intake first, on Redis and on the embedded
broker: batches waiting on both are stored intake's first, though reparse's were sent first."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.conftest import SAMPLE
from tests.services import redis_db_url
from worker.intake.envelope import make_envelope
from worker.queue.app import INGEST_TASK, INTAKE_QUEUE, create_app, prepare_broker, publish
from worker.queue.order import REPARSE_QUEUE
from worker.settings import Settings
from worker.storage import upgrade

BATCHES, PER_BATCH, WAIT_S = 6, 3, 120


@pytest.fixture(params=["filesystem", "redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings on the embedded broker or the test Redis database, and a fresh SQLite file."""
    if request.param == "redis":
        with redis_db_url() as url:
            yield Settings(broker_url=url, var_dir=tmp_path / "var")
        return
    yield Settings(var_dir=tmp_path / "var")


def test_intake_batches_go_before_reparse_batches_sent_earlier(
    settings: Settings, tmp_path: Path
) -> None:
    """Batches sent to reparse first, then to intake, with no worker running; a worker with one
    process then stores every intake batch before any reparse batch (kombu's own round robin
    would alternate them). Ingest tasks stand in for reparse's: the order is the queue's."""
    upgrade(settings.database_url)
    prepare_broker(settings)
    app = create_app(settings)
    text_of = SAMPLE.read_text(encoding="utf-8")
    queue_of: dict[str, str] = {}
    for queue in (REPARSE_QUEUE, INTAKE_QUEUE):
        for _ in range(BATCHES):
            batch = []
            for _ in range(PER_BATCH):
                envelope = make_envelope(
                    text_of.replace("598", str(1000 + len(queue_of)), 1), source="tests/order"
                )
                queue_of[str(envelope["id"])] = queue
                batch.append(envelope)
            publish(app, INGEST_TASK, [batch], queue)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env |= {"CABLE_INGEST_BROKER_URL": settings.broker_url}
    env |= {"CABLE_INGEST_VAR_DIR": str(settings.var_dir)}
    command = [sys.executable, "-m", "worker", "worker", "--concurrency", "1"]
    engine = create_engine(settings.database_url)
    with (tmp_path / "worker.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT_S
        count = text("SELECT count(*) FROM receipts")
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.execute(count).scalar_one() == len(queue_of):
                    break
            time.sleep(0.2)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT message_id FROM receipts ORDER BY delivered_at"))
            order = [queue_of[message_id] for (message_id,) in rows]
    finally:
        process.terminate()
        process.wait(60)
        engine.dispose()
    assert len(order) == len(queue_of)
    half = BATCHES * PER_BATCH
    assert order == [INTAKE_QUEUE] * half + [REPARSE_QUEUE] * half
