"""What the task runs of one flow run share (`TaskRunEnv`), and each task's `TaskPlan`.

`make_plan` is the one place the fast path is decided: a plain async task awaits its body
directly; any option that changes how a body runs (a timeout, a concurrency limit on one of its
tags, stdout routing, an executor, a sync body) turns it off there.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .. import secrets
from .._runtime._clock import SystemClock
from .._runtime._settings import DEFAULT_CANCEL_GRACE
from ..states import Failed, State

if TYPE_CHECKING:
    from .._model._task import Task
    from .._persist._history._batches import Recorder
    from .._runtime._clock import Clock
    from .._runtime._run_context import FlowRunContext, TaskRunContext
    from ._checkpoints import Persistence
    from ._executor import Executor
    from ._observer import SlotObserver

__all__ = ("TaskPlan", "TaskRunEnv", "make_plan", "plan_for", "redact_state", "set_state")

_CancelledError = asyncio.CancelledError


async def set_state(task: Task, old: State, new: State) -> State:
    """Run the task's state handlers on ``old -> new`` and return the resulting state."""
    for handler in task.state_handlers:
        try:
            replaced = handler(task, old, new)
            if inspect.isawaitable(replaced):
                replaced = await replaced
        except _CancelledError:
            raise
        except BaseException as exc:
            name = getattr(handler, "__qualname__", repr(handler))
            return Failed(
                f"State handler {name} raised {exc!r} on {type(old).__name__} -> {type(new).__name__}",
                result=exc,
            )
        if replaced is not None:
            new = replaced
    return new


def redact_state(state: State) -> State:
    """Redact secret values from the state's message (a no-op until a secret was read)."""
    if state.message and secrets.active():
        state.message = secrets.redact(state.message)
    return state


class TaskPlan:
    """How runs of one task go in one flow run: derived once from the task and the run settings.

    Attributes:
        direct_body: The body is awaited as is: an async body, no timeout, no concurrency limit
            on the task, no stdout routing, no executor (the fast path).
        handlers: The task has state handlers (every transition goes through them).
        track: Transitions are seen by someone: state handlers or the run store.
        persist: The run's `Persistence` when the task has a target, cache or checkpoint, else None.
        reads: A run first looks its value up (a target or a cache); a task that only
            checkpoints writes without looking.
    """

    __slots__ = ("direct_body", "handlers", "persist", "reads", "track")

    def __init__(
        self, direct_body: bool, handlers: bool, track: bool, persist: Persistence | None, reads: bool = False
    ) -> None:
        self.direct_body = direct_body
        self.handlers = handlers
        self.track = track
        self.persist = persist
        self.reads = reads


def plan_for(task: Task, env: TaskRunEnv) -> TaskPlan:
    """The plan of ``task`` in the run of ``env``, computed on first use and kept in ``env.plans``.

    `run_task` keeps the plans of mapped tasks only (their children share one); a task that
    is not mapped runs once per flow run, and its plan is computed there (`make_plan`).
    """
    plan = env.plans.get(task)
    if plan is None:
        plan = env.plans[task] = make_plan(task, env)
    return plan


def make_plan(task: Task, env: TaskRunEnv) -> TaskPlan:
    """Derive the plan of ``task`` from its configuration and the run settings of ``env``.

    Tasks share one plan per combination of flags (kept in ``env``): a flow of many task
    copies allocates no plan per task.
    """
    persist = env.persist
    if persist is not None and not persist.active(task):
        persist = None
    direct = (
        task.run_is_async
        and task.timeout is None
        and not (env.limited and env.limits_for(task))
        and not task.log_stdout
        and env.executor is None
    )
    handlers = bool(task.state_handlers)
    track = handlers or env.recorder is not None
    key = (4 if direct else 0) | (2 if handlers else 0) | (1 if track else 0)
    if persist is not None:
        reads = task.target is not None or task.cache_seconds is not None
        key |= 24 if reads else 8
    plan = env.shared_plans[key]
    if plan is None:
        plan = env.shared_plans[key] = TaskPlan(direct, handlers, track, persist, key >= 24)
    return plan


class TaskRunEnv:
    """Shared per-run settings for task runs: concurrency limits, the clock, the logger, the plans."""

    __slots__ = (
        "_limits_cache",
        "cancel_grace",
        "clock",
        "executor",
        "frun",
        "global_limit",
        "limited",
        "logger",
        "observer",
        "persist",
        "plans",
        "recorder",
        "shared_plans",
        "tag_limits",
        "timestamp",
    )

    def __init__(
        self,
        frun: FlowRunContext | None,
        clock: Clock,
        max_concurrency: int | None = None,
        tag_limits: Mapping[str, int] | None = None,
        logger: Any = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.frun = frun
        self.recorder = recorder  # the run store's recorder of this flow run's transitions, or None
        self.persist: Persistence | None = None  # set when some task has a target, cache or checkpoint
        self.executor: Executor | None = None  # None: bodies run here (the fast path)
        self.clock = clock
        self.cancel_grace = DEFAULT_CANCEL_GRACE  # seconds a cancelled body gets before it is given up on
        # what the run store's records read: the C function itself for the real clock
        self.timestamp: Callable[[], float] = time.time if type(clock) is SystemClock else clock.timestamp
        self.global_limit = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self.tag_limits = {tag: asyncio.Semaphore(n) for tag, n in (tag_limits or {}).items()}
        self.limited = self.global_limit is not None or bool(self.tag_limits)
        self._limits_cache: dict[Task, tuple[asyncio.Semaphore, ...]] = {}
        self.plans: dict[Task, TaskPlan] = {}  # see plan_for; filled once the run's settings are set
        # shared plans, by reads << 4 | persist << 3 | direct_body << 2 | handlers << 1 | track
        self.shared_plans: list[TaskPlan | None] = [None] * 32
        self.logger = logger  # a logger when DEBUG is on, else None (checked once per run)
        self.observer: SlotObserver | None = None  # told of slot waits and retries (progress display)

    async def transition(
        self, task: Task, map_index: int | None, old: State, new: State, ctx: TaskRunContext | None = None
    ) -> State:
        """Run the task's state handlers on ``old -> new``, record the result, return it."""
        if task.state_handlers:
            new = await set_state(task, old, new)
        return self.record(task, map_index, new, ctx)

    def record(self, task: Task, map_index: int | None, state: State, ctx: TaskRunContext | None = None) -> State:
        """Record ``state`` in the run store, if there is one; return it.

        A transition out of the attempt ``ctx`` marked running carries that attempt's start time,
        unless the store already wrote its Running row.
        """
        recorder = self.recorder
        if recorder is not None:
            running = recorder.running.pop(ctx, None) if ctx is not None else None
            if state.message and secrets.active():  # redact_state(), inlined: the hot path
                state.message = secrets.redact(state.message)
            recorder.rows.append(
                (
                    task.slug,
                    task.name,
                    map_index,
                    type(state).__name__,
                    state.message,
                    self.timestamp(),
                    running,
                )
            )
        return state

    def limits_for(self, task: Task) -> tuple[asyncio.Semaphore, ...]:
        """The semaphores a run of ``task`` holds.

        The global one first, then its limited tags in sorted order: one order for every task,
        so tasks holding several limits never deadlock.
        """
        limits = self._limits_cache.get(task)
        if limits is None:
            found = [self.tag_limits[t] for t in sorted(task.tags) if t in self.tag_limits]
            if self.global_limit is not None:
                found.insert(0, self.global_limit)
            limits = self._limits_cache[task] = tuple(found)
        return limits
