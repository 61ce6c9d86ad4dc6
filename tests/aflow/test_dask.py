"""DaskExecutor on real LocalClusters started inside each test's event loop (threads and processes).

Task bodies live in ``tests/aflow/dask_tasks.py`` so worker processes can import them; bodies
tell the test what they do through files in ``tmp_path``. Clusters are sized for 2 cores.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aflow import Flow
from aflow.executors import BodyCall, DaskExecutor
from aflow.states import Cancelled, Failed, Success, TimedOut
from aflow.testing import FakeClock

from . import dask_tasks as T

distributed = pytest.importorskip("distributed")
from aflow._engine._dask import dask_resources  # noqa: E402  (after the importorskip)

QUIET: dict[str, Any] = {"dashboard_address": "127.0.0.1:0", "silence_logs": logging.CRITICAL}


async def _wait_for(path: Path, seconds: float = 20.0) -> str:
    """The text of ``path`` once a task body has written it."""
    deadline = time.monotonic() + seconds
    while not _exists(path):
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.02)  # let the writer finish
    return path.read_text()  # noqa: ASYNC240  (a few bytes)


def _exists(path: Path) -> bool:
    return path.exists()


def local_cluster(kind: str, **kwargs: Any) -> Any:
    """A LocalCluster for this loop: 2 workers, threads (2 each) or processes (1 thread each)."""
    if kind == "threads":
        kwargs = {"processes": False, "threads_per_worker": 2, **kwargs}
    else:
        # allowed_failures=0: a worker dying mid-task surfaces at once (dask would retry it 3 times)
        kwargs = {"processes": True, "threads_per_worker": 1, "scheduler_kwargs": {"allowed_failures": 0}, **kwargs}
    return distributed.LocalCluster(asynchronous=True, n_workers=2, **QUIET, **kwargs)


@pytest.fixture
async def threads() -> AsyncIterator[Any]:
    async with local_cluster("threads") as cluster:
        yield cluster


@pytest.fixture
async def processes() -> AsyncIterator[Any]:
    async with local_cluster("processes") as cluster:
        yield cluster


@pytest.fixture(params=["threads", "processes"])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    async with local_cluster(request.param) as cluster:
        cluster.kind = request.param
        yield cluster


def mixed_flow() -> tuple[Flow, Any, Any, Any]:
    with Flow("mixed") as flow:
        infos = T.async_info.map([1, 2, 3])
        summary = T.sync_info(infos)
        here = T.local_pid()
    return flow, infos, summary, here


async def test_mixed_async_and_sync_flow(cluster: Any) -> None:
    flow, infos, summary, here = mixed_flow()
    remote = cluster.kind == "processes"

    state = await flow.run(executor=DaskExecutor(cluster.scheduler_address), context={"custom": "c"})

    assert isinstance(state, Success)
    children = [s.result for s in state.result[infos].map_states]
    assert [c["x"] for c in children] == [1, 2, 3]
    assert [c["map_index"] for c in children] == [0, 1, 2]  # the context travels with each body
    assert {c["task_name"] for c in children} == {"async_info"}
    assert {(c["flow_name"], c["custom"]) for c in children} == {("mixed", "c")}
    out = state.result[summary].result
    assert (out["total"], out["task_name"], out["custom"]) == (6, "sync_info", "c")
    assert "Dask-Default-Threads" in out["thread"]  # a sync body runs in a worker thread
    assert state.result[here].result == os.getpid()  # tagged "local": stays in this process
    pids = {c["pid"] for c in children} | {out["pid"]}
    assert (os.getpid() not in pids) if remote else (pids == {os.getpid()})


async def test_executor_owns_a_temporary_cluster_and_closes_it() -> None:
    flow, _, summary, _ = mixed_flow()
    executor = DaskExecutor(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"processes": False, "n_workers": 1, "threads_per_worker": 2},
        adapt_kwargs={"minimum": 1, "maximum": 2},
    )
    async with executor:  # one cluster for both runs: the runs' start/shutdown nest inside
        cluster = executor.cluster
        assert isinstance(cluster, distributed.LocalCluster)
        for _ in range(2):
            state = await flow.run(executor=executor)
            assert state.result[summary].result["total"] == 6
        assert executor.cluster is cluster
    assert executor.client is None
    assert executor.cluster is None
    assert cluster.status.name == "closed"


async def test_a_map_of_1000_children_spread_over_workers(threads: Any) -> None:
    with Flow("map") as flow:
        doubled = T.double.map(list(range(1000)))
        out = T.total(doubled)
        places = T.where.map(list(range(20)))
    started = time.perf_counter()
    state = await flow.run(executor=DaskExecutor(threads.scheduler_address))
    elapsed = time.perf_counter() - started
    assert isinstance(state, Success)
    assert state.result[out].result == 999_000
    assert len(state.result[doubled].map_states) == 1000
    assert len({s.result for s in state.result[places].map_states}) == 2  # both workers took children
    assert elapsed < 30


@pytest.mark.parametrize("body", [T.fails, T.fails_async])
async def test_a_failing_task_brings_back_its_exception_and_traceback(processes: Any, body: Any) -> None:
    with Flow("fails") as flow:
        failing = body(-1)
    state = await flow.run(executor=DaskExecutor(processes.scheduler_address))

    assert isinstance(state, Failed)
    err = state.result[failing].result
    assert type(err) is ValueError  # the original exception type
    assert str(err) == "negative value -1"
    assert "ValueError('negative value -1')" in state.result[failing].message
    (note,) = err.__notes__  # the worker-side traceback text
    assert note.startswith("Traceback on dask worker tcp://")
    assert "dask_tasks.py" in note
    assert "in _check" in note
    assert 'raise ValueError(f"negative value {value}")' in note


async def test_a_retried_task_retries_in_the_scheduler(threads: Any, tmp_path: Path) -> None:
    with Flow("retry") as flow:
        out = T.flaky(str(tmp_path / "attempts"))
    clock = FakeClock()
    state = await flow.run(executor=DaskExecutor(threads.scheduler_address), clock=clock)
    assert isinstance(state.result[out], Success)
    assert state.result[out].result == 3
    assert clock.sleeps == [30.0, 30.0]  # two retries, their delays on the caller's clock


@pytest.mark.parametrize("retried", [False, True])
async def test_a_worker_killed_mid_task(processes: Any, tmp_path: Path, retried: bool) -> None:
    with Flow("killed") as flow:
        out = (T.dies_once_retried if retried else T.dies_once)(str(tmp_path))
    executor = DaskExecutor(processes.scheduler_address)
    run = flow.start(executor=executor, clock=FakeClock())
    pid = int(await _wait_for(tmp_path / "started"))
    assert pid != os.getpid()
    (tmp_path / "killed").write_text("")  # a second attempt returns at once
    os.kill(pid, signal.SIGKILL)
    state = await asyncio.wait_for(run.wait(), 30)  # never hangs

    task_state = state.result[out]
    if retried:
        assert isinstance(task_state, Success)
        assert task_state.result not in (-1, pid)  # the second attempt ran on a live worker
    else:
        assert isinstance(task_state, Failed)
        assert "The dask worker running task 'dies_once' died" in (task_state.message or "")
        assert "KilledWorker" in type(task_state.result.__cause__).__name__


async def test_cancelling_the_flow_stops_async_bodies_and_leaves_no_futures(cluster: Any, tmp_path: Path) -> None:
    with Flow("cancel") as flow:
        hung = T.hangs(str(tmp_path))
    executor = DaskExecutor(cluster.scheduler_address)
    async with executor:  # keep the client open after the run, to look at its futures
        run = flow.start(executor=executor)
        await _wait_for(tmp_path / "started")
        run.cancel()
        state = await asyncio.wait_for(run.wait(), 20)
        assert isinstance(state, Cancelled)
        assert isinstance(state.result[hung], Cancelled)
        assert await _wait_for(tmp_path / "cancelled", 10) == "yes"  # the body saw the cancellation
        assert executor.client.futures == {}
        deadline = time.monotonic() + 10
        while cluster.scheduler.tasks:  # the scheduler forgets the key
            assert time.monotonic() < deadline, dict(cluster.scheduler.tasks)
            await asyncio.sleep(0.05)
    assert not (tmp_path / "finished").exists()


async def test_a_timeout_cancels_the_remote_async_body(threads: Any, tmp_path: Path) -> None:
    with Flow("timeout") as flow:
        hung = T.hangs_with_timeout(str(tmp_path))
    state = await flow.run(executor=DaskExecutor(threads.scheduler_address))
    assert isinstance(state.result[hung], TimedOut)
    assert await _wait_for(tmp_path / "cancelled", 10) == "yes"


async def test_a_cancelled_sync_body_runs_to_its_end_and_its_result_is_dropped(threads: Any, tmp_path: Path) -> None:
    with Flow("sync-cancel") as flow:
        slow = T.sync_sleeps(str(tmp_path), 0.5)
    run = flow.start(executor=DaskExecutor(threads.scheduler_address))
    await _wait_for(tmp_path / "sync-started")
    run.cancel()
    state = await run
    assert isinstance(state.result[slow], Cancelled)
    assert await _wait_for(tmp_path / "sync-finished", 10) == "yes"  # it could not be interrupted


async def test_dask_resource_tags_become_worker_resources() -> None:
    async with local_cluster("threads", resources={"SLOT": 1}) as cluster:
        with Flow("resources") as flow:
            limited = T.needs_slot.map(list(range(6)))
        with Flow("free") as free_flow:
            unlimited = T.free.map(list(range(6)))
        executor = DaskExecutor(cluster.scheduler_address)
        async with executor:
            T.reset_peak()
            state = await flow.run(executor=executor)
            assert [s.result for s in state.result[limited].map_states] == list(range(6))
            slot_peak = T.peak()
            T.reset_peak()
            state = await free_flow.run(executor=executor)
            assert [s.result for s in state.result[unlimited].map_states] == list(range(6))
            free_peak = T.peak()
    assert slot_peak <= 2  # one SLOT per worker, although each has 2 threads
    assert free_peak > slot_peak


def test_resource_tags_parse() -> None:
    assert dask_resources(["dask-resource:GPU=1", "other", "dask-resource:MEMORY=2.5e9"]) == {
        "GPU": 1.0,
        "MEMORY": 2.5e9,
    }
    assert dask_resources(["local"]) == {}
    for bad in ("dask-resource:GPU", "dask-resource:=1", "dask-resource:GPU=many"):
        with pytest.raises(ValueError, match="Malformed tag"):
            dask_resources([bad])


async def test_run_before_start_and_address_with_cluster_options_are_errors() -> None:
    with pytest.raises(ValueError, match="either an address"):
        DaskExecutor("tcp://127.0.0.1:1", cluster_kwargs={"n_workers": 1})
    with pytest.raises(RuntimeError, match=r"before start\(\)"):
        await DaskExecutor().run(BodyCall(T.double, {"x": 1}, {}))


def test_without_distributed_the_executors_import_and_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aflow.executors

    monkeypatch.delitem(sys.modules, "aflow._engine._dask")  # imported afresh below, without distributed
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    namespace: dict[str, Any] = {}
    exec("from aflow.executors import *", namespace)
    assert {"DaskExecutor", "LocalExecutor", "Executor"} <= set(namespace)
    with pytest.raises(ImportError, match=r"DaskExecutor needs dask.distributed: pip install aflow-engine\[dask\]"):
        namespace["DaskExecutor"]()
    monkeypatch.undo()
    assert importlib.import_module("aflow._engine._dask").DaskExecutor is aflow.executors.DaskExecutor
