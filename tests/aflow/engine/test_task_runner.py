from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, timedelta
from typing import Any

import anyio
import anyio.from_thread
import pytest

import aflow
from aflow import Flow, Parameter, Task, context, signals, task
from aflow._runtime._clock import Clock
from aflow.states import Failed, Looped, Retrying, Skipped, State, Success, TimedOut
from aflow.testing import FakeClock

GUARD = 5


async def run(flow: Flow, **kwargs: Any) -> State:
    with anyio.fail_after(GUARD):
        return await flow.run(**kwargs)


async def run_one(t: Task, *args: Any, **kwargs: Any) -> tuple[State, State]:
    with Flow("f") as flow:
        bound = t(*args)
    state = await run(flow, **kwargs)
    return state, state.result[bound]


async def start_one(t: Task, clock: FakeClock, **kwargs: Any) -> tuple[aflow.FlowRun, Task]:
    """Start a flow of the one task on ``clock``; the test moves the fake time."""
    with Flow("f") as flow:
        bound = t()
    return flow.start(clock=clock, **kwargs), bound


class Barrier:
    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.event = anyio.Event()

    async def wait(self) -> None:
        self.count += 1
        if self.count == self.n:
            self.event.set()
        await self.event.wait()


def recorder() -> tuple[list[tuple[str, str]], Callable[[Task, State, State], None]]:
    seen: list[tuple[str, str]] = []

    def handler(t: Task, old: State, new: State) -> None:
        seen.append((type(old).__name__, type(new).__name__))

    return seen, handler


# -- retries ------------------------------------------------------------------------------------


async def test_retries_up_to_max_retries_with_retry_delay() -> None:
    counts = []

    @task(max_retries=2, retry_delay=3)
    async def flaky():
        counts.append(context.task_run_count)
        raise ValueError(f"attempt {len(counts)}")

    clock = FakeClock()
    flow_state, st = await run_one(flaky, clock=clock)
    assert type(st) is Failed
    assert str(st.result) == "attempt 3"
    assert counts == [1, 2, 3]
    assert clock.sleeps == [3.0, 3.0]
    assert flow_state.is_failed()


async def test_retry_then_success() -> None:
    counts = []

    @task(max_retries=3, retry_delay=timedelta(seconds=2))
    def flaky():
        counts.append(context.task_run_count)
        if len(counts) < 3:
            raise ConnectionError("down")
        return "up"

    clock = FakeClock()
    _, st = await run_one(flaky, clock=clock)
    assert type(st) is Success
    assert st.result == "up"
    assert counts == [1, 2, 3]
    assert clock.sleeps == [2.0, 2.0]


async def test_no_retry_by_default() -> None:
    calls = []

    @task
    async def once():
        calls.append(1)
        raise ValueError("x")

    clock = FakeClock()
    _, st = await run_one(once, clock=clock)
    assert type(st) is Failed
    assert calls == [1]
    assert clock.sleeps == []


async def test_exponential_backoff() -> None:
    @task(max_retries=4, retry_delay=1, retry_backoff=2)
    async def failing():
        raise ValueError("x")

    clock = FakeClock()
    await run_one(failing, clock=clock)
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]


async def test_max_retry_delay_caps_backoff() -> None:
    @task(max_retries=5, retry_delay=1, retry_backoff=3, max_retry_delay=5)
    async def failing():
        raise ValueError("x")

    clock = FakeClock()
    await run_one(failing, clock=clock)
    assert clock.sleeps == [1.0, 3.0, 5.0, 5.0, 5.0]


async def test_retry_jitter_stays_within_bounds() -> None:
    @task(max_retries=20, retry_delay=10, retry_jitter=0.5)
    async def failing():
        raise ValueError("x")

    clock = FakeClock()
    await run_one(failing, clock=clock)
    assert len(clock.sleeps) == 20
    assert all(5.0 <= d <= 15.0 for d in clock.sleeps)
    assert len(set(clock.sleeps)) > 1  # jittered, not constant


