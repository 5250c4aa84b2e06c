"""Notification sinks end to end (real worker, Redis, SQLite, a real HTTP receiver, files):
clearance withholds, a failing webhook never holds up storage or the other sinks, retries
drain when it recovers, and an exhausted delivery is dead-lettered and replays."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.conftest import SAMPLE
from tests.services import redis_db_url
from worker.intake.producer import Producer
from worker.routing.signing import verify
from worker.settings import Settings
from worker.storage import DeadLetterStore, ReceiptStore, upgrade

SECRET = "s3cret-for-tests-only"
WAIT_S = 60
CLASS_LINE = "C O N F I D E N T I A L SECTION 01 OF 02 ALMATY 000598"
VARIANTS = {
    "UNCLASSIFIED": ("UNCLAS SECTION 01 OF 02 ALMATY 000598", "ZNR UUUUU"),
    "CONFIDENTIAL": (CLASS_LINE, "ZNY CCCCC"),
    "SECRET//NOFORN": ("S E C R E T NOFORN SECTION 01 OF 02 ALMATY 000598", "ZNY SSSSS"),
}


@dataclass
class Receiver:
    """A webhook receiver on loopback that verifies every signature; ``answers`` is the status
    of each next request (then ``default``)."""

    default: int = 200
    answers: list[int] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    hangs: int = 0  # this many next requests get no answer for longer than the client waits
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A running receiver and its URL."""
    state = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                hang, state.hangs = state.hangs > 0, max(0, state.hangs - 1)
            if hang:
                time.sleep(3)  # the sink's timeout is 1 s
                return
            with state.lock:
                state.requests += 1
                status = state.answers.pop(0) if state.answers else state.default
                try:
                    verify(SECRET, self.headers.get("X-Cable-Ingest-Signature", ""), body)
                except ValueError:
                    state.bad_signatures += 1
                    status = 401
                if status == 200:
                    state.accepted.append(orjson.loads(body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def _cable(n: int, classification: str) -> str:
    line, security = VARIANTS[classification]
    text = SAMPLE.read_text(encoding="utf-8").replace(CLASS_LINE, line)
    return text.replace("ZNY CCCCC", security).replace("000598", f"{n:06d}")


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "sinks.toml"
    path.write_text(
        f"""
[sinks.storage]
type = "storage"

[sinks.hook]
type = "webhook"
max_classification = "CONFIDENTIAL"
options = {{ url = "{url}", secret_env = "TEST_HOOK_SECRET", timeout_s = 1 }}

[sinks.drop]
type = "file"
inline = true
max_classification = "SECRET//NOFORN"
options = {{ directory = "{tmp_path / "drop"}" }}

[[rules]]
name = "everything"
sinks = ["hook", "drop"]
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def settings(tmp_path: Path, receiver: tuple[Receiver, str]) -> Iterator[Settings]:
    """Redis, SQLite and the sinks file; two retries before a delivery is dead-lettered."""
    with redis_db_url() as url:
        values = Settings(
            broker_url=url,
            var_dir=tmp_path / "var",
            config_file=_config(tmp_path, receiver[1]),
            sink_max_retries=2,
            batch_size=5,
        )
        upgrade(values.database_url)
        yield values


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker process on those settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env.update(
        CABLE_INGEST_BROKER_URL=settings.broker_url,
        CABLE_INGEST_VAR_DIR=str(settings.var_dir),
        CABLE_INGEST_CONFIG=str(settings.config_file),
        CABLE_INGEST_SINK_MAX_RETRIES=str(settings.sink_max_retries),
        CABLE_INGEST_BATCH_SIZE=str(settings.batch_size),
        CABLE_INGEST_LOG_FORMAT="json",
        TEST_HOOK_SECRET=SECRET,
    )
    with (tmp_path / "worker.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "-c", "2"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _enqueue(settings: Settings) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {c: [] for c in VARIANTS}
    with Producer(settings) as producer:
        for n, classification in enumerate(list(VARIANTS) * 4, start=1):
            text = _cable(n, classification)
            ids[classification].append(producer.enqueue(text, source=f"tests/{n}"))
    return ids


def test_clearance_isolation_retry_and_replay(
    settings: Settings,
    worker: subprocess.Popen[bytes],
    receiver: tuple[Receiver, str],
    tmp_path: Path,
) -> None:
    """With the webhook answering 500, storage and the file sink (written inline by the ingest
    task) take every cable; the webhook's deliveries are retried then dead-lettered; the
    SECRET//NOFORN cables are withheld from it (cleared for CONFIDENTIAL) and never reach it;
    replayed after it recovers, they all arrive once, signed."""
    state, _url = receiver
    state.default = 500
    ids = _enqueue(settings)
    everything = [m for group in ids.values() for m in group]
    cleared = ids["UNCLASSIFIED"] + ids["CONFIDENTIAL"]
    receipts = ReceiptStore(settings.database_url)
    letters = DeadLetterStore(settings.database_url)
    try:
        _wait(lambda: receipts.received(everything, "storage") == set(everything), "storage")
        _wait(lambda: receipts.received(everything, "drop") == set(everything), "the file sink")
        assert receipts.outcomes(ids["SECRET//NOFORN"], "hook") == {"withheld": 4}
        _wait(
            lambda: len(letters.for_messages(cleared)) == len(cleared), "the webhook dead letters"
        )
        assert {x["stage"] for x in letters.for_messages(cleared)} == {"sink:hook"}
        assert state.accepted == []
        assert state.requests >= 3  # first attempt and two retries, at least one batch

        state.default = 200
        with Producer(settings) as producer:
            for letter in letters.list(stage="sink:hook"):
                producer.replay(letter)
        _wait(lambda: receipts.received(cleared, "hook") == set(cleared), "the replays")
    finally:
        receipts.close()
        letters.close()
    assert sorted(n["message_id"] for n in state.accepted) == sorted(cleared)
    assert state.bad_signatures == 0
    assert all(n["classification"] in {"UNCLASSIFIED", "CONFIDENTIAL"} for n in state.accepted)
    assert all("body" not in n for n in state.accepted)
    drop = settings.var_dir.parent / "drop"
    assert len(list(drop.rglob("*.json"))) == len(everything)
    events = [orjson.loads(line) for line in (tmp_path / "worker.log").read_bytes().splitlines()
              if line.startswith(b"{")]  # fmt: skip
    delivered = [e for e in events if e.get("event") == "delivered"]
    assert {e["inline"] for e in delivered if e["sink"] in ("drop", "storage")} == {True}
    assert {e["inline"] for e in delivered if e["sink"] == "hook"} == {False}


@pytest.mark.parametrize("trouble", ["two 503s", "two hangs"])
def test_a_flaky_webhook_drains_when_it_recovers(
    settings: Settings,
    worker: subprocess.Popen[bytes],
    receiver: tuple[Receiver, str],
    trouble: str,
) -> None:
    """Two 503s (or two requests left hanging past the timeout) then success: storage takes
    every cable meanwhile, and the retries deliver every notification once, no dead letter."""
    state, _url = receiver
    if trouble == "two 503s":
        state.answers = [503, 503]
    else:
        state.hangs = 2
    ids = _enqueue(settings)
    everything = [m for group in ids.values() for m in group]
    cleared = ids["UNCLASSIFIED"] + ids["CONFIDENTIAL"]
    receipts = ReceiptStore(settings.database_url)
    letters = DeadLetterStore(settings.database_url)
    try:
        _wait(lambda: receipts.received(everything, "storage") == set(everything), "storage")
        _wait(lambda: receipts.received(cleared, "hook") == set(cleared), "the webhook")
        assert letters.list(stage="sink:hook") == []
    finally:
        receipts.close()
        letters.close()
    assert sorted(n["message_id"] for n in state.accepted) == sorted(cleared)
