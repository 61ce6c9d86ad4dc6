from __future__ import annotations

from typing import Any

import pytest

from aflow import Edge, Flow, Task, signals, task, triggers
from aflow.states import Failed, Mapped, Pending, Skipped, State, Success, TriggerFailed
from aflow.testing import FakeClock

DOWN = Task(name="down")


def ups(*states: State) -> dict[Edge, State]:
    return {Edge(Task(name=f"up{i}"), DOWN): s for i, s in enumerate(states)}


OK = Success(result=1)
BAD = Failed(result=ValueError("x"))
SKIP = Skipped()
PENDING = Pending()


# -- pure functions ---------------------------------------------------------------------------


def test_all_successful() -> None:
    assert triggers.all_successful(ups(OK, OK, SKIP)) is True
    assert triggers.all_successful({}) is True
    with pytest.raises(signals.TRIGGERFAIL):
        triggers.all_successful(ups(OK, BAD))
    with pytest.raises(signals.TRIGGERFAIL):
        triggers.all_successful(ups(OK, PENDING))


def test_all_finished_and_always_run() -> None:
    assert triggers.always_run is triggers.all_finished
    assert triggers.all_finished(ups(OK, BAD, SKIP)) is True
    with pytest.raises(signals.TRIGGERFAIL):
        triggers.all_finished(ups(OK, PENDING))


def test_all_failed() -> None:
    assert triggers.all_failed(ups(BAD, TriggerFailed())) is True
    with pytest.raises(signals.TRIGGERFAIL):
        triggers.all_failed(ups(BAD, OK))
    with pytest.raises(signals.TRIGGERFAIL):
        triggers.all_failed(ups(BAD, SKIP))


def test_any_successful() -> None:
    assert triggers.any_successful(ups(BAD, OK)) is True
    assert triggers.any_successful(ups(BAD, SKIP)) is True
    assert triggers.any_successful({}) is True
    with pytest.raises(signals.TRIGGERFAIL):
        triggers.any_successful(ups(BAD, BAD))


def test_any_failed() -> None:
    assert triggers.any_failed(ups(OK, BAD)) is True
    assert triggers.any_failed({}) is True
    with pytest.raises(signals.TRIGGERFAIL):
        triggers.any_failed(ups(OK, SKIP))


def test_some_successful_counts() -> None:
    trig = triggers.some_successful(at_least=2, at_most=3)
    assert trig.__name__ == "some_successful"
    with pytest.raises(signals.TRIGGERFAIL):
        trig(ups(OK, BAD, BAD, BAD))
    assert trig(ups(OK, OK, BAD, BAD)) is True
    assert trig(ups(OK, OK, OK, BAD)) is True
    with pytest.raises(signals.TRIGGERFAIL):
        trig(ups(OK, OK, OK, OK))


def test_some_successful_fractions() -> None:
    trig = triggers.some_successful(at_least=0.5)
    assert trig(ups(OK, OK, BAD, BAD)) is True
    with pytest.raises(signals.TRIGGERFAIL):
        trig(ups(OK, BAD, BAD, BAD))
    at_most = triggers.some_successful(at_most=0.25)
    assert at_most(ups(OK, BAD, BAD, BAD)) is True
    with pytest.raises(signals.TRIGGERFAIL):
        at_most(ups(OK, OK, BAD, BAD))


def test_some_failed_counts_and_fractions() -> None:
    at_least_one = triggers.some_failed(at_least=1)
    assert at_least_one(ups(OK, BAD)) is True
    with pytest.raises(signals.TRIGGERFAIL):
        at_least_one(ups(OK, OK))
    at_most_half = triggers.some_failed(at_most=0.5)
    assert at_most_half(ups(OK, BAD)) is True
    with pytest.raises(signals.TRIGGERFAIL):
        at_most_half(ups(BAD, BAD, OK))


def test_count_triggers_without_bounds_pass() -> None:
    # as in Prefect 1 (was: ValueError at build)
    assert triggers.some_successful()(ups(BAD, BAD)) is True
    assert triggers.some_failed()(ups(OK, OK)) is True
    assert triggers.some_successful()(ups()) is True


def test_not_all_skipped() -> None:
    with pytest.raises(signals.SKIP):
        triggers.not_all_skipped(ups(SKIP, SKIP))
    assert triggers.not_all_skipped(ups(SKIP, OK)) is True
    assert triggers.not_all_skipped({}) is True
    with pytest.raises(signals.TRIGGERFAIL):
        triggers.not_all_skipped(ups(SKIP, BAD))


# -- in flows ---------------------------------------------------------------------------------


@task
async def ok():
    return 1


@task
async def bad():
    raise ValueError("upstream broke")


@task
async def skipper():
    raise signals.SKIP("skip me")


