"""The Celery app is a value built from explicit settings: importing reads nothing, each call
makes an independent app, and child workers get the settings the parent resolved."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from worker.queue.app import CableIngestApp, create_app
from worker.queue.names import DELIVER_TASK, INGEST_TASK
from worker.routing.config import load_config
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_library_reads_no_environment() -> None:
    """The producer API, the app factory and the tasks import with a malformed environment
    (reading it would fail) and none of them builds an app at import."""
    probe = (
        "import worker.intake.producer, worker.queue.app, worker.queue.tasks, worker.ops.status\n"
        "import worker.queue.app as a, worker.processes as p\n"
        "assert not hasattr(a, 'app')\n"
        "assert not [h for h in p._TRACKED if isinstance(h, a.CableIngestApp)]\n"
    )
    env = {"PATH": os.environ["PATH"], "CABLE_INGEST_BATCH_SIZE": "not-a-number"}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_each_call_makes_an_app_of_its_own(tmp_path: Path) -> None:
    """Two apps from two settings keep their own settings, broker and tasks."""
    one = create_app(Settings(var_dir=tmp_path / "one"))
    two = create_app(Settings(var_dir=tmp_path / "two", batch_size=7))
    assert isinstance(one, CableIngestApp)
    assert (one.settings.batch_size, two.settings.batch_size) == (100, 7)
    folders = [a.conf.broker_transport_options["data_folder_in"] for a in (one, two)]
    assert folders[0] != folders[1]
    for celery in (one, two):
        assert {INGEST_TASK, DELIVER_TASK} <= set(celery.tasks)
        assert celery.tasks[INGEST_TASK].app is celery


def test_the_runtime_is_made_once_per_process_and_forgotten_after_fork(tmp_path: Path) -> None:
    """The app's runtime is built on first use, kept, and rebuilt in a forked child."""
    celery = create_app(Settings(var_dir=tmp_path))
    first = celery.runtime
    assert celery.runtime is first
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports whether it got a runtime of its own
        os.write(write, b"1" if celery.runtime is not first else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert celery.runtime is first


def test_settings_travel_to_a_child_through_its_environment(tmp_path: Path) -> None:
    """What ``run`` resolved (``--config`` included) is what its worker processes read."""
    sinks = tmp_path / "sinks.toml"
    sinks.write_text('[sinks.drop]\ntype = "file"\noptions = { directory = "out" }\n')
    settings = Settings(
        var_dir=tmp_path, batch_size=17, config_file=sinks, log_level="DEBUG", ready_window_s=9
    )
    assert Settings.from_env(settings.to_env()) == settings
    assert "drop" in create_app(settings).sinks_config.sinks
    assert "drop" in load_config(Settings.from_env(settings.to_env()).config_file).sinks
