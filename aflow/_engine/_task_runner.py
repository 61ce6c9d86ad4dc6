"""One task run, as named steps: trigger → cache/target lookup → body → retry/loop → persistence.

`run_task` strings the steps together; each is a function of its own, testable alone:
`trigger_step` (skip on an upstream skip, then the trigger), `look_up` (a target or cache
found ends the run early), `run_body` (concurrency limits, stdout routing, the timeout on the
run's clock, the executor), `failure_state` and `decide_retry` (what a failed attempt leads
to), `loop_step`, `retry_wait`, `persist_step`, and `TaskRunEnv.transition` / `record` (the
state handlers and the run store). How a task's body runs is derived once per task and run,
by `make_plan` (`plan_for` keeps it for a mapped task's children): a plain async task awaits
its body directly (the fast path).

Every step is a state transition that goes through the task's state handlers. The body runs
at a user-code boundary: cancellation is re-raised, signals set the state, any other exception
becomes Failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .. import signals, triggers
from .._model._defaults import resolve_defaults
from .._runtime._logging import routed_stdout
from .._runtime._run_context import FlowRunContext, TaskRunContext, task_run_var
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
from ._cancel import give_up, ignored_message, stop_within
from ._executor import LOCAL_TAG, BodyCall
from ._invoke import invoke
from ._task_env import TaskPlan, TaskRunEnv, make_plan, plan_for, redact_state, set_state

if TYPE_CHECKING:
    from .._model._edge import Edge
    from .._model._task import Task
    from .._runtime._clock import Clock
    from ._checkpoints import Persistence

__all__ = (
    "UPSTREAM_SKIPPED",
    "BodyTimedOut",
    "TaskPlan",
    "TaskRunEnv",
    "check_trigger",
    "decide_retry",
    "dispatch",
    "expanded",
    "failure_state",
    "gate",
    "invoke",
    "look_up",
    "loop_step",
    "make_plan",
    "persist_step",
    "plan_for",
    "redact_state",
    "retry_wait",
    "run_body",
    "run_task",
    "set_state",
    "skipped_upstream",
    "trigger_step",
)

_SUCCESS_MSG = "Task run succeeded."
_ALL_SUCCESSFUL_FAILED = 'Trigger was "all_successful" but some of the upstream tasks failed.'
UPSTREAM_SKIPPED = "Upstream task was skipped; if this was unexpected, set skip_on_upstream_skip=False."
_CancelledError = asyncio.CancelledError  # the engine runs on asyncio (anyio's asyncio backend)
# the "old" state of an untracked run (no handlers, no store): only read when tracked, so it is
# never seen; it spares a Pending per task on the hot path
_UNSEEN = Pending("Not tracked.")


def expanded(states: Iterable[State]) -> list[State]:
    """The states with each Mapped state replaced by its children's states."""
    out: list[State] = []
    for s in states:
        if type(s) is Mapped:
            out.extend(s.map_states)
        else:
            out.append(s)
    return out


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


# -- steps before the body: trigger, run name, cache/target lookup --------------------------------


def skipped_upstream(task: Task, upstream: Mapping[Edge, State] | None) -> State | None:
    """Skipped when an upstream task was skipped and the task skips with it, else None.

    A reduce sees a Mapped upstream through its children: one skipped child skips it (Prefect 1).
    """
    if upstream and task.skip_on_upstream_skip and any(isinstance(s, Skipped) for s in expanded(upstream.values())):
        return Skipped(UPSTREAM_SKIPPED)
    return None


def gate(task: Task, upstream: Mapping[Edge, State] | None) -> State | None:
    """The trigger's verdict: None to run, else the state the task ends in."""
    if upstream:
        return check_trigger(task, upstream)
    if task.trigger is not triggers.all_successful:
        return check_trigger(task, {})
    return None


