"""`Task`: the unit of work, its template attributes and how calls bind it into a flow."""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar, final

from .. import triggers as _triggers
from .._runtime._logging import RunLoggerAdapter, get_logger, level_number
from ..exceptions import TaskDefinitionError
from ._building import building
from ._task_spec import (
    NO_RUN_SPEC,
    RunSpec,
    check_retry_on,
    check_run,
    checked_init,
    infer_nout,
    init_with_hints,
    seconds,
)

if TYPE_CHECKING:
    from ..states import State
    from ._flow import Flow

__all__ = ("GetItem", "Task", "require_run", "tags")

StateHandler = Callable[["Task", "State", "State"], Any]
F = TypeVar("F", bound=Callable[..., Any])

_tags_var: ContextVar[frozenset[str]] = ContextVar("aflow_tags", default=frozenset())


@contextmanager
def tags(*names: str) -> Iterator[None]:
    """Add ``names`` to the tags of every task created inside the block.

    Args:
        *names: Tags to add.
    """
    token = _tags_var.set(_tags_var.get() | frozenset(names))
    try:
        yield
    finally:
        _tags_var.reset(token)


def require_run(task: Task) -> None:
    """Refuse a task whose class never defines ``run``, when it is bound or added to a flow.

    Callers check first (cheaply) that the task has the spec of no run: ``NO_RUN_SPEC``.

    Raises:
        TaskDefinitionError: Naming the class and what to add.
    """
    if type(task).run is Task.run and "run" not in task.__dict__:
        name = type(task).__name__
        raise TaskDefinitionError(
            f"{name} has no run() method, so it has nothing to do: define `async def run(self, ...)` "
            f"(or a plain `def run`) in class {name}, or make the task from a function with @task"
        )


