"""Reparse runs on the status screen: the unfinished ones, their progress, one line each."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from worker.storage.reparse import FAILED, NO_ORIGINAL, REVISED, UNCHANGED, Progress, ReparseStore


def reparse_runs(url: str, since: datetime) -> list[Progress]:
    """Unfinished reparse runs, each with the items settled since ``since`` (none before
    migration 0005 made their table: nothing is created here)."""
    store = ReparseStore(url)
    try:
        return store.unfinished(since)
    finally:
        store.close()


def reparse_lines(
    runs: list[Progress], at: datetime, human_age: Callable[[float], str]
) -> list[str]:
    """One line per run: progress, outcomes so far, when the last item was settled."""
    lines = []
    for run in runs:
        share = run.done / run.total if run.total else 1.0
        counts = run.counts
        last = "none yet"
        if run.last_done_at is not None:
            last = human_age((at - run.last_done_at).total_seconds()) + " ago"
        lines.append(
            f"reparse {run.run_id[:8]} ({run.selection}): {run.done:,}/{run.total:,} done"
            f" ({share:.0%}): unchanged {counts.get(UNCHANGED, 0):,}, revised"
            f" {counts.get(REVISED, 0):,}, failed {counts.get(FAILED, 0):,}, no original"
            f" {counts.get(NO_ORIGINAL, 0):,}; last settled {last}"
        )
    return lines