def trigger_step(task: Task, upstream: Mapping[Edge, State] | None) -> State | None:
    """The step before a task without target or cache runs: None to run, else its final state.

    Skipped on an upstream skip (`skipped_upstream`), else the trigger's verdict (`gate`).
    """
    if upstream:  # skipped_upstream and gate, inlined: the hot path
        if task.trigger is triggers.all_successful:
            for s in upstream.values():
                if type(s) is not Success:  # a skip, a failure, a Mapped, a Success subclass...
                    break
            else:
                return None  # every upstream a plain Success: no skip, and the default trigger passes
        if task.skip_on_upstream_skip and any(isinstance(s, Skipped) for s in expanded(upstream.values())):
            return Skipped(UPSTREAM_SKIPPED)
        return check_trigger(task, upstream)
    if task.trigger is not triggers.all_successful:
        return check_trigger(task, {})
    return None


def _run_name(task: Task, frun: FlowRunContext | None, inputs: dict[str, Any]) -> str:
    from .. import context

    values = {**(frun.parameters if frun else {}), **context.to_dict(), **inputs}
    template = task.task_run_name
    return template(**values) if callable(template) else str(template).format(**values)


def _name_run(task: Task, ctx: TaskRunContext, inputs: dict[str, Any]) -> State | None:
    """Set ``ctx.task_run_name`` from the task's template; Failed if it cannot be formatted."""
    try:
        ctx.task_run_name = _run_name(task, ctx.flow_run, inputs)
    except Exception as exc:
        return Failed(f"Could not format task_run_name {task.task_run_name!r}: {exc!r}", result=exc)
    return None


async def look_up(
    task: Task, persist: Persistence, ctx: TaskRunContext, inputs: dict[str, Any], upstream: Mapping[Edge, State] | None
) -> State | None:
    """The target or cache lookup, then the trigger (Prefect 1's order): None to run, else the final state."""
    try:
        stop = await persist.before(task, ctx, inputs)
    except Exception as exc:
        stop = Failed(f"Could not look up the task's target or cache: {exc!r}", result=exc)
    return gate(task, upstream) if stop is None else stop


# -- the body: concurrency limits, stdout, timeout, executor ----------------------------------------


class BodyTimedOut(Exception):
    """Raised by `run_body` when the body outlived the task's timeout (its message says so)."""


async def run_body(task: Task, inputs: dict[str, Any], env: TaskRunEnv) -> Any:
    """Run the body under the concurrency limits (waiting for a slot is not part of the timeout).

    Raises:
        BodyTimedOut: The body did not end within ``task.timeout`` seconds on ``env.clock``.
    """
    limits = env.limits_for(task) if env.limited else ()
    if not limits:
        return await _logged(task, inputs, env)
    held: list[asyncio.Semaphore] = []
    observer = env.observer
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
        return await _logged(task, inputs, env)
    finally:
        if waiting is not None:  # cancelled while waiting
            observer.task_resumed(task, waiting.map_index)  # type: ignore[union-attr]
        for sem in reversed(held):
            sem.release()


async def _logged(task: Task, inputs: dict[str, Any], env: TaskRunEnv) -> Any:
    if task.log_stdout:
        with routed_stdout():
            return await _timed(task, inputs, env)
    return await _timed(task, inputs, env)


async def dispatch(task: Task, inputs: dict[str, Any], env: TaskRunEnv) -> Any:
    """Run the body here (`invoke`) or, with an executor and no ``local`` tag, on the executor."""
    executor = env.executor
    if executor is None or LOCAL_TAG in task.tags:
        return await invoke(task, inputs)
    inputs = dict(inputs)
    await resolve_defaults(task, task.run, (), inputs)  # secrets are read here, not on a worker
    from .. import context

    snapshot = context.to_dict()
    snapshot.pop("logger", None)
    return await executor.run(BodyCall(task, inputs, snapshot))


