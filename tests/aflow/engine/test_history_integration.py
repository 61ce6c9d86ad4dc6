"""Run history through real flow runs: ``flow.run(history=...)`` records runs and task states."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from aflow import Flow, Parameter, Task, context, signals, task
from aflow._engine._checkpoints import clear_process_cache
from aflow.history import RunStore, TaskStateRecord
from aflow.results import LocalResult
from aflow.states import Cancelled, State
from aflow.testing import FakeClock

GUARD = 10
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_process_cache() -> Iterator[None]:
    clear_process_cache()
    yield
    clear_process_cache()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RunStore]:
    async with RunStore(tmp_path / "runs.db") as s:
        yield s


async def run(flow: Flow, **kwargs: Any) -> tuple[State, str]:
    """Run ``flow`` and return its final state and run id."""
    with anyio.fail_after(GUARD):
        handle = flow.start(**kwargs)
        return await handle, handle.flow_run_id


def by_task(records: list[TaskStateRecord]) -> dict[tuple[str, int | None], list[str]]:
    """Each task run's states, in recorded order."""
    out: dict[tuple[str, int | None], list[str]] = {}
    for r in records:
        out.setdefault((r.task_name, r.map_index), []).append(r.state)
    return out


def history_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("aflow.history")]


async def test_flow_run_record_and_simple_transitions(store: RunStore) -> None:
    @task
    def inc(x: int) -> int:
        return x + 1

    @task
    def total(a: int, b: int) -> int:
        return a + b

    with Flow("simple") as flow:
        x = Parameter("x")
        y = Parameter("y", default=10)
        out = total(inc(x), inc(y))

    clock = FakeClock()
    state, run_id = await run(flow, clock=clock, history=store, x=1)
    assert state.is_successful()
    assert state.result[out].result == 13

    record = await store.get_run(run_id)
    assert record is not None
    assert record.flow_name == "simple"
    assert record.parameters == {"x": 1, "y": 10}
    assert record.state == "Success"
    assert record.message == "All reference tasks succeeded."
    assert record.started_at == T0
    assert record.ended_at == T0

    records = await store.task_history(run_id)
    assert {r.run_id for r in records} == {run_id}
    assert sorted({r.task_slug for r in records}) == ["inc-1", "inc-2", "total-1"]  # no Parameter records
    states: dict[str, list[str]] = {r.task_slug: [] for r in records}
    for r in records:
        states[r.task_slug].append(r.state)
    assert states == {
        "inc-1": ["Running", "Success"],
        "inc-2": ["Running", "Success"],
        "total-1": ["Running", "Success"],
    }
    # total ran after both incs finished
    seqs = {(r.task_slug, r.state): r.seq for r in records}
    assert seqs[("total-1", "Running")] > max(seqs[("inc-1", "Success")], seqs[("inc-2", "Success")])
    assert [r.seq for r in records] == sorted(r.seq for r in records)

    latest = await store.latest_task_states(run_id)
    assert {k: v.state for k, v in latest.items()} == {
        ("inc-1", None): "Success",
        ("inc-2", None): "Success",
        ("total-1", None): "Success",
    }


async def test_retries_are_recorded_with_fake_clock_times(store: RunStore) -> None:
    attempts: list[int] = []

    @task(max_retries=3, retry_delay=5)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError(f"attempt {len(attempts)}")
        return "ok"

    with Flow("retries") as flow:
        flaky()

    clock = FakeClock()
    state, run_id = await run(flow, clock=clock, history=store)
    assert state.is_successful()
    records = await store.task_history(run_id)
    assert [r.state for r in records] == ["Running", "Retrying", "Running", "Retrying", "Running", "Success"]
    assert [r.timestamp - T0 for r in records] == [timedelta(seconds=s) for s in (0, 0, 5, 5, 10, 10)]
    assert "attempt 1" in (records[1].message or "")
    assert "Retrying in 5s" in (records[1].message or "")
    run_record = await store.get_run(run_id)
    assert run_record is not None
    assert run_record.ended_at == T0 + timedelta(seconds=10)


