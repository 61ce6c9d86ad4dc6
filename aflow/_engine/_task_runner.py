"""One task run: skip check → trigger → body (timeout, threads, retries, loops) → final state.

Every step is a state transition that goes through the task's state handlers. The body runs
at a user-code boundary: cancellation is re-raised, signals set the state, any other exception
becomes Failed.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .. import secrets, signals, triggers
from .._model._defaults import resolve_defaults
from .._runtime._clock import SystemClock
from .._runtime._logging import routed_stdout
from .._runtime._run_context import FlowRunContext, TaskRunContext, task_run_var
from ..executors import LOCAL_TAG, BodyCall
from ..states import (
    Failed,
    Finished,
    Looped,
    Mapped,
    Pending,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
)
from ._cancel import DEFAULT_CANCEL_GRACE, give_up, ignored_message, stop_within

if TYPE_CHECKING:
    from .._model._edge import Edge
    from .._model._task import Task
    from .._persist._history._batches import Recorder
    from .._runtime._clock import Clock
    from ..executors import Executor
    from ._checkpoints import Persistence
    from ._observer import SlotObserver

__all__ = ("UPSTREAM_SKIPPED", "Runner", "check_trigger", "expanded", "run_task", "scrub", "set_state")

_SUCCESS_MSG = "Task run succeeded."
_ALL_SUCCESSFUL_FAILED = 'Trigger was "all_successful" but some of the upstream tasks failed.'
UPSTREAM_SKIPPED = "Upstream task was skipped; if this was unexpected, set skip_on_upstream_skip=False."
_CancelledError = asyncio.CancelledError  # the engine runs on asyncio (anyio's asyncio backend)


def expanded(states: Iterable[State]) -> list[State]:
    """The states with each Mapped state replaced by its children's states."""
    out: list[State] = []
    for s in states:
        if type(s) is Mapped:
            out.extend(s.map_states)
        else:
            out.append(s)
    return out


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


def check_trigger(task: Task, upstream: Mapping[Edge, State]) -> State | None:
    """None if the task may run, else the state it ends in (TriggerFailed or Skipped)."""
    trigger = task.trigger
    if trigger is triggers.all_successful:  # the default: a fast path without signal objects
        for s in expanded(upstream.values()):
            if not isinstance(s, Success):
                return signals.TRIGGERFAIL(_ALL_SUCCESSFUL_FAILED).state  # its result is the signal
        return None
    try:
        ok = trigger(upstream)
    except signals.AflowSignal as sig:
        state = sig.state
        return state if isinstance(state, (Skipped, TriggerFailed)) else TriggerFailed(sig.message, result=sig)
    except Exception as exc:
        return TriggerFailed(f"Trigger {getattr(trigger, '__name__', trigger)} raised {exc!r}", result=exc)
    if not ok:
        return signals.TRIGGERFAIL(f"Trigger {getattr(trigger, '__name__', trigger)} returned False").state
    return None


def scrub(state: State) -> State:
    """Redact secret values from the state's message (a no-op until a secret was read)."""
    if secrets._pattern is not None and state.message:
        state.message = secrets.redact(state.message)
    return state


def _gate(task: Task, upstream: Mapping[Edge, State] | None) -> State | None:
    """The trigger's verdict: None to run, else the state the task ends in."""
    if upstream:
        return check_trigger(task, upstream)
    if task.trigger is not triggers.all_successful:
        return check_trigger(task, {})
    return None


def _run_name(task: Task, frun: FlowRunContext | None, inputs: dict[str, Any]) -> str:
    from .. import context

    values = {**(frun.parameters if frun else {}), **context.to_dict(), **inputs}
    template = task.task_run_name
    return template(**values) if callable(template) else str(template).format(**values)


class Runner:
    """Shared per-run settings for task runs: concurrency limits, the clock, the logger."""

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
        "recorder",
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
            if secrets._pattern is not None and state.message:  # scrub(), inlined: the hot path
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


async def _in_thread(fn: Any) -> Any:
    """Run ``fn`` in a worker thread; if cancelled, wait for the thread to end, then re-raise.

    A thread cannot be interrupted, and anyio only shields its own cancel scopes: a plain
    ``Task.cancel()`` (a cancelled flow run) would otherwise return while the body still runs.
    """
    inner = asyncio.ensure_future(anyio.to_thread.run_sync(fn))
    try:
        return await asyncio.shield(inner)
    except _CancelledError:
        with anyio.CancelScope(shield=True):
            while not inner.done():
                try:
                    await asyncio.wait([inner])
                except _CancelledError:
                    pass
        if not inner.cancelled():
            inner.exception()  # retrieved: the cancellation wins
        raise


