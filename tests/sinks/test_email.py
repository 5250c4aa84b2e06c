"""The e-mail sink against a real SMTP server (aiosmtpd on 127.0.0.1).

STARTTLS and implicit TLS are not exercised against a TLS server: that needs a certificate, and
the ``cryptography`` package (the only way these tests may make one) is not a dependency. What is
tested is that ``starttls`` (the default) fails permanently against a server that does not offer
it, rather than sending in clear.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from worker.errors import ConfigurationError, PermanentSinkError, TransientSinkError
from worker.routing.notification import build_notification
from worker.sinks.email import EmailNotifier, build, message_id

USER, PASSWORD = "alerts", "s3cret-Pa55word"
AUTH_WARNING = "ignore:Requiring AUTH while not requiring TLS:UserWarning"


@dataclass
class Collector:
    """An aiosmtpd handler keeping every accepted message; ``*_reply`` refuses instead."""

    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    peers: list[object] = field(default_factory=list)
    data_reply: str | None = None
    rcpt_reply: str | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Accept the recipient unless ``rcpt_reply`` is set."""
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Keep the message unless ``data_reply`` is set."""
        if self.data_reply:
            return self.data_reply
        assert isinstance(envelope.content, bytes)
        parsed = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        self.peers.append(session.peer)
        return "250 Message accepted for delivery"


@dataclass
class Server:
    """A running SMTP server: its handler and port."""

    handler: Collector
    port: int
    controller: Controller


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # the server replies 535 itself


def _start(port: int | None = None, handler: Collector | None = None, **kwargs: Any) -> Server:
    handler = handler or Collector()
    port = port or _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return Server(handler, port, controller)


@pytest.fixture
def smtp_server() -> Iterator[Server]:
    """A plain SMTP server (no TLS, no AUTH) collecting messages."""
    server = _start()
    yield server
    server.controller.stop()


@pytest.fixture
def auth_server() -> Iterator[Server]:
    """An SMTP server that requires AUTH (over plain text, for the test) of USER/PASSWORD."""
    server = _start(auth_required=True, auth_require_tls=False, authenticator=_authenticate)
    yield server
    server.controller.stop()


@pytest.fixture
def make() -> Iterator[Callable[..., EmailNotifier]]:
    """Build e-mail notifiers (closed at teardown) from option overrides."""
    built: list[EmailNotifier] = []

    def factory(port: int, **options: Any) -> EmailNotifier:
        base = {"host": "127.0.0.1", "port": port, "starttls": False, "timeout_s": 5}
        base |= {"from": "cable-ingest@example.org", "to": ["desk@example.org"]}
        notifier = build("alerts", base | options)
        built.append(notifier)
        return notifier

    yield factory
    for notifier in built:
        notifier.close()


def _notification(
    record: dict[str, Any], reference_id: str = "06ALMATY598", *, body: bool = False, **facts: Any
) -> dict[str, Any]:
    record = record | {
        "reference_id": reference_id,
        "date": "2006-03-01T10:00:00Z",
        "origin": "Embassy Almaty",
        "classification": "CONFIDENTIAL",
        "subject": "KAZAKHSTAN: GOK DENIES REFOULEMENT",
        "tags": [{"code": "PREF", "kind": "subject"}, {"code": "KZ", "kind": "country"}],
        "summary": "The government denies it.",
        "paragraphs": [{"number": 1, "classification": "C", "heading": None, "text": "Denied."}],
    }
    return build_notification(
        record | facts, message_id=f"m-{reference_id}", sink="alerts", rule="kz", include_body=body
    )


def _attachment(message: EmailMessage, name: str) -> Any:
    (part,) = [p for p in message.iter_attachments() if p.get_filename() == name]
    assert part.get_content_type() == "application/json"
    return orjson.loads(part.get_content())


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def test_each_sends_subject_facts_and_attachment(
    smtp_server: Server, make: Callable[..., EmailNotifier], minimal_record: dict[str, Any]
) -> None:
    """One send is one message: prefixed subject, header facts, the document attached as JSON."""
    notification = _notification(minimal_record)
    make(smtp_server.port).send(notification, notification["delivery_key"])
    (message,) = smtp_server.handler.messages
    assert message["Subject"] == (
        "[cable-ingest] CONFIDENTIAL 06ALMATY598: KAZAKHSTAN: GOK DENIES REFOULEMENT"
    )
    assert message["From"] == "cable-ingest@example.org"
    assert smtp_server.handler.recipients == [["desk@example.org"]]
    text = _text(message)
    assert "Origin:         Embassy Almaty" in text
    assert "Tags:           PREF, KZ" in text
    assert _attachment(message, "notification.json") == notification


def test_message_id_is_derived_from_the_delivery_key(
    smtp_server: Server, make: Callable[..., EmailNotifier], minimal_record: dict[str, Any]
) -> None:
    """A redelivery (same key) carries the same Message-ID; another key gets another one."""
    notifier, notification = make(smtp_server.port), _notification(minimal_record)
    for key in ("m-1:alerts", "m-1:alerts", "m-2:alerts"):
        notifier.send(notification, key)
    ids = [message["Message-ID"] for message in smtp_server.handler.messages]
    assert ids == [message_id("m-1:alerts"), message_id("m-1:alerts"), message_id("m-2:alerts")]
    assert ids[0] != ids[2]
    assert ids[0].endswith("@cable-ingest>")
    assert len(ids[0]) == len("<@cable-ingest>") + 32


def test_body_is_included_only_when_the_notification_has_one(
    smtp_server: Server, make: Callable[..., EmailNotifier], minimal_record: dict[str, Any]
) -> None:
    """Summary and paragraphs appear in the text only for a notification carrying a body."""
    notifier = make(smtp_server.port)
    notifier.send(_notification(minimal_record), "m-1:alerts")
    notifier.send(_notification(minimal_record, body=True), "m-2:alerts")
    without, with_body = (_text(m) for m in smtp_server.handler.messages)
    assert "The government denies it." not in without
    assert "Denied." not in without
    assert "Summary:\nThe government denies it." in with_body
    assert "1 C Denied." in with_body


def test_long_subject_is_cut_with_an_ellipsis(
    smtp_server: Server, make: Callable[..., EmailNotifier], minimal_record: dict[str, Any]
) -> None:
    """A subject longer than the limit is shortened to it and ends with an ellipsis."""
    notification = _notification(minimal_record, subject="WORD " * 80)
    make(smtp_server.port, subject_prefix="[kz]").send(notification, "m-1:alerts")
    subject = smtp_server.handler.messages[0]["Subject"]
    assert subject.startswith("[kz] CONFIDENTIAL 06ALMATY598: WORD WORD")
    assert len(subject) <= 150
    assert subject.endswith("…")


def test_connection_is_reused_across_sends(
    smtp_server: Server, make: Callable[..., EmailNotifier], minimal_record: dict[str, Any]
) -> None:
    """Consecutive sends of one process go over one SMTP connection."""
    notifier = make(smtp_server.port)
    for index in range(3):
        notifier.send(_notification(minimal_record), f"m-{index}:alerts")
    assert len(smtp_server.handler.messages) == 3
    assert len(set(map(str, smtp_server.handler.peers))) == 1


def test_reconnects_when_the_server_dropped_the_connection(
    make: Callable[..., EmailNotifier], minimal_record: dict[str, Any]
) -> None:
    """A kept connection the server has closed is replaced, and the send succeeds."""
    first = _start()
    notifier = make(first.port)
    try:
        notifier.send(_notification(minimal_record), "m-1:alerts")
    finally:
        first.controller.stop()
    second = _start(first.port)
    try:
        notifier.send(_notification(minimal_record), "m-2:alerts")
    finally:
        notifier.close()
        second.controller.stop()
    assert len(first.handler.messages) == len(second.handler.messages) == 1


@pytest.mark.filterwarnings(AUTH_WARNING)
def test_auth_with_the_right_password_delivers(
    auth_server: Server,
    make: Callable[..., EmailNotifier],
    minimal_record: dict[str, Any],
    tmp_path: Path,
) -> None:
    """With the password from a file, AUTH succeeds and the message is accepted."""
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")
    notifier = make(auth_server.port, username=USER, password_file=str(secret))
    notifier.send(_notification(minimal_record), "m-1:alerts")
    assert len(auth_server.handler.messages) == 1


@pytest.mark.filterwarnings(AUTH_WARNING)
def test_wrong_password_is_permanent_and_not_shown(
    auth_server: Server,
    make: Callable[..., EmailNotifier],
    minimal_record: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refused login is a PermanentSinkError whose message does not contain the password."""
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong-Pa55word")
    notifier = make(auth_server.port, username=USER, password_env="TEST_SMTP_PASSWORD")
    with pytest.raises(PermanentSinkError, match="authentication failed: 535") as caught:
        notifier.send(_notification(minimal_record), "m-1:alerts")
    assert "wrong-Pa55word" not in str(caught.value)
    assert auth_server.handler.messages == []


