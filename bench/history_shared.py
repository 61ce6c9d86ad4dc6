"""A run store shared by processes: does every run's end reach the file, and what does sharing cost?

Each trial starts P processes on one fresh SQLite file; each runs R flows one after another with
``flow.run(history=path)`` (a store opened and closed per run). The flow is 20 tasks sleeping
0.4 s, then their sum: a run lasts about two of the store's 0.2 s write intervals, so its end
comes while a write of its states may be waiting for another process's lock. After the trial
the file is read: a run is lost when it is missing, not ``Success``, has no ``ended_at``, or lacks
a task state (each of the 21 task runs must have its ``Running`` and final states).

Printed per configuration: lost runs, trials with a loss, and the wall time per run (median, 95th
percentile, max) as the children measured it, for 1 process (no other writer), for P, and for P
with one more writer, a plain sqlite3 connection holding the file's write lock for 20 ms of every
40 ms (the stores' writes wait for it: the case where a run's end arrives during a write).

Run: ``python bench/history_shared.py [TRIALS] [PROCESSES] [RUNS]`` (default 5, 3, 20).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
from contextlib import closing
from pathlib import Path

from aflow.history import RunStore

CHILD = """
import asyncio, json, sys, time
from aflow import Flow, task

@task
async def step(x):
    await asyncio.sleep(0.4)
    return x + 1

@task
def total(xs):
    return sum(xs)

with Flow("shared") as flow:
    total([step(i) for i in range(20)])

async def main(path, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        state = await flow.run(history=path)
        times.append(time.perf_counter() - t0)
        assert state.is_successful(), state
    print(json.dumps(times))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

TASK_RUNS = 22  # 20 steps, the list of their results, the sum


async def lost_runs(path: Path) -> int:
    lost = 0
    async with RunStore(path) as store:
        for run in await store.list_runs(limit=100_000):
            if run.state != "Success" or run.ended_at is None:
                lost += 1
                continue
            states = [(r.task_slug, r.map_index, r.state) for r in await store.task_history(run.run_id)]
            if len(states) != 2 * TASK_RUNS:
                lost += 1
    return lost


def hold_the_lock_often(path: Path, stop: threading.Event) -> None:
    with closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as conn:
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            stop.wait(0.02)
            conn.execute("COMMIT")
            stop.wait(0.02)


def trial(processes: int, runs: int, other_writer: bool) -> tuple[int, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.db"
        asyncio.run(count_runs(path))  # creates the file in WAL mode
        stop = threading.Event()
        writer = threading.Thread(target=hold_the_lock_often, args=(path, stop))
        if other_writer:
            writer.start()
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(path), str(runs)], stdout=subprocess.PIPE, env=dict(os.environ)
            )
            for _ in range(processes)
        ]
        times: list[float] = []
        for child in children:
            out, _ = child.communicate()
            if child.returncode:
                raise SystemExit(f"a child failed with status {child.returncode}")
            times += json.loads(out.decode().splitlines()[-1])
        stop.set()
        if other_writer:
            writer.join()
        stored = asyncio.run(lost_runs(path))
        missing = processes * runs - asyncio.run(count_runs(path))
        return stored + missing, times


async def count_runs(path: Path) -> int:
    async with RunStore(path) as store:
        return len(await store.list_runs(limit=100_000))


def main(trials: int, processes: int, runs: int) -> None:
    for procs, other_writer in ((1, False), (processes, False), (processes, True)):
        lost_total, with_loss, times = 0, 0, []
        for _ in range(trials):
            lost, t = trial(procs, runs, other_writer)
            lost_total += lost
            with_loss += bool(lost)
            times += t
        times.sort()
        label = " + a writer" if other_writer else ""
        p95 = times[int(0.95 * (len(times) - 1))]
        print(
            f"{procs} process(es){label} x {runs} runs, {trials} trials: "
            f"{lost_total} of {trials * procs * runs} runs lost "
            f"({with_loss} trials with a loss); time per run median {statistics.median(times):.3f} s, "
            f"p95 {p95:.3f} s, max {times[-1]:.3f} s"
        )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:4]]
    main(*(args + [5, 3, 20][len(args) :]))