async def run_with(trigger: Any, *upstreams: Task, **task_kwargs: Any) -> tuple[State, list[int]]:
    """Run ``sink`` with ``trigger`` downstream of ``upstreams``; return (sink state, calls)."""
    calls: list[int] = []

    @task(trigger=trigger, **task_kwargs)
    async def sink():
        calls.append(1)
        return "ran"

    with Flow("triggers") as flow:
        s = sink(upstream_tasks=[u() for u in upstreams])
    state = await flow.run(clock=FakeClock())
    return state.result[s], calls


@pytest.mark.parametrize(
    ("trigger", "upstreams", "runs"),
    [
        (triggers.all_successful, (ok, ok), True),
        (triggers.all_successful, (ok, bad), False),
        (triggers.all_finished, (ok, bad), True),
        (triggers.always_run, (bad, bad), True),
        (triggers.all_failed, (bad, bad), True),
        (triggers.all_failed, (bad, ok), False),
        (triggers.any_successful, (bad, ok), True),
        (triggers.any_successful, (bad, bad), False),
        (triggers.any_failed, (ok, bad), True),
        (triggers.any_failed, (ok, ok), False),
        (triggers.some_successful(at_least=2), (ok, ok, bad), True),
        (triggers.some_successful(at_least=2), (ok, bad, bad), False),
        (triggers.some_successful(at_least=0.5), (ok, bad), True),
        (triggers.some_failed(at_most=1), (ok, bad), True),
        (triggers.some_failed(at_most=1), (bad, bad), False),
        (triggers.some_failed(at_least=0.6), (bad, bad, ok), True),
        (triggers.not_all_skipped, (ok, ok), True),
        (triggers.not_all_skipped, (ok, bad), False),
    ],
)
async def test_triggers_in_flows(trigger, upstreams, runs: bool) -> None:
    st, calls = await run_with(trigger, *upstreams)
    if runs:
        assert type(st) is Success
        assert st.result == "ran"
        assert calls == [1]
    else:
        assert type(st) is TriggerFailed
        assert calls == []


async def test_any_successful_runs_with_no_upstreams() -> None:
    st, calls = await run_with(triggers.any_successful)
    assert st.is_successful()
    assert calls == [1]


@pytest.mark.parametrize(
    "trigger",
    [
        triggers.some_successful(at_least=1),
        triggers.some_successful(at_least=0.5, at_most=0.9),
        triggers.some_failed(at_least=2),
        triggers.some_failed(),
    ],
)
async def test_some_triggers_run_a_task_with_no_upstreams(trigger) -> None:
    st, calls = await run_with(trigger)
    assert type(st) is Success  # Prefect 1: nothing to count, it runs (was TriggerFailed "0 of 0")
    assert calls == [1]


@pytest.mark.parametrize(
    "trigger",
    [triggers.all_successful, triggers.all_failed, triggers.some_failed(at_least=2), lambda ups: False],
    ids=["default", "all_failed", "some_failed", "returns-false"],
)
async def test_a_trigger_failed_states_result_is_the_triggerfail_signal(trigger) -> None:
    upstream = bad if trigger is triggers.all_successful else ok
    st, calls = await run_with(trigger, upstream)
    assert type(st) is TriggerFailed
    assert isinstance(st.result, signals.TRIGGERFAIL)  # the exception, as for every failed state
    assert st.exception is st.result
    assert st.result.args[0] == st.message
    assert calls == []


async def test_not_all_skipped_skips_when_every_upstream_skipped() -> None:
    st, calls = await run_with(triggers.not_all_skipped, skipper, skipper, skip_on_upstream_skip=False)
    assert type(st) is Skipped
    assert calls == []


async def test_not_all_skipped_runs_when_some_upstream_ran() -> None:
    st, calls = await run_with(triggers.not_all_skipped, skipper, ok, skip_on_upstream_skip=False)
    assert st.is_successful()
    assert calls == [1]


async def test_trigger_returning_false_gives_trigger_failed_without_retry() -> None:
    clock = FakeClock()
    calls = []

    @task(trigger=lambda ups: False, max_retries=3, retry_delay=1)
    async def sink():
        calls.append(1)

    with Flow("f") as flow:
        s = sink(upstream_tasks=[ok()])
    state = await flow.run(clock=clock)
    st = state.result[s]
    assert type(st) is TriggerFailed
    assert "returned False" in (st.message or "")
    assert calls == []
    assert clock.sleeps == []
    assert state.is_failed()


async def test_trigger_raising_an_error_gives_trigger_failed_without_retry() -> None:
    clock = FakeClock()

    def broken(ups):
        raise KeyError("trigger bug")

    @task(trigger=broken, max_retries=3, retry_delay=1)
    async def sink():
        return 1

    with Flow("f") as flow:
        s = sink(upstream_tasks=[ok()])
    state = await flow.run(clock=clock)
    st = state.result[s]
    assert type(st) is TriggerFailed
    assert isinstance(st.result, KeyError)
    assert "broken" in (st.message or "")
    assert clock.sleeps == []


async def test_trigger_is_checked_for_a_root_task_too() -> None:
    @task(trigger=lambda ups: False)
    async def root():
        return 1

    with Flow("f") as flow:
        r = root()
    state = await flow.run()
    assert type(state.result[r]) is TriggerFailed


