"""Ten Databricks runs polled at once take about the time of one.

A flow of one `DatabricksSubmitRun` and a flow of ten, against the fake Jobs API of the tests
(``tests/aflow_tasks/databricks/fake_databricks.py``), each run needing 12 polls
``--poll`` seconds apart (default 0.1). Prints the median wall time of each and their ratio
(about 1 when the polls overlap; about 10 if the runs were polled one after another).

    python bench/databricks.py              # 5 repetitions
    python bench/databricks.py --quick      # 2 repetitions
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aflow import Flow  # noqa: E402
from aflow.states import Success  # noqa: E402
from aflow_tasks.databricks import DatabricksSubmitRun  # noqa: E402
from tests.aflow_tasks.databricks.fake_databricks import PENDING, RUNNING, SUCCESS, FakeDatabricks  # noqa: E402

TOKEN = "bench-token"


async def timed(n: int, url: str, poll: float) -> float:
    task = DatabricksSubmitRun({"host": url, "token": TOKEN}, notebook_task={"notebook_path": "/x"})
    with Flow(f"dbx-bench-{n}") as flow:
        for i in range(n):
            task(run_name=f"r{i}", polling_period_seconds=poll, task_args={"name": f"r{i}"})
    start = time.perf_counter()
    state = await flow.run()
    elapsed = time.perf_counter() - start
    assert isinstance(state, Success), state
    return elapsed


async def main(reps: int, poll: float) -> None:
    fake = FakeDatabricks(TOKEN, "u", "p")
    fake.start()
    try:
        fake.call(lambda: setattr(fake, "default_plan", [PENDING] + [RUNNING] * 10 + [SUCCESS]))
        one, ten = [], []
        for _ in range(reps):
            one.append(await timed(1, fake.url, poll))
            ten.append(await timed(10, fake.url, poll))
        a, b = statistics.median(one), statistics.median(ten)
        print(f"1 run: {a:.3f}s  10 runs: {b:.3f}s  ratio: {b / a:.2f}  (max active runs seen: {fake.max_active})")
    finally:
        fake.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--poll", type=float, default=0.1)
    args = parser.parse_args()
    asyncio.run(main(2 if args.quick else 5, args.poll))
