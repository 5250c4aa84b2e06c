"""Structured logging: structlog for our code, the stdlib root logger bridged into the same format.

structlog events skip the stdlib entirely (a level-filtered bound logger, cached on first use,
context from contextvars, rendered by orjson) and are written under the stdlib handler's lock, so
Celery's, kombu's and SQLAlchemy's records (formatted by ``ProcessorFormatter`` with the same
processors) share one stream without interleaving. Every event, from either side, goes through
``_redact`` last: URL passwords and secret-named keys are masked, cable-body keys are dropped.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from typing import IO, Any, cast

import orjson
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from .errors import ConfigurationError
from .settings import LOG_FORMATS, LOG_LEVELS, redact_url

__all__ = ["bind", "clear", "configure_logging", "get_logger"]

#: Third-party loggers kept at WARNING unless the level is DEBUG (they are chatty at INFO).
NOISY_LOGGERS = (
    "alembic",
    "amqp",
    "kombu",
    "redis",
    "urllib3",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
)
#: Keys whose value is a cable (or part of one): dropped from every event, never rendered.
DROPPED_KEYS = frozenset({"text", "body", "raw", "payload", "record", "paragraphs"})
_SECRET_KEY = re.compile("password|secret|token|authorization", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_KEEP, _MASK = 0, 1
_key_actions: dict[str, int] = {}  # key name -> _KEEP or _MASK, memoised (key names are few)


def _redact_text(value: str) -> str:
    """Mask the passwords of every URL in ``value`` (a bare URL or a message that embeds one)."""
    return _URL.sub(lambda match: redact_url(match[0]), value)


def _redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Drop cable-body keys, mask secret-named keys and passwords in URLs (top-level values)."""
    for key in DROPPED_KEYS.intersection(event_dict):
        del event_dict[key]
    for key, value in event_dict.items():
        action = _key_actions.get(key)
        if action is None:
            action = _MASK if _SECRET_KEY.search(key) else _KEEP
            if len(_key_actions) < 4096:
                _key_actions[key] = action
        if action == _MASK:
            event_dict[key] = "***"
        elif isinstance(value, str) and "://" in value:
            event_dict[key] = _redact_text(value)
    return event_dict


def _add_logger_name(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Add ``logger``: the stdlib record's name, or the name given to :func:`get_logger`."""
    record = event_dict.get("_record")
    name = record.name if record is not None else getattr(_logger, "name", None)
    if name:
        event_dict["logger"] = name
    return event_dict


def _dumps(obj: Any, default: Callable[[Any], Any] | None = None, **_kw: Any) -> str:
    return orjson.dumps(obj, default=default, option=orjson.OPT_NON_STR_KEYS).decode()


class _Handler(logging.StreamHandler[IO[str]]):
    """The root handler installed by :func:`configure_logging` (found again by its type)."""


class _Sink:
    """structlog's final logger: writes each rendered line to the handler's stream, under its lock."""

    __slots__ = ("_handler", "name")

    def __init__(self, handler: _Handler, name: str | None) -> None:
        self._handler = handler
        self.name = name

    def msg(self, message: str) -> None:
        handler = self._handler
        handler.acquire()
        try:
            handler.stream.write(message + "\n")
            handler.stream.flush()
        finally:
            handler.release()

    log = debug = info = warn = warning = error = err = critical = exception = fatal = msg


class _SinkFactory:
    def __init__(self, handler: _Handler) -> None:
        self._handler = handler

    def __call__(self, *args: Any) -> _Sink:
        return _Sink(self._handler, str(args[0]) if args and args[0] is not None else None)


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream without isatty
        return False


def configure_logging(
    log_format: str = "auto", log_level: str = "INFO", stream: IO[str] | None = None
) -> None:
    """Configure structlog and the stdlib root logger once per process.

    Idempotent: calling it again reconfigures (replacing the handler it installed before), never
    duplicates handlers. Loggers already used keep the configuration they were first used with
    (``cache_logger_on_first_use``), so call it at start-up, before the first event.
    """
    log_format, log_level = log_format.lower(), log_level.upper()
    if log_format not in LOG_FORMATS:
        raise ConfigurationError(f"log format: expected one of {LOG_FORMATS}, got {log_format!r}")
    if log_level not in LOG_LEVELS:
        raise ConfigurationError(f"log level: expected one of {LOG_LEVELS}, got {log_level!r}")
    stream = sys.stderr if stream is None else stream
    tty = _is_tty(stream)
    if log_format == "console" or (log_format == "auto" and tty):
        renderer: Processor = structlog.dev.ConsoleRenderer(colors=tty)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact,  # last before rendering: it must see the context and the formatted traceback
    ]

    handler = _Handler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()  # a StreamHandler never closes its stream
    root.addHandler(handler)
    level = logging.getLevelNamesMapping()[log_level]
    root.setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.NOTSET if level <= logging.DEBUG else logging.WARNING
        )

    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        context_class=dict,
        logger_factory=_SinkFactory(handler),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """Return a structlog logger; ``name`` becomes the ``logger`` key of its events."""
    return cast(FilteringBoundLogger, structlog.get_logger(name))


def bind(**values: object) -> None:
    """Bind ``values`` to every event of the current context (thread, task or coroutine)."""
    structlog.contextvars.bind_contextvars(**values)


def clear() -> None:
    """Forget every value bound with :func:`bind` in the current context."""
    structlog.contextvars.clear_contextvars()
