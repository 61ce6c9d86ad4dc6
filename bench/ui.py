"""How `aflow ui` holds up on a big run store: 1,000 runs, one of them with 100,000 task runs.

Builds the store through `RunStore`'s recording API (999 small runs of five flows, and one run of
a task mapped over 100,000 items, 1 % of them retried once, each child logging one line), serves it
in this process as `aflow ui` does, and times the JSON API with an HTTP client on the loopback
(median of REPEATS requests; "cold" is the first request for the big run: reading its states and
folding them into the view). With ``--browser``, also times Chromium (tests/cdp.py) loading the
pages until they are drawn.

Run: ``python bench/ui.py [--children N] [--runs N] [--repeat K] [--browser]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aflow._surface._ui._server import build_app
from aflow.history import RunStore
from aflow.states import Failed, Success

FLOWS = ["etl", "report", "sync", "backup", "ml-train"]


async def build_store(path: Path, runs: int, children: int) -> str:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    async with RunStore(path, batch_size=50_000) as store:
        for i in range(runs - 1):
            run_id = f"small-{i:05d}"
            start = t0 + timedelta(minutes=i)
            store.flow_run_started(run_id, FLOWS[i % len(FLOWS)], {"i": i}, start)
            for j, name in enumerate(("extract", "transform", "load")):
                store.record(
                    run_id, f"{name}-1", name, None, "Running", None, (start + timedelta(seconds=j)).timestamp()
                )
                store.record(
                    run_id, f"{name}-1", name, None, "Success", None, (start + timedelta(seconds=j + 1)).timestamp()
                )
            final = Failed("a task failed") if i % 7 == 0 else Success("ok")
            store.flow_run_finished(run_id, final, start + timedelta(seconds=3))
        big = "big-run-100k"
        start = t0 + timedelta(minutes=runs)
        store.flow_run_started(big, "fan-out", {"n": children}, start)
        at = start.timestamp()
        store.record(big, "source-1", "source", None, "Running", None, at)
        store.record(big, "source-1", "source", None, "Success", None, at + 0.5)
        for k in range(children):
            t = at + 1 + k * 0.001
            store.record(big, "work-1", "work", k, "Running", "Starting task run.", t)
            if k % 100 == 0:
                store.record(big, "work-1", "work", k, "Retrying", "Retrying in 0.1s", t + 0.002)
                store.record(big, "work-1", "work", k, "Running", "Starting task run.", t + 0.1)
            store.record(big, "work-1", "work", k, "Success", "Task run succeeded.", t + 0.2)
            store.log(big, "work-1", "work", k, 1, logging.INFO, f"item {k} done", t + 0.1)
        end = at + 2 + children * 0.001
        store.record(big, "work-1", "work", None, "Mapped", f"Mapped {children} children.", end)
        store.flow_run_finished(big, Success("ok"), datetime.fromtimestamp(end + 0.1, UTC))
        await store.flush()
    return big


async def timed(session: aiohttp.ClientSession, url: str) -> tuple[float, Any]:
    t = time.perf_counter()
    async with session.get(url) as response:
        body = await response.read()
        assert response.status == 200, (url, response.status, body[:200])
    return (time.perf_counter() - t) * 1000, len(body)


async def bench_api(base: str, big: str, repeat: int, runs: int, children: int) -> list[tuple[str, float, int]]:
    rows: list[tuple[str, float, int]] = []
    async with aiohttp.ClientSession() as session:
        cold, size = await timed(session, f"{base}/api/runs/{big}")
        rows.append(("GET /api/runs/{big} (cold: read and fold its states)", cold, size))
        cases = [
            "/api/runs",
            f"/api/runs?offset={max(0, runs - 50)}",
            "/api/runs?state=Failed",
            "/api/runs?flow=etl&offset=150",
            "/api/runs/{big}",
            f"/api/runs/{{big}}?offset={children // 2}",
            f"/api/runs/{{big}}?task=work&state=Success&offset={max(0, children - 1000)}",
            "/api/runs/{big}/logs",
            "/api/runs/{big}/logs?task=work&after=50000",
            f"/api/runs/small-{min(500, runs - 2):05d}",
        ]
        for case in cases:
            times = []
            for _ in range(repeat):
                ms, size = await timed(session, base + case.replace("{big}", big))
                times.append(ms)
            rows.append((f"GET {case}", statistics.median(times), size))
    return rows


async def bench_browser(base: str, big: str) -> list[tuple[str, float, int]]:
    from tests.cdp import Page, chromium

    rows: list[tuple[str, float, int]] = []
    with chromium() as endpoint:
        page = await Page.connect(endpoint)
        try:
            for label, url in (("page / (50 runs)", f"{base}/"), (f"page /runs/{big}", f"{base}/runs/{big}")):
                for _ in range(2):
                    t = time.perf_counter()
                    await page.goto(url)
                    rows.append((label, (time.perf_counter() - t) * 1000, 0))
        finally:
            await page.close()
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--children", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "runs.db")
        t = time.perf_counter()
        big = await build_store(path, args.runs, args.children)
        print(
            f"store: {args.runs} runs, one with {args.children} task runs, built in {time.perf_counter() - t:.1f} s, "
            f"{path.stat().st_size / 1e6:.1f} MB"  # noqa: ASYNC240
        )
        store = RunStore(path)
        async with store:
            t = time.perf_counter()
            history = await store.task_history(big)
            print(f"RunStore.task_history(big): {len(history)} states in {(time.perf_counter() - t) * 1000:.0f} ms")
        async with RunStore(path) as served:
            runner = web.AppRunner(build_app(served), access_log=None)
            await runner.setup()
            try:
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                host, port = runner.addresses[0][:2]
                base = f"http://{host}:{port}"
                rows = await bench_api(base, big, args.repeat, args.runs, args.children)
                if args.browser:
                    rows += await bench_browser(base, big)
            finally:
                await runner.cleanup()
    print("| request | ms (median) | bytes |")
    print("|---|---:|---:|")
    for label, ms, size in rows:
        print(f"| {label} | {ms:.1f} | {size or ''} |")


if __name__ == "__main__":
    asyncio.run(main())
