"""The one fork hook: in a forked child every tracked holder forgets its parent's clients."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from worker import processes
from worker.storage.engine import Database


class Holder:
    """A stand-in for a client holder: counts the forks it was told about."""

    def __init__(self) -> None:
        self.forks = 0

    def after_fork(self) -> None:
        self.forks += 1


def _in_child(report: bytes) -> None:
    """Runs in the child: write ``report`` to the pipe and leave at once."""
    os.write(_WRITE, report)
    os._exit(0)


_READ, _WRITE = os.pipe()


def test_a_forked_child_resets_every_tracked_holder_and_the_parent_keeps_its_own(
    tmp_path: Path,
) -> None:
    """A real fork: the child's holders were told, and its database makes a new engine; in
    the parent nothing changed and its engine still answers."""
    holder = processes.track(Holder())
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    parent_engine = database.engine
    pid = os.fork()
    if pid == 0:
        fresh = database.engine is not parent_engine
        _in_child(b"%d%d" % (holder.forks, int(fresh)))
    os.waitpid(pid, 0)
    assert os.read(_READ, 2) == b"11"
    assert holder.forks == 0
    assert database.engine is parent_engine
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    database.dispose()