@pytest.mark.filterwarnings(AUTH_WARNING)
def test_no_credentials_on_a_server_requiring_auth_is_permanent(
    auth_server: Server, make: Callable[..., EmailNotifier], minimal_record: dict[str, Any]
) -> None:
    """Sending without AUTH where the server requires it fails permanently (530)."""
    with pytest.raises(PermanentSinkError, match="530"):
        make(auth_server.port).send(_notification(minimal_record), "m-1:alerts")


@pytest.mark.parametrize(
    ("hook", "reply"),
    [
        ("data_reply", "450 4.3.0 Mailbox busy, try later"),
        ("data_reply", "550 5.7.1 Message rejected"),
        ("rcpt_reply", "450 4.2.1 Mailbox busy"),
        ("rcpt_reply", "550 5.1.1 No such user"),
    ],
)
def test_reply_codes_map_to_transient_or_permanent(
    smtp_server: Server,
    make: Callable[..., EmailNotifier],
    minimal_record: dict[str, Any],
    hook: str,
    reply: str,
) -> None:
    """A 4xx reply (to RCPT or DATA) is a TransientSinkError and a 5xx one permanent."""
    setattr(smtp_server.handler, hook, reply)
    error = TransientSinkError if reply.startswith("4") else PermanentSinkError
    with pytest.raises(error, match=reply[:3]):
        make(smtp_server.port).send(_notification(minimal_record), "m-1:alerts")


