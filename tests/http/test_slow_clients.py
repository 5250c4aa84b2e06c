"""Slow clients on a real socket against ``cable-ingest serve`` (uvicorn in a subprocess, the
embedded broker, SQLite): a request head sent a line at a time (slowloris), a connection that
sends nothing, a body that stalls, and the rest of a body dripped after the answer are each
cut off by the server, which closes the connection. Deadlines are 1 s here; the only time
bound in these tests is the socket's generous timeout, which fails a test that waits forever."""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bench.server import start_serve, stop
from worker.storage import upgrade
from worker.storage.tokens import TokenStore

GENEROUS_S = 30.0  # far above the 1 s deadlines: only a server that never cuts reaches it
pytestmark = pytest.mark.timeout(180)


@dataclass
class Server:
    """A running ``cable-ingest serve`` and a feed's token."""

    port: int
    token: str

    def connect(self) -> socket.socket:
        """A raw connection with the generous timeout."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=GENEROUS_S)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """serve with 1 s head and body deadlines, no worker."""
    folder = tmp_path_factory.mktemp("slow")
    database = f"sqlite:///{folder / 'cable-ingest.db'}"
    upgrade(database)
    tokens = TokenStore(database)
    token, _ = tokens.create("feed-a", ["ingest"])
    tokens.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env |= {
        "CABLE_INGEST_DATABASE_URL": database,
        "CABLE_INGEST_VAR_DIR": str(folder / "var"),
        "CABLE_INGEST_LOG_FORMAT": "json",
        "CABLE_INGEST_HTTP_HEADER_TIMEOUT_S": "1",
        "CABLE_INGEST_HTTP_READ_TIMEOUT_S": "1",
        "CABLE_INGEST_TOKEN_CACHE_S": "0",
    }
    with (folder / "serve.log").open("wb") as log:
        process, port = start_serve(env, log)
        try:
            yield Server(port, token)
        finally:
            stop(process)


def _until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket's timeout, if
    it never does, fails the test)."""
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _one_response(connection: socket.socket) -> bytes:
    """One response with a Content-Length, read whole; the connection stays open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_request_head_sent_a_line_at_a_time_is_cut_off(server: Server) -> None:
    """Slowloris: one header line every 0.2 s, each well inside any idle limit. The server
    answers 408 slow_headers and closes long before the 100 lines (and the head's end) are
    sent."""
    with server.connect() as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sent = 0
        for sent in range(1, 101):
            readable, _, _ = select.select([connection], [], [], 0.2)
            if readable:  # the server answered (or closed): stop sending
                break
            connection.sendall(f"X-Slow-{sent}: a\r\n".encode())
        answer = _until_closed(connection)
    assert sent < 100  # cut before the head was complete
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"application/problem+json" in answer
    assert b'"code":"slow_headers"' in answer


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    """A connection opened and left silent is closed by the server, with no answer."""
    with server.connect() as connection:
        assert _until_closed(connection) == b""


def test_a_body_that_stalls_is_cut_off_with_408(server: Server) -> None:
    """10 of 5,000 announced bytes, then nothing: 408 slow_body and the connection closed."""
    with server.connect() as connection:
        connection.sendall(
            f"POST /v1/cables HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.token}\r\n"
            "Content-Type: text/plain\r\nContent-Length: 5000\r\n\r\nUNCLAS 12\n".encode()
        )
        answer = _until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"code":"slow_body"' in answer


def test_a_body_dripped_after_the_answer_does_not_hold_the_connection(server: Server) -> None:
    """A request refused before its body is read (401: no token) is answered at once; the
    client then drips the rest of its 1 MB body a byte every 0.2 s. The server stops waiting
    for it and closes the connection, long before the body could end."""
    with server.connect() as connection:
        connection.sendall(
            b"POST /v1/cables HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 1000000\r\n\r\nUNCLAS 12\n"
        )
        assert _one_response(connection).startswith(b"HTTP/1.1 401")
        closed = False
        for _ in range(150):  # 30 s of drip at most, for 1 MB that would take days
            readable, _, _ = select.select([connection], [], [], 0.2)
            if readable:
                try:
                    closed = connection.recv(65536) == b""
                except ConnectionResetError:
                    closed = True
                break
            try:
                connection.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
    assert closed


def test_requests_on_a_kept_alive_connection_are_not_cut(server: Server) -> None:
    """Two quick requests on one connection, the second after a pause shorter than the
    deadlines, are both answered on it."""
    with server.connect() as connection:
        for _ in range(2):
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _one_response(connection).startswith(b"HTTP/1.1 200")
            select.select([connection], [], [], 0.3)


def test_the_server_still_serves_after_the_slow_clients(server: Server) -> None:
    """Cutting slow clients leaves the server answering others."""
    with server.connect() as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _until_closed(connection).startswith(b"HTTP/1.1 200")
