"""Originals and provenance, on SQLite and PostgreSQL: the text kept byte for byte, revisions
only when the derived content changes, an arrival row for every stored envelope."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text, update

from bench.corpus import CORPUS
from worker.errors import IntegrityError, PermanentSinkError
from worker.parse import parse_cable
from worker.storage import CableStore
from worker.storage.provenance import Arrival
from worker.storage.schema import originals

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"
SCRAPED = SAMPLE.read_text(encoding="utf-8")
CORPUS_FILES = sorted(CORPUS.glob("*.txt")) if CORPUS.is_dir() else []


def arrival(text: str, message_id: str, source: str = "feed-a", name: str = "a.txt") -> Arrival:
    """The arrival of ``text`` as an envelope from ``source`` under the file name ``name``."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Arrival(message_id, text, digest, source, {"source_file": name}, "2026-12-01T10:00:00Z")


def store_text(store: CableStore, text: str, message_id: str, **kwargs: str) -> str:
    """Parse ``text`` and store it as the envelope ``message_id``; return the outcome."""
    result = store.write_batch(
        [parse_cable(text)], [message_id], arrivals=[arrival(text, message_id, **kwargs)]
    )
    return result.outcomes[0].outcome


def plain_form(scraped: str) -> str:
    """The scraped sample without its markdown link wrappers and hard line breaks."""
    return re.sub(r" +\n", "\n", re.sub(r"\[([^\]]*)\]\(#\)", r"\1", scraped))


def test_original_comes_back_byte_for_byte(store: CableStore) -> None:
    """The stored original is the exact text, CRLF line ends and all, with its sha256."""
    crlf = SCRAPED.replace("\n", "\r\n")
    assert store_text(store, crlf, "m1") == "inserted"
    sha256, raw = store.original_of("06ALMATY598")
    assert raw == crlf.encode("utf-8")
    assert sha256 == hashlib.sha256(raw).hexdigest()


def test_same_bytes_from_another_feed_and_file_is_unchanged_with_a_new_arrival(
    store: CableStore,
) -> None:
    """A byte-identical copy under another file name from another feed is no new revision,
    one original is kept, and provenance lists both arrivals with their feeds."""
    assert store_text(store, SCRAPED, "m1", source="feed-a", name="one/x.txt") == "inserted"
    assert store_text(store, SCRAPED, "m2", source="feed-b", name="two/y.txt") == "unchanged"
    found = store.provenance("06ALMATY598")
    assert [v["revision"] for v in found["revisions"]] == [1]
    assert [(a["message_id"], a["source"], a["outcome"]) for a in found["arrivals"]] == [
        ("m1", "feed-a", "inserted"),
        ("m2", "feed-b", "unchanged"),
    ]
    assert found["arrivals"][1]["metadata"] == {"source_file": "two/y.txt"}


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(SCRAPED.replace("\n", "\r\n"), id="crlf"),
        pytest.param(plain_form(SCRAPED), id="plain-text-of-the-markdown-scrape"),
    ],
)
def test_another_rendering_of_the_same_cable_is_unchanged(store: CableStore, other: str) -> None:
    """The scraped markdown form, and the same text with CRLF line ends, derive the same
    record content: unchanged, though each rendering's original is kept with its arrival."""
    assert other != SCRAPED
    assert store_text(store, SCRAPED, "m1") == "inserted"
    assert store_text(store, other, "m2") == "unchanged"
    found = store.provenance("06ALMATY598")
    assert len(found["revisions"]) == 1
    shas = [a["sha256"] for a in found["arrivals"]]
    assert shas == [hashlib.sha256(t.encode()).hexdigest() for t in (SCRAPED, other)]
    assert found["revisions"][0]["original_sha256"] == shas[0]


