from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from aflow import Flow, Parameter, ParameterError, context, task
from aflow._runtime._clock import Clock
from aflow._schedules._serve import Overlap, serve
from aflow.schedules import ClockEvent, DatesClock, IntervalClock, Schedule
from aflow.states import Failed, State, Success
from aflow.testing import FakeClock

GUARD = 5  # seconds of real time: a regression fails the test instead of hanging it
T0 = datetime(2024, 1, 1, tzinfo=UTC)  # FakeClock's default start
HOURLY = Schedule([IntervalClock(timedelta(hours=1), start_date=T0)])


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


class ScriptedClock(Clock):
    """Fake time, plus test actions that run when a sleep reaches a chosen fake time."""

    def __init__(self) -> None:
        self.fake = FakeClock()
        self.hooks: dict[datetime, Callable[[], Awaitable[None]]] = {}

    def now(self) -> datetime:
        return self.fake.now()

    async def sleep(self, seconds: float) -> None:
        await self.fake.sleep(seconds)
        hook = self.hooks.pop(self.now(), None)
        if hook is not None:
            await hook()


def recording_flow(log: list[tuple[Any, ...]], gate: Callable[[], Awaitable[None]] | None = None) -> Flow:
    """A flow with parameters x and y whose task logs (scheduled time, x, y) and may wait."""

    @task
    async def work(x, y):
        log.append((context.get("scheduled_start_time"), x, y))
        if gate is not None:
            await gate()
        return (x, y)

    with Flow("served") as flow:
        work(Parameter("x", default=0), Parameter("y", default=0))
    return flow


async def guarded(coro: Awaitable[list[State]]) -> list[State]:
    with anyio.fail_after(GUARD):
        return await coro


def no_other_tasks() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


# -- the basics -----------------------------------------------------------------------------------


async def test_serve_runs_at_each_event_on_the_fake_clock() -> None:
    log: list[tuple[Any, ...]] = []
    clock = FakeClock()
    # fake time jumps while a run is still going: "queue" (not the default "skip") runs every event
    states = await guarded(serve(recording_flow(log), HOURLY, clock=clock, max_runs=3, overlap="queue"))
    assert [type(s) for s in states] == [Success, Success, Success]
    assert [t for t, _, _ in log] == [at(1), at(2), at(3)]
    assert clock.sleeps == [3600.0, 3600.0, 3600.0]
    assert clock.now() == at(3)
    assert no_other_tasks()


async def test_event_defaults_merge_under_explicit_parameters() -> None:
    log: list[tuple[Any, ...]] = []
    schedule = Schedule(
        [
            IntervalClock(timedelta(hours=2), start_date=T0, parameter_defaults={"x": 1, "y": 1}),
            IntervalClock(timedelta(hours=2), start_date=at(1), parameter_defaults={"x": 2}),
        ]
    )
    states = await guarded(
        serve(recording_flow(log), schedule, parameters={"y": 9}, clock=FakeClock(), max_runs=4, overlap="queue")
    )
    assert log == [(at(1), 2, 9), (at(2), 1, 9), (at(3), 2, 9), (at(4), 1, 9)]
    assert all(s.is_successful() for s in states)


async def test_serve_returns_when_the_schedule_ends() -> None:
    log: list[tuple[Any, ...]] = []
    schedule = Schedule([DatesClock([at(5), at(2), T0 - timedelta(days=1)], parameter_defaults={"x": 7})])
    clock = FakeClock()
    states = await guarded(serve(recording_flow(log), schedule, clock=clock, overlap="queue"))
    assert len(states) == 2
    assert log == [(at(2), 7, 0), (at(5), 7, 0)]
    assert clock.sleeps == [7200.0, 10800.0]


async def test_flow_serve_uses_the_flows_schedule() -> None:
    log: list[tuple[Any, ...]] = []
    flow = recording_flow(log)
    assert flow.schedule is None
    flow.schedule = HOURLY
    states = await guarded(flow.serve(clock=FakeClock(), max_runs=2, parameters={"x": 3}, overlap="queue"))
    assert len(states) == 2
    assert log == [(at(1), 3, 0), (at(2), 3, 0)]


async def test_flow_init_takes_a_schedule() -> None:
    flow = Flow("f", schedule=HOURLY)
    assert flow.schedule is HOURLY


