"""The broker seam: one broker per URL scheme, with the transport options each needs."""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Connection

from tests.services import redis_sentinel
from worker.errors import ConfigurationError
from worker.queue.app import celery_config
from worker.queue.brokers import ACK_KEY, EmbeddedBroker, InProcessBroker, RedisBroker, broker_for
from worker.routing.config import DEFAULT as DEFAULT_CONFIG
from worker.settings import Settings


def test_the_scheme_chooses_the_broker() -> None:
    """redis, rediss and sentinel URLs are Redis; filesystem is embedded; memory in-process."""
    kinds = {
        url: type(broker_for(Settings(broker_url=url)))
        for url in (
            "redis://localhost:6379/0",
            "rediss://localhost:6380/0",
            "sentinel://localhost:26379/0?master_name=mymaster",
            "filesystem://localhost/",
            "memory://",
        )
    }
    assert list(kinds.values()) == [
        RedisBroker,
        RedisBroker,
        RedisBroker,
        EmbeddedBroker,
        InProcessBroker,
    ]


def test_filesystem_broker_folders_live_under_var_dir() -> None:
    """The embedded broker writes and reads one queue folder under VAR_DIR and polls often."""
    options = broker_for(Settings.from_env({"CABLE_INGEST_VAR_DIR": "state"})).transport_options()
    assert (
        options["data_folder_in"] == options["data_folder_out"] == str(Path("state/broker/queue"))
    )
    assert options["processed_folder"] == str(Path("state/broker/processed"))
    assert options["polling_interval"] == 0.01


def test_redis_broker_gets_the_visibility_timeout_and_plain_bodies() -> None:
    """A Redis broker's transport options carry the visibility timeout, utf-8 bodies, and a
    look for messages past the timeout every 10 s (not every 100)."""
    settings = Settings.from_env(
        {
            "CABLE_INGEST_BROKER_URL": "redis://localhost:6379/0",
            "CABLE_INGEST_VISIBILITY_TIMEOUT": "60",
        }
    )
    assert broker_for(settings).transport_options() == {
        "visibility_timeout": 60,
        "body_encoding": "utf-8",
        "unacked_restore_throttle": 1,
    }


def test_only_brokers_without_broadcast_skip_what_needs_it() -> None:
    """Workers on the embedded broker run without gossip, mingle and heartbeat; on Redis not."""
    assert broker_for(Settings(broker_url="redis://localhost/0")).worker_flags() == []
    embedded = broker_for(Settings()).worker_flags()
    assert embedded == ["--without-gossip", "--without-mingle", "--without-heartbeat"]


def test_the_embedded_broker_says_when_nothing_was_enqueued_yet(tmp_path: Path) -> None:
    """Before its folders exist, status notes it; after prepare() nothing is to say."""
    broker = broker_for(Settings(var_dir=tmp_path / "var"))
    assert "does not exist" in broker.notes()[0]
    broker.prepare()
    assert broker.notes() == []


def test_a_sentinel_broker_names_its_master_and_passwords_in_one_place(tmp_path: Path) -> None:
    """For sentinel://, the seam gives Celery and its own client the URL as kombu reads it
    (the primary's password, read from its file, and the database on every sentinel), and the
    master name and the sentinels' password in the transport options."""
    (tmp_path / "redis").write_text("data/pw\n", encoding="utf-8")
    settings = Settings.from_env(
        {
            "CABLE_INGEST_BROKER_URL": "sentinel://s1;sentinel://s2:26380/3?master_name=cables",
            "CABLE_INGEST_SENTINEL_PASSWORD": "watch-pw",
            "CABLE_INGEST_BROKER_PASSWORD_FILE": str(tmp_path / "redis"),
        }
    )
    broker = broker_for(settings)
    assert broker.url == "sentinel://:data%2Fpw@s1:26379/3;sentinel://:data%2Fpw@s2:26380/3"
    options = broker.transport_options()
    assert options["master_name"] == "cables"
    assert options["sentinel_kwargs"]["password"] == "watch-pw"
    assert options["visibility_timeout"] == settings.visibility_timeout
    conf = celery_config(settings, DEFAULT_CONFIG)
    assert conf["broker_url"] == broker.url
    assert conf["broker_transport_options"]["master_name"] == "cables"


@pytest.mark.parametrize(
    "url",
    [
        "sentinel://s1;sentinel://s2:26380/3?master_name=cables",
        "redis://h1:6379/3;redis://h2:6379/3",
    ],
)
def test_failing_over_along_the_list_keeps_the_password_and_database(
    url: str, tmp_path: Path
) -> None:
    """kombu re-reads the user info and database from the next URL of the list each time a
    connection fails: every URL it is given carries the password (from its file) and the
    database, so they are the same after any number of switches."""
    (tmp_path / "redis").write_text("data-pw", encoding="utf-8")
    settings = Settings(broker_url=url, broker_password_file=tmp_path / "redis")
    connection = Connection(broker_for(settings).url)
    seen = set()
    for _ in range(3):
        connection.maybe_switch_next()
        seen.add((connection.hostname, connection.password, connection.virtual_host))
    assert {(password, db) for _host, password, db in seen} == {("data-pw", "3")}
    assert len(seen) == 2


def test_a_missing_password_file_is_one_error_naming_it(tmp_path: Path) -> None:
    """A password file that cannot be read stops the start with a line naming the setting."""
    settings = Settings(
        broker_url="redis://localhost:6379/0", broker_password_file=tmp_path / "missing"
    )
    with pytest.raises(ConfigurationError, match="CABLE_INGEST_BROKER_PASSWORD_FILE: cannot read"):
        broker_for(settings)


def test_the_broker_client_reads_and_writes_the_primary_through_the_sentinel(
    tmp_path: Path,
) -> None:
    """The seam's own client (health's ping, the readiness key) reaches the primary through a
    Sentinel that requires a password, with the primary's password in the URL."""
    with redis_sentinel(tmp_path / "redis", passwords=True) as running:
        url = running.url.replace("sentinel://", f"sentinel://:{running.password}@")
        settings = Settings(
            broker_url=f"{url}?master_name={running.master}",
            sentinel_password=running.sentinel_password or "",
        )
        broker = broker_for(settings)
        assert broker.ping() is None
        broker.record_ack("1700000000.5")
        assert broker.last_ack() == b"1700000000.5"
        primary = running.primary()
        try:
            assert primary.get(ACK_KEY) == b"1700000000.5"
        finally:
            primary.close()
    assert broker.ping() is not None  # stopped: it says so, without the password
    assert str(running.password) not in str(broker.ping())
