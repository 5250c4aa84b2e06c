"""The real services the tests use on loopback: PostgreSQL and Redis, and a Redis primary with
a Sentinel that a test starts itself.

A test that needs one calls these helpers: when the service is not reachable the test is
skipped with the reason, except in CI (``CI=true``) where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import make_url

from worker.settings import redact_url

PG_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_DEFAULT_URL = "redis://127.0.0.1:6379/13"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def unavailable(message: str) -> None:
    """Skip the test, or fail it in CI, because a service it needs is not reachable."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search path is a fresh schema, dropped afterwards."""
    base = os.environ.get("CABLE_INGEST_TEST_PG_URL", PG_DEFAULT_URL)
    admin = create_engine(base, connect_args={"connect_timeout": 5})
    schema = f"test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except exc.OperationalError:
        admin.dispose()
        unavailable(f"PostgreSQL not reachable at {redact_url(base)}")
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def redis_db_url() -> Iterator[str]:
    """The URL of a Redis database for tests (db 13 by default), emptied before and after."""
    url = os.environ.get("CABLE_INGEST_TEST_REDIS_URL", REDIS_DEFAULT_URL)
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.ConnectionError:
        client.close()
        unavailable(f"Redis not reachable at {redact_url(url)}")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


SENTINEL_MASTER = "cables-primary"
SENTINEL_START_S = 20.0


@dataclass(frozen=True)
class Sentinel:
    """A Redis primary and one Sentinel watching it, both on loopback, started by the test."""

    url: str  # sentinel://127.0.0.1:PORT/0: no master name, no password
    master: str
    redis_port: int
    password: str | None  # the primary's requirepass
    sentinel_password: str | None  # the sentinel's own requirepass

    def primary(self) -> redis.Redis:
        """A plain client of the primary's database 0 (to look at what was written)."""
        return redis.Redis(port=self.redis_port, password=self.password, socket_timeout=5)


@contextmanager
def redis_sentinel(folder: Path, *, passwords: bool = False) -> Iterator[Sentinel]:
    """Start ``redis-server`` as a primary (no persistence) and as a Sentinel monitoring it under
    :data:`SENTINEL_MASTER` (quorum 1), in ``folder``; with ``passwords``, each has its own
    requirepass. Stopped (SIGTERM, then waited for) afterwards."""
    server = shutil.which("redis-server")
    if server is None:
        unavailable("redis-server is not installed (Debian: apt-get install redis-server)")
    assert server is not None
    password = f"data-{uuid.uuid4().hex[:8]}" if passwords else None
    sentinel_password = f"watch-{uuid.uuid4().hex[:8]}" if passwords else None
    redis_port, sentinel_port = closed_port(), closed_port()
    folder.mkdir(parents=True, exist_ok=True)
    primary = [server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(folder)]  # fmt: skip
    if password:
        primary += ["--requirepass", password]
    conf = [
        f"port {sentinel_port}",
        "bind 127.0.0.1",
        f'dir "{folder}"',
        f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {redis_port} 1",
    ]
    if password:
        conf.append(f"sentinel auth-pass {SENTINEL_MASTER} {password}")
    if sentinel_password:
        conf.append(f"requirepass {sentinel_password}")
    (folder / "sentinel.conf").write_text("\n".join(conf) + "\n", encoding="utf-8")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for argv, log in ((primary, "redis.log"), ([server, str(folder / "sentinel.conf"),
                                                   "--sentinel"], "sentinel.log")):  # fmt: skip
            with (folder / log).open("wb") as out:
                processes.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT))
        watcher = redis.Redis(port=sentinel_port, password=sentinel_password, socket_timeout=2)
        _wait_for_master(watcher, processes, folder)
        watcher.close()
        url = f"sentinel://127.0.0.1:{sentinel_port}/0"
        yield Sentinel(url, SENTINEL_MASTER, redis_port, password, sentinel_password)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


def _wait_for_master(
    watcher: redis.Redis, processes: list[subprocess.Popen[bytes]], folder: Path
) -> None:
    """Until the Sentinel names the primary (a failure names the logs' last lines)."""
    deadline = time.monotonic() + SENTINEL_START_S
    while True:
        try:
            if watcher.sentinel_get_master_addr_by_name(SENTINEL_MASTER):
                return
        except redis.RedisError:
            pass
        exited = [process.args for process in processes if process.poll() is not None]
        if exited or time.monotonic() > deadline:
            logs = {p.name: p.read_text(errors="replace")[-500:] for p in folder.glob("*.log")}
            raise AssertionError(f"redis-server did not start as primary and Sentinel: {logs}")
        time.sleep(0.05)
