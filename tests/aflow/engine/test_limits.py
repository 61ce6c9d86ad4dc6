"""Per-tag and global concurrency limits, and the FlowRun handle's cancellation."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from aflow import Flow, task
from aflow.states import Cancelled, Success
from aflow.testing import FakeClock


class Gauge:
    """Counts bodies running at once, per tag set; the peak is what limits must bound."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.done = 0

    async def hold(self) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            for _ in range(3):  # stay "running" across several loop iterations
                await anyio.lowlevel.checkpoint()
        finally:
            self.running -= 1
            self.done += 1


async def test_tag_limit_of_3_over_50_tasks_never_exceeds_3_and_all_finish() -> None:
    gauge = Gauge()

    @task(tags=["db"])
    async def query(i: int) -> int:
        await gauge.hold()
        return i

    with Flow("limited") as flow:
        out = query.map(list(range(50)))

    state = await flow.run(concurrency={"db": 3})

    assert state.is_successful()
    assert state.result[out].result == list(range(50))
    assert gauge.done == 50
    assert gauge.peak == 3  # reached, never exceeded


async def test_tags_given_to_a_call_add_to_the_template_tags_so_its_limit_holds() -> None:
    gauge = Gauge()

    @task(tags=["db"])
    async def query(i: int) -> int:
        await gauge.hold()
        return i

    with Flow("added-tags") as flow:
        calls = [query(i, task_args={"tags": ["reporting"]}) for i in range(5)]

    assert all(c.tags == {"db", "reporting"} for c in calls)
    state = await flow.run(concurrency={"db": 1})
    assert [state.result[c].result for c in calls] == list(range(5))
    assert gauge.peak == 1  # the template's "db" limit still holds for every copy


async def test_untagged_tasks_are_not_limited_by_tag_limits() -> None:
    gauge = Gauge()

    @task
    async def free(i: int) -> int:
        await gauge.hold()
        return i

    with Flow("free") as flow:
        free.map(list(range(10)))

    await flow.run(concurrency={"db": 1})
    assert gauge.peak == 10


async def test_flow_level_default_limits_merge_with_run_limits() -> None:
    gauges = {"db": Gauge(), "api": Gauge()}

    @task(tags=["db"])
    async def db(i: int) -> int:
        await gauges["db"].hold()
        return i

    @task(tags=["api"])
    async def api(i: int) -> int:
        await gauges["api"].hold()
        return i

    with Flow("defaults", concurrency={"db": 2, "api": 5}) as flow:
        db.map(list(range(12)))
        api.map(list(range(12)))

    await flow.run(concurrency={"api": 4})  # overrides the flow's api limit only
    assert gauges["db"].peak == 2
    assert gauges["api"].peak == 4


async def test_tasks_holding_several_limited_tags_do_not_deadlock() -> None:
    gauge_a, gauge_b = Gauge(), Gauge()
    both_running = 0
    both_peak = 0

    @task(tags=["a", "b"])
    async def ab(i: int) -> int:
        nonlocal both_running, both_peak
        both_running += 1
        both_peak = max(both_peak, both_running)
        await gauge_a.hold()
        both_running -= 1
        return i

    @task(tags=["b", "a"])
    async def ba(i: int) -> int:
        await gauge_b.hold()
        return i

    with Flow("two-tags") as flow:
        x = ab.map(list(range(20)))
        y = ba.map(list(range(20)))

    with anyio.fail_after(10):  # a deadlock fails the test instead of hanging it
        state = await flow.run(concurrency={"a": 2, "b": 1})
    assert state.is_successful()
    assert state.result[x].result == list(range(20))
    assert state.result[y].result == list(range(20))
    assert both_peak == 1
    assert gauge_a.peak + gauge_b.peak <= 2  # "b" allows one body at a time, across both tasks


async def test_global_limit_and_tag_limit_together() -> None:
    gauge = Gauge()

    @task(tags=["db"])
    async def db(i: int) -> int:
        await gauge.hold()
        return i

    @task
    async def other(i: int) -> int:
        await gauge.hold()
        return i

    with Flow("global") as flow:
        db.map(list(range(10)))
        other.map(list(range(10)))

    state = await flow.run(max_concurrency=3, concurrency={"db": 1})
    assert state.is_successful()
    assert gauge.peak == 3


async def test_waiting_for_a_slot_does_not_count_towards_the_timeout() -> None:
    release = anyio.Event()
    clock = FakeClock()

    @task(tags=["one"])
    async def hold() -> str:
        await release.wait()
        return "held"

    @task(tags=["one"], timeout=0.1)
    async def quick() -> str:
        return "quick"

    @task
    async def releaser() -> None:
        for _ in range(10):  # `quick` is waiting for the slot by now
            await anyio.lowlevel.checkpoint()
        await clock.advance(0.4)  # far past its timeout: a deadline counting the wait would fire
        release.set()

    with Flow("slot") as flow:
        h = hold()
        q = quick(upstream_tasks=[])
        releaser()

    state = await flow.run(concurrency={"one": 1}, clock=clock)
    assert state.result[h].result == "held"
    assert isinstance(state.result[q], Success)


@pytest.mark.parametrize("bad", [0, -1, 1.5])
async def test_bad_limits_are_rejected_before_running(bad: float) -> None:
    ran = []

    @task
    async def t() -> None:
        ran.append(1)

    with Flow("bad") as flow:
        t()

    with pytest.raises(ValueError, match="concurrency limits must be positive ints"):
        await flow.run(concurrency={"db": bad})  # type: ignore[dict-item]
    assert ran == []


async def test_flowrun_handle_cancel_marks_unfinished_tasks_cancelled() -> None:
    started = anyio.Event()
    cleaned: list[int] = []

    @task
    async def forever(i: int) -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            cleaned.append(i)

    @task
    async def fast() -> int:
        return 1

    @task
    async def after(xs: list[None]) -> int:
        return len(xs)

    with Flow("cancel-me") as flow:
        f = forever.map([1, 2])
        ok = fast()
        a = after(f)

    handle = flow.start()
    await started.wait()
    assert not handle.done()
    handle.cancel()
    state = await handle

    assert isinstance(state, Cancelled)
    assert isinstance(state.result[f], Cancelled)
    assert isinstance(state.result[a], Cancelled)
    assert isinstance(state.result[ok], Success)
    assert sorted(cleaned) == [1, 2]  # the bodies saw the cancellation
    assert handle.done()
    assert handle.flow_run_id in repr(handle)


async def test_cancelling_a_waiter_of_the_handle_does_not_cancel_the_run() -> None:
    gate = anyio.Event()

    @task
    async def gated() -> str:
        await gate.wait()
        return "done"

    with Flow("owned") as flow:
        g = gated()

    handle = flow.start()
    waiter = asyncio.ensure_future(handle.wait())
    await anyio.lowlevel.checkpoint()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.set()
    state = await handle
    assert state.result[g].result == "done"


def test_start_needs_a_running_loop() -> None:
    with Flow("no-loop") as flow:
        pass
    with pytest.raises(RuntimeError):
        flow.start()
