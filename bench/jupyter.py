"""ExecuteNotebook: one notebook against N run concurrently in one flow, and the event loop's lag.

Each notebook sleeps ``--sleep`` seconds in one cell (a kernel start and shutdown around it). N
`ExecuteNotebook` tasks in one flow run start N kernels at once from the event loop; the run
takes about the time of one when nothing serialises them (the kernels' own start-up CPU aside).
Meanwhile a ticker measures the event loop's longest stall: the kernels are driven from the loop,
so a stall there would delay every other task of the run.

    python bench/jupyter.py            # N=8, 3 repetitions
    python bench/jupyter.py --n 16 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from aflow import Flow  # noqa: E402
from aflow.states import Success  # noqa: E402
from aflow_tasks.jupyter import ExecuteNotebook  # noqa: E402


def write_notebook(folder: Path, sleep: float) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"import time\ntime.sleep({sleep})\nprint('done')")]
    path = folder / "sleepy.ipynb"
    nbformat.write(nb, str(path))
    return str(path)


async def timed(path: str, n: int) -> tuple[float, float]:
    """Seconds for a flow of ``n`` notebooks, and the loop's longest stall meanwhile."""
    with Flow(f"bench-{n}") as flow:
        for i in range(n):
            ExecuteNotebook(path, output_format="markdown", name=f"nb-{i}")()
    stall = 0.0
    running = True

    async def ticker() -> None:
        nonlocal stall
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            stall = max(stall, now - last - 0.005)
            last = now

    tick = asyncio.ensure_future(ticker())
    start = time.perf_counter()
    state = await flow.run()
    elapsed = time.perf_counter() - start
    running = False
    await tick
    if not isinstance(state, Success):
        raise SystemExit(f"the flow of {n} notebooks ended {state!r}")
    return elapsed, stall


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = write_notebook(Path(folder), args.sleep)
        await timed(path, 1)  # warm up: imports, the kernelspec
        ones, many, stalls = [], [], []
        for _ in range(args.repeat):
            one, _stall = await timed(path, 1)
            all_, stall = await timed(path, args.n)
            ones.append(one)
            many.append(all_)
            stalls.append(stall)
    one, all_ = statistics.median(ones), statistics.median(many)
    print(f"1 notebook:            {one:.2f} s (median of {args.repeat})")
    print(f"{args.n} notebooks, 1 flow: {all_:.2f} s ({all_ / one:.2f}x one)")
    print(f"longest event-loop stall during the {args.n}-notebook runs: {max(stalls) * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
