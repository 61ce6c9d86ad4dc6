"""PostgresFetch on a real local PostgreSQL 15: fifty concurrent sleeps, and 10,000 small queries
against raw psycopg with the same concurrency, interleaved in the same run.

(a) A flow of fifty ``PostgresFetch`` of ``SELECT pg_sleep(0.5)``: its wall time (one such task
    alone takes ~0.5 s), next to a flow of one.
(b) A flow of N (10,000) ``PostgresFetch`` of ``SELECT %s::int`` against raw psycopg 3 async doing
    the same N queries (execute, fetchone, rollback, as the task does) through at most
    ``POOL_SIZE`` (50) connections opened on demand, as the tasks' pool does. Repetitions alternate
    aflow / raw; medians and their ratio are printed. The flow is built outside the timing.

The server is started the way the tests start it (``tests/aflow_tasks/postgres/_server.py``).

    python bench/postgres.py            # N=10,000, 5 repetitions
    python bench/postgres.py --quick    # N=1,000, 3 repetitions
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from aflow import Flow  # noqa: E402
from aflow_tasks.postgres import POOL_SIZE, PostgresFetch  # noqa: E402
from tests.aflow_tasks.postgres import _server  # noqa: E402


def sleep_flow(settings: dict[str, Any], n: int) -> Flow:
    fetch = PostgresFetch(**settings, query="SELECT pg_sleep(0.5)")
    with Flow(f"sleep-{n}") as flow:
        for i in range(n):
            fetch(task_args={"name": f"s{i}"})
    return flow


def small_flow(settings: dict[str, Any], n: int) -> Flow:
    fetch = PostgresFetch(**settings, query="SELECT %s::int")
    with Flow(f"small-{n}") as flow:
        for i in range(n):
            fetch(data=(i,), task_args={"name": f"q{i}"})
    return flow


async def timed_flow(flow: Flow, n: int, check: bool) -> float:
    t0 = time.perf_counter()
    state = await flow.run()
    elapsed = time.perf_counter() - t0
    assert state.is_successful(), state.message
    if check:
        got = sorted(s.result[0] for s in state.result.values())
        assert got == list(range(n)), "wrong results"
    return elapsed


async def raw(conninfo: str, n: int, size: int) -> float:
    """N queries with raw psycopg: at most ``size`` connections, opened on demand, then closed."""
    slots = asyncio.Semaphore(size)
    idle: list[psycopg.AsyncConnection[Any]] = []
    opened: list[psycopg.AsyncConnection[Any]] = []
    results: list[int] = []

    async def one(i: int) -> None:
        async with slots:
            if idle:
                conn = idle.pop()
            else:
                conn = await psycopg.AsyncConnection.connect(conninfo)
                opened.append(conn)
            async with conn.cursor() as cursor:
                await cursor.execute("SELECT %s::int", (i,))
                row = await cursor.fetchone()
            await conn.rollback()
            assert row is not None
            results.append(row[0])
            idle.append(conn)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    for conn in opened:
        await conn.close()
    elapsed = time.perf_counter() - t0
    assert sorted(results) == list(range(n)), "wrong results"
    return elapsed


async def main(n: int, repeat: int) -> None:
    server = _server.start()
    try:
        settings = server.settings
        print(f"PostgreSQL on {server.host}:{server.port}; POOL_SIZE={POOL_SIZE}")

        one, fifty = [], []
        for _ in range(repeat):
            one.append(await timed_flow(sleep_flow(settings, 1), 1, False))
            fifty.append(await timed_flow(sleep_flow(settings, 50), 50, False))
        print(
            f"(a) 1 x pg_sleep(0.5): median {statistics.median(one):.3f}s; "
            f"50 x pg_sleep(0.5) in one flow: median {statistics.median(fifty):.3f}s "
            f"(min {min(fifty):.3f}s, max {max(fifty):.3f}s)"
        )

        await raw(server.conninfo, min(n, 200), POOL_SIZE)  # warm-up
        await timed_flow(small_flow(settings, min(n, 200)), min(n, 200), True)
        flows, raws = [], []
        for _ in range(repeat):
            flow = small_flow(settings, n)  # built outside the timing
            flows.append(await timed_flow(flow, n, True))
            raws.append(await raw(server.conninfo, n, POOL_SIZE))
        f, r = statistics.median(flows), statistics.median(raws)
        print(
            f"(b) {n:,} x SELECT %s::int, {POOL_SIZE} connections: PostgresFetch flow median {f:.3f}s "
            f"({n / f:,.0f}/s), raw psycopg median {r:.3f}s ({n / r:,.0f}/s); ratio {f / r:.2f}x"
        )
        print(f"    flow runs: {', '.join(f'{x:.3f}' for x in flows)}; raw: {', '.join(f'{x:.3f}' for x in raws)}")
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=1,000 and 3 repetitions")
    parser.add_argument("-n", type=int, default=None, help="small queries per run (default 10,000)")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    n = args.n or (1_000 if args.quick else 10_000)
    repeat = args.repeat or (3 if args.quick else 5)
    asyncio.run(main(n, repeat))
