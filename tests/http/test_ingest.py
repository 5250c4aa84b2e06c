"""POST /v1/cables in process: the door's entries per media type, the feed stamped as source,
the request-level problems, idempotency, and hostile uploads (traversal names, archive bombs)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from tests.http.conftest import SAMPLE, TokenMaker, bearer
from worker.http.ingest import door
from worker.http.inputs import Input, _read_lines, ndjson_inputs
from worker.http.intake import MemoryQueue
from worker.http.problems import Problem

CABLE = SAMPLE.read_bytes()
NDJSON = {"Content-Type": "application/x-ndjson"}
TEXT = {"Content-Type": "text/plain"}
BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def _ndjson(*lines: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def _published(queue: MemoryQueue) -> list[dict[str, Any]]:
    return [envelope for message in queue.messages for envelope in message]


def test_one_cable_is_accepted_and_published_with_the_feed_as_source(
    client: Any, make_token: TokenMaker, queue: MemoryQueue
) -> None:
    """A text/plain body is one envelope, in the broker before the 202, stamped feed-a."""
    response = client.post(
        "/v1/cables", content=CABLE, headers={**TEXT, **bearer(make_token("feed-a"))}
    )
    assert response.status_code == 202, response.text
    (entry,) = response.json()["entries"]
    (envelope,) = _published(queue)
    assert entry["status"] == "accepted"
    assert (entry["message_id"], entry["sha256"]) == (envelope["id"], envelope["sha256"])
    assert envelope["source"] == "feed-a"
    assert envelope["text"].encode() == CABLE.decode("utf-8").encode()


def test_ndjson_entries_come_back_in_order_with_reasons_and_duplicates(
    client: Any, make_token: TokenMaker, queue: MemoryQueue
) -> None:
    """Accepted, rejected (empty, binary) and duplicate lines each get their entry, in order;
    only the accepted ones are published, with their metadata and sub-source."""
    body = _ndjson(
        {"text": "UNCLAS first cable", "metadata": {"seq": 1}},
        {"text": "   "},
        {"text": "UNCLAS first cable"},
        {"text": "bin\u0000ary"},
        {"text": "UNCLAS second", "source": "feed-a/nightly"},
    )
    response = client.post(
        "/v1/cables", content=body, headers={**NDJSON, **bearer(make_token("feed-a"))}
    )
    assert response.status_code == 202, response.text
    entries = response.json()["entries"]
    assert [e["status"] for e in entries] == [
        "accepted",
        "rejected",
        "duplicate",
        "rejected",
        "accepted",
    ]
    assert [e.get("reason") for e in entries] == [None, "empty", None, "binary", None]
    assert entries[2]["duplicate_of"] == 0
    published = _published(queue)
    assert [e["id"] for e in published] == [entries[0]["message_id"], entries[4]["message_id"]]
    assert [e["source"] for e in published] == ["feed-a", "feed-a/nightly"]
    assert published[0]["metadata"] == {"seq": 1}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("UNCLAS plain text\n\twith whitespace escapes\r\n" * 20, None),
        ("UNCLAS a lone \b and \u007f are few" + " text" * 40, None),
        ("UNCLAS a backslash then b: \\b, not a control" * 5, None),
        ("\u0001\u0002\u0003 mostly control" * 3, "binary"),
        ("\b\b\b\b" + "x" * 20, "binary"),
        ("\x7f" * 10 + "del", "binary"),
        ("text with a NUL \u0000 inside", "binary"),
    ],
)
def test_ndjson_texts_are_judged_binary_as_their_bytes_would_be(
    text: str, reason: str | None
) -> None:
    """Control characters reach an NDJSON text as JSON escapes (or a raw DEL); the door
    judges the text as it would judge its UTF-8 bytes sent as text/plain."""
    (item,) = ndjson_inputs(orjson.dumps({"text": text}), "feed-a", 10)
    (entry,), _ = door([item], 1 << 20)
    (by_bytes,), _ = door([Input(text.encode(), "feed-a")], 1 << 20)
    assert entry.get("reason") == by_bytes.get("reason") == reason
    if reason is None:
        assert entry["sha256"] == by_bytes["sha256"] == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    "body",
    [
        _ndjson({"text": "UNCLAS one"}, {"text": "two", "source": "feed-a/x"}),
        b'{"text": "a", "metadata": {"n": 1, "f": 1.5, "b": true, "z": null, "s": "x"}}\r\n'
        b'\n   \n{"text": "b", "source": null}',
        b'{"text": "a"}\n{"text": "b", "source": "feed-b"}\n',  # a foreign feed: 403
        b'{"text": "a"}\n{"text": "b", "extra": 1}\n',  # an unknown key: 422
        b'{"text": "a"}\n{"text": "b", "metadata": {"deep": [1]}}\n',  # not a scalar: 422
        b'{"text": "a"}\n{"text": 7}\n',  # not a string: 422
        b'{"text": "a"}\n{"text": "b"\n',  # not JSON: 400
        b'{"text": "a", "metadata": {"big": 1e400}}\n',  # not a finite number: 422
    ],
)
def test_ndjson_bodies_read_in_one_call_as_they_read_line_by_line(body: bytes) -> None:
    """The one-call reading of a body gives the inputs, or the Problem (status, code and the
    line named), that the line-by-line reading gives."""

    def outcome(read: Callable[[bytes, str, int], list[Input]]) -> object:
        try:
            return read(body, "feed-a", 10)
        except Problem as problem:
            return (problem.status, problem.code, str(problem))

    assert outcome(ndjson_inputs) == outcome(_read_lines)


def test_a_feed_cannot_claim_another_feeds_name(
    client: Any, make_token: TokenMaker, queue: MemoryQueue
) -> None:
    """A line whose source names another feed refuses the whole request (403), nothing queued."""
    body = _ndjson({"text": "UNCLAS ok"}, {"text": "UNCLAS spoof", "source": "feed-b"})
    response = client.post(
        "/v1/cables", content=body, headers={**NDJSON, **bearer(make_token("feed-a"))}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "foreign_source"
    assert response.headers["content-type"] == "application/problem+json"
    assert queue.messages == []


@pytest.mark.parametrize(
    "case",
    [
        ({"Content-Type": "application/json"}, b"{}", 415, "unsupported_media_type"),
        (NDJSON, b'{"text": "a"}\n{not json\n', 400, "undecodable"),
        (NDJSON, b'{"txt": "a"}\n', 422, "invalid_entry"),
        (NDJSON, b'{"text": "a", "metadata": {"k": [1]}}\n', 422, "invalid_entry"),
        (NDJSON, b"\n\n", 422, "no_inputs"),
        (
            {"Content-Type": "multipart/form-data; boundary=x"},
            b"--y\r\nnonsense",
            400,
            "undecodable",
        ),
    ],
)
def test_malformed_requests_are_problems_with_stable_codes(
    client: Any,
    make_token: TokenMaker,
    queue: MemoryQueue,
    case: tuple[dict[str, str], bytes, int, str],
) -> None:
    """415, 400 and 422 come as problem documents with their code; nothing is queued."""
    headers, body, status, code = case
    response = client.post(
        "/v1/cables", content=body, headers={**headers, **bearer(make_token("f"))}
    )
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.json()["status"] == status
    assert queue.messages == []


def test_an_undeclared_oversize_body_is_refused(
    make_client: Callable[..., Any], make_token: TokenMaker, queue: MemoryQueue
) -> None:
    """A chunked body (no Content-Length) past the limit is a 413 that closes the connection
    (tests/e2e/test_http.py shows on a real socket that the rest is never read)."""
    client = make_client(http_max_body_bytes=64 * 1024)

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b'{"text": "' + b"x" * 16_000 + b'"}\n'

    response = client.post(
        "/v1/cables", content=chunks(), headers={**NDJSON, **bearer(make_token("f"))}
    )
    assert (response.status_code, response.json()["code"]) == (413, "too_large")
    assert response.headers["connection"] == "close"
    assert queue.messages == []


def test_a_declared_oversize_length_is_refused_before_reading(
    client: Any, make_token: TokenMaker
) -> None:
    """A text/plain body declared over the per-cable limit is a 413."""
    headers = {**TEXT, **bearer(make_token("f"))}
    response = client.post("/v1/cables", content=b"x" * (1024 * 1024 + 1), headers=headers)
    assert (response.status_code, response.json()["code"]) == (413, "too_large")


@BOTH_DATABASES
def test_a_retried_request_with_an_idempotency_key_enqueues_nothing_twice(
    client: Any, make_token: TokenMaker, queue: MemoryQueue
) -> None:
    """The retry gets the first response byte for byte (marked replayed); one envelope queued;
    the same key with another body is 422."""
    headers = {**TEXT, **bearer(make_token("feed-a")), "Idempotency-Key": "batch-17"}
    first = client.post("/v1/cables", content=CABLE, headers=headers)
    again = client.post("/v1/cables", content=CABLE, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert len(_published(queue)) == 1
    other = client.post("/v1/cables", content=b"UNCLAS another", headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")


@BOTH_DATABASES
def test_a_refused_request_releases_its_idempotency_key(
    client: Any, make_token: TokenMaker, queue: MemoryQueue
) -> None:
    """A 503 (broker away) leaves the key free: the retry, once the broker is back, enqueues."""
    headers = {**TEXT, **bearer(make_token("feed-a")), "Idempotency-Key": "k1"}
    queue.failing = True
    refused = client.post("/v1/cables", content=CABLE, headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (503, "queue_unavailable")
    assert int(refused.headers["retry-after"]) > 0
    queue.failing = False
    retried = client.post("/v1/cables", content=CABLE, headers=headers)
    assert retried.status_code == 202
    assert "idempotent-replayed" not in retried.headers
    assert len(_published(queue)) == 1


def test_above_the_high_water_mark_posts_get_503_with_retry_after(
    client: Any, make_token: TokenMaker, queue: MemoryQueue
) -> None:
    """Back-pressure: 503 ``overloaded`` with Retry-After, nothing published."""
    queue.waiting = 10**9
    response = client.post("/v1/cables", content=CABLE, headers={**TEXT, **bearer(make_token("f"))})
    assert (response.status_code, response.json()["code"]) == (503, "overloaded")
    assert response.headers["retry-after"].isdigit()
    assert queue.messages == []


def test_multipart_file_names_are_labels_never_paths(
    client: Any, make_token: TokenMaker, queue: MemoryQueue, tmp_path: Any
) -> None:
    """A file named ../../etc/passwd is labelled "passwd"; nothing is written outside."""
    before = set(tmp_path.parent.iterdir())
    files = [("file", ("../../etc/passwd", CABLE, "text/plain")),
             ("file", ("..\\..\\boot.ini", b"UNCLAS two", "text/plain"))]  # fmt: skip
    response = client.post("/v1/cables", files=files, headers=bearer(make_token("feed-a")))
    assert response.status_code == 202, response.text
    assert [e["name"] for e in response.json()["entries"]] == ["passwd", "boot.ini"]
    assert [e["metadata"]["source_file"] for e in _published(queue)] == ["passwd", "boot.ini"]
    assert set(tmp_path.parent.iterdir()) == before


def test_archives_are_opened_member_by_member(
    client: Any, make_token: TokenMaker, queue: MemoryQueue
) -> None:
    """A tar.gz upload gives one entry per member, named archive:member."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("a.txt", CABLE), ("b.txt", b"UNCLAS bee"), ("c.txt", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    files = [("file", ("cables.tar.gz", buffer.getvalue(), "application/gzip"))]
    response = client.post("/v1/cables", files=files, headers=bearer(make_token("feed-a")))
    entries = response.json()["entries"]
    assert [e["name"] for e in entries] == [
        "cables.tar.gz:a.txt",
        "cables.tar.gz:b.txt",
        "cables.tar.gz:c.txt",
    ]
    assert [e["status"] for e in entries] == ["accepted", "accepted", "rejected"]
    assert len(_published(queue)) == 2


