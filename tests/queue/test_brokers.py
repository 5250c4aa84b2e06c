"""The broker seam: one broker per URL scheme, with the transport options each needs."""

from __future__ import annotations

from pathlib import Path

from worker.queue.brokers import EmbeddedBroker, InProcessBroker, RedisBroker, broker_for
from worker.settings import Settings


def test_the_scheme_chooses_the_broker() -> None:
    """redis, rediss and sentinel URLs are Redis; filesystem is embedded; memory in-process."""
    kinds = {
        url: type(broker_for(Settings(broker_url=url)))
        for url in (
            "redis://localhost:6379/0",
            "rediss://localhost:6380/0",
            "sentinel://localhost:26379/0",
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
