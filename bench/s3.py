"""S3Upload.map against raw aiobotocore ``put_object``: N (500) small uploads to moto's server.

A flow mapping ``S3Upload`` over N small payloads (all started at once, on the flow run's one
aiobotocore client) against raw aiobotocore doing the same N ``put_object`` calls with
``asyncio.gather`` on one client (the same concurrency: all N at once, through botocore's default
pool of 10 connections in both). moto's server (``moto.server.ThreadedMotoServer``, as
``tests/aflow_tasks/aws/conftest.py`` starts it) runs in a subprocess, so the client's
``time.process_time`` is the client's CPU alone. Repetitions alternate aflow / raw in the same
run; medians of wall time and of client CPU per upload, and their ratios, are printed. Each run
checks that every key it wrote is listed. The flow is built outside the timing.

    python bench/s3.py            # N=500, 7 repetitions
    python bench/s3.py --quick    # N=100, 3 repetitions
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiobotocore.session import get_session  # noqa: E402

from aflow import Flow  # noqa: E402
from aflow_tasks.aws import S3Upload  # noqa: E402
from tests.net import free_port  # noqa: E402

BUCKET = "aflow-bench"
REGION = "us-east-1"
CREDS = {"ACCESS_KEY": "testing-access-key", "SECRET_ACCESS_KEY": "testing-secret-access-key"}
SERVER = """
import logging, sys, time
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
while True:
    time.sleep(3600)
"""


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env)
    try:
        for _ in range(1000):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        else:
            raise RuntimeError("moto's server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def client_args(url: str) -> dict[str, Any]:
    return {
        "region_name": REGION,
        "endpoint_url": url,
        "aws_access_key_id": CREDS["ACCESS_KEY"],
        "aws_secret_access_key": CREDS["SECRET_ACCESS_KEY"],
    }


def upload_flow(url: str, n: int, prefix: str) -> tuple[Flow, Any]:
    up = S3Upload(BUCKET, credentials=CREDS, region_name=REGION, endpoint_url=url)
    with Flow(f"s3-{n}") as flow:
        keys = up.map(data=[f"payload {i}".encode() for i in range(n)], key=[f"{prefix}/{i}" for i in range(n)])
    return flow, keys


async def listed(url: str, prefix: str) -> set[str]:
    async with get_session().create_client("s3", **client_args(url)) as s3:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/")
        return {obj["Key"] async for page in pages for obj in page.get("Contents", [])}


async def timed_flow(url: str, built: tuple[Flow, Any], n: int, prefix: str) -> tuple[float, float]:
    flow, keys = built
    c0, t0 = time.process_time(), time.perf_counter()
    state = await flow.run()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert state.is_successful(), state.message
    expected = [f"{prefix}/{i}" for i in range(n)]
    assert state.result[keys].result == expected, "wrong results"
    assert await listed(url, prefix) == set(expected), "missing objects"
    return elapsed, cpu


async def raw(url: str, n: int, prefix: str) -> tuple[float, float]:
    """N put_object calls, all in flight at once, on one aiobotocore client."""
    c0, t0 = time.process_time(), time.perf_counter()
    async with get_session().create_client("s3", **client_args(url)) as s3:
        await asyncio.gather(
            *(s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{i}", Body=f"payload {i}".encode()) for i in range(n))
        )
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert await listed(url, prefix) == {f"{prefix}/{i}" for i in range(n)}, "missing objects"
    return elapsed, cpu


async def main(n: int, repeat: int) -> None:
    with moto_server() as url:
        async with get_session().create_client("s3", **client_args(url)) as s3:
            await s3.create_bucket(Bucket=BUCKET)
        print(f"moto server at {url}; N={n:,} uploads at once, {repeat} repetitions")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        await raw(url, min(n, 50), "warm/raw")  # warm-up
        await timed_flow(url, upload_flow(url, min(n, 50), "warm/flow"), min(n, 50), "warm/flow")
        flows: list[tuple[float, float]] = []
        raws: list[tuple[float, float]] = []
        for r in range(repeat):
            built = upload_flow(url, n, f"flow/{r}")  # built outside the timing
            flows.append(await timed_flow(url, built, n, f"flow/{r}"))
            raws.append(await raw(url, n, f"raw/{r}"))
    fw, rw = statistics.median(w for w, _ in flows), statistics.median(w for w, _ in raws)
    fc, rc = statistics.median(c for _, c in flows), statistics.median(c for _, c in raws)
    print(f"  S3Upload.map flow: wall median {fw:.3f}s ({n / fw:,.0f}/s), client CPU {fc / n * 1e6:,.0f} us/upload")
    print(f"  raw aiobotocore:   wall median {rw:.3f}s ({n / rw:,.0f}/s), client CPU {rc / n * 1e6:,.0f} us/upload")
    print(f"  ratio flow / raw: wall {fw / rw:.2f}x, client CPU {fc / rc:.2f}x (target <= 1.1x)")
    print(f"    flow walls: {', '.join(f'{w:.3f}' for w, _ in flows)}; raw: {', '.join(f'{w:.3f}' for w, _ in raws)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=100 and 3 repetitions")
    parser.add_argument("-n", type=int, default=None, help="uploads per run (default 500)")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    n = args.n or (100 if args.quick else 500)
    repeat = args.repeat or (3 if args.quick else 7)
    asyncio.run(main(n, repeat))
