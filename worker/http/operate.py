"""The operator's endpoints (scope ``operate``): dead letters and the status snapshot.

The same functions as the command line, no second implementation: dead letters are read from
:class:`~worker.storage.DeadLetterStore` (``dlq list|show``), replayed by
:func:`worker.ops.deadletters.replay` (``dlq replay``), and ``GET /v1/status`` is
:func:`worker.ops.status.collect_status` (``status --json``).

Dead letters hold cable text of any classification: an envelope's text (intake, parse and
validate failures; its classification is unknown, since it did not parse or did not
validate) or a parsed record (sink failures). An ``operate`` token reads a letter's content
(payload, reason, schema errors, reference id, sha256) only when its clearance reaches the
content's rank, as for reads: a record ranks at its effective classification, an envelope's
text at the top of the ranking (TOP SECRET//NOFORN). Above the clearance, the letter is still
listed and can be replayed (an operator must see and act on failures, and replaying shows
nothing), with its content withheld (``"withheld": true``); a ``reason`` filter never matches
a withheld letter, so that it cannot be used to probe the text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson
from kombu.exceptions import KombuError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from worker.errors import UnavailableError
from worker.http.auth import clearance_of, require
from worker.http.context import Context
from worker.http.intake import unavailable
from worker.http.problems import Problem, not_found
from worker.http.reads import _date, _limit, decode_cursor, encode_cursor, json_response
from worker.model import CLASSIFICATIONS
from worker.ops.deadletters import replay
from worker.ops.status import collect_status
from worker.queue.brokers import BrokerUnavailableError
from worker.routing.rules import effective_rank, rank
from worker.storage.deadletters import STAGE
from worker.storage.tokens import TokenInfo

TOP_RANK = len(CLASSIFICATIONS) - 1
MAX_REPLAY = 10_000  # dead letters one batch replay sends at most
CONTENT = ("reason", "schema_errors", "reference_id", "sha256", "payload")
SELECTORS = ("stage", "sink", "reason", "since", "until", "message_id")


async def _operator(request: Request) -> tuple[Context, TokenInfo]:
    ctx: Context = request.app.state.ctx
    token = await ctx.auth.authenticate(request)
    require(token, "operate")
    return ctx, token


def content_rank(letter: Mapping[str, Any]) -> int:
    """The rank of what a dead letter holds: a record's effective classification (unknown
    ones at the top), an envelope's text at the top."""
    payload = letter.get("payload")
    sink = str(letter.get("stage", "")).startswith("sink:")
    if sink and isinstance(payload, Mapping) and "sha256" not in payload:  # a record
        return min(effective_rank(payload), TOP_RANK)
    return TOP_RANK  # an envelope's text, classification unknown


def readable(letter: Mapping[str, Any], token: TokenInfo) -> bool:
    """Whether ``token`` may read the content of ``letter``."""
    return content_rank(letter) <= rank(clearance_of(token))


def view(letter: Mapping[str, Any], token: TokenInfo, *, payload: bool) -> dict[str, Any]:
    """The letter as ``token`` may see it: content withheld above its clearance; the payload
    only when asked for (one letter, not listings)."""
    shown = {key: value for key, value in letter.items() if payload or key != "payload"}
    if readable(letter, token):
        return shown | {"withheld": False}
    return {key: value for key, value in shown.items() if key not in CONTENT} | {"withheld": True}


def _stage(raw: str | None) -> str | None:
    if raw is not None and not STAGE.match(raw):
        raise Problem(
            422,
            "invalid_parameter",
            f"stage: expected intake, parse, validate or sink:<name>, got {raw!r}",
        )
    return raw


def _selection(values: Mapping[str, Any]) -> dict[str, Any]:
    """The store's filters from query parameters or a JSON body."""
    for name in SELECTORS:
        if values.get(name) is not None and not isinstance(values[name], str):
            raise Problem(422, "invalid_parameter", f"{name}: expected a string")
    return {
        "stage": _stage(values.get("stage")),
        "sink": values.get("sink"),
        "reason_contains": values.get("reason") or None,
        "since": _date(values.get("since"), "since"),
        "until": _date(values.get("until"), "until"),
        "message_id": values.get("message_id"),
    }


def _after(raw: str | None) -> tuple[datetime, str] | None:
    position = decode_cursor(raw)
    if not position:
        return None
    seen, letter_id = position.get("s"), position.get("i")
    if not isinstance(seen, str) or not isinstance(letter_id, str):
        raise Problem(422, "invalid_cursor", "the cursor is not one this API gave")
    moment = _date(seen, "cursor")
    assert moment is not None
    return moment, letter_id


