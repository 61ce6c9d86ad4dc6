"""A proxy in front of moto for the AWS tests: it forwards and records every call, and answers late.

moto does the work of every call at once; the proxy holds the answer back, so a test can cut a
task short while its call is in flight (the cloud-side effect exists, the task has not heard of it).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio

from .conftest import Moto

MiB = 1024 * 1024

Delay = Callable[[str, str, Any], float]  # (method, operation, query) -> seconds to hold the answer


@asynccontextmanager
async def late_answers(moto: Moto, delay: Delay) -> AsyncIterator[tuple[str, list[tuple[str, bytes, bytes]]]]:
    """A proxy forwarding every call to moto, recording ``(operation, body, answer)``, answering late.

    Calls whose answer the client gave up on are recorded too (moto did the work).
    """
    from aiohttp import ClientSession, web

    calls: list[tuple[str, bytes, bytes]] = []
    async with ClientSession() as session:

        async def forward(request: web.Request) -> web.Response:
            body = await request.read()
            op = operation(request.path, request.headers.get("X-Amz-Target", ""))
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            async with session.request(request.method, moto.url + request.path_qs, data=body, headers=headers) as r:
                answer = await r.read()
                kept = {
                    k: v
                    for k, v in r.headers.items()
                    if k.lower() not in ("content-length", "content-type", "transfer-encoding", "content-encoding")
                }
                response = web.Response(status=r.status, body=answer, content_type=r.content_type, headers=kept)
            calls.append((op, body, answer))
            wait = delay(request.method, op, request.query)
            if wait == math.inf:
                await anyio.sleep_forever()
            await asyncio.sleep(wait)
            return response

        app = web.Application(client_max_size=64 * MiB)  # multipart parts go through
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            yield f"http://127.0.0.1:{port}", calls
        finally:
            await runner.cleanup()


def operation(path: str, target: str) -> str:
    """The API call a request makes: its X-Amz-Target operation (JSON APIs) or its path (REST APIs)."""
    return target.rpartition(".")[2] if target else path


def answers_held_back(moto: Moto, held: str) -> AbstractAsyncContextManager[tuple[str, list[tuple[str, bytes, bytes]]]]:
    """`late_answers` that never answers the ``held`` operation (see `operation`) and answers the rest at once."""
    return late_answers(moto, lambda method, op, query: math.inf if op == held else 0.0)
