"""The order a worker takes from its queues: round robin among the live ones, reparse last."""

from __future__ import annotations

from queue import Empty

import pytest

from worker.queue.order import REPARSE_QUEUE, BackgroundLast, PollInOrder, background_last


def test_background_queues_move_to_the_end_and_the_rest_keeps_its_order() -> None:
    """reparse goes last wherever it was declared; the live queues keep their order."""
    assert background_last([REPARSE_QUEUE, "intake", "sink.storage"]) == [
        "intake",
        "sink.storage",
        REPARSE_QUEUE,
    ]


def test_live_queues_take_turns_and_reparse_stays_last() -> None:
    """After taking from a live queue it goes behind the other live queues, never behind
    reparse; taking from reparse changes nothing."""
    order = BackgroundLast()
    order.update([REPARSE_QUEUE, "intake", "sink.storage"])
    assert order.consume(3) == ["intake", "sink.storage", REPARSE_QUEUE]
    order.rotate("intake")
    assert order.consume(3) == ["sink.storage", "intake", REPARSE_QUEUE]
    order.rotate(REPARSE_QUEUE)
    assert order.consume(3) == ["sink.storage", "intake", REPARSE_QUEUE]
    order.rotate("gone")  # a queue no longer consumed: nothing moves
    assert order.consume(2) == ["sink.storage", "intake"]


def test_polling_takes_reparse_only_when_the_live_queues_are_empty() -> None:
    """With messages on both, every poll takes intake's until it is empty, then reparse's."""
    waiting = {REPARSE_QUEUE: ["r1", "r2"], "intake": ["i1", "i2"]}
    taken: list[str] = []

    def get(queue: str, callback: object) -> str:
        if not waiting[queue]:
            raise Empty()
        taken.append(waiting[queue].pop(0))
        return queue

    poll = PollInOrder(get, [REPARSE_QUEUE, "intake"], Empty)
    for _ in range(4):
        poll.get(None)
    assert taken == ["i1", "i2", "r1", "r2"]
    with pytest.raises(Empty):
        poll.get(None)
