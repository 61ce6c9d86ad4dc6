"""The engine's observer hook: how a progress display (or the CLI) follows a flow run.

`FlowRunner.observer` is None by default, and the scheduler then pays one attribute check per
event. When set, the scheduler calls it synchronously, in the event loop, as tasks start and
finish. Observers must be quick and must not raise; they see states after the engine decided
them (state handlers included) and may not change them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .._model._task import Task
    from ..states import State

__all__ = ("RunObserver", "SlotObserver")


class RunObserver(Protocol):
    """What `FlowRunner` reports to its ``observer``.

    ``map_index`` is None for a task (or a mapped task's parent), else the child's index.
    """

    def task_started(self, task: Task, map_index: int | None) -> None:
        """A task run (or mapped child) starts: its inputs are ready."""

    def task_mapped(self, task: Task, width: int) -> None:
        """A mapped task will run ``width`` children."""

    def task_finished(self, task: Task, map_index: int | None, state: State) -> None:
        """A task run (or mapped child, or a mapped task's parent) reached its final state.

        Parameters and constants are reported here too, without a start.
        """


class SlotObserver(RunObserver, Protocol):
    """An observer that is also told about concurrency slots and retries (optional methods).

    The engine calls these only on an observer that has `task_waiting`; `RunTracker` does.
    """

    def task_waiting(self, task: Task, map_index: int | None) -> None:
        """A started task run waits (for a concurrency slot, or a retry's delay): no body runs."""

    def task_resumed(self, task: Task, map_index: int | None) -> None:
        """The task run stopped waiting (it got its slot, or its retry starts): its body runs."""

    def task_retried(self, task: Task, map_index: int | None) -> None:
        """An attempt of the task run failed and another one will follow."""