class Task:
    """Base class of all tasks: subclass it and define ``run``.

    ``__init__`` stores template configuration (static values); values coming from other tasks
    go to the call, inside a flow: ``MyTask(x=1)(y=upstream)``. ``run`` may be ``async def``
    (it runs on the event loop) or plain ``def`` (it runs in a worker thread).

    Args:
        name: Display name; defaults to the class name.
        slug: Identifier unique within a flow; assigned when the task joins a flow if None.
        tags: Tags (an iterable of strings), merged with those of an enclosing `aflow.tags` block.
        max_retries: How many times a failed run is retried.
        retry_delay: Seconds (or a timedelta) to wait before a retry.
        retry_backoff: If set, each further retry waits this many times longer than the last.
        retry_jitter: A random share (0 to 1) of the delay added or removed at each retry.
        max_retry_delay: Upper bound of the delay once backoff applies.
        retry_on: Exception type(s) that allow a retry; by default every failure does.
        timeout: Seconds (or a timedelta) after which the body is cancelled and the task TimedOut.
        trigger: Decides from the upstream states whether the task runs (see `aflow.triggers`).
        skip_on_upstream_skip: Skip when a direct upstream was skipped (checked before the trigger).
        state_handlers: Functions ``(task, old_state, new_state) -> State | None`` called on each
            state change; a returned state replaces the new one. They may be coroutine functions.
        on_failure: ``(task, state)`` called when the task ends Failed.
        nout: Number of outputs, for ``a, b = t()``; inferred from a ``tuple[...]`` return annotation.
        log_stdout: Send what the body prints to the task's logger.
        history_log_level: Keep this task's log records at or above this level in the run
            store (a name such as ``"DEBUG"`` or a number); default: the run's (INFO).
        task_run_name: A template (``"load-{table}"``) formatted with inputs, context and
            parameters, or a function of them, naming each run.
        cache_for: How long (a timedelta or seconds) a success stays cached: later runs whose
            ``cache_validator`` accepts the cached state end Cached without running.
        cache_key: The cache's key (default: the task's name); tasks sharing it share results.
        cache_validator: ``(state, inputs, parameters) -> bool`` deciding whether a cached state
            is still good (see `aflow.cache_validators`; default ``duration_only``).
        result: The `aflow.results.Result` its value is written to (default: the flow's).
        target: A location template (or function): if a result exists there the task ends
            Cached with it, without running; a success is written there.
        checkpoint: Write every success to ``result`` (default: the flow's ``checkpoint``);
            False also turns off writing to ``target``.
    """

    #: Set by aflow for tasks it creates (constants, collections, item access).
    auto_generated: ClassVar[bool] = False
    #: Run even when the flow run is cancelled, if the trigger passes (resource cleanups).
    run_on_cancel: ClassVar[bool] = False
    #: True for tasks made from a function by `task` (their errors name the function).
    wraps_function: ClassVar[bool] = False
    #: Whether ``run`` is a coroutine function (a sync ``run`` goes to a worker thread); set by aflow.
    run_is_async: bool = True
    #: The checked signature of ``run``: the argument names a call or an edge may bind; set by aflow.
    run_spec: RunSpec = NO_RUN_SPEC
    #: Whether the class keeps `Task.copy` and `Task.bind` (a call may then copy the template's
    #: attributes directly and add the copy to the graph in one step).
    _plain_copy: ClassVar[bool] = True

    # Defaults of the attributes set by __init__ (an instance stores only what differs).
    name: str = "Task"
    slug: str | None = None
    tags: frozenset[str] = frozenset()
    max_retries: int = 0
    # retry_delay, max_retry_delay and cache_for read back as timedeltas (properties below);
    # the engine reads these float seconds, converted once when set
    _retry_delay: float = 0.0
    retry_backoff: float | None = None
    retry_jitter: float = 0.0
    _max_retry_delay: float | None = None
    retry_on: tuple[type[Exception], ...] | None = None
    timeout: float | None = None
    trigger: _triggers.Trigger = staticmethod(_triggers.all_successful)
    skip_on_upstream_skip: bool = True
    state_handlers: Sequence[StateHandler] = ()
    on_failure: Callable[[Task, State], Any] | None = None
    nout: int | None = None
    log_stdout: bool = False
    history_log_level: int | None = None
    task_run_name: str | Callable[..., str] | None = None
    _cache_for: float | None = None
    cache_key: str | None = None
    cache_validator: Callable[..., bool] | None = None
    result: Any = None
    target: str | Callable[..., str] | None = None
    checkpoint: bool | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plain_copy = cls.copy is Task.copy and cls.bind is Task.bind
        if "name" not in cls.__dict__:
            cls.name = cls.__name__
        run = cls.__dict__.get("run")
        if run is not None:
            cls.run_spec = check_run(run, cls.__name__, skip_self=True)
            cls.run_is_async = inspect.iscoroutinefunction(run)
            if "nout" not in cls.__dict__:
                cls.nout = infer_nout(run)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = checked_init(init, Task)  # type: ignore[method-assign]

    def __init__(
        self,
        *,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        max_retries: int = 0,
        retry_delay: float | timedelta | None = None,
        retry_backoff: float | None = None,
        retry_jitter: float = 0.0,
        max_retry_delay: float | timedelta | None = None,
        retry_on: type[BaseException] | Iterable[type[BaseException]] | None = None,
        timeout: float | timedelta | None = None,
        trigger: _triggers.Trigger | None = None,
        skip_on_upstream_skip: bool = True,
        state_handlers: Sequence[StateHandler] | None = None,
        on_failure: Callable[[Task, State], Any] | None = None,
        nout: int | None = None,
        log_stdout: bool = False,
        history_log_level: int | str | None = None,
        task_run_name: str | Callable[..., str] | None = None,
        cache_for: timedelta | float | None = None,
        cache_key: str | None = None,
        cache_validator: Callable[..., bool] | None = None,
        result: Any = None,
        target: str | Callable[..., str] | None = None,
        checkpoint: bool | None = None,
    ) -> None:
        # Attributes left at their defaults are not stored on the instance: the class holds
        # them, so a task (and each copy a call makes) stays small.
        if name is not None:
            self.name = name
        if slug is not None:
            self.slug = slug
        if isinstance(tags, str):
            raise TypeError(f"tags must be an iterable of strings, not the string {tags!r}: use tags=[{tags!r}]")
        all_tags = frozenset(tags or ()) | _tags_var.get()
        if all_tags:
            self.tags = all_tags

        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative int, got {max_retries!r}")
        if retry_on is not None and max_retries == 0:
            raise ValueError("retry_on was given but max_retries is 0: set max_retries to allow retries")
        if retry_delay is not None and max_retries == 0:
            raise ValueError(
                "retry_delay was given but max_retries is 0: set max_retries (the number of retries) "
                "for retry_delay to apply, or drop retry_delay"
            )
        retry_on_types = check_retry_on(retry_on)
        if retry_backoff is not None and retry_backoff < 1:
            raise ValueError(f"retry_backoff must be at least 1 (a multiplier), got {retry_backoff!r}")
        if not 0 <= retry_jitter <= 1:
            raise ValueError(f"retry_jitter must be between 0 and 1, got {retry_jitter!r}")
        timeout_s = seconds(timeout, "timeout")
        if timeout_s == 0:
            raise ValueError("timeout must be positive (use None for no timeout)")
        handlers = list(state_handlers or ())
        if on_failure is not None:
            handlers.append(_failure_handler(on_failure))
        if nout is None:  # a FunctionTask: its function's annotation; a class: its run's (the default)
            nout = infer_nout(self.run) if "run" in self.__dict__ else type(self).nout
        values: dict[str, Any] = {
            "max_retries": max_retries,
            "_retry_delay": seconds(retry_delay, "retry_delay") or 0.0,
            "retry_backoff": retry_backoff,
            "retry_jitter": retry_jitter,
            "_max_retry_delay": seconds(max_retry_delay, "max_retry_delay"),
            "retry_on": retry_on_types,
            "timeout": timeout_s,
            "trigger": trigger or _triggers.all_successful,
            "skip_on_upstream_skip": skip_on_upstream_skip,
            "state_handlers": handlers,
            "on_failure": on_failure,
            "nout": nout,
            "log_stdout": log_stdout,
            "history_log_level": (
                None if history_log_level is None else level_number(history_log_level, "history_log_level")
            ),
            "task_run_name": task_run_name,
            "_cache_for": seconds(cache_for, "cache_for"),
            "cache_key": cache_key,
            "cache_validator": cache_validator,
            "result": result,
            "target": target,
            "checkpoint": checkpoint,
        }
        cls = type(self)
        for attr, value in values.items():
            if value is not getattr(cls, attr) and value != getattr(cls, attr):
                setattr(self, attr, value)

    def __repr__(self) -> str:
        return f"<Task: {self.name}>"

    @property
    def retry_delay(self) -> timedelta:
        """The wait before a retry, as a `timedelta` (set it as seconds or a timedelta)."""
        return timedelta(seconds=self._retry_delay)

    @retry_delay.setter
    def retry_delay(self, value: float | timedelta | None) -> None:
        self._retry_delay = seconds(value, "retry_delay") or 0.0

    @property
    def max_retry_delay(self) -> timedelta | None:
        """The upper bound of a retry's delay once backoff applies, as a `timedelta` (or None)."""
        seconds = self._max_retry_delay
        return None if seconds is None else timedelta(seconds=seconds)

    @max_retry_delay.setter
    def max_retry_delay(self, value: float | timedelta | None) -> None:
        self._max_retry_delay = seconds(value, "max_retry_delay")

    @property
    def cache_for(self) -> timedelta | None:
        """How long a success stays cached, as a `timedelta` (or None: not cached)."""
        seconds = self._cache_for
        return None if seconds is None else timedelta(seconds=seconds)

    @cache_for.setter
    def cache_for(self, value: float | timedelta | None) -> None:
        self._cache_for = seconds(value, "cache_for")

    @property
    def cache_seconds(self) -> float | None:
        """`cache_for` in seconds (None: not cached), the number the engine compares with."""
        return self._cache_for

    def retry_wait(self, attempt: int) -> float:
        """Seconds to wait before retrying after failed attempt number ``attempt`` (from 1).

        ``retry_delay``, grown by ``retry_backoff`` per attempt, capped by ``max_retry_delay``
        and spread by ``retry_jitter``.
        """
        delay = self._retry_delay
        if self.retry_backoff is not None:
            delay *= self.retry_backoff ** (attempt - 1)
        if self._max_retry_delay is not None:
            delay = min(delay, self._max_retry_delay)
        if self.retry_jitter:
            delay *= 1 + random.uniform(-self.retry_jitter, self.retry_jitter)
        return max(delay, 0.0)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The work of the task: override it in subclasses (``async def`` or ``def``).

        Subclasses declare named parameters (no ``*args``); any signature is accepted.
        """
        raise NotImplementedError(f"{type(self).__name__} must define run()")

    @property
    def logger(self) -> RunLoggerAdapter:
        """A logger named ``aflow.task.<name>`` whose records carry the run ids and map index."""
        logger: RunLoggerAdapter | None = self.__dict__.get("_logger")
        if logger is None or logger.logger.name != f"aflow.task.{self.name}":
            logger = get_logger(f"task.{self.name}")
            self.__dict__["_logger"] = logger
        return logger

    # -- building ---------------------------------------------------------------------------

    def copy(self, **task_args: Any) -> Task:
        """Return a shallow copy, with the given attributes replaced (and a fresh slug).

        Raises:
            AttributeError: If an attribute in ``task_args`` does not exist.
        """
        new = object.__new__(type(self))
        attrs = new.__dict__
        attrs.update(self.__dict__)
        attrs.pop("_logger", None)
        attrs.pop("_auto_slug", None)
        if task_args:
            new._set_task_args(task_args)
        block_tags = _tags_var.get()  # a call inside `with tags(...)` is tagged too
        if block_tags or "tags" in task_args:
            # added to the template's tags, never replacing them (as Prefect 1): a limit on a
            # template's tag holds for every copy
            new.tags = self.tags | frozenset(new.tags) | block_tags
        if "slug" not in task_args:
            attrs.pop("slug", None)  # the copy gets its own slug in its flow
        return new

    def _set_task_args(self, task_args: dict[str, Any]) -> None:
        for attr, value in task_args.items():
            if not hasattr(self, attr):
                raise AttributeError(f"{type(self).__name__} has no attribute {attr!r} to set in copy()")
            if attr == "on_failure" and value is not None:
                self.state_handlers = [*self.state_handlers, _failure_handler(value)]
            setattr(self, attr, value)
        # normalize as __init__ does: the engine expects float seconds and a tuple of types
        if task_args.get("history_log_level") is not None:
            self.history_log_level = level_number(task_args["history_log_level"], "history_log_level")
        # (retry_delay, max_retry_delay and cache_for convert in their setters)
        if "timeout" in task_args:
            self.timeout = seconds(task_args["timeout"], "timeout")
        if "retry_on" in task_args:
            self.retry_on = check_retry_on(task_args["retry_on"])
        for attr in ("retry_on", "retry_delay"):
            if task_args.get(attr) is not None and not self.max_retries:
                raise ValueError(
                    f"{attr} was given but max_retries is 0: set max_retries too, e.g. "
                    f"task_args={{'max_retries': 2, {attr!r}: ...}}"
                )
        if isinstance(task_args.get("tags"), str):
            raise TypeError(f"tags must be an iterable of strings, not the string {task_args['tags']!r}")

    def __call__(
        self,
        *args: Any,
        mapped: bool = False,
        task_args: dict[str, Any] | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Copy the task and bind the arguments to the copy (see `bind`); returns the copy."""
        attrs = self.__dict__
        if not (task_args or mapped or upstream_tasks is not None or "slug" in attrs or "_logger" in attrs):
            # the common call: what copy() and bind() do, when there is nothing to drop, replace
            # or tag in the copy and no flow-level wiring beyond the arguments
            flow = flow if flow is not None else building.get()
            spec = self.run_spec
            if flow is not None and spec is not NO_RUN_SPEC and self._plain_copy and not _tags_var.get():
                if kwargs or not spec.enough <= len(args) <= len(spec.positional):
                    callargs = spec.bind(self.name, args, kwargs)
                elif len(args) == 1:  # RunSpec.bind's first case, inline
                    callargs = {spec.positional[0]: args[0]}
                else:
                    callargs = dict(zip(spec.positional, args, strict=False))
                new = object.__new__(type(self))
                new.__dict__ = attrs.copy()
                if not flow.graph.add_call(new, callargs, True):
                    flow.set_dependencies(task=new, keyword_tasks=callargs)
                return new
        new = self.copy(**(task_args or {}))
        return new.bind(*args, mapped=mapped, upstream_tasks=upstream_tasks, flow=flow, **kwargs)

    def bind(
        self,
        *args: Any,
        mapped: bool = False,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Bind ``run`` arguments to this task, in place, adding it and its edges to the flow.

        Arguments that are tasks become data edges; other values become constants. Lists, dicts,
        tuples and sets holding tasks become collection tasks.

        Args:
            *args: Positional ``run`` arguments.
            mapped: Map over every argument not wrapped in `unmapped`.
            upstream_tasks: Tasks that must finish first, without passing data.
            flow: The flow to bind in; defaults to the flow of the enclosing ``with Flow(...)``.
            **kwargs: Keyword ``run`` arguments.

        Raises:
            TaskDefinitionError: If the arguments do not fit ``run``'s signature.
            ValueError: If there is no flow to bind in.
        """
        flow = flow if flow is not None else building.get()
        if flow is None:
            raise ValueError(
                f"Could not infer an active Flow for {self.name!r}: call it inside `with Flow(...) as flow:` "
                "or pass flow=; to run its body directly, use `await task.run(...)`"
            )
        spec = self.run_spec
        if spec is NO_RUN_SPEC:
            require_run(self)
        callargs = spec.bind(self.name, args, kwargs)
        flow.set_dependencies(task=self, upstream_tasks=upstream_tasks, keyword_tasks=callargs, mapped=mapped)
        return self

    def map(
        self,
        *args: Any,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        task_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Task:
        """Copy the task and map it over its arguments: one child run per item.

        Arguments are zipped (the shortest wins); wrap one in `unmapped` to pass it whole to
        every child. Mapping over the result of a mapped task pairs children by index and runs
        depth-first.
        """
        new = self.copy(**(task_args or {}))
        new.nout = None
        return new.bind(*args, mapped=True, upstream_tasks=upstream_tasks, flow=flow, **kwargs)

    def set_upstream(self, task: Any, flow: Flow | None = None, key: str | None = None, mapped: bool = False) -> Task:
        """Make ``task`` an upstream of this one (a data edge into ``run(key=...)`` if ``key``)."""
        flow = _need_flow(self, flow)
        if key is None:
            flow.set_dependencies(task=self, upstream_tasks=[task], mapped=mapped)
        else:
            flow.set_dependencies(task=self, keyword_tasks={key: task}, mapped=mapped)
        return self

    def set_downstream(
        self, task: Task, flow: Flow | None = None, key: str | None = None, mapped: bool = False
    ) -> Task:
        """Make ``task`` a downstream of this one (a data edge into its ``run(key=...)`` if ``key``)."""
        task.set_upstream(self, flow=flow, key=key, mapped=mapped)
        return self

    def set_dependencies(
        self,
        flow: Flow | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Task] | None = None,
        keyword_tasks: dict[str, Any] | None = None,
        mapped: bool = False,
    ) -> Task:
        """Forward to `Flow.set_dependencies` with this task."""
        _need_flow(self, flow).set_dependencies(
            task=self,
            upstream_tasks=upstream_tasks,
            downstream_tasks=downstream_tasks,
            keyword_tasks=keyword_tasks,
            mapped=mapped,
        )
        return self

    def __getitem__(self, key: Any) -> Task:
        """A task that returns ``result[key]`` of this task."""
        return GetItem(name=f"{self.name}[{key!r}]").bind(self, key)

    def __iter__(self) -> Iterator[Task]:
        """Unpack a task with ``nout`` outputs: ``a, b = t()``."""
        if self.nout is None:
            raise TypeError(
                f"Task {self.name!r} is not iterable: set nout= (or annotate run's return as tuple[...]) "
                "to unpack its result"
            )
        return (self[i] for i in range(self.nout))

    def __bool__(self) -> bool:
        return True

    if not TYPE_CHECKING:  # hidden from type checkers, which report `await task(...)` themselves

        def __await__(self) -> NoReturn:
            """Refuse ``await`` on a task: a call inside ``with Flow(...)`` builds the flow, it does not run."""
            raise TaskDefinitionError(
                f"Task {self.name!r} cannot be awaited: calling a task inside `with Flow(...)` adds it to the flow "
                "and returns the task, not its result; drop the `await` there and run the flow after the block "
                f"(`await flow.run()`, or `flow.run_sync()` in a script). To run just this task's body, "
                f"`await {self.name}.run(...)`"
            )


Task.__init__ = init_with_hints(Task.__init__)  # type: ignore[method-assign]


def _need_flow(task: Task, flow: Flow | None) -> Flow:
    found = flow if flow is not None else building.get()
    if found is None:
        raise ValueError(f"No flow to add {task.name!r} to: use `with Flow(...)` or pass flow=")
    return found


def _failure_handler(on_failure: Callable[[Task, State], Any]) -> StateHandler:
    def on_failure_handler(task: Task, old: State, new: State) -> Any:
        if new.is_failed():
            return on_failure(task, new)
        return None

    return on_failure_handler


@final
class GetItem(Task):
    """Return ``task_result[key]`` (made by ``task[key]`` and tuple unpacking)."""

    auto_generated = True

    async def run(self, task_result: Any, key: Any) -> Any:
        """Index the upstream result."""
        return task_result[key]
