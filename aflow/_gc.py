"""Fewer garbage-collector passes while a large flow runs.

A flow run allocates a few long-lived objects per task (states, run records). With CPython's
default thresholds, a 100,000-task run spends most of its extra time per task in repeated
full collections over those objects. While at least one run of ``LARGE_RUN`` tasks or more is
in progress, the first-generation threshold is raised; the previous thresholds come back when
the last such run ends. Small runs leave the collector alone.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ("LARGE_RUN", "relaxed_gc")

LARGE_RUN = 1_000
_THRESHOLD0 = 50_000
_lock = threading.Lock()  # flows may run in several threads (one event loop each)
_users = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def relaxed_gc(n_tasks: int) -> Iterator[None]:
    """Raise the collector's first threshold for the block if ``n_tasks`` is large."""
    global _users, _saved
    if n_tasks < LARGE_RUN:
        yield
        return
    with _lock:
        if _users == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(_saved[0], _THRESHOLD0), _saved[1], _saved[2])
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
