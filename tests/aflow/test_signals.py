from __future__ import annotations

from typing import Any

import pytest

from aflow import Flow, Task, context, signals, task
from aflow.states import Failed, Looped, Retrying, Skipped, State, Success, TriggerFailed
from aflow.testing import FakeClock


@pytest.mark.parametrize(
    ("sig", "state_cls"),
    [
        (signals.FAIL, Failed),
        (signals.TRIGGERFAIL, TriggerFailed),
        (signals.SUCCESS, Success),
        (signals.SKIP, Skipped),
        (signals.RETRY, Retrying),
        (signals.LOOP, Looped),
    ],
)
def test_signal_carries_its_state(sig: type[signals.AflowSignal], state_cls: type) -> None:
    s = sig("why")
    assert type(s.state) is state_cls
    assert s.state.message == "why"
    assert isinstance(s, BaseException)
    assert not isinstance(s, Exception)


def test_failure_signals_carry_themselves_as_result() -> None:
    fail = signals.FAIL("x")
    assert fail.state.result is fail
    assert signals.SUCCESS("x").state.result is None
    assert signals.SUCCESS("x", result=7).state.result == 7


def test_success_skip_and_loop_carry_none_unless_given_a_result() -> None:
    # as their docstrings say (the base class's docstring said "the signal itself")
    for signal in (signals.SUCCESS, signals.SKIP, signals.LOOP):
        assert signal("x").state.result is None
        assert signal("x", result=3).state.result == 3


def test_endrun_carries_the_given_state() -> None:
    st = Skipped("as is")
    assert signals.ENDRUN(st).state is st


async def run_one(t: Task, **kwargs: Any) -> tuple[State, State]:
    with Flow("f") as flow:
        bound = t()
    state = await flow.run(**kwargs)
    return state, state.result[bound]


async def test_fail_sets_failed() -> None:
    @task
    async def body():
        raise signals.FAIL("nope")

    flow_state, st = await run_one(body)
    assert type(st) is Failed
    assert st.message == "nope"
    assert isinstance(st.result, signals.FAIL)
    assert flow_state.is_failed()


async def test_fail_in_sync_body_sets_failed() -> None:
    @task
    def body():
        raise signals.FAIL("sync nope")

    _, st = await run_one(body)
    assert type(st) is Failed
    assert st.message == "sync nope"


async def test_triggerfail_sets_trigger_failed_and_is_not_retried() -> None:
    calls = []

    @task(max_retries=3, retry_delay=1)
    async def body():
        calls.append(1)
        raise signals.TRIGGERFAIL("bad trigger")

    clock = FakeClock()
    _, st = await run_one(body, clock=clock)
    assert type(st) is TriggerFailed
    assert calls == [1]
    assert clock.sleeps == []


async def test_success_sets_success_with_result() -> None:
    @task
    async def body():
        raise signals.SUCCESS("early", result=42)

    flow_state, st = await run_one(body)
    assert type(st) is Success
    assert st.result == 42
    assert st.message == "early"
    assert flow_state.is_successful()


async def test_skip_sets_skipped_and_flow_succeeds() -> None:
    @task
    async def body():
        raise signals.SKIP("not today")

    flow_state, st = await run_one(body)
    assert type(st) is Skipped
    assert st.message == "not today"
    assert flow_state.is_successful()


async def test_retry_reruns_even_without_max_retries() -> None:
    calls = []

    @task
    async def body():
        calls.append(context.task_run_count)
        if len(calls) == 1:
            raise signals.RETRY("again", delay=5)
        return "second"

    clock = FakeClock()
    _, st = await run_one(body, clock=clock)
    assert type(st) is Success
    assert st.result == "second"
    assert calls == [1, 2]
    assert clock.sleeps == [5]


async def test_retry_is_seen_as_a_retrying_transition() -> None:
    seen = []

    def handler(t, old, new):
        seen.append((type(old).__name__, type(new).__name__))

    attempts = []

    @task(state_handlers=[handler])
    async def body():
        attempts.append(1)
        if len(attempts) == 1:
            raise signals.RETRY()
        return 1

    _, st = await run_one(body, clock=FakeClock())
    assert st.is_successful()
    assert seen == [
        ("Pending", "Running"),
        ("Running", "Retrying"),
        ("Retrying", "Running"),
        ("Running", "Success"),
    ]


async def test_loop_reruns_with_loop_result_until_return() -> None:
    seen = []

    @task
    async def counter():
        n = context.get("task_loop_result") or 0
        seen.append((context.get("task_loop_count"), n))
        if n < 3:
            raise signals.LOOP(result=n + 1)
        return n * 10

    _, st = await run_one(counter)
    assert type(st) is Success
    assert st.result == 30
    assert seen == [(None, 0), (2, 1), (3, 2), (4, 3)]


async def test_endrun_ends_in_its_state_without_retry() -> None:
    calls = []

    @task(max_retries=2, retry_delay=1)
    async def body():
        calls.append(1)
        raise signals.ENDRUN(Failed("final", result=ValueError("v")))

    clock = FakeClock()
    _, st = await run_one(body, clock=clock)
    assert type(st) is Failed
    assert st.message == "final"
    assert calls == [1]
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("sig", "expected"),
    [
        (signals.FAIL("f"), Failed),
        (signals.SKIP("s"), Skipped),
        (signals.SUCCESS("s", result=1), Success),
    ],
    ids=["FAIL", "SKIP", "SUCCESS"],
)
async def test_signals_are_not_swallowed_by_except_exception(sig, expected) -> None:
    @task
    async def body():
        try:
            raise sig
        except Exception:
            return "swallowed"

    _, st = await run_one(body)
    assert type(st) is expected
    assert st.result != "swallowed"


async def test_except_exception_in_sync_body_does_not_swallow_skip() -> None:
    @task
    def body():
        try:
            raise signals.SKIP("s")
        except Exception:
            return "swallowed"

    _, st = await run_one(body)
    assert type(st) is Skipped


async def test_fail_is_retried_when_max_retries_allows() -> None:
    calls = []

    @task(max_retries=1, retry_delay=2)
    async def body():
        calls.append(1)
        if len(calls) == 1:
            raise signals.FAIL("first")
        return "ok"

    clock = FakeClock()
    _, st = await run_one(body, clock=clock)
    assert st.is_successful()
    assert st.result == "ok"
    assert clock.sleeps == [2.0]
