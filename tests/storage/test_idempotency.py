"""Idempotency keys: claimed once, the first response kept, released claims reusable, old keys
purged; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine

from worker.storage.idempotency import ABANDONED_AFTER_S, IdempotencyStore
from worker.storage.schema import idempotency_keys


@pytest.fixture
def keys(store_url: str) -> Iterator[IdempotencyStore]:
    """An idempotency store on the test database, closed afterwards."""
    store = IdempotencyStore(store_url)
    yield store
    store.close()


def test_a_key_is_claimed_once_and_then_answers_with_the_first_response(
    keys: IdempotencyStore,
) -> None:
    """The first claim wins; a second sees it running, then its stored response; another feed
    has keys of its own."""
    assert keys.claim("feed-a", "k", "h1") is None
    running = keys.claim("feed-a", "k", "h1")
    assert running is not None
    assert (running.request_sha256, running.status, running.response) == ("h1", None, None)
    keys.finish("feed-a", "k", 202, b'{"accepted": 1}')
    done = keys.claim("feed-a", "k", "h2")
    assert done is not None
    assert (done.request_sha256, done.status, done.response) == ("h1", 202, b'{"accepted": 1}')
    assert keys.claim("feed-b", "k", "h3") is None


def test_a_released_claim_can_be_claimed_again_but_a_finished_one_cannot(
    keys: IdempotencyStore,
) -> None:
    """release() frees a running claim; it leaves a finished one as it is."""
    assert keys.claim("feed-a", "k", "h") is None
    keys.release("feed-a", "k")
    assert keys.claim("feed-a", "k", "h") is None
    keys.finish("feed-a", "k", 202, b"{}")
    keys.release("feed-a", "k")
    assert keys.claim("feed-a", "k", "h") is not None


def test_purge_forgets_keys_claimed_before_the_cutoff(keys: IdempotencyStore) -> None:
    """Keys older than the cutoff go, newer ones stay."""
    assert keys.claim("feed-a", "old", "h") is None
    assert keys.purge(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert keys.purge(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert keys.claim("feed-a", "old", "h") is None


def test_a_claim_never_answered_is_taken_over_after_a_minute(
    keys: IdempotencyStore, store_url: str
) -> None:
    """A running claim older than ABANDONED_AFTER_S (its server died) goes to the next request;
    a younger one does not."""
    assert keys.claim("feed-a", "k", "h") is None
    assert keys.claim("feed-a", "k", "h") is not None
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(
            idempotency_keys.update().values(
                created_at=datetime.now(UTC) - timedelta(seconds=ABANDONED_AFTER_S + 5)
            )
        )
    engine.dispose()
    assert keys.claim("feed-a", "k", "h") is None
    assert keys.claim("feed-a", "k", "h") is not None
