"""A retry is never put off past what the visibility timeout allows: a worker holds a retried
message unacknowledged until its countdown ends, and Redis would hand a message held longer
than the timeout to a second worker. A peer asking for an hour (Retry-After: 3600) is retried
after 510 s with the defaults (900 s timeout, 330 s hard time limit, 60 s margin)."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.e2e.conftest import SAMPLE
from tests.services import redis_db_url
from worker.intake.producer import Producer
from worker.queue.policy import longest_wait
from worker.settings import Settings
from worker.storage import upgrade

WAIT_S = 120


@pytest.fixture
def peer() -> Iterator[str]:
    """A webhook peer that answers every request 429, Retry-After: 3600."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(429)
            self.send_header("Retry-After", "3600")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(300)
def test_a_peer_asking_for_an_hour_is_retried_within_the_visibility_timeout(
    tmp_path: Path, peer: str
) -> None:
    """The worker's ``retried`` line gives a countdown of 510 s, not 3,600."""
    config = tmp_path / "sinks.toml"
    config.write_text(
        f'[sinks.hook]\ntype = "webhook"\nmax_classification = "TOP SECRET"\n'
        f'options = {{ url = "{peer}", secret_env = "TEST_HOOK_SECRET" }}\n\n'
        '[[rules]]\nname = "all"\nsinks = ["hook"]\n',
        encoding="utf-8",
    )
    with redis_db_url() as url:
        settings = Settings(broker_url=url, var_dir=tmp_path / "var", config_file=config)
        upgrade(settings.database_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
        env |= settings.to_env() | {"CABLE_INGEST_LOG_FORMAT": "json", "TEST_HOOK_SECRET": "s"}
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "worker", "worker", "--concurrency", "1"],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            with Producer(settings) as producer:
                producer.enqueue(SAMPLE.read_text(encoding="utf-8"), source="t")
            deadline = time.monotonic() + WAIT_S
            retried: list[dict[str, object]] = []
            while not retried and time.monotonic() < deadline:
                time.sleep(0.2)
                lines = log.read_text(errors="replace").splitlines()
                events = [orjson.loads(line) for line in lines if line.startswith("{")]
                retried = [e for e in events if e.get("event") == "retried"]
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert retried, "the delivery was not retried"
    expected = longest_wait(settings.visibility_timeout, settings.task_time_limit)
    assert retried[0]["countdown_s"] == expected == 510
