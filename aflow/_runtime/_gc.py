"""Fewer garbage-collector passes while a large flow runs.

A flow run allocates a few long-lived objects per task (states, run records). With CPython's
default thresholds, a 100,000-task run spends most of its extra time per task in repeated
full collections over those objects. While at least one run of ``LARGE_RUN`` tasks or more is
in progress, the first-generation threshold is raised; the previous thresholds come back when
the last such run ends. Small runs leave the collector alone. Building a flow in a
``with Flow(...)`` block changes them too, since a wide flow is built there (see
``_BUILD_THRESHOLDS``).
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
# While a flow is built (and no large run is in progress) the young collections stay small and
# frequent instead: what they scan was just allocated and is still in the CPU caches (a scan of
# 500,000 objects that are not costs ~0.1 us each). The second threshold is raised so that the
# survivors are not rescanned every tenth one; they are scanned once as older objects later, as
# they would be anyway. 1M-task build: -0.2 us per task, 100k: -0.3.
_BUILD_THRESHOLDS = (10_000, 1_000)
_lock = threading.Lock()  # flows may run in several threads (one event loop each)
_users = 0  # large runs in progress
_builders = 0  # flows being built
_saved: tuple[int, int, int] | None = None


def _apply() -> None:
    """Set the thresholds for the runs and builds in progress (under the lock)."""
    global _saved
    if not (_users or _builders):
        if _saved is not None:
            gc.set_threshold(*_saved)
            _saved = None
        return
    if _saved is None:
        _saved = gc.get_threshold()
    t0, t1, t2 = _saved
    if _users:
        gc.set_threshold(max(t0, _THRESHOLD0), t1, t2)
    else:
        gc.set_threshold(max(t0, _BUILD_THRESHOLDS[0]), max(t1, _BUILD_THRESHOLDS[1]), t2)


def relax(build: bool = False) -> None:
    """Raise the collector's first threshold until the matching `restore` (calls nest).

    Args:
        build: For building a flow: the build thresholds, unless a large run is in progress.
    """
    global _users, _builders
    with _lock:
        if build:
            _builders += 1
        else:
            _users += 1
        _apply()


def restore(build: bool = False) -> None:
    """Undo one `relax` (of the same kind); the last one puts the previous thresholds back."""
    global _users, _builders
    with _lock:
        if build:
            _builders -= 1
        else:
            _users -= 1
        _apply()


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
