"""Enqueue whatever a producer was given: paths in, envelopes on the queue, a summary out.

Each input ends as exactly one of: enqueued, a duplicate of an earlier input of the same call
(same sha256; skipped, and the earlier input named), or rejected with a reason code and a
message (missing, unreadable, empty, oversize, binary, undecodable). The summary's counts add
up to the inputs read, and it names every rejected and every duplicate input.

Two ways to stop early, both recorded in ``stopped``: ``strict`` (the first rejected input
stops the reading; what was accepted before it is sent, nothing after it is read) and
``interrupted`` (Ctrl-C: nothing more is read or sent; envelopes still buffered in the producer
are dropped and counted as ``unsent``, since their batch had not been confirmed sent).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from worker.errors import UnavailableError
from worker.intake.envelope import IntakeError, admit
from worker.intake.producer import Producer
from worker.intake.sources import iter_inputs

Stop = Literal["strict", "interrupted"]


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input refused at the door: its name, reason code and what was wrong."""

    input: str
    reason: str
    message: str

    @classmethod
    def of(cls, name: str, error: IntakeError) -> Rejection:
        """The rejection of input ``name`` (the error's message without the name it starts with)."""
        return cls(name, error.reason_code, str(error).removeprefix(f"{name}: "))

    def line(self) -> str:
        """The one line ``enqueue`` and ``run`` print for it."""
        return f"rejected ({self.reason}): {self.input}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        """For ``--json``."""
        return {"input": self.input, "reason": self.reason, "message": self.message}


@dataclass(frozen=True, slots=True)
class Duplicate:
    """An input skipped because an earlier input of the same call had the same text."""

    input: str
    duplicate_of: str

    def line(self) -> str:
        """The one line ``enqueue`` and ``run`` print for it."""
        return f"duplicate: {self.input}: same text as {self.duplicate_of}; skipped"

    def as_dict(self) -> dict[str, str]:
        """For ``--json``."""
        return {"input": self.input, "duplicate_of": self.duplicate_of}


@dataclass(slots=True)
class EnqueueSummary:
    """What became of each input."""

    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    sources: dict[str, str] = field(default_factory=dict)
    """Message id -> input name of every envelope sent, in the order sent."""
    rejections: list[Rejection] = field(default_factory=list)
    duplicate_inputs: list[Duplicate] = field(default_factory=list)
    unsent: int = 0
    stopped: Stop | None = None
    seconds: float = 0.0

    @property
    def enqueued(self) -> int:
        """Envelopes sent to the intake queue."""
        return len(self.sources)

    @property
    def message_ids(self) -> list[str]:
        """The ids of the envelopes sent, in order."""
        return list(self.sources)

    @property
    def inputs(self) -> int:
        """Every input read: enqueued + duplicates + rejected + unsent."""
        return self.enqueued + self.duplicates + sum(self.rejected.values()) + self.unsent

    def as_dict(self) -> dict[str, object]:
        """The summary for scripts (message ids left out)."""
        return {
            "inputs": self.inputs,
            "enqueued": self.enqueued,
            "duplicates": self.duplicates,
            "rejected": dict(self.rejected),
            "unsent": self.unsent,
            "stopped": self.stopped,
            "rejected_inputs": [r.as_dict() for r in self.rejections],
            "duplicate_inputs": [d.as_dict() for d in self.duplicate_inputs],
            "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[str]:
        """The summary for people, one fact per line."""
        rate = self.enqueued / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"inputs:            {self.inputs:,}",
            f"enqueued:          {self.enqueued:,} ({rate:,.0f}/s)",
            f"duplicates:        {self.duplicates:,} (same text earlier in this run; skipped)",
            f"rejected:          {sum(self.rejected.values()):,}",
        ]
        lines += [f"  {code}: {n:,}" for code, n in sorted(self.rejected.items())]
        if self.unsent:
            lines.append(f"not sent:          {self.unsent:,} (accepted, batch not sent: Ctrl-C)")
        if self.stopped == "strict":
            lines.append("stopped:           at the first rejected input (--strict)")
        elif self.stopped == "interrupted":
            lines.append("stopped:           interrupted (Ctrl-C); later inputs were not read")
        return lines


def enqueue_paths(
    paths: Sequence[str],
    producer: Producer,
    *,
    on_rejected: Callable[[Rejection], None] | None = None,
    on_duplicate: Callable[[Duplicate], None] | None = None,
    on_input: Callable[[], object] | None = None,
    strict: bool = False,
    stdin: BinaryIO | None = None,
) -> EnqueueSummary:
    """Read, check and enqueue every input under ``paths``; flush at the end. With ``strict``
    the first rejected input stops the reading (what came before it is sent). Ctrl-C
    (KeyboardInterrupt) stops reading and sending and returns the summary so far. A broker that
    stays away (UnavailableError) stops it, saying how many inputs reached the broker before."""
    sent_before = producer.envelopes_sent
    try:
        return _enqueue(paths, producer, on_rejected, on_duplicate, on_input, strict, stdin)
    except UnavailableError as error:
        sent = producer.envelopes_sent - sent_before
        if sent:
            inputs = "1 input was" if sent == 1 else f"{sent:,} inputs were"
            last = f" (the last: {producer.last_sent_source})" if producer.last_sent_source else ""
            told = f"{inputs} enqueued before{last}; none after that was"
        else:
            told = "no input was enqueued"
        raise UnavailableError(error.what, error.url, f"{error}. {told}") from error


def _enqueue(  # noqa: PLR0917 - the private body of enqueue_paths, same arguments
    paths: Sequence[str],
    producer: Producer,
    on_rejected: Callable[[Rejection], None] | None,
    on_duplicate: Callable[[Duplicate], None] | None,
    on_input: Callable[[], object] | None,
    strict: bool,
    stdin: BinaryIO | None,
) -> EnqueueSummary:
    summary = EnqueueSummary()
    seen: dict[str, str] = {}
    buffered: list[tuple[str, str]] = []  # (message id, input name) not yet sent
    started = time.monotonic()
    max_bytes = producer.settings.max_input_bytes

    def sent() -> None:
        summary.sources.update(buffered)
        buffered.clear()

    try:
        for item in iter_inputs(paths, max_bytes=max_bytes, stdin=stdin):
            if on_input is not None:
                on_input()
            try:
                if item.error is not None:
                    raise item.error
                assert item.data is not None
                envelope = admit(
                    item.data,
                    source=item.name,
                    metadata=item.metadata or None,
                    max_bytes=max_bytes,
                )
            except IntakeError as error:
                rejection = Rejection.of(item.name, error)
                summary.rejected[rejection.reason] += 1
                summary.rejections.append(rejection)
                if on_rejected is not None:
                    on_rejected(rejection)
                if strict:
                    summary.stopped = "strict"
                    break
                continue
            digest = str(envelope["sha256"])  # the text's: the same text is a duplicate
            if (earlier := seen.get(digest)) is not None:
                summary.duplicates += 1
                summary.duplicate_inputs.append(Duplicate(item.name, earlier))
                if on_duplicate is not None:
                    on_duplicate(summary.duplicate_inputs[-1])
                continue
            seen[digest] = item.name
            buffered.append((str(envelope["id"]), item.name))
            producer.add(envelope)
            if not producer.buffered:
                sent()
        producer.flush()
        sent()
    except KeyboardInterrupt:
        summary.stopped = "interrupted"
        summary.unsent = producer.discard()
        del buffered[len(buffered) - summary.unsent :]  # the rest went out before the interrupt
        sent()
    summary.seconds = time.monotonic() - started
    return summary
