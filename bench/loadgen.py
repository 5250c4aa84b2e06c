"""A bounded HTTP/1.1 load generator for loopback benchmarks: raw asyncio sockets, keep-alive.

httpx spends more CPU per request than the server under test does, so on a 2-core machine it
would measure itself. This client writes pre-built requests on ``connections`` keep-alive
sockets and reads the responses with a minimal parser (status line, ``Content-Length``). Every
run is bounded: ``requests`` in total, and ``deadline_s`` at most. Two modes:

- closed loop (``rate`` None): each connection sends its next request when the answer arrives;
  the figure is the most the server answers per second;
- open loop (``rate`` requests/s): requests leave on a fixed schedule whatever the answers do,
  so latency includes the time a request waited for its connection (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

RequestFactory = Callable[[int], bytes]


def build_request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    """One HTTP/1.1 request, ready to write."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(slots=True)
class Result:
    """What a run measured."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0

    @property
    def rate(self) -> float:
        """Answers per second."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        """Latency at ``share`` (0.5: median), in milliseconds."""
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else 0.0
        cuts = statistics.quantiles(self.latencies, n=1000, method="inclusive")
        return cuts[min(998, max(0, round(share * 1000) - 1))] * 1000


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    port: int,
    make: RequestFactory,
    next_index: Callable[[], int | None],
    result: Result,
    schedule: Callable[[int], float] | None,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (index := next_index()) is not None:
            start = time.perf_counter()
            if schedule is not None:
                due = schedule(index)
                if due > start:
                    await asyncio.sleep(due - start)
                start = due
            writer.write(make(index))
            result.sent += 1
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                result.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            result.statuses[status] += 1
            result.latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


async def run_load(
    port: int,
    make: RequestFactory,
    *,
    requests: int,
    connections: int = 32,
    rate: float | None = None,
    deadline_s: float = 60.0,
) -> Result:
    """Send ``requests`` requests (``make(i)`` builds the i-th) and measure the answers."""
    result = Result()
    counter = iter(range(requests))
    started = time.perf_counter()
    stop_at = started + deadline_s

    def next_index() -> int | None:
        if time.perf_counter() > stop_at:
            return None
        return next(counter, None)

    def schedule(index: int) -> float:
        assert rate is not None
        return started + index / rate

    tasks = [
        _connection(port, make, next_index, result, schedule if rate else None)
        for _ in range(connections)
    ]
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - started
    return result


def load(
    port: int,
    make: RequestFactory,
    *,
    requests: int,
    connections: int = 32,
    rate: float | None = None,
    deadline_s: float = 60.0,
) -> Result:
    """:func:`run_load` from synchronous code."""
    return asyncio.run(
        run_load(port, make, requests=requests, connections=connections, rate=rate,
                 deadline_s=deadline_s)
    )  # fmt: skip
