"""Cost of recording task states through `aflow.history.RunStore.task_state` (the public path;
the engine appends to a per-run recorder instead: see `bench/persist.py` for a whole run).

Three numbers per run, in microseconds per record:

- ``record``: N synchronous ``store.task_state(...)`` calls in a tight loop (no awaits: the
  batch only grows), i.e. what the event loop pays per call;
- ``flush``: the following ``await store.flush()``, which commits the N records (one transaction,
  ``executemany`` in aiosqlite's thread) divided by N;
- ``interleaved``: N calls yielding to the loop every 100 records (as a running flow does), so the
  background writer commits full batches meanwhile, then a final flush; total wall time / N.

A no-op method with the same signature gives the floor of a Python call. Default batch_size (500)
and flush_interval (0.2 s); a fresh SQLite file in a temporary directory per repeat.

Run: ``python bench/history.py [N] [REPEATS]`` (default 10000, 5).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from aflow.history import RunStore
from aflow.states import Running, State, Success


class NoopStore:
    def task_state(
        self, run_id: str, task_slug: str, task_name: str, map_index: int | None, state: State, at: datetime
    ) -> None:
        pass


async def one_repeat(n: int, directory: Path, index: int) -> dict[str, float]:
    states = [Running(), Success("done")]
    now = datetime.now(UTC)
    result: dict[str, float] = {}

    noop = NoopStore()
    t0 = time.perf_counter()
    for i in range(n):
        noop.task_state("run-1", f"task-{i % 100}", "task", i, states[i & 1], now)
    result["noop call"] = (time.perf_counter() - t0) / n * 1e6

    async with RunStore(directory / f"tight-{index}.db") as store:
        t0 = time.perf_counter()
        for i in range(n):
            store.task_state("run-1", f"task-{i % 100}", "task", i, states[i & 1], now)
        t1 = time.perf_counter()
        await store.flush()
        t2 = time.perf_counter()
        assert len(await store.task_history("run-1")) == n
    result["record"] = (t1 - t0) / n * 1e6
    result["flush"] = (t2 - t1) / n * 1e6
    result["record + flush"] = (t2 - t0) / n * 1e6

    async with RunStore(directory / f"interleaved-{index}.db") as store:
        t0 = time.perf_counter()
        for i in range(n):
            store.task_state("run-1", f"task-{i % 100}", "task", i, states[i & 1], now)
            if i % 100 == 99:
                await asyncio.sleep(0)
        await store.flush()
        t1 = time.perf_counter()
        assert len(await store.task_history("run-1")) == n
    result["interleaved"] = (t1 - t0) / n * 1e6
    return result


async def main(n: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runs = [await one_repeat(n, Path(tmp), r) for r in range(repeats)]
    print(f"aflow.history.RunStore.task_state, N={n}, {repeats} repeats (µs per record: median [min])")
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"  {key:>15}: {statistics.median(values):7.3f}  [{min(values):.3f}]")


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    asyncio.run(main(size, reps))
