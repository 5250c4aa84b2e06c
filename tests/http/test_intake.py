"""Group commit: concurrent requests share queue messages, answered only once published;
back-pressure and a missing broker refuse the whole group with 503 and Retry-After."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from worker.http.intake import GroupCommit, MemoryQueue, pack
from worker.http.problems import Problem


def _envelopes(count: int, tag: str = "e") -> list[dict[str, Any]]:
    return [{"id": f"{tag}{n}"} for n in range(count)]


async def _committed(
    queue: MemoryQueue, requests: list[list[dict[str, Any]]], **options: Any
) -> list[BaseException | None]:
    commit = GroupCommit(queue, **{"batch_size": 100, "window_s": 0.05, "high_water_mark": 1000,
                                   **options})  # fmt: skip
    commit.start()
    try:
        results = await asyncio.gather(
            *(commit.submit(envelopes) for envelopes in requests), return_exceptions=True
        )
    finally:
        await commit.stop()
    return [r if isinstance(r, BaseException) else None for r in results]


def test_concurrent_single_cable_requests_become_one_message() -> None:
    """Thirty concurrent one-envelope requests are published as a single message, in order."""
    queue = MemoryQueue()
    requests = [_envelopes(1, f"r{n}-") for n in range(30)]
    assert asyncio.run(_committed(queue, requests)) == [None] * 30
    assert [[e["id"] for e in m] for m in queue.messages] == [[f"r{n}-0" for n in range(30)]]


def test_a_full_batch_is_cut_at_the_batch_size() -> None:
    """250 envelopes from five requests of 50 with a batch size of 100 make messages of at most
    100, no request split, nothing lost."""
    queue = MemoryQueue()
    requests = [_envelopes(50, f"r{n}-") for n in range(5)]
    asyncio.run(_committed(queue, requests, batch_size=100))
    assert all(len(m) <= 100 for m in queue.messages)
    assert sum(len(m) for m in queue.messages) == 250
    assert len(queue.messages) == 3


def test_above_the_high_water_mark_every_request_gets_503_and_nothing_is_published() -> None:
    """With the queue above its mark, the group is refused with ``overloaded``, Retry-After set."""
    queue = MemoryQueue()
    queue.waiting = 5000
    results = asyncio.run(_committed(queue, [_envelopes(1), _envelopes(2)]))
    assert queue.messages == []
    for result in results:
        assert isinstance(result, Problem)
        assert (result.status, result.code) == (503, "overloaded")
        assert int(result.headers["Retry-After"]) > 0


def test_a_broker_that_does_not_answer_is_a_503_queue_unavailable() -> None:
    """A publish failure refuses the group with ``queue_unavailable``."""
    queue = MemoryQueue()
    queue.failing = True
    (result,) = asyncio.run(_committed(queue, [_envelopes(3)]))
    assert isinstance(result, Problem)
    assert (result.status, result.code) == (503, "queue_unavailable")


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([1, 1, 1], [3]),
        ([60, 60], [60, 60]),
        ([250], [100, 100, 50]),
        ([30, 250, 5], [30, 100, 100, 50, 5]),
    ],
)
def test_pack_keeps_requests_whole_unless_one_is_over_the_batch_size(
    sizes: list[int], expected: list[int]
) -> None:
    """Messages hold whole requests in order; only a request over the batch size is cut."""
    groups = [_envelopes(size, f"g{n}-") for n, size in enumerate(sizes)]
    messages = pack(groups, 100)
    assert [len(m) for m in messages] == expected
    assert [e["id"] for m in messages for e in m] == [e["id"] for g in groups for e in g]