async def test_retry_jitter_scales_the_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    extremes = iter([0.5, -0.5])
    monkeypatch.setattr(random, "uniform", lambda a, b: next(extremes))

    @task(max_retries=2, retry_delay=10, retry_jitter=0.5)
    async def failing():
        raise ValueError("x")

    clock = FakeClock()
    await run_one(failing, clock=clock)
    assert clock.sleeps == [15.0, 5.0]


async def test_retry_on_only_retries_listed_exceptions() -> None:
    errors: list[type[Exception]] = [ConnectionError, TimeoutError, ValueError, ConnectionError]

    @task(max_retries=5, retry_delay=1, retry_on=(ConnectionError, TimeoutError))
    async def flaky():
        raise errors.pop(0)("x")

    clock = FakeClock()
    _, st = await run_one(flaky, clock=clock)
    assert type(st) is Failed
    assert isinstance(st.result, ValueError)
    assert clock.sleeps == [1.0, 1.0]
    assert errors == [ConnectionError]


async def test_retrying_state_has_start_time_and_run_count() -> None:
    retrying: list[Retrying] = []

    def handler(t, old, new):
        if isinstance(new, Retrying):
            retrying.append(new)

    @task(max_retries=2, retry_delay=30, state_handlers=[handler])
    async def failing():
        raise ValueError("x")

    clock = FakeClock()
    start = clock.now()
    await run_one(failing, clock=clock)
    assert [r.run_count for r in retrying] == [1, 2]
    assert [r.start_time for r in retrying] == [start + timedelta(seconds=30), start + timedelta(seconds=60)]
    assert all(isinstance(r.result, ValueError) for r in retrying)


class GatedClock(Clock):
    """A clock whose sleep lasts until another task opens the gate."""

    def __init__(self) -> None:
        self.gate = anyio.Event()
        self.sleeping = anyio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeping.set()
        await self.gate.wait()


async def test_a_retrying_task_does_not_block_others() -> None:
    clock = GatedClock()
    attempts = []

    @task(max_retries=1, retry_delay=100)
    async def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first")
        return "second"

    @task
    async def other():
        await clock.sleeping.wait()  # flaky is now waiting for its retry
        clock.gate.set()
        return "other"

    with Flow("f") as flow:
        a = flaky()
        b = other()
    state = await run(flow, clock=clock)
    assert state.result[a].result == "second"
    assert state.result[b].result == "other"


# -- timeouts -----------------------------------------------------------------------------------


async def test_timeout_cancels_the_body() -> None:
    seen = []

    @task(timeout=0.05)
    async def hangs():
        try:
            await anyio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    clock = FakeClock()
    handle, bound = await start_one(hangs, clock)
    await clock.jump()  # the timeout fires
    with anyio.fail_after(GUARD):
        flow_state = await handle
    st = flow_state.result[bound]
    assert type(st) is TimedOut
    assert st.is_failed()
    assert isinstance(st.result, TimeoutError)
    assert "timed out" in (st.message or "")
    assert seen == ["cancelled", "finally"]
    assert flow_state.is_failed()


async def test_timed_out_task_is_retried() -> None:
    seen, handler = recorder()
    attempts = []

    @task(timeout=0.05, max_retries=1, retry_delay=0, state_handlers=[handler])
    async def slow_once():
        attempts.append(1)
        if len(attempts) == 1:
            await anyio.Event().wait()
        return "fast"

    clock = FakeClock()
    handle, bound = await start_one(slow_once, clock)
    await clock.jump()  # the first attempt's timeout fires
    with anyio.fail_after(GUARD):
        st = (await handle).result[bound]
    assert type(st) is Success
    assert st.result == "fast"
    assert clock.sleeps == [0.0]
    assert seen == [
        ("Pending", "Running"),
        ("Running", "Retrying"),
        ("Retrying", "Running"),
        ("Running", "Success"),
    ]


async def test_a_body_within_its_timeout_succeeds() -> None:
    @task(timeout=GUARD)
    async def quick():
        await asyncio.sleep(0)
        return 1

    _, st = await run_one(quick)
    assert type(st) is Success
    assert st.result == 1


