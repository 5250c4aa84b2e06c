"""E-mail notification sink (stdlib smtplib): one message per cable, or a digest.

``each`` sends one message per notification with the document attached as ``notification.json``
and a ``Message-ID`` derived from the delivery key, so a redelivery carries the same id and MTAs
or mail clients that deduplicate drop it. ``digest`` appends each notification (one JSON line,
``O_APPEND`` + fsync, under a lock) to ``<spool_dir>/<sink>.spool.jsonl``; :meth:`flush_due`, run
after every append, sends one message listing the pending ones once the oldest is
``digest_interval_s`` old. Limits of the digest: the spool is local to one worker host (each host
sends its own digest); a digest goes out only when a later notification arrives or something
calls ``flush_due`` (nothing runs on a timer); a failed flush is logged and retried by the next
one, while ``send`` succeeds once the notification is spooled. The SMTP connection is opened
lazily in each process, checked with NOOP before reuse and reopened when the server dropped it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import smtplib
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from email import policy
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import orjson

from worker import processes
from worker.errors import PermanentSinkError, SinkError, TransientSinkError
from worker.logs import get_logger
from worker.settings import read_secret
from worker.sinks.base import check_options

log = get_logger("worker.sinks.email")
MAX_SUBJECT = 150
"""Longest subject line, prefix included; a longer cable subject is cut with an ellipsis."""
_POLICY = policy.default.clone(max_line_length=998)  # no fold after "Subject:" (a colon in it)
_FACTS = {"Reference": "reference_id", "Classification": "classification", "Subject": "subject"}
_FACTS |= {"Date": "date", "Origin": "origin", "Tags": "tags", "Rule": "rule"}
_FACTS |= {"Delivery key": "delivery_key"}  # label -> notification field, in body order


def message_id(key: str) -> str:
    """The Message-ID of the message for delivery key ``key`` (the same on every redelivery)."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@cable-ingest>"


def _one_line(value: object) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _facts(n: Mapping[str, Any]) -> str:
    """The header facts, one per line; then the summary and paragraphs when ``n`` has a body."""
    values = {label: n.get(key) for label, key in _FACTS.items()}
    text = "\n".join(
        f"{label + ':':<16}{_one_line(', '.join(v) if isinstance(v, list) else v) or '-'}"
        for label, v in values.items()
    )
    body = n.get("body")
    if isinstance(body, Mapping):
        if body.get("summary"):
            text += f"\n\nSummary:\n{body['summary']}"
        for p in body.get("paragraphs") or []:
            marks = [str(p[k]) for k in ("number", "classification") if p.get(k) is not None]
            heading = f"{p['heading']}: " if p.get("heading") else ""
            text += "\n\n" + " ".join([*marks, f"{heading}{p.get('text', '')}"])
    return text


