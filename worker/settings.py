"""Configuration: one frozen value, read from the environment once.

This is the only module that reads ``os.environ``. Every variable is prefixed ``CABLE_INGEST_``
and optional; an empty value counts as unset (so ``X=${X:-}`` in a compose file means "default").
A malformed value raises :class:`~worker.errors.ConfigurationError` naming the variable, what was
expected and what arrived. Nothing here connects to anything or touches the disk.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from . import sentinel
from .errors import ConfigurationError

PREFIX = "CABLE_INGEST_"
BROKER_SCHEMES = ("filesystem", "memory", "redis", "rediss", "sentinel")
DATABASE_SCHEMES = ("sqlite", "postgresql")
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd"})
_FAILOVER = re.compile(r";(?=[A-Za-z][A-Za-z0-9+.-]*://)")
_SIZE = re.compile(r"([0-9]+)\s*(B|KIB|MIB|GIB)?")
_UNITS = {None: 1, "B": 1, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}

T = TypeVar("T")


def redact_url(url: str) -> str:
    """Return ``url`` with any password (in the user info or a query parameter) replaced by ***.

    ``redis://:secret@host:6379/0`` becomes ``redis://:***@host:6379/0``; several URLs joined by
    ``;`` (Celery's failover list) are redacted one by one. An unparsable URL keeps only its scheme.
    """
    parts_list = _FAILOVER.split(url)
    if len(parts_list) > 1:
        return ";".join(redact_url(part) for part in parts_list)
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        scheme, sep, _rest = url.partition("://")
        return f"{scheme}://***" if sep else "***"
    netloc, query = parts.netloc, parts.query
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hostport}"
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key.lower() in _SECRET_QUERY_KEYS for key, _ in pairs):
        redacted = [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs]
        query = urlencode(redacted, safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def read_secret(*, env: str | None = None, file: str | None = None, what: str = "secret") -> str:
    """A secret from an environment variable or a file (one of them), never from a config file.

    Surrounding whitespace (a file's final newline) is stripped. Raises ConfigurationError,
    naming ``what`` and where it looked (never the value), when it is missing or empty.
    """
    if (env is None) == (file is None):
        raise ConfigurationError(f"{what}: give exactly one of an env var or a file")
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigurationError(f"{what}: environment variable {env} is unset or empty")
        return value
    assert file is not None
    try:
        value = Path(file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{what}: cannot read {file}: {exc}") from None
    if not value:
        raise ConfigurationError(f"{what}: {file} is empty")
    return value


def _default_database_url(var_dir: Path) -> str:
    return f"sqlite:///{(var_dir / 'cable-ingest.db').as_posix()}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of cable-ingest, with its default; build it with :meth:`from_env`."""

    broker_url: str = "filesystem://localhost/"  # kombu warns when the host is missing
    # a Redis broker's password (else the URL's), in the variable or a file (worker/sentinel.py)
    broker_password: str = ""
    broker_password_file: Path | None = None
    # sentinel:// brokers: the primary's name (else the URL's master_name), the sentinels' password
    sentinel_master: str = ""
    sentinel_password: str = ""
    sentinel_password_file: Path | None = None
    database_url: str = ""  # empty: SQLite under var_dir, filled in by __post_init__
    var_dir: Path = Path("var")
    batch_size: int = 100
    max_input_bytes: int = 1024 * 1024
    high_water_mark: int = 50_000
    max_deliveries: int = 5
    sink_max_retries: int = 8
    worker_concurrency: int = 2
    prefetch_multiplier: int = 1
    # Redis hands a message out again when it was held this long unacknowledged: longer than
    # a live worker may hold one (worker/queue/policy.py longest_hold: 690 s by default)
    visibility_timeout: int = 900
    task_time_limit: int = 300
    config_file: Path | None = None  # sinks and routing rules (TOML); None: storage only
    metrics_dir: Path | None = None  # the workers' counters; None: var_dir/metrics
    # while work waits, a worker that acknowledged nothing for this long is not ready
    ready_window_s: int = 120
    # the broker or the database not answering: commands retry this long, then exit 69
    connect_wait_s: int = 60
    log_format: str = "auto"
    log_level: str = "INFO"
    # cable-ingest serve (worker/http)
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    http_max_body_bytes: int = 64 * 1024 * 1024  # a request body; larger: 413 while streaming
    http_read_timeout_s: int = 10  # a client sending nothing for this long is cut off (408)
    http_header_timeout_s: int = 10  # a request head not complete this long after it began: 408
    http_max_inputs: int = 10_000  # NDJSON lines, form files or archive members per request
    http_max_expanded_bytes: int = 256 * 1024 * 1024  # archives of one request, unpacked
    group_commit_ms: int = 5  # single-cable requests wait this long to share a queue message
    token_cache_s: int = 5  # a revoked token may work this long on a server that saw it

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(self, "database_url", _default_database_url(self.var_dir))
        if self.metrics_dir is None:
            object.__setattr__(self, "metrics_dir", self.var_dir / "metrics")
        _check_broker_secrets(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every ``CABLE_INGEST_*`` variable of ``environ`` (default: ``os.environ``)."""
        env = _Env(os.environ if environ is None else environ)
        default = cls()
        return cls(
            broker_url=env.get("BROKER_URL", _broker_url, default.broker_url),
            broker_password=env.get("BROKER_PASSWORD", str, ""),
            broker_password_file=env.get("BROKER_PASSWORD_FILE", Path, None),
            sentinel_master=env.get("SENTINEL_MASTER", str, ""),
            sentinel_password=env.get("SENTINEL_PASSWORD", str, ""),
            sentinel_password_file=env.get("SENTINEL_PASSWORD_FILE", Path, None),
            database_url=env.get("DATABASE_URL", _database_url, ""),
            var_dir=env.get("VAR_DIR", Path, default.var_dir),
            batch_size=env.get("BATCH_SIZE", _positive, default.batch_size),
            max_input_bytes=env.get("MAX_INPUT_BYTES", _byte_size, default.max_input_bytes),
            high_water_mark=env.get("HIGH_WATER_MARK", _positive, default.high_water_mark),
            max_deliveries=env.get("MAX_DELIVERIES", _positive, default.max_deliveries),
            sink_max_retries=env.get("SINK_MAX_RETRIES", _non_negative, default.sink_max_retries),
            worker_concurrency=env.get("WORKER_CONCURRENCY", _positive, default.worker_concurrency),
            prefetch_multiplier=env.get(
                "PREFETCH_MULTIPLIER", _positive, default.prefetch_multiplier
            ),
            visibility_timeout=env.get("VISIBILITY_TIMEOUT", _positive, default.visibility_timeout),
            task_time_limit=env.get("TASK_TIME_LIMIT", _positive, default.task_time_limit),
            config_file=env.get("CONFIG", Path, default.config_file),
            metrics_dir=env.get("METRICS_DIR", Path, None),
            ready_window_s=env.get("READY_WINDOW_S", _positive, default.ready_window_s),
            connect_wait_s=env.get("CONNECT_WAIT_S", _non_negative, default.connect_wait_s),
            log_format=env.get("LOG_FORMAT", _choice(LOG_FORMATS, str.lower), default.log_format),
            log_level=env.get("LOG_LEVEL", _choice(LOG_LEVELS, str.upper), default.log_level),
            http_host=env.get("HTTP_HOST", str, default.http_host),
            http_port=env.get("HTTP_PORT", _port, default.http_port),
            http_max_body_bytes=env.get(
                "HTTP_MAX_BODY_BYTES", _byte_size, default.http_max_body_bytes
            ),
            http_read_timeout_s=env.get(
                "HTTP_READ_TIMEOUT_S", _positive, default.http_read_timeout_s
            ),
            http_header_timeout_s=env.get(
                "HTTP_HEADER_TIMEOUT_S", _positive, default.http_header_timeout_s
            ),
            http_max_inputs=env.get("HTTP_MAX_INPUTS", _positive, default.http_max_inputs),
            http_max_expanded_bytes=env.get(
                "HTTP_MAX_EXPANDED_BYTES", _byte_size, default.http_max_expanded_bytes
            ),
            group_commit_ms=env.get("GROUP_COMMIT_MS", _non_negative, default.group_commit_ms),
            token_cache_s=env.get("TOKEN_CACHE_S", _non_negative, default.token_cache_s),
        )

    def to_env(self) -> dict[str, str]:
        """The ``CABLE_INGEST_*`` variables that :meth:`from_env` reads back as these settings
        (for a child process: the worker processes ``run`` starts)."""
        values: dict[str, object] = {
            "BROKER_URL": self.broker_url,
            "BROKER_PASSWORD": self.broker_password or None,
            "BROKER_PASSWORD_FILE": self.broker_password_file,
            "SENTINEL_MASTER": self.sentinel_master or None,
            "SENTINEL_PASSWORD": self.sentinel_password or None,
            "SENTINEL_PASSWORD_FILE": self.sentinel_password_file,
            "DATABASE_URL": self.database_url,
            "VAR_DIR": self.var_dir,
            "BATCH_SIZE": self.batch_size,
            "MAX_INPUT_BYTES": self.max_input_bytes,
            "HIGH_WATER_MARK": self.high_water_mark,
            "MAX_DELIVERIES": self.max_deliveries,
            "SINK_MAX_RETRIES": self.sink_max_retries,
            "WORKER_CONCURRENCY": self.worker_concurrency,
            "PREFETCH_MULTIPLIER": self.prefetch_multiplier,
            "VISIBILITY_TIMEOUT": self.visibility_timeout,
            "TASK_TIME_LIMIT": self.task_time_limit,
            "CONFIG": self.config_file,
            "METRICS_DIR": self.metrics_dir,
            "READY_WINDOW_S": self.ready_window_s,
            "CONNECT_WAIT_S": self.connect_wait_s,
            "LOG_FORMAT": self.log_format,
            "LOG_LEVEL": self.log_level,
        }
        return {PREFIX + k: str(v) for k, v in values.items() if v is not None}

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.redacted().items())
        return f"Settings({shown})"

    def redacted(self) -> dict[str, str | int]:
        """Return the settings for display (logs, ``--show-config``) with URL passwords as ***."""
        shown: dict[str, str | int] = {}
        for name, value in asdict(self).items():
            if isinstance(value, Path):
                shown[name] = str(value)
            elif value is None:
                shown[name] = ""
            elif name.endswith("_url"):
                shown[name] = redact_url(value)
            elif name.endswith("_password"):
                shown[name] = "***" if value else ""
            else:
                shown[name] = value
        return shown


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._environ.get(PREFIX + name, "")
        if not raw.strip():
            return default
        try:
            return parse(raw.strip())
        except ValueError as exc:
            shown = redact_url(raw) if name.endswith("_URL") else raw
            raise ConfigurationError(f"{PREFIX}{name}: expected {exc}, got {shown!r}") from None


def _integer(raw: str, minimum: int, expected: str) -> int:
    if not raw.isascii() or not raw.isdigit() or int(raw) < minimum:
        raise ValueError(expected)
    return int(raw)


def _positive(raw: str) -> int:
    return _integer(raw, 1, "a positive integer")


def _non_negative(raw: str) -> int:
    return _integer(raw, 0, "a non-negative integer")


def _port(raw: str) -> int:
    port = _integer(raw, 0, "a TCP port (0-65535)")
    if port > 65535:
        raise ValueError("a TCP port (0-65535)")
    return port


def _byte_size(raw: str) -> int:
    match = _SIZE.fullmatch(raw.upper())
    size = int(match[1]) * _UNITS[match[2]] if match else 0
    if size < 1:
        raise ValueError("a positive number of bytes (e.g. 1048576 or 1MiB)")
    return size


def _choice(allowed: tuple[str, ...], normalise: Callable[[str], str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = normalise(raw)
        if value not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return value

    return parse


def _url(raw: str, schemes: tuple[str, ...]) -> str:
    for url in _FAILOVER.split(raw):
        scheme, sep, _rest = url.strip().partition("://")
        if not sep or scheme.lower().partition("+")[0] not in schemes:
            raise ValueError("a URL starting with " + ", ".join(s + "://" for s in schemes))
    return raw


def _broker_url(raw: str) -> str:
    return _url(raw, BROKER_SCHEMES)


def _database_url(raw: str) -> str:
    return _url(raw, DATABASE_SCHEMES)


def _has_password(url: str) -> bool:
    try:
        return any(urlsplit(part).password for part in _FAILOVER.split(url))
    except ValueError:
        return False  # not a URL kombu can read either: it says so on first use


def _check_broker_secrets(settings: Settings) -> None:
    """The broker's passwords each come from one place; a sentinel:// URL is readable and
    names its master once (in the URL or CABLE_INGEST_SENTINEL_MASTER). ConfigurationError."""
    url = settings.broker_url
    for name, value, file in (
        ("BROKER_PASSWORD", settings.broker_password, settings.broker_password_file),
        ("SENTINEL_PASSWORD", settings.sentinel_password, settings.sentinel_password_file),
    ):
        if value and file is not None:
            raise ConfigurationError(f"{PREFIX}{name} and {PREFIX}{name}_FILE: give one of them")
    if _has_password(url) and (settings.broker_password or settings.broker_password_file):
        raise ConfigurationError(
            f"{PREFIX}BROKER_URL has a password and {PREFIX}BROKER_PASSWORD(_FILE) another: give one"
        )
    if not sentinel.is_sentinel(url):
        return
    try:
        address = sentinel.parse(url)
    except ValueError as exc:
        raise ConfigurationError(f"{PREFIX}BROKER_URL: expected {exc}, got {redact_url(url)!r}") from None
    if address.master_name and settings.sentinel_master:
        raise ConfigurationError(
            f"{PREFIX}BROKER_URL names the master ({sentinel.MASTER_NAME}=) and "
            f"{PREFIX}SENTINEL_MASTER too: give one"
        )
    if not (address.master_name or settings.sentinel_master):
        raise ConfigurationError(
            f"{PREFIX}BROKER_URL is a sentinel:// URL: name the primary the sentinels watch, "
            f"{PREFIX}SENTINEL_MASTER=NAME or ?{sentinel.MASTER_NAME}=NAME in the URL"
        )
