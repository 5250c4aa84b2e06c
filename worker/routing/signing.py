"""Signing of webhook requests (HMAC-SHA256), and how a receiver verifies them (pure, stdlib).

Every POST of the webhook sink carries two headers besides the JSON body::

    X-Cable-Ingest-Signature: t=1714555800,v1=5f2b...c3a1   (64 lowercase hex digits)
    Idempotency-Key: <message id>:<sink name>

``t`` is when the request was signed, in Unix seconds; ``v1`` is the hex HMAC-SHA256, keyed with
the shared secret (its UTF-8 bytes), of the ASCII decimal ``t``, a full stop, and the raw body
bytes: ``HMAC(secret, b"1714555800." + body)``. The timestamp is inside the MAC, so it cannot be
changed without the secret. A later version may add other ``key=value`` elements (``v2=…``) or
several ``v1`` (during a change of secret): receivers ignore keys they do not know and accept the
request when any ``v1`` matches.

How a receiver verifies a request, step by step:

1. Read the raw body bytes exactly as received; verify before parsing the JSON (a parser and
   serialiser round trip changes the bytes and breaks the signature).
2. Split the ``X-Cable-Ingest-Signature`` value on ``,`` and each element on the first ``=``.
   Reject the request (answer 401) when there is no ``t`` (decimal integer) or no ``v1``.
3. Compute ``expected = hex(HMAC-SHA256(secret, t.encode("ascii") + b"." + body))`` and compare
   it with each ``v1`` in constant time (``hmac.compare_digest``, never ``==``). Reject (401)
   when none matches.
4. Replay protection, part one: reject (401) when ``t`` is more than the tolerance (300 s by
   default) before or after your clock. Keep clocks synchronised (NTP). A captured request
   cannot be replayed later than that, and its ``t`` cannot be refreshed without the secret.
5. Replay protection, part two: remember every ``Idempotency-Key`` accepted within the last
   tolerance window (a set with expiry, e.g. Redis ``SET key 1 NX EX 300``); a request whose key
   was already seen in the window is a replay or a redelivery: answer 2xx and do nothing more.
   The key is the same on every redelivery of one notification (each retry is signed anew, with
   a fresh ``t``), so a receiver that must act at most once keeps the keys for longer than the
   window, as long as it cares about duplicates (the body's ``delivery_key`` is the same value).
6. Answer 2xx once the notification is safely taken. The sender retries on 408, 429 (honouring
   ``Retry-After``, in seconds or an HTTP date), 5xx and network errors, and gives up on any other
   4xx, so answer 401/400 only for requests that must never be sent again as they are.

In Python, steps 2 to 4 are :func:`verify`::

    from worker.routing.signing import SignatureError, verify
    try:
        verify(secret, request.headers["X-Cable-Ingest-Signature"], raw_body, tolerance_s=300)
    except (KeyError, SignatureError):
        return 401
"""

from __future__ import annotations

import hashlib
import hmac
import time

from worker.errors import CableIngestError

SIGNATURE_HEADER = "X-Cable-Ingest-Signature"
"""Name of the header carrying the timestamp and the signature."""
IDEMPOTENCY_HEADER = "Idempotency-Key"
"""Name of the header carrying the delivery key (the same on every redelivery)."""
DEFAULT_TOLERANCE_S = 300
"""How far (seconds) a signature's timestamp may be from the receiver's clock, either way."""
SCHEME = "v1"
"""The signature scheme written by :func:`signature_header`: hex HMAC-SHA256."""


class SignatureError(CableIngestError, ValueError):
    """A signature header is malformed, outside the time tolerance, or does not match the body."""


def _key(secret: bytes | str) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not key:
        raise SignatureError("the signing secret is empty")
    return key


def sign(secret: bytes | str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body``, keyed with ``secret``."""
    message = f"{int(timestamp)}.".encode("ascii") + body
    return hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def signature_header(secret: bytes | str, body: bytes, now: float | None = None) -> str:
    """The ``X-Cable-Ingest-Signature`` value for ``body``: ``t=<unix seconds>,v1=<hex>``.

    ``now`` (Unix seconds) defaults to the current time.
    """
    timestamp = int(time.time() if now is None else now)
    return f"t={timestamp},{SCHEME}={sign(secret, timestamp, body)}"


def parse_header(header_value: str) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures of a header value; SignatureError if malformed.

    Unknown ``key=value`` elements are ignored (forward compatibility).
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for element in header_value.split(","):
        key, sep, value = element.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {SIGNATURE_HEADER}: an element has no '='")
        if key == "t":
            if timestamp is not None or not (value.isascii() and value.isdigit()):
                raise SignatureError(f"malformed {SIGNATURE_HEADER}: t must be one integer")
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value.lower())
    if timestamp is None:
        raise SignatureError(f"malformed {SIGNATURE_HEADER}: no timestamp (t=)")
    if not signatures:
        raise SignatureError(f"malformed {SIGNATURE_HEADER}: no {SCHEME} signature")
    return timestamp, signatures


def verify(
    secret: bytes | str,
    header_value: str,
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Return when ``header_value`` signs ``body`` with ``secret`` within ``tolerance_s``.

    Raises SignatureError when the header is malformed, no ``v1`` matches (compared in constant
    time), or the timestamp is more than ``tolerance_s`` seconds from ``now`` (default: the
    current time) either way. Messages never quote the secret or a signature.
    """
    timestamp, signatures = parse_header(header_value)
    expected = sign(secret, timestamp, body)
    matched = False
    for candidate in signatures:  # no early exit: every candidate is compared
        matched |= hmac.compare_digest(expected.encode("ascii"), candidate.encode("utf-8"))
    if not matched:
        raise SignatureError("signature mismatch: the body or the timestamp was altered")
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > tolerance_s:
        when = "old" if skew > 0 else "in the future"
        raise SignatureError(
            f"timestamp {timestamp} is {abs(skew):.0f} s {when}, beyond the tolerance of "
            f"{tolerance_s:g} s (a replayed or delayed request, or a skewed clock)"
        )
