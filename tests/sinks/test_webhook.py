"""The webhook sink and its signing scheme, against a real HTTP server on 127.0.0.1.

The server (``http.server.ThreadingHTTPServer`` in a thread, HTTP/1.1 keep-alive) verifies every
request with :func:`worker.routing.signing.verify` (answering 401 when it fails), records what arrived,
and answers with a scripted status sequence, extra reply headers, or not at all (``hang``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

import worker
from tests.services import closed_port
from worker.errors import (
    CableIngestError,
    ConfigurationError,
    PermanentSinkError,
    TransientSinkError,
)
from worker.routing.notification import build_notification, delivery_key
from worker.routing.signing import SignatureError, sign, signature_header, verify
from worker.sinks.webhook import WebhookNotifier, build, parse_retry_after

SECRET = "whsec-Zq8vP3kT9s-test-only"
SECRET_ENV = "CABLE_INGEST_TEST_WEBHOOK_SECRET"
MESSAGE_ID = "0b8f6a52-3c1e-4d0e-9a57-8d1f0c2b7e44"
KEY = delivery_key(MESSAGE_ID, "hook")


@dataclass(frozen=True)
class Received:
    """One request as the server saw it; ``problem`` is the verification error, if any."""

    headers: dict[str, str]
    body: bytes
    port: int
    problem: str | None


@dataclass
class Script:
    """What the server has received, and how it answers the next requests."""

    received: list[Received] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)  # then 200
    reply_headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    script: Script


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: several requests per connection
    timeout = 10  # an idle kept connection ends by itself

    def do_POST(self) -> None:
        script = cast(_HTTPServer, self.server).script
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            verify(SECRET, self.headers.get("X-Cable-Ingest-Signature", ""), body)
            problem = None
        except SignatureError as exc:
            problem = str(exc)
        with script.lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            script.received.append(Received(headers, body, self.client_address[1], problem))
            status = script.statuses.popleft() if script.statuses else 200
        if script.hang:
            script.release.wait(10)
            self.close_connection = True
            return  # no answer at all
        self.send_response(401 if problem else status)
        for name, value in script.reply_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@dataclass(frozen=True)
class Server:
    """A running server: its URL and its script."""

    url: str
    script: Script


@pytest.fixture
def server() -> Iterator[Server]:
    """A webhook receiver on an ephemeral port, shut down (threads joined) after the test."""
    httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
    httpd.script = Script()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}/hook", httpd.script)
    finally:
        httpd.script.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def make_notifier(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., WebhookNotifier]]:
    """Build notifiers of sink ``hook`` (secret in SECRET_ENV) and close them after the test."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    made: list[WebhookNotifier] = []

    def make(**options: Any) -> WebhookNotifier:
        notifier = build("hook", {"url": server.url, "secret_env": SECRET_ENV, **options})
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        notifier.close()


@pytest.fixture
def notification(minimal_record: dict[str, Any]) -> dict[str, Any]:
    """A notification document for the minimal record."""
    return build_notification(minimal_record, message_id=MESSAGE_ID, sink="hook", rule="all")


def test_notification_arrives_signed_with_key_and_same_json(
    server: Server, make_notifier: Callable[..., WebhookNotifier], notification: dict[str, Any]
) -> None:
    """A sent notification arrives verifiable, with its key, our headers and the same JSON."""
    make_notifier(headers={"Authorization": "Bearer t0ken"}).send(notification, KEY)
    [got] = server.script.received
    assert got.problem is None
    verify(SECRET, got.headers["x-cable-ingest-signature"], got.body)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", got.headers["x-cable-ingest-signature"])
    assert got.headers["idempotency-key"] == KEY
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == f"cable-ingest/{worker.__version__}"
    assert got.headers["authorization"] == "Bearer t0ken"
    assert orjson.loads(got.body) == notification


