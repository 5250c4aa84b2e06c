"""Chaos: a worker killed twice (kill -9, main process and pool) during a 5,000-cable reparse.

The scenario stores 4,990 cables through its own worker and redis-server, plus 10 whose
originals no longer parse (as if the parser got stricter). In the database, 1,000 records are
then rewritten as an older parser would have derived them (another subject, its content hash)
and 1,000 others marked as derived by parser 0.9.0. ``cable-ingest reparse --all`` runs as a
real process, relying on the running worker; the whole worker is killed when a quarter and
again when two thirds of the items are settled, and started again each time. Redis gives the
killed worker's messages back after the visibility timeout (10 s), flagged redelivered.

Reconciled exactly, from the database: each of the 5,000 items settled once: the 1,000
rewritten ones revised (one new revision each), the 10 failed with one parse dead letter each,
every other one unchanged (the 1,000 of parser 0.9.0 now carrying the current version).
Lost: items with no outcome, or failed without a dead letter. Duplicated: revisions beyond one
per revised cable, dead letters beyond one per failed cable.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import create_engine, func, select, update

from chaos.harness import Outcome, RedisServer, Workers, environment, scratch, wait_for_outcomes
from worker.intake.producer import Producer
from worker.model import PARSER_VERSION
from worker.parse import parse_cable
from worker.settings import Settings
from worker.storage import CableStore, content_hash, upgrade
from worker.storage.provenance import Arrival
from worker.storage.schema import cable_revisions, cables, dead_letters, reparse_items


@dataclass(frozen=True)
class Plan:
    """How many cables the reparse takes, and how many of them are broken, rewritten, aged."""

    cables: int = 5_000
    broken: int = 10
    rewritten: int = 1_000
    aged: int = 1_000
    batch_size: int = 100

    @property
    def name(self) -> str:
        """The scenario's row name."""
        return f"worker killed x2 during {self.cables:,}-cable reparse"


KILL_AT = (0.25, 0.67)  # shares of the items settled when the worker is killed
RUN_TIMEOUT_S = 900
OLD_SUBJECT = "WHAT AN OLDER PARSER READ"