async def test_timeout_of_one_task_does_not_affect_others() -> None:
    @task(timeout=0.05)
    async def hangs():
        await anyio.Event().wait()

    @task
    async def fine():
        return "ok"

    with Flow("f") as flow:
        h = hangs()
        f = fine()
    clock = FakeClock()
    handle = flow.start(clock=clock)
    await clock.jump()  # the timeout fires
    with anyio.fail_after(GUARD):
        state = await handle
    assert type(state.result[h]) is TimedOut
    assert state.result[f].result == "ok"


async def test_sync_body_past_its_timeout_ends_timed_out_after_its_thread() -> None:
    done = []
    release = threading.Event()

    @task(timeout=0.01)
    def slow():
        release.wait(GUARD)  # a thread cannot be interrupted: it runs past the deadline
        done.append("thread ended")
        return 1

    clock = FakeClock()
    handle, bound = await start_one(slow, clock)
    await clock.jump()  # the timeout fires: the body is cancelled, its thread runs on
    await clock.next_deadline()  # the cancel grace has begun
    release.set()
    with anyio.fail_after(GUARD):
        st = (await handle).result[bound]
    assert type(st) is TimedOut
    assert done == ["thread ended"]


async def test_sync_body_within_its_timeout_succeeds() -> None:
    @task(timeout=GUARD)
    def quick():
        return threading.get_ident()

    _, st = await run_one(quick)
    assert type(st) is Success
    assert st.result != threading.get_ident()


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        task(timeout=0)(lambda: None)


# -- looping ------------------------------------------------------------------------------------


async def test_loop_context_and_handler_transitions() -> None:
    seen, handler = recorder()
    looped: list[int] = []
    log = []

    def loop_counts(t, old, new):
        if isinstance(new, Looped):
            looped.append(new.loop_count)

    @task(state_handlers=[handler, loop_counts])
    async def countdown(n):
        log.append((context.get("task_loop_count"), context.get("task_loop_result")))
        left = n if context.get("task_loop_count") is None else context.task_loop_result
        if left > 0:
            raise signals.LOOP(result=left - 1)
        return "liftoff"

    _, st = await run_one(countdown, 2)
    assert st.result == "liftoff"
    assert log == [(None, None), (2, 1), (3, 0)]
    assert looped == [1, 2]
    assert seen == [
        ("Pending", "Running"),
        ("Running", "Looped"),
        ("Looped", "Running"),
        ("Running", "Looped"),
        ("Looped", "Running"),
        ("Running", "Success"),
    ]


async def test_loop_in_a_sync_body() -> None:
    @task
    def acc():
        total = context.get("task_loop_result") or []
        if len(total) < 4:
            raise signals.LOOP(result=[*total, len(total)])
        return total

    _, st = await run_one(acc)
    assert st.result == [0, 1, 2, 3]


async def test_loop_progress_survives_a_retry() -> None:
    failed: list[int] = []
    log = []

    @task(max_retries=1, retry_delay=0)
    async def looper():
        n = context.get("task_loop_result") or 0
        log.append((context.task_run_count, n))
        if n == 2 and not failed:
            failed.append(1)
            raise ValueError("once")
        if n < 3:
            raise signals.LOOP(result=n + 1)
        return n

    _, st = await run_one(looper, clock=FakeClock())
    assert st.result == 3
    # the pass after the retried one starts again at attempt 1 (was (2, 3): one budget for all passes)
    assert log == [(1, 0), (1, 1), (1, 2), (2, 2), (1, 3)]


async def test_each_loop_pass_gets_its_own_retries() -> None:
    log = []

    @task(max_retries=1)
    async def looper():
        n = context.get("task_loop_result") or 0
        log.append((n, context.task_run_count))
        if n in (2, 5) and context.task_run_count == 1:
            raise ValueError(f"transient on pass {n}")
        if n < 6:
            raise signals.LOOP(result=n + 1)
        return n

    _, st = await run_one(looper, clock=FakeClock())
    assert st.is_successful(), st
    assert st.result == 6
    assert [c for n, c in log if n in (2, 5)] == [1, 2, 1, 2]


# -- state handlers -----------------------------------------------------------------------------