async def test_mapped_children_are_recorded_with_their_map_index(store: RunStore) -> None:
    @task
    def double(x: int) -> int:
        return 2 * x

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("mapped") as flow:
        doubled = double.map([1, 2, 3])
        total(doubled)

    state, run_id = await run(flow, history=store)
    assert state.is_successful()
    records = await store.task_history(run_id)
    assert by_task(records) == {
        ("double", 0): ["Running", "Success"],
        ("double", 1): ["Running", "Success"],
        ("double", 2): ["Running", "Success"],
        ("double", None): ["Mapped"],
        ("total", None): ["Running", "Success"],
    }
    seq = {(r.task_name, r.map_index, r.state): r.seq for r in records}
    # the parent is Mapped once every child is done, and the reduce starts after that
    assert seq[("double", None, "Mapped")] > max(seq[("double", i, "Success")] for i in range(3))
    assert seq[("total", None, "Running")] > seq[("double", None, "Mapped")]
    latest = await store.latest_task_states(run_id)
    assert latest[("double-1", 1)].state == "Success"
    assert latest[("double-1", None)].state == "Mapped"


async def test_trigger_failed_and_skipped_are_recorded(store: RunStore) -> None:
    @task
    def boom() -> int:
        raise RuntimeError("boom")

    @task
    def skipper() -> int:
        raise signals.SKIP("not today")

    @task
    def after(x: int) -> int:
        return x

    with Flow("triggers") as flow:
        after_boom = after(boom())
        after_skip = after(skipper())

    state, run_id = await run(flow, history=store)
    assert state.is_failed()
    assert state.result[after_boom].is_failed()
    assert state.result[after_skip].is_skipped()
    records = await store.task_history(run_id)
    states: dict[str, list[tuple[str, str | None]]] = {}
    for r in records:
        states.setdefault(r.task_slug, []).append((r.state, r.message))
    assert states["boom-1"][0][0] == "Running"
    assert states["boom-1"][1][0] == "Failed"
    assert "RuntimeError('boom')" in (states["boom-1"][1][1] or "")
    assert states["skipper-1"] == [("Running", "Starting task run."), ("Skipped", "not today")]
    # downstreams never ran: one record each, straight from Pending
    downstream = {slug: v for slug, v in states.items() if slug.startswith("after")}
    assert sorted(s for v in downstream.values() for s, _ in v) == ["Skipped", "TriggerFailed"]
    assert all(len(v) == 1 for v in downstream.values())

    record = await store.get_run(run_id)
    assert record is not None
    assert record.state == "Failed"
    assert record.message == "Some reference tasks failed."


async def test_cached_runs_are_recorded_without_running(store: RunStore, tmp_path: Path) -> None:
    @task(target="{task_name}.pkl", result=LocalResult(tmp_path / "results"))
    def targeted() -> int:
        return 1

    @task(cache_for=timedelta(hours=1))
    def cached() -> int:
        return 2

    with Flow("cached") as flow:
        targeted()
        cached()

    clock = FakeClock()
    _, first = await run(flow, clock=clock, history=store)
    await clock.sleep(60)
    _, second = await run(flow, clock=clock, history=store)
    assert by_task(await store.task_history(first)) == {
        ("targeted", None): ["Running", "Success"],
        ("cached", None): ["Running", "Cached"],  # a success with cache_for ends Cached
    }
    assert by_task(await store.task_history(second)) == {
        ("targeted", None): ["Cached"],
        ("cached", None): ["Cached"],
    }
    runs = await store.list_runs("cached")
    assert [r.run_id for r in runs] == [second, first]  # newest first
    assert [r.state for r in runs] == ["Success", "Success"]


async def test_history_path_opens_and_closes_a_store_for_the_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"

    @task
    def where() -> str:
        return str(context.flow_run_id)

    with Flow("by-path") as flow:
        out = where()

    state, run_id = await run(flow, history=db)
    assert state.result[out].result == run_id
    assert history_tasks() == []  # the run's store is closed: no writer task is left
    state2, run_id2 = await run(flow, history=str(db))  # a str works too, and appends
    assert state2.is_successful()
    assert history_tasks() == []

    async with RunStore(db) as store:
        runs = await store.list_runs()
        assert {r.run_id for r in runs} == {run_id, run_id2}
        assert all(r.state == "Success" and r.ended_at is not None for r in runs)
        assert by_task(await store.task_history(run_id)) == {("where", None): ["Running", "Success"]}


