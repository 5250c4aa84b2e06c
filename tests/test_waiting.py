"""Waiting for a dependency: the pauses, one line per failed attempt, the last error's message,
and the few words of cause taken from real connection errors."""

from __future__ import annotations

import socket

import pytest

from tests.services import closed_port
from worker.errors import ConfigurationError, UnavailableError
from worker.waiting import cause, schedule, wait_for

DOWN = UnavailableError("broker", "redis://h/0", "broker redis://h/0 does not answer (refused)")


def test_the_pauses_add_up_to_the_wait() -> None:
    """1, 2, 4, 8, then 10 s, the last one cut to fit: 60 s is ten attempts; 0 is one."""
    assert schedule(60) == [1, 2, 4, 8, 10, 10, 10, 10, 5]
    assert schedule(2) == [1, 1]
    assert schedule(0) == []
    assert all(sum(schedule(s)) == s for s in (1, 3, 15, 16, 100, 600))


def test_each_failed_attempt_is_one_line_until_the_dependency_answers() -> None:
    """Two refusals, then an answer: two lines, numbered out of three, and the answer."""
    said: list[str] = []
    failures = [DOWN, DOWN]

    def attempt() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    assert wait_for(attempt, wait_s=2, say=said.append) == "ok"
    assert said == [
        "broker redis://h/0 does not answer (refused); retrying in 1 s (1/3)",
        "broker redis://h/0 does not answer (refused); retrying in 1 s (2/3)",
    ]


def test_the_last_failure_says_how_long_it_was_waited_for() -> None:
    """After the wait, UnavailableError with the same dependency, the attempts and the time."""
    said: list[str] = []

    def attempt() -> None:
        raise DOWN

    with pytest.raises(UnavailableError) as caught:
        wait_for(attempt, wait_s=1, say=said.append)
    assert (caught.value.what, caught.value.url) == ("broker", "redis://h/0")
    assert str(caught.value) == (
        "broker redis://h/0 does not answer (refused);"
        " gave up after 2 attempts in 1 s (CABLE_INGEST_CONNECT_WAIT_S=1)"
    )
    assert caught.value.__cause__ is DOWN
    assert len(said) == 1


def test_no_wait_means_one_attempt() -> None:
    """CONNECT_WAIT_S=0: one attempt, no retry line, and the last line says so."""
    said: list[str] = []

    def attempt() -> None:
        raise DOWN

    with pytest.raises(UnavailableError, match=r"not retried \(CABLE_INGEST_CONNECT_WAIT_S=0\)"):
        wait_for(attempt, wait_s=0, say=said.append)
    assert said == []


def test_other_errors_are_not_waited_for() -> None:
    """A bad setting is not a dependency being away: it leaves at the first attempt."""
    said: list[str] = []
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise ConfigurationError("CABLE_INGEST_BROKER_URL: expected a URL")

    with pytest.raises(ConfigurationError):
        wait_for(attempt, wait_s=60, say=said.append)
    assert (calls, said) == ([1], [])


def test_the_cause_is_the_operating_systems_reason_when_there_is_one() -> None:
    """A refused connection, however deeply wrapped, reads "Connection refused"."""
    with pytest.raises(RuntimeError) as wrapped:
        _connect_and_wrap()
    assert cause(wrapped.value) == "Connection refused"


def _connect_and_wrap() -> None:
    """Connect to a closed port; raise as a client library would, from the OS error."""
    try:
        with socket.socket() as client:
            client.connect(("127.0.0.1", closed_port()))
    except ConnectionRefusedError as error:
        raise RuntimeError("Error 111 connecting to 127.0.0.1. Connection refused.") from error


def test_the_cause_of_a_message_is_what_follows_its_last_failed() -> None:
    """libpq's long first line is cut to its end; an empty message gives the type's name."""
    libpq = RuntimeError(
        'connection failed: connection to server at "127.0.0.1", port 5499 failed: Connection'
        " refused\n\tIs the server running on that host and accepting TCP/IP connections?"
    )
    assert cause(libpq) == "Connection refused"
    assert cause(RuntimeError("unable to open database file")) == "unable to open database file"
    assert cause(TimeoutError()) == "TimeoutError"
