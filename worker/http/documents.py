"""The JSON Schemas of the API's documents (OpenAPI ``components.schemas``): what a 202 holds
per input, an NDJSON line, a receipt, a record, a page of a listing, a problem."""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


ENTRY: dict[str, Any] = {
    "type": "object",
    "required": ["index", "status"],
    "properties": {
        "index": {"type": "integer", "description": "Position of the input in the request."},
        "name": {"type": "string", "description": "The file (or archive member) it came as."},
        "status": {"enum": ["accepted", "rejected", "duplicate"]},
        "message_id": {"type": "string", "description": "accepted: the envelope's id."},
        "sha256": {"type": "string", "description": "accepted, duplicate: of the raw text."},
        "reason": {
            "enum": ["empty", "oversize", "binary", "undecodable", "unreadable"],
            "description": "rejected: the door's reason code.",
        },
        "detail": {"type": "string", "description": "rejected: sizes and offsets, never content."},
        "duplicate_of": {"type": "integer", "description": "duplicate: the earlier input's index."},
    },
}

SCHEMAS: dict[str, Any] = {
    "Accepted": {
        "type": "object",
        "required": ["feed", "accepted", "rejected", "duplicates", "entries"],
        "properties": {
            "feed": {"type": "string", "description": "The token's feed: every envelope's source."},
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "entries": {"type": "array", "items": ENTRY},
        },
    },
    "NdjsonLine": {
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {
            "text": {"type": "string"},
            "source": {"type": "string", "description": "The feed's name or FEED/part."},
            "metadata": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
            },
        },
    },
    "Message": {
        "type": "object",
        "required": ["message_id", "status"],
        "properties": {
            "message_id": {"type": "string"},
            "status": {
                "enum": ["queued", "stored", "dead_lettered"],
                "description": "queued: accepted, no outcome recorded yet (an id that was "
                "never accepted is a 404).",
            },
            "accepted_at": {
                "type": "string",
                "format": "date-time",
                "description": "When the envelope was accepted onto the intake queue.",
            },
            "outcome": {"enum": ["inserted", "revised", "unchanged"]},
            "reference_id": {"type": "string"},
            "revision": {"type": "integer"},
            "stage": {
                "type": "string",
                "description": "dead_lettered: intake, parse, validate, sink:NAME.",
            },
            "reason": {"type": "string"},
        },
    },
    "Cable": {
        "type": "object",
        "required": ["reference_id", "revision", "record"],
        "properties": {
            "reference_id": {"type": "string"},
            "revision": {"type": "integer"},
            "revisions": {"type": "integer"},
            "stored_at": {"type": "string", "format": "date-time"},
            "parser_version": {"type": ["string", "null"]},
            "record": {"type": "object", "description": "schemas/cable.schema.json"},
        },
    },
    "Page": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "reference_id": {"type": "string"},
                        "date": {"type": ["string", "null"]},
                        "classification": {"type": ["string", "null"]},
                        "origin": {"type": ["string", "null"]},
                        "subject": {"type": ["string", "null"]},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "revision": {"type": "integer"},
                    },
                },
            },
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as ?cursor= for the next page; null: the last.",
            },
        },
    },
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; branch on code.",
        "required": ["type", "title", "status", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {
                "type": "string",
                "enum": [
                    "missing_token",
                    "invalid_token",
                    "insufficient_scope",
                    "foreign_source",
                    "not_found",
                    "method_not_allowed",
                    "slow_headers",
                    "slow_body",
                    "idempotency_in_progress",
                    "too_large",
                    "too_many_inputs",
                    "unsupported_media_type",
                    "undecodable",
                    "invalid_entry",
                    "no_inputs",
                    "invalid_parameter",
                    "invalid_cursor",
                    "invalid_idempotency_key",
                    "idempotency_key_reused",
                    "overloaded",
                    "queue_unavailable",
                    "receipts_unavailable",
                    "client_gone",
                ],
            },
            "retry_after_s": {"type": "integer"},
        },
    },
}
