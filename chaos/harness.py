"""What every chaos scenario needs: its own services, real worker processes, a webhook peer it
can break, and an exact reconciliation of what was sent against what became of it.

Scenarios that restart or stop a service run their own instance of it (a redis-server on a free
port, a PostgreSQL cluster made with initdb in a temporary folder), never the machine's shared
services, and remove it afterwards.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
from sqlalchemy import create_engine, text

from worker.storage import DeadLetterStore, ReceiptStore

WAIT_S = 300.0  # the longest a scenario waits for every outcome once its faults are over
POLL_S = 0.25


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _wait_until(ready: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(ready) and ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


class RedisServer:
    """A redis-server of our own (AOF on, so a restart keeps the queues), on a free port."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the server on the same port and folder."""
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.folder), "--appendonly", "yes", "--save", ""]
        command += ["--appendfsync", "everysec", "--logfile", str(self.folder / "redis.log")]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        _wait_until(answers, f"redis-server on port {self.port}")
        client.close()

    def stop(self) -> None:
        """Shut down cleanly (the AOF is flushed), as an operator's restart would."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(redis.RedisError):
            redis.Redis(port=self.port).shutdown(nosave=False)
        self.process.wait(30)


class PostgresCluster:
    """A PostgreSQL cluster of our own: initdb in a temporary folder, a free port, trust auth."""

    def __init__(self, folder: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.bin, self.data, self.port = bins[-1], folder / "pgdata", free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.data.mkdir(parents=True)
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        if self._as_postgres:  # the postgres user must reach and own its folders
            folder.parent.chmod(0o711)
            shutil.chown(folder, "postgres")
            shutil.chown(self.data, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, timeout=120, check=False)
        if done.returncode:
            why = (done.stderr or done.stdout).decode(errors="replace").strip()
            raise RuntimeError(f"{tool} failed ({done.returncode}): {why[-500:]}")

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "log"),
                  "-w", "start")  # fmt: skip

    def stop(self) -> None:
        """Stop now (fast: open connections are cut, as when a server goes away)."""
        with contextlib.suppress(RuntimeError):  # already stopped
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


class Workers:
    """``cable-ingest worker`` (or ``celery -A worker.app worker`` with plugins) as a child."""

    def __init__(
        self, env: dict[str, str], log: Path, concurrency: int = 2, plugins: Sequence[str] = ()
    ) -> None:
        self.env, self.log, self.concurrency, self.plugins = env, log, concurrency, plugins
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start a worker consuming every queue."""
        command = [sys.executable, "-m", "worker", "worker", "-c", str(self.concurrency)]
        if self.plugins:
            command = [sys.executable, "-m", "celery", "-A", "worker.app", "worker"]
            command += ["-c", str(self.concurrency)]
            for plugin in self.plugins:
                command += ["-I", plugin]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def children(self) -> list[psutil.Process]:
        """The pool processes now."""
        if self.process is None:
            return []
        with contextlib.suppress(psutil.Error):
            return psutil.Process(self.process.pid).children(recursive=True)
        return []

    def kill_child(self) -> bool:
        """kill -9 one pool process at random; False when there was none."""
        children = self.children()
        if not children:
            return False
        with contextlib.suppress(psutil.Error):
            random.choice(children).send_signal(signal.SIGKILL)
        return True

    def kill_all(self) -> None:
        """kill -9 the whole worker: main process and pool, no warm shutdown."""
        if self.process is None:
            return
        for process in [*self.children(), psutil.Process(self.process.pid)]:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then kill after a minute."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.kill_all()


