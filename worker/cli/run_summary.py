"""What ``cable-ingest run`` reports: every input's outcome, for people and for scripts.

The ``--json`` document is versioned (``version``); its shape is documented in the README
("Exit codes and --json") and changes only with a new version. The exit code follows from the
summary (:attr:`RunSummary.exit_code`, numbers in :mod:`worker.cli.exits`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from worker.cli import exits
from worker.intake.enqueue import EnqueueSummary

OVERLAP = timedelta(seconds=5)  # commits may land with timestamps a little in the past
NAMED = 10  # dead-lettered inputs named in the summary for people (all of them in --json)
JSON_VERSION = 1  # of the --json document of run and enqueue (README, "Exit codes and --json")
FINISH = "cable-ingest worker"

Stopped = Literal["interrupted", "stalled", "workers_exited"]


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """An input that was enqueued and ended as a dead letter at a terminal stage."""

    input: str
    message_id: str
    dead_letter_id: str
    stage: str
    error_class: str
    reason: str

    @property
    def show(self) -> str:
        """The command that prints this dead letter, payload included."""
        return f"cable-ingest dlq show {self.dead_letter_id}"

    def line(self) -> str:
        """One line for people."""
        reason = " ".join(self.reason.split())
        reason = reason if len(reason) <= 100 else reason[:99] + "…"
        return f"{self.input}: {self.stage} {self.error_class}: {reason} ({self.show})"

    def as_dict(self) -> dict[str, str]:
        """For ``--json``."""
        return {
            "input": self.input,
            "message_id": self.message_id,
            "dead_letter_id": self.dead_letter_id,
            "stage": self.stage,
            "error_class": self.error_class,
            "reason": self.reason,
            "show": self.show,
        }


@dataclass(frozen=True, slots=True)
class Queued:
    """What the intake queue held when ``run`` stopped short: messages waiting, and messages
    taken by a consumer but not acknowledged; or why the broker could not say."""

    waiting: int | None
    unacked: int | None
    error: str | None = None

    def line(self) -> str:
        """One line for people."""
        if self.error is not None:
            return f"unknown ({self.error})"
        return (
            f"{self.waiting:,} messages waiting on the intake queue, "
            f"{self.unacked:,} taken and not acknowledged"
        )

    def as_dict(self) -> dict[str, object]:
        """For ``--json``."""
        return {"intake_waiting": self.waiting, "intake_unacked": self.unacked, "error": self.error}


@dataclass(slots=True)
class RunSummary:
    """What became of every input of one run."""

    enqueue: EnqueueSummary
    since: datetime = field(default_factory=lambda: datetime.now(UTC) - OVERLAP)
    stored: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    dead_inputs: list[DeadLettered] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notified: dict[str, Counter[str]] = field(default_factory=dict)
    stopped: Stopped | None = None
    queued: Queued | None = None
    finish: str = FINISH
    seconds: float = 0.0
    worker_log: str = ""

    @property
    def exit_code(self) -> int:
        """130 interrupted, 75 some enqueued input has no outcome, 65 some input rejected or
        dead-lettered, else 0 (worker.cli.exits)."""
        if self.stopped == "interrupted":
            return exits.INTERRUPTED
        if self.missing:
            return exits.TEMPFAIL
        if self.enqueue.rejected or self.dead_inputs:
            return exits.DATA
        return exits.OK

    @property
    def dlq_list(self) -> str:
        """The command that lists the dead letters of this run (and any others since it began)."""
        return f"cable-ingest dlq list --since {self.since:%Y-%m-%dT%H:%M:%SZ}"

    def as_dict(self) -> dict[str, object]:
        """The summary for scripts: the ``--json`` document (README, "Exit codes and --json")."""
        sources = self.enqueue.sources
        return {
            "version": JSON_VERSION,
            "command": "run",
            "exit_code": self.exit_code,
            **self.enqueue.as_dict(),
            "stopped": self.stopped or self.enqueue.stopped,
            "stored": dict(self.stored),
            "dead_lettered": dict(self.dead_lettered),
            "dead_lettered_inputs": [dead.as_dict() for dead in self.dead_inputs],
            "dlq_list": self.dlq_list,
            "missing": [{"input": sources[m], "message_id": m} for m in self.missing],
            "queued": self.queued.as_dict() if self.queued is not None else None,
            "finish": self.finish if self.missing else None,
            "notified": {sink: dict(outcomes) for sink, outcomes in self.notified.items()},
            "seconds": round(self.seconds, 3),
            "worker_log": self.worker_log,
        }

    def lines(self) -> list[str]:
        """The summary for people."""
        settled = sum(self.stored.values()) + len(self.dead_inputs)
        rate = settled / self.seconds if self.seconds > 0 else 0.0
        lines = self.enqueue.lines()
        lines.append(f"stored:            {sum(self.stored.values()):,}")
        lines += [f"  {k}: {v:,}" for k, v in sorted(self.stored.items())]
        lines.append(f"dead-lettered:     {sum(self.dead_lettered.values()):,}")
        lines += [f"  {k}: {v:,}" for k, v in sorted(self.dead_lettered.items())]
        lines += [f"  {dead.line()}" for dead in self.dead_inputs[:NAMED]]
        if len(self.dead_inputs) > NAMED:
            lines.append(f"  and {len(self.dead_inputs) - NAMED:,} more: {self.dlq_list}")
        for sink, outcomes in self.notified.items():
            shown = ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())) or "nothing"
            lines.append(f"sink {sink + ':':<13}{shown}")
        lines += self._stopped_lines()
        lines.append(
            f"time to outcomes:  {self.seconds:,.1f} s ({rate:,.0f} cables/s, workers' start-up included)"
        )
        lines.append(f"worker log:        {self.worker_log}")
        return lines

    def _stopped_lines(self) -> list[str]:
        lines = []
        if self.stopped == "interrupted" and self.enqueue.stopped != "interrupted":
            lines.append("stopped:           interrupted (Ctrl-C) while waiting for outcomes")
        elif self.stopped == "stalled":
            lines.append("stopped:           no outcome came for --stall-timeout seconds")
        elif self.stopped == "workers_exited":
            lines.append("stopped:           the workers exited (see the worker log)")
        if self.missing:
            example = self.enqueue.sources[self.missing[0]]
            lines.append(
                f"NO OUTCOME:        {len(self.missing):,} of {self.enqueue.enqueued:,} enqueued"
                f" (e.g. {example})"
            )
            if self.queued is not None:
                lines.append(f"still queued:      {self.queued.line()}")
            lines.append(
                f"to finish them:    {self.finish} (same settings; `cable-ingest status` shows"
                " when the intake queue is empty)"
            )
        return lines