async def test_failed_runs_are_returned_and_serving_goes_on() -> None:
    @task
    async def boom():
        raise RuntimeError("nope")

    with Flow("failing") as flow:
        boom()
    states = await guarded(serve(flow, HOURLY, clock=FakeClock(), max_runs=2))
    assert [type(s) for s in states] == [Failed, Failed]


async def test_runs_use_the_served_clock_for_retries() -> None:
    attempts: list[datetime] = []
    clock = FakeClock()

    @task(max_retries=1, retry_delay=timedelta(minutes=10))
    async def flaky():
        attempts.append(clock.now())
        if len(attempts) == 1:
            raise RuntimeError("first try fails")

    with Flow("retrying") as flow:
        flaky()
    (state,) = await guarded(serve(flow, HOURLY, clock=clock, max_runs=1))
    assert state.is_successful()
    assert attempts == [at(1), at(1) + timedelta(minutes=10)]


async def test_on_run_gets_each_event_and_state_sync_or_async() -> None:
    seen: list[tuple[datetime, bool]] = []

    def sync_hook(event: ClockEvent, state: State) -> None:
        seen.append((event.start_time, state.is_successful()))

    async def async_hook(event: ClockEvent, state: State) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append((event.start_time, state.is_successful()))

    flow = recording_flow([])
    await guarded(serve(flow, HOURLY, clock=FakeClock(), max_runs=2, on_run=sync_hook, overlap="queue"))
    await guarded(serve(flow, HOURLY, clock=FakeClock(start=at(10)), max_runs=1, on_run=async_hook))
    assert seen == [(at(1), True), (at(2), True), (at(11), True)]


# -- bad input and errors -------------------------------------------------------------------------


async def test_serve_without_a_schedule_is_an_error() -> None:
    with pytest.raises(ValueError, match="has no schedule"):
        await serve(Flow("f"), clock=FakeClock())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"overlap": "drop"}, ValueError, "overlap must be one of 'skip', 'queue', 'allow'"),
        ({"max_runs": 0}, ValueError, "max_runs must be a positive int"),
        ({"max_runs": True}, ValueError, "max_runs must be a positive int"),
        ({"schedule": "0 * * * *"}, TypeError, "must be an aflow.schedules.Schedule"),
    ],
)
async def test_serve_rejects_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    kwargs.setdefault("schedule", HOURLY)
    with pytest.raises(error, match=match):
        await serve(Flow("f"), clock=FakeClock(), **kwargs)


async def test_a_run_that_raises_stops_serving_with_that_exception() -> None:
    schedule = Schedule([IntervalClock(timedelta(hours=1), start_date=T0, parameter_defaults={"nope": 1})])
    with pytest.raises(ParameterError, match="no parameter nope"):
        await guarded(serve(recording_flow([]), schedule, clock=FakeClock(), max_runs=3))
    assert no_other_tasks()


async def test_an_on_run_error_stops_serving_and_cancels_other_runs() -> None:
    log: list[tuple[Any, ...]] = []
    first_gate = anyio.Event()
    second_started = anyio.Event()
    cancelled: list[datetime] = []
    clock = ScriptedClock()

    async def gate() -> None:
        if len(log) == 1:
            await first_gate.wait()
            return
        second_started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(context.get("scheduled_start_time"))
            raise

    async def finish_first() -> None:  # at 03:00, while the 02:00 run is waiting
        await second_started.wait()
        first_gate.set()
        await anyio.sleep_forever()  # the scheduler is cancelled here once on_run fails

    def on_run(event: ClockEvent, state: State) -> None:
        raise LookupError(f"hook failed for {event.start_time:%H:%M}")

    clock.hooks[at(3)] = finish_first
    with pytest.raises(LookupError, match="hook failed for 01:00"):
        await guarded(serve(recording_flow(log, gate), HOURLY, clock=clock, overlap="allow", on_run=on_run))
    assert [t for t, _, _ in log] == [at(1), at(2)]
    assert cancelled == [at(2)]
    assert no_other_tasks()


async def test_a_schedule_filter_error_stops_serving() -> None:
    def broken(dt: datetime) -> bool:
        raise ZeroDivisionError

    schedule = Schedule([IntervalClock(3600, start_date=T0)], filters=[broken])
    with pytest.raises(ZeroDivisionError):
        await guarded(serve(recording_flow([]), schedule, clock=FakeClock()))


