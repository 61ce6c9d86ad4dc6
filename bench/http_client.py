"""HTTP client CPU per request: HttpRequest.map and raw clients, 20 connections, server in another process.

A small aiohttp server (one JSON answer of ~30 bytes) runs as a subprocess on 127.0.0.1, so the
client's ``time.process_time`` is the client's CPU alone. Each variant sends N (2,000) GETs at
a concurrency of C (20): the raw clients through C workers sharing one client, the flows as
``HttpRequest.map`` over N URLs run with ``max_concurrency=C``; every client keeps its default
pool (100 connections, as the flow's shared client does), so C connections get opened. Every
answer is parsed and checked. The raw variants run under the garbage-collector settings a flow
of N tasks runs with (``aflow._runtime._gc.relaxed_gc``: from 1,000 tasks on, a higher first
threshold), so that both sides compare on even terms. Variants alternate in the same process for K repetitions; medians
of CPU microseconds per request (and of wall time) are printed with the ratio to raw aiohttp:

- raw aiohttp: ``aiohttp.ClientSession()``, ``await resp.json()``;
- raw httpx, no sniffio: ``httpx.AsyncClient()`` with sniffio
  made unimportable for the run, as in an environment without it (httpcore 1.0.9 imports it on
  every lock operation; each failed import searches sys.path; anyio >= 4.16 no longer brings
  it). Emulated by a finder that searches all of the import system for a missing name and then
  fails the import, as a missing sniffio would;
- raw httpx + sniffio: the same with sniffio importable (what ``aflow-engine[http]`` installs);
- raw httpx over aiohttp: the client ``aiohttp_client()`` makes, httpx's API over aflow's
  aiohttp transport (``aflow-engine[http-fast]``);
- raw httpx over httpx-aiohttp: the same with ``httpx_aiohttp.AiohttpTransport()`` (what the
  fast path used before; left out when httpx-aiohttp is not installed);
- HttpRequest.map: the flow's shared client, httpx's own transport (sniffio importable);
- HttpRequest.map, aiohttp: the same with ``set_client_factory(aiohttp_client)``.

    python bench/http_client.py            # N=2,000, C=20, 7 repetitions
    python bench/http_client.py --quick    # N=200, 3 repetitions
    python bench/http_client.py --only "raw httpx over aiohttp;HttpRequest.map, aiohttp"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.abc
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402

from aflow import Flow  # noqa: E402
from aflow._runtime._gc import relaxed_gc  # noqa: E402  # the raw side gets aflow's collector settings
from aflow_tasks import http as aflow_http  # noqa: E402
from aflow_tasks.http import HttpRequest  # noqa: E402
from tests.net import free_port  # noqa: E402

try:
    from httpx_aiohttp import AiohttpTransport
except ImportError:  # the http-fast extra is not installed
    AiohttpTransport = None

SERVER = """
import sys
from aiohttp import web

async def answer(request):
    return web.json_response({"ok": True, "n": int(request.match_info["n"])})

app = web.Application()
app.router.add_get("/item/{n}", answer)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, backlog=1024)
"""


@contextlib.contextmanager
def server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        for _ in range(500):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        else:
            raise RuntimeError("the aiohttp server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


class _NoSniffio(importlib.abc.MetaPathFinder):
    """Make ``import sniffio`` fail after the search a missing module costs."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] != "sniffio":
            return None
        importlib.util.find_spec("sniffio_absent_aflow_bench")  # every finder searches, none finds
        raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


@contextlib.contextmanager
def without_sniffio() -> Iterator[None]:
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.partition(".")[0] == "sniffio"}
    finder = _NoSniffio()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        sys.modules.update(saved)


def check(bodies: list[Any], n: int) -> None:
    assert [b["n"] for b in bodies] == list(range(n)), "wrong results"


