"""The delivery policy: what happens to a queue message, decided from facts alone (no I/O).

Two decisions, both pure, both table-tested (``tests/queue/test_policy.py``):

- :func:`on_arrival`, before the work: a message that came back after its worker was lost is
  split into single items (a poison item is isolated from its batch-mates); a single item
  delivered more than ``max_deliveries`` times is dead-lettered instead of looping; anything
  else runs.
- :func:`on_failure`, when the work raised: a permanent error, or the last allowed retry,
  gives up (dead letters); anything else is retried after the peer's own wish
  (``retry_after``, an HTTP 429) or the jittered backoff.

The tasks (:mod:`worker.queue.tasks`) carry out what these decide. A failure of the whole
message names the stage it happened in (:class:`StageFailed`), so its dead letters say where.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from worker.errors import CableIngestError, PermanentSinkError, TransientSinkError
from worker.queue.retry import backoff


class Arrival(enum.Enum):
    """What to do with a message before working on it."""

    RUN = "run"
    SPLIT = "split"
    DEAD_LETTER = "dead_letter"


def on_arrival(*, deliveries: int, size: int, max_deliveries: int) -> Arrival:
    """``deliveries``: how often this message came back after its worker was lost (0 for a
    first delivery); ``size``: items in it."""
    if deliveries and size > 1:
        return Arrival.SPLIT
    if deliveries > max_deliveries:
        return Arrival.DEAD_LETTER
    return Arrival.RUN


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after ``countdown`` seconds."""

    countdown: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop retrying: dead-letter the message's items."""


def on_failure(
    error: BaseException,
    *,
    retries: int,
    max_retries: int,
    wait: Callable[[int], float] = backoff,
) -> Retry | GiveUp:
    """``retries``: retries made so far (0 on the first attempt); ``wait``: the backoff."""
    cause = error.cause if isinstance(error, StageFailed) else error
    if isinstance(cause, PermanentSinkError) or retries >= max_retries:
        return GiveUp()
    wished = cause.retry_after if isinstance(cause, TransientSinkError) else None
    return Retry(wished if wished is not None else wait(retries))


class RedeliveryLimitExceeded(CableIngestError):
    """A message came back more than ``max_deliveries`` times: its worker was lost each time."""


class StageFailed(CableIngestError):
    """A whole message failed in ``stage`` (``parse``, ``sink:<name>`` …) because of ``cause``."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage}: {type(cause).__name__}: {cause}")
        self.stage = stage
        self.cause = cause

    @classmethod
    def of(cls, error: BaseException, default: str) -> StageFailed:
        """``error`` as a StageFailed, in ``default`` when it does not name its stage."""
        return error if isinstance(error, StageFailed) else cls(default, error)
