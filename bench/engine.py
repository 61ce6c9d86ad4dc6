"""Engine overhead: aflow against a plain asyncio DAG (``floor.py``), in the same process.

Workloads (as in the shared anchors): W1 wide = N independent ``x + 1`` tasks then one sum;
W2 chain = N tasks each adding 1 to the previous; W4 map = a mapped ``x + 1`` over N items,
results collected as a list. "run" times ``flow.run()`` only (building excluded, as in the
anchors); "build+run" also times building the flow. The floor always builds its DAG.

Run: ``python bench/engine.py [N] [REPEATS]`` (default 10000, 7), or ``nox -s bench``.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from floor import Dag

from aflow import Flow, Task, task


async def inc(x: int) -> int:
    return x + 1


async def total(*xs: int) -> int:
    return sum(xs)


async def collect(*xs: int) -> list[int]:
    return list(xs)


@task
async def a_inc(x: int) -> int:
    return x + 1


@task
async def a_total(xs: list[int]) -> int:
    return sum(xs)


def floor_w1(n: int) -> tuple[Dag, int]:
    dag = Dag()
    dag.add(total, *[dag.add(inc, i) for i in range(n)])
    return dag, n * (n + 1) // 2


def floor_w2(n: int) -> tuple[Dag, int]:
    dag = Dag()
    node = dag.add(inc, 0)
    for _ in range(n - 1):
        node = dag.add(inc, node)
    return dag, n


def floor_w4(n: int) -> tuple[Dag, list[int]]:
    dag = Dag()
    dag.add(collect, *[dag.add(inc, i) for i in range(n)])
    return dag, [i + 1 for i in range(n)]


def aflow_w1(n: int) -> tuple[Flow, Task, int]:
    with Flow("w1") as flow:
        out = a_total([a_inc(i) for i in range(n)])
    return flow, out, n * (n + 1) // 2


def aflow_w2(n: int) -> tuple[Flow, Task, int]:
    with Flow("w2") as flow:
        out = a_inc(0)
        for _ in range(n - 1):
            out = a_inc(out)
    return flow, out, n


def aflow_w4(n: int) -> tuple[Flow, Task, list[int]]:
    with Flow("w4") as flow:
        out = a_inc.map(list(range(n)))
    return flow, out, [i + 1 for i in range(n)]


async def time_floor(build: Callable[[int], tuple[Dag, object]], n: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    dag, expected = build(n)
    result = (await dag.run())[-1]
    elapsed = time.perf_counter() - t0
    assert result == expected
    return elapsed


async def time_aflow(build: Callable[[int], tuple[Flow, Task, object]], n: int) -> tuple[float, float]:
    gc.collect()
    t0 = time.perf_counter()
    flow, out, expected = build(n)
    t1 = time.perf_counter()
    state = await flow.run()
    t2 = time.perf_counter()
    assert state.is_successful()
    assert state.result[out].result == expected
    return t2 - t1, t2 - t0


WORKLOADS: dict[str, tuple[Callable[..., tuple[Dag, object]], Callable[..., tuple[Flow, Task, object]]]] = {
    "W1 wide": (floor_w1, aflow_w1),
    "W2 chain": (floor_w2, aflow_w2),
    "W4 map": (floor_w4, aflow_w4),
}


async def main(n: int, repeats: int) -> None:
    print(f"N={n}, median of {repeats} (us/task = wall / N)")
    for name, (floor_build, aflow_build) in WORKLOADS.items():
        await time_floor(floor_build, 2)
        await time_aflow(aflow_build, 2)
        floors, runs, alls = [], [], []
        for _ in range(repeats):
            floors.append(await time_floor(floor_build, n))
            run, both = await time_aflow(aflow_build, n)
            runs.append(run)
            alls.append(both)
        f, r, a = (statistics.median(x) for x in (floors, runs, alls))
        print(
            f"{name:9} floor {f / n * 1e6:6.2f} us/task | aflow run {r / n * 1e6:6.2f} us/task ({r / f:.2f}x)"
            f" | aflow build+run {a / n * 1e6:6.2f} us/task ({a / f:.2f}x)"
        )


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    asyncio.run(main(n, reps))
