"""Chaos through the HTTP face: feeds post to ``cable-ingest serve`` while Redis restarts.

Four feeds post (single cables and NDJSON batches of 50, each request with an
Idempotency-Key) as a well-behaved HTTP client does: a 503 is waited out for its Retry-After
and the same request sent again. Mid-run the scenario's redis-server is shut down and started
again. Every entry a 202 accepted must end stored or dead-lettered; every refused request must
have been a 503 and must have got through on a later try.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import orjson

from bench.server import start_serve
from chaos.harness import reconcile
from chaos.scenarios import Row, _settle, _stage, cables
from worker.storage.tokens import TokenStore

FEEDS = 4
PER_FEED = 800
BATCH = 50
RATE_PER_FEED = 100.0  # cables per second, so that the posting outlasts the outage
GIVE_UP_S = 120.0


@dataclass
class Feed:
    """What one feed sent and what it was answered."""

    name: str
    accepted: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    retried: int = 0
    connection_errors: int = 0
    given_up: int = 0


def _requests(texts: list[str]) -> Iterator[tuple[str, bytes]]:
    """(content type, body) of each request: three single cables, then a batch of BATCH."""
    position = 0
    for number in itertools.count():
        if position >= len(texts):
            return
        if number % 4 < 3:
            yield "text/plain", texts[position].encode()
            position += 1
        else:
            chunk = texts[position : position + BATCH]
            yield "application/x-ndjson", b"".join(orjson.dumps({"text": t}) + b"\n" for t in chunk)
            position += len(chunk)


def post_all(feed: Feed, url: str, token: str, texts: list[str]) -> None:
    """Post ``texts`` at RATE_PER_FEED, retrying each refused request until it is accepted."""
    started = time.monotonic()
    sent = 0
    with httpx.Client(
        base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for number, (kind, body) in enumerate(_requests(texts)):
            if (ahead := started + sent / RATE_PER_FEED - time.monotonic()) > 0:
                time.sleep(ahead)
            headers = {"Content-Type": kind, "Idempotency-Key": f"{feed.name}-{number}"}
            deadline = time.monotonic() + GIVE_UP_S
            while True:
                try:
                    answer = client.post("/v1/cables", content=body, headers=headers)
                except httpx.TransportError:
                    feed.connection_errors += 1
                    time.sleep(1.0)
                    continue
                feed.statuses[answer.status_code] += 1
                if answer.status_code == 202:
                    entries = answer.json()["entries"]
                    feed.accepted += [e["message_id"] for e in entries if e["status"] == "accepted"]
                    sent += len(entries)
                    break
                if answer.status_code not in (503, 409) or time.monotonic() > deadline:
                    feed.given_up += 1
                    break
                feed.retried += 1
                time.sleep(float(answer.headers.get("Retry-After", "1")))


def restart_redis_while_feeds_post() -> Row:
    """Redis shut down for 3 s, then started again, while four feeds post through serve."""
    with _stage("http-redis") as stage:
        store = TokenStore(stage.settings.database_url)
        feeds = [Feed(f"feed-{n}") for n in range(FEEDS)]
        tokens = [store.create(feed.name, ["ingest"])[0] for feed in feeds]
        store.close()
        texts = list(cables(FEEDS * PER_FEED))
        with (stage.folder / "serve.log").open("wb") as log:
            server, port = start_serve(stage.env, log)
            try:
                threads = [
                    threading.Thread(
                        target=post_all,
                        args=(
                            feed,
                            f"http://127.0.0.1:{port}",
                            token,
                            texts[n * PER_FEED : (n + 1) * PER_FEED],
                        ),
                    )
                    for n, (feed, token) in enumerate(zip(feeds, tokens, strict=True))
                ]
                for thread in threads:
                    thread.start()
                time.sleep(3.0)
                assert stage.server is not None
                stage.server.stop()
                time.sleep(3.0)
                stage.server.start()
                calm = time.monotonic()
                for thread in threads:
                    thread.join()
            finally:
                server.terminate()
                server.wait(timeout=30)
        sent = [message_id for feed in feeds for message_id in feed.accepted]
        recovered = _settle(stage, sent, calm)
        outcome = reconcile(stage.settings.database_url, sent)
        statuses: Counter[int] = sum((feed.statuses for feed in feeds), Counter())
        retried = sum(feed.retried for feed in feeds)
        outcome.notes.append(
            f"answers: {dict(sorted(statuses.items()))}; requests retried after a 503: {retried}; "
            f"connection errors: {sum(f.connection_errors for f in feeds)}"
        )
        if len(sent) != FEEDS * PER_FEED:
            outcome.failures.append(f"{FEEDS * PER_FEED - len(sent)} cables never accepted")
        if given_up := sum(feed.given_up for feed in feeds):
            outcome.failures.append(f"{given_up} requests refused other than by 503, or for good")
        if not statuses.get(503):
            outcome.failures.append("no request was refused: the outage went unnoticed")
        return Row("Redis restarted while 4 feeds post over HTTP", outcome, recovered)


SCENARIOS: dict[str, Callable[[], Row]] = {"http-redis": restart_redis_while_feeds_post}
