"""aflow's aiohttp transport under httpx's API (extra http-fast), against real servers on loopback."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from aflow import Flow, signals
from aflow_tasks.http import HttpRequest, aiohttp_client, http_client, set_client_factory
from tests.net import free_port

pytest.importorskip("aiohttp")
from aiohttp import web

from aflow_tasks._aiohttp_transport import AiohttpClient, AiohttpTransport

BIG = bytes(range(256)) * 16_384  # 4 MiB


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1; the base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_server(handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]):
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


def echo_app(connections: set[int] | None = None) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        if connections is not None:
            connections.add(id(request.transport))
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body.decode(),
            },
            status=201,
            headers={"X-Answer": "42"},
        )

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(BIG))})
        await response.prepare(request)
        for i in range(0, len(BIG), 256 * 1024):
            await response.write(BIG[i : i + 256 * 1024])
            await asyncio.sleep(0)
        return response

    async def old(request: web.Request) -> web.Response:
        raise web.HTTPFound("/echo")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "5")))
        return web.json_response("late")

    async def gzipped(request: web.Request) -> web.Response:
        response = web.Response(text="squeezed " * 1000)
        response.enable_compression(web.ContentCoding.gzip)
        return response

    app = web.Application()
    app.router.add_get("/gzip", gzipped)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/big", big)
    app.router.add_get("/old", old)
    app.router.add_get("/slow", slow)
    return app


async def test_headers_status_and_body_round_trip():
    async with serve(echo_app()) as base, aiohttp_client() as client:
        response = await client.get(f"{base}/echo?q=1%202", headers={"X-Custom": "yes"})
        assert response.status_code == 201
        assert response.reason_phrase == "Created"
        assert response.http_version == "HTTP/1.1"
        assert response.headers["x-answer"] == "42"
        assert response.request.url == f"{base}/echo?q=1%202"
        got = response.json()
        assert got["path"] == "/echo?q=1%202"
        assert got["headers"]["x-custom"] == "yes"
        assert got["headers"]["user-agent"].startswith("python-httpx/")
        assert "content-type" not in got["headers"]  # aiohttp adds none of its own
        assert response.elapsed.total_seconds() > 0
        assert response.is_closed
        squeezed = await client.get(f"{base}/gzip")
        assert squeezed.headers["content-encoding"] == "gzip"
        assert squeezed.text == "squeezed " * 1000  # decoded once, by httpx
        async with client.stream("GET", f"{base}/gzip") as streamed:
            assert await streamed.aread() == b"squeezed " * 1000


async def test_post_bytes_and_json_and_a_streamed_body():
    async def chunks() -> AsyncIterator[bytes]:
        yield b"part one, "
        yield b"part two"

    async with serve(echo_app()) as base, aiohttp_client() as client:
        posted = (await client.post(f"{base}/echo", content=b"raw bytes")).json()
        assert (posted["method"], posted["body"]) == ("POST", "raw bytes")
        as_json = (await client.post(f"{base}/echo", json={"a": [1, 2]})).json()
        assert as_json["body"] == '{"a":[1,2]}'
        assert as_json["headers"]["content-type"] == "application/json"
        streamed = (await client.put(f"{base}/echo", content=chunks())).json()
        assert streamed["body"] == "part one, part two"


async def test_a_large_body_streams_in_chunks():
    async with serve(echo_app()) as base, aiohttp_client() as client:
        async with client.stream("GET", f"{base}/big") as response:
            assert response.status_code == 200
            sizes = [len(chunk) async for chunk in response.aiter_bytes()]
        assert sum(sizes) == len(BIG)
        assert len(sizes) > 4
        assert max(sizes) < len(BIG)
        assert (await client.get(f"{base}/big")).content == BIG


async def test_redirects_are_followed_with_their_history():
    async with serve(echo_app()) as base, aiohttp_client() as client:
        response = await client.get(f"{base}/old")
        assert response.json()["path"] == "/echo"
        assert [r.status_code for r in response.history] == [302]
        unfollowed = await client.get(f"{base}/old", follow_redirects=False)
        assert unfollowed.status_code == 302
        assert unfollowed.next_request is not None


async def test_auth_and_cookies_take_httpx_own_path():
    async def login(request: web.Request) -> web.Response:
        response = web.json_response(request.headers.get("Authorization"))
        response.set_cookie("session", "abc")
        return response

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response(request.cookies.get("session"))

    app = web.Application()
    app.router.add_get("/login", login)
    app.router.add_get("/whoami", whoami)
    async with serve(app) as base, aiohttp_client() as client:
        assert (await client.get(f"{base}/login", auth=("u", "p"))).json().startswith("Basic ")
        assert client.cookies["session"] == "abc"
        assert (await client.get(f"{base}/whoami")).json() == "abc"


async def test_connections_are_reused_up_to_the_concurrency():
    connections: set[int] = set()
    get = HttpRequest()
    async with serve(echo_app(connections)) as base:
        with Flow("reuse") as flow:
            get.map(url=[f"{base}/echo?i={i}" for i in range(60)])
        previous = set_client_factory(aiohttp_client)
        try:
            state = await flow.run(max_concurrency=4)
        finally:
            set_client_factory(previous)
    assert state.is_successful(), state.message
    assert 1 <= len(connections) <= 4


async def test_refused_connection_is_a_connect_error():
    async with aiohttp_client() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{free_port()}/")


async def test_a_server_hanging_up_is_a_remote_protocol_error():
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async with raw_server(hang_up) as base, aiohttp_client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(base)


async def test_a_slow_server_times_out():
    async with serve(echo_app()) as base, aiohttp_client() as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{base}/slow?s=5", timeout=0.2)
        previous = set_client_factory(aiohttp_client)
        try:
            with pytest.raises(signals.FAIL, match=r"timed out after 0\.2s \(ReadTimeout\)$"):
                await HttpRequest(url=f"{base}/slow?s=5", request_timeout=0.2).run()
        finally:
            set_client_factory(previous)


async def test_a_body_cut_short_is_a_remote_protocol_error():
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()
        writer.close()

    async with raw_server(short) as base, aiohttp_client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(base)


async def test_cancelling_a_request_releases_its_connection():
    closed = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nstart")
        await writer.drain()
        await reader.read()  # until the client closes the connection
        closed.set()
        writer.close()

    for streamed in (False, True):
        closed.clear()
        async with raw_server(stall) as base, aiohttp_client() as client:

            async def fetch(streamed: bool = streamed) -> None:
                if streamed:
                    async with client.stream("GET", base) as response:
                        await response.aread()
                else:
                    await client.get(base)

            running = asyncio.ensure_future(fetch())
            await asyncio.sleep(0.2)
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
            await asyncio.wait_for(closed.wait(), 5)
            transport = client._transport
            assert isinstance(transport, AiohttpTransport)
            connector = transport._session.connector  # type: ignore[union-attr]
            assert connector is not None
            assert not connector._acquired


async def test_the_session_is_closed_at_the_end_of_the_flow_run():
    made: list[httpx.AsyncClient] = []

    def factory(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        made.append(aiohttp_client(transport))
        return made[-1]

    get = HttpRequest()
    async with serve(echo_app()) as base:
        with Flow("closed") as flow:
            get.map(url=[f"{base}/echo?i={i}" for i in range(5)])
        previous = set_client_factory(factory)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                state = await flow.run()
                gc.collect()
        finally:
            set_client_factory(previous)
    assert state.is_successful(), state.message
    (client,) = made
    assert isinstance(client, AiohttpClient)
    assert client.is_closed
    transport = client._transport
    assert isinstance(transport, AiohttpTransport)
    assert transport._session is None
    assert not [w for w in caught if "Unclosed" in str(w.message)]


async def test_outside_a_flow_http_client_closes_its_session():
    previous = set_client_factory(aiohttp_client)
    try:
        async with serve(echo_app()) as base, http_client() as client:
            assert (await client.get(f"{base}/echo")).status_code == 201
    finally:
        set_client_factory(previous)
    assert client.is_closed
    transport = client._transport
    assert isinstance(transport, AiohttpTransport)
    assert transport._session is None


async def test_a_closed_transport_reopens_and_a_hand_made_request_gets_the_client_timeout():
    transport = AiohttpTransport()
    async with serve(echo_app()) as base:
        async with AiohttpClient(transport=transport, timeout=0.2) as client:
            assert (await client.get(f"{base}/echo")).status_code == 201
        assert transport._session is None
        async with AiohttpClient(transport=transport, timeout=0.2) as client:  # a task's transport, next run
            assert (await client.get(f"{base}/echo")).status_code == 201
            with pytest.raises(httpx.ReadTimeout):
                await client.send(httpx.Request("GET", f"{base}/slow?s=5"))
        assert transport._session is None


async def test_transport_options():
    limits = httpx.Limits(max_connections=1, keepalive_expiry=1.0)
    connections: set[int] = set()
    async with (
        serve(echo_app(connections)) as base,
        AiohttpClient(transport=AiohttpTransport(limits=limits, verify=False)) as client,
    ):
        await asyncio.gather(*(client.get(f"{base}/echo") for _ in range(5)))
        session = client._transport._session  # type: ignore[attr-defined]
        assert session.connector.limit == 1
    assert len(connections) == 1
