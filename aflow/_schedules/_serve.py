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
    schedule = _checked_schedule(flow, schedule, overlap, max_runs)
    server = _Server(flow, overlap, dict(parameters or {}), clock or SYSTEM_CLOCK, max_runs, on_run)
    return await server.serve(schedule)


def _checked_schedule(flow: Flow, schedule: Schedule | None, overlap: Overlap, max_runs: int | None) -> Schedule:
    """The schedule to serve (``flow.schedule`` when None), once `serve`'s arguments are checked."""
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
    return schedule


class _Server:
    """One call of `serve`: the runs it started (their states, by start order) and how many are going."""

    def __init__(
        self,
        flow: Flow,
        overlap: Overlap,
        params: dict[str, Any],
        clock: Clock,
        max_runs: int | None,
        on_run: Callable[[ClockEvent, State], Any] | None,
    ) -> None:
        self.flow = flow
        self.overlap = overlap
        self.params = params
        self.clock = clock
        self.max_runs = max_runs
        self.on_run = on_run
        self.states: list[State | None] = []  # None: still running
        self.errors: list[Exception] = []  # the first one stops serving
        self.running = 0

    async def serve(self, schedule: Schedule) -> list[State]:
        """Start a run at each event of ``schedule`` until it ends, ``max_runs`` or an error; wait for the runs."""
        async with anyio.create_task_group() as tg:
            try:
                with closing(schedule.events(after=self.clock.now())) as events:
                    for event in events:
                        if not await self._on_event(event, tg):
                            break
            except Exception as exc:  # from a filter, adjustment or clock of the schedule
                self._stop(exc, tg)
        if self.errors:
            raise self.errors[0]
        return [s for s in self.states if s is not None]

    async def _on_event(self, event: ClockEvent, tg: TaskGroup) -> bool:
        """Sleep until ``event``, then start its run (or skip it); False once serving stops."""
        delay = (utc(event.start_time) - utc(self.clock.now())).total_seconds()
        if delay > 0:
            await self.clock.sleep(delay)
        if self.overlap == "skip" and self.running:
            logger.info("Flow %r: skipped the run at %s (one is going)", self.flow.name, event.start_time)
            return True
        index = len(self.states)
        self.states.append(None)
        self.running += 1
        if self.overlap == "queue":
            await self._run(index, event, tg)
        else:
            tg.start_soon(self._run, index, event, tg)
        return not (self.errors or (self.max_runs is not None and len(self.states) >= self.max_runs))

    async def _run(self, index: int, event: ClockEvent, tg: TaskGroup) -> None:
        """Run the flow for ``event``, keep its state as run ``index``, then call ``on_run``."""
        try:
            try:
                state = await self.flow.run(
                    {**event.parameter_defaults, **self.params},
                    clock=self.clock,
                    context={"scheduled_start_time": event.start_time},
                )
            finally:
                self.running -= 1
            self.states[index] = state
            if self.on_run is not None:
                out = self.on_run(event, state)
                if inspect.isawaitable(out):
                    await out
        except Exception as exc:  # cancellation is a BaseException: it goes through
            self._stop(exc, tg)

    def _stop(self, exc: Exception, tg: TaskGroup) -> None:
        self.errors.append(exc)
        tg.cancel_scope.cancel()
