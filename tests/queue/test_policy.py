"""The delivery policy, branch by branch: split, redelivery cap, retry with the peer's wish or
the backoff, give up on a permanent error or after the last retry; stages named."""

from __future__ import annotations

import pytest

from worker.errors import PermanentSinkError, TransientSinkError
from worker.queue.policy import (
    Arrival,
    GiveUp,
    RedeliveryLimitExceeded,
    Retry,
    StageFailed,
    longest_hold,
    longest_wait,
    on_arrival,
    on_failure,
)
from worker.settings import Settings


@pytest.mark.parametrize(
    ("deliveries", "size", "expected"),
    [
        pytest.param(0, 100, Arrival.RUN, id="first-delivery-of-a-batch"),
        pytest.param(0, 1, Arrival.RUN, id="first-delivery-of-one"),
        pytest.param(1, 100, Arrival.SPLIT, id="a-batch-back-after-its-worker-was-lost"),
        pytest.param(9, 2, Arrival.SPLIT, id="any-batch-back-is-split-first"),
        pytest.param(1, 1, Arrival.RUN, id="one-item-back-once"),
        pytest.param(5, 1, Arrival.RUN, id="one-item-back-at-the-cap"),
        pytest.param(6, 1, Arrival.DEAD_LETTER, id="one-item-back-past-the-cap"),
    ],
)
def test_on_arrival(deliveries: int, size: int, expected: Arrival) -> None:
    """What happens to a message before the work, with a cap of 5 deliveries."""
    assert on_arrival(deliveries=deliveries, size=size, max_deliveries=5) is expected


def _wait(retries: int) -> float:
    return 10.0 * (retries + 1)  # a deterministic stand-in for the jittered backoff


@pytest.mark.parametrize(
    ("error", "retries", "expected"),
    [
        pytest.param(TransientSinkError("timeout"), 0, Retry(10.0), id="transient-first"),
        pytest.param(TransientSinkError("timeout"), 7, Retry(80.0), id="transient-last-retry"),
        pytest.param(TransientSinkError("timeout"), 8, GiveUp(), id="transient-out-of-retries"),
        pytest.param(
            TransientSinkError("429", retry_after=42.0), 3, Retry(42.0), id="the-peer-says-when"
        ),
        pytest.param(PermanentSinkError("400"), 0, GiveUp(), id="permanent-at-once"),
        pytest.param(OSError("broker away"), 2, Retry(30.0), id="anything-else-is-retried"),
        pytest.param(
            StageFailed("sink:hook", PermanentSinkError("400")), 0, GiveUp(), id="wrapped-permanent"
        ),
        pytest.param(
            StageFailed("sink:hook", TransientSinkError("429", retry_after=5.0)),
            1,
            Retry(5.0),
            id="wrapped-transient-with-wish",
        ),
    ],
)
def test_on_failure(error: BaseException, retries: int, expected: Retry | GiveUp) -> None:
    """What happens after the work raised, with 8 retries allowed."""
    assert on_failure(error, retries=retries, max_retries=8, wait=_wait) == expected


def test_the_backoff_grows_and_stays_capped() -> None:
    """Without a wish, the default backoff waits longer each time, and never above 300 s."""
    waits = [on_failure(OSError("x"), retries=n, max_retries=20) for n in (0, 3, 6, 12)]
    assert all(isinstance(w, Retry) for w in waits)
    seconds = [w.countdown for w in waits if isinstance(w, Retry)]
    assert 0.5 <= seconds[0] <= 1.0
    assert 4.0 <= seconds[1] <= 8.0
    assert 32.0 <= seconds[2] <= 64.0
    assert 150.0 <= seconds[3] <= 300.0


def test_a_stage_failure_keeps_the_first_stage_it_was_given() -> None:
    """An error named in a stage keeps that stage when the task's default is applied."""
    inner = StageFailed.of(OSError("publish failed"), "sink:hook")
    assert StageFailed.of(inner, "parse").stage == "sink:hook"
    assert StageFailed.of(RedeliveryLimitExceeded("x"), "parse").stage == "parse"
    assert "sink:hook: OSError: publish failed" in str(inner)


def test_an_error_inside_a_task_stage_is_named_by_it() -> None:
    """The ingest task's stages (sending to a sink's queue, …) name the failure they raise."""
    from worker.queue.tasks import _stage  # noqa: PLC0415 - the one private helper tested

    cause = OSError("broker away")
    with pytest.raises(StageFailed) as caught, _stage("sink:hook"):
        raise cause
    assert (caught.value.stage, caught.value.cause) == ("sink:hook", cause)


def test_a_live_worker_holds_a_message_less_than_the_visibility_timeout() -> None:
    """By default a message is held at most 690 s (a 300 s backoff countdown, then a run to
    the hard limit of 330 s, and 60 s of margin): the 900 s visibility timeout exceeds it.
    A retry waits at most what that timeout leaves (510 s; 3,210 s with an hour), never less
    than the backoff's own cap (a timeout too short for it is unsafe anyway)."""
    defaults = Settings()
    hold = longest_hold(defaults.task_time_limit, defaults.prefetch_multiplier)
    assert hold == 690 < defaults.visibility_timeout == 900
    assert longest_hold(300, 3) == 3 * 330 + 60
    assert longest_wait(defaults.visibility_timeout, defaults.task_time_limit) == 510
    assert longest_wait(3600, 300) == 3210
    assert longest_wait(10, 300) == 300
