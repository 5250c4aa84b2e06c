"""The notification document a notification sink sends for one cable (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = "1.0.0"


def delivery_key(message_id: str, sink: str) -> str:
    """The same key on every redelivery of one cable to one sink."""
    return f"{message_id}:{sink}"


def build_notification(
    record: Mapping[str, Any],
    *,
    message_id: str,
    sink: str,
    rule: str | None,
    include_body: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The header facts of ``record`` (``schemas/notification.schema.json``); the summary and
    paragraphs only with ``include_body``. ``record`` comes from a sink's queue, not validated
    again (:class:`worker.sinks.base.Delivery`): a mapping, read with ``get``."""
    tags = record.get("tags") or []
    notification: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "delivery_key": delivery_key(message_id, sink),
        "message_id": message_id,
        "sink": sink,
        "rule": rule,
        "reference_id": record.get("reference_id"),
        "date": record.get("date"),
        "origin": record.get("origin"),
        "classification": record.get("classification"),
        "subject": record.get("subject"),
        "tags": [t["code"] if isinstance(t, Mapping) else str(t) for t in tags],
        "sent_at": (now or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    if include_body:
        notification["body"] = {
            "summary": record.get("summary"),
            "paragraphs": list(record.get("paragraphs") or []),
        }
    return notification