# -- overlapping runs -----------------------------------------------------------------------------


async def test_skip_drops_events_that_come_while_a_run_is_going() -> None:
    log: list[tuple[Any, ...]] = []
    first = anyio.Event()
    first_done = anyio.Event()
    clock = ScriptedClock()

    async def gate() -> None:
        if len(log) == 1:
            await first.wait()

    async def release_first_run() -> None:
        # at 04:00 the first run (started 01:00) finishes before the scheduler looks
        first.set()
        await first_done.wait()

    def on_run(event: ClockEvent, state: State) -> None:
        if event.start_time == at(1):
            first_done.set()

    clock.hooks[at(4)] = release_first_run
    states = await guarded(serve(recording_flow(log, gate), HOURLY, clock=clock, max_runs=2, on_run=on_run))
    assert [t for t, _, _ in log] == [at(1), at(4)]  # 02:00 and 03:00 were skipped
    assert len(states) == 2
    assert clock.fake.sleeps == [3600.0] * 4


async def test_queue_runs_one_after_another_and_drops_nothing() -> None:
    log: list[tuple[Any, ...]] = []
    clock = FakeClock()
    starts: list[datetime] = []
    running = 0
    most = 0

    async def slow_first() -> None:
        nonlocal running, most
        starts.append(clock.now())
        running += 1
        most = max(most, running)
        if len(log) == 1:
            await clock.sleep(2.5 * 3600)  # the first run lasts until 03:30
        running -= 1

    states = await guarded(serve(recording_flow(log, slow_first), HOURLY, clock=clock, max_runs=4, overlap="queue"))
    assert [t for t, _, _ in log] == [at(1), at(2), at(3), at(4)]
    assert starts == [at(1), at(3.5), at(3.5), at(4)]  # late events run at once, in order
    assert most == 1
    assert clock.sleeps == [3600.0, 9000.0, 1800.0]
    assert all(s.is_successful() for s in states)


async def test_allow_runs_concurrently_and_waits_for_all_runs() -> None:
    log: list[tuple[Any, ...]] = []
    gate = anyio.Event()
    three_started = anyio.Event()
    finished: list[datetime] = []

    async def wait_for_gate() -> None:
        if len(log) == 3:
            three_started.set()
        await gate.wait()
        finished.append(context.get("scheduled_start_time"))

    clock = FakeClock()
    async with anyio.create_task_group() as tg:
        result: list[State] = []

        async def go() -> None:
            result.extend(
                await serve(recording_flow(log, wait_for_gate), HOURLY, clock=clock, max_runs=3, overlap="allow")
            )

        tg.start_soon(go)
        with anyio.fail_after(GUARD):
            await three_started.wait()
        assert finished == []  # three runs are in flight at once
        assert clock.now() == at(3)
        gate.set()
    assert len(result) == 3
    assert all(s.is_successful() for s in result)
    assert sorted(finished) == [at(1), at(2), at(3)]
    assert no_other_tasks()


# -- cancellation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overlap", ["allow", "queue", "skip"])
async def test_cancelling_serve_cancels_runs_and_reraises(overlap: Overlap) -> None:
    log: list[tuple[Any, ...]] = []
    started = anyio.Event()
    cancelled: list[datetime] = []
    n = 2 if overlap == "allow" else 1

    async def block() -> None:
        if len(log) == n:
            started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(context.get("scheduled_start_time"))
            raise

    schedule = Schedule([DatesClock([at(1), at(2)])])
    serving = asyncio.create_task(serve(recording_flow(log, block), schedule, clock=FakeClock(), overlap=overlap))
    with anyio.fail_after(GUARD):
        await started.wait()
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert serving.cancelled()
    assert sorted(cancelled) == [t for t, _, _ in log]
    assert len(cancelled) == n
    assert no_other_tasks()


async def test_an_anyio_cancel_scope_stops_serving_cleanly() -> None:
    log: list[tuple[Any, ...]] = []
    started = anyio.Event()

    async def block() -> None:
        started.set()
        await anyio.sleep_forever()

    async def go() -> None:
        await serve(recording_flow(log, block), Schedule([DatesClock([at(1)])]), clock=FakeClock())

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(go)
            with anyio.fail_after(GUARD):
                await started.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert len(log) == 1
    assert no_other_tasks()
