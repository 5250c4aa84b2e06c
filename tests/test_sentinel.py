"""Sentinel addresses: the URL forms read, the URL kombu is given, and a client of the primary
through a real Sentinel (started by the test) that requires passwords."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.services import redis_sentinel
from worker import sentinel
from worker.sentinel import SentinelURL, parse


@pytest.mark.parametrize(
    ("url", "read"),
    [
        ("sentinel://h1", SentinelURL((("h1", 26379),))),
        ("sentinel://127.0.0.1:26481/0", SentinelURL((("127.0.0.1", 26481),))),
        (
            "sentinel://h1:26379;sentinel://h2:26380/3?master_name=cables",
            SentinelURL((("h1", 26379), ("h2", 26380)), db=3, master_name="cables"),
        ),
        (
            "sentinel://:p%40ss@h1;sentinel://:p%40ss@h2/1",
            SentinelURL((("h1", 26379), ("h2", 26379)), db=1, userinfo=":p%40ss"),
        ),
        ("sentinel://[::1]:26379/4", SentinelURL((("::1", 26379),), db=4)),
    ],
)
def test_url_forms_are_read(url: str, read: SentinelURL) -> None:
    """One sentinel or several; default port 26379 and database 0; the database, user info and
    master_name may be on any one part of the list."""
    assert parse(url) == read


def test_kombu_is_given_the_user_info_and_database_on_every_part() -> None:
    """kombu reads the user info and database from one URL of the list at a time and refuses a
    query: each URL it is given carries them, and none the master_name; a password given
    apart takes the place of the URL's, percent-encoded."""
    address = parse("sentinel://h1;sentinel://cables:p%40ss@h2:26380/3?master_name=cables")
    assert address.kombu_url() == (
        "sentinel://cables:p%40ss@h1:26379/3;sentinel://cables:p%40ss@h2:26380/3"
    )
    assert (address.username, address.password) == ("cables", "p@ss")
    assert address.kombu_url("a:b/c") == (
        "sentinel://cables:a%3Ab%2Fc@h1:26379/3;sentinel://cables:a%3Ab%2Fc@h2:26380/3"
    )
    assert parse("sentinel://[::1]/2").kombu_url() == "sentinel://[::1]:26379/2"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sentinel://h1:notaport", "Port could not be cast"),
        ("sentinel://h1/db0", "a database number"),
        ("sentinel://h1?password=x", "only parameter is master_name"),
        ("sentinel://h1?master_name=", "only parameter is master_name"),
        ("sentinel://h1?master_name=a;sentinel://h2?master_name=b", "one master_name"),
        ("sentinel://:a@h1;sentinel://:b@h2", "one user and password"),
        ("sentinel://h1;redis://h2", r"sentinel://HOST\[:PORT\]\[/DB\] for each sentinel"),
        ("sentinel://", r"sentinel://HOST"),
    ],
)
def test_bad_urls_say_what_is_expected(url: str, message: str) -> None:
    """A malformed list is a ValueError saying what was expected."""
    with pytest.raises(ValueError, match=message):
        parse(url)


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[str, str, str, int]]:
    """A primary and a Sentinel with passwords: (sentinel URL, primary's password, sentinel's
    password, primary's port)."""
    with redis_sentinel(tmp_path, passwords=True) as running:
        assert running.password is not None
        assert running.sentinel_password is not None
        yield running.url, running.password, running.sentinel_password, running.redis_port


def test_master_client_writes_to_the_primary_with_both_passwords(
    watched: tuple[str, str, str, int],
) -> None:
    """The client asks the Sentinel (with its password) for the primary and writes there (with
    the primary's); the database of the URL is used."""
    url, password, watch_password, port = watched
    client = sentinel.master_client(
        parse(url.removesuffix("/0") + "/5"),
        "cables-primary",
        password=password,
        sentinel_password=watch_password,
    )
    try:
        client.set("written-through", "sentinel")
    finally:
        sentinel.close(client)
    direct = redis.Redis(port=port, db=5, password=password)
    try:
        assert direct.get("written-through") == b"sentinel"
    finally:
        direct.close()


def test_a_wrong_sentinel_password_finds_no_primary(watched: tuple[str, str, str, int]) -> None:
    """A sentinel that refuses the password is passed over like one that is down: no master
    found, and the error does not show the password."""
    url, password, _watch_password, _port = watched
    client = sentinel.master_client(
        parse(url), "cables-primary", password=password, sentinel_password="wrong-one"
    )
    try:
        with pytest.raises(redis.ConnectionError, match="No master found") as caught:
            client.ping()
    finally:
        sentinel.close(client)
    assert "wrong-one" not in str(caught.value)


@pytest.fixture
def hanging_up() -> Iterator[tuple[int, list[int]]]:
    """A loopback port whose listener accepts each connection and closes it at once; yields
    the port and the list of connections it took."""
    taken: list[int] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            taken.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], taken
    stop.set()
    thread.join(5)
    listener.close()


def test_a_failing_sentinel_is_asked_once_then_the_next(
    watched: tuple[str, str, str, int], hanging_up: tuple[int, list[int]]
) -> None:
    """With a broken sentinel first in the list, finding the primary connects to it once and
    goes on to the next (redis-py's default client would retry it three times, with backoff)."""
    url, password, watch_password, _port = watched
    port, taken = hanging_up
    listed = f"sentinel://127.0.0.1:{port};{url}"
    client = sentinel.master_client(
        parse(listed), "cables-primary", password=password, sentinel_password=watch_password
    )
    try:
        assert client.ping()
    finally:
        sentinel.close(client)
    assert len(taken) == 1
