"""Warn when an ``async def`` task body blocks the event loop, naming it and how long it blocked.

While a flow run is in progress, its loop gets a heartbeat callback every ``tick`` seconds (a
quarter of the threshold), and one watcher thread for the whole process wakes as often (it
is started by the first run and ends after two idle seconds with no run in progress, so runs
in a row share it and pay no thread start). Nothing else runs
per task: the task bodies are not wrapped or timed. When the watcher sees the heartbeat
overdue, the loop is stuck in some callback; it samples the loop thread's stack and notes the
task whose body is on it (found by the engine frames ``run_task``/``invoke`` and their ``task``
variable). When the loop comes back, the heartbeat measures how late it was; a delay of at least
the threshold is reported as a WARNING on the ``aflow.blocking`` logger, one line per task
sampled during the block, with its share of the blocked time (blocks outside task bodies, such
as building a very large run, are logged at DEBUG only).

A task's body blocking the loop (``time.sleep``, blocking I/O, long computations) stops every
other task of the run, and of the loop, meanwhile.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from types import FrameType, ModuleType
from typing import Any

from .._runtime._logging import engine_logger
from .._runtime._settings import DEFAULT_WARN_BLOCKING, check_threshold

__all__ = ("DEFAULT_WARN_BLOCKING", "BlockWatch", "check_threshold")

_OUTSIDE = ""  # sampled with no task body on the stack

logger = engine_logger("blocking")

_LINGER = 2.0  # seconds the idle watcher thread waits for a next run before it ends

_lock = threading.Lock()
_wake = threading.Condition(_lock)  # notified when a run starts
_watches: dict[asyncio.AbstractEventLoop, BlockWatch] = {}  # the loops with a run in progress
_thread: threading.Thread | None = None
_codes: frozenset[Any] = frozenset()  # the engine frames that hold the running task (set lazily)


def _engine_codes() -> frozenset[Any]:
    global _codes
    if not _codes:
        runner = _task_runner()
        # the frames a body can run under, innermost first: each has the task as local ``task``
        _codes = frozenset(f.__code__ for f in (runner.run_task, runner.invoke, runner.dispatch))
    return _codes


def _task_runner() -> ModuleType:
    from . import _task_runner

    return _task_runner


def _task_on(frame: FrameType | None, codes: frozenset[Any]) -> str:
    """The name (``name`` or ``name[i]``) of the task whose body runs in ``frame``'s stack.

    The innermost engine frame names the task; the map index is a local of ``run_task``, further
    out (absent when a body with a timeout runs as an asyncio task of its own).
    """
    while frame is not None and frame.f_code not in codes:
        frame = frame.f_back
    if frame is None:
        return _OUTSIDE
    task = frame.f_locals.get("task")
    name = str(getattr(task, "name", task))
    run_task = _task_runner().run_task.__code__
    while frame is not None and frame.f_code is not run_task:
        frame = frame.f_back
    index = None if frame is None else frame.f_locals.get("map_index")
    return name if index is None else f"{name}[{index}]"


class BlockWatch:
    """The heartbeat of one event loop, shared by its flow runs in progress."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.loop_thread = threading.get_ident()
        self.thresholds: list[float] = []
        self.tick = 0.0
        self.beat = 0.0  # time.monotonic() of the last heartbeat
        self.samples: list[str] = []  # appended by the watcher while the loop is stuck
        self.handle: asyncio.TimerHandle | None = None

    @classmethod
    def acquire(cls, threshold: float) -> BlockWatch:
        """Start watching the running loop for this run (with the smallest threshold of its runs).

        Costs a lock and a dict entry; the watcher thread is started only when none is up.
        """
        global _thread
        loop = asyncio.get_running_loop()
        with _lock:
            watch = _watches.get(loop)
            if watch is None:
                watch = _watches[loop] = cls(loop)
            watch.thresholds.append(threshold)
            watch.tick = max(min(watch.thresholds) / 4, 0.005)
            if watch.handle is None:
                watch.beat = time.monotonic()
                watch.samples = []
                watch.handle = loop.call_later(watch.tick, watch._on_beat)
            if _thread is None:
                _thread = threading.Thread(target=_watch, name="aflow-blocking-watch", daemon=True)
                _thread.start()
            else:
                _wake.notify()
        return watch

    def release(self, threshold: float) -> None:
        """This run is over: stop the heartbeat when it was the last one of the loop.

        A block that ended just now (the heartbeat did not get to run since) is reported first.
        """
        if self.handle is not None and time.monotonic() - self.beat - self.tick >= threshold:
            self.handle.cancel()
            self._on_beat()
        with _lock:
            self.thresholds.remove(threshold)
            if self.thresholds:
                self.tick = max(min(self.thresholds) / 4, 0.005)
                return
            if self.handle is not None:
                self.handle.cancel()
                self.handle = None
            del _watches[self.loop]

    def _on_beat(self) -> None:
        now = time.monotonic()
        late = now - self.beat - self.tick
        self.beat = now
        samples, self.samples = self.samples, []
        thresholds = self.thresholds
        if thresholds and late >= min(thresholds):
            _report(late, samples)
        self.handle = self.loop.call_later(self.tick, self._on_beat) if thresholds else None


def _report(late: float, samples: list[str]) -> None:
    counts: dict[str, int] = {}
    for name in samples:
        counts[name] = counts.get(name, 0) + 1
    total = len(samples)
    if total == 0:
        counts[_OUTSIDE] = total = 1
    hint = (
        "an async task body must not make blocking calls (time.sleep, blocking I/O, long "
        "computations): await an async equivalent, or make the task a plain def (it then runs "
        "in a worker thread)"
    )
    for name, n in counts.items():
        share = late * n / total
        if name == _OUTSIDE:  # the engine, a handler, another library: not a task's doing
            logger.debug("The event loop was blocked for %.2fs outside any task body", share)
        else:
            logger.warning("Task %r blocked the event loop for %.2fs: %s", name, share, hint)


def _watch() -> None:
    """The watcher thread: samples the stack of every loop whose heartbeat is overdue.

    With no run in progress it waits, without waking, for one to start; after ``_LINGER``
    seconds of that it ends (the next run starts a new one).
    """
    global _thread
    codes = _engine_codes()
    while True:
        with _lock:
            if not _watches:
                _wake.wait(_LINGER)
                if not _watches:
                    _thread = None
                    return
            watches = list(_watches.values())
        tick = min(w.tick for w in watches)
        time.sleep(tick)
        now = time.monotonic()
        frames: dict[int, FrameType] | None = None
        for w in watches:
            if w.thresholds and now - w.beat >= 2 * w.tick:
                if frames is None:
                    frames = sys._current_frames()
                w.samples.append(_task_on(frames.get(w.loop_thread), codes))
        del frames
