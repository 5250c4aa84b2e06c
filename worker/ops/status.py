"""One screen for the operator: queues, workers, throughput, dead letters, last deliveries, and
the messages held by consumers that are gone.

:func:`collect_status` reads the broker and the storage database, each at one instant: the
broker's figures in one round trip (on Redis one MULTI: queues, unacknowledged messages and
their holders, connected workers), then at once the database's in one read transaction; the
screen prints both instants. :func:`render` turns a :class:`Status` into aligned plain text,
:meth:`Status.as_dict` into JSON-ready values. Throughput counts the last :data:`WINDOW_S`
seconds:

* intake: envelopes settled, i.e. the distinct message ids with a receipt from a storage sink,
  plus the dead letters of the stages that end an envelope (intake, parse, validate,
  ``sink:<storage sink>``) last seen in the window;
* each sink: its receipts in the window, whatever the outcome (``withheld`` included);
* reparse: items of unfinished reparse runs settled (each run's progress is listed below
  the table, until the run finishes; a run whose command was killed stays listed until the
  same command resumes and finishes it).

The last success of a sink is its latest receipt with outcome delivered, inserted, unchanged
or revised (not ``withheld``: nothing was sent). Nothing is written anywhere: a database that
was never migrated shows its figures as unknown, with a note, instead of being created.

A message is held by a lost consumer when the consumer that took it is gone (on Redis: no
connection of its name is left, :mod:`worker.queue.broker`): it waits for the visibility
timeout (its return time is shown), or ``cable-ingest put-back`` returns it at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.ops.reparse import reparse_lines
from worker.queue.app import CableIngestApp, create_app
from worker.queue.brokers import Held, QueueInfo, Worker, broker_for, describe_holder
from worker.queue.names import REPARSE_QUEUE, consumed_queues, sink_queue
from worker.routing.config import Config
from worker.settings import Settings, redact_url
from worker.storage import utc_iso
from worker.storage.overview import OverviewStore
from worker.storage.probe import is_migrated
from worker.storage.reparse import Progress

WINDOW_S = 60
INTAKE_STAGES = ("intake", "parse", "validate")
NA = "n/a"


@dataclass(frozen=True, slots=True)
class SinkStatus:
    """One sink: its queue, receipts in the window, last success and dead letters (None:
    unknown, the database is not migrated)."""

    name: str
    type: str
    queue: str
    receipts_last_window: int | None
    last_success: datetime | None
    dead_letters: int | None


@dataclass(frozen=True, slots=True)
class Status:
    """Everything on the screen: the broker's figures as read at ``at``, the database's as
    read at ``database_at`` (right after; None: not read)."""

    at: datetime
    broker: str
    database: str
    batch_size: int
    queues: list[QueueInfo]
    workers: list[Worker] | None  # None: the broker cannot tell (embedded broker)
    intake_settled_last_window: int | None
    sinks: list[SinkStatus]
    dead_letters: dict[str, int] | None  # by stage; None: unknown
    notes: list[str] = field(default_factory=list)
    reparse: list[Progress] | None = None  # unfinished reparse runs; None: unknown
    held: list[Held] = field(default_factory=list)  # unacknowledged, by queue and holder
    database_at: datetime | None = None
    visibility_timeout: int | None = None  # seconds (Redis); None: the broker has none

    @property
    def lost(self) -> list[Held]:
        """Messages held by consumers that are gone."""
        return [h for h in self.held if h.alive is False]

    @property
    def intake_dead_letters(self) -> int | None:
        """Dead letters of the intake, parse and validate stages."""
        if self.dead_letters is None:
            return None
        return sum(self.dead_letters.get(stage, 0) for stage in INTAKE_STAGES)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values; times in ISO 8601 UTC with a Z, ages in seconds."""
        sinks = [{**asdict(s), "last_success": utc_iso(s.last_success)} for s in self.sinks]
        return {
            "at": utc_iso(self.at),
            "database_at": utc_iso(self.database_at),
            "broker": self.broker,
            "database": self.database,
            "batch_size": self.batch_size,
            "window_s": WINDOW_S,
            "visibility_timeout_s": self.visibility_timeout,
            "workers": None if self.workers is None else [asdict(w) for w in self.workers],
            "queues": [asdict(q) for q in self.queues],
            "held": [
                {
                    **asdict(h),
                    "taken_at": _iso(h.taken_at),
                    "returns_at": _iso(h.returns_at),
                }
                for h in self.held
            ],
            "intake": {
                "settled_last_window": self.intake_settled_last_window,
                "dead_letters": self.intake_dead_letters,
            },
            "sinks": sinks,
            "dead_letters": self.dead_letters,
            "reparse": None
            if self.reparse is None
            else [{**r.as_dict(), "settled_last_window": r.done_since} for r in self.reparse],
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class _Figures:
    receipts_by_sink: dict[str, int]
    settled: int
    last_success: dict[str, datetime]
    dead_by_stage: dict[str, int]
    reparse: list[Progress]
    read_at: datetime | None


def collect_status(settings: Settings, app: CableIngestApp | None = None) -> Status:
    """Read the broker, then at once the database; BrokerUnavailableError, TransientSinkError…"""
    app = app or create_app(settings)
    config: Config = app.sinks_config
    names = consumed_queues(config)
    broker = broker_for(settings)
    notes = broker.notes()
    migrated = is_migrated(settings.database_url)  # before the clock: it opens a connection
    snapshot = broker.snapshot(app, names)
    at = datetime.fromtimestamp(snapshot.at, UTC)
    storage = [s.name for s in config.sinks.values() if not s.notifies]
    figures = None
    if migrated:
        since = at - timedelta(seconds=WINDOW_S)
        figures = _read_database(settings.database_url, storage, list(config.sinks), since)
    else:
        notes.append("the database has no tables yet (`cable-ingest migrate` makes them)")
    figs, known = figures or _Figures({}, 0, {}, {}, [], None), figures is not None
    sinks = [
        SinkStatus(
            *(sink.name, sink.type, sink_queue(sink.name)),
            figs.receipts_by_sink.get(sink.name, 0) if known else None,
            figs.last_success.get(sink.name),
            figs.dead_by_stage.get(f"sink:{sink.name}", 0) if known else None,
        )
        for sink in config.sinks.values()
    ]
    return Status(
        at=at,
        broker=redact_url(settings.broker_url),
        database=redact_url(settings.database_url),
        batch_size=settings.batch_size,
        queues=snapshot.queues,
        workers=snapshot.workers,
        intake_settled_last_window=figs.settled if known else None,
        sinks=sinks,
        dead_letters=figs.dead_by_stage if known else None,
        notes=notes,
        reparse=figs.reparse if known else None,
        held=snapshot.held,
        database_at=figs.read_at,
        visibility_timeout=settings.visibility_timeout if broker.broadcast else None,
    )


def _read_database(
    url: str, storage: list[str], sinks: list[str], since: datetime
) -> _Figures:
    """Every figure of the screen in one read transaction: one instant of the database."""
    store = OverviewStore(url)
    try:
        stages = [*INTAKE_STAGES, *(f"sink:{s}" for s in storage)]
        read = store.figures(since, storage, sinks, stages)
    finally:
        store.close()
    recent = read.activity
    settled = recent.stored + read.failed_since
    return _Figures(
        recent.by_sink, settled, recent.last_success, read.dead_by_stage, read.reparse, read.read_at
    )


def _iso(at: float | None) -> str | None:
    return None if at is None else utc_iso(datetime.fromtimestamp(round(at, 3), UTC))


def human_age(seconds: float) -> str:
    """``42s``, ``4m 12s``, ``3h 5m``, ``2d 4h``."""
    s = int(max(0.0, seconds))
    for big, size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if s >= size:
            return f"{s // size}{big} {s % size // small_size}{small}"
    return f"{s // 60}m {s % 60}s" if s >= 60 else f"{s}s"


def _known(value: int | None) -> str:
    return NA if value is None else str(value)


def _shown(value: int | str | None) -> str:
    return value if isinstance(value, str) else _known(value)


def _workers(workers: list[Worker] | None) -> str:
    if workers is None:
        return f"{NA} (this broker cannot tell: check the worker processes)"
    if not workers:
        return "0 online (no worker is connected to the broker)"
    held = sum(w.held for w in workers)
    listed = ", ".join(f"{w.name} ({w.held})" for w in workers)
    return f"{len(workers)} online, holding {held} messages: {listed}"


def _lost_lines(status: Status) -> list[str]:
    """One line per queue and lost holder: how many, and when they come back."""
    lost = status.lost
    if not lost:
        return []
    total = sum(h.messages for h in lost)
    if status.visibility_timeout is None:  # embedded: a running worker takes them back
        how = "back on their queues within seconds of a worker running"
    else:
        how = f"VISIBILITY_TIMEOUT {status.visibility_timeout} s"
    lines = [f"held by lost consumers: {total} message{'s' if total != 1 else ''} ({how})"]
    now = status.at.timestamp()
    for held in lost:
        when = ""
        if held.returns_at is not None:
            at = datetime.fromtimestamp(held.returns_at, UTC).replace(microsecond=0)
            due = "due now" if held.returns_at <= now else f"in {human_age(held.returns_at - now)}"
            when = f": back on the queue at {utc_iso(at)} ({due})"
        plural = "s" if held.messages != 1 else ""
        lines.append(f"  {held.queue}: {held.messages} message{plural} of"
                     f" {describe_holder(held.holder)}{when}")  # fmt: skip
    if status.visibility_timeout is not None:
        lines.append("  `cable-ingest put-back` returns them now (it never touches what a live"
                     " worker holds)")  # fmt: skip
    return [*lines, ""]


def _instants(status: Status) -> str:
    def clock(at: datetime) -> str:
        return at.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3] + "Z"

    read = f"read      broker at {clock(status.at)} (one round trip)"
    if status.database_at is not None:
        read += f", database at {clock(status.database_at)} (one transaction)"
    return read


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """Columns aligned: the first to the left, the others to the right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def render(status: Status, width: int = 0) -> list[str]:
    """The screen as lines, each cut to ``width`` characters (0: no limit)."""
    rows: list[tuple[str, ...]] = [
        ("QUEUE", "WAITING", "UNACKED", "LOST", "OLDEST", f"LAST {WINDOW_S}S", "LAST OK", "DEAD")
    ]
    by_name = {sink.queue: sink for sink in status.sinks}
    for queue in status.queues:
        oldest = "-" if queue.depth == 0 else NA
        if queue.oldest_age_s is not None and queue.depth:
            oldest = human_age(queue.oldest_age_s)
        sink = by_name.get(queue.name)
        done: int | str | None
        dead: int | str | None
        if queue.name == REPARSE_QUEUE:  # its runs are listed below the table
            recent = None if status.reparse is None else sum(r.done_since for r in status.reparse)
            done, ok, dead = recent, "-", "-"
        elif sink is None:  # the intake queue
            done, ok, dead = status.intake_settled_last_window, "-", status.intake_dead_letters
        else:
            done, dead = sink.receipts_last_window, sink.dead_letters
            ok = NA if status.dead_letters is None else "never"
            if sink.last_success is not None:
                ok = human_age((status.at - sink.last_success).total_seconds()) + " ago"
        row = (queue.name, str(queue.depth), str(queue.unacked), _known(queue.lost), oldest)
        rows.append((*row, _shown(done), ok, _shown(dead)))
    stages = status.dead_letters
    letters = NA
    if stages is not None:
        shown = {**dict.fromkeys(INTAKE_STAGES, 0), **dict(sorted(stages.items()))}
        letters = ", ".join(f"{stage} {n}" for stage, n in shown.items())
        letters += f"  (total {sum(shown.values())})"
    lines = [
        f"cable-ingest status at {utc_iso(status.at.replace(microsecond=0))}",
        f"broker    {status.broker}",
        f"database  {status.database}",
        f"workers   {_workers(status.workers)}",
        _instants(status),
        "",
        *_table(rows),
        "",
        *_lost_lines(status),
        f"dead letters by stage: {letters}",
        *reparse_lines(status.reparse or [], status.at, human_age),
        f"WAITING, UNACKED: broker messages (intake: up to {status.batch_size} cables each);"
        " LOST: unacked, held by consumers that are gone",
        f"LAST {WINDOW_S}S: cables settled (intake, reparse), receipts (sinks); LAST OK: last"
        " success; DEAD: dead letters held",
        *(f"note: {note}" for note in status.notes),
    ]
    if width > 0:
        lines = [line if len(line) <= width else line[: width - 1] + "~" for line in lines]
    return lines
