"""The producer API on the embedded broker: ids, batches, checks at the door, back-pressure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from worker.intake.envelope import IntakeError
from worker.intake.producer import Producer
from worker.queue.app import create_app
from worker.queue.depths import queue_depth
from worker.settings import Settings
from worker.storage import ReceiptStore, upgrade

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded broker and SQLite under a fresh folder, batches of 10."""
    return Settings(var_dir=tmp_path / "var", batch_size=10, high_water_mark=30)


def _texts(n: int) -> list[str]:
    text = SAMPLE.read_text(encoding="utf-8")
    return [text.replace("000598", f"{n + 1000:06d}", 1) for n in range(n)]


def test_enqueue_returns_ids_and_sends_full_batches(settings: Settings) -> None:
    """25 texts become 25 distinct message ids in three messages (10 + 10 + 5 on flush)."""
    with Producer(settings) as producer:
        ids = producer.enqueue_many(_texts(25), source="tests", metadata={"feed": "a"})
        assert producer.messages_sent == 2
    assert len(set(ids)) == 25
    assert producer.messages_sent == 3
    assert queue_depth(create_app(settings), "intake") == 3


def test_refused_text_raises_and_sends_nothing(settings: Settings) -> None:
    """Empty and binary texts raise IntakeError with their reason code; nothing is queued."""
    with Producer(settings) as producer:
        with pytest.raises(IntakeError) as empty:
            producer.enqueue("   \n", source="tests")
        with pytest.raises(IntakeError) as binary:
            producer.enqueue(b"\x00\x01\x02 not text", source="tests")
    assert (empty.value.reason_code, binary.value.reason_code) == ("empty", "binary")
    assert producer.messages_sent == 0


def test_producer_waits_above_the_high_water_mark_until_workers_drain(
    settings: Settings, tmp_path: Path
) -> None:
    """With no worker the producer stops at the high-water mark (30 cables) and says so;
    once a real worker drains the queue it resumes and every cable is stored."""
    waits: list[int] = []
    ids: list[str] = []
    producer = Producer(settings, on_wait=waits.append)

    def produce() -> None:
        with producer:
            ids.extend(producer.enqueue_many(_texts(80), source="tests"))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not waits and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waits, "the producer never waited"
    assert queue_depth(create_app(settings), "intake") * settings.batch_size <= 40
    assert thread.is_alive()

    upgrade(settings.database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env["CABLE_INGEST_VAR_DIR"] = str(settings.var_dir)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "-c", "1"], env=env, stdout=log, stderr=log
        )
    try:
        thread.join(60)
        assert not thread.is_alive()
        receipts = ReceiptStore(settings.database_url)
        deadline = time.monotonic() + 60
        while len(receipts.received(ids, "storage")) < 80 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(receipts.received(ids, "storage")) == 80
        receipts.close()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    assert producer.seconds_waited > 0
