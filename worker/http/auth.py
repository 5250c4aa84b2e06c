"""Who is asking: ``Authorization: Bearer <token>`` checked against the token store.

A token names a feed and carries scopes (``ingest``, ``read``, ``operate``) and a clearance.
Looked-up tokens are cached for ``TOKEN_CACHE_S`` seconds (a revoked token may keep working
that long on a server that saw it); unknown tokens are never cached. The last-used time is
written in the background (:meth:`Authenticator.record_use`), once per token per interval,
never on the request's path. Tokens never reach a log: a failure says why, not what was sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from worker.http.problems import Problem
from worker.model import CLASSIFICATIONS
from worker.storage.tokens import TokenInfo, TokenStore, digest

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="cable-ingest"'}
DEFAULT_CLEARANCE = CLASSIFICATIONS[0]
"""The clearance of a token created without one: as for sinks, UNCLASSIFIED."""


def clearance_of(token: TokenInfo) -> str:
    """The classification a token may read up to."""
    return token.clearance or DEFAULT_CLEARANCE


def require(token: TokenInfo, scope: str) -> None:
    """403 ``insufficient_scope`` unless ``token`` has ``scope``."""
    if scope not in token.scopes:
        raise Problem(
            403,
            "insufficient_scope",
            f"this needs the {scope!r} scope; the token of feed {token.name!r} has "
            f"{', '.join(token.scopes)}",
        )


class Authenticator:
    """Turns a request's bearer token into the :class:`TokenInfo` it belongs to, or a 401."""

    def __init__(
        self, store: TokenStore, cache_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._cache_s = cache_s
        self._clock = clock
        self._cache: dict[str, tuple[float, TokenInfo]] = {}
        self._used: set[str] = set()

    async def authenticate(self, request: Request) -> TokenInfo:
        """The token of ``request``; 401 when it has none, or one that is not live."""
        header = request.headers.get("authorization")
        if not header:
            raise Problem(
                401, "missing_token", "send Authorization: Bearer <token>", headers=CHALLENGE
            )
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Problem(
                401, "invalid_token", "expected the Bearer scheme and a token", headers=CHALLENGE
            )
        info = await self.lookup(token)
        if info is None:
            raise Problem(
                401,
                "invalid_token",
                "the token is malformed, unknown or revoked",
                headers=CHALLENGE,
            )
        self._used.add(info.id)
        return info

    async def lookup(self, token: str) -> TokenInfo | None:
        """The live token ``token`` is, from the cache or the store."""
        key = digest(token)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._cache_s:
            return cached[1]
        info = await run_in_threadpool(self._store.verify, token)
        if info is None:
            self._cache.pop(key, None)
        elif self._cache_s > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, info)
        return info

    def record_use(self) -> None:
        """Write the last-used time of the tokens used since the previous call (blocking)."""
        used, self._used = self._used, set()
        self._store.touch(sorted(used))