async def test_handlers_get_task_old_and_new_in_order() -> None:
    calls: list[tuple[object, State, State]] = []

    def handler(t, old, new):
        calls.append((t, old, new))

    @task(state_handlers=[handler])
    async def work():
        return 5

    with Flow("f") as flow:
        w = work()
    state = await run(flow)
    assert [(type(o).__name__, type(n).__name__) for _, o, n in calls] == [
        ("Pending", "Running"),
        ("Running", "Success"),
    ]
    assert all(t is w for t, _, _ in calls)
    assert calls[1][1] is calls[0][2]
    assert calls[1][2] is state.result[w]
    assert calls[1][2].result == 5


async def test_handlers_see_each_retry() -> None:
    seen, handler = recorder()

    @task(max_retries=2, retry_delay=1, state_handlers=[handler])
    async def failing():
        raise ValueError("x")

    await run_one(failing, clock=FakeClock())
    assert seen == [
        ("Pending", "Running"),
        ("Running", "Retrying"),
        ("Retrying", "Running"),
        ("Running", "Retrying"),
        ("Retrying", "Running"),
        ("Running", "Failed"),
    ]


async def test_handler_sees_trigger_failed_and_skipped_transitions() -> None:
    seen, handler = recorder()

    @task
    async def boom():
        raise ValueError("x")

    @task
    async def skip():
        raise signals.SKIP()

    @task(state_handlers=[handler])
    async def downstream():
        return 1

    with Flow("f") as flow:
        downstream(upstream_tasks=[boom()])
        downstream(upstream_tasks=[skip()])
    await run(flow)
    assert sorted(seen) == [("Pending", "Skipped"), ("Pending", "TriggerFailed")]


async def test_handler_may_replace_the_state() -> None:
    def rescue(t, old, new):
        if new.is_failed():
            return Success("rescued", result="fallback")
        return None

    @task(state_handlers=[rescue])
    async def failing():
        raise ValueError("x")

    flow_state, st = await run_one(failing)
    assert type(st) is Success
    assert st.result == "fallback"
    assert flow_state.is_successful()


async def test_handlers_are_chained() -> None:
    seen_by_second = []

    def first(t, old, new):
        if isinstance(new, Success):
            return Success("first", result=new.result + 1)
        return None

    def second(t, old, new):
        seen_by_second.append(new)

    @task(state_handlers=[first, second])
    async def work():
        return 1

    _, st = await run_one(work)
    assert st.result == 2
    assert seen_by_second[-1] is st


async def test_async_handler_is_awaited_and_may_replace() -> None:
    seen = []

    async def handler(t, old, new):
        await asyncio.sleep(0)
        seen.append(type(new).__name__)
        if isinstance(new, Success):
            return Skipped("async replaced")
        return None

    @task(state_handlers=[handler])
    async def work():
        return 1

    _, st = await run_one(work)
    assert seen == ["Running", "Success"]
    assert type(st) is Skipped
    assert st.message == "async replaced"


async def test_handler_replacing_running_prevents_the_body() -> None:
    calls = []

    def veto(t, old, new):
        if new.is_running():
            return Skipped("vetoed")
        return None

    @task(state_handlers=[veto])
    async def work():
        calls.append(1)

    _, st = await run_one(work)
    assert type(st) is Skipped
    assert calls == []


async def test_raising_handler_fails_the_task_not_the_run() -> None:
    def broken(t, old, new):
        if isinstance(new, Success):
            raise RuntimeError("handler bug")

    @task(state_handlers=[broken])
    async def work():
        return 1

    @task
    async def other():
        return 2

    with Flow("f") as flow:
        w = work()
        o = other()
    state = await run(flow)
    st = state.result[w]
    assert type(st) is Failed
    assert isinstance(st.result, RuntimeError)
    assert "broken" in (st.message or "")
    assert "handler bug" in (st.message or "")
    assert state.result[o].result == 2
    assert state.is_failed()