async def workers(c: int, n: int, one: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Fetch items 0..n-1 with ``c`` workers; the bodies in order."""
    bodies: list[Any] = [None] * n
    it = iter(range(n))

    async def work() -> None:
        for i in it:
            bodies[i] = await one(i)

    await asyncio.gather(*(work() for _ in range(c)))
    return bodies


async def raw_aiohttp(base: str, n: int, c: int) -> None:
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> Any:
            async with session.get(f"{base}/item/{i}") as resp:
                resp.raise_for_status()
                return await resp.json()

        check(await workers(c, n, one), n)


async def raw_httpx(
    base: str, n: int, c: int, transport: httpx.AsyncBaseTransport | None = None, made: httpx.AsyncClient | None = None
) -> None:
    async with made or httpx.AsyncClient(transport=transport) as client:

        async def one(i: int) -> Any:
            resp = await client.get(f"{base}/item/{i}")
            resp.raise_for_status()
            return resp.json()

        check(await workers(c, n, one), n)


async def raw_httpx_no_sniffio(base: str, n: int, c: int) -> None:
    with without_sniffio():
        await raw_httpx(base, n, c)


async def raw_httpx_aiohttp(base: str, n: int, c: int) -> None:
    await raw_httpx(base, n, c, made=aflow_http.aiohttp_client())


async def raw_httpx_httpx_aiohttp(base: str, n: int, c: int) -> None:
    assert AiohttpTransport is not None
    await raw_httpx(base, n, c, AiohttpTransport())


def request_flow(base: str, n: int) -> tuple[Flow, Any]:
    get = HttpRequest()
    with Flow(f"http-{n}") as flow:
        bodies = get.map(url=[f"{base}/item/{i}" for i in range(n)])
    return flow, bodies


async def run_flow(built: tuple[Flow, Any], n: int, c: int) -> None:
    flow, bodies = built
    state = await flow.run(max_concurrency=c)
    assert state.is_successful(), state.message
    check(state.result[bodies].result, n)


async def main(n: int, c: int, repeat: int, only: list[str] | None = None) -> None:
    variants: dict[str, Callable[[str], Awaitable[None]] | None] = {}
    with server() as base:
        variants = {
            "raw aiohttp": lambda b: raw_aiohttp(b, n, c),
            "raw httpx, no sniffio": lambda b: raw_httpx_no_sniffio(b, n, c),
            "raw httpx + sniffio": lambda b: raw_httpx(b, n, c),
        }
        fast = aflow_http.aiohttp_client
        variants["raw httpx over aiohttp"] = lambda b: raw_httpx_aiohttp(b, n, c)
        if AiohttpTransport is not None:
            variants["raw httpx over httpx-aiohttp"] = lambda b: raw_httpx_httpx_aiohttp(b, n, c)
        flows = ["HttpRequest.map", "HttpRequest.map, aiohttp"]
        names = [name for name in [*variants, *flows] if name == "raw aiohttp" or not only or name in only]
        cpu: dict[str, list[float]] = {name: [] for name in names}
        wall: dict[str, list[float]] = {name: [] for name in cpu}
        print(f"aiohttp server at {base}; N={n:,} GETs at concurrency {c}, {repeat} repetitions")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for r in range(repeat + 1):  # the first round warms up
            for name in cpu:
                if name.startswith("HttpRequest"):
                    built = request_flow(base, n)  # built outside the timing
                    previous = aflow_http.set_client_factory(fast if name.endswith("aiohttp") else None)
                    try:
                        t0, w0 = time.process_time(), time.perf_counter()
                        await run_flow(built, n, c)
                        t1, w1 = time.process_time(), time.perf_counter()
                    finally:
                        aflow_http.set_client_factory(previous)
                else:
                    run = variants[name]
                    assert run is not None
                    with relaxed_gc(n):
                        t0, w0 = time.process_time(), time.perf_counter()
                        await run(base)
                        t1, w1 = time.process_time(), time.perf_counter()
                if r:
                    cpu[name].append((t1 - t0) / n * 1e6)
                    wall[name].append(w1 - w0)
    base_cpu = statistics.median(cpu["raw aiohttp"])
    for name in cpu:
        m, w = statistics.median(cpu[name]), statistics.median(wall[name])
        print(f"  {name:28} CPU {m:7.1f} us/request ({m / base_cpu:.2f}x raw aiohttp); wall {w:.3f}s ({n / w:,.0f}/s)")
    if "raw httpx over aiohttp" in cpu and "raw httpx + sniffio" in cpu:
        h, a = statistics.median(cpu["raw httpx + sniffio"]), statistics.median(cpu["raw httpx over aiohttp"])
        print(f"  httpx over aiohttp / httpx + sniffio (CPU): {a / h:.2f}x")
    for flow_name, raw_name in (
        ("HttpRequest.map", "raw httpx + sniffio"),
        ("HttpRequest.map, aiohttp", "raw httpx over aiohttp"),
    ):
        if flow_name in cpu and raw_name in cpu:
            ratio = statistics.median(cpu[flow_name]) / statistics.median(cpu[raw_name])
            print(f"  {flow_name} / {raw_name} (CPU): {ratio:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=200 and 3 repetitions")
    parser.add_argument("-n", type=int, default=None, help="requests per variant (default 2,000)")
    parser.add_argument("-c", type=int, default=20, help="concurrency (default 20)")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--only", help="variant names, separated by ';', to run (raw aiohttp always runs)")
    args = parser.parse_args()
    n = args.n or (200 if args.quick else 2_000)
    repeat = args.repeat or (3 if args.quick else 7)
    asyncio.run(main(n, args.c, repeat, args.only.split(";") if args.only else None))
