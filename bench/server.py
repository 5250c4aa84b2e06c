"""Start and stop a uvicorn server process on a free loopback port, for the HTTP benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO

START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Return once ``port`` accepts connections; raise when ``process`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the server did not listen on port {port} within {timeout:g} s")


def start_uvicorn(
    factory: str, extra: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m uvicorn --factory FACTORY`` on a free port: (process, port)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(port)]
    command += ["--no-access-log", "--log-level", "warning", *extra]
    process = subprocess.Popen(command, env={**os.environ, **(env or {})})
    wait_for_port(port, process, START_TIMEOUT_S)
    return process, port


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server (SIGTERM, then SIGKILL after 10 s)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_serve(env: Mapping[str, str], log: IO[bytes]) -> tuple[subprocess.Popen[bytes], int]:
    """``cable-ingest serve`` on a free loopback port with environment ``env``: (process, port).
    Its log (JSON lines, stderr and stdout) goes to ``log``."""
    port = free_port()
    command = [sys.executable, "-m", "worker", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, process, START_TIMEOUT_S)
    return process, port
