"""Per-process clients, and the one fork hook that resets them.

A prefork worker forks its pool after start-up; what a parent opened (connection pools,
sockets, SMTP sessions, MQTT network threads) is not the child's to use. An object holding such
a client registers itself with :func:`track` and implements ``after_fork()``: forget the
clients without closing them (closing a socket shared with the parent would close the
parent's connection; SQLAlchemy's pooling guide: ``engine.dispose(close=False)``). One
``os.register_at_fork`` hook calls them all in every child, so no client checks
``os.getpid()`` on each use.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol, TypeVar


class ForkAware(Protocol):
    """Something that holds per-process clients."""

    def after_fork(self) -> None:
        """In a forked child: forget the parent's clients; make new ones on next use."""
        ...


_T = TypeVar("_T", bound=ForkAware)
_TRACKED: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def track(holder: _T) -> _T:
    """Have ``holder.after_fork()`` called in every child forked from now on; return it."""
    _TRACKED.add(holder)
    return holder


def _after_fork_in_child() -> None:
    for holder in list(_TRACKED):
        holder.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
