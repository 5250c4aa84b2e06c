"""The order in which a worker takes from its queues: live work first, background work last.

A worker consuming ``intake``, the sinks' queues and ``reparse`` should take a reparse batch
only when nothing else waits, so that re-deriving 250,000 stored cables never delays what the
feeds send meanwhile. Neither transport does that by itself:

* kombu's Redis transport sends one ``BRPOP`` naming every queue; Redis pops from the first
  non-empty key in the order given. kombu's default order (``queue_order_strategy`` =
  ``round_robin``) moves the queue it last took from to the end, so a reparse backlog gets a
  turn as often as intake. Its ``priority`` strategy keeps the declared order instead, for
  every queue: the sinks' queues would then rank by declaration too.
* kombu's virtual transports (the embedded filesystem broker) poll the queues with a
  ``FairCycle``: round robin again, and no strategy to choose.

:class:`BackgroundLast` keeps kombu's round robin among the live queues and puts the
background queues (:data:`BACKGROUND_QUEUES`) after all of them, always. It is the Redis
channel's ``queue_order_strategy`` (:mod:`worker.queue.broker`), and :class:`PollInOrder`
drives the filesystem channel's polling with it. A batch already reserved (prefetch) still
runs first: a worker takes at most ``prefetch_multiplier`` x concurrency reparse batches
ahead of intake work that arrives after them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from kombu.utils.scheduling import FairCycle

REPARSE_QUEUE: Final = "reparse"
"""Where ``cable-ingest reparse`` puts its batches of reference ids."""

BACKGROUND_QUEUES: Final = frozenset({REPARSE_QUEUE})
"""Queues taken from only when every other queue of the worker is empty."""


def background_last(queues: Iterable[str]) -> list[str]:
    """``queues`` with the background ones moved to the end, the order otherwise kept."""
    return sorted(queues, key=lambda queue: queue in BACKGROUND_QUEUES)


class BackgroundLast:
    """kombu's round robin among the live queues (its ``round_robin_cycle``), with the
    background queues always last; kombu's Redis channel calls ``update``, ``consume`` and
    ``rotate``."""

    def __init__(self, queues: Iterable[str] = ()) -> None:
        self.items = background_last(queues)

    def update(self, queues: Iterable[str]) -> None:
        """Take the worker's queues (kombu calls this when it starts or stops consuming)."""
        self.items[:] = background_last(queues)

    def consume(self, n: int) -> list[str]:
        """The first ``n`` queues, in the order to try them."""
        return self.items[:n]

    def rotate(self, last_used: str) -> str:
        """After taking from ``last_used``: it goes behind the other live queues."""
        if last_used in self.items:
            self.items.append(self.items.pop(self.items.index(last_used)))
            self.items[:] = background_last(self.items)
        return last_used


class PollInOrder(FairCycle):
    """The polling of a kombu virtual channel (in place of its ``FairCycle``): each poll
    tries the queues in :class:`BackgroundLast` order and takes from the first that has a
    message."""

    def __init__(
        self, fun: Callable[..., Any], queues: Sequence[str], predicate: type[Exception]
    ) -> None:
        super().__init__(fun, queues, predicate)
        self.order = BackgroundLast(queues)

    def get(self, callback: Callable[..., Any] | None, **kwargs: Any) -> Any:
        """Deliver one message from the first queue that has one; ``predicate`` if none."""
        for queue in self.order.consume(len(self.order.items)):
            try:
                delivered = self.fun(queue, callback, **kwargs)
            except self.predicate:
                continue
            self.order.rotate(queue)
            return delivered
        raise self.predicate()
