"""``cable-ingest tokens create|list|revoke``, in process on a SQLite database under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from worker.cli import main
from worker.storage.tokens import TokenStore


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The database the commands use (through the environment, as in production)."""
    for name in list(os.environ):
        if name.startswith("CABLE_INGEST_"):
            monkeypatch.delenv(name)
    database = f"sqlite:///{tmp_path / 'var' / 'cable-ingest.db'}"
    monkeypatch.setenv("CABLE_INGEST_DATABASE_URL", database)
    return database


def test_create_prints_the_token_alone_and_it_verifies(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """stdout holds the token only; it verifies with the scopes and clearance asked for."""
    args = ["tokens", "create", "feed-a", "--scope", "ingest", "--scope", "read",
            "--clearance", "CONFIDENTIAL"]  # fmt: skip
    assert main(args) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("cit_")
    store = TokenStore(url)
    info = store.verify(token)
    store.close()
    assert info is not None
    assert (info.name, info.scopes, info.clearance) == (
        "feed-a",
        ("ingest", "read"),
        "CONFIDENTIAL",
    )


def test_list_never_shows_secrets_and_revoke_revokes(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """list --json shows the token's id and feed but not the token; revoke by id makes it
    revoked; revoking again exits 1."""
    assert main(["tokens", "create", "feed-a"]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["tokens", "list", "--json"]) == 0
    out = capsys.readouterr().out
    (listed,) = orjson.loads(out)
    assert token not in out
    assert token.split("_", 2)[2] not in out
    assert (listed["name"], listed["scopes"], listed["revoked_at"]) == ("feed-a", ["ingest"], None)
    assert main(["tokens", "revoke", listed["id"]]) == 0
    assert main(["tokens", "revoke", listed["id"]]) == 1
    assert main(["tokens", "list", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)[0]["revoked_at"] is not None


def test_a_bad_feed_name_is_a_usage_error(url: str) -> None:
    """A name with a slash exits 2 (argparse), creating nothing."""
    with pytest.raises(SystemExit) as stop:
        main(["tokens", "create", "feed/a"])
    assert stop.value.code == 2
    del url