class Receiver:
    """A webhook peer that can answer 200, 500 or hang; it counts the keys it accepted."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.accepted: Counter[str] = Counter()
        self.requests = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests += 1
                if receiver.mode == "hang":
                    time.sleep(5)  # longer than the sink's timeout: the sender gives up first
                    self.close_connection = True
                    return
                status = 200 if receiver.mode == "ok" else 500
                if status == 200:
                    receiver.accepted[self.headers["Idempotency-Key"]] += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    @property
    def duplicated(self) -> int:
        """Keys accepted more than once (each acted on twice by a receiver that trusted us)."""
        return sum(count - 1 for count in self.accepted.values() if count > 1)


def environment(folder: Path, **settings: str) -> dict[str, str]:
    """The worker and producer environment: this process's, minus CABLE_INGEST_*, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env |= {"CABLE_INGEST_VAR_DIR": str(folder / "var"), "CABLE_INGEST_LOG_FORMAT": "json"}
    env |= {f"CABLE_INGEST_{name.upper()}": value for name, value in settings.items()}
    return env


@contextlib.contextmanager
def scratch(name: str) -> Iterator[Path]:
    """A temporary folder for one scenario, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=f"cable-ingest-chaos-{name}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Outcome:
    """What became of the cables of one scenario."""

    sent: int
    stored: int = 0
    dead_lettered: int = 0
    withheld: int = 0
    rejected: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: int = 0
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # checks of the scenario that failed


def outcomes(
    database_url: str, sent: Sequence[str], notify: str | None = None
) -> tuple[set[str], set[str], set[str]]:
    """The message ids of ``sent`` that are stored, dead-lettered (any stage) and, for the
    notification sink ``notify``, settled there (delivered, withheld or dead-lettered)."""
    receipts, letters = ReceiptStore(database_url), DeadLetterStore(database_url)
    try:
        stored = receipts.received(sent, "storage")
        dead_letters = letters.for_messages(sent)
        dead = {str(d["message_id"]) for d in dead_letters if not d["stage"].startswith("sink:")}
        dead |= {str(d["message_id"]) for d in dead_letters if d["stage"] == "sink:storage"}
        settled: set[str] = set()
        if notify is not None:
            settled = receipts.received(sent, notify)
            settled |= {
                str(d["message_id"]) for d in dead_letters if d["stage"] == f"sink:{notify}"
            }
        return stored, dead, settled
    finally:
        receipts.close()
        letters.close()


def wait_for_outcomes(
    database_url: str,
    sent: Sequence[str],
    notify: str | None = None,
    timeout: float = WAIT_S,
    alive: Workers | None = None,
) -> float:
    """Wait until every sent cable is stored or dead-lettered (and settled at ``notify``);
    return when that happened (monotonic), or the time of giving up."""
    deadline = time.monotonic() + timeout
    while True:
        stored, dead, settled = outcomes(database_url, sent, notify)
        done = len(stored | dead) == len(sent)
        if notify is not None:
            done = done and len(settled | dead) == len(sent)
        if done or time.monotonic() > deadline:
            return time.monotonic()
        if alive is not None and alive.process is not None and alive.process.poll() is not None:
            alive.start()  # a worker that died on its own (not by our hand) is restarted
        time.sleep(POLL_S)


def reconcile(
    database_url: str,
    sent: Sequence[str],
    notify: str | None = None,
    *,
    revisions_expected: bool = False,
) -> Outcome:
    """sent = stored + dead-lettered, exactly; ``duplicated`` counts rows written twice: more
    cable rows than stored messages, or (unless ``revisions_expected``: the inputs share
    reference ids) a second revision of a cable, since every cable a scenario sends is
    distinct. With a notification sink, how many it withheld."""
    stored, dead, _ = outcomes(database_url, sent, notify)
    outcome = Outcome(len(sent), len(stored), len(dead - stored))
    outcome.lost = sorted(set(sent) - stored - dead)
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            revisions = conn.execute(text("SELECT count(*) FROM cable_revisions")).scalar_one()
            rows = conn.execute(text("SELECT count(*) FROM cables")).scalar_one()
    finally:
        engine.dispose()
    outcome.duplicated = max(0, int(rows) - len(stored))
    if not revisions_expected:
        outcome.duplicated += int(revisions)
    if notify is not None:
        receipts = ReceiptStore(database_url)
        try:
            outcome.withheld = receipts.outcomes(sent, notify).get("withheld", 0)
        finally:
            receipts.close()
    return outcome
