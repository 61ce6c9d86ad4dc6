"""Cost of persistence on the W1 wide workload (N independent ``x + 1`` tasks, then one sum).

Variants, each timed on ``flow.run()`` only (building the flow and opening the store excluded):

- ``plain``: no persistence (the baseline);
- ``checkpoint``: ``Flow(result=LocalResult(tmpdir), checkpoint=True)``: every task's value is
  written to its own file (pickled in a worker thread, written atomically: temporary file, rename);
- ``history``: ``flow.run(history=store)`` with an open `aflow.history.RunStore` on a fresh
  SQLite file: every transition is recorded, and the run ends by flushing the store;
- ``plain, run again`` / ``history, run again``: one flow run a first time (untimed, with the
  store), then timed again without and with the store: a flow that runs repeatedly (a
  service, a schedule) records its graph once, on its first run;
- ``target miss`` / ``target hit``: every task has ``target="{task_name}-{x}.pkl"`` on a
  ``LocalResult``: the first run looks each target up, runs and writes it; the second finds
  every target and reads it back (the resume path);
- ``checkpoint (segment)``, ``target miss (segment)``, ``target hit (segment)``: the same on a
  ``SegmentResult`` (values appended to one segment file, a batch per write); the hit run uses
  a fresh ``SegmentResult`` on the same directory, so reading the segments is timed too, as
  when a new process resumes.

Each variant gets a fresh temporary directory per repeat. Printed: the median wall time, the
time per task and the ratio to ``plain``.

Run: ``python bench/persist.py [N] [REPEATS] [--only NAME,...]`` (default 10000, 5; ``--only`` takes
the variants' function names, e.g. ``checkpoint_segment,targets_segment``; ``plain`` always runs).
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aflow import Flow, Task, task
from aflow.history import RunStore
from aflow.results import LocalResult, SegmentResult


@task
async def a_inc(x: int) -> int:
    return x + 1


@task
async def a_total(xs: list[int]) -> int:
    return sum(xs)


def wide(n: int, inc: Task = a_inc, **flow_args: object) -> tuple[Flow, Task, int]:
    with Flow("w1", **flow_args) as flow:  # type: ignore[arg-type]
        out = a_total([inc(i) for i in range(n)])
    return flow, out, n * (n + 1) // 2


def count_files(root: Path, pattern: str) -> int:
    return sum(1 for _ in root.rglob(pattern))


async def timed(flow: Flow, out: Task, expected: int, **run_args: object) -> float:
    os.sync()  # the previous variant's files are on disk, not in writeback competing with this one
    gc.collect()
    t0 = time.perf_counter()
    state = await flow.run(**run_args)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - t0
    assert state.is_successful(), state
    assert state.result[out].result == expected
    return elapsed


async def plain(n: int, tmp: Path) -> dict[str, float]:
    return {"plain": await timed(*wide(n))}


async def checkpoint(n: int, tmp: Path) -> dict[str, float]:
    flow, out, expected = wide(n, result=LocalResult(tmp), checkpoint=True)
    elapsed = await timed(flow, out, expected)
    written = count_files(tmp, "*.result")
    assert written == n + 2, written  # the incs, the implicit list task and the sum
    return {"checkpoint": elapsed}


async def history(n: int, tmp: Path) -> dict[str, float]:
    flow, out, expected = wide(n)
    async with RunStore(tmp / "runs.db") as store:
        elapsed = await timed(flow, out, expected, history=store)
        assert len(await store.list_runs()) == 1
    return {"history": elapsed}


async def history_again(n: int, tmp: Path) -> dict[str, float]:
    flow, out, expected = wide(n)
    async with RunStore(tmp / "runs.db") as store:
        await timed(flow, out, expected, history=store)  # the first run records the flow's graph
        again = await timed(flow, out, expected)
        recorded = await timed(flow, out, expected, history=store)
        assert len(await store.list_runs()) == 2
    return {"plain, run again": again, "history, run again": recorded}


async def targets(n: int, tmp: Path) -> dict[str, float]:
    inc = a_inc.copy(target="{task_name}-{x}.pkl", result=LocalResult(tmp))
    flow, out, expected = wide(n, inc=inc)
    miss = await timed(flow, out, expected)
    assert count_files(tmp, "*.pkl") == n
    hit = await timed(flow, out, expected)
    return {"target miss": miss, "target hit": hit}


async def checkpoint_segment(n: int, tmp: Path) -> dict[str, float]:
    flow, out, expected = wide(n, result=SegmentResult(tmp), checkpoint=True)
    elapsed = await timed(flow, out, expected)
    reader = SegmentResult(tmp)
    await reader.refresh()
    assert len(reader._index) == n + 2  # the incs, the implicit list task and the sum
    return {"checkpoint (segment)": elapsed}


async def targets_segment(n: int, tmp: Path) -> dict[str, float]:
    inc = a_inc.copy(target="{task_name}-{x}.pkl", result=SegmentResult(tmp))
    miss = await timed(*wide(n, inc=inc))
    # a new instance: the hit run reads the segments, as a new process would
    inc = a_inc.copy(target="{task_name}-{x}.pkl", result=SegmentResult(tmp))
    hit = await timed(*wide(n, inc=inc))
    return {"target miss (segment)": miss, "target hit (segment)": hit}


VARIANTS: list[Callable[[int, Path], Awaitable[dict[str, float]]]] = [
    plain,
    checkpoint,
    checkpoint_segment,
    history,
    history_again,
    targets,
    targets_segment,
]


async def main(n: int, repeats: int, only: list[str] | None = None) -> None:
    variants = [v for v in VARIANTS if only is None or v.__name__ in only or v is plain]
    times: dict[str, list[float]] = {}
    for variant in variants:  # warm up each code path once
        with tempfile.TemporaryDirectory() as tmp:
            await variant(20, Path(tmp))
    for _ in range(repeats):
        for variant in variants:
            with tempfile.TemporaryDirectory() as tmp:
                for name, elapsed in (await variant(n, Path(tmp))).items():
                    times.setdefault(name, []).append(elapsed)
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["plain"]
    print(f"W1 wide, N={n} tasks (+1 sum), median of {repeats}")
    for name, t in medians.items():
        print(f"{name:22} {t * 1e3:9.1f} ms  {t / (n + 1) * 1e6:8.1f} us/task  {t / base:6.2f}x plain")


if __name__ == "__main__":
    args = sys.argv[1:]
    chosen = None
    if "--only" in args:  # --only checkpoint_segment,targets_segment (function names; plain always runs)
        at = args.index("--only")
        chosen = args[at + 1].split(",")
        del args[at : at + 2]
    n = int(args[0]) if args else 10_000
    reps = int(args[1]) if len(args) > 1 else 5
    asyncio.run(main(n, reps, chosen))
