"""Redis Streams notification sink: each notification XADDed to one stream, once.

An entry has four fields: ``key`` (the delivery key), ``reference_id``, ``classification`` (empty
when the cable has none) and ``notification`` (the document of ``schemas/notification.schema.json``
as orjson bytes). The stream is trimmed with ``MAXLEN ~ maxlen``: Redis drops only whole nodes,
so it may hold up to ``stream-node-max-entries`` (100 by default) entries more than ``maxlen``.

A stream cannot refuse a duplicate by itself, so one Lua script (atomic on the server) checks a
guard key ``<stream>:sent:<delivery key>``, adds the entry and sets the guard (holding the entry
id, expiring after :data:`GUARD_TTL_S`) together: a redelivery within that time adds nothing, and
a failed XADD leaves no guard behind. Both keys are named in the script call; they are not
hash-tagged, so a Redis Cluster is not supported (one server or a Sentinel-managed primary is).
A ``sentinel://`` URL (:mod:`worker.sentinel`) names the sentinels; the sink writes to the primary
they name for ``master_name`` (an option, or ``?master_name=`` in the URL), asking them again on
each new connection, so that it follows a failover.

One client per process, made on the first send (a forked child makes its own). Outcomes: lost or
refused connections, timeouts, a loading, read-only or out-of-memory server are transient;
refused authentication, missing permissions and any other error reply (``WRONGTYPE``: the
stream's key holds something else) are permanent. Messages name the sink and the URL with its
password redacted, and never contain the password.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from worker import processes, sentinel
from worker.errors import ConfigurationError, PermanentSinkError, SinkError, TransientSinkError
from worker.settings import read_secret, redact_url
from worker.sinks.base import check_options

GUARD_TTL_S = 7 * 24 * 3600
"""Seconds a guard key lives: how long a redelivered notification is recognised as sent."""
ADD_ONCE = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  return false
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[2], id, 'EX', ARGV[2])
return id
"""
"""KEYS: the stream, the guard; ARGV: maxlen, the guard's TTL, then field, value, ...; returns
the new entry id, or nil when the guard exists (nothing added)."""
_TRANSIENT = (
    redis.ConnectionError,  # refused, reset, DNS, a server still loading its data
    redis.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica during a failover
    redis.exceptions.OutOfMemoryError,  # consumers may trim, memory may free up
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
)


def guard_key(stream: str, key: str) -> str:
    """The key that marks delivery ``key`` as added to ``stream``."""
    return f"{stream}:sent:{key}"


class RedisStreamNotifier:
    """Adds notifications to one Redis stream (``schemas/sinks/redis-stream.schema.json``)."""

    def __init__(
        self,
        name: str,
        url: str,
        stream: str,
        *,
        password: str | None = None,
        maxlen: int = 100_000,
        timeout_s: float = 5.0,
        master_name: str | None = None,
        sentinel_password: str | None = None,
    ) -> None:
        self.name, self.url, self.stream = name, url, stream
        self.maxlen, self.timeout_s = int(maxlen), float(timeout_s)
        self._password = password
        self._master_name, self._sentinel_password = master_name, sentinel_password
        if sentinel.is_sentinel(url):
            in_url = sentinel.parse(url).password or ""
        else:
            in_url = unquote(urlsplit(url).password or "")
        secrets = (password, in_url, sentinel_password)
        self._secrets = tuple(secret for secret in secrets if secret)
        self._client: redis.Redis | None = None
        self._script: Script | None = None
        processes.track(self)

    def __repr__(self) -> str:
        return f"RedisStreamNotifier(name={self.name!r}, url={redact_url(self.url)!r})"

    @property
    def _where(self) -> str:
        return f"redis-stream sink {self.name} ({redact_url(self.url)}, stream {self.stream!r})"

    def _add_once(self) -> Script:
        """The script bound to this process's client, made on first use."""
        if self._script is not None:
            return self._script
        extra: dict[str, Any] = {} if self._password is None else {"password": self._password}
        options: dict[str, Any] = {
            "socket_timeout": self.timeout_s,
            "socket_connect_timeout": self.timeout_s,
            "retry": Retry(NoBackoff(), 1),  # once more at once: a stale pooled connection
        }
        if sentinel.is_sentinel(self.url):
            address = sentinel.parse(self.url)
            self._client = sentinel.master_client(
                address,
                address.master_name or self._master_name or "",
                sentinel_password=self._sentinel_password,
                **options,
                **extra,
            )
        else:
            self._client = redis.Redis.from_url(self.url, **options, **extra)
        self._script = self._client.register_script(ADD_ONCE)
        return self._script

    def send(self, notification: Mapping[str, Any], key: str) -> None:
        """Add one entry unless ``key`` was added before; a SinkError when Redis does not take it."""
        document = notification if isinstance(notification, dict) else dict(notification)
        fields: list[str | bytes] = [
            "key",
            key,
            "reference_id",
            str(document.get("reference_id") or ""),
            "classification",
            str(document.get("classification") or ""),
            "notification",
            orjson.dumps(document),
        ]
        args: list[str | bytes | int] = [self.maxlen, GUARD_TTL_S, *fields]
        try:
            self._add_once()(keys=[self.stream, guard_key(self.stream, key)], args=args)
        except redis.RedisError as exc:
            raise self._error(exc) from None

    def _error(self, exc: redis.RedisError) -> SinkError:
        """The sink error for a Redis error, its text scrubbed of the password."""
        text = f"{type(exc).__name__}: {exc}"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        where = f"{self._where}: {text}"
        if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError):
            return PermanentSinkError(f"{where} (check the user name and password)")
        if isinstance(exc, redis.exceptions.NoPermissionError):
            return PermanentSinkError(f"{where} (the ACL user may not run this)")
        if isinstance(exc, _TRANSIENT):
            return TransientSinkError(where)
        if isinstance(exc, redis.ResponseError):
            if str(exc).startswith("BUSY"):  # another script is running
                return TransientSinkError(where)
            return PermanentSinkError(where)
        return TransientSinkError(where)  # a garbled reply and the like

    def close(self) -> None:
        """Close the client and its pooled connections, if any."""
        client, self._client, self._script = self._client, None, None
        if client is not None:
            sentinel.close(client)

    def after_fork(self) -> None:
        """In a forked child: the parent's connections are not ours to use or close."""
        self._client = self._script = None


