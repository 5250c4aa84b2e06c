"""The adjudication table (tests/parse/adjudication.tsv) against the parser and the peer."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import peer
from bench.corpus import CORPUS, manifest
from worker.parse import parse_cable
from worker.record import CableRecord

TABLE = peer.load_adjudication()
PEER = peer.load_peer()
needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir() or not PEER, reason=f"real cables or the peer's output not at {CORPUS}"
)


def _record(refid: str) -> CableRecord:
    path = CORPUS / f"{refid}.txt"
    return parse_cable(path.read_text(encoding="utf-8", errors="replace"))


def test_table_is_well_formed() -> None:
    """Every row names a compared field and a verdict that matches what it says the cable says."""
    assert TABLE, "the adjudication table is empty or missing"
    for (refid, field), verdict in TABLE.items():
        assert field in peer.FIELDS, f"{refid}: unknown field {field!r}"
        assert verdict.right in peer.VERDICTS, f"{refid} {field}: verdict {verdict.right!r}"
        assert verdict.ours != verdict.peer, f"{refid} {field}: no disagreement"
        expected = {"ours": verdict.ours, "peer": verdict.peer}.get(verdict.right)
        if expected is None:
            assert verdict.cable not in (verdict.ours, verdict.peer), f"{refid} {field}"
        else:
            assert verdict.cable == expected, (
                f"{refid} {field}: cable value is not {verdict.right}'s"
            )
        assert verdict.note.strip(), f"{refid} {field}: no note"


@needs_corpus
def test_table_records_what_the_parser_reads_now() -> None:
    """Each row's ``ours`` is the parser's value today: a changed value must be adjudicated again."""
    stale = []
    for (refid, field), verdict in TABLE.items():
        now = peer.ours(_record(refid), field)
        if now != verdict.ours:
            stale.append(f"{refid} {field}: table {verdict.ours!r}, parser {now!r}")
    assert not stale, "\n".join(stale)


@needs_corpus
def test_every_disagreement_with_the_peer_is_adjudicated() -> None:
    """The table holds exactly the disagreements on the cables with a routing header."""
    rows = manifest()
    found = set()
    for path in sorted(Path(CORPUS).glob("*.txt")):
        row = rows.get(path.stem)
        if not row or row["header_kind"] == "partial_extract_notice" or path.stem not in PEER:
            continue
        record = parse_cable(path.read_text(encoding="utf-8", errors="replace"))
        for field in peer.FIELDS:
            if peer.ours(record, field) != peer.theirs(PEER[path.stem], field):
                found.add((path.stem, field))
    assert sorted(found - set(TABLE)) == [], "disagreements missing from the table"
    assert sorted(set(TABLE) - found) == [], "rows that are no disagreement any more"