@contextmanager
def _locked(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on ``path`` (yields False, unlocked, when busy and not waiting)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class EmailNotifier:
    """Sends notifications by SMTP (``schemas/sinks/email.schema.json``)."""

    def __init__(self, name: str, options: Mapping[str, Any], password: str | None) -> None:
        self.name, self.host, self.port = name, str(options["host"]), options.get("port", 587)
        self.ssl: bool = options.get("ssl", False)
        self.starttls: bool = options.get("starttls", not self.ssl)
        self.username: str | None = options.get("username")
        self._password = password
        self.sender, self.to = str(options["from"]), [str(to) for to in options["to"]]
        self.prefix: str = options.get("subject_prefix", "[cable-ingest]")
        self.timeout: float = options.get("timeout_s", 10)
        self.mode: str = options.get("mode", "each")
        self.interval: float = options.get("digest_interval_s", 3600)
        spool = Path(options.get("spool_dir", "."))
        self.spool, self._sending = spool / f"{name}.spool.jsonl", spool / f"{name}.sending.jsonl"
        self._spool_lock, self._flush_lock = spool / f"{name}.lock", spool / f"{name}.flush.lock"
        self._smtp: smtplib.SMTP | None = None
        processes.track(self)

    def send(self, notification: Mapping[str, Any], key: str) -> None:
        """Send one message (``each``) or spool the notification and flush a due digest."""
        if self.mode == "each":
            self._deliver(self._message([notification], message_id(key)))
            return
        line = orjson.dumps({"key": key, "queued_at": time.time(), "notification": notification})
        try:
            self.spool.parent.mkdir(parents=True, exist_ok=True)
            with _locked(self._spool_lock):
                _append(self.spool, b"\n" + line + b"\n")  # a line torn by a crash stays alone
        except OSError as exc:
            raise TransientSinkError(f"email sink {self.name}: cannot spool: {exc}") from exc
        try:
            self.flush_due()
        except SinkError as exc:  # the notification is safe in the spool; the next flush retries
            log.warning("digest not sent", sink=self.name, error=str(exc))

    def pending(self) -> list[dict[str, Any]]:
        """The spooled entries (``key``, ``queued_at``, ``notification``), first queued first."""
        return self._read(self.spool)

    def flush_due(self, now: float | None = None, *, force: bool = False) -> int:
        """Send the digest when the oldest pending notification is ``digest_interval_s`` old (or
        with ``force``); return how many notifications it listed (0: nothing sent)."""
        try:
            self.spool.parent.mkdir(parents=True, exist_ok=True)
            with _locked(self._flush_lock, wait=False) as mine:
                return self._flush(time.time() if now is None else now, force) if mine else 0
        except OSError as exc:
            raise TransientSinkError(f"email sink {self.name}: spool: {exc}") from exc

    def _flush(self, now: float, force: bool) -> int:
        with _locked(self._spool_lock):
            self._put_back()  # a digest left behind by a crash goes out with this one
            queued = [float(entry["queued_at"]) for entry in self.pending()]
            if not queued or (not force and now - min(queued) < self.interval):
                return 0
            os.replace(self.spool, self._sending)  # later sends go to a fresh spool
        unique = {entry["key"]: entry["notification"] for entry in self._read(self._sending)}
        try:
            self._deliver(self._message(list(unique.values()), message_id("\n".join(unique))))
        except BaseException:
            with _locked(self._spool_lock):
                self._put_back()
            raise
        self._sending.unlink()
        return len(unique)

    def close(self) -> None:
        """Quit the SMTP session opened by this process, if any."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            smtp.close()

    def after_fork(self) -> None:
        """In a forked child: the parent's SMTP session is not ours to use or end."""
        self._smtp = None

    def _read(self, path: Path) -> list[dict[str, Any]]:
        lines = path.read_bytes().splitlines() if path.exists() else []
        entries = []
        for line in lines:
            with suppress(orjson.JSONDecodeError):  # blank, or torn by a crash: skipped
                entries.append(orjson.loads(line))
        return entries

    def _put_back(self) -> None:
        if self._sending.exists():
            data = self._sending.read_bytes()
            _append(self.spool, b"\n" + data + b"\n")
            self._sending.unlink()

    def _message(self, notifications: list[Mapping[str, Any]], msgid: str) -> EmailMessage:
        message = EmailMessage(policy=_POLICY)
        if len(notifications) == 1 and self.mode == "each":
            n = notifications[0]
            head = " ".join(_one_line(n.get(k)) for k in ("classification", "reference_id"))
            subject = f"{self.prefix} {head.strip()}: {_one_line(n.get('subject')) or '-'}"
            text = _facts(n) + "\n"
            name, document = "notification.json", orjson.dumps(n, option=orjson.OPT_INDENT_2)
        else:
            count = len(notifications)
            subject = f"{self.prefix} digest: {count} cable{'' if count == 1 else 's'}"
            text = "\n\n".join(f"{i}.\n{_facts(n)}" for i, n in enumerate(notifications, 1))
            name = "notifications.json"
            document = orjson.dumps(notifications, option=orjson.OPT_INDENT_2)
        subject = subject.strip()
        if len(subject) > MAX_SUBJECT:
            subject = subject[: MAX_SUBJECT - 1].rstrip() + "…"
        message["Subject"], message["From"] = subject, self.sender
        message["To"], message["Date"] = ", ".join(self.to), formatdate(usegmt=True)
        message["Message-ID"], message["Auto-Submitted"] = msgid, "auto-generated"
        message.set_content(text)
        message.add_attachment(document, maintype="application", subtype="json", filename=name)
        return message

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is not None:
            with suppress(smtplib.SMTPException, OSError):
                if self._smtp.noop()[0] == 250:
                    return self._smtp
        self.close()
        context = ssl.create_default_context()
        smtp = (
            smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            if self.ssl
            else smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        )
        self._smtp = smtp
        if self.starttls:
            smtp.starttls(context=context)
        if self.username and self._password:
            smtp.login(self.username, self._password)
        return smtp

    def _deliver(self, message: EmailMessage) -> None:
        for attempt in (1, 2):
            try:
                refused = self._connect().send_message(message, self.sender, self.to)
            except smtplib.SMTPServerDisconnected as exc:
                self.close()
                if attempt == 1:
                    continue  # the server dropped a kept connection: reconnect once
                raise self._error(exc) from exc
            except (smtplib.SMTPException, OSError) as exc:
                self.close()
                raise self._error(exc) from exc
            if refused:
                log.warning("recipients refused", sink=self.name, refused=sorted(refused))
            return

    def _error(self, exc: Exception) -> SinkError:
        """Transient: 4xx replies, network trouble. Permanent: 5xx, authentication, TLS."""
        what, temporary = f"{type(exc).__name__}: {exc}", True
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = sorted({code for code, _ in exc.recipients.values()})
            what = f"every recipient refused, replies {codes}"
            temporary = all(400 <= code < 500 for code in codes)
        elif isinstance(exc, smtplib.SMTPResponseException):
            reply = exc.smtp_error
            text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
            auth = isinstance(exc, smtplib.SMTPAuthenticationError)
            kind = "authentication failed" if auth else type(exc).__name__
            what = f"{kind}: {exc.smtp_code} {_one_line(text)[:200]}"
            temporary = not 500 <= exc.smtp_code < 600
        elif isinstance(exc, smtplib.SMTPServerDisconnected):
            pass
        elif isinstance(exc, ssl.SSLCertVerificationError | smtplib.SMTPException):
            temporary = False  # no STARTTLS or AUTH offered, an untrusted certificate
        where = f"email sink {self.name} ({self.host}:{self.port})"
        return (TransientSinkError if temporary else PermanentSinkError)(f"{where}: {what}")


def build(name: str, options: Mapping[str, Any]) -> EmailNotifier:
    """The e-mail notifier of sink ``name``: options checked, the password read (not used yet)."""
    check_options("email", name, options)
    password = None
    if options.get("username"):
        env, file = options.get("password_env"), options.get("password_file")
        password = read_secret(env=env, file=file, what=f"sinks.{name} SMTP password")
    return EmailNotifier(name, options, password)