async def invoke(task: Task, inputs: dict[str, Any]) -> Any:
    """Run the body of ``task`` in this process (sync bodies in a worker thread)."""
    if task.run_is_async:
        return await task.run(**inputs)
    inputs = dict(inputs)
    await resolve_defaults(task, task.run, (), inputs)  # lazy defaults are awaited on the loop
    result = await _in_thread(functools.partial(task.run, **inputs))
    if inspect.isawaitable(result):  # a sync wrapper around a coroutine function
        result = await result
    return result


class _TimedOutError(Exception):
    pass


async def _call(task: Task, inputs: dict[str, Any], runner: Runner) -> Any:
    """Run the body under the concurrency limits (waiting for a slot is not part of the timeout)."""
    limits = runner.limits_for(task) if runner.limited else ()
    if not limits:
        return await _logged(task, inputs, runner)
    held: list[asyncio.Semaphore] = []
    observer = runner.observer
    waiting: TaskRunContext | None = None
    try:
        for sem in limits:
            if observer is not None and waiting is None and sem.locked():
                waiting = task_run_var.get()
                if waiting is not None:
                    observer.task_waiting(task, waiting.map_index)
            await sem.acquire()
            held.append(sem)
        if waiting is not None:
            observer.task_resumed(task, waiting.map_index)  # type: ignore[union-attr]
            waiting = None
        return await _logged(task, inputs, runner)
    finally:
        if waiting is not None:  # cancelled while waiting
            observer.task_resumed(task, waiting.map_index)  # type: ignore[union-attr]
        for sem in reversed(held):
            sem.release()


async def _logged(task: Task, inputs: dict[str, Any], runner: Runner) -> Any:
    if task.log_stdout:
        with routed_stdout():
            return await _timed(task, inputs, runner)
    return await _timed(task, inputs, runner)


async def _dispatch(task: Task, inputs: dict[str, Any], runner: Runner) -> Any:
    executor = runner.executor
    if executor is None or LOCAL_TAG in task.tags:
        return await invoke(task, inputs)
    inputs = dict(inputs)
    await resolve_defaults(task, task.run, (), inputs)  # secrets are read here, not on a worker
    from .. import context

    snapshot = context.to_dict()
    snapshot.pop("logger", None)
    return await executor.run(BodyCall(task, inputs, snapshot))


async def _timed(task: Task, inputs: dict[str, Any], runner: Runner) -> Any:
    if task.timeout is None:
        return await _dispatch(task, inputs, runner)
    # the body runs as a task of its own, so that one ignoring its cancellation can be given up on
    body = asyncio.ensure_future(_dispatch(task, inputs, runner))
    try:
        await asyncio.wait((body,), timeout=task.timeout)
    except _CancelledError:  # the run is cancelled: the body is, once, with the same grace
        await stop_within(body, runner.cancel_grace)
        raise
    except BaseException:  # closed (the run gave up on this task): no await is possible
        give_up(body)
        raise
    if body.done():
        return body.result()
    # an async body is cancelled; a sync one (a thread cannot be interrupted) runs to its end
    msg = f"Task {task.name!r} timed out after {task.timeout:g} seconds"
    if not await stop_within(body, runner.cancel_grace):
        msg = ignored_message(task.name, task.run_is_async, runner.cancel_grace, f"its timeout of {task.timeout:g}s")
    raise _TimedOutError(msg)


