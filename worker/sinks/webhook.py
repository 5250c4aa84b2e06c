"""Webhook notification sink: each notification POSTed as signed JSON (httpx, pooled).

The body is the notification document (``schemas/notification.schema.json``) as orjson bytes;
the headers are ``Content-Type: application/json``, ``X-Cable-Ingest-Signature`` (see
:mod:`worker.routing.signing`, which also tells receivers how to verify it), ``Idempotency-Key`` (the
delivery key, the same on every redelivery), ``User-Agent: cable-ingest/<version>`` and the
configured static headers. One ``httpx.Client`` per process, made on the first send (a forked
child makes its own), keeps connections open for reuse. Outcomes: 2xx delivered; 408, 429 (with
its Retry-After), 5xx and network errors are transient; any other status is permanent
(redirects are not followed: the configured URL should be the final one). Error messages name
the sink, the URL (password redacted) and the status, never the body or the secret.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from worker import __version__, processes
from worker.errors import ConfigurationError, PermanentSinkError, TransientSinkError
from worker.routing.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signature_header
from worker.settings import read_secret, redact_url
from worker.sinks.base import check_options

MAX_RETRY_AFTER_S = 3600.0
"""Longest wait taken from a Retry-After header; a longer one is cut to this."""
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "Content-Type",
        "Content-Length",
        "Host",
        "Transfer-Encoding",
        "User-Agent",
        IDEMPOTENCY_HEADER,
        SIGNATURE_HEADER,
    )
)
"""Headers set by the sink itself, which ``options.headers`` may not set (compared lowercase)."""
USER_AGENT = f"cable-ingest/{__version__}"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or an HTTP date), at most
    :data:`MAX_RETRY_AFTER_S`, never negative; None when absent or unparsable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" in the date: treat it as UTC, as HTTP dates are
        return None
    delay = when.timestamp() - (time.time() if now is None else now)
    return min(max(delay, 0.0), MAX_RETRY_AFTER_S)


class WebhookNotifier:
    """POSTs notifications to one URL (``schemas/sinks/webhook.schema.json``)."""

    def __init__(
        self,
        name: str,
        url: str,
        secret: str,
        *,
        timeout_s: float = 5.0,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 4,
    ) -> None:
        self.name, self.url, self.timeout_s = name, url, float(timeout_s)
        self.headers = dict(headers or {})
        self.max_connections = max_connections
        self._secret = secret
        self._client: httpx.Client | None = None
        processes.track(self)

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self.name!r}, url={redact_url(self.url)!r})"

    @property
    def _where(self) -> str:
        return f"webhook sink {self.name} ({redact_url(self.url)})"

    def _http(self) -> httpx.Client:
        """The client of this process, made on first use (a forked child makes its own)."""
        if self._client is not None:
            return self._client
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.timeout_s),
            limits=httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_connections,
            ),
            follow_redirects=False,
        )
        return self._client

    def send(self, notification: Mapping[str, Any], key: str) -> None:
        """POST one notification; TransientSinkError or PermanentSinkError when not taken."""
        body = orjson.dumps(notification if isinstance(notification, dict) else dict(notification))
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            IDEMPOTENCY_HEADER: key,
            SIGNATURE_HEADER: signature_header(self._secret, body),
        }
        try:
            response = self._http().post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            what = f"timed out after {self.timeout_s:g} s ({type(exc).__name__})"
            raise TransientSinkError(f"{self._where}: {what}") from exc
        except httpx.TransportError as exc:
            raise TransientSinkError(f"{self._where}: {type(exc).__name__}: {exc}") from exc
        except httpx.RequestError as exc:  # a reply that cannot be decoded, and the like
            raise TransientSinkError(f"{self._where}: {type(exc).__name__}") from exc
        except httpx.InvalidURL:
            raise PermanentSinkError(f"{self._where}: invalid URL") from None
        self._check(response)

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        where = f"{self._where}: HTTP {status}"
        if status == 429:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            shown = f", retry after {wait:g} s" if wait is not None else ""
            raise TransientSinkError(f"{where} (too many requests{shown})", retry_after=wait)
        if status == 408 or status >= 500:
            raise TransientSinkError(where)
        if 300 <= status < 400:
            raise PermanentSinkError(f"{where} (a redirect, not followed: fix the url)")
        raise PermanentSinkError(where)

    def close(self) -> None:
        """Close the client and its pooled connections, if any."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def after_fork(self) -> None:
        """In a forked child: the parent's connections are not ours to use or close."""
        self._client = None


def build(name: str, options: Mapping[str, Any]) -> WebhookNotifier:
    """The webhook notifier of sink ``name``: options checked, secret read, nothing connected.

    Raises ConfigurationError naming the key (``sinks.<name>.options.url: …``).
    """
    check_options("webhook", name, options)
    where = f"sinks.{name}.options"
    url = str(options["url"])
    try:
        port = httpx.URL(url).port
    except httpx.InvalidURL:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(f"{where}.url: not a valid URL: {redact_url(url)}")
    headers: Mapping[str, str] = options.get("headers", {})
    for header in headers:
        if header.lower() in RESERVED_HEADERS:
            raise ConfigurationError(f"{where}.headers.{header}: set by the sink, cannot be set")
    if "secret_env" in options:
        secret = read_secret(env=options["secret_env"], what=f"{where}.secret_env")
    else:
        secret = read_secret(file=options["secret_file"], what=f"{where}.secret_file")
    return WebhookNotifier(
        name,
        url,
        secret,
        timeout_s=options.get("timeout_s", 5),
        headers=headers,
        max_connections=options.get("max_connections", 4),
    )