async def test_raising_async_handler_on_start_prevents_the_body() -> None:
    calls = []

    async def broken(t, old, new):
        raise KeyError("early")

    @task(state_handlers=[broken])
    async def work():
        calls.append(1)

    _, st = await run_one(work)
    assert type(st) is Failed
    assert isinstance(st.result, KeyError)
    assert calls == []


async def test_on_failure_called_once_on_final_failure() -> None:
    calls = []

    @task(max_retries=2, retry_delay=1, on_failure=lambda t, s: calls.append((t, s)))
    async def failing():
        raise ValueError("x")

    with Flow("f") as flow:
        f = failing()
    state = await run(flow, clock=FakeClock())
    assert len(calls) == 1
    assert calls[0][0] is f
    assert calls[0][1] is state.result[f]
    assert type(calls[0][1]) is Failed


async def test_on_failure_not_called_on_success_or_recovery() -> None:
    calls = []
    attempts = []

    @task(max_retries=1, retry_delay=1, on_failure=lambda t, s: calls.append(s))
    async def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("x")
        return 1

    _, st = await run_one(flaky, clock=FakeClock())
    assert st.is_successful()
    assert calls == []


async def test_on_failure_called_for_trigger_failed() -> None:
    calls = []

    @task
    async def boom():
        raise ValueError("x")

    @task(on_failure=lambda t, s: calls.append(type(s).__name__))
    async def downstream():
        return 1

    with Flow("f") as flow:
        downstream(upstream_tasks=[boom()])
    await run(flow)
    assert calls == ["TriggerFailed"]


# -- context ------------------------------------------------------------------------------------


async def test_context_is_isolated_between_concurrent_children() -> None:
    n = 20
    barrier = Barrier(n)

    @task
    async def who(i):
        before = (context.map_index, context.task_name)
        await barrier.wait()  # every child is live at once
        for _ in range(n - i):
            await asyncio.sleep(0)
        return before, (context.map_index, context.task_name, context.task_full_name), i

    with Flow("f") as flow:
        m = who.map(list(range(n)))
    state = await run(flow)
    for i, (before, after, item) in enumerate(state.result[m].result):
        assert before == (i, "who")
        assert after == (i, "who", f"who[{i}]")
        assert item == i


async def test_context_is_isolated_between_concurrent_tasks() -> None:
    barrier = Barrier(2)

    @task
    async def alpha():
        await barrier.wait()
        await asyncio.sleep(0)
        return context.task_name, context.get("map_index")

    @task
    async def beta():
        await barrier.wait()
        return context.task_name, context.get("map_index")

    with Flow("f") as flow:
        a = alpha()
        b = beta()
    state = await run(flow)
    assert state.result[a].result == ("alpha", None)
    assert state.result[b].result == ("beta", None)


async def test_flow_context_keys() -> None:
    @task
    async def read():
        return {k: context.get(k) for k in ("today", "yesterday", "tomorrow", "date", "flow_run_id", "parameters")}

    with Flow("ctx") as flow:
        x = Parameter("x", default=1)
        r = read(upstream_tasks=[x])
        r2 = read()
    state = await run(flow, x=7)
    got = state.result[r].result
    day = got["date"].date()
    assert date.fromisoformat(got["today"]) == day
    assert date.fromisoformat(got["yesterday"]) == day - timedelta(days=1)
    assert date.fromisoformat(got["tomorrow"]) == day + timedelta(days=1)
    assert got["parameters"] == {"x": 7}
    assert got["flow_run_id"]
    assert state.result[r2].result["flow_run_id"] == got["flow_run_id"]

    again = await run(flow)
    assert again.result[r].result["flow_run_id"] != got["flow_run_id"]
    assert again.result[r].result["parameters"] == {"x": 1}


async def test_extra_context_and_flow_name() -> None:
    @task
    async def read():
        return context.flow_name, context.get("team"), context.get("nope", "dflt")

    _, st = await run_one(read, context={"team": "data"})
    assert st.result == ("f", "data", "dflt")


async def test_task_run_count_in_context_outside_retries_is_one() -> None:
    @task
    async def read():
        return context.task_run_count, context.get("task_loop_count")

    _, st = await run_one(read)
    assert st.result == (1, None)


