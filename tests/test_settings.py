"""Settings: defaults, parsing, one error per bad variable, and passwords kept out of sight."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import ConfigurationError
from worker.settings import Settings, redact_url


def test_defaults_need_no_environment() -> None:
    """An empty environment gives the embedded defaults: filesystem broker, SQLite under var/."""
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.broker_url == "filesystem://localhost/"
    assert settings.database_url == "sqlite:///var/cable-ingest.db"
    assert settings.var_dir == Path("var")
    assert (settings.batch_size, settings.max_input_bytes) == (100, 1024 * 1024)
    assert (settings.high_water_mark, settings.max_deliveries, settings.sink_max_retries) == (
        50_000,
        5,
        8,
    )
    assert (settings.worker_concurrency, settings.prefetch_multiplier) == (2, 1)
    assert settings.visibility_timeout == 900
    assert (settings.log_format, settings.log_level) == ("auto", "INFO")


def test_database_default_follows_var_dir() -> None:
    """Without DATABASE_URL the SQLite file sits in VAR_DIR, relative or absolute."""
    assert Settings.from_env({"CABLE_INGEST_VAR_DIR": "/srv/ci"}).database_url == (
        "sqlite:////srv/ci/cable-ingest.db"
    )


@pytest.mark.parametrize(
    ("variable", "raw", "attribute", "expected"),
    [
        ("BATCH_SIZE", "250", "batch_size", 250),
        ("MAX_INPUT_BYTES", "2MiB", "max_input_bytes", 2 * 1024 * 1024),
        ("MAX_INPUT_BYTES", "4096", "max_input_bytes", 4096),
        ("SINK_MAX_RETRIES", "0", "sink_max_retries", 0),
        ("LOG_FORMAT", "JSON", "log_format", "json"),
        ("LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("BROKER_URL", "rediss://:pw@redis:6380/0", "broker_url", "rediss://:pw@redis:6380/0"),
        (
            "DATABASE_URL",
            "postgresql+psycopg://u:p@db/c",
            "database_url",
            "postgresql+psycopg://u:p@db/c",
        ),
        ("BATCH_SIZE", "  ", "batch_size", 100),
    ],
)
def test_good_values_are_parsed(variable: str, raw: str, attribute: str, expected: object) -> None:
    """Each variable is parsed to its type; a blank value means the default."""
    settings = Settings.from_env({f"CABLE_INGEST_{variable}": raw})
    assert getattr(settings, attribute) == expected


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("BATCH_SIZE", "abc", "a positive integer"),
        ("BATCH_SIZE", "0", "a positive integer"),
        ("MAX_INPUT_BYTES", "1 MB", "a positive number of bytes"),
        ("HIGH_WATER_MARK", "-5", "a positive integer"),
        ("MAX_DELIVERIES", "2.5", "a positive integer"),
        ("SINK_MAX_RETRIES", "-1", "a non-negative integer"),
        ("WORKER_CONCURRENCY", "many", "a positive integer"),
        ("PREFETCH_MULTIPLIER", "0", "a positive integer"),
        ("VISIBILITY_TIMEOUT", "1h", "a positive integer"),
        ("LOG_FORMAT", "xml", "one of auto, json, console"),
        ("LOG_LEVEL", "loud", "one of DEBUG, INFO"),
        ("BROKER_URL", "localhost:6379", "a URL starting with filesystem://"),
        ("DATABASE_URL", "mysql://db/c", "a URL starting with sqlite://, postgresql://"),
    ],
)
def test_bad_value_names_variable_expectation_and_value(
    variable: str, raw: str, expected: str
) -> None:
    """A malformed value raises ConfigurationError naming the variable, what was expected and what arrived."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({f"CABLE_INGEST_{variable}": raw})
    message = str(caught.value)
    assert message.startswith(f"CABLE_INGEST_{variable}: expected {expected}")
    assert message.endswith(f"got {raw!r}")


def test_bad_url_error_does_not_leak_its_password() -> None:
    """The error for a malformed URL quotes it with its password redacted."""
    with pytest.raises(ConfigurationError, match=r"got 'amqp://guest:\*\*\*@rabbit'"):
        Settings.from_env({"CABLE_INGEST_BROKER_URL": "amqp://guest:hunter2@rabbit"})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@localhost:6379/0", "redis://:***@localhost:6379/0"),
        (
            "rediss://default:s3cret@cache.example:6380/1",
            "rediss://default:***@cache.example:6380/1",
        ),
        ("postgresql://cable:hunter2@db:5432/cables", "postgresql://cable:***@db:5432/cables"),
        (
            "postgresql+psycopg://u:p%40ss@db/c?sslmode=require",
            "postgresql+psycopg://u:***@db/c?sslmode=require",
        ),
        ("postgresql://db/c?user=u&password=hunter2", "postgresql://db/c?user=u&password=***"),
        ("redis://:a@h1:26379;redis://:b@h2:26379", "redis://:***@h1:26379;redis://:***@h2:26379"),
        ("redis://:s3cret@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("redis://user@localhost", "redis://user@localhost"),
        ("filesystem://", "filesystem://"),
        ("sqlite:///var/cable-ingest.db", "sqlite:///var/cable-ingest.db"),
        ("redis://:s3cret@host:port", "redis://***"),
    ],
)
def test_redact_url_hides_passwords_only(url: str, shown: str) -> None:
    """Passwords become ***; everything else, and URLs without a password, stay as they were."""
    assert redact_url(url) == shown


