"""`serve`: run a flow on its schedule, as asyncio work inside the caller's event loop."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from contextlib import closing
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .._runtime._clock import SYSTEM_CLOCK, Clock
from .._runtime._logging import engine_logger
from ._time import utc
from .clocks import ClockEvent
from .schedule import Schedule

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .._model._flow import Flow
    from ..states import State

__all__ = ("Overlap", "serve")

logger = engine_logger("serve")

Overlap = Literal["skip", "queue", "allow"]
_OVERLAPS = ("skip", "queue", "allow")


async def serve(
    flow: Flow,
    schedule: Schedule | None = None,
    *,
    overlap: Overlap = "skip",
    parameters: Mapping[str, Any] | None = None,
    clock: Clock | None = None,
    max_runs: int | None = None,
    on_run: Callable[[ClockEvent, State], Any] | None = None,
) -> list[State]:
    """Run ``flow`` at each event of ``schedule``, inside the current event loop.

    Sleeps (on ``clock``) until each event after the current time, then runs the flow with the
    event's ``parameter_defaults`` overlaid by ``parameters``; the run's context has
    ``scheduled_start_time``, the event's start time. Events already due (because a queued
    run finished late) start at once.

    Cancelling the caller (``task.cancel()``, an anyio cancel scope) cancels every run in
    progress, waits for them to stop and re-raises the cancellation; nothing is left running.

    Args:
        flow: The flow to run.
        schedule: The schedule (default: ``flow.schedule``).
        overlap: What happens when an event comes while a run is still going: ``"skip"`` drops
            the event, ``"queue"`` runs it after the current run (runs go one at a time, none
            is dropped), ``"allow"`` starts it concurrently.
        parameters: Parameter values for every run; they win over an event's defaults.
        clock: The clock to read and sleep on, also used for the runs' retry delays (tests
            pass `aflow.testing.FakeClock`).
        max_runs: Stop after starting this many runs (skipped events do not count), and return
            once they have finished. None: serve until the schedule ends or is cancelled.
        on_run: ``(event, state)`` called, and awaited if it returns an awaitable, after each run.

    Returns:
        The final state of every run, in the order the runs started.

    Raises:
        ValueError: If there is no schedule, or ``overlap`` or ``max_runs`` is invalid.
        TypeError: If ``schedule`` is not a `Schedule`.
        Exception: Whatever a run raises instead of returning a state (a `ParameterError`
            for parameters the flow lacks...) or ``on_run`` raises: serving then stops, the
            other runs are cancelled and the exception propagates.

    .. versionadded:: 0.1.0
    """
    if schedule is None:
        schedule = getattr(flow, "schedule", None)
        if schedule is None:
            raise ValueError(f"Flow {flow.name!r} has no schedule: pass schedule= or create it with Flow(schedule=...)")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be an aflow.schedules.Schedule, got {schedule!r}")
    if overlap not in _OVERLAPS:
        raise ValueError(f"overlap must be one of {', '.join(map(repr, _OVERLAPS))}, got {overlap!r}")
    if max_runs is not None and (isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1):
        raise ValueError(f"max_runs must be a positive int or None, got {max_runs!r}")
    clock = clock or SYSTEM_CLOCK
    params = dict(parameters or {})
    states: list[State | None] = []
    errors: list[Exception] = []
    running = 0

    async def run_one(index: int, event: ClockEvent, tg: TaskGroup) -> None:
        nonlocal running
        try:
            try:
                state = await flow.run(
                    {**event.parameter_defaults, **params},
                    clock=clock,
                    context={"scheduled_start_time": event.start_time},
                )
            finally:
                running -= 1
            states[index] = state
            if on_run is not None:
                out = on_run(event, state)
                if inspect.isawaitable(out):
                    await out
        except Exception as exc:  # cancellation is a BaseException: it goes through
            errors.append(exc)
            tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        try:
            with closing(schedule.events(after=clock.now())) as events:
                for event in events:
                    delay = (utc(event.start_time) - utc(clock.now())).total_seconds()
                    if delay > 0:
                        await clock.sleep(delay)
                    if overlap == "skip" and running:
                        logger.info("Flow %r: skipped the run at %s (one is going)", flow.name, event.start_time)
                        continue
                    index = len(states)
                    states.append(None)
                    running += 1
                    if overlap == "queue":
                        await run_one(index, event, tg)
                    else:
                        tg.start_soon(run_one, index, event, tg)
                    if errors or (max_runs is not None and len(states) >= max_runs):
                        break
        except Exception as exc:  # from a filter, adjustment or clock of the schedule
            errors.append(exc)
            tg.cancel_scope.cancel()
    if errors:
        raise errors[0]
    return [s for s in states if s is not None]
