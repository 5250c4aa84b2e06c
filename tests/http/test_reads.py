"""The read API in process: records, search, listings and cited-by honour the token's
clearance (hidden records answer exactly as absent ones), cursors page without gaps, and a
feed reads only its own receipts. On SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from tests.http.conftest import SAMPLE, TokenMaker, bearer
from worker.parse import parse_cable
from worker.record import CableRecord, Reference
from worker.storage import CableStore, DeadLetterStore
from worker.storage.provenance import Arrival

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

TEXT = SAMPLE.read_text(encoding="utf-8")
CITING: Reference = {"label": None, "raw": "06 ALMATY 598", "id": "06ALMATY598"}


def _record(
    reference_id: str, classification: str, *, cites: bool, marking: str | None = None
) -> CableRecord:
    record = copy.deepcopy(parse_cable(TEXT))
    record |= {"reference_id": reference_id, "classification": classification}
    record["references"] = [CITING] if cites else []
    if classification == "UNCLASSIFIED":
        for paragraph in record["paragraphs"]:
            paragraph["classification"] = "U"
    if marking is not None:
        record["paragraphs"][0]["classification"] = marking
    return record


@pytest.fixture
def stored(database_url: str) -> None:
    """Six cables: 06ALMATY598 (CONFIDENTIAL), and five that cite it: 701 UNCLASSIFIED (its
    paragraphs marked U),
    703 and 704 CONFIDENTIAL, 700 SECRET, and 702 marked CONFIDENTIAL with an (S/NF)
    paragraph; each stored from an arrival of feed-a."""
    records = [
        _record("06ALMATY598", "CONFIDENTIAL", cites=False),
        _record("06ALMATY700", "SECRET", cites=True),
        _record("06ALMATY701", "UNCLASSIFIED", cites=True),
        _record("06ALMATY702", "CONFIDENTIAL", cites=True, marking="S/NF"),
        _record("06ALMATY703", "CONFIDENTIAL", cites=True),
        _record("06ALMATY704", "CONFIDENTIAL", cites=True),
    ]
    digest = hashlib.sha256(TEXT.encode()).hexdigest()
    arrivals = [Arrival(f"m-{r['reference_id']}", TEXT, digest, "feed-a") for r in records]
    store = CableStore(database_url)
    store.write_batch(records, [a.message_id for a in arrivals], arrivals=arrivals)
    store.close()


def test_a_record_above_the_clearance_answers_like_one_that_does_not_exist(
    client: Any, make_token: TokenMaker, stored: None
) -> None:
    """A CONFIDENTIAL token reads 598, and gets the same 404 document for the SECRET 700, the
    spliced 702 and a reference id never stored; a SECRET token reads all three."""
    low = bearer(make_token("reader", "read", clearance="CONFIDENTIAL"))
    assert (
        client.get("/v1/cables/06ALMATY598", headers=low).json()["record"]["classification"]
        == "CONFIDENTIAL"
    )
    answers = [client.get(f"/v1/cables/06ALMATY{n}", headers=low) for n in ("700", "702", "999")]
    assert [a.status_code for a in answers] == [404, 404, 404]
    bodies = [{k: v for k, v in a.json().items() if k != "detail"} for a in answers]
    assert bodies[0] == bodies[1] == bodies[2]
    high = bearer(make_token("boss", "read", clearance="SECRET//NOFORN"))
    for n in ("700", "702"):
        assert client.get(f"/v1/cables/06ALMATY{n}", headers=high).status_code == 200


def test_search_and_cited_by_leave_out_what_the_token_may_not_read(
    client: Any, make_token: TokenMaker, stored: None
) -> None:
    """Search for the subject's words and cited-by 598 list 700 and 702 only to a token
    cleared for them."""
    low = bearer(make_token("reader", "read", clearance="CONFIDENTIAL"))
    high = bearer(make_token("boss", "read", clearance="SECRET//NOFORN"))

    def refs(path: str, headers: dict[str, str]) -> list[str]:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, response.text
        return [item["reference_id"] for item in response.json()["items"]]

    assert refs("/v1/cables?q=refoulement+uzbek", low) == [
        "06ALMATY598",
        "06ALMATY701",
        "06ALMATY703",
        "06ALMATY704",
    ]
    assert set(refs("/v1/cables?q=refoulement", high)) >= {"06ALMATY700", "06ALMATY702"}
    assert refs("/v1/cables/06ALMATY598/cited-by", low) == [
        "06ALMATY701",
        "06ALMATY703",
        "06ALMATY704",
    ]
    assert refs("/v1/cables/06ALMATY598/cited-by", high) == [
        "06ALMATY700",
        "06ALMATY701",
        "06ALMATY702",
        "06ALMATY703",
        "06ALMATY704",
    ]
    unclassified = bearer(make_token("public", "read"))
    assert refs("/v1/cables?origin=embassy+almaty", unclassified) == ["06ALMATY701"]
    assert client.get("/v1/cables/06ALMATY598/cited-by", headers=unclassified).status_code == 404


@pytest.mark.parametrize("query", ["", "q=refoulement&"])
def test_cursors_page_through_every_visible_record_once(
    client: Any, make_token: TokenMaker, stored: None, query: str
) -> None:
    """Pages of one, following next_cursor, list each visible record once and stop; the
    cursors decode to positions of returned records only."""
    low = bearer(make_token("reader", "read", clearance="CONFIDENTIAL"))
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        suffix = f"&cursor={cursor}" if cursor else ""
        page = client.get(f"/v1/cables?{query}limit=1{suffix}", headers=low).json()
        seen += [item["reference_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == ["06ALMATY598", "06ALMATY701", "06ALMATY703", "06ALMATY704"]
    assert len(seen) == len(set(seen))


def test_filters_narrow_the_listing(client: Any, make_token: TokenMaker, stored: None) -> None:
    """classification, tag and date filters each apply; a bad date is a 422."""
    token = bearer(make_token("boss", "read", clearance="TOP SECRET//NOFORN"))

    def refs(query: str) -> list[str]:
        return [
            i["reference_id"]
            for i in client.get(f"/v1/cables?{query}", headers=token).json()["items"]
        ]

    assert refs("classification=SECRET") == ["06ALMATY700"]
    assert len(refs("tag=PHUM")) == 6
    assert refs("tag=ZZZZ") == []
    assert refs("from=2007-01-01") == []
    assert len(refs("from=2006-02-01&to=2006-03-01")) == 6
    assert client.get("/v1/cables?from=yesterday", headers=token).status_code == 422


def test_a_message_receipt_is_for_its_own_feed(
    client: Any, make_token: TokenMaker, stored: None, database_url: str
) -> None:
    """feed-a reads the receipt of its stored envelope; feed-b gets 404; a dead-lettered
    envelope says where and why."""
    own = bearer(make_token("feed-a", "ingest"))
    receipt = client.get("/v1/messages/m-06ALMATY598", headers=own).json()
    assert (receipt["status"], receipt["outcome"], receipt["reference_id"]) == (
        "stored",
        "inserted",
        "06ALMATY598",
    )
    other = bearer(make_token("feed-b", "ingest"))
    assert client.get("/v1/messages/m-06ALMATY598", headers=other).status_code == 404
    letters = DeadLetterStore(database_url)
    letters.add({"stage": "parse", "error_class": "ParseError", "reason": "no cable here",
                 "message_id": "m-dead", "source": "feed-a", "payload": {"id": "m-dead"}})  # fmt: skip
    letters.close()
    dead = client.get("/v1/messages/m-dead", headers=own).json()
    assert (dead["status"], dead["stage"], dead["reason"]) == (
        "dead_lettered",
        "parse",
        "no cable here",
    )
    assert client.get("/v1/messages/m-dead", headers=other).status_code == 404


def test_revisions_are_read_one_by_one_under_the_clearance(
    client: Any, make_token: TokenMaker, database_url: str
) -> None:
    """?revision=N reads an earlier revision; one above the clearance is a 404, and a cable
    whose current revision is above it is hidden whole; a bad N is a 422."""
    store = CableStore(database_url)
    first = _record("06ALMATY800", "SECRET", cites=False)
    second = {**_record("06ALMATY800", "CONFIDENTIAL", cites=False), "subject": "DOWNGRADED"}
    raised = {**_record("06ALMATY801", "SECRET", cites=False), "subject": "UPGRADED"}
    store.write_batch([first, _record("06ALMATY801", "CONFIDENTIAL", cites=False)])
    store.write_batch([second, raised])
    store.close()
    low = bearer(make_token("reader", "read", clearance="CONFIDENTIAL"))
    current = client.get("/v1/cables/06ALMATY800", headers=low).json()
    assert (current["revision"], current["revisions"]) == (2, 2)
    assert current["record"]["subject"] == "DOWNGRADED"
    assert client.get("/v1/cables/06ALMATY800?revision=2", headers=low).status_code == 200
    assert client.get("/v1/cables/06ALMATY800?revision=1", headers=low).status_code == 404
    assert client.get("/v1/cables/06ALMATY801?revision=1", headers=low).status_code == 404
    high = bearer(make_token("boss", "read", clearance="SECRET"))
    older = client.get("/v1/cables/06ALMATY801?revision=1", headers=high).json()
    assert (older["revision"], older["record"]["classification"]) == (1, "CONFIDENTIAL")
    assert client.get("/v1/cables/06ALMATY800?revision=x", headers=high).status_code == 422


def test_a_receipt_is_queued_only_for_an_accepted_id(
    client: Any, make_token: TokenMaker, database_url: str
) -> None:
    """A cable posted (its envelope recorded as accepted before the 202) is queued until an
    outcome; an id never accepted, and another feed's accepted id, are 404 problems."""
    own = bearer(make_token("feed-a", "ingest"))
    posted = client.post(
        "/v1/cables", content=SAMPLE.read_bytes(), headers={**own, "Content-Type": "text/plain"}
    )
    message_id = posted.json()["entries"][0]["message_id"]
    receipt = client.get(f"/v1/messages/{message_id}", headers=own)
    assert (receipt.status_code, receipt.json()["status"]) == (200, "queued")
    assert receipt.json()["accepted_at"].endswith("Z")
    for headers, asked in (
        (own, "never-accepted"),
        (bearer(make_token("feed-b", "read")), message_id),
    ):
        unknown = client.get(f"/v1/messages/{asked}", headers=headers)
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/problem+json"
        assert unknown.json()["code"] == "not_found"