def test_redacted_and_repr_hide_passwords() -> None:
    """Neither the display dict nor repr() shows a password from the broker or database URL."""
    settings = Settings.from_env(
        {
            "CABLE_INGEST_BROKER_URL": "redis://:brokerpw@redis:6379/0",
            "CABLE_INGEST_DATABASE_URL": "postgresql://cable:dbpw@db/cables",
        }
    )
    shown = settings.redacted()
    assert shown["broker_url"] == "redis://:***@redis:6379/0"
    assert shown["database_url"] == "postgresql://cable:***@db/cables"
    assert shown["var_dir"] == "var"
    for text in (str(shown), repr(settings)):
        assert "brokerpw" not in text
        assert "dbpw" not in text


def test_environ_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, from_env reads os.environ."""
    monkeypatch.setenv("CABLE_INGEST_BATCH_SIZE", "7")
    assert Settings.from_env().batch_size == 7


SENTINELS = "sentinel://:datapw@s1:26379;sentinel://s2:26380/2"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, r"SENTINEL_MASTER=NAME or \?master_name=NAME"),
        (
            {"CABLE_INGEST_BROKER_URL": SENTINELS + "?master_name=a", "CABLE_INGEST_SENTINEL_MASTER": "b"},
            r"names the master .* and CABLE_INGEST_SENTINEL_MASTER too",
        ),
        (
            {"CABLE_INGEST_BROKER_URL": "sentinel://s1/1;sentinel://s2/2"},
            r"BROKER_URL: expected one database for every sentinel:// URL",
        ),
        (
            {"CABLE_INGEST_BROKER_URL": SENTINELS + "?service=x"},
            r"BROKER_URL: expected a sentinel:// URL whose only parameter is master_name",
        ),
        (
            {"CABLE_INGEST_SENTINEL_MASTER": "m", "CABLE_INGEST_BROKER_PASSWORD": "x"},
            r"BROKER_URL has a password and CABLE_INGEST_BROKER_PASSWORD\(_FILE\) another",
        ),
        (
            {
                "CABLE_INGEST_SENTINEL_MASTER": "m",
                "CABLE_INGEST_SENTINEL_PASSWORD": "x",
                "CABLE_INGEST_SENTINEL_PASSWORD_FILE": "/run/secrets/sentinel",
            },
            r"SENTINEL_PASSWORD and CABLE_INGEST_SENTINEL_PASSWORD_FILE: give one",
        ),
    ],
)
def test_sentinel_settings_are_checked_at_start(environ: dict[str, str], message: str) -> None:
    """A sentinel:// broker names its master exactly once, its URL parts agree, and each
    password comes from one place: else one ConfigurationError, which never shows a password."""
    with pytest.raises(ConfigurationError, match=message) as caught:
        Settings.from_env({"CABLE_INGEST_BROKER_URL": SENTINELS, **environ})
    assert "datapw" not in str(caught.value)


def test_sentinel_master_and_passwords_are_read_hidden_and_handed_down() -> None:
    """The master name and the password settings are read; the passwords are *** in the
    display dict and repr; to_env gives a child the same settings."""
    settings = Settings.from_env(
        {
            "CABLE_INGEST_BROKER_URL": "sentinel://s1:26379;sentinel://s2:26380/2",
            "CABLE_INGEST_SENTINEL_MASTER": "cables",
            "CABLE_INGEST_SENTINEL_PASSWORD": "watchpw",
            "CABLE_INGEST_BROKER_PASSWORD_FILE": "/run/secrets/redis",
        }
    )
    assert (settings.sentinel_master, settings.sentinel_password) == ("cables", "watchpw")
    assert settings.broker_password_file == Path("/run/secrets/redis")
    shown = settings.redacted()
    assert (shown["sentinel_password"], shown["broker_password"]) == ("***", "")
    assert "watchpw" not in repr(settings)
    assert Settings.from_env(settings.to_env()) == settings