async def test_sync_bodies_see_the_run_context_in_their_thread() -> None:
    main = threading.get_ident()

    @task
    def read(x):
        return threading.get_ident() != main, context.task_name, context.map_index, context.flow_run_id, x

    with Flow("f") as flow:
        m = read.map([10, 20, 30])
    state = await run(flow)
    results = state.result[m].result
    run_ids = {r[3] for r in results}
    assert len(run_ids) == 1
    assert None not in run_ids
    assert [(r[0], r[1], r[2], r[4]) for r in results] == [
        (True, "read", 0, 10),
        (True, "read", 1, 20),
        (True, "read", 2, 30),
    ]


def test_context_outside_a_run_is_empty() -> None:
    assert context.get("task_name") is None
    assert context.get("flow_run_id", "none") == "none"
    with pytest.raises(AttributeError):
        _ = context.map_index


# -- log_stdout ---------------------------------------------------------------------------------


async def test_log_stdout_routes_only_that_tasks_prints(capsys, caplog) -> None:
    caplog.set_level(logging.INFO, logger="aflow.task")
    both_printing = Barrier(2)

    @task(log_stdout=True)
    async def chatty():
        await both_printing.wait()  # the plain task prints while routing is on
        print("to the logger")
        await asyncio.sleep(0)
        return 1

    @task
    async def plain():
        await both_printing.wait()
        print("to real stdout")
        return 2

    with Flow("f") as flow:
        chatty()
        plain()
    state = await run(flow)
    assert state.is_successful()
    out = capsys.readouterr().out
    assert "to real stdout" in out
    assert "to the logger" not in out
    logged = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("aflow.task.chatty", "to the logger") in logged
    assert all("to real stdout" not in m for _, m in logged)


async def test_log_stdout_in_a_sync_body(capsys, caplog) -> None:
    caplog.set_level(logging.INFO, logger="aflow.task")

    @task(log_stdout=True)
    def chatty_sync():
        print("line one\nline two")

    _, st = await run_one(chatty_sync)
    assert st.is_successful()
    assert capsys.readouterr().out == ""
    msgs = [r.getMessage() for r in caplog.records if r.name == "aflow.task.chatty_sync"]
    assert msgs == ["line one", "line two"]


# -- run_resource -------------------------------------------------------------------------------


class Resource:
    def __init__(self, key: object) -> None:
        self.key = key
        self.closed = False


class Factory:
    def __init__(self) -> None:
        self.made: list[Resource] = []

    def __call__(self, key: object = "k"):
        @asynccontextmanager
        async def cm() -> AsyncIterator[Resource]:
            r = Resource(key)
            self.made.append(r)
            await asyncio.sleep(0)  # concurrent first users race here
            try:
                yield r
            finally:
                r.closed = True

        return cm()


async def test_run_resource_is_shared_within_a_run_and_closed_at_the_end() -> None:
    factory = Factory()
    n = 5
    barrier = Barrier(n)

    @task
    async def use(i):
        await barrier.wait()
        async with aflow.run_resource("db", factory) as r:
            await asyncio.sleep(0)
            return r, r.closed

    with Flow("f") as flow:
        m = use.map(list(range(n)))
    state = await run(flow)
    results = state.result[m].result
    assert len(factory.made) == 1
    assert all(r is factory.made[0] for r, _ in results)
    assert not any(closed for _, closed in results)  # open while the run lasts
    assert factory.made[0].closed


async def test_run_resource_outlives_the_task_that_opened_it() -> None:
    factory = Factory()

    @task
    async def first():
        async with aflow.run_resource("db", factory) as r:
            return r

    @task
    async def second(prev):
        async with aflow.run_resource("db", factory) as r:
            return r is prev, r.closed

    with Flow("f") as flow:
        s = second(first())
    state = await run(flow)
    assert state.result[s].result == (True, False)
    assert len(factory.made) == 1
    assert factory.made[0].closed


