"""The read API: a message's receipt, a record, search and listings, cited-by.

Reads honour the token's clearance with the sinks' ranking (:mod:`worker.routing.rules`): a
record ranks at its classification, or at a paragraph marked higher; a record above the
clearance is answered exactly like one that does not exist (404), and is left out of
listings, searches and cited-by, whose cursors never point at it.

A message's receipt is the feed's own business: any token of the feed that sent it (or one
with the ``operate`` scope) reads it, with the reference id its text was stored under, since
the feed holds that text anyway; another feed's message is a 404. An envelope is "queued"
once accepted (the intake records it before publishing, :meth:`ReceiptStore.accept`) until
it is stored or dead-lettered; an id that was never accepted is a 404.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from worker.http.auth import clearance_of, require
from worker.http.context import Context
from worker.http.problems import Problem, not_found
from worker.model import CLASSIFICATIONS
from worker.routing.rules import effective_rank, rank
from worker.storage.catalog import Filters, summary
from worker.storage.engine import utc_iso
from worker.storage.tokens import TokenInfo

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def json_response(document: Any, status: int = 200) -> Response:
    """A JSON response (orjson)."""
    return Response(orjson.dumps(document), status, media_type="application/json")


def visible(record: Any, token: TokenInfo) -> bool:
    """Whether ``token`` may read ``record``."""
    return isinstance(record, dict) and effective_rank(record) <= rank(clearance_of(token))


def allowed(token: TokenInfo) -> list[str]:
    """The banner classifications ``token`` may read."""
    return list(CLASSIFICATIONS[: rank(clearance_of(token)) + 1])


async def _reader(request: Request) -> tuple[Context, TokenInfo]:
    ctx: Context = request.app.state.ctx
    token = await ctx.auth.authenticate(request)
    require(token, "read")
    return ctx, token


def _own(source: object, token: TokenInfo) -> bool:
    if "operate" in token.scopes:
        return True
    return isinstance(source, str) and (source == token.name or source.startswith(token.name + "/"))


async def get_message(request: Request) -> Response:
    """What became of an envelope: queued, stored (with the outcome) or dead-lettered."""
    ctx: Context = request.app.state.ctx
    token = await ctx.auth.authenticate(request)  # any scope: a feed reads its own receipts
    message_id = request.path_params["message_id"]
    trail = await run_in_threadpool(ctx.catalog.message, message_id)
    taken_in, arrival, letters = trail["accepted"], trail["arrival"], trail["dead_letters"]
    document: dict[str, Any] = {"message_id": message_id}
    if taken_in is not None:
        document["accepted_at"] = utc_iso(taken_in.accepted_at)
    if arrival is not None:
        if not _own(arrival.source, token):
            raise not_found(f"message {message_id}")
        document |= {
            "status": "stored",
            "outcome": arrival.outcome,
            "reference_id": arrival.reference_id,
            "revision": arrival.revision,
            "source": arrival.source,
            "received_at": utc_iso(arrival.received_at),
            "stored_at": utc_iso(arrival.stored_at),
            "sha256": arrival.sha256,
            "sinks": [
                {"sink": r.sink, "outcome": r.outcome, "at": utc_iso(r.delivered_at)}
                for r in trail["receipts"]
            ],
        }
    elif letters:
        if not all(_own(letter.source, token) for letter in letters):
            raise not_found(f"message {message_id}")
        document |= {
            "status": "dead_lettered",
            "stage": letters[0].stage,
            "reason": letters[0].reason,
            "error_class": letters[0].error_class,
            "dead_letters": [
                {
                    "stage": d.stage,
                    "reason": d.reason,
                    "error_class": d.error_class,
                    "last_seen": utc_iso(d.last_seen),
                }
                for d in letters
            ],
        }
    elif taken_in is not None and _own(taken_in.source, token):
        document["status"] = "queued"
    else:  # never accepted (or another feed's): nothing to tell
        raise not_found(f"message {message_id}")
    return json_response(document)


async def get_cable(request: Request) -> Response:
    """A stored record (the current revision, or ``?revision=N``)."""
    ctx, token = await _reader(request)
    reference_id = request.path_params["reference_id"]
    wanted = request.query_params.get("revision")
    if wanted is not None and (not wanted.isdigit() or int(wanted) < 1):
        raise Problem(
            422, "invalid_parameter", f"revision: expected a positive integer, got {wanted!r}"
        )
    versions = await run_in_threadpool(ctx.cables.revisions, reference_id)
    if not versions or not visible(versions[-1]["record"], token):
        raise not_found(f"cable {reference_id}")
    chosen = [v for v in versions if wanted is None or v["revision"] == int(wanted)]
    if not chosen or not visible(chosen[-1]["record"], token):
        raise not_found(f"cable {reference_id} revision {wanted}")
    version = chosen[-1]
    return json_response(
        {
            "reference_id": reference_id,
            "revision": version["revision"],
            "revisions": len(versions),
            "stored_at": version["stored_at"],
            "parser_version": version["parser_version"],
            "record": version["record"],
        }
    )


def _date(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise Problem(
            422, "invalid_parameter", f"{name}: expected an ISO 8601 date, got {raw!r}"
        ) from None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise Problem(422, "invalid_parameter", f"limit: expected 1-{MAX_LIMIT}, got {raw!r}")
    return int(raw)


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque cursor."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(raw: str | None) -> dict[str, Any]:
    """The position a cursor holds; 422 when it is not one of ours."""
    if not raw:
        return {}
    try:
        position = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise Problem(422, "invalid_cursor", "the cursor is not one this API gave") from None
    if not isinstance(position, dict):
        raise Problem(422, "invalid_cursor", "the cursor is not one this API gave")
    return position


Fetch = Callable[[Any, int], list[Any]]


def keyset_page(
    fetch: Fetch, token: TokenInfo, limit: int, after: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Rows visible to ``token`` after reference id ``after``, ``limit`` at most, and the
    reference id the next page starts after (a returned row's, never a hidden one's)."""
    items: list[dict[str, Any]] = []
    position, chunk = after, limit + 1
    while True:
        rows = fetch(position, chunk)
        for row in rows:
            if not visible(row.record, token):
                continue
            if len(items) == limit:
                return items, str(items[-1]["reference_id"])
            items.append(summary(row))
        if len(rows) < chunk:
            return items, None
        position, chunk = rows[-1].reference_id, chunk * 2


