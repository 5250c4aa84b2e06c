"""The two candidate apps of ``bench/frameworks.py``: the same two endpoints, each framework's way.

``POST /v1/cables`` reads a text/plain body, hashes it and answers 202 with JSON;
``GET /v1/cables/{reference_id}`` answers a 2 KB JSON document. uvicorn imports these factories
(``--factory``), so each runs in a process of its own.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DOCUMENT: dict[str, Any] = {
    "reference_id": "06ALMATY598",
    "subject": "KAZAKHSTAN: GOK DENIES REFOULEMENT " * 4,
    "paragraphs": [{"number": n, "text": "x" * 160} for n in range(10)],
}


def _accepted(body: bytes) -> bytes:
    entry = {"message_id": str(uuid.uuid4()), "sha256": hashlib.sha256(body).hexdigest()}
    return orjson.dumps({"entries": [entry]})


def starlette_app() -> Starlette:
    """The endpoints on Starlette: plain routes, orjson bodies."""

    async def post(request: Request) -> Response:
        body = await request.body()
        return Response(_accepted(body), 202, media_type="application/json")

    async def get(request: Request) -> Response:
        document = {**DOCUMENT, "reference_id": request.path_params["reference_id"]}
        return Response(orjson.dumps(document), media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/cables", post, methods=["POST"]),
            Route("/v1/cables/{reference_id}", get, methods=["GET"]),
        ]
    )


def fastapi_app() -> Any:
    """The endpoints on FastAPI: the same bodies, FastAPI's routing and dependency machinery."""
    from fastapi import FastAPI  # noqa: PLC0415 - optional: measured only when installed

    app = FastAPI()

    @app.post("/v1/cables", status_code=202)
    async def post(request: Request) -> Response:
        body = await request.body()
        return Response(_accepted(body), 202, media_type="application/json")

    @app.get("/v1/cables/{reference_id}")
    async def get(reference_id: str) -> Response:
        document = {**DOCUMENT, "reference_id": reference_id}
        return Response(orjson.dumps(document), media_type="application/json")

    return app
