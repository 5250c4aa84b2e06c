"""Idempotency keys: the first response to a feed's request, kept to answer its retries.

Keys are kept a day (:meth:`IdempotencyStore.purge`, run by the server): a retry comes within
minutes, and a key reused after that is a new request. A request with an ``Idempotency-Key``
first *claims* the key (a row with no response yet). The claim is an insert that succeeds
once: a second request with the same key finds the row and gets the stored response, or learns
that the first is still running (409), unless that claim is over a minute old and was never
answered (its server died): then it takes the claim over. A request that fails before anything
was enqueued *releases* its claim, so that a retry can run it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL

from worker.storage.engine import Database, redact_url
from worker.storage.schema import idempotency_keys

_TABLE = idempotency_keys
ABANDONED_AFTER_S = 60
"""A claim still without a response after this long is taken over by the next request with
its key: its server died between claiming and answering (a live one answers within seconds,
the body being read before the claim)."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a key held when it was claimed again: the request's hash and, once the first
    request finished, its status and response body (None while it runs)."""

    request_sha256: str
    status: int | None
    response: bytes | None


class IdempotencyStore:
    """Idempotency keys in the storage database (table ``idempotency_keys``)."""

    def __init__(self, url: str | URL) -> None:
        self._db = Database(url)

    def __repr__(self) -> str:
        return f"IdempotencyStore({redact_url(self._db.url)!r})"

    def claim(self, feed: str, key: str, request_sha256: str) -> Claimed | None:
        """Claim ``key`` for this request: None when it is ours now, else what it holds."""
        dialect = postgresql if self._db.backend == "postgresql" else sqlite
        now = datetime.now(UTC)
        row = {"feed": feed, "key": key, "request_sha256": request_sha256, "created_at": now}
        insert = dialect.insert(_TABLE).values(row).on_conflict_do_nothing().returning(_TABLE.c.key)
        found = select(_TABLE.c.request_sha256, _TABLE.c.status, _TABLE.c.response).where(
            _TABLE.c.feed == feed, _TABLE.c.key == key
        )
        abandoned = (
            update(_TABLE)
            .where(
                _TABLE.c.feed == feed,
                _TABLE.c.key == key,
                _TABLE.c.status.is_(None),
                _TABLE.c.created_at < now - timedelta(seconds=ABANDONED_AFTER_S),
            )
            .values(request_sha256=request_sha256, created_at=now)
            .returning(_TABLE.c.key)
        )
        with self._db.errors("claiming an idempotency key"), self._db.writer.begin() as conn:
            if conn.execute(insert).first() is not None:  # rowcount is -1 on psycopg
                return None
            if conn.execute(abandoned).first() is not None:
                return None
            held = conn.execute(found).one()
        response = bytes(held.response) if held.response is not None else None
        return Claimed(held.request_sha256, held.status, response)

    def finish(self, feed: str, key: str, status: int, response: bytes) -> None:
        """Keep the response of the request that claimed ``key``."""
        stmt = (
            update(_TABLE)
            .where(_TABLE.c.feed == feed, _TABLE.c.key == key)
            .values(status=status, response=response)
        )
        with self._db.errors("storing an idempotent response"), self._db.writer.begin() as conn:
            conn.execute(stmt)

    def release(self, feed: str, key: str) -> None:
        """Give up a claim whose request enqueued nothing (a retry may run it again)."""
        stmt = delete(_TABLE).where(
            _TABLE.c.feed == feed, _TABLE.c.key == key, _TABLE.c.status.is_(None)
        )
        with self._db.errors("releasing an idempotency key"), self._db.writer.begin() as conn:
            conn.execute(stmt)

    def purge(self, before: datetime) -> int:
        """Forget the keys claimed before ``before``; return how many."""
        stmt = delete(_TABLE).where(_TABLE.c.created_at < before)
        with self._db.errors("purging idempotency keys"), self._db.writer.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def close(self) -> None:
        """Close this process's pooled connections."""
        self._db.dispose()
