"""The operator's endpoints in process: dead letters (list with filters and cursors, one,
replay one or by selection) and the status snapshot, all behind the ``operate`` scope; a
dead letter's content is withheld above the token's clearance. Replays go to the embedded
broker (message files), through the code ``cable-ingest dlq replay`` runs."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.http.conftest import SAMPLE, TokenMaker, bearer
from worker.core.pipeline import Failure, dead_letter
from worker.intake.envelope import make_envelope
from worker.parse import parse_cable
from worker.settings import Settings
from worker.storage import DeadLetterStore

SECRET_TEXT = "SECRET SECTION 01 OF 02 the text of a secret cable"
TOP = "TOP SECRET//NOFORN"
ENDPOINTS = [
    ("GET", "/v1/dead-letters"),
    ("GET", "/v1/dead-letters/x"),
    ("POST", "/v1/dead-letters/x/replay"),
    ("POST", "/v1/dead-letters/replay"),
    ("GET", "/v1/status"),
]


def _record(classification: str) -> dict[str, Any]:
    record: dict[str, Any] = copy.deepcopy(dict(parse_cable(SAMPLE.read_text(encoding="utf-8"))))
    record["classification"] = classification
    for paragraph in record["paragraphs"]:
        paragraph["classification"] = "U" if classification == "UNCLASSIFIED" else None
    return record


@pytest.fixture
def letters(database_url: str) -> dict[str, str]:
    """Four dead letters: the text of an envelope at parse (2024-05-01), an UNCLASSIFIED and a
    SECRET record at sink:alerts (05-02, 05-03), an envelope at sink:storage (05-04)."""
    parse = make_envelope(SECRET_TEXT, source="feed-a")
    storage = make_envelope("UNCLAS stored later", source="feed-b")
    documents = [
        dead_letter(Failure("parse", "ParseError", f"no banner in {SECRET_TEXT[:20]}", parse),
                    now="2024-05-01T09:00:00Z"),
        dead_letter(Failure("sink:alerts", "PermanentSinkError", "webhook said 410",
                            _record("UNCLASSIFIED"), reference_id="06ALMATY598"),
                    now="2024-05-02T09:00:00Z", message_id="m-open"),
        dead_letter(Failure("sink:alerts", "PermanentSinkError", "webhook said 410",
                            _record("SECRET"), reference_id="06ALMATY700"),
                    now="2024-05-03T09:00:00Z", message_id="m-secret"),
        dead_letter(Failure("sink:storage", "TransientSinkError", "database is locked", storage),
                    now="2024-05-04T09:00:00Z"),
    ]  # fmt: skip
    store = DeadLetterStore(database_url)
    ids = store.add_many(documents)
    store.close()
    return dict(zip(("parse", "open", "secret", "storage"), ids, strict=True))


@pytest.fixture
def operate(make_client: Callable[..., Any], settings: Settings) -> tuple[Any, Path]:
    """A client whose settings name the embedded broker (replays go there), and the queue
    folder holding its message files."""
    client = make_client(broker_url="filesystem://localhost/")
    return client, settings.var_dir / "broker" / "queue"


def _messages(queue: Path, name: str) -> list[Any]:
    if not queue.is_dir():
        return []
    return [orjson.loads(path.read_bytes()) for path in sorted(queue.glob(f"*.{name}.msg"))]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_operate_endpoints_need_a_token_with_the_operate_scope(
    client: Any, make_token: TokenMaker, method: str, path: str
) -> None:
    """No token: 401; a token with ingest and read (even cleared for everything): 403."""
    assert client.request(method, path).json()["code"] == "missing_token"
    token = bearer(make_token("feed-a", "ingest", "read", clearance=TOP))
    refused = client.request(method, path, headers=token, content=b"{}")
    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")


def test_dead_letters_are_listed_newest_first_with_filters(
    operate: tuple[Any, Path], make_token: TokenMaker, letters: dict[str, str]
) -> None:
    """The listing (most recent first, payloads left out) narrows by stage, sink, reason,
    since and message id; a bad stage or date is a 422."""
    client, _queue = operate
    token = bearer(make_token("ops", "operate", clearance=TOP))

    def ids(query: str = "") -> list[str]:
        response = client.get(f"/v1/dead-letters?{query}", headers=token)
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert all("payload" not in item for item in items)
        return [item["id"] for item in items]

    assert ids() == [letters[k] for k in ("storage", "secret", "open", "parse")]
    assert ids("stage=parse") == [letters["parse"]]
    assert ids("sink=alerts") == [letters["secret"], letters["open"]]
    assert ids("reason=WEBHOOK") == [letters["secret"], letters["open"]]
    assert ids("since=2024-05-03") == [letters["storage"], letters["secret"]]
    assert ids("message_id=m-open") == [letters["open"]]
    for bad in ("stage=nowhere", "since=yesterday", "limit=0"):
        assert client.get(f"/v1/dead-letters?{bad}", headers=token).status_code == 422


def test_cursors_page_through_every_dead_letter_once(
    operate: tuple[Any, Path], make_token: TokenMaker, letters: dict[str, str]
) -> None:
    """Pages of one follow next_cursor through the four letters, each once, then stop."""
    client, _queue = operate
    token = bearer(make_token("ops", "operate"))
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        suffix = f"&cursor={cursor}" if cursor else ""
        page = client.get(f"/v1/dead-letters?limit=1{suffix}", headers=token).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [letters[k] for k in ("storage", "secret", "open", "parse")]


def test_content_above_the_clearance_is_withheld(
    operate: tuple[Any, Path], make_token: TokenMaker, letters: dict[str, str]
) -> None:
    """An operate token without clearance reads the UNCLASSIFIED record's letter whole, but
    neither an envelope's text (its classification unknown: ranked at the top) nor the SECRET
    record: they are listed, content withheld, and a reason filter never matches them. A
    token cleared for everything reads all of it."""
    client, _queue = operate
    low = bearer(make_token("ops", "operate"))
    open_letter = client.get(f"/v1/dead-letters/{letters['open']}", headers=low).json()
    assert (open_letter["withheld"], open_letter["reference_id"]) == (False, "06ALMATY598")
    assert open_letter["payload"]["classification"] == "UNCLASSIFIED"
    for name in ("parse", "secret", "storage"):
        answer = client.get(f"/v1/dead-letters/{letters[name]}", headers=low)
        body = answer.text
        shown = answer.json()
        assert shown["withheld"] is True
        assert shown["stage"]
        assert shown["last_seen"]
        for key in ("payload", "reason", "reference_id", "sha256", "schema_errors"):
            assert key not in shown
        assert "secret cable" not in body
        assert "06ALMATY700" not in body
    listing = client.get("/v1/dead-letters", headers=low).text
    assert "secret cable" not in listing
    assert "06ALMATY700" not in listing
    probe = client.get("/v1/dead-letters?reason=no+banner", headers=low).json()
    assert probe == {"items": [], "next_cursor": None}
    high = bearer(make_token("chief", "operate", clearance=TOP))
    parse = client.get(f"/v1/dead-letters/{letters['parse']}", headers=high).json()
    assert parse["payload"]["text"] == SECRET_TEXT
    assert client.get("/v1/dead-letters?reason=no+banner", headers=high).json()["items"]
    missing = client.get("/v1/dead-letters/nope", headers=high)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


def test_replay_one_sends_it_where_it_failed_and_marks_it(
    operate: tuple[Any, Path], make_token: TokenMaker, letters: dict[str, str], database_url: str
) -> None:
    """A sink:alerts letter goes to sink.alerts as one delivery and is marked replayed; a
    second replay skips it, ?again=true sends it again; an unknown id is a 404."""
    client, queue = operate
    token = bearer(make_token("ops", "operate"))
    path = f"/v1/dead-letters/{letters['open']}/replay"
    done = client.post(path, headers=token)
    assert done.status_code == 200, done.text
    assert done.json() == {
        "replayed": 1, "ids": [letters["open"]], "skipped": 0, "by_stage": {"sink:alerts": 1},
        "unconfigured_sinks": ["alerts"],  # no sinks file here: storage only
    }  # fmt: skip
    assert len(_messages(queue, "sink.alerts")) == 1
    store = DeadLetterStore(database_url)
    marked = store.get(letters["open"])
    store.close()
    assert marked is not None
    assert marked["replayed_at"] is not None
    assert client.post(path, headers=token).json()["skipped"] == 1
    assert client.post(f"{path}?again=true", headers=token).json()["replayed"] == 1
    assert len(_messages(queue, "sink.alerts")) == 2
    unknown = client.post("/v1/dead-letters/nope/replay", headers=token)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")


def test_replay_by_selection(
    operate: tuple[Any, Path], make_token: TokenMaker, letters: dict[str, str]
) -> None:
    """A selection replays what it names: {"stage": "parse"} the envelope to intake (a
    withheld letter may be replayed: nothing of it is shown); {"all": true} the rest;
    nothing selected is a 422, a body that is not JSON a 400."""
    client, queue = operate
    token = bearer(make_token("ops", "operate"))
    parse = client.post("/v1/dead-letters/replay", headers=token, json={"stage": "parse"}).json()
    assert (parse["replayed"], parse["ids"]) == (1, [letters["parse"]])
    (message,) = _messages(queue, "intake")
    everything = client.post("/v1/dead-letters/replay", headers=token, json={"all": True}).json()
    assert (everything["replayed"], everything["skipped"]) == (3, 1)
    assert everything["by_stage"] == {"sink:alerts": 2, "sink:storage": 1}
    assert message
    assert len(_messages(queue, "intake")) == 2
    refused = client.post("/v1/dead-letters/replay", headers=token, json={})
    assert (refused.status_code, refused.json()["code"]) == (422, "nothing_selected")
    garbled = client.post("/v1/dead-letters/replay", headers=token, content=b"{nope")
    assert (garbled.status_code, garbled.json()["code"]) == (400, "undecodable")


def test_status_is_the_snapshot_status_json_prints(
    operate: tuple[Any, Path], make_token: TokenMaker, letters: dict[str, str], settings: Settings
) -> None:
    """GET /v1/status and `cable-ingest status --json` (a real subprocess, same settings)
    give the same document, but for the moment it was read at."""
    client, _queue = operate
    answer = client.get("/v1/status", headers=bearer(make_token("ops", "operate")))
    assert answer.status_code == 200, answer.text
    served = answer.json()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env |= {"CABLE_INGEST_DATABASE_URL": settings.database_url,
            "CABLE_INGEST_VAR_DIR": str(settings.var_dir),
            "CABLE_INGEST_BROKER_URL": "filesystem://localhost/"}  # fmt: skip
    printed = subprocess.run(
        [sys.executable, "-m", "worker", "status", "--json"],
        env=env, capture_output=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    cli = orjson.loads(printed)
    assert served.keys() == cli.keys()
    assert served["dead_letters"] == cli["dead_letters"] == {
        "parse": 1, "sink:alerts": 2, "sink:storage": 1,
    }  # fmt: skip
    assert [q["name"] for q in served["queues"]] == [q["name"] for q in cli["queues"]]
