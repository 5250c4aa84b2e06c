"""Waiting for a dependency that does not answer (the broker, the database): bounded, out loud.

::

    wait_for(lambda: check_broker(settings), wait_s=settings.connect_wait_s, say=print_line)

An attempt that raises :class:`~worker.errors.UnavailableError` is tried again after 1, 2, 4
and 8 s, then every 10 s, until ``wait_s`` seconds have been spent; every failed attempt is
reported by ``say`` as one line ("broker redis://127.0.0.1:6390/0 does not answer (Connection
refused); retrying in 2 s (3/10)"), and the last one leaves as an UnavailableError saying how
long it was waited for. ``wait_s`` 0 makes one attempt. Any other error leaves at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)

from worker.errors import UnavailableError

T = TypeVar("T")

FIRST_S = 1.0
LONGEST_S = 10.0
SETTING = "CABLE_INGEST_CONNECT_WAIT_S"
MAX_CAUSE_CHARS = 200
# slow attempts (a connect timeout each) may not start after the wait is spent; quick ones
# (connection refused) use all of it: the pauses add up to exactly wait_s
_SLACK_S = 0.5


def schedule(wait_s: float) -> list[float]:
    """The pauses between attempts: 1, 2, 4, 8 s, then 10 s, the last one cut so that they
    add up to ``wait_s`` (60: 1, 2, 4, 8, 10, 10, 10, 10, 5 — ten attempts)."""
    pauses: list[float] = []
    left = float(wait_s)
    pause = FIRST_S
    while left > 0:
        pauses.append(min(pause, left))
        left -= pauses[-1]
        pause = min(pause * 2, LONGEST_S)
    return pauses


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def wait_for(attempt: Callable[[], T], *, wait_s: float, say: Callable[[str], None]) -> T:
    """``attempt()``'s result, trying again while it raises UnavailableError for at most
    ``wait_s`` seconds (one line through ``say`` per failed attempt); the last failure leaves
    as an UnavailableError whose message adds how many attempts were made, and for how long."""
    pauses = schedule(wait_s)
    attempts = len(pauses) + 1

    def pause(state: RetryCallState) -> float:
        return pauses[state.attempt_number - 1] if state.attempt_number <= len(pauses) else 0.0

    def announce(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        retry = f"retrying in {_seconds(state.upcoming_sleep)} s"
        say(f"{error}; {retry} ({state.attempt_number}/{attempts})")

    retrying = Retrying(
        retry=retry_if_exception_type(UnavailableError),
        stop=stop_after_attempt(attempts) | stop_before_delay(wait_s + _SLACK_S),
        wait=pause,
        before_sleep=announce,
    )
    started = time.monotonic()
    try:
        return retrying(attempt)
    except RetryError as gave_up:
        last = gave_up.last_attempt.exception()
        assert isinstance(last, UnavailableError)
        tried = gave_up.last_attempt.attempt_number
        if wait_s <= 0:
            how = f"not retried ({SETTING}=0)"
        else:
            spent = time.monotonic() - started
            times = "attempt" if tried == 1 else "attempts"
            how = f"gave up after {tried} {times} in {spent:.0f} s ({SETTING}={_seconds(wait_s)})"
        raise UnavailableError(last.what, last.url, f"{last}; {how}") from last


def cause(error: BaseException) -> str:
    """Why a connection failed, in a few words: the operating system's reason when there is one
    in the chain of causes ("Connection refused", "Name or service not known"), else the first
    line of the message, from its last "failed: " on (PostgreSQL's "... port 5432 failed:
    Connection refused")."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and (current.strerror or str(current)):
            return str(current.strerror or current)[:MAX_CAUSE_CHARS]
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__
    _before, found, after = lines[0].rpartition("failed: ")
    return (after.strip() if found and after.strip() else lines[0])[:MAX_CAUSE_CHARS]
