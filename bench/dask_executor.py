"""Per-task overhead of `aflow.executors.DaskExecutor` against dask's own ``client.map``.

Both run on the SAME LocalCluster (worker processes, by default 2 workers of 1 thread), in the
same run, with interleaved repetitions:

- ``dask client.map``: ``await client.gather(client.map(inc, range(N), pure=False))``;
- ``aflow DaskExecutor``: ``await flow.run(executor=executor)`` of ``inc.map(range(N))`` (a sync
  body, like dask's), the executor connected to that cluster's scheduler (``async with executor``
  around the runs, so its client is opened once). Building the flow is not timed.

Printed: the median wall time, the time per task and the ratio aflow / dask (target: at most
1.5x). Every repetition checks its result.

Run: ``python bench/dask_executor.py [--n 1000] [--repeat 5] [--workers 2] [--threads] [--json out.json]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file is named dask.py: keep its folder off sys.path, or `import dask` would import it
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from aflow import Flow, task  # noqa: E402
from aflow.executors import DaskExecutor  # noqa: E402


def inc(x: int) -> int:
    return x + 1


@task
def a_inc(x: int) -> int:
    return x + 1


async def time_dask(client: Any, n: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    futures = client.map(inc, range(n), pure=False)
    values = await client.gather(futures)
    elapsed = time.perf_counter() - t0
    assert values == [x + 1 for x in range(n)]
    del futures
    return elapsed


async def time_aflow(flow: Flow, out: Any, executor: DaskExecutor, n: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    state = await flow.run(executor=executor)
    elapsed = time.perf_counter() - t0
    assert state.is_successful(), state
    assert [s.result for s in state.result[out].map_states] == [x + 1 for x in range(n)]
    return elapsed


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    with Flow("bench-dask") as flow:
        out = a_inc.map(list(range(args.n)))
    async with (
        LocalCluster(
            asynchronous=True,
            processes=not args.threads,
            n_workers=args.workers,
            threads_per_worker=1,
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster, asynchronous=True) as client,
        DaskExecutor(cluster.scheduler_address) as executor,
    ):
        assert isinstance(executor, DaskExecutor)
        await time_dask(client, 50)  # warm up: workers import, connections open
        await time_aflow(flow, out, executor, args.n)
        times: dict[str, list[float]] = {"dask client.map": [], "aflow DaskExecutor": []}
        for _ in range(args.repeat):
            times["dask client.map"].append(await time_dask(client, args.n))
            times["aflow DaskExecutor"].append(await time_aflow(flow, out, executor, args.n))

    medians = {name: statistics.median(ts) for name, ts in times.items()}
    ratio = medians["aflow DaskExecutor"] / medians["dask client.map"]
    kind = "threads" if args.threads else "processes"
    print(f"N={args.n} tasks, {args.workers} worker {kind} x 1 thread, median of {args.repeat}:")
    for name, median in medians.items():
        spread = ", ".join(f"{t:.3f}" for t in times[name])
        print(f"  {name:<20} {median:7.3f} s  {median / args.n * 1e6:8.0f} us/task   [{spread}]")
    verdict = "PASS" if ratio <= 1.5 else "MISS"
    print(f"  ratio aflow / dask   {ratio:7.2f}x  (target <= 1.5x: {verdict})")
    return {
        "n": args.n,
        "workers": args.workers,
        "cluster": kind,
        "repeat": args.repeat,
        "times": times,
        "median_s": medians,
        "us_per_task": {name: m / args.n * 1e6 for name, m in medians.items()},
        "ratio": ratio,
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
    }


if __name__ == "__main__":  # worker processes re-import this module: run nothing then
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", action="store_true", help="a threads cluster instead of processes")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    result = asyncio.run(main(parser.parse_args()))
    if result["ratio"] > 10:  # a wrong order of magnitude is a bug, not noise
        sys.exit(1)
    if parser.parse_args().json:
        parser.parse_args().json.write_text(json.dumps(result, indent=2))
