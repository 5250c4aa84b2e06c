"""The settings of ``cable-ingest serve`` read from the environment, with their checks."""

from __future__ import annotations

import pytest

from worker.errors import ConfigurationError
from worker.settings import Settings


def test_http_settings_are_read_with_their_units() -> None:
    """Host, port, sizes in bytes or MiB, the group-commit window and the token cache."""
    settings = Settings.from_env({
        "CABLE_INGEST_HTTP_HOST": "0.0.0.0",
        "CABLE_INGEST_HTTP_PORT": "9000",
        "CABLE_INGEST_HTTP_MAX_BODY_BYTES": "8MiB",
        "CABLE_INGEST_GROUP_COMMIT_MS": "0",
        "CABLE_INGEST_TOKEN_CACHE_S": "30",
    })  # fmt: skip
    assert (settings.http_host, settings.http_port) == ("0.0.0.0", 9000)
    assert settings.http_max_body_bytes == 8 * 1024 * 1024
    assert (settings.group_commit_ms, settings.token_cache_s) == (0, 30)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("HTTP_PORT", "70000"),
        ("HTTP_PORT", "http"),
        ("HTTP_READ_TIMEOUT_S", "0"),
        ("HTTP_HEADER_TIMEOUT_S", "0"),
    ],
)
def test_malformed_http_settings_name_the_variable(name: str, raw: str) -> None:
    """A port out of range or a zero timeout stops with the variable's name."""
    with pytest.raises(ConfigurationError, match=f"CABLE_INGEST_{name}"):
        Settings.from_env({f"CABLE_INGEST_{name}": raw})
