"""Real processes that hold Redis connections, for the tests of held messages and readiness: a
consumer that takes one message and never acknowledges it, and a process connected as a
worker's main process that consumes nothing (a stuck worker). Kill them with SIGKILL."""

from __future__ import annotations

import subprocess
import sys

CONSUMER = """
import sys, time
from worker.queue.app import create_app
from worker.settings import Settings

app = create_app(Settings(broker_url=sys.argv[1]))
with app.connection_for_read() as connection:
    message = connection.default_channel.basic_get(sys.argv[2], no_ack=False)
    print("took" if message is not None else "none", flush=True)
    time.sleep(600)
"""

STUCK_WORKER = """
import sys, time
from worker.queue import broker
from worker.queue.app import create_app
from worker.settings import Settings

broker.mark_worker_process()
app = create_app(Settings(broker_url=sys.argv[1]))
with app.connection_for_read() as connection:
    connection.default_channel.client.ping()
    print("connected", flush=True)
    time.sleep(600)
"""


def consumer(url: str, queue: str = "intake") -> subprocess.Popen[str]:
    """A process that has taken one message of ``queue`` and holds it."""
    return _started([sys.executable, "-c", CONSUMER, url, queue], "took")


def stuck_worker(url: str) -> subprocess.Popen[str]:
    """A process connected to Redis as a worker's main process, consuming nothing."""
    return _started([sys.executable, "-c", STUCK_WORKER, url], "connected")


def sigkill(process: subprocess.Popen[str]) -> None:
    """kill -9, and close its pipe."""
    process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _started(command: list[str], said: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != said:
        sigkill(process)
        raise AssertionError(f"the helper process said {line!r}, not {said!r}")
    return process
