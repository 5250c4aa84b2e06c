"""The JSON Schemas of the API's documents (OpenAPI ``components.schemas``): what a 202 holds
per input, an NDJSON line, a receipt, a record, a page of a listing, a problem, and the
operator's dead letters, replays and status."""

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
    "DeadLetter": {
        "type": "object",
        "description": "schemas/dead-letter.schema.json as stored. Above the token's clearance "
        "(an envelope's text ranks at the top; a record at its classification) the content "
        "(reason, schema_errors, reference_id, sha256, payload) is left out and withheld is "
        "true. payload only on GET /v1/dead-letters/{dead_letter_id}.",
        "required": ["id", "stage", "error_class", "attempts", "last_seen", "withheld"],
        "properties": {
            "id": {"type": "string"},
            "stage": {"type": "string", "description": "intake, parse, validate or sink:NAME."},
            "error_class": {"type": "string"},
            "reason": {"type": "string"},
            "schema_errors": {"type": "array", "items": {"type": "object"}},
            "attempts": {"type": "integer"},
            "first_seen": {"type": "string", "format": "date-time"},
            "last_seen": {"type": "string", "format": "date-time"},
            "message_id": {"type": ["string", "null"]},
            "reference_id": {"type": ["string", "null"]},
            "sha256": {"type": ["string", "null"]},
            "source": {"type": ["string", "null"]},
            "payload": {"type": "object"},
            "replayed_at": {"type": ["string", "null"], "format": "date-time"},
            "withheld": {"type": "boolean"},
        },
    },
    "DeadLetterPage": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": _ref("DeadLetter")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as ?cursor= for the next page; null: the last.",
            },
        },
    },
    "ReplaySelection": {
        "type": "object",
        "additionalProperties": False,
        "description": "Filters (as GET /v1/dead-letters takes them), or all: true; "
        "nothing selected is a 422 nothing_selected.",
        "properties": {
            "stage": {"type": "string"},
            "sink": {"type": "string"},
            "reason": {"type": "string", "description": "Never matches a withheld letter."},
            "since": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time"},
            "message_id": {"type": "string"},
            "all": {"type": "boolean"},
            "again": {"type": "boolean", "description": "Also those replayed since they failed."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
        },
    },
    "Replayed": {
        "type": "object",
        "required": ["replayed", "ids", "skipped", "by_stage"],
        "properties": {
            "replayed": {"type": "integer"},
            "ids": {"type": "array", "items": {"type": "string"}},
            "skipped": {
                "type": "integer",
                "description": "Replayed since their last failure (again: true sends them).",
            },
            "by_stage": {"type": "object", "additionalProperties": {"type": "integer"}},
            "unconfigured_sinks": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Sinks replayed to that the configuration does not name.",
            },
        },
    },
    "Status": {
        "type": "object",
        "description": "The document of cable-ingest status --json: queues, workers, "
        "throughput over window_s, sinks, dead letters by stage, reparse runs, notes.",
        "required": ["at", "queues", "sinks", "dead_letters"],
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "broker": {"type": "string"},
            "database": {"type": "string"},
            "batch_size": {"type": "integer"},
            "window_s": {"type": "integer"},
            "workers": {"type": ["array", "null"], "items": {"type": "object"}},
            "queues": {"type": "array", "items": {"type": "object"}},
            "intake": {"type": "object"},
            "sinks": {"type": "array", "items": {"type": "object"}},
            "dead_letters": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "integer"},
            },
            "reparse": {"type": ["array", "null"], "items": {"type": "object"}},
            "notes": {"type": "array", "items": {"type": "string"}},
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
                    "nothing_selected",
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
