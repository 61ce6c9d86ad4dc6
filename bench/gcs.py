"""GCSUpload against raw gcloud-aio-storage: 1,000 concurrent small uploads to the GCS emulator.

A flow mapping ``GCSUpload`` over N (1,000) small payloads (every upload in flight at once, on the
flow run's one aiohttp session) against raw gcloud-aio-storage doing the same N uploads with
``asyncio.gather`` on one ``aiohttp.ClientSession`` and one ``Storage`` (the same concurrency: all
N at once, through aiohttp's default 100-connection pool in both). Repetitions alternate aflow /
raw in the same run; medians and their ratio are printed. The flow is built outside the timing.

The emulator is gcp-storage-emulator, started as the tests start it
(``tests/aflow_tasks/gcp/conftest.py``: a thread, a free port, a listen backlog of 1024). It
serves one request at a time, so both sides mostly measure it; the ratio shows what the task
machinery adds on top.

    python bench/gcs.py            # N=1,000, 5 repetitions
    python bench/gcs.py --quick    # N=200, 3 repetitions
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from gcloud.aio.storage import Storage  # noqa: E402

from aflow import Flow  # noqa: E402
from aflow_tasks.gcp import GCSUpload  # noqa: E402
from tests.aflow_tasks.gcp.conftest import StorageEmulator  # noqa: E402

BUCKET = "bench"


def upload_flow(n: int, round_: int) -> tuple[Flow, Any]:
    up = GCSUpload(BUCKET)
    with Flow(f"uploads-{n}") as flow:
        names = up.map(data=[f"payload {i}".encode() for i in range(n)], blob=[f"flow/{round_}/{i}" for i in range(n)])
    return flow, names


async def timed_flow(built: tuple[Flow, Any], n: int) -> float:
    flow, names = built
    t0 = time.perf_counter()
    state = await flow.run()
    elapsed = time.perf_counter() - t0
    assert state.is_successful(), state.message
    assert len(state.result[names].result) == n, "wrong results"
    return elapsed


async def raw(n: int, round_: int) -> float:
    """N uploads with raw gcloud-aio-storage, all in flight at once, on one session."""
    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        storage = Storage(session=session)  # type: ignore[arg-type]
        results = await asyncio.gather(
            *(storage.upload(BUCKET, f"raw/{round_}/{i}", f"payload {i}".encode()) for i in range(n))
        )
    elapsed = time.perf_counter() - t0
    assert len(results) == n, "wrong results"
    return elapsed


async def main(n: int, repeat: int) -> None:
    emulator = StorageEmulator()
    emulator.start()
    os.environ["STORAGE_EMULATOR_HOST"] = emulator.url
    try:
        print(f"gcp-storage-emulator on {emulator.url}; N={n:,}, {repeat} repetitions")

        async def fresh() -> None:  # each side starts from an empty emulator
            emulator.wipe()
            await GCSUpload(BUCKET, create_bucket=True).run(data=b"x", blob="warm")

        await fresh()
        await raw(min(n, 100), -1)  # warm-up
        await timed_flow(upload_flow(min(n, 100), -1), min(n, 100))
        flows, raws = [], []
        for r in range(repeat):
            built = upload_flow(n, r)  # built outside the timing
            await fresh()
            flows.append(await timed_flow(built, n))
            await fresh()
            raws.append(await raw(n, r))
        f, w = statistics.median(flows), statistics.median(raws)
        print(
            f"{n:,} concurrent small uploads: GCSUpload.map flow median {f:.3f}s ({n / f:,.0f}/s), "
            f"raw gcloud-aio-storage median {w:.3f}s ({n / w:,.0f}/s); ratio {f / w:.2f}x"
        )
        print(f"    flow runs: {', '.join(f'{x:.3f}' for x in flows)}; raw: {', '.join(f'{x:.3f}' for x in raws)}")
    finally:
        emulator.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=200 and 3 repetitions")
    parser.add_argument("-n", type=int, default=None, help="uploads per run (default 1,000)")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    n = args.n or (200 if args.quick else 1_000)
    repeat = args.repeat or (3 if args.quick else 5)
    asyncio.run(main(n, repeat))
