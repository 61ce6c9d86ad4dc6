"""Cost of keeping task log records in the run store.

Two measurements, each as medians over interleaved repetitions in one process:

1. **Per record.** One task logs N lines (``context.get("logger").info("line %d", i)``) in a tight
   loop; the loop is timed inside the task body. Variants: ``no store`` (the record is dropped: the
   task logger is at WARNING, as in a plain program) and ``store`` (the same run with a
   `aflow.history.RunStore`: the record is formatted, redacted and appended for the writer).
   Printed in µs per record: the loop alone (what the task pays), and the whole run including
   the store's final write (``flow.run`` ends by flushing the store).
2. **W1 10k.** The wide workload of ``bench/run.py`` (N independent ``x + 1`` tasks, then one
   sum), timed on ``flow.run()`` only, with variants ``plain`` (no store; ``+ 1 line/task``: each
   task logs one INFO line, dropped), ``store, no graph``
   (the store with `RunStore.record_graph` made a no-op: what a run that logs nothing paid
   before log records and graphs were kept; the log path costs a run that logs nothing no
   work per task), ``store`` (today: the graph is recorded when the run starts) and ``store + 1
   line/task`` (each task logs one INFO line). Ratios are to ``store, no graph``.

3. **Against another checkout** (``--against DIR``): W1 with a store (``store`` above) in fresh
   child processes, alternately importing aflow from this tree and from ``DIR`` (say, a checkout
   of main from before log records existed), so the two stores are compared on the same
   machine at the same time.

Run: ``python bench/logs.py [N_RECORDS] [N_TASKS] [REPEATS]`` (default 20000 10000 7), or
``python bench/logs.py --against ../main [N_TASKS] [REPEATS]``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aflow import Flow, Task, context, task
from aflow.history import RunStore


async def per_record(n: int, tmp: Path, with_store: bool) -> dict[str, float]:
    spent: list[float] = []

    @task
    async def chatty() -> None:
        log = context.get("logger")
        t0 = time.perf_counter()
        for i in range(n):
            log.info("line %d", i)
        spent.append(time.perf_counter() - t0)

    with Flow("chatty") as flow:
        chatty()
    if not with_store:
        t0 = time.perf_counter()
        state = await flow.run()
        whole = time.perf_counter() - t0
        assert state.is_successful()
        return {"no store": spent[0] / n * 1e6, "no store, whole run": whole / n * 1e6}
    async with RunStore(tmp / "records.db") as store:
        t0 = time.perf_counter()
        state = await flow.run(history=store)  # ends with the store's flush: the records are written
        whole = time.perf_counter() - t0
        (run,) = await store.list_runs()
        assert len(await store.task_logs(run.run_id)) == n
    assert state.is_successful()
    return {"store": spent[0] / n * 1e6, "store, whole run": whole / n * 1e6}


@task
async def inc(x: int) -> int:
    return x + 1


@task
async def inc_logged(x: int) -> int:
    context.get("logger").info("adding one to %d", x)
    return x + 1


@task
async def total(xs: list[int]) -> int:
    return sum(xs)


def wide(n: int, body: Task) -> tuple[Flow, Task]:
    with Flow("w1") as flow:
        out = total([body(i) for i in range(n)])
    return flow, out


async def w1(n: int, tmp: Path, variant: str) -> float:
    flow, out = wide(n, inc_logged if variant.endswith("1 line/task") else inc)
    gc.collect()
    if not variant.startswith("store"):
        t0 = time.perf_counter()
        state = await flow.run()
        elapsed = time.perf_counter() - t0
    else:
        async with RunStore(tmp / f"{variant.replace(' ', '_').replace('/', '_')}.db") as store:
            if variant == "store, no graph":
                store.record_graph = lambda run_id, flow: None  # type: ignore[method-assign]
            t0 = time.perf_counter()
            state = await flow.run(history=store)
            elapsed = time.perf_counter() - t0
            (run,) = await store.list_runs()
            logs = await store.task_logs(run.run_id)
            assert len(logs) == (n if variant == "store + 1 line/task" else 0)
            assert (await store.run_graph(run.run_id) is None) == (variant == "store, no graph")
    assert state.is_successful()
    assert state.result[out].result == n * (n + 1) // 2
    return elapsed


W1_VARIANTS = ["plain", "plain + 1 line/task", "store, no graph", "store", "store + 1 line/task"]


def median_table(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in times.items()}


async def interleaved(
    repeats: int, cases: list[Any], run: Callable[[Any, Path], Awaitable[dict[str, float]]]
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for r in range(repeats):
        order = cases[r % len(cases) :] + cases[: r % len(cases)]  # rotate: no variant always first
        for case in order:
            with tempfile.TemporaryDirectory() as tmp:
                for name, value in (await run(case, Path(tmp))).items():
                    times.setdefault(name, []).append(value)
    return times


async def main(n_records: int, n_tasks: int, repeats: int) -> None:
    assert not logging.getLogger("aflow.task").isEnabledFor(logging.INFO)  # a plain program's setup
    with tempfile.TemporaryDirectory() as tmp:  # warm up every path
        await per_record(10, Path(tmp), True)
        for variant in W1_VARIANTS:
            await w1(10, Path(tmp), variant)

    records = median_table(await interleaved(repeats, [False, True], lambda s, tmp: per_record(n_records, tmp, s)))
    print(f"Per task log record, N={n_records} lines from one task, median of {repeats} (µs per record)")
    for name, value in records.items():
        print(f"  {name:>20}: {value:6.2f}")
    in_task = records["store"] - records["no store"]
    whole = records["store, whole run"] - records["no store, whole run"]
    print(f"  {'kept, in the task':>20}: {in_task:6.2f} more than a dropped record")
    print(f"  {'kept, whole run':>20}: {whole:6.2f} more (with the SQLite write)")

    async def one(variant: str, tmp: Path) -> dict[str, float]:
        return {variant: await w1(n_tasks, tmp, variant)}

    medians = median_table(await interleaved(repeats, W1_VARIANTS, one))
    base = medians["store, no graph"]
    print(f"\nW1 wide, N={n_tasks} tasks (+1 sum), median of {repeats}; ratio to 'store, no graph'")
    for name in W1_VARIANTS:
        t = medians[name]
        print(f"  {name:20} {t * 1e3:8.1f} ms  {t / (n_tasks + 1) * 1e6:6.1f} us/task  {t / base:5.2f}x")
    kept = (medians["store + 1 line/task"] - medians["store"]) - (medians["plain + 1 line/task"] - medians["plain"])
    print(f"  a line kept in the store costs the run {kept / n_tasks * 1e6:.2f} us more than a dropped one")


async def w1_child(n: int) -> None:
    """In a child process: warm up, then print the seconds of one W1 run with a store."""
    with tempfile.TemporaryDirectory() as tmp:
        for size in (10, n):
            flow, out = wide(size, inc)
            gc.collect()
            async with RunStore(Path(tmp) / f"w1-{size}.db") as store:
                t0 = time.perf_counter()
                state = await flow.run(history=store)
                elapsed = time.perf_counter() - t0
            assert state.is_successful()
            assert state.result[out].result == size * (size + 1) // 2
    print(elapsed)


def against(other: str, n: int, repeats: int) -> None:
    import os
    import subprocess

    here = str(Path(__file__).resolve().parent.parent)
    trees = {"this tree": here, other: str(Path(other).resolve())}
    times: dict[str, list[float]] = {name: [] for name in trees}
    for r in range(repeats):
        for name in list(trees)[r % 2 :] + list(trees)[: r % 2]:
            env = {**os.environ, "PYTHONPATH": trees[name]}
            command = [sys.executable, __file__, "--w1-child", str(n)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=600)
            times[name].append(float(done.stdout.strip().splitlines()[-1]))
    print(f"W1 wide with a run store, N={n} tasks, fresh processes, median of {repeats}")
    base = statistics.median(times[other])
    for name, values in times.items():
        t = statistics.median(values)
        print(f"  {name:20} {t * 1e3:8.1f} ms  {t / (n + 1) * 1e6:6.1f} us/task  {t / base:5.2f}x")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--w1-child"]:
        asyncio.run(w1_child(int(sys.argv[2])))
        sys.exit(0)
    if sys.argv[1:2] == ["--against"]:
        rest = [int(a) for a in sys.argv[3:]]
        against(sys.argv[2], *(rest + [10_000, 9][len(rest) :])[:2])
        sys.exit(0)
    args = [int(a) for a in sys.argv[1:]]
    n_rec, n_tasks, reps = (args + [20_000, 10_000, 7][len(args) :])[:3]
    asyncio.run(main(n_rec, n_tasks, reps))