def _page(
    fetch: Callable[[tuple[datetime, str] | None, int], list[dict[str, Any]]],
    keep: Callable[[dict[str, Any]], bool],
    limit: int,
    after: tuple[datetime, str] | None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Up to ``limit`` kept letters after ``after``, and the last one when more follow (the
    next cursor names a returned letter, never one left out)."""
    kept: list[dict[str, Any]] = []
    position, chunk = after, limit + 1
    while True:
        rows = fetch(position, chunk)
        for row in rows:
            if not keep(row):
                continue
            if len(kept) == limit:
                return kept, kept[-1]
            kept.append(row)
        if len(rows) < chunk:
            return kept, None
        last = _date(rows[-1]["last_seen"], "last_seen")
        assert last is not None
        position, chunk = (last, str(rows[-1]["id"])), chunk * 2


async def list_dead_letters(request: Request) -> Response:
    """Dead letters, most recently failed first, filtered, by cursor (payloads left out)."""
    ctx, token = await _operator(request)
    selection = _selection(request.query_params)
    limit = _limit(request)
    after = _after(request.query_params.get("cursor"))

    def fetch(position: tuple[datetime, str] | None, size: int) -> list[dict[str, Any]]:
        return ctx.dead_letters.list(**selection, after=position, limit=size)

    def keep(letter: dict[str, Any]) -> bool:  # a reason filter never matches a withheld letter
        return not selection["reason_contains"] or readable(letter, token)

    rows, last = await run_in_threadpool(_page, fetch, keep, limit, after)
    next_cursor = None
    if last is not None:
        next_cursor = encode_cursor({"s": last["last_seen"], "i": last["id"]})
    items = [view(letter, token, payload=False) for letter in rows]
    return json_response({"items": items, "next_cursor": next_cursor})


async def get_dead_letter(request: Request) -> Response:
    """One dead letter, payload included when the token may read it."""
    ctx, token = await _operator(request)
    letter_id = request.path_params["dead_letter_id"]
    letter = await run_in_threadpool(ctx.dead_letters.get, letter_id)
    if letter is None:
        raise not_found(f"dead letter {letter_id}")
    return json_response(view(letter, token, payload=True))


async def _replay(ctx: Context, letters: list[dict[str, Any]], again: bool) -> Response:
    try:
        done = await run_in_threadpool(replay, ctx.settings, ctx.dead_letters, letters, again=again)
    except (OSError, KombuError, UnavailableError, BrokerUnavailableError) as error:
        raise unavailable(
            "queue_unavailable",
            f"the broker failed while replaying ({type(error).__name__}); some may have "
            "been sent, none is marked replayed: retry",
        ) from None
    return json_response(done.as_dict())


def _flag(raw: object, name: str) -> bool:
    if raw is None or isinstance(raw, bool):
        return bool(raw)
    if isinstance(raw, str) and raw.lower() in ("true", "1", "false", "0"):
        return raw.lower() in ("true", "1")
    raise Problem(422, "invalid_parameter", f"{name}: expected true or false")


async def replay_dead_letter(request: Request) -> Response:
    """Send one dead letter back where it failed (``?again=true``: even if replayed since)."""
    ctx, _token = await _operator(request)
    letter_id = request.path_params["dead_letter_id"]
    again = _flag(request.query_params.get("again"), "again")
    letter = await run_in_threadpool(ctx.dead_letters.get, letter_id)
    if letter is None:
        raise not_found(f"dead letter {letter_id}")
    return await _replay(ctx, [letter], again)


async def replay_dead_letters(request: Request) -> Response:
    """Replay the dead letters a JSON selection names: filters, or ``"all": true``."""
    ctx, token = await _operator(request)
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        raise Problem(400, "undecodable", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Problem(422, "invalid_parameter", "expected a JSON object")
    selection = _selection(body)
    everything = _flag(body.get("all"), "all")
    if not everything and not any(value is not None for value in selection.values()):
        raise Problem(
            422,
            "nothing_selected",
            'give filters (stage, sink, reason, since, until, message_id) or "all": true',
        )
    limit = body.get("limit", MAX_REPLAY)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_REPLAY:
        raise Problem(422, "invalid_parameter", f"limit: expected 1-{MAX_REPLAY:,}")
    letters = await run_in_threadpool(ctx.dead_letters.list, **selection, limit=limit)
    if selection["reason_contains"]:
        letters = [letter for letter in letters if readable(letter, token)]
    return await _replay(ctx, letters, _flag(body.get("again"), "again"))


async def status(request: Request) -> Response:
    """The operator's snapshot: ``cable-ingest status --json``'s document."""
    ctx, _token = await _operator(request)
    try:
        snapshot = await run_in_threadpool(collect_status, ctx.settings, ctx.celery)
    except (BrokerUnavailableError, UnavailableError, OSError, KombuError) as error:
        raise unavailable(
            "queue_unavailable", f"the broker does not answer ({type(error).__name__})"
        ) from None
    return json_response(snapshot.as_dict())