def _settled(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = select(func.count()).where(reparse_items.c.outcome.is_not(None))
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def _store_broken(settings: Settings, like: str, count: int) -> list[str]:
    """Cables whose stored originals are no cables (a record beside each, as if it parsed)."""
    record = parse_cable(like)
    texts = [f"Dear colleague, meeting {n} moved to Tuesday.\n" for n in range(count)]
    refs = [f"99BROKEN{n + 1}" for n in range(count)]
    arrivals = [
        Arrival(f"chaos-broken-{n}", t, hashlib.sha256(t.encode()).hexdigest(), source="chaos")
        for n, t in enumerate(texts)
    ]
    store = CableStore(settings.database_url)
    try:
        store.write_batch([{**record, "reference_id": r} for r in refs], arrivals=arrivals)
    finally:
        store.close()
    return refs


def _rewrite(settings: Settings, plan: Plan) -> tuple[list[str], list[str]]:
    """What an older parser derived: another subject for ``plan.rewritten`` cables, version
    0.9.0 for ``plan.aged`` others; their reference ids."""
    engine = create_engine(
        settings.database_url, json_serializer=lambda v: orjson.dumps(v).decode()
    )
    try:
        with engine.begin() as conn:
            chosen = (
                select(cables.c.reference_id, cables.c.record)
                .where(cables.c.reference_id.not_like("99BROKEN%"))
                .order_by(cables.c.reference_id)
                .limit(plan.rewritten + plan.aged)
            )
            rows = list(conn.execute(chosen))
            for reference_id, stored in rows[: plan.rewritten]:
                record = {**stored, "subject": OLD_SUBJECT}
                conn.execute(
                    update(cables)
                    .where(cables.c.reference_id == reference_id)
                    .values(record=record, subject=OLD_SUBJECT, content_hash=content_hash(record))
                )
            aged = [str(reference_id) for reference_id, _ in rows[plan.rewritten :]]
            conn.execute(
                update(cables).where(cables.c.reference_id.in_(aged)).values(parser_version="0.9.0")
            )
    finally:
        engine.dispose()
    return [str(reference_id) for reference_id, _ in rows[: plan.rewritten]], aged


def _kill_twice(
    workers: Workers, url: str, process: subprocess.Popen[bytes], items: int
) -> list[int]:
    """Kill the whole worker when each share of KILL_AT is settled; start it again."""
    killed_at = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    for share in KILL_AT:
        while _settled(url) < share * items and process.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the reparse did not get far enough to kill its worker")
            time.sleep(0.1)
        killed_at.append(_settled(url))
        workers.kill_all()
        time.sleep(1.0)
        workers.start()
    return killed_at


def _reconcile(
    url: str, rewritten: set[str], aged: set[str], broken: set[str]
) -> tuple[Outcome, dict[str, Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = select(reparse_items.c.reference_id, reparse_items.c.outcome)
            items = {str(ref): done for ref, done in conn.execute(query)}
            revisions = Counter(conn.execute(select(cable_revisions.c.reference_id)).scalars())
            letters = Counter(
                conn.execute(
                    select(dead_letters.c.reference_id).where(dead_letters.c.stage == "parse")
                ).scalars()
            )
            versions = Counter(
                conn.execute(
                    select(cables.c.parser_version).where(cables.c.reference_id.in_(aged))
                ).scalars()
            )
    finally:
        engine.dispose()
    by_outcome = Counter(items.values())
    failed = {ref for ref, outcome in items.items() if outcome == "failed"}
    outcome = Outcome(len(items))
    outcome.stored = by_outcome["unchanged"] + by_outcome["revised"]
    outcome.dead_lettered = len({ref for ref in failed if letters[ref]})
    outcome.lost = sorted(ref for ref, done in items.items() if done is None)
    outcome.lost += sorted(ref for ref in failed if not letters[ref])
    outcome.duplicated = sum(max(0, n - 1) for n in revisions.values())
    outcome.duplicated += sum(max(0, letters[ref] - 1) for ref in failed)
    revised = {ref for ref, done in items.items() if done == "revised"}
    if revised != rewritten or set(revisions) != rewritten:
        outcome.failures.append(
            f"revised {len(revised)} (revisions of {len(revisions)} cables); expected exactly"
            f" the {len(rewritten)} rewritten ones"
        )
    if failed != broken:
        outcome.failures.append(f"failed {len(failed)}; expected the {len(broken)} broken ones")
    if versions != {PARSER_VERSION: len(aged)}:
        outcome.failures.append(f"parser versions of the aged cables after reparse: {versions}")
    return outcome, {str(done): n for done, n in by_outcome.items()}


def _events(log: str) -> Counter[int]:
    """How many `reparsed` events each cable has in the worker's log, counted by multiplicity."""
    per_cable: Counter[str] = Counter()
    for line in log.splitlines():
        if line.startswith("{") and '"reparsed"' in line:
            per_cable[orjson.loads(line)["reference_id"]] += 1
    return Counter(per_cable.values())


def killed_during_reparse(texts: Iterator[str], plan: Plan = Plan()) -> tuple[str, Outcome, float]:
    """Run the scenario on ``texts`` (distinct cables, enough for the plan); its row's parts."""
    with scratch("reparse") as folder:
        server = RedisServer(folder)
        server.start()
        workers: Workers | None = None
        try:
            env = environment(
                folder,
                broker_url=server.url,
                visibility_timeout="10",
                batch_size=str(plan.batch_size),
            )
            settings = Settings.from_env(env)
            upgrade(settings.database_url)
            workers = Workers(env, folder / "worker.log")
            workers.start()
            good = [next(texts) for _ in range(plan.cables - plan.broken)]
            with Producer(settings) as producer:
                sent = [producer.enqueue(text, source="chaos") for text in good]
            wait_for_outcomes(settings.database_url, sent, alive=workers)
            broken = _store_broken(settings, good[0], plan.broken)
            rewritten, aged = _rewrite(settings, plan)

            command = [sys.executable, "-m", "worker", "reparse", "--all", "--json"]
            with (
                (folder / "reparse.out").open("wb") as out,
                (folder / "reparse.err").open("wb") as err,
            ):
                process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
                killed_at = _kill_twice(workers, settings.database_url, process, plan.cables)
                calm = time.monotonic()
                process.wait(RUN_TIMEOUT_S)
                recovered = time.monotonic() - calm
            summary = orjson.loads((folder / "reparse.out").read_bytes() or b"{}")
            stderr = (folder / "reparse.err").read_text(errors="replace")
            outcome, counts = _reconcile(
                settings.database_url, set(rewritten), set(aged), set(broken)
            )
            log = (folder / "worker.log").read_text(encoding="utf-8", errors="replace")
        finally:
            if workers is not None:
                workers.stop()
            server.stop()
    outcome.notes.append(
        f"outcomes {counts}; worker killed at {killed_at[0]:,} and {killed_at[1]:,} items"
        f" settled; the command exited {process.returncode} (1: some failed), pending"
        f" {summary.get('pending')}"
    )
    events = _events(log)
    outcome.notes.append(
        f"cables by their number of `reparsed` events: {dict(sorted(events.items()))};"
        f" redelivered batches split: {log.count('batch_split')}; items skipped as settled"
        f" already: {log.count('reparse_skipped')} batches"
    )
    if outcome.sent != plan.cables:
        outcome.failures.append(f"{outcome.sent} items; expected {plan.cables} (an ingest failed)")
    if summary.get("pending") != 0:
        outcome.failures.append(
            f"the command ended with {summary.get('pending')} pending: {stderr[-300:]!r}"
        )
    return plan.name, outcome, recovered