async def _timed(task: Task, inputs: dict[str, Any], env: TaskRunEnv) -> Any:
    if task.timeout is None:
        return await dispatch(task, inputs, env)
    # the body runs as a task of its own, so that one ignoring its cancellation can be given up on
    body = asyncio.ensure_future(dispatch(task, inputs, env))
    clock = env.clock
    try:
        await clock.wait((body,), task.timeout)
    except _CancelledError:  # the run is cancelled: the body is, once, with the same grace
        await stop_within(body, env.cancel_grace, clock)
        raise
    except BaseException:  # closed (the run gave up on this task): no await is possible
        give_up(body)
        raise
    if body.done():
        return body.result()
    # an async body is cancelled; a sync one (a thread cannot be interrupted) runs to its end
    msg = f"Task {task.name!r} timed out after {task.timeout:g} seconds"
    if not await stop_within(body, env.cancel_grace, clock):
        msg = ignored_message(task.name, task.run_is_async, env.cancel_grace, f"its timeout of {task.timeout:g}s")
    raise BodyTimedOut(msg)


# -- after a failed attempt: the state, loops and retries ---------------------------------------------


def failure_state(err: BaseException) -> tuple[State, BaseException]:
    """The state a failed attempt ends in (its message redacted), and the error the retry decision reads.

    A signal gives its own state; a timeout gives TimedOut (its error a `TimeoutError`); a
    CancelledError here was raised by the body without the run being cancelled: Failed.
    """
    error = err
    if isinstance(err, signals.AflowSignal):
        state = err.state
    elif isinstance(err, BodyTimedOut):
        error = TimeoutError(str(err))
        state = TimedOut(str(err), result=error)
    elif isinstance(err, _CancelledError):
        state = Failed(f"The task body raised CancelledError without being cancelled: {err!r}", result=err)
    else:
        state = Failed(f"Error during execution of task: {err!r}", result=err)
    return redact_state(state), error


def decide_retry(task: Task, clock: Clock, run_count: int, new: State, error: BaseException) -> float | State:
    """What the failed attempt ``run_count`` leads to: a delay in seconds before the next, or a final state.

    A RETRY signal sets its own delay (or start time); Failed and TimedOut are retried while
    ``task.max_retries`` allows and ``task.retry_on`` matches. A signal that left the task in a
    non-final state ends it Failed.
    """
    if isinstance(new, Retrying) and isinstance(error, signals.RETRY):
        delay = error.delay
        if error.start_time is not None:
            delay = max((error.start_time - clock.now()).total_seconds(), 0.0)
        return delay if delay is not None else task.retry_wait(run_count)
    if (
        type(new) in (Failed, TimedOut)
        and run_count <= task.max_retries
        and (task.retry_on is None or isinstance(error, task.retry_on))
    ):
        return task.retry_wait(run_count)
    if not isinstance(new, Finished):  # a signal carrying a non-final state
        return Failed(f"Signal {type(error).__name__} left the task in {type(new).__name__}", result=error)
    return new


async def loop_step(
    task: Task, env: TaskRunEnv, plan: TaskPlan, ctx: TaskRunContext, state: State, new: Looped
) -> State:
    """Record the pass ``new`` ended; Looped (run again, with fresh retries) or the state a handler set."""
    ctx.loop_count = (ctx.loop_count or 1) + 1
    ctx.loop_result = new.result
    new.loop_count = ctx.loop_count - 1
    state = await env.transition(task, ctx.map_index, state, new, ctx) if plan.track else new
    if isinstance(state, Looped):
        ctx.run_count = 1  # each pass has its own retries (Prefect 1)
    return state