def offset_page(
    fetch: Fetch, token: TokenInfo, limit: int, start: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Rows visible to ``token`` from the ``start``-th visible one, ``limit`` at most, and the
    next page's start; offsets count visible rows only, so they tell nothing of hidden ones."""
    items: list[dict[str, Any]] = []
    raw, skipped, chunk = 0, 0, start + limit + 1
    while True:
        rows = fetch(raw, chunk)
        raw += len(rows)
        for row in rows:
            if not visible(row.record, token):
                continue
            if skipped < start:
                skipped += 1
                continue
            if len(items) == limit:
                return items, start + limit
            items.append(summary(row))
        if len(rows) < chunk:
            return items, None
        chunk *= 2


async def list_cables(request: Request) -> Response:
    """Search (``q``) and listings filtered by origin, classification, tag and date, by cursor."""
    ctx, token = await _reader(request)
    params = request.query_params
    return await _listing(
        ctx,
        token,
        request,
        Filters(
            q=params.get("q", ""),
            origin=params.get("origin", ""),
            classification=params.get("classification", ""),
            tag=params.get("tag", ""),
            date_from=_date(params.get("from"), "from"),
            date_to=_date(params.get("to"), "to"),
        ),
    )


async def cited_by(request: Request) -> Response:
    """The stored cables whose references name this one (itself visible to the token)."""
    ctx, token = await _reader(request)
    reference_id = request.path_params["reference_id"]
    current = await run_in_threadpool(ctx.cables.get, reference_id)
    if current is None or not visible(current, token):
        raise not_found(f"cable {reference_id}")
    return await _listing(ctx, token, request, Filters(cites=reference_id))


async def _listing(ctx: Context, token: TokenInfo, request: Request, filters: Filters) -> Response:
    limit = _limit(request)
    cursor = decode_cursor(request.query_params.get("cursor"))
    kinds = allowed(token)
    next_cursor: str | None = None
    if filters.q:
        start = cursor.get("o", 0)
        if not isinstance(start, int) or start < 0:
            raise Problem(422, "invalid_cursor", "the cursor is not one this API gave")

        def search(offset: Any, size: int) -> list[Any]:
            return ctx.catalog.search(filters, kinds, offset=int(offset), limit=size)

        items, following = await run_in_threadpool(offset_page, search, token, limit, start)
        if following is not None:
            next_cursor = encode_cursor({"o": following})
    else:
        after = cursor.get("a")
        if after is not None and not isinstance(after, str):
            raise Problem(422, "invalid_cursor", "the cursor is not one this API gave")

        def listing(position: Any, size: int) -> list[Any]:
            return ctx.catalog.listing(filters, kinds, after=position, limit=size)

        items, last = await run_in_threadpool(keyset_page, listing, token, limit, after)
        if last is not None:
            next_cursor = encode_cursor({"a": last})
    return json_response({"items": items, "next_cursor": next_cursor})
