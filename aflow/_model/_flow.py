"""`Flow`: a graph of tasks, built functionally (``with Flow(...)``) or imperatively."""

from __future__ import annotations

import copy as _copy
import itertools
import os
import reprlib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Literal

from .._engine import _gc
from .._engine._blocking import DEFAULT_WARN_BLOCKING
from .._engine._flow_run import FlowRun, explained_if_not_awaited
from ..exceptions import FlowValidationError
from ._builtin_tasks import Parameter, as_task, contains_task
from ._edge import Edge, flatten, is_mappable, mapped, unmapped
from ._task import _NO_RUN_SPEC, Task, _require_run

if TYPE_CHECKING:
    from rich.console import Console

    from .._engine._scheduler import FlowRunner
    from .._runtime._clock import Clock
    from .._surface._progress import ProgressDisplay
    from .._surface._visualize import FlowGraph
    from ..executors import Executor
    from ..history import RunStore
    from ..results import Result
    from ..schedules import Schedule
    from ..states import ReferenceStates, State

__all__ = ("Flow", "current_flow")

_building: ContextVar[Flow | None] = ContextVar("aflow_building_flow", default=None)
_SCALARS = frozenset({int, float, str, bytes, bool, type(None)})  # values that can hold no task

FlowStateHandler = Callable[["Flow", "State", "State"], Any]


def current_flow() -> Flow | None:
    """The flow of the enclosing ``with Flow(...)`` block, if any."""
    return _building.get()


