"""Replaying dead letters: the one implementation behind ``cable-ingest dlq replay`` and the
HTTP API's ``POST /v1/dead-letters/…/replay``.

A dead letter replayed after its last failure (``replayed_at >= last_seen``) is skipped unless
``again`` is asked for. :func:`replay` sends each due letter back where it failed
(:meth:`~worker.intake.producer.Producer.replay`), then records ``replayed_at`` as the moment
just before the first send: a replayed message that fails again is always later than its
replay. A broker that fails mid-way raises (``OSError``, ``KombuError``): some may have been
sent, none is marked replayed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from worker.routing.config import load_config
from worker.settings import Settings
from worker.storage import DeadLetterStore

Letter = Mapping[str, Any]


def replayed_since_failure(letter: Letter) -> bool:
    """Whether ``letter`` was replayed after it last failed."""
    replayed, last_seen = letter.get("replayed_at"), letter.get("last_seen")
    if not isinstance(replayed, str) or not isinstance(last_seen, str):
        return False
    return datetime.fromisoformat(replayed) >= datetime.fromisoformat(last_seen)


def due(letters: Iterable[Letter], *, again: bool = False) -> list[Letter]:
    """The letters to replay: all with ``again``, else those not replayed since they failed."""
    return [letter for letter in letters if again or not replayed_since_failure(letter)]


def by_stage(letters: Sequence[Letter]) -> dict[str, int]:
    """How many of ``letters`` each stage holds, stages sorted."""
    return dict(sorted(Counter(str(letter["stage"]) for letter in letters).items()))


def unconfigured_sinks(settings: Settings, letters: Sequence[Letter]) -> list[str]:
    """Sinks that letters would be replayed to but that the configuration does not name (no
    worker reads their queue)."""
    named = {
        str(x["stage"]).removeprefix("sink:") for x in letters if x["stage"].startswith("sink:")
    }
    return sorted(named - set(load_config(settings.config_file).sinks))


@dataclass(frozen=True, slots=True)
class Replayed:
    """What :func:`replay` did: the ids sent and marked, how many were skipped as replayed
    since their last failure, and the sinks no worker reads."""

    ids: list[str]
    skipped: int
    by_stage: dict[str, int]
    unconfigured_sinks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {
            "replayed": len(self.ids),
            "ids": list(self.ids),
            "skipped": self.skipped,
            "by_stage": dict(self.by_stage),
            "unconfigured_sinks": list(self.unconfigured_sinks),
        }


def replay(
    settings: Settings,
    store: DeadLetterStore,
    letters: Sequence[Letter],
    *,
    again: bool = False,
    on_retry: Callable[[str], None] | None = None,
) -> Replayed:
    """Send the due ``letters`` back where they failed and mark them replayed (blocking;
    ``on_retry`` hears each retry while the broker does not answer)."""
    sending = due(letters, again=again)
    if not sending:
        return Replayed([], len(letters), {})
    from worker.intake.producer import Producer  # noqa: PLC0415 - Celery loads only to send

    started = datetime.now(UTC)
    with Producer(settings, on_retry=on_retry) as producer:
        for letter in sending:
            producer.replay(letter)
    ids = [str(letter["id"]) for letter in sending]
    store.mark_replayed(ids, at=started)
    unconfigured = unconfigured_sinks(settings, sending)
    return Replayed(ids, len(letters) - len(sending), by_stage(sending), unconfigured)
