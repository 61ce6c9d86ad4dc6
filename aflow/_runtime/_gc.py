"""Fewer garbage-collector passes while a large flow runs.

A flow run allocates a few long-lived objects per task (states, run records). With CPython's
default thresholds, a 100,000-task run spends most of its extra time per task in repeated
full collections over those objects. While at least one run of ``LARGE_RUN`` tasks or more is
in progress, the first-generation threshold is raised; the previous thresholds come back when
the last such run ends. Small runs leave the collector alone. Building a flow in a
``with Flow(...)`` block relaxes it the same way, since a wide flow is built there.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ("LARGE_RUN", "relax", "relaxed_gc", "restore")

LARGE_RUN = 1_000
# Young objects allocated between two collections. At 50,000, building and running a 100,000-task
# flow still spent about a third of its time in collections (each tenth young one rescans the
# survivors, each hundredth is a full one); at 500,000 such a flow sees a handful, and cyclic
# garbage waits at most that many allocations (a few tens of MB) before it is collected.
_THRESHOLD0 = 500_000
_lock = threading.Lock()  # flows may run in several threads (one event loop each)
_users = 0
_saved: tuple[int, int, int] | None = None


def relax() -> None:
    """Raise the collector's first threshold until the matching `restore` (calls nest)."""
    global _users, _saved
    with _lock:
        if _users == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(_saved[0], _THRESHOLD0), _saved[1], _saved[2])
        _users += 1


def restore() -> None:
    """Undo one `relax`; the last one puts the previous thresholds back."""
    global _users, _saved
    with _lock:
        _users -= 1
        if _users == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            _saved = None


@contextmanager
def relaxed_gc(n_tasks: int) -> Iterator[None]:
    """Raise the collector's first threshold for the block if ``n_tasks`` is large."""
    if n_tasks < LARGE_RUN:
        yield
        return
    relax()
    try:
        yield
    finally:
        restore()
