"""Reparse runs: which stored cables a run re-derives from their originals, and which are done.

A run is made once for a :class:`Selection` (reference ids, everything, stored since a time, or
derived by a parser older than a version): one item per selected cable, pending, or settled at
once as ``no_original`` when the cable was stored before originals were kept. Starting the same
selection while a run of it is unfinished resumes that run instead (at most one unfinished run
per selection, by a unique partial index), and only its pending items are sent again.

Workers settle items: :meth:`ReparseStore.settle` gives ``CableStore.write_batch`` a step that
marks the batch's items done, with their outcomes, inside the transaction that writes their
records; an item that another worker settled first raises :class:`AlreadySettled` there, which
rolls the whole batch back. An item is therefore done once, whatever is redelivered or sent
twice. Failures (dead-lettered) and items without an original are marked in a transaction of
their own, after the dead letter is stored.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from packaging.version import InvalidVersion, Version
from sqlalchemy import (
    ColumnElement,
    Connection,
    case,
    func,
    insert,
    inspect,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import URL

from worker.storage import originals as codec
from worker.storage.engine import Database, redact_url, utc_iso
from worker.storage.schema import UTCDateTime, cables, originals, reparse_items, reparse_runs
from worker.storage.store import BatchResult

UNCHANGED: Final = "unchanged"
REVISED: Final = "revised"
FAILED: Final = "failed"
NO_ORIGINAL: Final = "no_original"
OUTCOMES: Final = (UNCHANGED, REVISED, FAILED, NO_ORIGINAL)
_CHUNK = 500


class AlreadySettled(Exception):
    """Signal: another worker settled some items of this batch first; its transaction is
    rolled back and the batch is done again without them."""


def _older(version: str, bound: Version) -> bool:
    """Whether a stored parser version is older than ``bound``; one that is not a version
    (PEP 440) is unknown, and counts as oldest, like none at all."""
    try:
        return Version(version) < bound
    except InvalidVersion:
        return True


@dataclass(frozen=True, slots=True)
class Selection:
    """Which current records a run re-derives: exactly one of the four ways."""

    reference_ids: tuple[str, ...] = ()
    everything: bool = False
    since: datetime | None = None  # stored (current revision) at or after
    older_than: str | None = None  # parser_version older than this (PEP 440); none: oldest

    def __post_init__(self) -> None:
        given = [bool(self.reference_ids), self.everything, self.since is not None]
        if sum([*given, self.older_than is not None]) != 1:
            raise ValueError("a selection is reference ids, everything, since or older_than")
        if self.older_than is not None:
            Version(self.older_than)  # InvalidVersion (a ValueError) when it is not one

    def canonical(self) -> dict[str, Any]:
        """The selection as JSON data: equal selections give equal documents."""
        if self.reference_ids:
            return {"reference_ids": sorted(set(self.reference_ids))}
        if self.everything:
            return {"all": True}
        if self.since is not None:
            return {"since": utc_iso(self.since)}
        return {"older_than": str(Version(str(self.older_than)))}

    @property
    def key(self) -> str:
        """SHA-256 of the canonical JSON: the same selection, the same run."""
        document = orjson.dumps(self.canonical(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(document).hexdigest()

    def describe(self) -> str:
        """The selection for people: ``all``, ``stored since …``, ``parser older than …``."""
        if self.reference_ids:
            ids = sorted(set(self.reference_ids))
            shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
            return f"{len(ids)} reference id{'s' if len(ids) > 1 else ''}: {shown}"
        if self.everything:
            return "all"
        if self.since is not None:
            return f"stored since {utc_iso(self.since)}"
        return f"parser older than {self.older_than} (or unknown)"

    def where(self, conn: Connection) -> Iterator[ColumnElement[bool]]:
        """Conditions on ``cables`` for this selection (one per chunk of reference ids)."""
        if self.reference_ids:
            ids = sorted(set(self.reference_ids))
            for start in range(0, len(ids), _CHUNK):
                yield cables.c.reference_id.in_(ids[start : start + _CHUNK])
        elif self.everything:
            yield true()
        elif self.since is not None:
            yield cables.c.stored_at >= self.since
        else:
            bound = Version(str(self.older_than))
            stored = conn.execute(select(cables.c.parser_version).distinct()).scalars()
            older = sorted(v for v in stored if v is not None and _older(v, bound))
            yield or_(cables.c.parser_version.is_(None), cables.c.parser_version.in_(older))


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run stands: items by outcome (absent: none yet), and the times."""

    run_id: str
    selection: str
    total: int
    counts: Mapping[str, int]
    started_at: datetime
    finished_at: datetime | None
    last_done_at: datetime | None
    done_since: int = 0  # items settled since the time asked about (status: the last minute)

    @property
    def done(self) -> int:
        """Items settled, whatever the outcome."""
        return sum(self.counts.values())

    @property
    def pending(self) -> int:
        """Items not settled yet."""
        return self.total - self.done

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values (times ISO 8601 UTC)."""
        return {
            "run_id": self.run_id,
            "selection": self.selection,
            "total": self.total,
            **{outcome: self.counts.get(outcome, 0) for outcome in OUTCOMES},
            "pending": self.pending,
            "started_at": utc_iso(self.started_at),
            "finished_at": utc_iso(self.finished_at),
            "last_done_at": utc_iso(self.last_done_at),
        }


@dataclass(frozen=True, slots=True)
class Run:
    """A run started or resumed for a selection, and the reference ids it named that are not
    stored (never items)."""

    progress: Progress
    resumed: bool
    not_stored: tuple[str, ...] = ()


def _settle(
    conn: Connection, run_id: str, by_outcome: Mapping[str, Sequence[str]], now: datetime
) -> int:
    """Mark pending items of ``run_id`` done; return how many were still pending."""
    settled = 0
    for outcome, ids in by_outcome.items():
        for start in range(0, len(ids), _CHUNK):
            result = conn.execute(
                update(reparse_items)
                .where(
                    reparse_items.c.run_id == run_id,
                    reparse_items.c.reference_id.in_(ids[start : start + _CHUNK]),
                    reparse_items.c.outcome.is_(None),
                )
                .values(outcome=outcome, done_at=now)
            )
            settled += int(result.rowcount)
    return settled


class ReparseStore:
    """Reparse runs and items, in the same SQLite or PostgreSQL database as the cables."""

    def __init__(self, url: str | URL) -> None:
        self._db = Database(url)

    def __repr__(self) -> str:
        return f"ReparseStore({redact_url(self._db.url)!r})"

    # --- the command's side ------------------------------------------------------------------

    def start(self, selection: Selection) -> Run:
        """Resume the unfinished run of ``selection``, or make a new one with an item per
        selected cable (``no_original`` at once for a cable stored before originals)."""
        action = f"starting a reparse of {selection.describe()}"
        with self._db.errors(action), self._db.writer.begin() as conn:
            run_id = conn.execute(
                select(reparse_runs.c.id).where(
                    reparse_runs.c.selection_key == selection.key,
                    reparse_runs.c.finished_at.is_(None),
                )
            ).scalar_one_or_none()
            resumed = run_id is not None
            if run_id is None:
                run_id = self._create(conn, selection)
            not_stored: tuple[str, ...] = ()
            if selection.reference_ids:
                items = set(
                    conn.execute(
                        select(reparse_items.c.reference_id).where(reparse_items.c.run_id == run_id)
                    ).scalars()
                )
                not_stored = tuple(sorted(set(selection.reference_ids) - items))
        return Run(self.progress(run_id), resumed, not_stored)

    def _create(self, conn: Connection, selection: Selection) -> str:
        run_id, now = uuid.uuid4().hex, datetime.now(UTC)
        conn.execute(
            insert(reparse_runs).values(
                id=run_id,
                selection_key=selection.key,
                selection=selection.describe(),
                total=0,
                started_at=now,
            )
        )
        missing = case((cables.c.original_sha256.is_(None), NO_ORIGINAL), else_=null())
        done_at = case((cables.c.original_sha256.is_(None), literal(now, UTCDateTime())))
        columns = ["run_id", "reference_id", "outcome", "done_at"]
        for condition in selection.where(conn):
            chosen = select(literal(run_id), cables.c.reference_id, missing, done_at)
            conn.execute(insert(reparse_items).from_select(columns, chosen.where(condition)))
        count = select(func.count()).where(reparse_items.c.run_id == run_id)
        total = int(conn.execute(count).scalar_one())
        conn.execute(update(reparse_runs).where(reparse_runs.c.id == run_id).values(total=total))
        return run_id

    def progress(self, run_id: str, since: datetime | None = None) -> Progress:
        """Where run ``run_id`` stands (with ``since``: how many items were settled since)."""
        with self._db.errors("reading reparse progress"), self._db.engine.connect() as conn:
            return self._progress(conn, run_id, since)

    @staticmethod
    def _progress(conn: Connection, run_id: str, since: datetime | None) -> Progress:
        run = conn.execute(select(reparse_runs).where(reparse_runs.c.id == run_id)).one()
        mine = reparse_items.c.run_id == run_id
        by_outcome = select(reparse_items.c.outcome, func.count()).where(mine)
        counts = {
            str(outcome): int(n)
            for outcome, n in conn.execute(by_outcome.group_by(reparse_items.c.outcome))
            if outcome is not None
        }
        last = conn.execute(select(func.max(reparse_items.c.done_at)).where(mine)).scalar()
        recent = 0
        if since is not None:
            query = select(func.count()).where(mine, reparse_items.c.done_at >= since)
            recent = int(conn.execute(query).scalar_one())
        return Progress(
            run_id=run.id,
            selection=run.selection,
            total=int(run.total),
            counts=counts,
            started_at=run.started_at,
            finished_at=run.finished_at,
            last_done_at=_aware(last),
            done_since=recent,
        )

    def pending(self, run_id: str, size: int) -> Iterator[list[str]]:
        """The reference ids of the run's items not yet done, ``size`` at a time."""
        query = (
            select(reparse_items.c.reference_id)
            .where(reparse_items.c.run_id == run_id, reparse_items.c.outcome.is_(None))
            .order_by(reparse_items.c.reference_id)
        )
        with self._db.errors("reading pending reparse items"), self._db.engine.connect() as conn:
            for part in conn.execution_options(yield_per=size).execute(query).partitions(size):
                yield [str(reference_id) for (reference_id,) in part]

    def with_outcome(self, run_id: str, outcome: str) -> list[str]:
        """The reference ids of the run's items settled with ``outcome``, sorted."""
        query = (
            select(reparse_items.c.reference_id)
            .where(reparse_items.c.run_id == run_id, reparse_items.c.outcome == outcome)
            .order_by(reparse_items.c.reference_id)
        )
        with self._db.errors("reading reparse items"), self._db.engine.connect() as conn:
            return [str(reference_id) for reference_id in conn.execute(query).scalars()]

    def finish(self, run_id: str) -> bool:
        """Mark the run finished if none of its items is pending; whether it is finished."""
        pending = select(reparse_items.c.reference_id).where(
            reparse_items.c.run_id == run_id, reparse_items.c.outcome.is_(None)
        )
        mine = reparse_runs.c.id == run_id
        finish = (
            update(reparse_runs)
            .where(mine, reparse_runs.c.finished_at.is_(None), ~pending.exists())
            .values(finished_at=datetime.now(UTC))
        )
        with self._db.errors("finishing a reparse run"), self._db.writer.begin() as conn:
            conn.execute(finish)
            finished = conn.execute(select(reparse_runs.c.finished_at).where(mine)).scalar()
        return finished is not None

    def unfinished(self, since: datetime | None = None) -> list[Progress]:
        """Every unfinished run, oldest first (with ``since``: items settled since then)."""
        with self._db.errors("reading reparse runs"), self._db.engine.connect() as conn:
            return unfinished(conn, since)

    # --- the workers' side -------------------------------------------------------------------

    def todo(self, run_id: str, reference_ids: Sequence[str]) -> list[str]:
        """Those of ``reference_ids`` whose items in run ``run_id`` are not done, in order."""
        found: set[str] = set()
        with self._db.errors("reading reparse items"), self._db.engine.connect() as conn:
            for start in range(0, len(reference_ids), _CHUNK):
                query = select(reparse_items.c.reference_id).where(
                    reparse_items.c.run_id == run_id,
                    reparse_items.c.reference_id.in_(reference_ids[start : start + _CHUNK]),
                    reparse_items.c.outcome.is_(None),
                )
                found.update(conn.execute(query).scalars())
        return [reference_id for reference_id in reference_ids if reference_id in found]

    def originals(self, reference_ids: Sequence[str]) -> dict[str, codec.Original | None]:
        """The stored original of each cable's current revision, still compressed (None: the
        cable has none, or is not stored)."""
        joined = cables.outerjoin(originals, originals.c.sha256 == cables.c.original_sha256)
        columns = (cables.c.reference_id, originals.c.sha256, originals.c.size)
        query = select(*columns, originals.c.codec, originals.c.data).select_from(joined)
        found: dict[str, codec.Original | None] = dict.fromkeys(reference_ids)
        with self._db.errors("reading originals"), self._db.engine.connect() as conn:
            for start in range(0, len(reference_ids), _CHUNK):
                chunk = reference_ids[start : start + _CHUNK]
                for ref, sha256, size, name, data in conn.execute(
                    query.where(cables.c.reference_id.in_(chunk))
                ):
                    if sha256 is not None:
                        found[ref] = codec.Original(sha256, int(size), name, bytes(data))
        return found

    def settle(self, run_id: str) -> Callable[[Connection, BatchResult], None]:
        """The step ``CableStore.write_batch(..., then=…)`` runs inside its transaction: the
        batch's items are marked done with their outcomes; AlreadySettled when any was done
        already (by another worker), which rolls the batch back."""

        def settled(conn: Connection, result: BatchResult) -> None:
            by_outcome: dict[str, list[str]] = {}
            for outcome in result.outcomes:
                by_outcome.setdefault(outcome.outcome, []).append(outcome.reference_id)
            if _settle(conn, run_id, by_outcome, datetime.now(UTC)) != len(result.outcomes):
                raise AlreadySettled(run_id)

        return settled

    def mark(self, run_id: str, reference_ids: Iterable[str], outcome: str) -> int:
        """Mark items done with ``outcome`` (failed, no_original) in a transaction of their own;
        return how many were still pending (the others keep the outcome they have)."""
        ids = sorted(set(reference_ids))
        if not ids:
            return 0
        with self._db.errors("marking reparse items"), self._db.writer.begin() as conn:
            return _settle(conn, run_id, {outcome: ids}, datetime.now(UTC))

    def close(self) -> None:
        """Close this process's pooled connections."""
        self._db.dispose()


def unfinished(conn: Connection, since: datetime | None = None) -> list[Progress]:
    """Every unfinished run, oldest first, with the items settled since ``since`` (on
    ``conn``, in the caller's transaction); none before migration 0005 made their table."""
    if not inspect(conn).has_table(reparse_runs.name):
        return []  # no run was ever started here
    query = (
        select(reparse_runs.c.id)
        .where(reparse_runs.c.finished_at.is_(None))
        .order_by(reparse_runs.c.started_at)
    )
    ids = list(conn.execute(query).scalars())
    return [ReparseStore._progress(conn, run_id, since) for run_id in ids]


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
