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
from worker.queue.retry import CAP_S, backoff

HARD_LIMIT_GRACE_S = 30
"""The hard time limit of a task is its soft limit (``TASK_TIME_LIMIT``) plus this."""
RETURN_MARGIN_S = 60
"""What the visibility timeout keeps beyond the longest a worker may hold a message."""


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


def longest_hold(task_time_limit: int, prefetch_multiplier: int) -> int:
    """How long a live worker may hold a message unacknowledged, at most: reserved behind
    ``prefetch_multiplier - 1`` others that each run to the hard time limit, then its own run;
    or, as a retry, its countdown (the backoff's cap) and then its run. On Redis the visibility
    timeout must be longer, or a message still held is handed out a second time."""
    hard = task_time_limit + HARD_LIMIT_GRACE_S
    return max(prefetch_multiplier * hard, int(CAP_S) + hard) + RETURN_MARGIN_S


def longest_wait(visibility_timeout: int, task_time_limit: int) -> float:
    """The longest a retry may be put off: the worker holds a retried message unacknowledged
    until its countdown ends, then runs it up to the hard time limit, all within the visibility
    timeout and its margin. A peer's Retry-After beyond that is cut to it; the backoff's own
    waits (up to its cap) never are: a timeout that short is unsafe anyway, and the worker
    says so when it starts."""
    hard = task_time_limit + HARD_LIMIT_GRACE_S
    return float(max(CAP_S, visibility_timeout - hard - RETURN_MARGIN_S))


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
