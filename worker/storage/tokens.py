"""API tokens of ``cable-ingest serve``: per feed, with scopes and a clearance; only a hash kept.

A token reads ``cit_<id>_<secret>``: the id (12 hex digits, not secret) finds the row, the
secret (32 random bytes, URL-safe base64) proves possession. The store keeps the SHA-256 of the
whole token and compares it with :func:`hmac.compare_digest`, in constant time. A fast hash is
the right one here: argon2 or bcrypt make guessing a *low-entropy password* slow, but a 256-bit
random secret cannot be guessed at any speed, and a slow hash would cost every request tens of
milliseconds of CPU (a few dozen requests per second per core). The token is shown once, when
created; a lost token is revoked and replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import URL, Row

from worker.model import CLASSIFICATIONS, TOKEN_SCOPES
from worker.storage.engine import Database, redact_url, utc_iso
from worker.storage.schema import tokens

PREFIX = "cit_"
SCOPES = TOKEN_SCOPES
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_TOKEN = re.compile(r"cit_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What is known of a token (never its secret)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    clearance: str | None
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, times as ISO 8601 UTC."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "clearance": self.clearance,
            "created_at": utc_iso(self.created_at),
            "last_used_at": utc_iso(self.last_used_at),
            "revoked_at": utc_iso(self.revoked_at),
        }


def digest(token: str) -> str:
    """The SHA-256 (hex) under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name: str) -> str:
    """A feed name: 1-100 of letters, digits, ``.``, ``_`` and ``-``, not starting with one of
    the last three; ValueError otherwise."""
    if not NAME.fullmatch(name):
        raise ValueError(
            f"expected a feed name of letters, digits, '.', '_' and '-' (1-100), got {name!r}"
        )
    return name


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Scopes in their canonical order; ValueError on an unknown one or none."""
    wanted = set(scopes)
    unknown = sorted(wanted.difference(SCOPES))
    if unknown or not wanted:
        raise ValueError(f"expected scopes among {', '.join(SCOPES)}, got {sorted(wanted)}")
    return tuple(scope for scope in SCOPES if scope in wanted)


def check_clearance(clearance: str | None) -> str | None:
    """A classification of :data:`worker.model.CLASSIFICATIONS`, or None; ValueError otherwise."""
    if clearance is not None and clearance not in CLASSIFICATIONS:
        raise ValueError(
            f"expected a clearance among {', '.join(CLASSIFICATIONS)}, got {clearance!r}"
        )
    return clearance


def _info(row: Row[Any]) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        scopes=tuple(row.scopes.split()),
        clearance=row.clearance,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


class TokenStore:
    """Tokens in the storage database (table ``tokens``, migration 0006)."""

    def __init__(self, url: str | URL) -> None:
        self._db = Database(url)

    def __repr__(self) -> str:
        return f"TokenStore({redact_url(self._db.url)!r})"

    def create(
        self, name: str, scopes: Iterable[str], clearance: str | None = None
    ) -> tuple[str, TokenInfo]:
        """Make a token for feed ``name``; return it (shown once) and what is stored of it."""
        info = TokenInfo(
            id=secrets.token_hex(6),
            name=check_name(name),
            scopes=check_scopes(scopes),
            clearance=check_clearance(clearance),
            created_at=datetime.now(UTC),
        )
        token = f"{PREFIX}{info.id}_{secrets.token_urlsafe(32)}"
        row = {
            "id": info.id,
            "name": info.name,
            "secret_sha256": digest(token),
            "scopes": " ".join(info.scopes),
            "clearance": info.clearance,
            "created_at": info.created_at,
        }
        with self._db.errors("creating a token"), self._db.writer.begin() as conn:
            conn.execute(tokens.insert(), [row])
        return token, info

    def list(self, *, name: str | None = None) -> list[TokenInfo]:
        """Every token (of feed ``name``), oldest first, revoked ones included."""
        query = select(tokens).order_by(tokens.c.created_at, tokens.c.id)
        if name is not None:
            query = query.where(tokens.c.name == name)
        with self._db.errors("listing tokens"), self._db.engine.connect() as conn:
            return [_info(row) for row in conn.execute(query)]

    def revoke(self, *, token_id: str | None = None, name: str | None = None) -> int:
        """Revoke one token by id, or every token of a feed; return how many were revoked."""
        if (token_id is None) == (name is None):
            raise ValueError("revoke takes a token id or a feed name, not both")
        column = tokens.c.id if token_id is not None else tokens.c.name
        stmt = (
            update(tokens)
            .where(column == (token_id or name), tokens.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        with self._db.errors("revoking tokens"), self._db.writer.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def verify(self, token: str) -> TokenInfo | None:
        """The live token this is, or None (malformed, unknown, wrong secret or revoked)."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        query = select(tokens).where(tokens.c.id == match[1])
        with self._db.errors("reading tokens"), self._db.engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        if row is None or not hmac.compare_digest(row.secret_sha256, digest(token)):
            return None
        info = _info(row)
        return None if info.revoked_at is not None else info

    def touch(self, token_ids: Sequence[str], at: datetime | None = None) -> None:
        """Record that these tokens were used (now, or ``at``)."""
        if not token_ids:
            return
        stmt = (
            update(tokens)
            .where(tokens.c.id.in_(sorted(set(token_ids))))
            .values(last_used_at=at or datetime.now(UTC))
        )
        with self._db.errors("recording token use"), self._db.writer.begin() as conn:
            conn.execute(stmt)

    def close(self) -> None:
        """Close this process's pooled connections."""
        self._db.dispose()
