"""worker.logs: JSON and console rendering, the stdlib bridge, redaction, levels, idempotence."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from worker import logs
from worker.errors import ConfigurationError

SECRET = "hunter2-s3cr3t"
CABLE_BODY = "C O N F I D E N T I A L ALMATY 000598 -- BODY-MARKER-7f3a"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Give every test pristine structlog defaults and leave the root logger as it was found."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in logs.NOISY_LOGGERS}
    structlog.reset_defaults()
    logs.clear()
    yield
    logs.clear()
    structlog.reset_defaults()
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    for name, noisy_level in noisy.items():
        logging.getLogger(name).setLevel(noisy_level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_event_is_one_line_with_level_timestamp_and_context() -> None:
    """A structlog event renders as one JSON line with event, level, UTC timestamp and bound context."""
    out = io.StringIO()
    logs.configure_logging("json", "INFO", out)
    logs.bind(message_id="m-1", task_id="t-9")
    logs.get_logger("worker.queue.tasks").info("parsed", size=1234)

    assert out.getvalue().count("\n") == 1
    [event] = _lines(out)
    assert event["event"] == "parsed"
    assert event["level"] == "info"
    assert event["logger"] == "worker.queue.tasks"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", event["timestamp"])
    assert (event["message_id"], event["task_id"], event["size"]) == ("m-1", "t-9", 1234)


def test_clear_forgets_bound_context() -> None:
    """After clear(), values bound earlier no longer appear in events."""
    out = io.StringIO()
    logs.configure_logging("json", "INFO", out)
    logs.bind(message_id="m-1")
    logs.clear()
    logs.get_logger().info("later")

    [event] = _lines(out)
    assert "message_id" not in event
    assert "logger" not in event  # unnamed logger: no logger key rather than null


def test_stdlib_records_share_the_json_format() -> None:
    """A stdlib record (as Celery emits) comes out as the same JSON line, with its logger name."""
    out = io.StringIO()
    logs.configure_logging("json", "INFO", out)
    logs.bind(message_id="m-2")
    logging.getLogger("celery.worker").warning("x %s", 1)

    [event] = _lines(out)
    assert event["event"] == "x 1"
    assert event["logger"] == "celery.worker"
    assert event["level"] == "warning"
    assert event["timestamp"].endswith("Z")
    assert event["message_id"] == "m-2"


def test_exceptions_render_as_a_traceback_string() -> None:
    """exc_info from structlog and stdlib alike becomes a string field holding the traceback."""
    out = io.StringIO()
    logs.configure_logging("json", "INFO", out)
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        logs.get_logger("worker.queue.tasks").exception("failed")
        logging.getLogger("kombu").error("failed too", exc_info=True)

    events = _lines(out)
    assert [e["level"] for e in events] == ["error", "error"]
    for event in events:
        assert event["exception"].startswith("Traceback (most recent call last):")
        assert "ZeroDivisionError: division by zero" in event["exception"]


def test_url_passwords_and_secret_keys_are_masked() -> None:
    """A password in a URL (value, failover list or stdlib message) and secret-named keys become ***."""
    out = io.StringIO()
    logs.configure_logging("json", "INFO", out)
    log = logs.get_logger("worker.queue.broker")
    log.info("connecting", broker_url=f"redis://:{SECRET}@redis:6379/0")
    log.info("failover", broker_url=f"redis://a:6379;redis://:{SECRET}@b:6379/0")
    log.info("login", password=SECRET, api_token=SECRET, Authorization=f"Bearer {SECRET}")
    logging.getLogger("celery").warning("Connected to redis://u:%s@redis:6379/0", SECRET)

    assert SECRET not in out.getvalue()
    connecting, failover, login, stdlib = _lines(out)
    assert connecting["broker_url"] == "redis://:***@redis:6379/0"
    assert failover["broker_url"] == "redis://a:6379;redis://:***@b:6379/0"
    assert login["password"] == login["api_token"] == login["Authorization"] == "***"
    assert stdlib["event"] == "Connected to redis://u:***@redis:6379/0"


def test_cable_body_keys_are_dropped() -> None:
    """Keys that may hold a cable body (text=, body=, ...) never reach the output, bound or not."""
    out = io.StringIO()
    logs.configure_logging("json", "INFO", out)
    logs.bind(raw=CABLE_BODY)
    logs.get_logger("worker.queue.tasks").info("parsed", text=CABLE_BODY, body=CABLE_BODY, size=7)

    assert CABLE_BODY not in out.getvalue()
    [event] = _lines(out)
    assert not {"text", "body", "raw"} & event.keys()
    assert event["size"] == 7


def test_level_filtering() -> None:
    """At INFO, debug events are dropped (structlog and stdlib) and noisy libraries need WARNING."""
    out = io.StringIO()
    logs.configure_logging("json", "INFO", out)
    logs.get_logger("worker.queue.tasks").debug("hidden")
    logging.getLogger("celery").debug("hidden too")
    logging.getLogger("kombu.connection").info("chatty")
    logs.get_logger("worker.queue.tasks").info("shown")

    assert [e["event"] for e in _lines(out)] == ["shown"]


def test_debug_level_lets_noisy_libraries_through() -> None:
    """At DEBUG, debug events and the third-party loggers held at WARNING otherwise are shown."""
    out = io.StringIO()
    logs.configure_logging("json", "INFO", out)
    logs.configure_logging("json", "DEBUG", out)
    logs.get_logger("worker.queue.tasks").debug("ours")
    logging.getLogger("kombu.connection").info("theirs")

    assert [e["event"] for e in _lines(out)] == ["ours", "theirs"]


def test_configure_twice_does_not_duplicate_lines() -> None:
    """Configuring again replaces the handler: each event is still written exactly once."""
    out = io.StringIO()
    logs.configure_logging("json", "INFO", out)
    logs.configure_logging("json", "INFO", out)
    logging.getLogger("celery").warning("once")
    logs.get_logger("worker").info("once too")

    assert [e["event"] for e in _lines(out)] == ["once", "once too"]
    installed = [h for h in logging.getLogger().handlers if isinstance(h, logs._Handler)]
    assert len(installed) == 1


def test_console_on_non_tty_has_no_ansi_codes() -> None:
    """The console renderer on a stream that is not a TTY writes plain text, no ANSI escapes."""
    out = io.StringIO()
    logs.configure_logging("console", "INFO", out)
    logs.get_logger("worker.queue.tasks").warning("plain", size=3)
    logging.getLogger("celery").error("plain too")

    text = out.getvalue()
    assert "\x1b[" not in text
    assert "plain" in text
    assert "size=3" in text
    assert "plain too" in text


def test_auto_on_non_tty_is_json() -> None:
    """The auto format picks JSON when the stream is not a TTY."""
    out = io.StringIO()
    logs.configure_logging("auto", "INFO", out)
    logs.get_logger().info("auto")

    assert _lines(out)[0]["event"] == "auto"


def test_unknown_format_or_level_is_a_configuration_error() -> None:
    """A log format or level outside the allowed choices raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="log format"):
        logs.configure_logging("xml")
    with pytest.raises(ConfigurationError, match="log level"):
        logs.configure_logging("json", "VERBOSE")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_on_a_tty_is_colored_console() -> None:
    """The auto format picks the console renderer, with colors, when the stream is a TTY."""
    out = _Terminal()
    logs.configure_logging("auto", "INFO", out)
    logs.get_logger().info("colored", size=3)

    text = out.getvalue()
    assert "\x1b[" in text
    assert "colored" in text
    assert not text.startswith("{")
