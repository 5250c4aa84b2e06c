"""Who may do what: no token or a bad one is 401, a missing scope 403, a revoked token stops
working (at once without a cache, after the cache time with one), and use is recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from tests.http.conftest import SAMPLE, TokenMaker, bearer
from worker.http.auth import Authenticator
from worker.http.problems import Problem
from worker.storage.tokens import TokenStore

TEXT = {"Content-Type": "text/plain"}


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "missing_token"), ({"Authorization": "Basic dTpw"}, "invalid_token"),
     ({"Authorization": "Bearer cit_000000000000_" + "A" * 43}, "invalid_token"),
     ({"Authorization": "Bearer "}, "invalid_token")],
)  # fmt: skip
def test_requests_without_a_live_token_are_401(
    client: Any, headers: dict[str, str], code: str
) -> None:
    """No header, another scheme, an unknown token and an empty one: 401 with a Bearer
    challenge, for intake and reads alike."""
    for method, path in (("POST", "/v1/cables"), ("GET", "/v1/cables/06ALMATY598")):
        response = client.request(method, path, content=b"x", headers={**TEXT, **headers})
        assert (response.status_code, response.json()["code"]) == (401, code)
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_token_without_the_scope_is_403(client: Any, make_token: TokenMaker) -> None:
    """An ingest-only token cannot read, a read-only token cannot post."""
    ingest, read = bearer(make_token("feed-a", "ingest")), bearer(make_token("reader", "read"))
    assert client.get("/v1/cables?q=x", headers=ingest).json()["code"] == "insufficient_scope"
    posted = client.post("/v1/cables", content=SAMPLE.read_bytes(), headers={**TEXT, **read})
    assert (posted.status_code, posted.json()["code"]) == (403, "insufficient_scope")


def test_a_revoked_token_is_refused_at_once_without_a_cache(
    client: Any, make_token: TokenMaker, database_url: str
) -> None:
    """Revoking by feed name makes the next request a 401 (TOKEN_CACHE_S=0 here)."""
    headers = {**TEXT, **bearer(make_token("feed-a", "ingest"))}
    assert client.post("/v1/cables", content=b"UNCLAS one", headers=headers).status_code == 202
    store = TokenStore(database_url)
    store.revoke(name="feed-a")
    store.close()
    refused = client.post("/v1/cables", content=b"UNCLAS two", headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (401, "invalid_token")


def test_the_cache_holds_a_token_for_its_time_only(database_url: str) -> None:
    """With a 5 s cache, a revoked token still authenticates within the 5 s and not after;
    last use is written by record_use()."""
    store = TokenStore(database_url)
    token, info = store.create("feed-a", ["ingest"])
    now = [100.0]
    auth = Authenticator(store, cache_s=5, clock=lambda: now[0])
    scope = {"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]}
    request = Request(scope)
    assert asyncio.run(auth.authenticate(request)).id == info.id
    store.revoke(token_id=info.id)
    now[0] += 4.9
    assert asyncio.run(auth.authenticate(request)).id == info.id
    now[0] += 0.2
    with pytest.raises(Problem, match="invalid_token"):
        asyncio.run(auth.authenticate(request))
    auth.record_use()
    assert store.list()[0].last_used_at is not None
    store.close()


def test_unknown_routes_and_methods_are_problems(client: Any) -> None:
    """404 and 405 come as problem documents too."""
    missing = client.get("/v2/nothing")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    wrong = client.delete("/v1/cables")
    assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed")


def test_requests_are_counted_by_route_template_not_path(
    client: Any, make_token: TokenMaker
) -> None:
    """/metrics counts a GET of a cable under /v1/cables/{reference_id}, never its id."""
    token = bearer(make_token("reader", "read"))
    client.get("/v1/cables/06ALMATY598", headers=token)
    client.get("/v2/nothing")
    metrics = client.get("/metrics").text
    assert 'route="/v1/cables/{reference_id}",status="404"' in metrics
    assert 'route="unmatched"' in metrics
    assert "06ALMATY598" not in metrics