def test_tampered_body_fails_verification(
    server: Server, make_notifier: Callable[..., WebhookNotifier], notification: dict[str, Any]
) -> None:
    """A received body changed by one byte no longer matches its signature."""
    make_notifier().send(notification, KEY)
    [got] = server.script.received
    tampered = got.body.replace(b'"sink":"hook"', b'"sink":"hoof"')
    assert tampered != got.body
    with pytest.raises(SignatureError, match="mismatch"):
        verify(SECRET, got.headers["x-cable-ingest-signature"], tampered)


def test_replayed_request_fails_verification_after_tolerance(
    server: Server, make_notifier: Callable[..., WebhookNotifier], notification: dict[str, Any]
) -> None:
    """A captured request replayed later than the tolerance is rejected (replay protection)."""
    make_notifier().send(notification, KEY)
    [got] = server.script.received
    header = got.headers["x-cable-ingest-signature"]
    signed_at = int(header.split(",")[0].removeprefix("t="))
    verify(SECRET, header, got.body, now=signed_at + 300)
    with pytest.raises(SignatureError, match="old, beyond the tolerance"):
        verify(SECRET, header, got.body, now=signed_at + 301)


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_stale_or_future_timestamp_fails_verification(offset: int) -> None:
    """A correctly signed header whose timestamp is an hour off either way is rejected."""
    header = signature_header(SECRET, b"{}", now=time.time() + offset)
    with pytest.raises(SignatureError, match="beyond the tolerance of 300 s"):
        verify(SECRET, header, b"{}")


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    """The signature is the hex HMAC-SHA256 of "<t>." + body, as documented for receivers."""
    expected = hmac.new(b"k", b"1714555800.{}", hashlib.sha256).hexdigest()
    assert sign("k", 1714555800, b"{}") == sign(b"k", 1714555800, b"{}") == expected
    assert signature_header("k", b"{}", now=1714555800.9) == f"t=1714555800,v1={expected}"


@pytest.mark.parametrize("header", ["", "garbage", "t=abc,v1=00", "v1=00", "t=1", "t=1,t=2,v1=0"])
def test_malformed_header_fails_verification(header: str) -> None:
    """A header without exactly one integer t and at least one v1 is malformed."""
    with pytest.raises(SignatureError, match="malformed"):
        verify(SECRET, header, b"{}", now=1)


def test_any_v1_may_match_and_unknown_keys_are_ignored() -> None:
    """During a change of secret any v1 may match; unknown elements (v2=) are ignored."""
    good = sign(SECRET, 100, b"{}")
    verify(SECRET, f"t=100, v2=zz, v1={'0' * 64}, v1={good.upper()}", b"{}", now=100)


def test_server_error_is_transient(
    server: Server, make_notifier: Callable[..., WebhookNotifier], notification: dict[str, Any]
) -> None:
    """A 500 raises TransientSinkError naming the sink, the URL and the status."""
    server.script.statuses.append(500)
    with pytest.raises(TransientSinkError) as caught:
        make_notifier().send(notification, KEY)
    assert str(caught.value) == f"webhook sink hook ({server.url}): HTTP 500"
    assert caught.value.retry_after is None


def test_unavailable_then_ok_delivers_on_second_call(
    server: Server, make_notifier: Callable[..., WebhookNotifier], notification: dict[str, Any]
) -> None:
    """After a 503 the same notification is delivered by the next call, with the same key."""
    server.script.statuses.extend([503, 200])
    notifier = make_notifier()
    with pytest.raises(TransientSinkError, match="HTTP 503"):
        notifier.send(notification, KEY)
    notifier.send(notification, KEY)
    assert [r.headers["idempotency-key"] for r in server.script.received] == [KEY, KEY]
    assert all(r.problem is None for r in server.script.received)


def test_too_many_requests_carries_retry_after(
    server: Server, make_notifier: Callable[..., WebhookNotifier], notification: dict[str, Any]
) -> None:
    """A 429 with Retry-After: 7 raises TransientSinkError with retry_after 7."""
    server.script.statuses.append(429)
    server.script.reply_headers["Retry-After"] = "7"
    with pytest.raises(TransientSinkError, match="HTTP 429") as caught:
        make_notifier().send(notification, KEY)
    assert caught.value.retry_after == 7


