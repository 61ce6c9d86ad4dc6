"""`TaskGraph`: a flow's tasks, edges and bound constants, ordered and checked as they are added.

`aflow.Flow` owns one and delegates to it; the engine, visualisation, run tracking, control flow
and `apply_map` read it through the public methods below. Reads return views or the stored
sequences themselves (no copies: the engine reads them once per run); only this class changes them.
"""

from __future__ import annotations

from collections.abc import Iterable, KeysView, Mapping, Sequence
from typing import Any

from ..exceptions import FlowValidationError
from ._builtin_tasks import Parameter
from ._edge import SCALARS, Edge, new_edge
from ._task import Task, require_run
from ._task_spec import NO_RUN_SPEC

__all__ = ("TaskGraph",)

_NO_EDGES: Sequence[Edge] = ()


class TaskGraph:
    """An ordered graph of tasks: tasks in insertion order, edges into and out of each task.

    Edges that would close a cycle are refused when added, so insertion order is always a
    valid run order for the engine; `sorted_tasks` gives the layered topological order.

    Args:
        name: The name errors give (the flow's).
    """

    __slots__ = (
        "_edges",
        "_edges_to",
        "_keys",
        "_parameters_cache",
        "_reference_cache",
        "_reference_tasks",
        "_slug_counts",
        "_slugs",
        "_sorted_cache",
        "_tasks",
        "_unindexed",
        "_version",
        "constants",
        "edges",
        "name",
        "tasks",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        # each task -> the edges out of it: None, the one edge, or a list of them in the order
        # they were added (no index of its own: one dict entry, one look-up, no tuple per task)
        self._tasks: dict[Task, Edge | list[Edge] | None] = {}
        self._edges: dict[Edge, None] = {}
        self.tasks: KeysView[Task] = self._tasks.keys()
        """The tasks, in the order they were added (a live read-only view)."""
        self.edges: KeysView[Edge] = self._edges.keys()
        """The edges, in the order they were added (a live read-only view)."""
        # edges into each task: a tuple (most tasks have one; no list to grow), turned into a list
        # when more are added one by one
        self._edges_to: dict[Task, Sequence[Edge]] = {}
        # run arguments bound per task, a cache for the tasks bound more than once: one key as a
        # str, more as a set; a task without an entry has the keys of its constants and edges in
        self._keys: dict[Task, str | set[str]] = {}
        # slug -> task, but for the automatic slugs add_call gives (it counts them in _unindexed;
        # they cannot collide with later automatic ones, and a given slug that looks like one
        # makes _index_slugs add them all first); None once every task is indexed as it comes
        self._slugs: dict[str, Task] = {}
        self._unindexed: int | None = 0
        self._slug_counts: dict[str, int] = {}
        self.constants: dict[Task, dict[str, Any]] = {}
        """Plain values bound to run arguments: task → {argument: value} (``Flow.constants``)."""
        self._reference_tasks: frozenset[Task] = frozenset()
        self._version = 0
        self._sorted_cache: tuple[int, list[Task]] | None = None
        self._reference_cache: tuple[int, frozenset[Task]] | None = None
        self._parameters_cache: tuple[int, frozenset[Parameter]] | None = None

    # -- reading ------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """A number that changes whenever tasks, edges, constants or reference tasks change."""
        return self._version

    @property
    def chosen_reference_tasks(self) -> frozenset[Task]:
        """The reference tasks set with `set_reference_tasks` (empty: the default applies)."""
        return self._reference_tasks

    def __contains__(self, task: object) -> bool:
        return task in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def edges_into(self, task: Task) -> Sequence[Edge]:
        """The edges into ``task``, in the order they were added (empty for an unknown task)."""
        return self._edges_to.get(task, _NO_EDGES)

    def edges_out_of(self, task: Task) -> Sequence[Edge]:
        """The edges out of ``task``, in the order they were added (empty for an unknown task)."""
        return _out(self._tasks.get(task))

    def reaches(self, start: Task, target: Task) -> bool:
        """Whether ``target`` is downstream of ``start``, directly or not."""
        tasks = self._tasks
        if not tasks.get(start):
            return False
        seen = {start}
        stack = [start]
        while stack:
            for e in _out(tasks.get(stack.pop())):
                t = e.downstream_task
                if t is target:
                    return True
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return False

    def ancestors(self, task: Task) -> set[Task]:
        """``task`` and every task it depends on, directly or not."""
        seen = {task}
        stack = [task]
        while stack:
            for edge in self._edges_to.get(stack.pop(), ()):
                up = edge.upstream_task
                if up not in seen:
                    seen.add(up)
                    stack.append(up)
        return seen

    def reference_tasks(self) -> set[Task]:
        """The chosen reference tasks, else the terminal ones (but ``not_reference_task`` ones)."""
        if self._reference_tasks:
            return set(self._reference_tasks)
        cached = self._reference_cache  # a run reads them twice (its graph for the run store, its end)
        if cached is not None and cached[0] == self._version:
            return set(cached[1])
        found = self._find_reference_tasks()
        self._reference_cache = (self._version, frozenset(found))
        return found

    def parameters(self) -> set[Parameter]:
        """The graph's Parameter tasks (cached by `version`, like the reference tasks)."""
        cached = self._parameters_cache  # a run reads them twice (its start, the run store)
        if cached is not None and cached[0] == self._version:
            return set(cached[1])
        found = {t for t in self._tasks if isinstance(t, Parameter)}
        self._parameters_cache = (self._version, frozenset(found))
        return found

    def _find_reference_tasks(self) -> set[Task]:
        tasks = self._tasks
        skip = {t for t in tasks if getattr(t, "not_reference_task", False)}
        terminal = {t for t, out in tasks.items() if not out}
        if not skip:
            return terminal
        found = {t for t, out in tasks.items() if t not in skip and all(e.downstream_task in skip for e in _out(out))}
        return found or terminal

    def sorted_tasks(self, root_tasks: Iterable[Task] | None = None) -> list[Task]:
        """Tasks in dependency order (upstreams first), layer by layer.

        Args:
            root_tasks: If given, only these and the tasks downstream of them.

        Raises:
            FlowValidationError: If the graph has a cycle.
        """
        if root_tasks is None and self._sorted_cache and self._sorted_cache[0] == self._version:
            return list(self._sorted_cache[1])
        tasks = self._tasks
        waiting = {t: len({e.upstream_task for e in self._edges_to.get(t, ())}) for t in self._tasks}
        ready = [t for t, n in waiting.items() if n == 0]
        order: list[Task] = []
        while ready:
            nxt: list[Task] = []
            for t in ready:
                order.append(t)
                for d in dict.fromkeys(e.downstream_task for e in _out(tasks[t])):
                    waiting[d] -= 1
                    if waiting[d] == 0:
                        nxt.append(d)
            ready = nxt
        if len(order) != len(self._tasks):
            stuck = sorted(t.name for t, n in waiting.items() if n > 0)
            raise FlowValidationError(f"Flow {self.name!r} has a cycle among: {', '.join(stuck)}")
        if root_tasks is None:
            self._sorted_cache = (self._version, order)
            return list(order)
        wanted: set[Task] = set()
        stack = list(root_tasks)
        while stack:
            t = stack.pop()
            if t not in wanted:
                wanted.add(t)
                stack.extend(e.downstream_task for e in _out(tasks.get(t)))
        return [t for t in order if t in wanted]

    def validate(self) -> None:
        """Check edge ends, edge keys, reference tasks and the absence of cycles.

        Raises:
            FlowValidationError: Naming the problem.
        """
        for e in self._edges:
            if e.upstream_task not in self._tasks or e.downstream_task not in self._tasks:
                raise FlowValidationError(f"{e} joins a task that is not in flow {self.name!r}")
            if e.key is not None:
                self.check_key(e.downstream_task, e.key)
        for t in self._reference_tasks:
            if t not in self._tasks:
                raise FlowValidationError(f"Reference task {t.name!r} is not in flow {self.name!r}")
        self.sorted_tasks()

    def check_key(self, task: Task, key: str) -> None:
        """Refuse binding ``key`` if ``task.run`` does not take it.

        Raises:
            FlowValidationError: Naming the arguments ``run`` takes.
        """
        spec = task.run_spec
        if not (spec.var_kw or key in spec.names):
            accepted = ", ".join(sorted(spec.names)) or "no arguments"
            raise FlowValidationError(f"{task.name}.run() has no argument {key!r} (it takes {accepted})")

    # -- changing -----------------------------------------------------------------------------

    def add_task(self, task: Task) -> Task:
        """Add a task (no edges), giving it a slug; a no-op if it is already there.

        Raises:
            TypeError: For something that is not a Task.
            FlowValidationError: If another task has the same slug, or another Parameter the
                same name.
        """
        if task in self._tasks:
            return task
        if not isinstance(task, Task):
            raise TypeError(f"Flows hold Tasks, got {task!r}: wrap values with aflow's Constant or a @task")
        if task.run_spec is NO_RUN_SPEC:
            require_run(task)
        if task.slug is not None and self._unindexed:
            self._index_slugs(task.slug)
        slugs = self._slugs
        if task.slug is None or (task.slug in slugs and task.__dict__.get("_auto_slug")):
            # an automatic slug (never a user's) is renamed when it collides, e.g. in update()
            n = self._slug_counts.get(task.name, 0) + 1
            slug = f"{task.name}-{n}"
            while slug in slugs:
                n += 1
                slug = f"{task.name}-{n}"
            self._slug_counts[task.name] = n
            task.slug = slug
            task.__dict__["_auto_slug"] = True
        elif task.slug in slugs:
            what = "name" if isinstance(task, Parameter) else "slug"
            kind = "Parameter name" if what == "name" else "slug"
            raise FlowValidationError(
                f"Flow {self.name!r} already has a task with {kind} {task.slug!r}; give one another {what}"
            )
        slugs[task.slug] = task
        self._tasks[task] = None
        self._version += 1
        return task

    def add_edge(
        self, upstream: Task, downstream: Task, key: str | None = None, mapped: bool = False, flattened: bool = False
    ) -> Edge:
        """Add an edge between two tasks (added too if new); a no-op for an edge already there.

        Raises:
            FlowValidationError: For an upstream of a Parameter, a task depending on itself, a
                key ``run`` does not accept or that is bound twice, or an edge closing a cycle.
        """
        if isinstance(downstream, Parameter):
            raise FlowValidationError(f"Parameter {downstream.name!r} cannot have upstream tasks")
        if upstream is downstream:
            raise FlowValidationError(f"Task {upstream.name!r} cannot depend on itself")
        edge = Edge(upstream, downstream, key=key, mapped=mapped, flattened=flattened)
        if edge in self._edges:
            if key is not None:  # a key is assigned once, as in Prefect 1
                raise FlowValidationError(
                    f"Argument {key!r} of {downstream.name!r} is bound twice in flow {self.name!r}: "
                    "to call the task again with new arguments, call the template again (each call "
                    "binds a copy) or bind a copy()"
                )
            return edge
        if upstream not in self._tasks:
            self.add_task(upstream)
        if downstream not in self._tasks:
            self.add_task(downstream)
        if self._tasks[downstream] is not None and self.reaches(downstream, upstream):
            raise FlowValidationError(
                f"Adding {upstream.name!r} -> {downstream.name!r} would create a cycle in flow {self.name!r}"
            )
        if key is not None:
            self._reserve_key(downstream, key)
        self._edges[edge] = None
        _append(self._edges_to, downstream, edge)
        self._add_out(upstream, edge)
        self._version += 1
        return edge

    def add_call(self, task: Task, arguments: Mapping[str, Any], fresh: bool = False) -> bool:
        """Add a new task with the arguments of one call in one step, when that is simple.

        Simple: ``task`` is not in the graph yet (nothing is downstream of it, so none of its
        edges can close a cycle) and is no Parameter, and each argument is a task of the graph
        (a data edge) or a scalar (a constant), under a name ``run`` takes. Otherwise nothing
        changes and the result is False: the caller goes the general way (`add_edge`,
        `add_constant`), which explains what is wrong, if anything. With ``fresh``, the caller
        vouches that ``task`` is a new copy (in no graph) of a task that is no Parameter, and hands
        ``arguments`` over: when they are all constants, the dict itself becomes the task's.

        Raises:
            FlowValidationError: As `add_task` (before anything changed).
        """
        tasks = self._tasks
        if not fresh and (task in tasks or isinstance(task, Parameter) or not isinstance(task, Task)):
            return False
        spec = task.run_spec
        if spec is NO_RUN_SPEC:
            return False
        names, open_kw = spec.names, spec.var_kw
        ups = 0
        for key, value in arguments.items():  # all checked before anything changes
            if not (open_kw or key in names):
                return False
            if isinstance(value, Task):
                if value not in tasks or not key.isidentifier():
                    return False
                ups += 1
            elif type(value) not in SCALARS:
                return False
        attrs = task.__dict__
        if "slug" in attrs:
            self.add_task(task)  # the user's slug, checked
        else:  # add_task's automatic slug, inline
            name, slugs = task.name, self._slugs
            n = self._slug_counts.get(name, 0) + 1
            slug = f"{name}-{n}"
            while slugs and slug in slugs:  # (no slug is indexed in most flows)
                n += 1
                slug = f"{name}-{n}"
            self._slug_counts[name] = n
            attrs["slug"] = slug
            attrs["_auto_slug"] = True
            if self._unindexed is None:
                slugs[slug] = task
            else:
                self._unindexed += 1
            tasks[task] = None
        if ups < len(arguments):
            self.constants[task] = (
                (arguments if fresh and type(arguments) is dict else dict(arguments))
                if not ups
                else {k: v for k, v in arguments.items() if not isinstance(v, Task)}
            )
        if ups:
            edges = self._edges
            into = []
            for key, value in arguments.items():
                if not isinstance(value, Task):
                    continue
                edge = new_edge(value, task, key)
                edges[edge] = None
                into.append(edge)
                out = tasks[value]  # _add_out, inline
                if out is None:
                    tasks[value] = edge
                elif type(out) is Edge:
                    tasks[value] = [out, edge]
                else:
                    out.append(edge)
            self._edges_to[task] = tuple(into)
        self._version += 1
        return True

    def add_constant(self, task: Task, key: str, value: Any) -> None:
        """Bind a plain value to a run argument: kept out of the edges, passed to ``run``.

        Raises:
            FlowValidationError: For a key ``run`` does not accept or that is bound twice.
        """
        self._reserve_key(task, key)
        consts = self.constants.get(task)
        if consts is None:
            self.constants[task] = {key: value}
        else:
            consts[key] = value
        self._version += 1

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        """Choose the tasks whose states decide a run's final state.

        Raises:
            ValueError: If a task is not in the graph.
        """
        chosen = frozenset(tasks)
        missing = [t.name for t in chosen if t not in self._tasks]
        if missing:
            raise ValueError(f"Reference tasks are not in flow {self.name!r}: {', '.join(missing)}")
        self._reference_tasks = chosen
        self._version += 1

    def marks(self, task: Task) -> tuple[int, int, int]:
        """Where the graph stands, for `roll_back`: numbers of tasks, edges and ``task``'s constants."""
        consts = self.constants.get(task)
        return len(self._tasks), len(self._edges), len(consts) if consts else 0

    def roll_back(self, task: Task, marks: tuple[int, int, int]) -> None:
        """Drop what was added since `marks` was taken (tasks, edges and ``task``'s constants).

        Tasks, edges and constants are insertion-ordered dicts: what came later is at their ends.
        """
        n_tasks, n_edges, n_consts = marks
        for e in list(self._edges)[n_edges:]:
            self._edges.pop(e, None)
            _discard(self._edges_to, e.downstream_task, e)
            self._discard_out(e.upstream_task, e)
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
            self.remove(t)
            if t.__dict__.pop("_auto_slug", None):
                t.__dict__.pop("slug", None)  # as it was before it joined
        self._version += 1

    def remove(self, task: Task) -> None:
        """Take ``task`` out with its edges and constants (a no-op for an unknown task)."""
        for e in [*self._edges_to.pop(task, ()), *_out(self._tasks.get(task))]:
            self._edges.pop(e, None)
            other = e.upstream_task if e.downstream_task is task else e.downstream_task
            if e in self._edges_to.get(other, ()):
                _discard(self._edges_to, other, e)
            if e in _out(self._tasks.get(other)):
                self._discard_out(other, e)
            if e.key is not None and e.downstream_task is not task:
                self._release_key(e.downstream_task, e.key)
        self._keys.pop(task, None)
        self.constants.pop(task, None)
        self._tasks.pop(task, None)
        if task in self._reference_tasks:
            self._reference_tasks = self._reference_tasks - {task}
        if task.slug is not None and self._slugs.get(task.slug) is task:
            del self._slugs[task.slug]
        self._version += 1

    def copy(self) -> TaskGraph:
        """A new graph with the same tasks, edges and constants (the tasks themselves are shared)."""
        new = TaskGraph(self.name)
        new._tasks = {t: out if type(out) is not list else list(out) for t, out in self._tasks.items()}
        new._edges = dict(self._edges)
        new.tasks = new._tasks.keys()
        new.edges = new._edges.keys()
        new._edges_to = {t: es if type(es) is tuple else list(es) for t, es in self._edges_to.items()}
        new._keys = {t: ks if isinstance(ks, str) else set(ks) for t, ks in self._keys.items()}
        new._slugs = dict(self._slugs)
        new._unindexed = self._unindexed
        new._slug_counts = dict(self._slug_counts)
        new.constants = {t: dict(c) for t, c in self.constants.items()}
        new._reference_tasks = self._reference_tasks
        new._version = self._version
        return new

    def _index_slugs(self, given: str) -> None:
        """Index the automatic slugs add_call gave, if ``given`` could be one of them."""
        name, dash, number = given.rpartition("-")
        if dash and number.isdigit() and name in self._slug_counts:
            slugs = self._slugs
            for t in self._tasks:
                if t.slug is not None:
                    slugs.setdefault(t.slug, t)
            self._unindexed = None  # from now on every task is indexed as it comes

    def _add_out(self, task: Task, edge: Edge) -> None:
        """Add ``edge`` to the edges out of ``task`` (in the graph): the edge alone, then a list."""
        out = self._tasks[task]
        if out is None:
            self._tasks[task] = edge
        elif type(out) is Edge:
            self._tasks[task] = [out, edge]
        else:
            out.append(edge)

    def _discard_out(self, task: Task, edge: Edge) -> None:
        """Take ``edge`` out of the edges out of ``task`` (as ``list.remove``)."""
        out = self._tasks[task]
        if type(out) is list:
            out.remove(edge)
        elif out == edge:
            self._tasks[task] = None
        else:
            raise ValueError(f"{edge} is not an edge out of {task.name!r}")

    def _reserve_key(self, task: Task, key: str) -> None:
        self.check_key(task, key)
        keys = self._keys.get(task)
        if keys is None:  # not cached yet: the keys of its edges and constants
            bound = {e.key for e in self._edges_to.get(task, ()) if e.key is not None}
            bound.update(self.constants.get(task, ()))
            keys = self._keys[task] = bound if len(bound) > 1 else next(iter(bound), key)
            if not bound:
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


def _append(index: dict[Task, Sequence[Edge]], task: Task, edge: Edge) -> None:
    """Add ``edge`` to ``task``'s edges in ``index``: a tuple of one, then a list."""
    have = index.get(task)
    if have is None:
        index[task] = (edge,)
    elif type(have) is list:
        have.append(edge)
    else:
        index[task] = [*have, edge]


def _out(out: Edge | list[Edge] | None) -> Sequence[Edge]:
    """The edges out of a task as a sequence, from what `TaskGraph._tasks` holds for it."""
    if out is None:
        return _NO_EDGES
    if type(out) is Edge:
        return (out,)
    return out


def _discard(index: dict[Task, Sequence[Edge]], task: Task, edge: Edge) -> None:
    """Take ``edge`` out of ``task``'s edges in ``index`` (as ``list.remove``)."""
    have = index[task]
    if type(have) is list:
        have.remove(edge)
    else:
        kept = list(have)
        kept.remove(edge)
        index[task] = tuple(kept)