def test_archive_bombs_are_refused(
    make_client: Callable[..., Any], make_token: TokenMaker, queue: MemoryQueue
) -> None:
    """A 100 KB zip that unpacks to 40 MiB is refused (413) under a 16 MiB unpacked limit, as
    is one with more members than a request may hold; nothing is queued."""
    client = make_client(http_max_expanded_bytes=16 * 1024 * 1024, http_max_inputs=500)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for n in range(40):
            archive.writestr(f"c{n}.txt", b"UNCLAS " + bytes([65 + n % 26]) * (1024 * 1024 - 8))
    assert len(bomb.getvalue()) < 200_000
    response = client.post("/v1/cables", files=[("file", ("bomb.zip", bomb.getvalue()))],
                           headers=bearer(make_token("f")))  # fmt: skip
    assert (response.status_code, response.json()["code"]) == (413, "too_large")
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w", zipfile.ZIP_DEFLATED) as archive:
        for n in range(600):
            archive.writestr(f"c{n}.txt", f"UNCLAS {n}")
    response = client.post("/v1/cables", files=[("file", ("many.zip", many.getvalue()))],
                           headers=bearer(make_token("f")))  # fmt: skip
    assert (response.status_code, response.json()["code"]) == (413, "too_many_inputs")
    assert queue.messages == []


@BOTH_DATABASES
def test_a_retried_upload_is_recognised_despite_a_new_multipart_boundary(
    client: Any, make_token: TokenMaker, queue: MemoryQueue
) -> None:
    """The key is bound to the files, not the body's bytes: the retry (another boundary) is
    replayed, one envelope queued."""
    headers = {**bearer(make_token("feed-a")), "Idempotency-Key": "upload-1"}
    files = [("file", ("a.txt", CABLE, "text/plain"))]
    first = client.post("/v1/cables", files=files, headers=headers)
    again = client.post("/v1/cables", files=files, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert len(_published(queue)) == 1
