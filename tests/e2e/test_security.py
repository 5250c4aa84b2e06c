"""Hostile producers and leaky logs, against real worker processes: a pickle-serialised message
is refused without being unpickled, and no password reaches a log, stdout or stderr."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import SAMPLE, Runner
from tests.e2e.test_redelivery import _stop
from tests.services import postgres_schema_url, redis_db_url
from worker.intake.envelope import make_envelope
from worker.queue.app import INGEST_TASK, INTAKE_QUEUE, create_app
from worker.settings import Settings
from worker.storage import ReceiptStore, upgrade

WAIT_S = 60


class Exploit:
    """Unpickling this runs a shell command that leaves a file behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings on the test Redis database and a fresh SQLite file."""
    with redis_db_url() as url:
        values = Settings(broker_url=url, var_dir=tmp_path / "var")
        upgrade(values.database_url)
        yield values


def test_a_pickled_message_is_refused_and_never_unpickled(
    settings: Settings, tmp_path: Path
) -> None:
    """A message serialised with pickle, carrying an object whose unpickling would run a
    command, is refused by the worker (ContentDisallowed, in its log); the command never
    runs, and the cable sent after it is stored as usual."""
    marker = tmp_path / "pwned"
    app = create_app(settings)
    app.send_task(INGEST_TASK, args=[[Exploit(marker)]], queue=INTAKE_QUEUE, serializer="pickle")
    envelope = make_envelope(SAMPLE.read_text(encoding="utf-8"), source="tests/security")
    app.send_task(INGEST_TASK, args=[[envelope]], queue=INTAKE_QUEUE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env |= {"CABLE_INGEST_BROKER_URL": settings.broker_url}
    env |= {"CABLE_INGEST_VAR_DIR": str(settings.var_dir), "CABLE_INGEST_LOG_FORMAT": "json"}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        command = [sys.executable, "-m", "worker", "worker", "--concurrency", "1"]
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    receipts = ReceiptStore(settings.database_url)
    try:
        wanted = {str(envelope["id"])}
        deadline = time.monotonic() + WAIT_S
        while receipts.received(wanted, "storage") != wanted and time.monotonic() < deadline:
            time.sleep(0.2)
        assert receipts.received(wanted, "storage") == wanted
        assert process.poll() is None, "the worker must survive the hostile message"
    finally:
        _stop(process)
        receipts.close()
    assert not marker.exists(), "the pickled payload was unpickled"
    assert "ContentDisallowed" in log.read_text(errors="replace")


PASSWORD = "Pw-never-logged-5f3a"


def test_no_password_reaches_a_log(
    run_cli: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run with a password in the database URL (PostgreSQL's trust auth accepts it) and a
    webhook secret: neither appears in the worker log, stdout or stderr."""
    received: list[bytes] = []
    hook = _receiver(received)
    config = tmp_path / "sinks.toml"
    config.write_text(
        f'[sinks.hook]\ntype = "webhook"\nmax_classification = "SECRET//NOFORN"\n'
        f'options = {{ url = "{hook}", secret_env = "HOOK_SECRET" }}\n'
        '[[rules]]\nname = "all"\nsinks = ["hook"]\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("HOOK_SECRET", PASSWORD)
    with postgres_schema_url() as url:
        host = url.split("@", 1)[1]
        with_password = f"postgresql+psycopg://postgres:{PASSWORD}@{host}"
        code, summary, stderr = run_cli(
            [str(SAMPLE)], database_url=with_password, config=str(config)
        )
    assert code == 0, stderr
    assert summary["stored"] == {"inserted": 1}
    assert received, "the webhook was called"
    logs = b"".join(p.read_bytes() for p in (tmp_path / "var" / "logs").iterdir())
    assert b"***" in logs or b"postgres" in logs  # the URL was logged, masked
    for where, content in {"worker log": logs, "stderr": stderr.encode()}.items():
        assert PASSWORD.encode() not in content, f"the password leaked into the {where}"
    assert PASSWORD not in str(summary)


def _receiver(received: list[bytes]) -> str:
    """A local webhook receiver that answers 200; returns its URL."""
    import http.server  # noqa: PLC0415
    import threading  # noqa: PLC0415

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook"
