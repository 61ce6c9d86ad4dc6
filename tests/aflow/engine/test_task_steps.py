"""The task runner's steps, each called alone, its per-task plan, and the fake clock's deadlines."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import anyio
import pytest

from aflow import Edge, Task, signals, task
from aflow._engine._task_runner import (
    UPSTREAM_SKIPPED,
    BodyTimedOut,
    TaskPlan,
    TaskRunEnv,
    decide_retry,
    failure_state,
    make_plan,
    persist_step,
    plan_for,
    run_body,
    trigger_step,
)
from aflow._runtime._run_context import TaskRunContext
from aflow.states import Failed, Pending, Retrying, Skipped, State, Success, TimedOut, TriggerFailed
from aflow.testing import FakeClock

GUARD = 5


async def body() -> int:
    return 1


def upstream_of(down: Task, *states: State) -> dict[Edge, State]:
    return {Edge(Task(name=f"up{i}"), down): s for i, s in enumerate(states)}


# -- the trigger step --------------------------------------------------------------------------


def test_trigger_step_with_a_failed_upstream_is_trigger_failed() -> None:
    t = task(body)
    stop = trigger_step(t, upstream_of(t, Success(), Failed("boom")))
    assert type(stop) is TriggerFailed


def test_trigger_step_with_a_skipped_upstream_skips() -> None:
    t = task(body)
    stop = trigger_step(t, upstream_of(t, Skipped()))
    assert type(stop) is Skipped
    assert stop.message == UPSTREAM_SKIPPED


def test_trigger_step_lets_a_task_with_successful_upstreams_run() -> None:
    t = task(body)
    assert trigger_step(t, upstream_of(t, Success(), Success())) is None
    assert trigger_step(t, None) is None


# -- the retry decision ---------------------------------------------------------------------------


def test_decide_retry_gives_a_delay_while_retries_remain_then_the_final_state() -> None:
    t = task(max_retries=2, retry_delay=timedelta(seconds=7))(body)
    clock = FakeClock()
    failed = Failed("boom")
    assert decide_retry(t, clock, 1, failed, ValueError("boom")) == 7.0
    assert decide_retry(t, clock, 2, failed, ValueError("boom")) == 7.0
    assert decide_retry(t, clock, 3, failed, ValueError("boom")) is failed


def test_decide_retry_honours_retry_on() -> None:
    t = task(max_retries=1, retry_on=KeyError)(body)
    failed = Failed("boom")
    assert decide_retry(t, FakeClock(), 1, failed, ValueError()) is failed
    assert decide_retry(t, FakeClock(), 1, failed, KeyError()) == 0.0


def test_decide_retry_a_retry_signal_sets_its_delay() -> None:
    t = task(body)
    sig = signals.RETRY("again", delay=3)
    state, error = failure_state(sig)
    assert type(state) is Retrying
    assert decide_retry(t, FakeClock(), 1, state, error) == 3


def test_decide_retry_a_signal_left_in_a_non_final_state_ends_failed() -> None:
    t = task(body)
    verdict = decide_retry(t, FakeClock(), 1, Pending("odd"), signals.ENDRUN(Pending("odd")))
    assert type(verdict) is Failed
    assert "left the task in Pending" in (verdict.message or "")


def test_failure_state_of_an_error_and_of_a_timeout() -> None:
    state, error = failure_state(ValueError("bad"))
    assert type(state) is Failed
    assert state.message == "Error during execution of task: ValueError('bad')"
    state, error = failure_state(BodyTimedOut("Task 't' timed out after 1 seconds"))
    assert type(state) is TimedOut
    assert isinstance(error, TimeoutError)
    assert state.result is error


# -- the body step ----------------------------------------------------------------------------


async def test_the_body_step_honours_the_timeout_on_a_fake_clock() -> None:
    seen: list[str] = []

    @task(timeout=5)
    async def hangs() -> None:
        try:
            await anyio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    clock = FakeClock()
    env = TaskRunEnv(None, clock)
    running = asyncio.ensure_future(run_body(hangs, {}, env))
    assert await clock.next_deadline() == clock.now() + timedelta(seconds=5)
    await clock.advance(4.9)
    assert not running.done()
    await clock.jump()
    with anyio.fail_after(GUARD), pytest.raises(BodyTimedOut, match="timed out after 5 seconds"):
        await running
    assert seen == ["cancelled"]


async def test_the_body_step_returns_the_value_within_the_timeout() -> None:
    env = TaskRunEnv(None, FakeClock())
    assert await run_body(task(timeout=5)(body), {}, env) == 1


# -- result persistence ------------------------------------------------------------------------


async def test_persistence_is_skipped_for_a_task_without_target_cache_or_checkpoint() -> None:
    t = task(body)
    env = TaskRunEnv(None, FakeClock())
    plan = plan_for(t, env)
    assert plan.persist is None
    new = Success("done", result=1)
    assert await persist_step(plan, t, TaskRunContext(t, None, None), {}, new) is new


# -- the plan: the fast path in one place ---------------------------------------------------------


def test_a_plain_async_task_awaits_its_body_directly() -> None:
    env = TaskRunEnv(None, FakeClock(), tag_limits={"db": 1})  # a limit on another tag
    plan = plan_for(task(tags=["web"])(body), env)
    assert isinstance(plan, TaskPlan)
    assert plan.direct_body
    assert not plan.track
    assert not plan.handlers


@pytest.mark.parametrize(
    ("options", "env_options"),
    [
        ({"timeout": 5}, {}),
        ({"log_stdout": True}, {}),
        ({"tags": ["db"]}, {"tag_limits": {"db": 1}}),
        ({}, {"max_concurrency": 2}),
        ({}, {"executor": True}),
    ],
    ids=["timeout", "log_stdout", "tag-limit", "global-limit", "executor"],
)
def test_each_option_changing_how_the_body_runs_turns_the_direct_path_off(
    options: dict[str, Any], env_options: dict[str, Any]
) -> None:
    executor = env_options.pop("executor", None)
    env = TaskRunEnv(None, FakeClock(), **env_options)
    if executor:
        env.executor = object()  # type: ignore[assignment]
    assert not plan_for(task(**options)(body), env).direct_body


def test_a_sync_task_does_not_take_the_direct_path() -> None:
    env = TaskRunEnv(None, FakeClock())
    assert not plan_for(task(lambda: 1), env).direct_body


def test_the_plan_is_computed_once_per_task_and_run() -> None:
    t = task(state_handlers=[lambda t, old, new: None])(body)
    env = TaskRunEnv(None, FakeClock())
    plan = plan_for(t, env)
    assert plan.track
    assert plan.handlers
    assert plan_for(t, env) is plan
    assert env.plans[t] is plan
    assert plan_for(t, TaskRunEnv(None, FakeClock())) is not plan


def test_plain_tasks_share_one_plan() -> None:
    env = TaskRunEnv(None, FakeClock())
    plan = make_plan(task(body), env)
    assert make_plan(task(body), env) is plan  # no plan allocated per task
    assert make_plan(task(timeout=1)(body), env) is not plan


# -- the fake clock's deadlines ----------------------------------------------------------------


async def test_fake_clock_wait_times_out_only_when_time_is_moved() -> None:
    clock = FakeClock()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(clock.wait([never], 10))
    assert await clock.next_deadline() == clock.now() + timedelta(seconds=10)
    await clock.advance(9)
    assert not waiting.done()
    await clock.advance(1)
    assert waiting.done()
    assert waiting.result() == {never}
    never.cancel()


async def test_fake_clock_wait_returns_when_the_futures_end_first() -> None:
    clock = FakeClock()
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(clock.wait([fut], 10))
    await clock.next_deadline()
    fut.set_result(1)
    with anyio.fail_after(GUARD):
        assert await waiting == set()
    assert clock._deadlines == []  # the deadline is dropped


async def test_fake_clock_jump_lands_on_the_earliest_deadline() -> None:
    clock = FakeClock()
    start = clock.now()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    late = asyncio.ensure_future(clock.wait([never], 30))
    early = asyncio.ensure_future(clock.wait([never], 2.5))
    await clock.jump()
    assert clock.now() == start + timedelta(seconds=2.5)
    assert early.done()
    assert not late.done()
    await clock.jump()
    assert clock.now() == start + timedelta(seconds=30)
    assert late.done()
    never.cancel()


async def test_fake_clock_jump_waits_for_a_deadline() -> None:
    clock = FakeClock()
    jumping = asyncio.ensure_future(clock.jump())
    await asyncio.sleep(0)
    assert not jumping.done()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(clock.wait([never], 1))
    with anyio.fail_after(GUARD):
        await jumping
        assert await waiting == {never}
    never.cancel()


async def test_fake_clock_sleep_fires_the_deadlines_it_passes() -> None:
    clock = FakeClock()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(clock.wait([never], 5))
    await clock.next_deadline()
    await clock.sleep(6)
    assert clock.sleeps == [6]
    with anyio.fail_after(GUARD):
        assert await waiting == {never}
    never.cancel()


async def test_fake_clock_cannot_go_back() -> None:
    with pytest.raises(ValueError, match="back"):
        await FakeClock().advance(-1)
