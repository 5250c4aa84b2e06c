"""Redis Sentinel addresses: ``sentinel://`` URLs read once, and a client for the primary.

A Sentinel URL names the sentinels, not the Redis that holds the data; kombu's form, one URL per
sentinel joined by ``;``::

    sentinel://[USER:PASSWORD@]HOST[:PORT][/DB][?master_name=NAME];sentinel://HOST[:PORT]…

The port defaults to 26379 and the database to 0. The user and password in the URL are the
primary's (the data password), not the sentinels'. kombu reads the user, password and database
from one URL of the list at a time and refuses any query parameter, so
:meth:`SentinelURL.kombu_url` writes them on each: the database may be given on any one of the
URLs (or on several, alike), the same for the user info and ``master_name``. The master name (which group the
sentinels watch) and the sentinels' own password come from elsewhere too: the settings for the
broker, the sink's options for a Redis Streams sink.

Importing this module imports no Redis client (the settings read these URLs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

if TYPE_CHECKING:
    import redis

SCHEME = "sentinel"
DEFAULT_PORT = 26379
MASTER_NAME = "master_name"
SENTINEL_TIMEOUT_S = 5.0
"""Seconds to wait for one sentinel (to connect, then for each reply) before asking the next."""
_SEPARATOR = ";"


def is_sentinel(url: str) -> bool:
    """Whether ``url`` names Redis sentinels (``sentinel://``)."""
    return url.strip().lower().startswith(f"{SCHEME}://")


@dataclass(frozen=True, slots=True)
class SentinelURL:
    """A ``sentinel://`` URL, read: the sentinels in order, and what the URLs say of the primary."""

    sentinels: tuple[tuple[str, int], ...]
    db: int = 0
    userinfo: str = ""  # as written (percent-encoded), "" when none
    master_name: str | None = None

    @property
    def username(self) -> str | None:
        name = unquote(self.userinfo.partition(":")[0])
        return name or None

    @property
    def password(self) -> str | None:
        """The primary's password from the URL, if any."""
        user, colon, password = self.userinfo.partition(":")
        del user
        return unquote(password) if colon and password else None

    def kombu_url(self, password: str | None = None) -> str:
        """The URL as kombu's Sentinel transport reads it: the user info (with ``password``,
        when given, as the primary's) and the database on every URL of the list, no query (the
        master name goes into the transport options). kombu reads them from the first URL, and
        again from the next one each time it fails over along the list, which would otherwise
        drop the password and the database (even one given as ``Connection(password=…)``)."""
        login = self.userinfo
        if password is not None:
            login = f"{quote(self.username or '', safe='')}:{quote(password, safe='')}"
        at = f"{login}@" if login else ""
        parts = []
        for host, port in self.sentinels:
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            parts.append(f"{SCHEME}://{at}{where}/{self.db}")
        return _SEPARATOR.join(parts)


def parse(url: str) -> SentinelURL:
    """Read a ``sentinel://`` URL (several joined by ``;``); ValueError saying what is expected."""
    sentinels: list[tuple[str, int]] = []
    dbs: set[int] = set()
    logins: set[str] = set()
    names: set[str] = set()
    for part in url.strip().split(_SEPARATOR):
        if not part.strip():
            continue
        host, port, db, login, query = _part(part.strip())
        sentinels.append((host, port))
        dbs.update([db] if db is not None else [])
        logins.update([login] if login else [])
        for key, value in query:
            if key != MASTER_NAME or not value:
                raise ValueError(
                    f"a sentinel:// URL whose only parameter is {MASTER_NAME}=NAME, not {key}="
                )
            names.add(value)
    if not sentinels:
        raise ValueError("at least one sentinel://HOST[:PORT]")
    for found, what in ((dbs, "database"), (logins, "user and password"), (names, MASTER_NAME)):
        if len(found) > 1:
            raise ValueError(f"one {what} for every sentinel:// URL of the list, not several")
    return SentinelURL(
        tuple(sentinels),
        db=next(iter(dbs), 0),
        userinfo=next(iter(logins), ""),
        master_name=next(iter(names), None),
    )


def _part(part: str) -> tuple[str, int, int | None, str, list[tuple[str, str]]]:
    """One ``sentinel://…`` URL: host, port, database (None: not given), user info, query."""
    parts = urlsplit(part)
    if parts.scheme.lower() != SCHEME or not parts.hostname:
        raise ValueError("sentinel://HOST[:PORT][/DB] for each sentinel")
    port = parts.port or DEFAULT_PORT  # ValueError on a malformed port
    path = parts.path.strip("/")
    if path and not (path.isascii() and path.isdigit()):
        raise ValueError("a database number after the sentinel's address (sentinel://HOST:PORT/0)")
    login = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    query = parse_qsl(parts.query, keep_blank_values=True)
    return parts.hostname, port, int(path) if path else None, login, query


def sentinel_kwargs(password: str | None) -> dict[str, Any]:
    """How to talk to each sentinel (redis-py's and kombu's ``sentinel_kwargs``): its password,
    if it has one; short timeouts, so that a sentinel that hangs is passed over; and no retry:
    the next sentinel is the retry. (redis-py's default client retries three times with
    backoff: with the first sentinel of the list down, ``status`` took 24.7 s instead of 2.9.)"""
    from redis.backoff import NoBackoff  # noqa: PLC0415 - the settings import this module
    from redis.retry import Retry  # noqa: PLC0415 - the same

    asked: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),
    }
    if password:
        asked["password"] = password
    return asked


def master_client(
    address: SentinelURL,
    master_name: str,
    *,
    password: str | None = None,
    sentinel_password: str | None = None,
    **options: Any,
) -> redis.Redis:
    """A client of the primary the sentinels of ``address`` name for ``master_name``, found
    again on each new connection (after a failover). ``password`` is the primary's (else the
    URL's); ``sentinel_password`` the sentinels' own (``requirepass`` in sentinel.conf);
    ``options`` go to each connection to the primary (timeouts, retry)."""
    from redis.sentinel import Sentinel  # noqa: PLC0415 - the settings import this module

    asked = sentinel_kwargs(sentinel_password)
    sentinels = Sentinel(list(address.sentinels), sentinel_kwargs=asked)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    client: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]  # the same
        master_name,
        db=address.db,
        username=address.username,
        password=password or address.password,
        **options,
    )
    return client


def close(client: redis.Redis) -> None:
    """Close ``client`` and, for a Sentinel-managed one, its connections to the sentinels."""
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    client.close()
    for sentinel in getattr(manager, "sentinels", ()):
        sentinel.close()