class Flow:
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
        self.name = name
        self._tasks: dict[Task, None] = {}
        self._edges: dict[Edge, None] = {}
        self._edges_to: dict[Task, list[Edge]] = {}
        self._edges_from: dict[Task, list[Edge]] = {}
        # run arguments bound per task: one key as a str (the common case, no set), more as a set
        self._keys: dict[Task, str | set[str]] = {}
        self._slugs: dict[str, Task] = {}
        self._slug_counts: dict[str, int] = {}
        self.constants: dict[Task, dict[str, Any]] = {}
        self._reference_tasks: set[Task] = set()
        self._version = 0
        self._sorted_cache: tuple[int, list[Task]] | None = None
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

    def __repr__(self) -> str:
        return f"<Flow: {self.name!r}, {len(self._tasks)} tasks>"

    def __enter__(self) -> Flow:
        self._tokens.append(_building.set(self))
        _gc.relax()  # building a wide flow allocates many long-lived objects at once
        return self

    def __exit__(self, *exc: object) -> None:
        _gc.restore()
        _building.reset(self._tokens.pop())

    # -- introspection ------------------------------------------------------------------------

    @property
    def tasks(self) -> set[Task]:
        """Every task of the flow."""
        return set(self._tasks)

    @property
    def edges(self) -> set[Edge]:
        """Every edge of the flow."""
        return set(self._edges)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.sorted_tasks())

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task: object) -> bool:
        return task in self._tasks

    @property
    def slugs(self) -> dict[Task, str]:
        """Each task's slug."""
        return {t: t.slug for t in self._tasks if t.slug is not None}

    def _known(self, task: Task) -> Task:
        if task not in self._tasks:
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
        return set(self._edges_to.get(self._known(task), ()))

    def edges_from(self, task: Task) -> set[Edge]:
        """The edges out of ``task``.

        Raises:
            ValueError: If ``task`` is not in the flow.
        """
        return set(self._edges_from.get(self._known(task), ()))

    def upstream_tasks(self, task: Task) -> set[Task]:
        """The tasks ``task`` directly depends on.

        Raises:
            ValueError: If ``task`` is not in the flow.
        """
        return {e.upstream_task for e in self._edges_to.get(self._known(task), ())}

    def downstream_tasks(self, task: Task) -> set[Task]:
        """The tasks that directly depend on ``task``.

        Raises:
            ValueError: If ``task`` is not in the flow.
        """
        return {e.downstream_task for e in self._edges_from.get(self._known(task), ())}

    def root_tasks(self) -> set[Task]:
        """Tasks with no upstream."""
        return {t for t in self._tasks if not self._edges_to.get(t)}

    def terminal_tasks(self) -> set[Task]:
        """Tasks with no downstream."""
        return {t for t in self._tasks if not self._edges_from.get(t)}

    def reference_tasks(self) -> set[Task]:
        """Tasks whose states decide the flow's final state: the set ones, else the terminal ones.

        Tasks flagged ``not_reference_task`` (a resource's cleanup) are left out: their upstreams
        count as terminal if nothing else depends on them.
        """
        if self._reference_tasks:
            return set(self._reference_tasks)
        skip = {t for t in self._tasks if getattr(t, "not_reference_task", False)}
        if not skip:
            return self.terminal_tasks()
        found = {
            t
            for t in self._tasks
            if t not in skip and all(e.downstream_task in skip for e in self._edges_from.get(t, ()))
        }
        return found or self.terminal_tasks()

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        """Choose the tasks whose states decide the flow's final state.

        Raises:
            ValueError: If a task is not in the flow.
        """
        tasks = set(tasks)
        missing = [t.name for t in tasks if t not in self._tasks]
        if missing:
            raise ValueError(f"Reference tasks are not in flow {self.name!r}: {', '.join(missing)}")
        self._reference_tasks = tasks

    def parameters(self) -> set[Parameter]:
        """The flow's parameters."""
        return {t for t in self._tasks if isinstance(t, Parameter)}

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
            for t in self._tasks
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
        if root_tasks is None and self._sorted_cache and self._sorted_cache[0] == self._version:
            return list(self._sorted_cache[1])
        wanted: set[Task] | None = None
        if root_tasks is not None:
            wanted = set()
            stack = list(root_tasks)
            while stack:
                t = stack.pop()
                if t not in wanted:
                    wanted.add(t)
                    stack.extend(e.downstream_task for e in self._edges_from.get(t, ()))
        waiting = {t: len({e.upstream_task for e in self._edges_to.get(t, ())}) for t in self._tasks}
        ready = [t for t, n in waiting.items() if n == 0]
        order: list[Task] = []
        while ready:
            nxt: list[Task] = []
            for t in ready:
                order.append(t)
                for d in dict.fromkeys(e.downstream_task for e in self._edges_from.get(t, ())):
                    waiting[d] -= 1
                    if waiting[d] == 0:
                        nxt.append(d)
            ready = nxt
        if len(order) != len(self._tasks):
            stuck = sorted(t.name for t, n in waiting.items() if n > 0)
            raise FlowValidationError(f"Flow {self.name!r} has a cycle among: {', '.join(stuck)}")
        if wanted is None:
            self._sorted_cache = (self._version, order)
            return list(order)
        return [t for t in order if t in wanted]

    def validate(self) -> None:
        """Check the whole flow.

        No cycle, reference tasks and edge ends in the flow, edge keys accepted by ``run``.

        Raises:
            FlowValidationError: Naming the problem.
        """
        for e in self._edges:
            if e.upstream_task not in self._tasks or e.downstream_task not in self._tasks:
                raise FlowValidationError(f"{e} joins a task that is not in flow {self.name!r}")
            if e.key is not None:
                self._check_key(e.downstream_task, e.key)
        for t in self._reference_tasks:
            if t not in self._tasks:
                raise FlowValidationError(f"Reference task {t.name!r} is not in flow {self.name!r}")
        self.sorted_tasks()

    # -- building -----------------------------------------------------------------------------

    def add_task(self, task: Task) -> Task:
        """Add a task (no edges); a no-op if it is already in the flow.

        Raises:
            FlowValidationError: If another task of the flow has the same slug, or another
                Parameter the same name.
        """
        if task in self._tasks:
            return task
        if not isinstance(task, Task):
            raise TypeError(f"Flows hold Tasks, got {task!r}: wrap values with aflow's Constant or a @task")
        if task.run_spec is _NO_RUN_SPEC:
            _require_run(task)
        if task.slug is None or (task.slug in self._slugs and task.__dict__.get("_auto_slug")):
            # an automatic slug (never a user's) is renamed when it collides, e.g. in update()
            n = self._slug_counts.get(task.name, 0) + 1
            slug = f"{task.name}-{n}"
            while slug in self._slugs:
                n += 1
                slug = f"{task.name}-{n}"
            self._slug_counts[task.name] = n
            task.slug = slug
            task.__dict__["_auto_slug"] = True
        elif task.slug in self._slugs:
            kind = "Parameter name" if isinstance(task, Parameter) else "slug"
            raise FlowValidationError(
                f"Flow {self.name!r} already has a task with {kind} {task.slug!r}; give one another "
                + ("name" if isinstance(task, Parameter) else "slug")
            )
        self._slugs[task.slug] = task
        self._tasks[task] = None
        self._version += 1
        return task

    def _check_key(self, task: Task, key: str) -> None:
        spec = task.run_spec
        if not (spec.var_kw or key in spec.names):
            accepted = ", ".join(sorted(spec.names)) or "no arguments"
            raise FlowValidationError(f"{task.name}.run() has no argument {key!r} (it takes {accepted})")

    def _reserve_key(self, task: Task, key: str) -> None:
        self._check_key(task, key)
        keys = self._keys.get(task)
        if keys is None:
            self._keys[task] = key
            return
        if key == keys or (isinstance(keys, set) and key in keys):
            raise FlowValidationError(f"Argument {key!r} of {task.name!r} is bound twice in flow {self.name!r}")
        if isinstance(keys, str):
            self._keys[task] = {keys, key}
        else:
            keys.add(key)

    def _release_key(self, task: Task, key: str) -> None:
        keys = self._keys.get(task)
        if keys == key:
            del self._keys[task]
        elif isinstance(keys, set):
            keys.discard(key)

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
        if isinstance(downstream_task, Parameter):
            raise FlowValidationError(f"Parameter {downstream_task.name!r} cannot have upstream tasks")
        upstream = upstream_task if isinstance(upstream_task, Task) else as_task(upstream_task, self)
        if upstream is downstream_task:
            raise FlowValidationError(f"Task {upstream.name!r} cannot depend on itself")
        edge = Edge(upstream, downstream_task, key=key, mapped=mapped, flattened=flattened)
        if edge in self._edges:
            if key is not None:  # a key is assigned once, as in Prefect 1
                raise FlowValidationError(
                    f"Argument {key!r} of {downstream_task.name!r} is bound twice in flow {self.name!r}: "
                    "to call the task again with new arguments, call the template again (each call "
                    "binds a copy) or bind a copy()"
                )
            return edge
        tasks = self._tasks
        if upstream not in tasks:
            self.add_task(upstream)
        if downstream_task not in tasks:
            self.add_task(downstream_task)
        if downstream_task in self._edges_from and self._reaches(downstream_task, upstream):
            raise FlowValidationError(
                f"Adding {upstream.name!r} -> {downstream_task.name!r} would create a cycle in flow {self.name!r}"
            )
        if key is not None:
            self._reserve_key(downstream_task, key)
        self._edges[edge] = None
        into = self._edges_to.get(downstream_task)
        if into is None:
            self._edges_to[downstream_task] = [edge]
        else:
            into.append(edge)
        out = self._edges_from.get(upstream)
        if out is None:
            self._edges_from[upstream] = [edge]
        else:
            out.append(edge)
        self._version += 1
        return edge

    def _reaches(self, start: Task, target: Task) -> bool:
        if not self._edges_from.get(start):
            return False
        seen = {start}
        stack = [start]
        while stack:
            for e in self._edges_from.get(stack.pop(), ()):
                t = e.downstream_task
                if t is target:
                    return True
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return False

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
        consts = self.constants.get(task)
        marks = (len(self._tasks), len(self._edges), len(consts) if consts else 0)
        try:
            self._wire(task, upstream_tasks, downstream_tasks, keyword_tasks, mapped)
        except BaseException:
            self._roll_back(task, *marks)
            raise

    def _wire(
        self,
        task: Task,
        upstream_tasks: Iterable[Any] | None,
        downstream_tasks: Iterable[Any] | None,
        keyword_tasks: dict[str, Any] | None,
        mapped: bool,
    ) -> None:
        if task not in self._tasks:
            self.add_task(task)
        for up in upstream_tasks or ():
            is_mapped, flattened, value = _unwrap(up, mapped)
            if is_mapped:
                _check_mappable(task, None, value)
            self.add_edge(value, task, mapped=is_mapped, flattened=flattened)
        for down in downstream_tasks or ():
            self.add_edge(task, down if isinstance(down, Task) else as_task(down, self))
        for key, arg in (keyword_tasks or {}).items():
            if not mapped:  # the common cases, without unwrapping
                if isinstance(arg, Task):
                    self.add_edge(arg, task, key=key)
                    continue
                if type(arg) in _SCALARS:
                    self._add_constant(task, key, arg)
                    continue
            is_mapped, flattened, value = _unwrap(arg, mapped)
            if is_mapped:
                _check_mappable(task, key, value)
            if is_mapped or flattened or contains_task(value):
                self.add_edge(value, task, key=key, mapped=is_mapped, flattened=flattened)
            else:
                self._add_constant(task, key, value)

    def _roll_back(self, task: Task, n_tasks: int, n_edges: int, n_consts: int) -> None:
        """Undo a failed `set_dependencies`: drop what it added after the given counts.

        Tasks, edges and constants are insertion-ordered dicts, so what the call added is at
        their ends.
        """
        for e in list(self._edges)[n_edges:]:
            self._edges.pop(e, None)
            self._edges_to[e.downstream_task].remove(e)
            self._edges_from[e.upstream_task].remove(e)
            if e.key is not None:
                self._release_key(e.downstream_task, e.key)
        consts = self.constants.get(task)
        if consts is not None:
            for key in list(consts)[n_consts:]:
                del consts[key]
                self._release_key(task, key)
            if not consts:
                del self.constants[task]
        for t in list(self._tasks)[n_tasks:]:
            self._remove(t)
            self.constants.pop(t, None)
            if t.__dict__.pop("_auto_slug", None):
                t.__dict__.pop("slug", None)  # as it was before it joined
        self._version += 1

    def _add_constant(self, task: Task, key: str, value: Any) -> None:
        """Bind a plain value: kept out of the graph, passed to ``run`` at run time."""
        self._reserve_key(task, key)
        consts = self.constants.get(task)
        if consts is None:
            self.constants[task] = {key: value}
        else:
            consts[key] = value
        self._version += 1

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
            self._reference_tasks |= flow._reference_tasks

    def _merge(self, flow: Flow, merge_parameters: bool) -> None:
        if merge_parameters:
            theirs = {p.name: p for p in flow.parameters()}
            for p in self.parameters():
                if p.name in theirs and theirs[p.name] is not p:
                    self.replace(p, theirs[p.name])
        for t in flow._tasks:
            self.add_task(t)
        for e in flow._edges:
            if e not in self._edges:
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
        if old not in self._tasks:
            raise ValueError(f"Task {old.name!r} is not in flow {self.name!r}")
        new = as_task(new, self)
        edges_in = list(self._edges_to.get(old, ()))
        edges_out = list(self._edges_from.get(old, ()))
        consts = self.constants.pop(old, {})
        self._remove(old)
        self.add_task(new)
        for e in edges_in:
            self.add_edge(e.upstream_task, new, e.key, e.mapped, e.flattened)
        for e in edges_out:
            self.add_edge(new, e.downstream_task, e.key, e.mapped, e.flattened)
        for key, value in consts.items():
            self.set_dependencies(new, keyword_tasks={key: value})
        if old in self._reference_tasks:
            self._reference_tasks.discard(old)
            self._reference_tasks.add(new)

    def _remove(self, task: Task) -> None:
        for e in self._edges_to.pop(task, []) + self._edges_from.pop(task, []):
            self._edges.pop(e, None)
            other = e.upstream_task if e.downstream_task is task else e.downstream_task
            for index in (self._edges_to, self._edges_from):
                if other in index and e in index[other]:
                    index[other].remove(e)
            if e.key is not None and e.downstream_task is not task:
                self._release_key(e.downstream_task, e.key)
        self._keys.pop(task, None)
        self._tasks.pop(task, None)
        if task.slug is not None and self._slugs.get(task.slug) is task:
            del self._slugs[task.slug]
        self._version += 1

    def copy(self) -> Flow:
        """A new flow with the same tasks and edges (the tasks themselves are shared)."""
        new = _copy.copy(self)
        new._tasks = dict(self._tasks)
        new._edges = dict(self._edges)
        new._edges_to = {t: list(es) for t, es in self._edges_to.items()}
        new._edges_from = {t: list(es) for t, es in self._edges_from.items()}
        new._keys = {t: ks if isinstance(ks, str) else set(ks) for t, ks in self._keys.items()}
        new._slugs = dict(self._slugs)
        new._slug_counts = dict(self._slug_counts)
        new.constants = {t: dict(c) for t, c in self.constants.items()}
        new._reference_tasks = set(self._reference_tasks)
        new.state_handlers = list(self.state_handlers)
        new._tokens = []
        new._sorted_cache = None
        return new

    def visualize(
        self,
        flow_state: State | None = None,
        *,
        format: Literal["dot", "mermaid"] = "dot",
        filename: str | os.PathLike[str] | None = None,
    ) -> FlowGraph:
        """The flow's graph as Graphviz DOT or Mermaid text (a ``str`` that Jupyter shows as a picture).

        A mapped task is one node; given a run's state, nodes are coloured by their final
        states and a mapped node shows its number of children and their states.

        Args:
            flow_state: A state returned by `run`, to colour the nodes by.
            format: ``"dot"`` or ``"mermaid"``.
            filename: Also write the graph there: ``.dot``/``.gv`` and ``.mmd`` files get the
                text; image suffixes (``.png``, ``.svg``, ``.pdf``...) an image drawn by Graphviz,
                which needs ``pip install aflow-engine[viz]`` and the ``dot`` program
                (``apt-get install graphviz``).

        Raises:
            ValueError: An unknown ``format``, or a ``filename`` suffix that is neither text nor image.
            ImportError: An image was asked for without the graphviz package.
            RuntimeError: An image was asked for without Graphviz's ``dot`` program.
        """
        from .._surface._visualize import visualize

        return visualize(self, flow_state, format=format, filename=filename)

    # -- running ------------------------------------------------------------------------------

    @explained_if_not_awaited
    async def run(
        self,
        parameters: dict[str, Any] | None = None,
        *,
        context: dict[str, Any] | None = None,
        max_concurrency: int | None = None,
        concurrency: dict[str, int] | None = None,
        clock: Clock | None = None,
        flow_run_name: str | None = None,
        history: RunStore | str | os.PathLike[str] | None = None,
        executor: Executor | None = None,
        progress: bool | Console | ProgressDisplay = False,
        cancel_grace: float | None = None,
        warn_blocking: float | None = DEFAULT_WARN_BLOCKING,
        history_log_level: int | str | None = None,
        **parameter_values: Any,
    ) -> State:
        """Run the flow in the current event loop and return its final state.

        ``state.result`` maps every task to its final state. Tasks start as soon as their
        upstreams finish; independent branches run concurrently. Await it (``state = await
        flow.run()``); a script without an event loop calls `run_sync` instead. Used without
        ``await``, its attributes raise `aflow.exceptions.NotAwaitedError` saying so.

        Args:
            parameters: Parameter values by name.
            context: Extra values for `aflow.context`.
            max_concurrency: Bound on task bodies running at once (default: the flow's).
            concurrency: Per-tag limits, ``{"db": 5}``: at most 5 bodies of tasks tagged "db"
                run at once (merged over the flow's ``concurrency``). A task with several limited
                tags holds a slot of each.
            clock: The clock for retry delays (tests pass `aflow.testing.FakeClock`).
            flow_run_name: A name for this run (default: the run id).
            history: Record the run's states in a run store: an open `aflow.history.RunStore`,
                or the path of a SQLite file (opened and closed for this run); default: the
                flow's ``history``. Cached results are kept there too, so a cache survives a
                restart.
            executor: Where task bodies run (`aflow.executors`); by default here, async bodies
                on this loop and sync ones in worker threads.
            progress: Show a live display of the run (tasks done, running and failed, per
                mapped task too) in a terminal or Jupyter; nothing is written elsewhere. True,
                or a rich ``Console`` to draw on. Needs rich (``pip install aflow-engine[cli]``).
            cancel_grace: Seconds a cancelled task body (the run cancelled, or a task's
                ``timeout`` reached) gets to end before the run gives up on it, marks it
                Cancelled (or TimedOut) with a message saying it ignored cancellation, and goes
                on (default 10). A body is cancelled once, never again until then.
            warn_blocking: Log a WARNING (logger ``aflow.blocking``) naming any ``async def`` task
                whose body blocks the event loop for this many seconds or more (``time.sleep``,
                blocking I/O), with how long it blocked (default 0.25); None turns the check off.
            history_log_level: Keep the task log records at or above this level in the run store
                (a name such as ``"DEBUG"`` or a number; default INFO); a task's own
                ``history_log_level`` wins.
            **parameter_values: More parameter values, by keyword.

        Raises:
            ParameterError: For unknown parameters or missing required ones.
            FlowValidationError: If the flow is invalid (a cycle...).
            ValueError: If ``cancel_grace`` or ``warn_blocking`` is not a non-negative number.
        """
        runner = self._runner(
            parameters,
            parameter_values,
            context=context,
            max_concurrency=max_concurrency,
            concurrency=concurrency,
            clock=clock,
            flow_run_name=flow_run_name,
            history=history,
            executor=executor,
            cancel_grace=cancel_grace,
            warn_blocking=warn_blocking,
            history_log_level=history_log_level,
        )
        if progress is not False:
            from .._surface._progress import run_with_progress

            return await run_with_progress(runner, progress)
        return await runner.run()

    def start(
        self,
        parameters: dict[str, Any] | None = None,
        *,
        context: dict[str, Any] | None = None,
        max_concurrency: int | None = None,
        concurrency: dict[str, int] | None = None,
        clock: Clock | None = None,
        flow_run_name: str | None = None,
        history: RunStore | str | os.PathLike[str] | None = None,
        executor: Executor | None = None,
        progress: bool | Console | ProgressDisplay = False,
        cancel_grace: float | None = None,
        warn_blocking: float | None = DEFAULT_WARN_BLOCKING,
        history_log_level: int | str | None = None,
        **parameter_values: Any,
    ) -> FlowRun:
        """Start a run in the background of the running event loop and return its handle.

        Takes the same arguments as `run`. ``await handle`` gives the final state;
        ``handle.cancel()`` stops the run: running bodies are cancelled, unfinished tasks end
        Cancelled, and the final state is Cancelled.

        Raises:
            RuntimeError: If no event loop is running.
        """
        import asyncio

        runner = self._runner(
            parameters,
            parameter_values,
            context=context,
            max_concurrency=max_concurrency,
            concurrency=concurrency,
            clock=clock,
            flow_run_name=flow_run_name,
            history=history,
            executor=executor,
            cancel_grace=cancel_grace,
            warn_blocking=warn_blocking,
            history_log_level=history_log_level,
        )
        if progress is False:
            return FlowRun(runner, asyncio.get_running_loop().create_task(runner.run()))
        from .._surface._progress import ProgressDisplay, run_with_progress

        display = ProgressDisplay.of(progress)  # a bad value fails here, not in the background
        return FlowRun(runner, asyncio.get_running_loop().create_task(run_with_progress(runner, display)))

    def _runner(
        self,
        parameters: dict[str, Any] | None,
        parameter_values: dict[str, Any],
        *,
        max_concurrency: int | None,
        concurrency: dict[str, int] | None,
        history: RunStore | str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> FlowRunner:
        if _building.get() is self:
            raise RuntimeError(f"Flow {self.name!r} cannot run inside its own `with` block; run it after the block")
        from .._engine._scheduler import FlowRunner

        return FlowRunner(
            self,
            {**(parameters or {}), **parameter_values},
            max_concurrency=max_concurrency if max_concurrency is not None else self.max_concurrency,
            concurrency={**self.concurrency, **(concurrency or {})},
            history=history if history is not None else self.history,
            **options,
        )

    async def serve(self, **kwargs: Any) -> list[State]:
        """Run the flow at each event of its schedule, in the current event loop.

        Args:
            **kwargs: Passed to ``aflow._schedules._serve.serve``: ``schedule`` (default: ``self.schedule``),
                ``overlap`` (``"skip"``, ``"queue"`` or ``"allow"``), ``parameters``, ``clock``,
                ``max_runs`` and ``on_run``.

        Returns:
            The final state of every run, once ``max_runs`` runs are done or the schedule ends.
        """
        from .._schedules._serve import serve

        return await serve(self, **kwargs)

    def run_sync(self, parameters: dict[str, Any] | None = None, **kwargs: Any) -> State:
        """Run the flow from plain sync code (a script) and return its final state.

        Takes the same arguments as `run`.

        Raises:
            RuntimeError: If called inside a running event loop: there, ``await flow.run()``.
        """
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "flow.run_sync() cannot be called from a running event loop (a notebook, an async app): "
                "use `await flow.run(...)` there instead"
            )
        import anyio

        async def main() -> State:
            return await self.run(parameters, **kwargs)

        return anyio.run(main)


def _check_mappable(task: Task, key: str | None, value: Any) -> None:
    """Refuse, while the flow is built, to map over a literal value that is not a sequence.

    The engine maps over sized values other than strings, bytes and dicts; a task's result is
    only known when it runs.

    Raises:
        FlowValidationError: Naming the task, the argument and what to pass instead.
    """
    if isinstance(value, Task) or is_mappable(value):
        return
    what = f"argument {key!r}" if key is not None else "an upstream task"
    shown = reprlib.repr(value)
    raise FlowValidationError(
        f"Cannot map {task.name!r} over {what}: it is the {type(value).__name__} {shown}, not a sequence; "
        f"map over a list (e.g. [{shown}]), or wrap the argument in unmapped() to pass it whole to every child"
    )


def _unwrap(value: Any, mapped_default: bool) -> tuple[bool, bool, Any]:
    """Strip `unmapped`/`mapped`/`flatten` annotations: (is_mapped, flattened, value)."""
    is_mapped, flattened = mapped_default, False
    while True:
        if isinstance(value, unmapped):
            is_mapped = False
        elif isinstance(value, mapped):
            is_mapped = True
        elif isinstance(value, flatten):
            flattened = True
        else:
            return is_mapped, flattened, value
        value = value.value