def _url_has_password(url: str) -> bool:
    if sentinel.is_sentinel(url):
        return sentinel.parse(url).password is not None
    parts = urlsplit(url)
    return bool(parts.password) or "password" in parse_qs(parts.query)


def _sentinel_options(url: str, options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """For a ``sentinel://`` URL: the master name (the option or the URL's) and the sentinels'
    password; ConfigurationError naming the key."""
    if not sentinel.is_sentinel(url):
        extra = [key for key in options if key == "master_name" or key.startswith("sentinel_")]
        if extra:
            raise ConfigurationError(f"{where}.{extra[0]}: only for a sentinel:// url")
        return {}
    in_url = sentinel.parse(url).master_name
    if in_url and "master_name" in options:
        raise ConfigurationError(
            f"{where}: the URL names the master and master_name another; give one"
        )
    if not (in_url or options.get("master_name")):
        raise ConfigurationError(
            f"{where}.master_name: a sentinel:// url needs the name of the primary the "
            "sentinels watch (master_name, or ?master_name= in the URL)"
        )
    found: dict[str, Any] = {"master_name": options.get("master_name")}
    if "sentinel_password_env" in options:
        env = options["sentinel_password_env"]
        found["sentinel_password"] = read_secret(env=env, what=f"{where}.sentinel_password_env")
    elif "sentinel_password_file" in options:
        file = options["sentinel_password_file"]
        found["sentinel_password"] = read_secret(file=file, what=f"{where}.sentinel_password_file")
    return found


def build(name: str, options: Mapping[str, Any]) -> RedisStreamNotifier:
    """The Redis Streams notifier of sink ``name``: options checked, password read, nothing
    connected. Raises ConfigurationError naming the key (``sinks.<name>.options.url: …``)."""
    check_options("redis-stream", name, options)
    where = f"sinks.{name}.options"
    url = str(options["url"])
    try:
        has_password = _url_has_password(url)
        port = None if sentinel.is_sentinel(url) else urlsplit(url).port
    except ValueError as exc:
        raise ConfigurationError(f"{where}.url: not a valid URL ({exc}): {redact_url(url)}") from None
    found = _sentinel_options(url, options, where)
    if port == 0:
        raise ConfigurationError(f"{where}.url: port 0 is not valid: {redact_url(url)}")
    password: str | None = None
    if "password_env" in options or "password_file" in options:
        if has_password:
            raise ConfigurationError(
                f"{where}: the URL has a password and password_env or password_file gives "
                "another; give one"
            )
        if "password_env" in options:
            password = read_secret(env=options["password_env"], what=f"{where}.password_env")
        else:
            password = read_secret(file=options["password_file"], what=f"{where}.password_file")
    return RedisStreamNotifier(
        name,
        url,
        str(options["stream"]),
        password=password,
        maxlen=options.get("maxlen", 100_000),
        timeout_s=options.get("timeout_s", 5),
        **found,
    )
