"""uvicorn's HTTP/1.1 protocol with read deadlines: slow clients cannot hold connections.

uvicorn bounds an idle keep-alive connection, but not a request being read: a client that
sends its request head a byte at a time (slowloris), opens a connection and sends nothing, or
stops half-way through a body, holds the connection (and one of the server's
``limit_concurrency`` slots) for as long as it likes. :func:`guarded_protocol` makes a
subclass of uvicorn's httptools protocol, passed to uvicorn by class (``http=``), with two
deadlines:

- **head**: the request line and headers must be complete within ``header_timeout_s`` of the
  connection's opening or of the first byte of the request (a total, not an idle time: a byte
  now and then does not extend it). Past it: 408 ``slow_headers`` and the connection is closed;
  a connection on which no byte of a request came is closed without an answer.
- **body**: while the client still owes body bytes, ``body_timeout_s`` without one is a stall:
  408 ``slow_body`` if no answer has started (the app's own read, :mod:`.body`, answers the same
  when it is the one waiting), and the connection is closed. Once an answer is complete, what
  is left of the body is read and dropped for ``body_timeout_s`` at most in all (a lingering
  close), then the connection is closed.

Neither deadline runs while uvicorn has paused reading (the app has not taken what came) or
while the app is answering the previous request of a pipelined connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from worker.http.problems import MEDIA_TYPE, Problem
from worker.logs import get_logger

log = get_logger("worker.http.server")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the head and body deadlines of the module docstring;
    :func:`guarded_protocol` makes it with its deadlines."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._head_started = False  # a byte of the next request came
        self._body_owed = False  # headers read, the body not all received yet
        self._lingering = False  # answered while the body still arrives

    # --- the connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head()
        self._cancel_body()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._body_owed and data:
            self._head_started = True
            if self._head_timer is None:  # bytes between requests start the next head's clock
                self._arm_head()
        super().data_received(data)

    # --- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._head_started = True
        if self._head_timer is None:
            self._arm_head()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._cancel_head()
        self._body_owed, self._lingering = True, False
        self._arm_body()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._lingering:  # an idle time while the app may read; a total once answered
            self._arm_body()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel_body()
        lingered, self._body_owed, self._lingering = self._lingering, False, False
        self._head_started = False
        super().on_message_complete()
        if lingered:  # uvicorn's keep-alive clock was stopped by the body's bytes: restart one
            self._arm_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._body_owed and not self.transport.is_closing():
            self._lingering = True
            self._arm_body()

    # --- the deadlines ----------------------------------------------------------------------

    def _arm_head(self) -> None:
        self._cancel_head()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_expired)

    def _cancel_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _arm_body(self) -> None:
        self._cancel_body()
        self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_expired)

    def _cancel_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _answering(self) -> bool:
        """Whether the app is still answering a request of this connection."""
        return self.cycle is not None and not self.cycle.response_complete

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused or self._answering():  # not the client's delay
            self._arm_head()
            return
        if not self._head_started:  # nothing of a request came: close, nothing to answer
            self.transport.close()
            return
        self._cut(
            Problem(
                408,
                "slow_headers",
                f"the request head was not complete within {self.header_timeout_s:g} s",
            ),
            "head",
        )

    def _body_expired(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or not self._body_owed:
            return
        if self._lingering:
            self.transport.close()  # answered already: the rest of the body is not waited for
            return
        if self.flow.read_paused or (self.cycle is not None and self.cycle.response_started):
            self._arm_body()  # uvicorn stopped reading, or the app answers now: not a stall
            return
        if self.cycle is not None:  # the app, if it still waits for the body, sees a disconnect
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self._cut(
            Problem(
                408,
                "slow_body",
                f"no part of the body arrived for {self.body_timeout_s:g} s",
            ),
            "body",
        )

    def _cut(self, problem: Problem, phase: str) -> None:
        """Answer ``problem`` (no answer has started on this connection) and close."""
        body = orjson.dumps(problem.document())
        head = [b"HTTP/1.1 408 Request Timeout\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: " + MEDIA_TYPE.encode() + b"\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
        log.info("slow_client_cut", phase=phase, code=problem.code)


def guarded_protocol(header_timeout_s: float, body_timeout_s: float) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (``http=``) for these deadlines, in seconds."""
    attributes = {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s}
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), attributes)
