"""Beyond Prefect 1: concurrent queries, cancellation reaching the server, streamed results."""

from __future__ import annotations

import asyncio
import resource
import uuid
from typing import Any

import psycopg

from aflow import Flow
from aflow.states import Cancelled, Failed
from aflow_tasks.postgres import POOL_SIZE, PostgresFetch

HANG_GUARD = 60.0


async def active(server: Any, marker: str) -> int:
    """How many backends run a query holding ``marker`` right now (ours excluded)."""
    async with await psycopg.AsyncConnection.connect(server.conninfo, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()"
            " AND query LIKE %s",
            (f"%{marker}%",),
        )
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])


async def connected(server: Any, marker: str) -> int:
    """How many backends (active or idle) last ran a query holding ``marker``."""
    async with await psycopg.AsyncConnection.connect(server.conninfo, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE %s",
            (f"%{marker}%",),
        )
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])


async def until(check: Any, want: Any, seconds: float = 10.0) -> Any:
    """Poll ``check()`` until ``want(value)`` holds or ``seconds`` pass; return the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = await check()
        if want(value) or loop.time() > deadline:
            return value
        await asyncio.sleep(0.02)


def sleepers(pg: dict[str, Any], marker: str, n: int, seconds: float, **task: Any) -> Flow:
    fetch = PostgresFetch(**pg, query=f"SELECT pg_sleep(%s) /* {marker} */", **task)
    with Flow("sleepers") as flow:
        for i in range(n):
            fetch(data=(seconds,), task_args={"name": f"sleep-{i}"})
    return flow


async def test_fifty_sleeps_run_at_once_on_one_pool(pg, pg_server):
    marker = f"m{uuid.uuid4().hex}"
    run = asyncio.ensure_future(sleepers(pg, marker, 50, 2.0).run())
    most = 0

    async def count() -> int:
        nonlocal most
        most = max(most, await active(pg_server, marker))
        return most

    await until(count, lambda n: n >= 50 or run.done(), HANG_GUARD)
    state = await asyncio.wait_for(run, HANG_GUARD)
    assert state.is_successful()
    assert len(state.result) == 50
    assert all(isinstance(s.result, tuple) for s in state.result.values())
    assert most == 50 <= POOL_SIZE  # all fifty waited on the server at the same time
    # the run's pool is closed when the run ends: no connection of the run is left
    assert await until(lambda: connected(pg_server, marker), lambda n: n == 0) == 0


async def test_cancelling_a_flow_cancels_its_queries_on_the_server(pg, pg_server):
    marker = f"m{uuid.uuid4().hex}"
    handle = sleepers(pg, marker, 5, 300).start()
    assert await until(lambda: active(pg_server, marker), lambda n: n == 5, HANG_GUARD) == 5
    handle.cancel()
    state = await asyncio.wait_for(handle.wait(), HANG_GUARD)
    assert isinstance(state, Cancelled)
    assert await until(lambda: active(pg_server, marker), lambda n: n == 0) == 0
    assert await until(lambda: connected(pg_server, marker), lambda n: n == 0) == 0


async def test_cancelling_the_awaiting_task_cancels_the_queries(pg, pg_server):
    marker = f"m{uuid.uuid4().hex}"
    run = asyncio.ensure_future(sleepers(pg, marker, 3, 300).run())
    assert await until(lambda: active(pg_server, marker), lambda n: n == 3, HANG_GUARD) == 3
    run.cancel()
    try:
        await asyncio.wait_for(run, HANG_GUARD)
    except asyncio.CancelledError:
        pass
    assert await until(lambda: active(pg_server, marker), lambda n: n == 0) == 0


async def test_a_task_timeout_cancels_the_query_on_the_server(pg, pg_server):
    marker = f"m{uuid.uuid4().hex}"
    state = await asyncio.wait_for(sleepers(pg, marker, 2, 300, timeout=1.0).run(), HANG_GUARD)
    assert all(isinstance(s, Failed) for s in state.result.values())  # TimedOut
    assert await until(lambda: active(pg_server, marker), lambda n: n == 0) == 0


async def test_pool_survives_a_cancelled_query(pg, pg_server):
    # a timed-out task and then a normal one in the same run: the pool hands out a good connection
    marker = f"m{uuid.uuid4().hex}"
    slow = PostgresFetch(**pg, query=f"SELECT pg_sleep(300) /* {marker} */", timeout=0.5)
    quick = PostgresFetch(**pg, query="SELECT 42")
    with Flow("after-cancel") as flow:
        s = slow()
        q = quick(upstream_tasks=[s], task_args={"trigger": lambda states: True})
    state = await asyncio.wait_for(flow.run(), HANG_GUARD)
    assert isinstance(state.result[s], Failed)
    assert state.result[q].result == (42,)


async def test_stream_fetches_many_from_a_huge_result(pg):
    # a billion rows: only a server-side cursor can return the first ten
    query = "SELECT generate_series(1, 1000000000) AS n"
    rows = await asyncio.wait_for(PostgresFetch(**pg, fetch="many", stream=True, query=query).run(), HANG_GUARD)
    assert rows == [(i,) for i in range(1, 11)]
    assert (await PostgresFetch(**pg, stream=True, query=query).run(col_names=True)) == [("n",), (1,)]


async def test_stream_all_reads_in_batches(pg):
    rows = await PostgresFetch(**pg, fetch="all", stream=True, query="SELECT generate_series(1, %s)").run(data=(5000,))
    assert rows == [(i,) for i in range(1, 5001)]


async def test_stream_a_million_row_fetch_in_bounded_memory(pg):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    query = "SELECT i, repeat('x', 100) FROM generate_series(1, 1000000) i"
    rows = await PostgresFetch(**pg, fetch="many", fetch_count=5, stream=True, query=query).run()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert grown < 20_000  # KiB; the whole result would be over 100 MB
