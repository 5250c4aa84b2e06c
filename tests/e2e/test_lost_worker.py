"""The operator's view after ``kill -9`` of a worker, on Redis, with real workers: readiness turns
at once, ``status`` shows the messages the dead worker held and when they come back,
``put-back`` leaves a live worker's messages alone and returns a dead one's, a starting worker
returns them by itself, and every cable is stored and notified exactly once."""

from __future__ import annotations

import contextlib
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
from worker.settings import Settings
from worker.storage import DeadLetterStore, ReceiptStore, upgrade

CABLES = 4
HOOK_QUEUE = "sink.hook"
VISIBILITY_S = 3600  # nothing comes back by the timeout during the test
WAIT_S = 120


@dataclass
class Hook:
    """A webhook peer that keeps every request waiting until ``release`` is set."""

    release: threading.Event = field(default_factory=threading.Event)
    keys: list[str] = field(default_factory=list)  # Idempotency-Key of each request, in order
    waiting: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    """The peer and its URL."""
    state = Hook()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.keys.append(self.headers.get("Idempotency-Key", ""))
                state.waiting += 1
            state.release.wait(WAIT_S)
            with state.lock:
                state.waiting -= 1
            try:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the worker that asked was killed

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings(tmp_path: Path, hook: tuple[Hook, str]) -> Iterator[Settings]:
    """Redis, SQLite, a webhook sink every cable is routed to; one cable per message."""
    config = tmp_path / "sinks.toml"
    config.write_text(
        f'[sinks.hook]\ntype = "webhook"\nmax_classification = "TOP SECRET"\n'
        f'options = {{ url = "{hook[1]}", secret_env = "TEST_HOOK_SECRET", timeout_s = {WAIT_S} }}'
        "\n\n"
        '[[rules]]\nname = "all"\nsinks = ["hook"]\n',
        encoding="utf-8",
    )
    with redis_db_url() as url:
        values = Settings(
            broker_url=url,
            database_url=f"sqlite:///{tmp_path / 'cables.db'}",
            var_dir=tmp_path / "var",
            batch_size=1,
            visibility_timeout=VISIBILITY_S,
            config_file=config,
        )
        upgrade(values.database_url)
        yield values