async def test_a_failing_flow_records_failed(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"

    @task
    def bad() -> None:
        raise KeyError("missing")

    with Flow("failing") as flow:
        bad()

    state, run_id = await run(flow, history=db)
    assert state.is_failed()
    async with RunStore(db) as store:
        record = await store.get_run(run_id)
        assert record is not None
        assert record.state == "Failed"
        assert record.ended_at is not None
        records = await store.task_history(run_id)
    assert [r.state for r in records] == ["Running", "Failed"]
    assert "KeyError('missing')" in (records[1].message or "")


async def test_a_flow_state_handler_failure_is_recorded(store: RunStore) -> None:
    def handler(flow: Flow, old: State, new: State) -> None:
        if new.is_successful():
            raise RuntimeError("handler broke")

    @task
    def ok() -> int:
        return 1

    with Flow("handler", state_handlers=[handler]) as flow:
        ok()

    state, run_id = await run(flow, history=store)
    assert state.is_failed()
    record = await store.get_run(run_id)
    assert record is not None
    assert record.state == "Failed"
    assert "handler broke" in (record.message or "")


async def test_a_cancelled_run_records_cancelled_for_unfinished_tasks(store: RunStore) -> None:
    all_started = anyio.Event()
    running: list[str] = []

    def arrived(name: str) -> None:
        running.append(name)
        if len(running) == 3:  # slow and both children
            all_started.set()

    @task
    def quick() -> int:
        return 1

    @task
    async def slow(x: int) -> int:
        arrived("slow")
        await anyio.sleep(100)
        return x

    @task
    async def slow_child(x: int) -> int:
        arrived(f"child {x}")
        await anyio.sleep(100)
        return x

    @task
    def after(x: int) -> int:
        return x

    with Flow("cancelled") as flow:
        q = quick()
        s = slow(q)
        a = after(s)
        m = slow_child.map([1, 2])

    with anyio.fail_after(GUARD):
        handle = flow.start(history=store)
        await all_started.wait()
        handle.cancel()
        state = await handle
    assert isinstance(state, Cancelled)
    assert isinstance(state.result[s], Cancelled)
    assert isinstance(state.result[a], Cancelled)
    assert isinstance(state.result[m], Cancelled)
    assert state.result[q].is_successful()

    record = await store.get_run(handle.flow_run_id)
    assert record is not None
    assert record.state == "Cancelled"
    assert record.ended_at is not None
    assert by_task(await store.task_history(handle.flow_run_id)) == {
        ("quick", None): ["Running", "Success"],
        ("slow", None): ["Running", "Cancelled"],
        ("after", None): ["Cancelled"],
        ("slow_child", 0): ["Running", "Cancelled"],
        ("slow_child", 1): ["Running", "Cancelled"],
        ("slow_child", None): ["Cancelled"],
    }
    latest = await store.latest_task_states(handle.flow_run_id)
    assert {v.state for k, v in latest.items() if k[0] != "quick-1"} == {"Cancelled"}


async def test_a_cancelled_run_with_a_history_path_closes_its_store(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    started = anyio.Event()

    @task
    async def slow() -> None:
        started.set()
        await anyio.sleep(100)

    with Flow("cancel-path") as flow:
        slow()

    with anyio.fail_after(GUARD):
        handle = flow.start(history=db)
        await started.wait()
        handle.cancel()
        assert isinstance(await handle, Cancelled)
    assert history_tasks() == []
    async with RunStore(db) as store:
        record = await store.get_run(handle.flow_run_id)
        assert record is not None
        assert record.state == "Cancelled"
        assert [r.state for r in await store.task_history(handle.flow_run_id)] == ["Running", "Cancelled"]


async def test_state_handlers_see_the_recorded_states(store: RunStore) -> None:
    seen: list[str] = []

    def handler(t: Task, old: State, new: State) -> None:
        seen.append(type(new).__name__)

    @task(state_handlers=[handler], max_retries=1, retry_delay=1)
    def once_flaky() -> int:
        if len(seen) < 2:
            raise ValueError("first")
        return 1

    with Flow("handlers") as flow:
        once_flaky()

    _, run_id = await run(flow, clock=FakeClock(), history=store)
    assert [r.state for r in await store.task_history(run_id)] == seen == ["Running", "Retrying", "Running", "Success"]


async def test_a_task_in_progress_reads_as_running_and_is_recorded_once(tmp_path: Path) -> None:
    started, release = anyio.Event(), anyio.Event()

    @task
    def quick() -> int:
        return 1

    @task
    async def waits(x: int) -> int:
        started.set()
        await release.wait()
        return x + 1

    with Flow("live") as flow:
        waits(quick())

    async with RunStore(tmp_path / "runs.db", flush_interval=0.01) as store, RunStore(tmp_path / "runs.db") as reader:
        with anyio.fail_after(GUARD):
            handle = flow.start(history=store)
            await started.wait()
            # the writer drains the run on its own schedule: another store on the file sees the task running
            while by_task(await reader.task_history(handle.flow_run_id)).get(("waits", None)) != ["Running"]:  # noqa: ASYNC110
                await anyio.sleep(0.01)  # polls another store's file: no event crosses connections
            assert by_task(await reader.task_history(handle.flow_run_id))[("quick", None)] == ["Running", "Success"]
            release.set()
            state = await handle
        assert state.is_successful()
        records = await store.task_history(handle.flow_run_id)
        assert by_task(records) == {("quick", None): ["Running", "Success"], ("waits", None): ["Running", "Success"]}
        assert [r.seq for r in records] == sorted(r.seq for r in records)
        assert all(r.message == "Starting task run." for r in records if r.state == "Running")


async def test_an_attempt_that_ends_before_a_write_keeps_its_start_time(store: RunStore) -> None:
    clock = FakeClock()

    @task
    async def slow() -> int:
        await clock.sleep(30)  # the fake clock moves on by 30 s
        return 1

    with Flow("times") as flow:
        slow()

    _, run_id = await run(flow, clock=clock, history=store)
    records = await store.task_history(run_id)
    assert [(r.state, r.timestamp - T0) for r in records] == [
        ("Running", timedelta(0)),
        ("Success", timedelta(seconds=30)),
    ]


async def test_an_endrun_state_is_recorded(store: RunStore) -> None:
    from aflow.states import Success

    @task
    def stops() -> int:
        raise signals.ENDRUN(Success("ended early", result=5))

    with Flow("endrun") as flow:
        s = stops()

    state, run_id = await run(flow, history=store)
    assert state.result[s].result == 5
    records = await store.task_history(run_id)
    assert [(r.state, r.message) for r in records] == [("Running", "Starting task run."), ("Success", "ended early")]


async def test_concurrent_runs_on_one_store_keep_their_own_histories(store: RunStore) -> None:
    gate, arrived = anyio.Event(), []

    @task
    async def step(x: int) -> int:
        arrived.append(x)
        if len(arrived) == 4:
            gate.set()
        await gate.wait()  # every step of both runs is in progress at once
        return x

    with Flow("a") as flow_a:
        step.map([1, 2, 3])
    with Flow("b") as flow_b:
        step(10)

    with anyio.fail_after(GUARD):
        a, b = flow_a.start(history=store), flow_b.start(history=store)
        state_a, state_b = await a, await b
    assert state_a.is_successful()
    assert state_b.is_successful()
    assert by_task(await store.task_history(a.flow_run_id)) == {
        ("step", None): ["Mapped"],
        ("step", 0): ["Running", "Success"],
        ("step", 1): ["Running", "Success"],
        ("step", 2): ["Running", "Success"],
    }
    assert by_task(await store.task_history(b.flow_run_id)) == {("step", None): ["Running", "Success"]}
    assert {r.flow_name for r in await store.list_runs()} == {"a", "b"}


async def test_a_flow_level_history_records_every_run_unless_a_run_names_its_own(tmp_path: Path) -> None:
    default_db, own_db = tmp_path / "flow.db", tmp_path / "own.db"

    @task
    def one() -> int:
        return 1

    with Flow("defaulted", history=default_db) as flow:
        one()

    _, first = await run(flow)
    _, second = await run(flow, history=own_db)
    assert flow.copy().history == default_db
    async with RunStore(default_db) as store:
        assert [r.run_id for r in await store.list_runs()] == [first]
    async with RunStore(own_db) as store:
        assert [r.run_id for r in await store.list_runs()] == [second]
