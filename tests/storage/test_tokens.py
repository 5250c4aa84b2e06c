"""The token store: only a hash is kept, verification needs the exact secret, revocation and
use are recorded; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from worker.storage.tokens import TokenStore, check_clearance, check_name, check_scopes, digest


@pytest.fixture
def tokens(store_url: str) -> Iterator[TokenStore]:
    """A token store on the test database, closed afterwards."""
    store = TokenStore(store_url)
    yield store
    store.close()


def test_a_created_token_verifies_and_only_its_hash_is_stored(
    tokens: TokenStore, store_url: str
) -> None:
    """The token verifies to its feed, scopes and clearance; the table holds its SHA-256 and
    not the token or its secret part."""
    token, info = tokens.create("feed-a", ["read", "ingest"], "CONFIDENTIAL")
    found = tokens.verify(token)
    assert found is not None
    assert (found.name, found.scopes, found.clearance) == (
        "feed-a",
        ("ingest", "read"),
        "CONFIDENTIAL",
    )
    engine = create_engine(store_url)
    with engine.connect() as conn:
        rows = [tuple(map(str, row)) for row in conn.execute(text("SELECT * FROM tokens"))]
    engine.dispose()
    dumped = " ".join(" ".join(row) for row in rows)
    assert digest(token) in dumped
    secret = token.split("_", 2)[2]
    assert len(secret) == 43
    assert secret not in dumped
    assert info.id in token


def test_a_wrong_or_malformed_token_does_not_verify(tokens: TokenStore) -> None:
    """Another secret with the same id, a truncated token and garbage are all refused."""
    token, _ = tokens.create("feed-a", ["ingest"])
    last = token[-1]
    forged = token[:-1] + ("A" if last != "A" else "B")
    assert tokens.verify(forged) is None
    assert tokens.verify(token[:-1]) is None
    assert tokens.verify("not a token") is None


def test_revoked_tokens_no_longer_verify(tokens: TokenStore) -> None:
    """Revoking by id revokes that token; revoking a feed revokes its others; a second
    revocation counts nothing."""
    first, info = tokens.create("feed-a", ["ingest"])
    second, _ = tokens.create("feed-a", ["read"])
    other, _ = tokens.create("feed-b", ["read"])
    assert tokens.revoke(token_id=info.id) == 1
    assert tokens.verify(first) is None
    assert tokens.verify(second) is not None
    assert tokens.revoke(name="feed-a") == 1
    assert tokens.revoke(name="feed-a") == 0
    assert tokens.verify(second) is None
    assert tokens.verify(other) is not None
    listed = tokens.list(name="feed-a")
    assert [t.revoked_at is not None for t in listed] == [True, True]


def test_use_is_recorded(tokens: TokenStore) -> None:
    """touch() sets the last-used time that list() shows."""
    _, info = tokens.create("feed-a", ["ingest"])
    assert tokens.list()[0].last_used_at is None
    tokens.touch([info.id])
    assert tokens.list()[0].last_used_at is not None


@pytest.mark.parametrize(
    ("check", "value"),
    [(check_name, "feed/a"), (check_name, "-feed"), (check_name, ""),
     (check_scopes, ["admin"]), (check_scopes, []), (check_clearance, "SECRETISH")],
)  # fmt: skip
def test_bad_names_scopes_and_clearances_are_refused(check: object, value: object) -> None:
    """A feed name with a slash or a leading dash, an unknown or empty scope list and an
    unknown clearance raise ValueError."""
    assert callable(check)
    with pytest.raises(ValueError, match="expected"):
        check(value)
