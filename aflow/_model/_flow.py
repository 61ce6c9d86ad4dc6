"""`Flow`: a graph of tasks, built functionally (``with Flow(...)``) or imperatively.

The graph itself (tasks, edges, constants, order, cycle checks) is a `TaskGraph` the flow owns
(``flow.graph``); the flow adds the building context, the flow-level hooks and defaults, and
running, which goes to the engine through one entry (``aflow._engine._entry``).
"""

from __future__ import annotations

import copy as _copy
import itertools
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import Token
from typing import TYPE_CHECKING, Any

from .._runtime import _gc
from ..exceptions import FlowValidationError
from ._binding import wire
from ._building import building, current_flow
from ._builtin_tasks import Parameter, as_task
from ._edge import Edge
from ._flow_running import FlowRunning
from ._graph import TaskGraph
from ._task import Task

if TYPE_CHECKING:
    from ..history import RunStore
    from ..results import Result
    from ..schedules import Schedule
    from ..states import ReferenceStates, State

__all__ = ("Flow", "current_flow")

FlowStateHandler = Callable[["Flow", "State", "State"], Any]


class Flow(FlowRunning):
    """A named graph of tasks and the edges between them.

    Args:
        name: The flow's name.
        tasks: Tasks to add.
        edges: Edges to add.
        reference_tasks: Tasks whose states decide the flow's final state (default: terminal tasks).
        state_handlers: ``(flow, old, new) -> State | None`` called on each flow state change.
        on_failure: ``(flow, state)`` called when the flow run ends Failed.
        terminal_state_handler: ``(flow, state, reference_task_states) -> State | None``, may
            replace the final state. As in Prefect 1, ``reference_task_states`` is a set of the
            reference tasks' states (a mapped task's children's); its ``by_task`` attribute maps
            each reference task to its final state (`aflow.states.ReferenceStates`).
        max_concurrency: Default bound on task bodies running at once (None: unbounded).
        concurrency: Default per-tag limits on running task bodies, ``{"db": 5}``.
        schedule: When the flow runs under `serve` (an `aflow.schedules.Schedule`).
        result: The default `aflow.results.Result` of its tasks (for checkpoints and targets).
        checkpoint: Whether tasks write their results by default (a task's own setting wins).
        history: The run store every run of the flow records in (an open
            `aflow.history.RunStore` or a SQLite file's path), unless the run is given its own.
    """

    def __init__(
        self,
        name: str,
        *,
        tasks: Iterable[Task] | None = None,
        edges: Iterable[Edge] | None = None,
        reference_tasks: Iterable[Task] | None = None,
        state_handlers: Iterable[FlowStateHandler] | None = None,
        on_failure: Callable[[Flow, State], Any] | None = None,
        terminal_state_handler: Callable[[Flow, State, ReferenceStates], State | Awaitable[State | None] | None]
        | None = None,
        max_concurrency: int | None = None,
        concurrency: dict[str, int] | None = None,
        schedule: Schedule | None = None,
        result: Result | None = None,
        checkpoint: bool | None = None,
        history: RunStore | str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"A flow needs a non-empty name, got {name!r}")
        self.graph = TaskGraph(name)
        """The flow's `TaskGraph`: its tasks, edges and constants, in order."""
        self.state_handlers: list[FlowStateHandler] = list(state_handlers or ())
        self.on_failure = on_failure
        self.terminal_state_handler = terminal_state_handler
        self.max_concurrency = max_concurrency
        self.concurrency: dict[str, int] = dict(concurrency or {})
        self.schedule = schedule
        self.result = result
        self.checkpoint = checkpoint
        self.history = history
        self._tokens: list[Token[Flow | None]] = []
        for t in tasks or ():
            self.add_task(t)
        for e in edges or ():
            self.add_edge(e.upstream_task, e.downstream_task, e.key, e.mapped, e.flattened)
        if reference_tasks is not None:
            self.set_reference_tasks(reference_tasks)

    @property
    def name(self) -> str:
        """The flow's name."""
        return self.graph.name

    @name.setter
    def name(self, value: str) -> None:
        self.graph.name = value

    @property
    def constants(self) -> dict[Task, dict[str, Any]]:
        """Plain values bound to run arguments: task → {argument: value}."""
        return self.graph.constants

    def __repr__(self) -> str:
        return f"<Flow: {self.name!r}, {len(self.graph)} tasks>"

    def __enter__(self) -> Flow:
        self._tokens.append(building.set(self))
        _gc.relax(build=True)  # building a wide flow allocates many long-lived objects at once
        return self

    def __exit__(self, *exc: object) -> None:
        _gc.restore(build=True)
        building.reset(self._tokens.pop())

    # -- introspection ------------------------------------------------------------------------

    @property
    def tasks(self) -> set[Task]:
        """Every task of the flow (a new set; ``flow.graph.tasks`` is the ordered view)."""
        return set(self.graph.tasks)

    @property
    def edges(self) -> set[Edge]:
        """Every edge of the flow (a new set; ``flow.graph.edges`` is the ordered view)."""
        return set(self.graph.edges)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.sorted_tasks())

    def __len__(self) -> int:
        return len(self.graph)

    def __contains__(self, task: object) -> bool:
        return task in self.graph

    @property
    def slugs(self) -> dict[Task, str]:
        """Each task's slug."""
        return {t: t.slug for t in self.graph.tasks if t.slug is not None}

    def _known(self, task: Task) -> Task:
        if task not in self.graph:
            raise ValueError(
                f"Task {task!r} was not found in flow {self.name!r}: a call binds a copy of a task "
                "template, so ask about the task the call returned"
            )
        return task

    def edges_to(self, task: Task) -> set[Edge]:
        """The edges into ``task``.

        Raises:
            ValueError: If ``task`` is not in the flow.
        """
        return set(self.graph.edges_into(self._known(task)))

    def edges_from(self, task: Task) -> set[Edge]:
        """The edges out of ``task``.

        Raises:
            ValueError: If ``task`` is not in the flow.
        """
        return set(self.graph.edges_out_of(self._known(task)))

    def upstream_tasks(self, task: Task) -> set[Task]:
        """The tasks ``task`` directly depends on.

        Raises:
            ValueError: If ``task`` is not in the flow.
        """
        return {e.upstream_task for e in self.graph.edges_into(self._known(task))}

    def downstream_tasks(self, task: Task) -> set[Task]:
        """The tasks that directly depend on ``task``.

        Raises:
            ValueError: If ``task`` is not in the flow.
        """
        return {e.downstream_task for e in self.graph.edges_out_of(self._known(task))}

    def root_tasks(self) -> set[Task]:
        """Tasks with no upstream."""
        graph = self.graph
        return {t for t in graph.tasks if not graph.edges_into(t)}

    def terminal_tasks(self) -> set[Task]:
        """Tasks with no downstream."""
        graph = self.graph
        return {t for t in graph.tasks if not graph.edges_out_of(t)}

    def reference_tasks(self) -> set[Task]:
        """Tasks whose states decide the flow's final state: the set ones, else the terminal ones.

        Tasks flagged ``not_reference_task`` (a resource's cleanup) are left out: their upstreams
        count as terminal if nothing else depends on them.
        """
        return self.graph.reference_tasks()

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        """Choose the tasks whose states decide the flow's final state.

        Raises:
            ValueError: If a task is not in the flow.
        """
        self.graph.set_reference_tasks(tasks)

    def parameters(self) -> set[Parameter]:
        """The flow's parameters."""
        return self.graph.parameters()

    def get_tasks(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        task_type: type | None = None,
    ) -> list[Task]:
        """The tasks matching every given filter (``tags``: having all of them)."""
        wanted = frozenset(tags or ())
        return [
            t
            for t in self.graph.tasks
            if (name is None or t.name == name)
            and (slug is None or t.slug == slug)
            and wanted <= t.tags
            and (task_type is None or isinstance(t, task_type))
        ]

    def sorted_tasks(self, root_tasks: Iterable[Task] | None = None) -> list[Task]:
        """Tasks in dependency order (upstreams first).

        Args:
            root_tasks: If given, only these and the tasks downstream of them.

        Raises:
            FlowValidationError: If the flow has a cycle.
        """
        return self.graph.sorted_tasks(root_tasks)

    def validate(self) -> None:
        """Check the whole flow.

        No cycle, reference tasks and edge ends in the flow, edge keys accepted by ``run``.

        Raises:
            FlowValidationError: Naming the problem.
        """
        self.graph.validate()

    # -- building -----------------------------------------------------------------------------

    def add_task(self, task: Task) -> Task:
        """Add a task (no edges); a no-op if it is already in the flow.

        Raises:
            FlowValidationError: If another task of the flow has the same slug, or another
                Parameter the same name.
        """
        return self.graph.add_task(task)

    def add_edge(
        self,
        upstream_task: Any,
        downstream_task: Task,
        key: str | None = None,
        mapped: bool = False,
        flattened: bool = False,
    ) -> Edge:
        """Add an edge; ``upstream_task`` may be a value (it becomes a Constant task).

        Raises:
            FlowValidationError: For an upstream of a Parameter, a key ``run`` does not accept,
                a key bound twice, or an edge that closes a cycle.
        """
        if not isinstance(upstream_task, Task):
            if isinstance(downstream_task, Parameter):  # refused before a Constant is made for nothing
                raise FlowValidationError(f"Parameter {downstream_task.name!r} cannot have upstream tasks")
            upstream_task = as_task(upstream_task, self)
        return self.graph.add_edge(upstream_task, downstream_task, key, mapped, flattened)

    def set_dependencies(
        self,
        task: Task,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Any] | None = None,
        keyword_tasks: dict[str, Any] | None = None,
        mapped: bool = False,
    ) -> None:
        """Add ``task`` and its edges.

        Ordering edges come from ``upstream_tasks`` and go to ``downstream_tasks``; data edges
        (or constants) come from ``keyword_tasks``.

        Args:
            task: The task to wire.
            upstream_tasks: Tasks that must finish first (may be wrapped in `unmapped`).
            downstream_tasks: Tasks that must wait for ``task``.
            keyword_tasks: ``run`` argument name → task or value.
            mapped: Map over every upstream not wrapped in `unmapped`.

        Plain values in ``upstream_tasks`` and ``downstream_tasks`` become `Constant` tasks.
        If anything is refused, the flow is left as it was before the call.

        Raises:
            FlowValidationError: For a key ``run`` does not accept or bound twice, a cycle, or
                an upstream of a Parameter.
        """
        graph = self.graph
        if keyword_tasks and not (mapped or upstream_tasks or downstream_tasks) and graph.add_call(task, keyword_tasks):
            return  # a new task called with tasks of the flow and scalars: the common case, in one step
        marks = graph.marks(task)
        try:
            wire(self, task, upstream_tasks, downstream_tasks, keyword_tasks, mapped)
        except BaseException:
            graph.roll_back(task, marks)
            raise

    def chain(self, *tasks: Task) -> None:
        """Make each task depend on the one before it."""
        for up, down in itertools.pairwise(tasks):
            self.set_dependencies(down, upstream_tasks=[up])

    def update(
        self,
        flow: Flow,
        merge_parameters: bool = False,
        validate: bool | None = None,
        merge_reference_tasks: bool = False,
    ) -> None:
        """Add every task, edge and constant of ``flow`` to this flow (Prefect 1's signature).

        Tasks and edges already here (a shared task) are kept as they are. If anything is
        refused, this flow is left as it was.

        Args:
            flow: The flow to merge in.
            merge_parameters: Replace each parameter of this flow that has the name of one of
                ``flow``'s by that one (rewired in its place), instead of refusing two
                parameters with one name. Implies ``validate``.
            validate: Check the whole merged flow (`validate`); edges are checked as they are
                added either way.
            merge_reference_tasks: Add ``flow``'s reference tasks to this flow's.

        Raises:
            FlowValidationError: For two tasks with one slug (or two parameters with one name,
                without ``merge_parameters``), or a run argument bound twice.
        """
        backup = self.copy()
        try:
            self._merge(flow, merge_parameters)
            if merge_parameters or validate:
                self.validate()
        except BaseException:
            tokens = self._tokens
            self.__dict__.update(backup.__dict__)
            self._tokens = tokens
            raise
        if merge_reference_tasks:
            chosen = flow.graph.chosen_reference_tasks
            if chosen:
                self.graph.set_reference_tasks(self.graph.chosen_reference_tasks | chosen)

    def _merge(self, flow: Flow, merge_parameters: bool) -> None:
        if merge_parameters:
            theirs = {p.name: p for p in flow.parameters()}
            for p in self.parameters():
                if p.name in theirs and theirs[p.name] is not p:
                    self.replace(p, theirs[p.name])
        graph = self.graph
        for t in flow.graph.tasks:
            graph.add_task(t)
        for e in flow.graph.edges:
            if e not in graph.edges:
                self.add_edge(e.upstream_task, e.downstream_task, e.key, e.mapped, e.flattened)
        for t, consts in flow.constants.items():
            mine = self.constants.get(t, {})
            for key, value in consts.items():
                if key in mine and mine[key] is value:
                    continue  # already bound here (a shared task), like an edge already present
                self.set_dependencies(t, keyword_tasks={key: value})

    def replace(self, old: Task, new: Any) -> None:
        """Put ``new`` in place of ``old``: same edges, constants and reference status.

        Raises:
            ValueError: If ``old`` is not in the flow.
        """
        graph = self.graph
        if old not in graph:
            raise ValueError(f"Task {old.name!r} is not in flow {self.name!r}")
        new = as_task(new, self)
        edges_in = list(graph.edges_into(old))
        edges_out = list(graph.edges_out_of(old))
        consts = dict(self.constants.get(old, {}))
        was_reference = old in graph.chosen_reference_tasks
        graph.remove(old)
        graph.add_task(new)
        for e in edges_in:
            self.add_edge(e.upstream_task, new, e.key, e.mapped, e.flattened)
        for e in edges_out:
            self.add_edge(new, e.downstream_task, e.key, e.mapped, e.flattened)
        for key, value in consts.items():
            self.set_dependencies(new, keyword_tasks={key: value})
        if was_reference:
            graph.set_reference_tasks(graph.chosen_reference_tasks | {new})

    def copy(self) -> Flow:
        """A new flow with the same tasks and edges (the tasks themselves are shared)."""
        new = _copy.copy(self)
        new.graph = self.graph.copy()
        new.concurrency = dict(self.concurrency)
        new.state_handlers = list(self.state_handlers)
        new._tokens = []
        return new