def test_closed_port_is_transient(
    make: Callable[..., EmailNotifier], minimal_record: dict[str, Any]
) -> None:
    """Nothing listening (connection refused) is a TransientSinkError."""
    with pytest.raises(TransientSinkError, match="ConnectionRefusedError"):
        make(_free_port()).send(_notification(minimal_record), "m-1:alerts")


def test_starttls_against_a_server_without_it_is_permanent(
    smtp_server: Server, make: Callable[..., EmailNotifier], minimal_record: dict[str, Any]
) -> None:
    """With starttls on (the default) the sink refuses to go on in clear when it is not offered."""
    notifier = make(smtp_server.port, starttls=True)
    with pytest.raises(PermanentSinkError, match="STARTTLS"):
        notifier.send(_notification(minimal_record), "m-1:alerts")
    assert smtp_server.handler.messages == []


def test_digest_waits_then_sends_one_message_listing_each_key_once(
    smtp_server: Server,
    make: Callable[..., EmailNotifier],
    minimal_record: dict[str, Any],
    tmp_path: Path,
) -> None:
    """Sends within the interval only spool; a forced flush mails them once, deduplicated."""
    notifier = make(smtp_server.port, mode="digest", spool_dir=str(tmp_path / "spool"))
    sent = [_notification(minimal_record, ref) for ref in ("06ALMATY598", "06ROME1", "06PARIS2")]
    keys = [notification["delivery_key"] for notification in sent]
    for notification in [*sent, sent[1]]:  # the last one a redelivery
        notifier.send(notification, notification["delivery_key"])
    assert smtp_server.handler.messages == []
    assert notifier.flush_due(force=True) == 3
    (message,) = smtp_server.handler.messages
    assert message["Subject"] == "[cable-ingest] digest: 3 cables"
    assert message["Message-ID"] == message_id("\n".join(keys))
    text = _text(message)
    for notification in sent:
        assert text.count(f"Reference:      {notification['reference_id']}\n") == 1
    assert _attachment(message, "notifications.json") == sent
    assert notifier.pending() == []
    assert notifier.flush_due(force=True) == 0