async def test_triggerfail_propagates_down_a_chain() -> None:
    @task
    async def step(x):
        return x

    with Flow("f") as flow:
        a = bad()
        b = step(a)
        c = step(b)
    state = await flow.run()
    assert type(state.result[a]) is Failed
    assert type(state.result[b]) is TriggerFailed
    assert type(state.result[c]) is TriggerFailed
    assert state.is_failed()


# -- skips ------------------------------------------------------------------------------------


async def test_skip_propagates_downstream() -> None:
    calls = []

    @task
    async def step(x):
        calls.append(x)
        return x

    with Flow("f") as flow:
        a = skipper()
        b = step(a)
        c = step(b)
    state = await flow.run()
    assert type(state.result[b]) is Skipped
    assert type(state.result[c]) is Skipped
    assert calls == []
    assert state.is_successful()


async def test_skip_is_checked_before_the_trigger() -> None:
    @task(trigger=triggers.all_finished)
    async def cleanup():
        return "cleaned"

    with Flow("f") as flow:
        c = cleanup(upstream_tasks=[skipper()])
    state = await flow.run()
    assert type(state.result[c]) is Skipped


async def test_skip_on_upstream_skip_false_runs_the_task() -> None:
    @task(skip_on_upstream_skip=False)
    async def step(x):
        return ("ran", x)

    with Flow("f") as flow:
        b = step(skipper())
    state = await flow.run()
    st = state.result[b]
    assert type(st) is Success
    assert st.result == ("ran", None)


# -- reduce after a map -----------------------------------------------------------------------


@task
async def maybe_fail(x):
    if x == 2:
        raise ValueError(f"bad item {x}")
    return x * 10


async def test_reduce_after_a_failed_child_is_trigger_failed() -> None:
    calls = []

    @task
    async def total(xs):
        calls.append(xs)
        return sum(xs)

    with Flow("f") as flow:
        m = maybe_fail.map([1, 2, 3])
        r = total(m)
    state = await flow.run()
    mst = state.result[m]
    assert type(mst) is Mapped
    assert [type(s) for s in mst.map_states] == [Success, Failed, Success]
    assert type(state.result[r]) is TriggerFailed
    assert calls == []
    assert state.is_failed()


async def test_reduce_with_all_finished_gets_the_exception_in_its_list() -> None:
    @task(trigger=triggers.all_finished)
    async def collect(xs):
        return xs

    with Flow("f") as flow:
        r = collect(maybe_fail.map([1, 2, 3]))
    state = await flow.run()
    st = state.result[r]
    assert type(st) is Success
    first, err, third = st.result
    assert (first, third) == (10, 30)
    assert isinstance(err, ValueError)
    assert str(err) == "bad item 2"


async def test_reduce_trigger_sees_the_mapped_state_and_its_children() -> None:
    seen: list[list[str]] = []

    def spy(upstream):
        assert [type(s).__name__ for s in upstream.values()] == ["Mapped"]
        seen.append(sorted(type(s).__name__ for s in triggers.child_states(upstream)))
        return True

    @task(trigger=spy)
    async def collect(xs):
        return len(xs)

    with Flow("f") as flow:
        r = collect(maybe_fail.map([1, 2, 3]))
    state = await flow.run()
    assert seen == [["Failed", "Success", "Success"]]
    assert state.result[r].result == 3


async def test_reduce_with_some_successful_fraction_over_children() -> None:
    @task(trigger=triggers.some_successful(at_least=0.6))
    async def collect(xs):
        return [x for x in xs if isinstance(x, int)]

    with Flow("f") as flow:
        r = collect(maybe_fail.map([1, 2, 3]))
    state = await flow.run()
    assert state.result[r].result == [10, 30]


async def test_reduce_after_a_skipped_child_is_skipped() -> None:
    @task
    async def maybe_skip(x):
        if x == 2:
            raise signals.SKIP("skip 2")
        return x

    @task
    async def total(xs):
        return xs

    @task(skip_on_upstream_skip=False)
    async def keep(xs):
        return [x for x in xs if x is not None]

    with Flow("f") as flow:
        m = maybe_skip.map([1, 2, 3])
        r = total(m)
        k = keep(m)
    state = await flow.run()
    assert [type(s) for s in state.result[m].map_states] == [Success, Skipped, Success]
    assert type(state.result[r]) is Skipped
    assert state.result[k].result == [1, 3]


async def test_skipped_child_skips_its_depth_first_child_only() -> None:
    @task
    async def maybe_skip(x):
        if x == 2:
            raise signals.SKIP("skip 2")
        return x

    @task
    async def inc(x):
        return x + 1

    with Flow("f") as flow:
        m = inc.map(maybe_skip.map([1, 2, 3]))
    state = await flow.run()
    children = state.result[m].map_states
    assert [type(s) for s in children] == [Success, Skipped, Success]
    assert [children[0].result, children[2].result] == [2, 4]
