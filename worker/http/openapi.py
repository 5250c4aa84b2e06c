"""The OpenAPI 3.1 document of ``cable-ingest serve``, written beside the routes it describes.

Starlette generates none, and the bodies here (text/plain, NDJSON, multipart archives) are not
models anyway. ``schemas/openapi.json`` is this document, committed; ``tests/http/test_openapi.py``
fails when the two, or the document and the app's routes, drift apart. Regenerate the file with
``python -m worker.http.openapi > schemas/openapi.json``.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from worker import __version__
from worker.http.documents import SCHEMAS

PROBLEM = {"$ref": "#/components/responses/Problem"}
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(status): PROBLEM for status in statuses}


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


_LISTING_PARAMS = [
    _query("limit", "Items per page (1-100, default 20).", type="integer", minimum=1, maximum=100),
    _query("cursor", "next_cursor of the previous page."),
]


def _paths() -> dict[str, Any]:
    page = {
        "200": _json(_ref("Page"), "A page of cables the token may read."),
        **_problems(401, 403, 404, 422),
    }
    return {
        "/v1/cables": {
            "post": {
                "operationId": "postCables",
                "summary": "Enqueue cables; 202 once every accepted envelope is in the broker.",
                "security": BEARER,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 200},
                        "description": "A retry with the same key gets the first response.",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        "application/x-ndjson": {"schema": _ref("NdjsonLine")},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": {"type": "string", "format": "binary"},
                            }
                        },
                    },
                },
                "responses": {
                    "202": _json(_ref("Accepted"), "One entry per input, in order."),
                    **_problems(400, 401, 403, 408, 409, 413, 415, 422, 503),
                },
            },
            "get": {
                "operationId": "listCables",
                "summary": "Full-text search (q) and filtered listings, by cursor.",
                "security": BEARER,
                "parameters": [
                    _query("q", "Words that must all occur in the subject or body."),
                    _query("origin", "The originating post, e.g. Embassy Almaty."),
                    _query("classification", "An exact classification."),
                    _query("tag", "A TAGS code, e.g. PREL."),
                    _query(
                        "from", "Dated on or after (ISO 8601).", type="string", format="date-time"
                    ),
                    _query(
                        "to", "Dated on or before (ISO 8601).", type="string", format="date-time"
                    ),
                    *_LISTING_PARAMS,
                ],
                "responses": page,
            },
        },
        "/v1/cables/{reference_id}": {
            "get": {
                "operationId": "getCable",
                "summary": "A stored record; 404 also when it is above the token's clearance.",
                "security": BEARER,
                "parameters": [
                    _path("reference_id", "e.g. 06ALMATY598"),
                    _query(
                        "revision",
                        "A revision number (default: current).",
                        type="integer",
                        minimum=1,
                    ),
                ],
                "responses": {
                    "200": _json(_ref("Cable"), "The record."),
                    **_problems(401, 403, 404, 422),
                },
            },
        },
        "/v1/cables/{reference_id}/cited-by": {
            "get": {
                "operationId": "citedBy",
                "summary": "Stored cables whose references name this one.",
                "security": BEARER,
                "parameters": [_path("reference_id", "e.g. 06ALMATY598"), *_LISTING_PARAMS],
                "responses": page,
            },
        },
        "/v1/messages/{message_id}": {
            "get": {
                "operationId": "getMessage",
                "summary": "The receipt of an envelope of the token's feed; 404 for an id "
                "never accepted.",
                "security": BEARER,
                "parameters": [_path("message_id", "The message id a 202 entry gave.")],
                "responses": {
                    "200": _json(_ref("Message"), "What became of it."),
                    **_problems(401, 403, 404),
                },
            },
        },
        "/v1/dead-letters": {
            "get": {
                "operationId": "listDeadLetters",
                "summary": "Dead letters, most recently failed first (scope operate).",
                "security": BEARER,
                "parameters": [
                    _query("stage", "intake, parse, validate or sink:NAME."),
                    _query("sink", "Failures of this sink only."),
                    _query("reason", "The reason contains this (any case); never a withheld one."),
                    _query("since", "Last seen at or after.", type="string", format="date-time"),
                    _query("until", "Last seen before.", type="string", format="date-time"),
                    _query("message_id", "The dead letters of one envelope."),
                    *_LISTING_PARAMS,
                ],
                "responses": {
                    "200": _json(_ref("DeadLetterPage"), "A page, payloads left out."),
                    **_problems(401, 403, 422),
                },
            },
        },
        "/v1/dead-letters/replay": {
            "post": {
                "operationId": "replayDeadLetters",
                "summary": "Replay the dead letters a selection names (scope operate).",
                "security": BEARER,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ReplaySelection")}},
                },
                "responses": {
                    "200": _json(_ref("Replayed"), "Sent back where they failed."),
                    **_problems(400, 401, 403, 422, 503),
                },
            },
        },
        "/v1/dead-letters/{dead_letter_id}": {
            "get": {
                "operationId": "getDeadLetter",
                "summary": "One dead letter, payload included unless withheld (scope operate).",
                "security": BEARER,
                "parameters": [_path("dead_letter_id", "The id a listing gave.")],
                "responses": {
                    "200": _json(_ref("DeadLetter"), "The dead letter."),
                    **_problems(401, 403, 404),
                },
            },
        },
        "/v1/dead-letters/{dead_letter_id}/replay": {
            "post": {
                "operationId": "replayDeadLetter",
                "summary": "Send one dead letter back where it failed (scope operate).",
                "security": BEARER,
                "parameters": [
                    _path("dead_letter_id", "The id a listing gave."),
                    _query("again", "Even if replayed since it failed.", type="boolean"),
                ],
                "responses": {
                    "200": _json(_ref("Replayed"), "What was sent."),
                    **_problems(401, 403, 404, 422, 503),
                },
            },
        },
        "/v1/status": {
            "get": {
                "operationId": "status",
                "summary": "Queues, workers, throughput, dead letters (scope operate).",
                "security": BEARER,
                "responses": {
                    "200": _json(_ref("Status"), "cable-ingest status --json's document."),
                    **_problems(401, 403, 503),
                },
            },
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "200 while the process runs.",
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Broker and database answer, waiting work is consumed.",
                "responses": {
                    "200": {"description": "ready"},
                    "503": {"description": "not ready, with reasons"},
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus text format.",
                "responses": {"200": {"description": "the metrics"}},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cable-ingest",
            "version": __version__,
            "description": "Intake and read API for diplomatic cables. Errors are "
            "application/problem+json (RFC 9457) with a stable code.",
        },
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "cable-ingest tokens create NAME",
                }
            },
            "schemas": SCHEMAS,
            "responses": {
                "Problem": {
                    "description": "A problem (RFC 9457).",
                    "content": {"application/problem+json": {"schema": _ref("Problem")}},
                }
            },
        },
    }


def main() -> int:
    """Print the document (what schemas/openapi.json holds)."""
    sys.stdout.buffer.write(orjson.dumps(openapi_document(), option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