async def test_run_resource_keys_give_different_resources() -> None:
    factory = Factory()

    @task
    async def use(key):
        async with aflow.run_resource(key, lambda: factory(key)) as r:
            return r

    with Flow("f") as flow:
        m = use.map(["a", "b", "a", ("c", 1), ("c", 1)])
    state = await run(flow)
    got = state.result[m].result
    assert got[0] is got[2]
    assert got[3] is got[4]
    assert len({id(r) for r in got}) == 3
    assert sorted(map(str, (r.key for r in factory.made))) == ["('c', 1)", "a", "b"]
    assert all(r.closed for r in factory.made)


async def test_run_resource_is_separate_per_run() -> None:
    factory = Factory()

    @task
    async def use():
        async with aflow.run_resource("db", factory) as r:
            return r

    with Flow("f") as flow:
        u = use()
    s1 = await run(flow)
    s2 = await run(flow)
    assert s1.result[u].result is not s2.result[u].result
    assert len(factory.made) == 2


async def test_run_resource_closed_when_the_flow_fails() -> None:
    factory = Factory()

    @task
    async def use():
        async with aflow.run_resource("db", factory):
            raise ValueError("task broke")

    flow_state, st = await run_one(use)
    assert flow_state.is_failed()
    assert type(st) is Failed
    assert len(factory.made) == 1
    assert factory.made[0].closed


async def test_run_resource_closed_when_the_run_is_cancelled() -> None:
    factory = Factory()
    opened = anyio.Event()
    seen = []

    @task
    async def use():
        async with aflow.run_resource("db", factory) as r:
            opened.set()
            try:
                await anyio.sleep_forever()
            finally:
                seen.append(r.closed)

    with Flow("f") as flow:
        use()
    runner = asyncio.create_task(flow.run())
    with anyio.fail_after(GUARD):
        await opened.wait()
    runner.cancel()
    with anyio.fail_after(GUARD), pytest.raises(asyncio.CancelledError):
        await runner
    assert seen == [False]  # the body stopped before the run closed its resources
    assert len(factory.made) == 1
    assert factory.made[0].closed


async def test_run_resource_outside_a_flow_is_closed_at_block_exit() -> None:
    factory = Factory()
    async with aflow.run_resource("db", factory) as r1:
        assert not r1.closed
    assert r1.closed
    async with aflow.run_resource("db", factory) as r2:
        pass
    assert r2 is not r1
    assert r2.closed
    assert len(factory.made) == 2


async def test_run_resource_when_a_tasks_run_is_called_directly() -> None:
    factory = Factory()

    @task
    async def use():
        async with aflow.run_resource("db", factory) as r:
            return r

    r = await use.run()
    assert r.closed


# -- task_run_name ------------------------------------------------------------------------------


async def test_task_run_name_template_from_inputs() -> None:
    @task(task_run_name="load-{table}")
    async def load(table):
        return context.task_run_name

    _, st = await run_one(load, "users")
    assert st.result == "load-users"


async def test_task_run_name_per_mapped_child_and_from_parameters() -> None:
    @task(task_run_name="{prefix}-{x}-{map_index}")
    def item(x, prefix):
        return context.task_run_name

    with Flow("f") as flow:
        p = Parameter("prefix")
        m = item.map([1, 2], prefix=aflow.unmapped(p))
    state = await run(flow, prefix="run")
    assert state.result[m].result == ["run-1-0", "run-2-1"]


async def test_task_run_name_callable() -> None:
    @task(task_run_name=lambda **kw: f"n{kw['n'] * 2}")
    async def named(n):
        return context.task_run_name

    _, st = await run_one(named, 21)
    assert st.result == "n42"


async def test_task_run_name_absent_by_default() -> None:
    @task
    async def plain():
        return context.get("task_run_name", "missing")

    _, st = await run_one(plain)
    assert st.result is None


async def test_bad_task_run_name_fails_the_task_and_calls_on_failure() -> None:
    calls = []

    @task(task_run_name="load-{nope}", on_failure=lambda t, s: calls.append(s))
    async def load(table):
        calls.append("body ran")

    _, st = await run_one(load, "users")
    assert type(st) is Failed
    assert "task_run_name" in (st.message or "")
    assert isinstance(st.result, KeyError)
    assert calls == [st]
