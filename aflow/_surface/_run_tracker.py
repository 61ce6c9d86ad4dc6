"""`RunTracker`: counts and times a flow run's tasks, as the engine's observer (no dependencies).

The progress display renders a tracker; the CLI reads its durations for the run summary. Every
callback is a few integer updates, run in the event loop; a display reads the counters from its
refresh thread (plain ints and a dict fixed at creation, so no locking is needed).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._model._builtin_tasks import Constant, Parameter

if TYPE_CHECKING:
    from .._model._flow import Flow
    from .._model._task import Task
    from ..states import State

__all__ = ("TIMES", "RunTracker", "TaskStats")

TIMES = "\N{MULTIPLICATION SIGN}"  # a mapped task and its number of children: "inc \u00d71000"


class TaskStats:
    """The counters of one task of the run (a mapped task's counters are its children's)."""

    __slots__ = (
        "attempts",
        "done",
        "failed",
        "first_start",
        "last_end",
        "name",
        "running",
        "state",
        "waiting",
        "width",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.width: int | None = None  # set once a mapped task knows its number of children
        self.running = 0  # task bodies running (or about to): not those waiting for a slot
        self.waiting = 0  # task runs waiting for a concurrency slot or a retry's delay
        self.attempts = 0  # attempts started (a retried task run counts each)
        self.done = 0
        self.failed = 0
        self.first_start: float | None = None
        self.last_end: float | None = None
        self.state: State | None = None  # the final state (a mapped task's parent state)

    @property
    def total(self) -> int:
        """Units of work: 1 for a task, its children once a mapped task has mapped."""
        return 1 if self.width is None else self.width

    @property
    def duration(self) -> float | None:
        """Seconds from the (first child's) start to the (last child's) end, if both happened."""
        if self.first_start is None or self.last_end is None:
            return None
        return self.last_end - self.first_start


class RunTracker:
    """Follows one flow run through `FlowRunner.observer`.

    Args:
        flow: The flow being run; its constants are not tracked.
    """

    def __init__(self, flow: Flow) -> None:
        self.flow_name = flow.name
        self.stats: dict[Task, TaskStats] = {
            t: TaskStats(t.name) for t in flow.sorted_tasks() if not isinstance(t, Constant)
        }
        self.parameters = {t for t in self.stats if isinstance(t, Parameter)}
        # names of the tasks that map, in flow order (each gets a line in a progress display)
        self.mapped_names = list(dict.fromkeys(e.downstream_task.name for e in flow.graph.edges if e.mapped))
        self.total = len(self.stats)
        self.done = 0
        self.running = 0
        self.waiting = 0
        self.failed = 0
        self.started = time.perf_counter()
        self.ended: float | None = None

    # -- the observer protocol (aflow._engine._observer.RunObserver) --------------------------

    def task_started(self, task: Task, map_index: int | None) -> None:
        """Count a task run (or mapped child) as running."""
        stats = self.stats.get(task)
        if stats is None:
            return
        if stats.first_start is None:
            stats.first_start = time.perf_counter()
        stats.running += 1
        stats.attempts += 1
        self.running += 1

    def task_waiting(self, task: Task, map_index: int | None) -> None:
        """Count a started task run as waiting (for a concurrency slot or a retry), not running."""
        stats = self.stats.get(task)
        if stats is None:
            return
        stats.running -= 1
        stats.waiting += 1
        self.running -= 1
        self.waiting += 1

    def task_resumed(self, task: Task, map_index: int | None) -> None:
        """Count a task run that stopped waiting as running again."""
        stats = self.stats.get(task)
        if stats is None:
            return
        stats.waiting -= 1
        stats.running += 1
        self.waiting -= 1
        self.running += 1

    def task_retried(self, task: Task, map_index: int | None) -> None:
        """Count one more attempt of a task run."""
        stats = self.stats.get(task)
        if stats is not None:
            stats.attempts += 1

    def task_mapped(self, task: Task, width: int) -> None:
        """Replace the mapped task's one unit of work by its ``width`` children."""
        stats = self.stats.get(task)
        if stats is None:
            return
        stats.width = width
        self.total += width - 1

    def task_finished(self, task: Task, map_index: int | None, state: State) -> None:
        """Count a task run (or mapped child) as done, and failed if its state is."""
        stats = self.stats.get(task)
        if stats is None:
            return
        now = time.perf_counter()
        if map_index is None:
            stats.state = state
            if stats.width is not None:  # a mapped parent: its children were counted
                if stats.first_start is None:  # no children ran
                    stats.first_start = now
                stats.last_end = now
                return
            if stats.running:
                stats.running -= 1
                self.running -= 1
            if stats.first_start is None:  # a parameter, or a task decided before it started
                stats.first_start = now
        else:
            stats.running -= 1
            self.running -= 1
        stats.last_end = now
        stats.done += 1
        self.done += 1
        if state.is_failed():
            stats.failed += 1
            self.failed += 1

    # -- reading ------------------------------------------------------------------------------

    def restart(self) -> None:
        """Count the elapsed time from now."""
        self.started = time.perf_counter()

    def finish(self) -> None:
        """Note the end of the run."""
        self.ended = time.perf_counter()

    @property
    def elapsed(self) -> float:
        """Seconds since the run started (to its end, once `finish` was called)."""
        return (self.ended if self.ended is not None else time.perf_counter()) - self.started

    def waiting_by_name(self) -> dict[str, int]:
        """``{task name: task runs waiting for a slot or a retry}`` over the mapped tasks."""
        out: dict[str, int] = {}
        for stats in list(self.stats.values()):
            if stats.width is not None and stats.waiting:
                out[stats.name] = out.get(stats.name, 0) + stats.waiting
        return out

    def mapped_by_name(self) -> dict[str, tuple[int, int, int, int]]:
        """``{task name: (done, total, running, failed)}`` over the mapped tasks that have mapped."""
        out: dict[str, tuple[int, int, int, int]] = {}
        for stats in list(self.stats.values()):
            if stats.width is None:
                continue
            d, t, r, f = out.get(stats.name, (0, 0, 0, 0))
            out[stats.name] = (d + stats.done, t + stats.width, r + stats.running, f + stats.failed)
        return out