def test_digest_is_sent_once_the_oldest_is_due(
    smtp_server: Server,
    make: Callable[..., EmailNotifier],
    minimal_record: dict[str, Any],
    tmp_path: Path,
) -> None:
    """flush_due sends nothing before digest_interval_s has passed and the digest after it."""
    notifier = make(smtp_server.port, mode="digest", spool_dir=str(tmp_path), digest_interval_s=60)
    notifier.send(_notification(minimal_record), "a:alerts")
    assert notifier.flush_due(now=time.time() + 30) == 0
    assert notifier.flush_due(now=time.time() + 61) == 1
    assert len(smtp_server.handler.messages) == 1


def test_failed_digest_leaves_the_notifications_pending(
    smtp_server: Server,
    make: Callable[..., EmailNotifier],
    minimal_record: dict[str, Any],
    tmp_path: Path,
) -> None:
    """A refused digest puts everything back in the spool, and the next flush sends it."""
    notifier = make(smtp_server.port, mode="digest", spool_dir=str(tmp_path))
    notifier.send(_notification(minimal_record), "a:alerts")
    notifier.send(_notification(minimal_record, "06ROME1"), "b:alerts")
    smtp_server.handler.data_reply = "451 4.3.0 Local error"
    with pytest.raises(TransientSinkError, match="451"):
        notifier.flush_due(force=True)
    assert [entry["key"] for entry in notifier.pending()] == ["a:alerts", "b:alerts"]
    assert sorted(path.name for path in tmp_path.glob("*.jsonl")) == ["alerts.spool.jsonl"]
    smtp_server.handler.data_reply = None
    assert notifier.flush_due(force=True) == 2
    assert notifier.pending() == []


def test_digest_send_succeeds_when_the_due_flush_fails(
    make: Callable[..., EmailNotifier], minimal_record: dict[str, Any], tmp_path: Path
) -> None:
    """A spooled notification is accepted even though the due digest cannot be mailed yet."""
    notifier = make(_free_port(), mode="digest", spool_dir=str(tmp_path), digest_interval_s=1e-6)
    notifier.send(_notification(minimal_record), "a:alerts")
    assert [entry["key"] for entry in notifier.pending()] == ["a:alerts"]


@pytest.mark.parametrize(
    "options",
    [
        {"ssl": True, "starttls": True},
        {"mode": "digest"},
        {"username": USER},
        {"password_env": "X"},
        {"username": USER, "password_env": "X", "password_file": "/x"},
        {"to": []},
        {"from": "not an address"},
        {"smtp_host": "typo"},
    ],
)
def test_invalid_options_are_a_configuration_error(options: dict[str, Any]) -> None:
    """Options outside the schema are refused when the sink is built, naming the sink."""
    base = {"host": "smtp.example.org", "from": "a@example.org", "to": ["b@example.org"]}
    with pytest.raises(ConfigurationError, match=r"sinks\.alerts\.options"):
        build("alerts", base | options)


def test_missing_password_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A password variable that is unset fails at build time, naming the variable."""
    monkeypatch.delenv("TEST_SMTP_PASSWORD", raising=False)
    options = {"host": "h", "from": "a@example.org", "to": ["b@example.org"]}
    with pytest.raises(ConfigurationError, match="TEST_SMTP_PASSWORD"):
        build("alerts", options | {"username": USER, "password_env": "TEST_SMTP_PASSWORD"})


def test_ssl_turns_starttls_off_by_default() -> None:
    """Implicit TLS alone is valid: STARTTLS then defaults to off instead of clashing."""
    notifier = build("alerts", {"host": "h", "from": "a@x.org", "to": ["b@x.org"], "ssl": True})
    assert (notifier.ssl, notifier.starttls, notifier.port) == (True, False, 587)


def test_a_torn_spool_line_loses_only_itself(
    make: Callable[..., EmailNotifier], minimal_record: dict[str, Any], tmp_path: Path
) -> None:
    """A spool line cut short by a crash is skipped without swallowing the next notification."""
    (tmp_path / "alerts.spool.jsonl").write_bytes(b'\n{"key": "x:alerts", "queu')
    notifier = make(_free_port(), mode="digest", spool_dir=str(tmp_path))
    notifier.send(_notification(minimal_record), "a:alerts")
    assert [entry["key"] for entry in notifier.pending()] == ["a:alerts"]
