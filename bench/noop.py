"""The no-op task of `make bench`: the same app, broker and batches as ingest, and no work."""

from __future__ import annotations

from typing import Any

from bench.pipeline import NOOP_TASK
from worker.app import app


@app.task(name=NOOP_TASK)
def noop(envelopes: list[dict[str, Any]]) -> None:
    """Take a batch of envelopes and do nothing with it."""
    del envelopes
