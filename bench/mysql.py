"""Bench figures for aflow_tasks.mysql against a local MariaDB (started here, stopped by pid).

    python bench/mysql.py [--small N]

Prints: the server's start time; the wall time of fifty ``SELECT SLEEP(0.5)`` MySQLFetch tasks
in one flow against one; the time from a flow's cancel to a processlist with none of its queries;
N (default 10,000) small ``SELECT 1`` MySQLFetch tasks in one flow against raw aiomysql with the
same concurrency (the pool's 50 connections), as a ratio measured in the same run; an unbuffered
partial fetch of a million rows (time and Python peak memory).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomysql  # type: ignore[import-untyped]

from aflow import Flow
from aflow_tasks.mysql import POOL_SIZE, MySQLFetch
from tests.aflow_tasks.mysql.conftest import DB, PASSWORD, USER, MariaDB, running_mariadb


async def fifty(server: MariaDB, width: int) -> float:
    with Flow("fifty") as flow:
        for i in range(width):
            MySQLFetch(**server.settings, query=f"SELECT SLEEP(0.5), {i}")()
    start = time.perf_counter()
    state = await flow.run()
    assert state.is_successful()
    return time.perf_counter() - start


async def processlist(server: MariaDB, marker: str) -> int:
    conn = await aiomysql.connect(host=server.host, port=server.port, user=USER, password=PASSWORD, db=DB)
    try:
        cur = await conn.cursor()
        await cur.execute(
            "SELECT COUNT(*) FROM information_schema.processlist WHERE command = 'Query' AND info LIKE %s "
            "AND id <> CONNECTION_ID()",
            (f"%{marker}%",),
        )
        (count,) = await cur.fetchone()
        return int(count)
    finally:
        conn.close()


async def cancel_to_clean(server: MariaDB, width: int = 10) -> float:
    marker = f"bench_cancel_{time.time_ns()}"
    with Flow("cancel") as flow:
        for i in range(width):
            MySQLFetch(**server.settings, query=f"SELECT SLEEP(30), '{marker}', {i}")()
    handle = flow.start()
    while await processlist(server, marker) < width:  # noqa: ASYNC110 (polling the server)
        await asyncio.sleep(0.01)
    start = time.perf_counter()
    handle.cancel()
    await handle.wait()
    while await processlist(server, marker):  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    return time.perf_counter() - start


async def small_flow(server: MariaDB, n: int) -> float:
    task = MySQLFetch(**server.settings, query="SELECT 1")
    with Flow("small") as flow:
        for _ in range(n):
            task()
    start = time.perf_counter()
    state = await flow.run(max_concurrency=POOL_SIZE)
    assert state.is_successful()
    return time.perf_counter() - start


async def small_raw(server: MariaDB, n: int) -> float:
    start = time.perf_counter()
    pool = await aiomysql.create_pool(
        minsize=0, maxsize=POOL_SIZE, host=server.host, port=server.port, user=USER, password=PASSWORD, db=DB
    )
    sem = asyncio.Semaphore(POOL_SIZE)

    async def one() -> Any:
        async with sem, pool.acquire() as conn:
            cur = await conn.cursor()
            await cur.execute("SELECT 1")
            row = await cur.fetchone()
            await cur.close()
            await conn.rollback()
            return row

    rows = await asyncio.gather(*(one() for _ in range(n)))
    assert rows == [(1,)] * n
    pool.close()
    await pool.wait_closed()
    return time.perf_counter() - start


async def streaming(server: MariaDB) -> tuple[float, float]:
    task = MySQLFetch(
        **server.settings,
        query="SELECT seq, REPEAT('x', 100) FROM seq_1_to_1000000",
        cursor_type="sscursor",
        fetch="many",
        fetch_count=1000,
    )
    tracemalloc.start()
    start = time.perf_counter()
    rows = await task.run()
    took = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(rows) == 1000
    return took, peak / 1e6


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with running_mariadb(Path(tmp)) as server:
            print(f"server start (install-db + mariadbd + first connection): {time.perf_counter() - start:.2f} s")
            one = await fifty(server, 1)
            many = await fifty(server, 50)
            print(f"1 x SELECT SLEEP(0.5): {one:.3f} s; 50 in one flow: {many:.3f} s ({many / one:.2f}x)")
            print(f"cancel of 10 running SLEEP(30) -> processlist clean: {await cancel_to_clean(server) * 1000:.0f} ms")
            flows, raws = [], []
            for _ in range(3):
                flows.append(await small_flow(server, n))
                raws.append(await small_raw(server, n))
            f, r = min(flows), min(raws)
            print(
                f"{n} x SELECT 1: aflow {f:.3f} s, raw aiomysql {r:.3f} s, ratio {f / r:.2f} (best of 3, interleaved)"
            )
            took, peak = await streaming(server)
            print(f"sscursor fetch='many' 1000 of 1,000,000 rows: {took:.2f} s, Python peak {peak:.1f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=10_000)
    asyncio.run(main(parser.parse_args().small))
