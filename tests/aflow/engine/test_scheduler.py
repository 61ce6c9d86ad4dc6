from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

from aflow import Flow, flatten, signals, task, unmapped
from aflow.states import Failed, Mapped, State, Success, TriggerFailed

GUARD = 5  # seconds: a regression fails the test instead of hanging it


class Barrier:
    """Releases everyone once ``n`` callers wait: passable only by ``n`` concurrent waiters."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.event = anyio.Event()

    async def wait(self) -> None:
        self.count += 1
        if self.count == self.n:
            self.event.set()
        await self.event.wait()


async def run(flow: Flow, **kwargs: Any) -> State:
    with anyio.fail_after(GUARD):
        return await flow.run(**kwargs)


async def spin(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


# -- concurrency --------------------------------------------------------------------------------


async def test_independent_tasks_run_at_the_same_time() -> None:
    n = 8
    barrier = Barrier(n)

    @task
    async def meet(i):
        await barrier.wait()
        return i

    with Flow("f") as flow:
        ts = [meet(i) for i in range(n)]
    state = await run(flow)
    assert state.is_successful()
    assert [state.result[t].result for t in ts] == list(range(n))


async def test_mapped_children_run_at_the_same_time() -> None:
    n = 6
    barrier = Barrier(n)

    @task
    async def meet(i):
        await barrier.wait()
        return i * 2

    with Flow("f") as flow:
        m = meet.map(list(range(n)))
    state = await run(flow)
    assert state.result[m].result == [i * 2 for i in range(n)]


async def test_sync_bodies_run_concurrently_in_worker_threads() -> None:
    n = 4
    barrier = threading.Barrier(n, timeout=GUARD)
    main = threading.get_ident()

    @task
    def meet(i):
        barrier.wait()  # BrokenBarrierError (a Failed task) unless all n run at once
        return threading.get_ident()

    with Flow("f") as flow:
        ts = [meet(i) for i in range(n)]
    state = await run(flow)
    assert state.is_successful(), [state.result[t] for t in ts]
    idents = {state.result[t].result for t in ts}
    assert len(idents) == n
    assert main not in idents


async def test_a_blocked_sync_body_does_not_block_the_loop() -> None:
    release = threading.Event()
    started = anyio.Event()

    @task
    def blocked():
        anyio.from_thread.run_sync(started.set)
        return release.wait(GUARD)  # False if nobody could set it meanwhile

    @task
    async def releaser():
        await started.wait()  # the sync body is now blocked in its thread
        release.set()
        return "released"

    with Flow("f") as flow:
        b = blocked()
        r = releaser()
    state = await run(flow)
    assert state.result[b].result is True
    assert state.result[r].result == "released"


# -- ordering -----------------------------------------------------------------------------------


async def test_a_task_never_starts_before_its_upstreams_finish() -> None:
    log: list[str] = []

    def step(name: str, yields: int):
        @task(name=name)
        async def body(**_):
            log.append(f"{name}-start")
            await spin(yields)
            log.append(f"{name}-end")
            return name

        return body

    a, b, c, d = step("a", 3), step("b", 10), step("c", 1), step("d", 0)
    with Flow("f") as flow:
        ta = a()
        tb = b(x=ta)
        tc = c(upstream_tasks=[ta])
        td = d(x=tb, y=tc)
    state = await run(flow)
    assert state.result[td].result == "d"
    pos = {e: i for i, e in enumerate(log)}
    assert pos["a-end"] < pos["b-start"]
    assert pos["a-end"] < pos["c-start"]
    assert pos["b-end"] < pos["d-start"]
    assert pos["c-end"] < pos["d-start"]
    # b and c are independent: c starts (and ends) while b is still running
    assert pos["b-start"] < pos["c-end"] < pos["b-end"]


async def test_upstream_result_is_passed_to_downstream() -> None:
    @task
    async def one():
        return 1

    @task
    def add(x, y):
        return x + y

    with Flow("f") as flow:
        r = add(one(), y=41)
    state = await run(flow)
    assert state.result[r].result == 42


# -- mapping ------------------------------------------------------------------------------------


@task
async def double(x):
    return x * 2


@task
async def pair(x, y):
    return (x, y)


async def test_map_makes_one_child_per_item() -> None:
    from aflow import context

    @task
    async def who(x):
        return (context.map_index, x)

    with Flow("f") as flow:
        m = who.map(["a", "b", "c"])
    state = await run(flow)
    st = state.result[m]
    assert type(st) is Mapped
    assert st.n_map_states == 3
    assert st.result == [(0, "a"), (1, "b"), (2, "c")]
    assert all(type(s) is Success for s in st.map_states)


async def test_map_zips_inputs_shortest_wins() -> None:
    with Flow("f") as flow:
        m = pair.map([1, 2, 3], [10, 20])
    state = await run(flow)
    assert state.result[m].result == [(1, 10), (2, 20)]


async def test_unmapped_input_is_broadcast_whole() -> None:
    with Flow("f") as flow:
        m = pair.map([1, 2, 3], y=unmapped([7, 8]))
    state = await run(flow)
    assert state.result[m].result == [(1, [7, 8]), (2, [7, 8]), (3, [7, 8])]


async def test_unmapped_upstream_task_is_broadcast() -> None:
    @task
    async def base():
        return 100

    with Flow("f") as flow:
        m = pair.map([1, 2], y=unmapped(base()))
    state = await run(flow)
    assert state.result[m].result == [(1, 100), (2, 100)]


async def test_empty_map_has_no_children_and_reduce_gets_empty_list() -> None:
    calls = []

    @task
    async def child(x):
        calls.append(x)
        return x

    @task
    async def total(xs):
        return ("total", xs)

    with Flow("f") as flow:
        m = child.map([])
        mm = double.map(m)
        r = total(mm)
    state = await run(flow)
    assert calls == []
    assert type(state.result[m]) is Mapped
    assert state.result[m].n_map_states == 0
    assert state.result[mm].n_map_states == 0
    assert state.result[r].result == ("total", [])
    assert state.is_successful()


async def test_map_over_upstream_results() -> None:
    @task
    async def items():
        return [1, 2, 3]

    @task
    async def total(xs):
        return sum(xs)

    with Flow("f") as flow:
        r = total(double.map(double.map(items())))
    state = await run(flow)
    assert state.result[r].result == 24


async def test_map_of_map_runs_depth_first() -> None:
    """f[0] waits on an event that only g[1] sets: possible only with no barrier between levels."""
    release = anyio.Event()
    log: list[str] = []

    @task
    async def f(x):
        log.append(f"f{x}-start")
        if x == 0:
            await release.wait()
        log.append(f"f{x}-end")
        return x

    @task
    async def g(y):
        log.append(f"g{y}-start")
        if y == 1:
            release.set()
        return y * 10

    with Flow("f") as flow:
        b = g.map(f.map([0, 1, 2]))
    state = await run(flow)
    assert state.result[b].result == [0, 10, 20]
    assert log.index("g1-start") < log.index("f0-end")
    assert log.index("g2-start") < log.index("f0-end")
    assert log.index("g0-start") > log.index("f0-end")


async def test_depth_first_child_waits_only_for_its_own_upstream_child() -> None:
    gate = [anyio.Event() for _ in range(3)]
    log: list[str] = []

    @task
    async def f(x):
        await gate[x].wait()
        return x

    @task
    async def g(y):
        log.append(f"g{y}")
        if y + 1 < len(gate):
            gate[y + 1].set()
        return y

    gate[0].set()
    with Flow("f") as flow:
        b = g.map(f.map([0, 1, 2]))
    state = await run(flow)
    assert state.result[b].result == [0, 1, 2]
    assert log == ["g0", "g1", "g2"]


async def test_failed_child_fails_only_its_own_downstream_child() -> None:
    @task
    async def f(x):
        if x == 1:
            raise ValueError("one")
        return x

    with Flow("f") as flow:
        m1 = f.map([0, 1, 2])
        m2 = double.map(m1)
    state = await run(flow)
    assert [type(s) for s in state.result[m2].map_states] == [Success, TriggerFailed, Success]
    assert state.result[m2].map_states[0].result == 0
    assert state.is_failed()


async def test_flatten_a_mapped_upstream() -> None:
    @task
    async def explode(n):
        return list(range(n))

    with Flow("f") as flow:
        m = double.map(flatten(explode.map([1, 2, 3])))
    state = await run(flow)
    assert state.result[m].result == [0, 0, 2, 0, 2, 4]


async def test_flatten_a_plain_list_of_lists() -> None:
    with Flow("f") as flow:
        m = double.map(flatten([[1, 2], [], [3]]))
    state = await run(flow)
    assert state.result[m].result == [2, 4, 6]


async def test_flatten_passes_scalars_through() -> None:
    # as in Prefect 1 (was: Failed "needs a list of lists")
    with Flow("f") as flow:
        scalars = double.map(flatten([1, 2, 3]))
        mixed = double.map(flatten([1, [2, 3], (4,)]))
    state = await run(flow)
    assert state.result[scalars].result == [2, 4, 6]
    assert state.result[mixed].result == [2, 4, 6, 8]


async def test_flatten_of_a_value_that_is_not_a_list_fails_with_message() -> None:
    @task
    async def produce():
        return 5

    with Flow("f") as flow:
        m = double.map(flatten(produce()))
    state = await run(flow)
    st = state.result[m]
    assert type(st) is Failed
    assert "flatten() over produce needs a list, got int" in (st.message or "")


async def test_flatten_of_a_mapped_upstream_is_judged_child_by_child() -> None:
    @task
    async def explode(n):
        if n == 2:
            raise ValueError("no twos")
        if n == 3:
            raise signals.SKIP("no threes")
        if n == 4:
            return 40  # a scalar passes through as one item
        return [n, n]

    with Flow("f") as flow:
        m = double.map(flatten(explode.map([1, 2, 3, 4, 5])))
    state = await run(flow)
    children = state.result[m].map_states
    assert [type(c).__name__ for c in children] == [
        "Success",
        "Success",
        "TriggerFailed",
        "Skipped",
        "Success",
        "Success",
        "Success",
    ]
    assert [c.result for c in children if type(c) is Success] == [2, 2, 80, 10, 10]


@pytest.mark.parametrize("value", [5, "abc", {"a": 1}, None], ids=["int", "str", "dict", "None"])
async def test_map_over_a_non_list_fails_with_a_clear_message(value) -> None:
    @task
    async def produce():
        return value

    with Flow("f") as flow:
        m = double.map(produce())
    state = await run(flow)
    st = state.result[m]
    assert type(st) is Failed
    assert "cannot be mapped over" in (st.message or "")
    assert "map over a list" in (st.message or "")
    assert state.is_failed()


async def test_map_over_a_failed_upstream_is_trigger_failed() -> None:
    @task
    async def produce():
        raise ValueError("no list")

    with Flow("f") as flow:
        m = double.map(produce())
    state = await run(flow)
    assert type(state.result[m]) is TriggerFailed


async def test_map_over_a_skipped_upstream_is_skipped() -> None:
    @task
    async def produce():
        raise signals.SKIP("nothing")

    with Flow("f") as flow:
        m = double.map(produce())
    state = await run(flow)
    assert state.result[m].is_skipped()


# -- max_concurrency ----------------------------------------------------------------------------


async def _peak_with_limit(flow_limit: int | None, run_limit: int | None, n: int = 6, sync: bool = False) -> int:
    running = 0
    peak = 0
    started = 0
    gate = anyio.Event()
    limit = run_limit if run_limit is not None else flow_limit
    expected = min(limit, n) if limit is not None else n
    all_in = anyio.Event()

    async def enter() -> None:
        nonlocal running, peak, started
        running += 1
        started += 1
        peak = max(peak, running)
        if started == expected:
            all_in.set()
        await gate.wait()
        running -= 1

    if sync:

        @task
        def work(i):
            anyio.from_thread.run(enter)
            return i

    else:

        @task
        async def work(i):
            await enter()
            return i

    with Flow("f", max_concurrency=flow_limit) as flow:
        ts = [work(i) for i in range(n)]
    runner = asyncio.create_task(flow.run(max_concurrency=run_limit))
    with anyio.fail_after(GUARD):
        await all_in.wait()
    await spin(50)
    assert started == expected  # nobody else got in while the first ones hold their slots
    gate.set()
    with anyio.fail_after(GUARD):
        state = await runner
    assert [state.result[t].result for t in ts] == list(range(n))
    return peak


async def test_max_concurrency_bounds_running_bodies() -> None:
    assert await _peak_with_limit(None, 2) == 2


async def test_flow_max_concurrency_is_the_default() -> None:
    assert await _peak_with_limit(3, None) == 3


async def test_run_max_concurrency_overrides_the_flow_default() -> None:
    assert await _peak_with_limit(1, 4) == 4


async def test_max_concurrency_bounds_sync_bodies() -> None:
    assert await _peak_with_limit(None, 2, n=5, sync=True) == 2


async def test_unbounded_by_default() -> None:
    assert await _peak_with_limit(None, None) == 6


async def test_max_concurrency_bounds_mapped_children() -> None:
    running = peak = 0

    @task
    async def work(i):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await spin(5)
        running -= 1
        return i

    with Flow("f") as flow:
        m = work.map(list(range(10)))
    state = await run(flow, max_concurrency=3)
    assert state.result[m].result == list(range(10))
    assert peak == 3


async def test_max_concurrency_must_be_positive() -> None:
    with Flow("f") as flow:
        double(1)
    with pytest.raises(ValueError, match="max_concurrency"):
        await flow.run(max_concurrency=0)


# -- cancellation -------------------------------------------------------------------------------


async def test_cancelling_the_run_cancels_bodies_and_leaves_nothing_behind() -> None:
    n_async = 3
    async_started = Barrier(n_async + 1)  # + the test itself
    sync_started = anyio.Event()
    release_sync = threading.Event()
    seen: list[str] = []
    downstream_ran: list[str] = []

    @task
    async def forever(i):
        try:
            await async_started.wait()
            await anyio.sleep_forever()
        except asyncio.CancelledError:
            seen.append(f"cancelled-{i}")
            raise
        finally:
            seen.append(f"finally-{i}")

    @task
    def blocked():
        try:
            anyio.from_thread.run_sync(sync_started.set)
            release_sync.wait(GUARD)
        finally:
            seen.append("sync-finally")
        return "sync-done"

    @task
    async def after(x):
        downstream_ran.append(x)

    with Flow("f") as flow:
        for i in range(n_async):
            after(forever(i))
        after(blocked())

    await anyio.to_thread.run_sync(lambda: None)  # a worker thread now exists and sits idle
    with Flow("warm-up") as warm_up:
        task(lambda: None)()
    await warm_up.run()  # the process's blocking watcher now runs too (it outlives runs by design)
    tasks_before = asyncio.all_tasks()
    threads_before = threading.active_count()

    runner = asyncio.create_task(flow.run())
    with anyio.fail_after(GUARD):
        await async_started.wait()
        await sync_started.wait()
    runner.cancel()
    await spin()
    # the async bodies are cancelled at once; the run waits for the sync body's thread
    assert sorted(seen) == sorted([f"{k}-{i}" for i in range(n_async) for k in ("cancelled", "finally")])
    assert not runner.done()
    release_sync.set()
    with anyio.fail_after(GUARD), pytest.raises(asyncio.CancelledError):
        await runner
    assert "sync-finally" in seen
    assert downstream_ran == []
    assert asyncio.all_tasks() == tasks_before
    assert threading.active_count() <= threads_before