def test_too_many_requests_without_retry_after(
    server: Server, make_notifier: Callable[..., WebhookNotifier], notification: dict[str, Any]
) -> None:
    """A 429 without Retry-After is transient with no wish of its own (retry_after None)."""
    server.script.statuses.append(429)
    with pytest.raises(TransientSinkError) as caught:
        make_notifier().send(notification, KEY)
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("86400", 3600.0),
        (formatdate(1_000_120, usegmt=True), 120.0),
        (formatdate(999_000, usegmt=True), 0.0),
        (formatdate(1_000_000 + 10**6, usegmt=True), 3600.0),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After is read as seconds or an HTTP date, capped at an hour, None when unreadable."""
    assert parse_retry_after(value, now=1_000_000) == expected


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, PermanentSinkError), (404, PermanentSinkError), (408, TransientSinkError)],
)
def test_client_errors(
    server: Server,
    make_notifier: Callable[..., WebhookNotifier],
    notification: dict[str, Any],
    status: int,
    error: type[Exception],
) -> None:
    """400 and 404 are permanent; 408 (request timeout) is transient."""
    server.script.statuses.append(status)
    with pytest.raises(error, match=f"HTTP {status}"):
        make_notifier().send(notification, KEY)


def test_hanging_server_is_transient(
    server: Server, make_notifier: Callable[..., WebhookNotifier], notification: dict[str, Any]
) -> None:
    """A server that never answers raises TransientSinkError once the timeout has passed."""
    server.script.hang = True
    with pytest.raises(TransientSinkError, match=r"timed out after 0\.5 s"):
        make_notifier(timeout_s=0.5).send(notification, KEY)


def test_connection_refused_is_transient(
    make_notifier: Callable[..., WebhookNotifier], notification: dict[str, Any]
) -> None:
    """Nobody listening on the port raises TransientSinkError (a ConnectError)."""
    with pytest.raises(TransientSinkError, match="ConnectError"):
        make_notifier(url=f"http://127.0.0.1:{closed_port()}/hook").send(notification, KEY)


def test_connections_are_reused(
    server: Server, make_notifier: Callable[..., WebhookNotifier], notification: dict[str, Any]
) -> None:
    """Three sends, one of them refused with a 500, travel over one TCP connection."""
    server.script.statuses.extend([200, 500, 200])
    notifier = make_notifier()
    notifier.send(notification, KEY)
    with pytest.raises(TransientSinkError):
        notifier.send(notification, KEY)
    notifier.send(notification, KEY)
    assert len({r.port for r in server.script.received}) == 1
    assert len(server.script.received) == 3


def test_close_and_fork_make_a_new_connection(
    server: Server,
    make_notifier: Callable[..., WebhookNotifier],
    notification: dict[str, Any],
) -> None:
    """After close(), and after a fork (the hook of worker.processes), the next send opens a
    new connection."""
    notifier = make_notifier()
    notifier.send(notification, KEY)
    notifier.close()
    notifier.close()  # twice is harmless
    notifier.send(notification, KEY)
    parents = notifier._client  # a child leaves these to its parent; here, the test closes them
    notifier.after_fork()  # what the fork hook calls in a child
    notifier.send(notification, KEY)
    notifier.send(notification, KEY)
    assert parents is not None
    parents.close()
    ports = [r.port for r in server.script.received]
    assert len(set(ports[:3])) == 3
    assert ports[3] == ports[2]


def test_secret_file_is_read(server: Server, tmp_path: Path, notification: dict[str, Any]) -> None:
    """The secret may come from a file (its final newline stripped)."""
    (tmp_path / "secret").write_text(SECRET + "\n", encoding="utf-8")
    notifier = build("hook", {"url": server.url, "secret_file": str(tmp_path / "secret")})
    try:
        notifier.send(notification, KEY)
    finally:
        notifier.close()
    assert server.script.received[0].problem is None


def test_missing_secret_env_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset secret variable raises ConfigurationError naming the option and the variable."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(ConfigurationError, match=f"sinks.hook.options.secret_env: .*{SECRET_ENV}"):
        build("hook", {"url": "https://hooks.example.org/x", "secret_env": SECRET_ENV})


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"url": "ftp://hooks.example.org/x"}, "sinks.hook.options.url: "),
        ({"url": "hooks.example.org/x"}, "sinks.hook.options.url: "),
        ({"url": "http://hooks.example.org:99999/"}, "sinks.hook.options.url: "),
        ({"bogus": 1}, "sinks.hook.options: .*'bogus'"),
        ({"timeout_s": 0}, "sinks.hook.options.timeout_s: "),
        ({"max_connections": 0}, "sinks.hook.options.max_connections: "),
        ({"headers": {"X-Team": 1}}, "sinks.hook.options.headers.X-Team: "),
        ({"headers": {"idempotency-key": "x"}}, "sinks.hook.options.headers.idempotency-key: "),
        ({"secret_file": "/run/secrets/hook"}, "sinks.hook.options: "),
    ],
)
def test_bad_options_name_the_key(
    options: dict[str, Any], key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Malformed options raise ConfigurationError naming the key path of the problem."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    base: dict[str, Any] = {"url": "https://hooks.example.org/x", "secret_env": SECRET_ENV}
    with pytest.raises(ConfigurationError, match=key):
        build("hook", base | options)


def test_neither_secret_option_is_an_error() -> None:
    """Without secret_env or secret_file the options are refused."""
    with pytest.raises(ConfigurationError, match=r"sinks\.hook\.options: "):
        build("hook", {"url": "https://hooks.example.org/x"})


def test_url_password_is_redacted(
    server: Server, make_notifier: Callable[..., WebhookNotifier], notification: dict[str, Any]
) -> None:
    """A password in the URL is shown as *** in error messages."""
    server.script.statuses.append(500)
    url = server.url.replace("http://", "http://user:hunter2@")
    with pytest.raises(TransientSinkError) as caught:
        make_notifier(url=url).send(notification, KEY)
    assert "hunter2" not in str(caught.value)
    assert "user:***@" in str(caught.value)


def test_secret_never_appears_in_errors(
    server: Server,
    make_notifier: Callable[..., WebhookNotifier],
    notification: dict[str, Any],
) -> None:
    """No error raised by the sink or the verifier quotes the secret."""
    errors: list[CableIngestError] = []
    server.script.statuses.extend([500, 400, 429])
    notifier = make_notifier(timeout_s=0.5)
    for _ in range(3):
        with pytest.raises(CableIngestError) as caught:
            notifier.send(notification, KEY)
        errors.append(caught.value)
    refused = make_notifier(url=f"http://127.0.0.1:{closed_port()}/")
    with pytest.raises(CableIngestError) as caught:
        refused.send(notification, KEY)
    errors.append(caught.value)
    for options in ({"url": "ftp://x"}, {"timeout_s": -1}, {"headers": {"Host": SECRET[:4]}}):
        with pytest.raises(CableIngestError) as caught:
            build("hook", {"url": server.url, "secret_env": SECRET_ENV} | options)
        errors.append(caught.value)
    for header in (f"t=1,v1={SECRET}", f"t={SECRET}", signature_header(SECRET, b"x", now=1)):
        with pytest.raises(CableIngestError) as caught:
            verify(SECRET, header, b"y", now=1)
        errors.append(caught.value)
    server.script.hang = True
    with pytest.raises(CableIngestError) as caught:
        notifier.send(notification, KEY)
    errors.append(caught.value)
    assert len(errors) == 11
    for error in errors:
        assert SECRET not in str(error)
        assert SECRET not in repr(error)
    assert SECRET not in repr(notifier)
