"""The objects behind `aflow.context`: one per flow run, one per task run."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._model._task import Task
    from .._persist._history._batches import Recorder
    from ._clock import Clock
    from ._run_resources import RunResources

__all__ = ("FlowRunContext", "TaskRunContext", "flow_run_var", "task_run_var")


class FlowRunContext:
    """What a flow run shares with its tasks (read through `aflow.context`)."""

    __slots__ = (
        "clock",
        "date",
        "extra",
        "flow_name",
        "flow_run_id",
        "flow_run_name",
        "parameters",
        "recorder",
        "resources",
    )

    def __init__(
        self,
        *,
        flow_name: str,
        flow_run_id: str,
        flow_run_name: str,
        parameters: dict[str, Any],
        date: datetime,
        extra: dict[str, Any],
        clock: Clock,
        resources: RunResources,
    ) -> None:
        self.flow_name = flow_name
        self.flow_run_id = flow_run_id
        self.flow_run_name = flow_run_name
        self.parameters = parameters
        self.date = date
        self.extra = extra
        self.clock = clock
        self.resources = resources
        self.recorder: Recorder | None = None  # the run store's recorder: where task log records go


class TaskRunContext:
    """One task run (one child of a mapped task, one attempt sequence) as seen by its body."""

    __slots__ = (
        "flow_run",
        "loop_count",
        "loop_result",
        "map_index",
        "run_count",
        "stdout_tail",
        "task",
        "task_run_name",
    )

    def __init__(self, task: Task, flow_run: FlowRunContext | None, map_index: int | None) -> None:
        self.task = task
        self.flow_run = flow_run
        self.map_index = map_index
        self.run_count = 1
        self.loop_count: int | None = None
        self.loop_result: Any = None
        self.task_run_name: str | None = None
        self.stdout_tail = ""

    @property
    def full_name(self) -> str:
        """``name`` or ``name[map_index]``."""
        name = self.task.name
        return name if self.map_index is None else f"{name}[{self.map_index}]"

    @property
    def task_run_id(self) -> str:
        """A run-unique id: ``<flow_run_id>/<slug>`` plus ``[map_index]`` for a mapped child."""
        prefix = self.flow_run.flow_run_id if self.flow_run else "local"
        suffix = "" if self.map_index is None else f"[{self.map_index}]"
        return f"{prefix}/{self.task.slug}{suffix}"


flow_run_var: ContextVar[FlowRunContext | None] = ContextVar("aflow_flow_run", default=None)
task_run_var: ContextVar[TaskRunContext | None] = ContextVar("aflow_task_run", default=None)
