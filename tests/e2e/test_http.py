"""``cable-ingest serve`` as a real process (uvicorn) in front of real worker processes, on
Redis with SQLite and with PostgreSQL: what feeds POST is stored and their receipts say so;
the token never reaches a log; oversize and slow bodies are cut off on a real socket."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bench.server import start_serve
from tests.e2e.conftest import SAMPLE
from tests.services import postgres_schema_url, redis_db_url
from worker.cli.run import stop_workers
from worker.intake.generate import generate, load_templates
from worker.storage import upgrade
from worker.storage.tokens import TokenStore

OUTCOME_TIMEOUT_S = 120
MAX_BODY = 256 * 1024
pytestmark = pytest.mark.timeout(300)  # worker start-up and outcomes on a busy machine


@dataclass
class Served:
    """A running serve process and worker, and what a test needs to talk to them."""

    url: str
    port: int
    token: str
    reader: str
    logs: list[Path]

    def headers(self, token: str | None = None, **extra: str) -> dict[str, str]:
        """Bearer auth (the feed's token by default) plus ``extra`` headers."""
        return {"Authorization": f"Bearer {token or self.token}", **extra}


def _environment(tmp_path: Path, broker: str, database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env |= {
        "CABLE_INGEST_BROKER_URL": broker,
        "CABLE_INGEST_DATABASE_URL": database,
        "CABLE_INGEST_VAR_DIR": str(tmp_path / "var"),
        "CABLE_INGEST_LOG_FORMAT": "json",
        "CABLE_INGEST_LOG_LEVEL": "DEBUG",  # the most a log could ever show
        "CABLE_INGEST_GROUP_COMMIT_MS": "200",
        "CABLE_INGEST_HTTP_MAX_BODY_BYTES": str(MAX_BODY),
        "CABLE_INGEST_HTTP_READ_TIMEOUT_S": "1",
        "CABLE_INGEST_TOKEN_CACHE_S": "0",
    }
    return env


@pytest.fixture(params=["redis+sqlite", "redis+postgresql"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """serve and one worker (one process) on Redis db 13 and a fresh SQLite or PostgreSQL."""
    with redis_db_url() as broker:
        if request.param.endswith("postgresql"):
            with postgres_schema_url() as database:
                yield from _serve(tmp_path, broker, database)
        else:
            yield from _serve(tmp_path, broker, f"sqlite:///{tmp_path / 'var' / 'db.sqlite'}")


def _serve(tmp_path: Path, broker: str, database: str) -> Iterator[Served]:
    upgrade(database)
    tokens = TokenStore(database)
    feed, _ = tokens.create("feed-a", ["ingest", "read"], "CONFIDENTIAL")
    reader, _ = tokens.create("reader", ["read"], "SECRET")
    tokens.close()
    env = _environment(tmp_path, broker, database)
    logs = [tmp_path / "serve.log", tmp_path / "worker.log"]
    with logs[0].open("wb") as serve_log, logs[1].open("wb") as worker_log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "-c", "1"],
            env=env, stdout=worker_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        server, port = start_serve(env, serve_log)
        try:
            yield Served(f"http://127.0.0.1:{port}", port, feed, reader, logs)
        finally:
            server.terminate()
            server.wait(timeout=30)
            stop_workers(worker)


def _outcome(client: httpx.Client, served: Served, message_id: str) -> dict[str, Any]:
    """Poll the receipt until it is no longer queued (bounded)."""
    deadline = time.monotonic() + OUTCOME_TIMEOUT_S
    while True:
        receipt: dict[str, Any] = client.get(
            f"{served.url}/v1/messages/{message_id}", headers=served.headers()
        ).json()
        if receipt["status"] != "queued" or time.monotonic() > deadline:
            return receipt
        time.sleep(0.2)


async def _post_concurrently(served: Served, texts: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
        return await asyncio.gather(*(
            client.post("/v1/cables", content=text.encode(),
                        headers=served.headers(**{"Content-Type": "text/plain"}))
            for text in texts
        ))  # fmt: skip


def test_posted_cables_are_stored_and_their_receipts_say_so(served: Served) -> None:
    """Concurrent single POSTs (grouped into fewer queue messages), an NDJSON batch (retried
    with its Idempotency-Key: the first answer again) and a text that is no cable all reach an
    outcome through the real worker: stored (inserted, then unchanged for the same text again)
    or dead-lettered at parse; the record reads back."""
    templates, _ = load_templates([SAMPLE])
    made = list(generate(templates, 30))
    singles = asyncio.run(_post_concurrently(served, [text for _, text in made[:20]]))
    assert {response.status_code for response in singles} == {202}
    ids = [response.json()["entries"][0]["message_id"] for response in singles]
    batch = b"".join(orjson.dumps({"text": text}) + b"\n" for _, text in made[20:])
    batch += orjson.dumps({"text": "Dear colleague, lunch moved to Tuesday."}) + b"\n"
    batch += orjson.dumps({"text": made[0][1]}) + b"\n"  # stored already: unchanged
    with httpx.Client(timeout=30) as client:
        ndjson = served.headers(**{"Content-Type": "application/x-ndjson", "Idempotency-Key": "b1"})
        posted = client.post(f"{served.url}/v1/cables", content=batch, headers=ndjson)
        assert posted.status_code == 202, posted.text
        again = client.post(f"{served.url}/v1/cables", content=batch, headers=ndjson)
        assert (again.content, again.headers["idempotent-replayed"]) == (posted.content, "true")
        entries = posted.json()["entries"]
        assert [e["status"] for e in entries] == ["accepted"] * 12
        ids += [entry["message_id"] for entry in entries]
        receipts = [_outcome(client, served, message_id) for message_id in ids]
        assert [r["status"] for r in receipts[:30]] == ["stored"] * 30
        assert [r["reference_id"] for r in receipts[:30]] == [ref for ref, _ in made]
        assert (receipts[30]["status"], receipts[30]["stage"]) == ("dead_lettered", "parse")
        assert (receipts[31]["status"], receipts[31]["outcome"]) == ("stored", "unchanged")
        assert {r["source"] for r in receipts if r["status"] == "stored"} == {"feed-a"}
        record = client.get(f"{served.url}/v1/cables/{made[5][0]}", headers=served.headers())
        assert record.json()["record"]["reference_id"] == made[5][0]
        metrics = client.get(f"{served.url}/metrics").text
    published = _sample(metrics, "cable_ingest_http_group_commit_envelopes_count")
    assert 2 <= published < 21  # 20 singles and one batch: fewer messages than requests


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_the_token_never_appears_in_any_log(served: Served) -> None:
    """After accepted, refused (bad token, wrong scope) and read requests, neither the
    server's nor the worker's log (at DEBUG) holds a token or its secret part."""
    with httpx.Client(base_url=served.url, timeout=30) as client:
        text = {"Content-Type": "text/plain"}
        client.post("/v1/cables", content=SAMPLE.read_bytes(), headers=served.headers(**text))
        client.post("/v1/cables", content=b"x", headers=served.headers(served.token + "x", **text))
        client.post("/v1/cables", content=b"x", headers=served.headers(served.reader, **text))
        client.get("/v1/cables?q=refugees", headers=served.headers(served.reader))
        accepted = client.post("/v1/cables", content=b"UNCLAS note", headers=served.headers(**text))
        _outcome(client, served, accepted.json()["entries"][0]["message_id"])
    logged = b"".join(path.read_bytes() for path in served.logs)
    assert logged  # the logs were written
    for token in (served.token, served.reader):
        assert token.encode() not in logged
        assert token.split("_", 2)[2].encode() not in logged


def _raw(port: int, head: bytes) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(head)
    return connection


def _response(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_an_oversize_body_is_refused_before_it_is_all_sent(served: Served) -> None:
    """A chunked NDJSON body that passes the limit gets its 413 and a closed connection while
    the client still has most of the body to send."""
    head = (f"POST /v1/cables HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {served.token}\r\n"
            "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n").encode()  # fmt: skip
    connection = _raw(served.port, head)
    line = orjson.dumps({"text": "UNCLAS " + "x" * 32_000}) + b"\n"
    chunk = f"{len(line):x}\r\n".encode() + line + b"\r\n"
    for _ in range(MAX_BODY // len(line) + 2):  # just past the limit, of ~40 times as much
        connection.sendall(chunk)
    answer = _response(connection)
    connection.close()
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"code":"too_large"' in answer


def test_a_client_that_stalls_mid_body_is_cut_off(served: Served) -> None:
    """A body that stops arriving (10 of 5,000 bytes sent) gets 408 after the read timeout,
    and the connection is closed."""
    head = (f"POST /v1/cables HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {served.token}\r\n"
            "Content-Type: text/plain\r\nContent-Length: 5000\r\n\r\nUNCLAS 12\n").encode()  # fmt: skip
    connection = _raw(served.port, head)
    answer = _response(connection)
    connection.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"code":"slow_body"' in answer
