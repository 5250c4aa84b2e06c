"""Enqueue whatever a producer was given: paths in, envelopes on the queue, a summary out.

Each input ends as exactly one of: enqueued, a duplicate of an earlier input of the same call
(same sha256; skipped), or rejected with a reason code and a message (missing, unreadable,
empty, oversize, binary, undecodable). The summary's counts always add up to the inputs.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from worker.errors import UnavailableError
from worker.intake.envelope import IntakeError, check_input, make_envelope
from worker.intake.producer import Producer
from worker.intake.sources import iter_inputs


@dataclass(slots=True)
class EnqueueSummary:
    """What became of each input."""

    enqueued: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    message_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def inputs(self) -> int:
        """Every input seen: enqueued + duplicates + rejected."""
        return self.enqueued + self.duplicates + sum(self.rejected.values())

    def as_dict(self) -> dict[str, object]:
        """The summary for scripts (message ids left out)."""
        return {
            "inputs": self.inputs,
            "enqueued": self.enqueued,
            "duplicates": self.duplicates,
            "rejected": dict(self.rejected),
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
        return lines


def enqueue_paths(
    paths: Sequence[str],
    producer: Producer,
    *,
    on_rejected: Callable[[IntakeError], None] | None = None,
    on_input: Callable[[], object] | None = None,
    stdin: BinaryIO | None = None,
) -> EnqueueSummary:
    """Read, check and enqueue every input under ``paths``; flush at the end. A broker that
    stays away (UnavailableError) stops it, saying how many inputs reached the broker before."""
    sent_before = producer.envelopes_sent
    try:
        return _enqueue(paths, producer, on_rejected, on_input, stdin)
    except UnavailableError as error:
        sent = producer.envelopes_sent - sent_before
        if sent:
            inputs = "1 input was" if sent == 1 else f"{sent:,} inputs were"
            last = f" (the last: {producer.last_sent_source})" if producer.last_sent_source else ""
            told = f"{inputs} enqueued before{last}; none after that was"
        else:
            told = "no input was enqueued"
        raise UnavailableError(error.what, error.url, f"{error}. {told}") from error


def _enqueue(
    paths: Sequence[str],
    producer: Producer,
    on_rejected: Callable[[IntakeError], None] | None,
    on_input: Callable[[], object] | None,
    stdin: BinaryIO | None,
) -> EnqueueSummary:
    summary = EnqueueSummary()
    seen: set[bytes] = set()
    started = time.monotonic()
    max_bytes = producer.settings.max_input_bytes
    for item in iter_inputs(paths, max_bytes=max_bytes, stdin=stdin):
        if on_input is not None:
            on_input()
        try:
            if item.error is not None:
                raise item.error
            assert item.data is not None
            digest = hashlib.sha256(item.data).digest()
            if digest in seen:
                summary.duplicates += 1
                continue
            text = check_input(item.data, max_bytes=max_bytes)
            envelope = make_envelope(text, source=item.name, metadata=item.metadata or None)
        except IntakeError as error:
            if not str(error).startswith(item.name):
                error = IntakeError(error.reason_code, f"{item.name}: {error}")
            summary.rejected[error.reason_code] += 1
            if on_rejected is not None:
                on_rejected(error)
            continue
        seen.add(digest)
        producer.add(envelope)
        summary.enqueued += 1
        summary.message_ids.append(str(envelope["id"]))
    producer.flush()
    summary.seconds = time.monotonic() - started
    return summary