async def retry_wait(
    task: Task, env: TaskRunEnv, plan: TaskPlan, ctx: TaskRunContext, state: State, new: State, delay: float
) -> State:
    """Go to Retrying and sleep ``delay`` on the run's clock; Retrying, or the state a handler set instead.

    After the sleep, ``ctx.run_count`` counts the attempt to come.
    """
    clock = env.clock
    map_index = ctx.map_index
    retrying = Retrying(
        f"Retrying in {delay:g}s (attempt {ctx.run_count} failed: {new.message})",
        result=new.result,
        start_time=clock.now() + timedelta(seconds=delay),
        run_count=ctx.run_count,
    )
    state = await env.transition(task, map_index, state, retrying, ctx) if plan.track else retrying
    if not isinstance(state, Retrying):
        return state
    if env.logger is not None:
        env.logger.debug("Task %s: %s", ctx.full_name, retrying.message)
    observer = env.observer
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
    return state


async def persist_step(plan: TaskPlan, task: Task, ctx: TaskRunContext, inputs: dict[str, Any], new: Success) -> State:
    """Write the result of a successful run to its target, cache or checkpoint (``new`` unchanged without)."""
    return new if plan.persist is None else await plan.persist.after(task, ctx, inputs, new)


# -- the run ---------------------------------------------------------------------------------


def _cancelling() -> bool:
    """Whether the current asyncio task is being cancelled (else a CancelledError is the body's own)."""
    current = asyncio.current_task()
    return current is None or current.cancelling() > 0


async def run_task(
    task: Task,
    runner: TaskRunEnv,
    inputs: dict[str, Any],
    upstream: Mapping[Edge, State] | None,
    map_index: int | None = None,
) -> State:
    """Run one task (or one mapped child) to a final state."""
    plan = make_plan(task, runner) if map_index is None else plan_for(task, runner)
    track, persist = plan.track, plan.persist
    state: State = Pending() if plan.handlers else _UNSEEN  # the old state only matters to handlers
    stop = skipped_upstream(task, upstream) if plan.reads else trigger_step(task, upstream)
    if stop is not None:
        return await runner.transition(task, map_index, state, stop) if track else stop
    ctx = TaskRunContext(task, runner.frun, map_index)
    task_run_var.set(ctx)  # each task run is its own asyncio task, with its own context copy
    if task.task_run_name is not None:
        stop = _name_run(task, ctx, inputs)
    if stop is None and plan.reads:  # the target or cache comes before the trigger (Prefect 1)
        stop = await look_up(task, persist, ctx, inputs, upstream)  # type: ignore[arg-type]
    if stop is not None:
        return await runner.transition(task, map_index, state, stop) if track else stop
    while True:
        if plan.handlers:
            state = await runner.transition(task, map_index, state, Running("Starting task run."))
            if not isinstance(state, Running):
                return state
        elif track:  # only the run store: the attempt's start, written with its end (or by the store)
            runner.recorder.running[ctx] = runner.timestamp()  # type: ignore[union-attr]
        try:
            value = await task.run(**inputs) if plan.direct_body else await run_body(task, inputs, runner)
        except _CancelledError as err:
            if _cancelling():
                raise  # the run is being cancelled
            new, error = failure_state(err)
        except signals.ENDRUN as sig:
            return runner.record(task, map_index, sig.state, ctx)
        except (Exception, signals.AflowSignal) as err:
            new, error = failure_state(err)
        else:
            new = Success(_SUCCESS_MSG, result=value)
            if persist is not None:
                new = await persist_step(plan, task, ctx, inputs, new)
            if not track:
                return new
            if plan.handlers:
                return await runner.transition(task, map_index, state, new, ctx)
            return runner.record(task, map_index, new, ctx)

        if isinstance(new, Looped):
            state = await loop_step(task, runner, plan, ctx, state, new)
            if isinstance(state, Looped):
                continue
            return state
        verdict = decide_retry(task, runner.clock, ctx.run_count, new, error)
        if isinstance(verdict, State):
            return await runner.transition(task, map_index, state, verdict, ctx) if track else verdict
        state = await retry_wait(task, runner, plan, ctx, state, new, verdict)
        if not isinstance(state, Retrying):
            return state
