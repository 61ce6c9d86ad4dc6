"""``aiohttp_client``: the HTTP tasks' shared client over aflow's aiohttp transport (extra http-fast)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import httpx
import pytest
from pytest_httpserver import HTTPServer

from aflow import Flow, signals
from aflow_tasks.http import HttpRequest, HttpStatusFail, aiohttp_client, aiohttp_transport, set_client_factory
from tests.net import free_port

pytest.importorskip("aiohttp")
from aflow_tasks._aiohttp_transport import AiohttpTransport


@pytest.fixture(scope="module")
def make_httpserver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


class Recording:
    """``aiohttp_client``, keeping every client it makes."""

    def __init__(self) -> None:
        self.clients: list[httpx.AsyncClient] = []

    def __call__(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        client = aiohttp_client(transport)
        self.clients.append(client)
        return client


@pytest.fixture
def fast() -> Iterator[Recording]:
    recording = Recording()
    previous = set_client_factory(recording)
    try:
        yield recording
    finally:
        set_client_factory(previous)


async def test_a_mapped_flow_shares_one_aiohttp_client_closed_at_the_end(httpserver: HTTPServer, fast: Recording):
    for i in range(5):
        httpserver.expect_request(f"/item/{i}").respond_with_json({"n": i})
    get = HttpRequest()
    with Flow("fast") as flow:
        bodies = get.map(url=[httpserver.url_for(f"/item/{i}") for i in range(5)])
    state = await flow.run()
    assert state.is_successful(), state.message
    assert state.result[bodies].result == [{"n": i} for i in range(5)]
    assert len(fast.clients) == 1
    (client,) = fast.clients
    assert isinstance(client._transport, AiohttpTransport)
    assert client.is_closed


async def test_post_json_text_and_redirects(httpserver: HTTPServer, fast: Recording):
    httpserver.expect_request("/echo", method="POST", json={"a": 1}).respond_with_data("got it")
    httpserver.expect_request("/old").respond_with_data("", status=302, headers={"Location": "/new"})
    httpserver.expect_request("/new").respond_with_json("moved")
    sent = HttpRequest(method="POST", url=httpserver.url_for("/echo"), json={"a": 1}, response_format="text")
    assert await sent.run() == "got it"
    assert await HttpRequest(url=httpserver.url_for("/old")).run() == "moved"


async def test_an_error_status_fails_with_status_and_body(httpserver: HTTPServer, fast: Recording):
    httpserver.expect_request("/down").respond_with_data("busy", status=503)
    with pytest.raises(HttpStatusFail, match="503 SERVICE UNAVAILABLE: busy"):
        await HttpRequest(url=httpserver.url_for("/down")).run()


async def test_connection_refused_fails_clearly(fast: Recording):
    url = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(signals.FAIL, match=rf"^GET {url}: could not connect \(.*\)$"):
        await HttpRequest(url=url).run()


async def test_a_read_timeout_fails_clearly(fast: Recording):
    writers: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(signals.FAIL, match=r"timed out after 0\.1s \(ReadTimeout\)$"):
            await HttpRequest(url=f"http://127.0.0.1:{port}/", request_timeout=0.1).run()
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_server_hanging_up_is_not_called_a_timeout(fast: Recording):
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(signals.FAIL, match=r"failed: RemoteProtocolError"):
            await HttpRequest(url=f"http://127.0.0.1:{port}/").run()
    finally:
        server.close()
        await server.wait_closed()


async def test_a_task_transport_still_wins(fast: Recording):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"mocked": str(request.url)})

    task = HttpRequest(url="http://example.invalid/x", transport=httpx.MockTransport(handler))
    assert await task.run() == {"mocked": "http://example.invalid/x"}
    assert isinstance(fast.clients[-1]._transport, httpx.MockTransport)


async def test_without_aiohttp_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    monkeypatch.delitem(sys.modules, "aflow_tasks._aiohttp_transport")
    with pytest.raises(ImportError, match=r"pip install aflow-engine\[http-fast\]"):
        aiohttp_client(None)


async def test_a_factory_of_ones_own_with_transport_options(httpserver: HTTPServer):
    httpserver.expect_request("/own").respond_with_json("own")
    made: list[httpx.AsyncClient] = []

    def factory(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=2)
        made.append(httpx.AsyncClient(transport=transport or aiohttp_transport(limits=limits)))
        return made[-1]

    previous = set_client_factory(factory)
    try:
        assert await HttpRequest(url=httpserver.url_for("/own")).run() == "own"
        refused = f"http://127.0.0.1:{free_port()}/x"
        with pytest.raises(signals.FAIL, match="could not connect"):
            await HttpRequest(url=refused).run()
    finally:
        set_client_factory(previous)
    assert len(made) == 2


async def test_aiohttp_client_takes_transport_options(httpserver: HTTPServer):
    httpserver.expect_request("/opts").respond_with_json("opts")
    limits = httpx.Limits(max_connections=3)
    async with aiohttp_client(limits=limits, verify=False) as client:
        assert (await client.get(httpserver.url_for("/opts"))).json() == "opts"
        transport = client._transport
        assert isinstance(transport, AiohttpTransport)
        assert transport._session is not None
        assert transport._session.connector.limit == 3  # type: ignore[union-attr]
