"""Reading a request body with bounds: its size (413 while streaming) and the client's pace (408).

The declared ``Content-Length`` is checked before anything is read; then every chunk counts
towards the limit, so an oversize body is refused at the first chunk past it, whatever it
declared (chunked bodies declare nothing). A client that sends nothing for ``timeout_s`` is cut
off. Both answers close the connection, leaving the rest of the body unread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from starlette.requests import ClientDisconnect, Request

from worker.http.problems import ClientGone, Problem

CLOSE = {"Connection": "close"}


def too_large(limit: int, what: str = "the request body") -> Problem:
    """413 ``too_large``."""
    return Problem(413, "too_large", f"{what} is over the limit of {limit:,} bytes", headers=CLOSE)


class BoundedBody:
    """The body of ``request`` as a bounded stream of chunks."""

    def __init__(self, request: Request, *, limit: int, timeout_s: float) -> None:
        self._request = request
        self._limit = limit
        self._timeout_s = timeout_s
        self.size = 0

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body's chunks, each counted; raises 413 or 408 as :class:`Problem`."""
        declared = self._request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._limit:
            raise too_large(self._limit)
        stream = self._request.stream()
        while True:
            try:
                async with asyncio.timeout(self._timeout_s):
                    chunk = await anext(stream)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise Problem(
                    408,
                    "slow_body",
                    f"no part of the body arrived for {self._timeout_s:g} s",
                    headers=CLOSE,
                ) from None
            except ClientDisconnect:
                raise ClientGone("the client disconnected while sending its body") from None
            self.size += len(chunk)
            if self.size > self._limit:
                raise too_large(self._limit)
            if chunk:
                yield chunk

    async def read(self) -> bytes:
        """The whole body (bounded)."""
        return b"".join([chunk async for chunk in self.chunks()])
