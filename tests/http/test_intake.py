"""Group commit: concurrent requests share queue messages, answered only once published;
back-pressure and a missing broker refuse the whole group with 503 and Retry-After."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from worker.http.intake import GroupCommit, MemoryQueue, pack
from worker.http.problems import Problem
from worker.storage import ReceiptStore, upgrade
from worker.storage.catalog import Catalog


def _envelopes(count: int, tag: str = "e") -> list[dict[str, Any]]:
    return [{"id": f"{tag}{n}", "sha256": "0" * 64, "source": "feed-a"} for n in range(count)]


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


def _accepted(url: str, envelopes: list[dict[str, Any]]) -> list[str]:
    catalog = Catalog(url)
    try:
        return [e["id"] for e in envelopes if catalog.message(e["id"])["accepted"] is not None]
    finally:
        catalog.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    """The receipts' store on a fresh SQLite database, and its URL."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url)
    store = ReceiptStore(url)
    yield store, url
    store.close()


def test_a_published_group_is_recorded_as_accepted_and_a_refused_one_is_not(ledger: Any) -> None:
    """The envelopes of a published group are accepted (their receipts say queued); those of a
    group the broker refused are forgotten again, so their ids stay unknown."""
    store, url = ledger
    queue = MemoryQueue()
    published, refused = _envelopes(3, "ok-"), _envelopes(2, "no-")
    assert asyncio.run(_committed(queue, [published], ledger=store)) == [None]
    queue.failing = True
    (result,) = asyncio.run(_committed(queue, [refused], ledger=store))
    assert isinstance(result, Problem)
    assert _accepted(url, published + refused) == ["ok-0", "ok-1", "ok-2"]


def test_a_group_whose_acceptance_cannot_be_recorded_is_a_503_and_is_not_published(
    tmp_path: Path,
) -> None:
    """With the database gone (never migrated: no table), nothing is published and every
    request of the group gets 503 ``receipts_unavailable``: a 202 promises a receipt."""
    store = ReceiptStore(f"sqlite:///{tmp_path / 'no-tables.db'}")
    queue = MemoryQueue()
    (result,) = asyncio.run(_committed(queue, [_envelopes(2)], ledger=store))
    store.close()
    assert isinstance(result, Problem)
    assert (result.status, result.code) == (503, "receipts_unavailable")
    assert queue.messages == []


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


class _GatedQueue(MemoryQueue):
    """A queue whose publish of the first message waits for ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.publishing = threading.Event()
        self.release = threading.Event()

    def publish(self, envelopes: Sequence[dict[str, Any]]) -> None:
        if not self.messages:
            self.publishing.set()
            assert self.release.wait(10), "the test never released the first publish"
        super().publish(envelopes)


class _Ledger:
    """Records what was accepted, and what had been published at that moment."""

    def __init__(self, queue: MemoryQueue) -> None:
        self.queue = queue
        self.accepted: list[tuple[list[str], int]] = []

    def accept(self, envelopes: Sequence[dict[str, Any]]) -> None:
        self.accepted.append(([str(e["id"]) for e in envelopes], len(self.queue.messages)))

    def forget_accepted(self, message_ids: Sequence[str]) -> None:
        raise AssertionError(f"nothing should be forgotten: {message_ids}")


def test_the_next_group_is_recorded_while_one_is_published_and_order_is_kept() -> None:
    """Recording and publishing are two stages: a group arriving while the one before is
    being published is recorded at once (nothing published yet), is published only after
    it, and neither request is answered before its own message is in the queue."""
    queue = _GatedQueue()
    ledger = _Ledger(queue)

    async def scenario() -> None:
        commit = GroupCommit(queue, batch_size=100, window_s=0.0, high_water_mark=1000,
                             ledger=ledger)  # fmt: skip
        commit.start()
        try:
            first = asyncio.ensure_future(commit.submit(_envelopes(2, "a-")))
            assert await asyncio.to_thread(queue.publishing.wait, 10)
            second = asyncio.ensure_future(commit.submit(_envelopes(3, "b-")))
            for _ in range(500):  # the second group's record does not wait for the publish
                if len(ledger.accepted) == 2:
                    break
                await asyncio.sleep(0.01)
            assert [ids for ids, _ in ledger.accepted] == [["a-0", "a-1"], ["b-0", "b-1", "b-2"]]
            assert ledger.accepted[1][1] == 0  # recorded while nothing was published yet
            assert not first.done()
            assert not second.done()
            queue.release.set()
            await asyncio.gather(first, second)
        finally:
            queue.release.set()
            await commit.stop()

    asyncio.run(scenario())
    assert [[e["id"] for e in m] for m in queue.messages] == [["a-0", "a-1"], ["b-0", "b-1", "b-2"]]
