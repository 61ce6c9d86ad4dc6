from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import aflow
from aflow import Flow, signals
from aflow.testing import FakeClock
from aflow_tasks.http import (
    DEFAULT_TIMEOUT,
    HttpRequest,
    HttpStatusFail,
    http_client,
    send_request,
    set_client_factory,
)
from tests.net import free_port

SECRET = "s3cr3t-t0ken-value"


@pytest.fixture(scope="module")
def make_httpserver() -> Iterator[HTTPServer]:
    # threaded and on 127.0.0.1 (see TEST_INFRA.md): a slow handler blocks no other request
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


class Secret:
    """A lazy secret, as aflow resolves them: an object with an async resolve()."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.resolved = 0

    async def resolve(self) -> str:
        self.resolved += 1
        return self.value


class RecordingFactory:
    """A client factory that keeps every client it makes."""

    def __init__(self) -> None:
        self.clients: list[httpx.AsyncClient] = []

    def __call__(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=transport)
        self.clients.append(client)
        return client


@pytest.fixture
def factory() -> Iterator[RecordingFactory]:
    recorder = RecordingFactory()
    previous = set_client_factory(recorder)
    try:
        yield recorder
    finally:
        set_client_factory(previous)


def sequence(*responses: Response):
    """A handler answering with each response in turn (the last one repeats)."""
    queue = list(responses)

    def handler(request: Request) -> Response:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


class HangingServer:
    """A TCP server on loopback that accepts connections and never answers."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.handlers: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.url = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        self.connected.set()
        try:
            await reader.read()  # until the client hangs up
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def __aenter__(self) -> HangingServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/slow"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        if self.handlers:  # the client hung up: each handler finishes at once
            await asyncio.wait_for(asyncio.gather(*self.handlers, return_exceptions=True), 10)


class CannedServer(HangingServer):
    """A TCP server on loopback answering each connection with the next canned HTTP response.

    Unlike werkzeug (which always adds a Date header of its own), it sends exactly these bytes.
    """

    def __init__(self, *responses: str) -> None:
        super().__init__()
        self.responses = list(responses)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.responses.pop(0).encode())
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()


@pytest.fixture
async def hanging() -> AsyncIterator[HangingServer]:
    async with HangingServer() as server:
        yield server


# -- configuration ------------------------------------------------------------------------------


def test_init_defaults_are_stored() -> None:
    t = HttpRequest()
    assert (t.method, t.url, t.params, t.json, t.data, t.headers, t.auth) == ("GET", None, None, None, None, None, None)
    assert t.request_timeout == DEFAULT_TIMEOUT == 30.0
    assert t.raise_for_status is True
    assert t.response_format == "json"
    assert t.transport is None
    assert t.timeout is None  # the engine's timeout is left alone


def test_init_stores_arguments_and_task_kwargs() -> None:
    t = HttpRequest(
        method="POST",
        url="http://x/y",
        params={"a": 1},
        json={"b": 2},
        headers={"H": "v"},
        auth=("u", "p"),
        request_timeout=5,
        raise_for_status=False,
        response_format="text",
        max_retries=3,
        name="call-api",
        timeout=60,
    )
    assert (t.method, t.url, t.params, t.json, t.headers, t.auth) == (
        "POST",
        "http://x/y",
        {"a": 1},
        {"b": 2},
        {"H": "v"},
        ("u", "p"),
    )
    assert (t.request_timeout, t.raise_for_status, t.response_format) == (5, False, "text")
    assert (t.max_retries, t.name, t.timeout) == (3, "call-api", 60.0)


def test_unknown_response_format_is_refused() -> None:
    with pytest.raises(ValueError, match="response_format must be one of"):
        HttpRequest(response_format="xml")


def test_missing_httpx_gives_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(ImportError, match=r"http tasks need httpx: pip install aflow-engine\[http\]"):
        HttpRequest(url="http://x")


async def test_missing_url_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"HttpRequest needs a url.*HttpRequest\(url=\.\.\.\).*url=\.\.\."):
        await HttpRequest().run()


async def test_unknown_response_format_at_run_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_json({})
    with pytest.raises(ValueError, match="response_format"):
        await HttpRequest(url=httpserver.url_for("/x")).run(response_format="yaml")


# -- requests and responses ---------------------------------------------------------------------