def test_a_copy_with_more_paragraphs_is_a_revision_with_its_own_original(
    store: CableStore,
) -> None:
    """A genuinely different copy (one paragraph more) becomes revision 2, derived from its
    own original; revision 1 still names and returns the first."""
    longer = SCRAPED.replace(
        "\nORDWAY", "\n15. (U) A paragraph the first copy did not have.\n\nORDWAY", 1
    )
    assert longer != SCRAPED
    assert store_text(store, SCRAPED, "m1") == "inserted"
    assert store_text(store, longer, "m2") == "revised"
    versions = store.provenance("06ALMATY598")["revisions"]
    assert [v["revision"] for v in versions] == [1, 2]
    assert store.original_of("06ALMATY598", 1)[1] == SCRAPED.encode()
    assert store.original_of("06ALMATY598")[1] == longer.encode()
    assert versions[1]["original_sha256"] == hashlib.sha256(longer.encode()).hexdigest()


def test_a_redelivered_envelope_adds_no_arrival(store: CableStore) -> None:
    """Writing the same envelope twice (a redelivery) leaves one arrival and one original."""
    store_text(store, SCRAPED, "m1")
    store_text(store, SCRAPED, "m1")
    assert [a["message_id"] for a in store.provenance("06ALMATY598")["arrivals"]] == ["m1"]


def test_a_text_that_does_not_match_its_sha256_is_refused(store: CableStore) -> None:
    """An arrival whose text does not hash to its sha256 fails the batch permanently."""
    bad = Arrival("m1", SCRAPED, "0" * 64, "feed-a", {}, None)
    with pytest.raises(PermanentSinkError, match="does not match"):
        store.write_batch([parse_cable(SCRAPED)], ["m1"], arrivals=[bad])
    assert store.get("06ALMATY598") is None


def test_a_damaged_original_is_never_handed_out(store: CableStore, store_url: str) -> None:
    """Bytes altered in the database fail the sha256 check on read."""
    store_text(store, SCRAPED, "m1")
    other = store.write_batch(
        [parse_cable(SCRAPED.replace("ALMATY 000598", "ALMATY 000599"))],
        ["m2"],
        arrivals=[arrival(SCRAPED.replace("ALMATY 000598", "ALMATY 000599"), "m2")],
    )
    assert other.outcomes[0].reference_id != "06ALMATY598"
    sha256 = store.original_of("06ALMATY598")[0]
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            stolen = conn.execute(
                text("SELECT data FROM originals WHERE sha256 <> :sha"), {"sha": sha256}
            ).scalar_one()
            conn.execute(
                update(originals).where(originals.c.sha256 == sha256).values(data=stolen)
            )
    finally:
        engine.dispose()
    with pytest.raises(IntegrityError, match="hash to"):
        store.original_of("06ALMATY598")


def test_a_cable_stored_without_arrival_has_no_original(store: CableStore) -> None:
    """A record written without its arrival (as before originals were kept) says so."""
    store.write_batch([parse_cable(SCRAPED)])
    with pytest.raises(LookupError, match="before originals were kept"):
        store.original_of("06ALMATY598")


@pytest.mark.skipif(not CORPUS_FILES, reason=f"real cables not found at {CORPUS}")
def test_every_dev_cable_comes_back_byte_for_byte(store: CableStore) -> None:
    """All 995 dev cables stored with their originals read back byte for byte."""
    texts = {path.name: path.read_text(encoding="utf-8") for path in CORPUS_FILES}
    ids: dict[str, str] = {}
    names = sorted(texts)
    for start in range(0, len(names), 100):
        chunk = names[start : start + 100]
        records = [parse_cable(texts[name]) for name in chunk]
        result = store.write_batch(
            records, chunk, arrivals=[arrival(texts[name], name, name=name) for name in chunk]
        )
        ids.update(zip(chunk, (o.reference_id for o in result.outcomes), strict=True))
    assert len(set(ids.values())) == len(texts) == len(CORPUS_FILES)
    for name, reference_id in ids.items():
        assert store.original_of(reference_id)[1] == texts[name].encode("utf-8"), name