async def run_task(
    task: Task,
    runner: Runner,
    inputs: dict[str, Any],
    upstream: Mapping[Edge, State] | None,
    map_index: int | None = None,
) -> State:
    """Run one task (or one mapped child) to a final state."""
    # transitions go through state handlers and the run store only when there are any (hot path)
    track = bool(task.state_handlers) or runner.recorder is not None
    state: State = Pending()

    # a reduce sees a Mapped upstream through its children: one skipped child skips it (Prefect 1)
    if upstream and task.skip_on_upstream_skip and any(isinstance(s, Skipped) for s in expanded(upstream.values())):
        new: State = Skipped(UPSTREAM_SKIPPED)
        return await runner.transition(task, map_index, state, new) if track else new
    persist = runner.persist
    if persist is not None and not persist.active(task):
        persist = None
    if persist is None:  # the trigger first; with a target or cache, the lookup comes first (Prefect 1)
        stop = _gate(task, upstream)
        if stop is not None:
            return await runner.transition(task, map_index, state, stop) if track else stop

    simple = (
        task.run_is_async
        and task.timeout is None
        and not runner.limited
        and not task.log_stdout
        and runner.executor is None
    )
    ctx = TaskRunContext(task, runner.frun, map_index)
    task_run_var.set(ctx)  # each task run is its own asyncio task, with its own context copy
    if task.task_run_name is not None:
        try:
            ctx.task_run_name = _run_name(task, runner.frun, inputs)
        except Exception as exc:
            failed = Failed(f"Could not format task_run_name {task.task_run_name!r}: {exc!r}", result=exc)
            return await runner.transition(task, map_index, state, failed) if track else failed
    if persist is not None:
        try:
            stop = await persist.before(task, ctx, inputs)
        except Exception as exc:
            stop = Failed(f"Could not look up the task's target or cache: {exc!r}", result=exc)
        if stop is None:
            stop = _gate(task, upstream)
        if stop is not None:
            return await runner.transition(task, map_index, state, stop) if track else stop

    while True:
        if task.state_handlers:
            state = await runner.transition(task, map_index, state, Running("Starting task run."))
            if not isinstance(state, Running):
                return state
        elif track:  # only the run store: the attempt's start, written with its end (or by the store)
            runner.recorder.running[ctx] = runner.timestamp()  # type: ignore[union-attr]
        error: BaseException | None = None
        try:
            if simple:
                value = await task.run(**inputs)
            else:
                value = await _call(task, inputs, runner)
        except _CancelledError as err:
            task_ = asyncio.current_task()
            if task_ is None or task_.cancelling():
                raise  # the run is being cancelled
            new = Failed(f"The task body raised CancelledError without being cancelled: {err!r}", result=err)
            error = err
        except signals.ENDRUN as sig:
            return runner.record(task, map_index, sig.state, ctx)
        except signals.AflowSignal as sig:
            new = sig.state
            error = sig
        except _TimedOutError as err:
            error = TimeoutError(str(err))
            new = TimedOut(str(err), result=error)
        except Exception as err:
            new = Failed(f"Error during execution of task: {err!r}", result=err)
            error = err
        else:
            new = Success(_SUCCESS_MSG, result=value)
            if persist is not None:
                new = await persist.after(task, ctx, inputs, new)
            if track:
                if task.state_handlers:
                    return await runner.transition(task, map_index, state, new, ctx)
                return runner.record(task, map_index, new, ctx)
            return new

        scrub(new)
        if isinstance(new, Looped):
            ctx.loop_count = (ctx.loop_count or 1) + 1
            ctx.loop_result = new.result
            new.loop_count = ctx.loop_count - 1
            state = await runner.transition(task, map_index, state, new, ctx) if track else new
            if isinstance(state, Looped):
                ctx.run_count = 1  # each pass has its own retries (Prefect 1)
                continue
            return state

        delay: float | None = None
        if isinstance(new, Retrying) and isinstance(error, signals.RETRY):
            delay = error.delay
            if error.start_time is not None:
                delay = max((error.start_time - runner.clock.now()).total_seconds(), 0.0)
            delay = delay if delay is not None else task.retry_wait(ctx.run_count)
        elif (
            type(new) in (Failed, TimedOut)
            and ctx.run_count <= task.max_retries
            and (task.retry_on is None or isinstance(error, task.retry_on))
        ):
            delay = task.retry_wait(ctx.run_count)
        if delay is None:
            if not isinstance(new, Finished):  # a signal carrying a non-final state
                new = Failed(f"Signal {type(error).__name__} left the task in {type(new).__name__}", result=error)
            return await runner.transition(task, map_index, state, new, ctx) if track else new

        clock = runner.clock
        retrying = Retrying(
            f"Retrying in {delay:g}s (attempt {ctx.run_count} failed: {new.message})",
            result=new.result,
            start_time=clock.now() + timedelta(seconds=delay),
            run_count=ctx.run_count,
        )
        state = await runner.transition(task, map_index, state, retrying, ctx) if track else retrying
        if not isinstance(state, Retrying):
            return state
        if runner.logger is not None:
            runner.logger.debug("Task %s: %s", ctx.full_name, retrying.message)
        observer = runner.observer
        if observer is None:
            await clock.sleep(delay)
        else:  # the body does not run while the retry waits
            observer.task_retried(task, map_index)
            observer.task_waiting(task, map_index)
            try:
                await clock.sleep(delay)
            finally:
                observer.task_resumed(task, map_index)
        ctx.run_count += 1