async def test_get_json_with_params_and_headers(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/items", method="GET", query_string={"page": "2"}, headers={"X-Trace": "abc"}
    ).respond_with_json({"items": [1, 2]})
    t = HttpRequest(url=httpserver.url_for("/items"), params={"page": 2}, headers={"X-Trace": "abc"})
    assert await t.run() == {"items": [1, 2]}
    httpserver.check_assertions()


async def test_call_arguments_override_init(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/new", method="PUT", json={"v": 2}).respond_with_json({"ok": True})
    t = HttpRequest(method="GET", url=httpserver.url_for("/old"), json={"v": 1})
    assert await t.run(method="put", url=httpserver.url_for("/new"), json={"v": 2}) == {"ok": True}
    assert [entry[0].path for entry in httpserver.log] == ["/new"]
    assert t.url == httpserver.url_for("/old")  # the template is unchanged


async def test_form_data_and_raw_data(httpserver: HTTPServer) -> None:
    seen: list[tuple[str, bytes]] = []

    def handler(request: Request) -> Response:
        seen.append((request.content_type or "", request.get_data()))
        return Response("", status=204)

    httpserver.expect_request("/in", method="POST").respond_with_handler(handler)
    t = HttpRequest(method="POST", url=httpserver.url_for("/in"))
    assert await t.run(data={"a": "1", "b": "x y"}) is None  # an empty JSON body gives None
    assert await t.run(data="raw text", headers={"Content-Type": "text/plain"}) is None
    assert await t.run(data=b"\x00\x01") is None
    assert seen[0] == ("application/x-www-form-urlencoded", b"a=1&b=x+y")
    assert seen[1] == ("text/plain", b"raw text")
    assert seen[2][1] == b"\x00\x01"


@pytest.mark.parametrize(
    ("fmt", "content_type", "body", "expected"),
    [
        ("text", "application/json", b'{"a": 1}', '{"a": 1}'),
        ("bytes", "application/json", b'{"a": 1}', b'{"a": 1}'),
        ("auto", "application/json; charset=utf-8", b'{"a": 1}', {"a": 1}),
        ("auto", "application/problem+json", b'{"a": 1}', {"a": 1}),
        ("auto", "text/csv", b"a,b\n1,2\n", "a,b\n1,2\n"),
        ("auto", "application/xml", b"<a/>", "<a/>"),
        ("auto", "application/octet-stream", b"\x89PNG", b"\x89PNG"),
        ("json", "text/plain", b"[1, 2]", [1, 2]),
    ],
)
async def test_response_formats(
    httpserver: HTTPServer, fmt: str, content_type: str, body: bytes, expected: object
) -> None:
    httpserver.expect_request("/r").respond_with_data(body, content_type=content_type)
    assert await HttpRequest(url=httpserver.url_for("/r"), response_format=fmt).run() == expected


async def test_a_body_that_is_not_json_fails_with_a_hint(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/html").respond_with_data("<html>hi</html>", content_type="text/html")
    with pytest.raises(signals.FAIL) as info:
        await HttpRequest(url=httpserver.url_for("/html")).run()
    assert "expected a JSON body but got text/html" in str(info.value)
    assert "<html>hi</html>" in str(info.value)
    assert 'response_format="text"' in str(info.value)


async def test_basic_auth_from_a_tuple_with_a_lazy_password(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/me", headers={"Authorization": "Basic dXNlcjpwdw=="}).respond_with_json({"u": 1})
    password = Secret("pw")
    assert await HttpRequest(url=httpserver.url_for("/me"), auth=("user", password)).run() == {"u": 1}
    assert password.resolved == 1
    httpserver.check_assertions()


async def test_bearer_token_from_a_lazy_secret(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/me", headers={"Authorization": f"Bearer {SECRET}"}).respond_with_json({"u": 2})
    token = Secret(SECRET)
    assert await HttpRequest(url=httpserver.url_for("/me"), auth=token).run() == {"u": 2}
    assert token.resolved == 1  # resolved by defaults_from_attrs at run time
    httpserver.check_assertions()


async def test_lazy_header_values_and_lazy_url(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/k", headers={"X-Api-Key": SECRET}).respond_with_json([])
    t = HttpRequest(url=Secret(httpserver.url_for("/k")), headers={"X-Api-Key": Secret(SECRET)})
    assert await t.run() == []
    httpserver.check_assertions()


async def test_a_secret_given_to_the_call_is_resolved(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/c", headers={"Authorization": f"Bearer {SECRET}"}).respond_with_json({"u": 4})
    with Flow("secret") as flow:
        r = HttpRequest()(url=aflow.Secret("API_URL"), auth=aflow.Secret("API_TOKEN"))
    state = await flow.run(context={"secrets": {"API_URL": httpserver.url_for("/c"), "API_TOKEN": SECRET}})
    assert state.result[r].result == {"u": 4}


async def test_aflow_secrets_in_a_flow(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/me", headers={"Authorization": f"Bearer {SECRET}"}).respond_with_json({"u": 3})
    with Flow("secret") as flow:
        r = HttpRequest(url=aflow.Secret("API_URL"), auth=aflow.Secret("API_TOKEN"))()
    state = await flow.run(context={"secrets": {"API_URL": httpserver.url_for("/me"), "API_TOKEN": SECRET}})
    assert state.result[r].result == {"u": 3}
    httpserver.check_assertions()


async def test_raise_for_status_false_returns_the_error_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/gone").respond_with_json({"error": "gone"}, status=404)
    httpserver.expect_request("/down").respond_with_json({"error": "down"}, status=503)
    t = HttpRequest(raise_for_status=False)
    assert await t.run(url=httpserver.url_for("/gone")) == {"error": "gone"}
    assert await t.run(url=httpserver.url_for("/down")) == {"error": "down"}


async def test_mock_transport_injection() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": 9})

    t = HttpRequest(method="POST", url="https://api.example.test/things", transport=httpx.MockTransport(handler))
    assert await t.run(json={"n": 1}) == {"id": 9}
    assert [(r.method, str(r.url), json.loads(r.content)) for r in seen] == [
        ("POST", "https://api.example.test/things", {"n": 1})
    ]


# -- failures ------------------------------------------------------------------------------------


async def test_a_4xx_fails_with_status_and_body_excerpt(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/missing", query_string="key=abc").respond_with_data(
        "no such\n   thing here", status=404
    )
    with pytest.raises(HttpStatusFail) as info:
        await HttpRequest(url=httpserver.url_for("/missing"), params={"key": "abc"}).run()
    message = str(info.value)
    assert info.value.status_code == 404
    assert isinstance(info.value, signals.FAIL)
    assert f"GET {httpserver.url_for('/missing')} returned 404 NOT FOUND: no such thing here" == message
    assert "key=abc" not in message  # the query string may hold keys: it stays out


async def test_a_json_error_message_is_used_as_the_excerpt(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v").respond_with_json({"message": "Validation Failed", "other": "x" * 50}, status=422)
    with pytest.raises(HttpStatusFail, match=r"returned 422 UNPROCESSABLE ENTITY: Validation Failed$"):
        await HttpRequest(url=httpserver.url_for("/v")).run()


async def test_a_long_body_is_cut(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data("y" * 5000, status=400)
    with pytest.raises(HttpStatusFail) as info:
        await HttpRequest(url=httpserver.url_for("/big")).run()
    assert str(info.value).endswith("y" * 300 + "…")


async def test_a_5xx_outside_a_flow_run_fails_instead_of_retrying(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/down").respond_with_data("busy", status=503, headers={"Retry-After": "7"})
    with pytest.raises(HttpStatusFail, match="503 SERVICE UNAVAILABLE: busy"):
        await HttpRequest(url=httpserver.url_for("/down"), max_retries=3).run()


async def test_connection_refused_fails_clearly() -> None:
    url = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(signals.FAIL, match=rf"^GET {url}: could not connect \(.*\)$"):
        await HttpRequest(url=url).run()


async def test_read_timeout_fails_clearly(hanging: HangingServer) -> None:
    with pytest.raises(signals.FAIL, match=rf"^GET {hanging.url} timed out after 0.05s \(ReadTimeout\)$"):
        await HttpRequest(url=hanging.url, request_timeout=0.05).run()


async def test_cancellation_is_not_swallowed(hanging: HangingServer) -> None:
    runner = asyncio.create_task(HttpRequest(url=hanging.url).run())
    await hanging.connected.wait()
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_secrets_stay_out_of_messages_and_logs(httpserver: HTTPServer, caplog: pytest.LogCaptureFixture) -> None:
    # a server that echoes the credentials back in its error body
    httpserver.expect_request("/hook/T0/" + SECRET).respond_with_data(f"bad token {SECRET} for /hook/T0/{SECRET}", 401)
    httpserver.expect_request("/basic").respond_with_data("you sent cGFzc3dvcmQ= and " + SECRET, 403)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HttpStatusFail) as info:
        await HttpRequest(url=Secret(httpserver.url_for("/hook/T0/" + SECRET)), auth=SECRET).run()
    assert SECRET not in str(info.value)
    assert str(info.value).startswith("GET http://127.0.0.1/… returned 401")  # a lazy URL: scheme and host only
    assert str(info.value).endswith("bad token **** for /****")  # the URL's path is hidden too
    with pytest.raises(HttpStatusFail) as info:
        await HttpRequest(url=httpserver.url_for("/basic"), auth=("u", Secret(SECRET))).run()
    assert SECRET not in str(info.value)
    url = f"http://127.0.0.1:{free_port()}/{SECRET}"
    with pytest.raises(signals.FAIL) as refused:
        await HttpRequest(url=Secret(url), headers={"X-Key": Secret(SECRET)}).run()
    assert "could not connect" in str(refused.value)
    assert SECRET not in str(refused.value)
    ours = [r for r in caplog.records if r.name.startswith(("aflow", "httpx", "httpcore"))]
    assert any(r.name == "httpx" for r in ours)  # httpx logged the requests (with their URLs)...
    assert not [r for r in ours if SECRET in r.getMessage()]  # ...but without the secret


async def test_send_request_outside_a_flow_uses_a_client_of_its_own(
    httpserver: HTTPServer, factory: RecordingFactory
) -> None:
    httpserver.expect_request("/a").respond_with_json(1)
    t = HttpRequest(url=httpserver.url_for("/a"))
    assert await t.run() == 1
    assert await t.run() == 1
    response = await send_request(t, "get", httpserver.url_for("/a"))
    assert response.json() == 1
    assert len(factory.clients) == 3
    assert all(c.is_closed for c in factory.clients)


# -- in a flow ----------------------------------------------------------------------------------


async def test_in_a_flow_with_an_upstream_url(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/user/7").respond_with_json({"name": "ada"})

    @aflow.task
    async def make_url(n: int) -> str:
        return httpserver.url_for(f"/user/{n}")

    with Flow("http") as flow:
        user = HttpRequest()(url=make_url(7))
    state = await flow.run()
    assert state.is_successful()
    assert state.result[user].result == {"name": "ada"}


async def test_one_client_per_flow_run_closed_at_the_end(httpserver: HTTPServer, factory: RecordingFactory) -> None:
    calls: list[str] = []

    def handler(request: Request) -> Response:
        calls.append(request.path)
        return Response(json.dumps(len(calls)), content_type="application/json")

    httpserver.expect_request("/n").respond_with_handler(handler)
    with Flow("shared") as flow:
        first = HttpRequest(url=httpserver.url_for("/n"))()
        second = HttpRequest(url=httpserver.url_for("/n"), response_format="text")(upstream_tasks=[first])
        third = HttpRequest(url=httpserver.url_for("/n"))(upstream_tasks=[second])
    state = await flow.run()
    assert state.is_successful()
    assert [state.result[t].result for t in (first, second, third)] == [1, "2", 3]
    assert len(factory.clients) == 1  # one client for the whole run...
    assert factory.clients[0].is_closed  # ...closed when the run ended

    await flow.run()
    assert len(factory.clients) == 2  # a new run, a new client


async def test_the_client_is_closed_when_the_flow_fails(httpserver: HTTPServer, factory: RecordingFactory) -> None:
    httpserver.expect_request("/ok").respond_with_json(1)
    httpserver.expect_request("/bad").respond_with_json({"message": "nope"}, status=400)
    with Flow("fails") as flow:
        ok = HttpRequest(url=httpserver.url_for("/ok"))()
        bad = HttpRequest(url=httpserver.url_for("/bad"))(upstream_tasks=[ok])
    state = await flow.run()
    assert state.is_failed()
    assert state.result[bad].message.endswith("returned 400 BAD REQUEST: nope")
    assert isinstance(state.result[bad].result, HttpStatusFail)
    assert len(factory.clients) == 1
    assert factory.clients[0].is_closed


async def test_different_transports_get_different_clients(factory: RecordingFactory) -> None:
    def answer(n: int) -> httpx.MockTransport:
        return httpx.MockTransport(lambda request: httpx.Response(200, json=n))

    a, b = answer(1), answer(2)

    @aflow.task
    async def both() -> list[int]:
        async with http_client(a) as c1, http_client(b) as c2, http_client(a) as c3:
            assert c1 is c3
            assert c1 is not c2
            return [(await c.get("http://t/")).json() for c in (c1, c2)]

    with Flow("transports") as flow:
        r = both()
    state = await flow.run()
    assert state.result[r].result == [1, 2]
    assert len(factory.clients) == 2
    assert all(c.is_closed for c in factory.clients)


async def test_retry_after_seconds_is_honoured(httpserver: HTTPServer) -> None:
    busy = Response("busy", status=503, headers={"Retry-After": "7"})
    httpserver.expect_request("/flaky").respond_with_handler(
        sequence(busy, busy, Response('{"ok": true}', content_type="application/json"))
    )
    clock = FakeClock()
    with Flow("retry") as flow:
        r = HttpRequest(url=httpserver.url_for("/flaky"), max_retries=2, retry_delay=1)()
    state = await flow.run(clock=clock)
    assert state.is_successful()
    assert state.result[r].result == {"ok": True}
    assert clock.sleeps == [7, 7]
    assert len(httpserver.log) == 3


async def test_retries_exhausted_fail_with_status_and_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/down").respond_with_data("upstream down", status=502, headers={"Retry-After": "7"})
    clock = FakeClock()
    with Flow("retry") as flow:
        r = HttpRequest(url=httpserver.url_for("/down"), max_retries=1)()
    state = await flow.run(clock=clock)
    final = state.result[r]
    assert final.is_failed()
    assert clock.sleeps == [7]
    assert "returned 502 BAD GATEWAY: upstream down" in final.message
    assert "no retries left after 2 attempts" in final.message
    assert final.result.status_code == 502
    assert len(httpserver.log) == 2


async def test_429_without_retry_after_uses_the_task_retry_delay(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/rl").respond_with_handler(
        sequence(Response("slow down", status=429), Response("[]", content_type="application/json"))
    )
    clock = FakeClock()
    with Flow("retry") as flow:
        r = HttpRequest(url=httpserver.url_for("/rl"), max_retries=3, retry_delay=3)()
    state = await flow.run(clock=clock)
    assert state.result[r].result == []
    assert clock.sleeps == [3]


async def test_retry_after_http_date_is_measured_from_the_server_date() -> None:
    server_now = datetime(2030, 5, 1, 12, 0, 0, tzinfo=UTC)
    date = format_datetime(server_now, usegmt=True)
    retry_at = format_datetime(server_now + timedelta(seconds=120), usegmt=True)
    async with CannedServer(
        f"HTTP/1.1 503 Service Unavailable\r\nDate: {date}\r\nRetry-After: {retry_at}\r\n"
        "Content-Length: 4\r\nConnection: close\r\n\r\nbusy",
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1\r\nConnection: close\r\n\r\n1",
    ) as server:
        clock = FakeClock()
        with Flow("retry") as flow:
            r = HttpRequest(url=server.url, max_retries=1)()
        state = await flow.run(clock=clock)
    assert state.result[r].result == 1
    assert clock.sleeps == [120]


async def test_retry_after_is_capped_by_max_retry_delay(httpserver: HTTPServer) -> None:
    busy = Response("busy", status=503, headers={"Retry-After": "3600"})
    httpserver.expect_request("/c").respond_with_handler(sequence(busy, Response("1", content_type="application/json")))
    clock = FakeClock()
    with Flow("retry") as flow:
        r = HttpRequest(url=httpserver.url_for("/c"), max_retries=1, max_retry_delay=5)()
    state = await flow.run(clock=clock)
    assert state.result[r].result == 1
    assert clock.sleeps == [5]


async def test_transport_errors_are_retried_when_max_retries_is_set() -> None:
    clock = FakeClock()
    url = f"http://127.0.0.1:{free_port()}/x"
    with Flow("refused") as flow:
        r = HttpRequest(url=url, max_retries=2, retry_delay=4)()
    state = await flow.run(clock=clock)
    assert state.result[r].is_failed()
    assert "could not connect" in state.result[r].message
    assert clock.sleeps == [4, 4]


async def test_a_transport_attribute_serves_several_flow_runs(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/t").respond_with_json("ok")
    transport = httpx.AsyncHTTPTransport()  # closed with each run's client, reopened by the next
    with Flow("reuse") as flow:
        r = HttpRequest(url=httpserver.url_for("/t"), transport=transport)()
    for _ in range(2):
        state = await flow.run()
        assert state.result[r].result == "ok"
    assert len(httpserver.log) == 2
