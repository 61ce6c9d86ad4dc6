"""W1 wide: N independent ``x + 1`` tasks, then one sum; aflow against the asyncio floor.

Run: ``python bench/w1_wide.py [N] [REPEATS]``. Prints the median wall time of each, the
per-task overhead and the ratio aflow / floor, measured in the same process. "run" times only
``flow.run()``; "build+run" also times building the flow (the floor always builds its DAG).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from floor import Dag

from aflow import Flow, task


async def inc(x: int) -> int:
    return x + 1


async def total(*xs: int) -> int:
    return sum(xs)


@task
async def a_inc(x: int) -> int:
    return x + 1


@task
async def a_total(xs: list[int]) -> int:
    return sum(xs)


async def floor_run(n: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    dag = Dag()
    leaves = [dag.add(inc, i) for i in range(n)]
    dag.add(total, *leaves)
    result = (await dag.run())[-1]
    t1 = time.perf_counter()
    assert result == n * (n + 1) // 2
    return t1 - t0, t1 - t0


async def aflow_run(n: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    with Flow("w1") as flow:
        s = a_total([a_inc(i) for i in range(n)])
    t1 = time.perf_counter()
    state = await flow.run()
    t2 = time.perf_counter()
    assert state.is_successful()
    assert state.result[s].result == n * (n + 1) // 2
    return t2 - t1, t2 - t0


async def main(n: int, repeats: int) -> None:
    await floor_run(2)
    await aflow_run(2)
    fl, af_run, af_all = [], [], []
    for _ in range(repeats):
        gc.collect()
        fl.append((await floor_run(n))[0])
        gc.collect()
        r, a = await aflow_run(n)
        af_run.append(r)
        af_all.append(a)
    f, r, a = statistics.median(fl), statistics.median(af_run), statistics.median(af_all)
    print(f"W1 wide, N={n}, median of {repeats}")
    print(f"  asyncio floor (build+run): {f * 1e3:8.1f} ms  {f / n * 1e6:6.2f} us/task")
    print(f"  aflow flow.run():          {r * 1e3:8.1f} ms  {r / n * 1e6:6.2f} us/task  ratio {r / f:.2f}x")
    print(f"  aflow build+run:           {a * 1e3:8.1f} ms  {a / n * 1e6:6.2f} us/task  ratio {a / f:.2f}x")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    asyncio.run(main(n, reps))