def _env(settings: Settings, var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env.update(settings.to_env())
    env["CABLE_INGEST_VAR_DIR"] = str(var_dir)  # one worker per var dir (its metrics)
    env["CABLE_INGEST_LOG_FORMAT"] = "json"
    env["TEST_HOOK_SECRET"] = "a secret the peer does not check"
    return env


def _worker(settings: Settings, name: str) -> subprocess.Popen[bytes]:
    """``cable-ingest worker -c 1`` in a session of its own (killed as a group, pool included)."""
    folder = settings.var_dir.parent / name
    folder.mkdir()
    with (folder / "worker.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "--concurrency", "1"],
            env=_env(settings, folder),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _kill(process: subprocess.Popen[bytes]) -> None:
    """kill -9 of the worker's main process (Celery's pool processes die with it: prefork sets
    their parent-death signal to SIGKILL)."""
    process.send_signal(signal.SIGKILL)
    process.wait(30)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """kill -9 of whatever is left of the worker's process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            _kill_group(process)


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=_env(settings, settings.var_dir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _status(settings: Settings) -> dict[str, Any]:
    done = _cli(settings, "status", "--json")
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = orjson.loads(done.stdout)
    return document


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT_S} s: {what}")
        time.sleep(0.2)


def _hook_held(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in status["held"] if h["queue"] == HOOK_QUEUE]


def _put_back(settings: Settings) -> dict[str, Any]:
    done = _cli(settings, "put-back", "--json")
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = orjson.loads(done.stdout)
    return answer


def _hook_queue(status: dict[str, Any]) -> tuple[int, int]:
    queue = next(q for q in status["queues"] if q["name"] == HOOK_QUEUE)
    return queue["unacked"], queue["lost"]


def _both_alive(settings: Settings) -> None:
    """Each worker holds one delivery; put-back leaves both alone."""
    before = _status(settings)
    held = _hook_held(before)
    assert [(h["alive"], h["messages"]) for h in held] == [(True, 1), (True, 1)]
    assert len(before["workers"]) == 2
    answer = _put_back(settings)
    assert (answer["put_back"], answer["lost"], len(answer["left_alive"])) == (0, [], 2)


def _one_killed(settings: Settings, first: subprocess.Popen[bytes]) -> None:
    """The first worker killed: its delivery shows as held by a lost worker, with its return
    time; put-back returns it and leaves the live one's; readiness holds (a worker is on)."""
    _kill(first)
    _until(
        lambda: any(h["alive"] is False for h in _hook_held(_status(settings))),
        "status sees the first worker's message as held by a lost consumer",
    )
    after = _status(settings)
    assert _hook_queue(after) == (2, 1)
    [lost] = [h for h in _hook_held(after) if h["alive"] is False]
    assert lost["messages"] == 1
    assert lost["returns_at"] is not None
    assert after["visibility_timeout_s"] == VISIBILITY_S
    screen = _cli(settings, "status").stdout
    assert "held by lost consumers: 1 message" in screen
    assert "back on the queue at" in screen
    assert "cable-ingest put-back" in screen
    assert _cli(settings, "health").returncode == 0  # the second worker is online
    answer = _put_back(settings)
    assert answer["put_back"] == 1
    assert [h["holder"] for h in answer["lost"]] == [lost["holder"]]
    assert [h["alive"] for h in answer["left_alive"]] == [True]
    assert _hook_queue(_status(settings)) == (1, 0)  # the live one's, untouched
    assert _put_back(settings)["put_back"] == 0


def _all_killed(settings: Settings, second: subprocess.Popen[bytes]) -> None:
    """The second worker killed too: not ready, at once (the acks are seconds old)."""
    _kill(second)
    _until(lambda: _cli(settings, "health").returncode == 1, "readiness turns")
    health = _cli(settings, "health", "--json")
    assert "no worker is connected to the broker" in health.stderr
    assert orjson.loads(health.stdout)["details"]["workers_online"] == 0


@pytest.mark.timeout(600)
def test_kill_9_of_workers_holding_messages(settings: Settings, hook: tuple[Hook, str]) -> None:
    """Two workers each hold a webhook delivery (the peer keeps it waiting). ``put-back``
    leaves both alone; after ``kill -9`` of one, status shows its message as held by a lost
    worker with the time the visibility timeout returns it, ``put-back`` returns that one only
    and readiness stays (a worker is online); after ``kill -9`` of the other, readiness turns
    at once; a new worker returns the second one when it starts; every cable is stored once,
    every notification's key accepted, nothing dead-lettered."""
    peer, _url = hook
    text = SAMPLE.read_text(encoding="utf-8")
    with Producer(settings) as producer:
        ids = producer.enqueue_many(
            [text.replace("000598", f"{n + 4100:06d}", 1) for n in range(CABLES)], source="t"
        )
    first, second = _worker(settings, "a"), _worker(settings, "b")
    workers = [first, second]
    try:
        _until(lambda: peer.waiting == 2, "each worker holds a delivery")
        _both_alive(settings)
        _one_killed(settings, first)
        _all_killed(settings, second)
        peer.release.set()
        workers.append(_worker(settings, "c"))
        receipts = ReceiptStore(settings.database_url)
        try:
            _until(lambda: receipts.received(ids, "hook") == set(ids), "every delivery")
            assert receipts.received(ids, "storage") == set(ids)
            assert receipts.outcomes(ids, "storage") == {"inserted": CABLES}
        finally:
            receipts.close()
        log = (settings.var_dir.parent / "c" / "worker.log").read_text(errors="replace")
        assert '"lost_messages_put_back"' in log  # at start-up, not after the hour
        assert len(set(peer.keys)) == CABLES  # one key per notification, each accepted
        letters = DeadLetterStore(settings.database_url)
        try:
            assert letters.counts_by_stage() == {}
        finally:
            letters.close()
        _until(lambda: _status(settings)["held"] == [], "nothing held any more")
    finally:
        for process in workers:
            _stop(process)
            _kill_group(process)
