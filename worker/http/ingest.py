"""``POST /v1/cables``: inputs through the door of ``enqueue``, one entry per input, in order.

Each input is checked and wrapped (:func:`~worker.intake.envelope.admit`) exactly as
``cable-ingest enqueue`` does, stamped
with the token's feed as its source. An entry is ``accepted`` (message id, sha256),
``rejected`` (the door's reason code) or ``duplicate`` (the same text earlier in the request).
The answer, 202, is sent once every accepted envelope is in the broker (:mod:`.intake`).

With an ``Idempotency-Key`` the first response is stored with the key (per feed) and returned
again for a retry of the same request, nothing enqueued twice; the key reused for another
request is 422, a retry while the first still runs 409.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from worker.http.auth import require
from worker.http.body import BoundedBody
from worker.http.context import Context
from worker.http.inputs import (
    Input,
    expand_files,
    media_type,
    multipart_files,
    ndjson_inputs,
    too_many,
)
from worker.http.problems import Problem
from worker.intake.envelope import IntakeError, admit, format_utc
from worker.storage.tokens import TokenInfo

MAX_KEY_CHARS = 200


def door(inputs: list[Input], max_bytes: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(entries, envelopes): one entry per input in order, one envelope per accepted input.
    An input whose text is an earlier one's (the same sha256) is a ``duplicate`` of it."""
    entries: list[dict[str, Any]] = []
    envelopes: list[dict[str, Any]] = []
    first: dict[str, int] = {}
    received_at = format_utc(datetime.now(UTC))  # one request, one moment
    for index, item in enumerate(inputs):
        entry: dict[str, Any] = {"index": index}
        if item.name is not None:
            entry["name"] = item.name
        try:
            if item.error is not None:
                raise item.error
            assert item.data is not None
            envelope = admit(
                item.data,
                source=item.source,
                metadata=item.metadata or None,
                max_bytes=max_bytes,
                received_at=received_at,
            )
        except IntakeError as error:
            entry |= {"status": "rejected", "reason": error.reason_code, "detail": str(error)}
            entries.append(entry)
            continue
        digest = envelope["sha256"]
        if digest in first:
            entry |= {"status": "duplicate", "sha256": digest, "duplicate_of": first[digest]}
        else:
            first[digest] = index
            envelopes.append(envelope)
            entry |= {"status": "accepted", "message_id": envelope["id"], "sha256": digest}
        entries.append(entry)
    return entries, envelopes


def request_fingerprint(kind: str, inputs: list[Input]) -> str:
    """What an Idempotency-Key is bound to: the inputs (names, sources, metadata, bytes), not
    the body's bytes, which differ between retries of a multipart upload (its boundary)."""
    digest = hashlib.sha256(kind.encode())
    for item in inputs:
        reason = item.error.reason_code if item.error is not None else None
        digest.update(orjson.dumps([item.name, item.source, item.metadata, reason]))
        data = (
            item.data.encode("utf-8", "surrogatepass") if isinstance(item.data, str) else item.data
        )
        digest.update(hashlib.sha256(data or b"").digest())
    return digest.hexdigest()


async def read_inputs(
    request: Request, kind: str, body: BoundedBody, token: TokenInfo, ctx: Context
) -> list[Input]:
    """The inputs of the request, by its media type ``kind``."""
    settings = ctx.settings
    if kind == "text/plain":
        return [Input(await body.read(), token.name)]
    if kind == "application/x-ndjson":
        return ndjson_inputs(await body.read(), token.name, settings.http_max_inputs)
    files = await multipart_files(body, request.headers, settings)
    try:
        if len(files) > settings.http_max_inputs:
            raise too_many(settings.http_max_inputs)
        return await run_in_threadpool(expand_files, files, token.name, settings)
    finally:
        for upload in files:
            await upload.close()


def _response(status: int, content: bytes, replayed: bool = False) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(content, status, headers, media_type="application/json")


async def post_cables(request: Request) -> Response:
    """Take cables from a feed; see the module docstring."""
    ctx: Context = request.app.state.ctx
    token = await ctx.auth.authenticate(request)
    require(token, "ingest")
    kind = media_type(request.headers.get("content-type"))  # 415 before reading anything
    limit = ctx.settings.http_max_body_bytes
    if kind == "text/plain":  # one cable: its own limit is the body's
        limit = min(limit, ctx.settings.max_input_bytes)
    body = BoundedBody(request, limit=limit, timeout_s=ctx.settings.http_read_timeout_s)
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_KEY_CHARS:
        raise Problem(422, "invalid_idempotency_key", f"expected 1-{MAX_KEY_CHARS} characters")
    inputs = await read_inputs(request, kind, body, token, ctx)
    if not inputs:
        raise Problem(422, "no_inputs", "the request holds no input")
    if key is not None:
        fingerprint = request_fingerprint(kind, inputs)
        held = await run_in_threadpool(ctx.idempotency.claim, token.name, key, fingerprint)
        if held is not None:
            if held.request_sha256 != fingerprint:
                raise Problem(
                    422, "idempotency_key_reused", "this key was used for a different request"
                )
            if held.status is None or held.response is None:
                raise Problem(
                    409,
                    "idempotency_in_progress",
                    "the first request with this key still runs",
                    headers={"Retry-After": "1"},
                )
            return _response(held.status, held.response, replayed=True)
    entries, envelopes = door(inputs, ctx.settings.max_input_bytes)
    try:
        await ctx.intake.submit(envelopes)
    except BaseException:
        if key is not None:
            await run_in_threadpool(ctx.idempotency.release, token.name, key)
        raise
    ctx.metrics.inputs(entries)
    content = orjson.dumps(
        {
            "feed": token.name,
            "accepted": len(envelopes),
            "rejected": sum(e["status"] == "rejected" for e in entries),
            "duplicates": sum(e["status"] == "duplicate" for e in entries),
            "entries": entries,
        }
    )
    if key is not None:
        await run_in_threadpool(ctx.idempotency.finish, token.name, key, 202, content)
    return _response(202, content)
