from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import aflow
from aflow import Flow, signals
from aflow.testing import FakeClock
from aflow_tasks.http import HttpStatusFail
from aflow_tasks.slack import SlackTask
from tests.net import free_port

HOOK_PATH = "/services/T0AFLOW/B0AFLOW/hookSecretPart123"
ENV_VAR = "AFLOW__CONTEXT__SECRETS__SLACK_WEBHOOK_URL"


@pytest.fixture(scope="module")
def make_httpserver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture(autouse=True)
def no_hook_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def expect_post(httpserver: HTTPServer, payload: object) -> None:
    httpserver.expect_request(
        HOOK_PATH, method="POST", json=payload, headers={"Content-Type": "application/json"}
    ).respond_with_data("ok")


def test_init_defaults_are_stored() -> None:
    t = SlackTask()
    assert (t.message, t.webhook_url, t.webhook_secret, t.transport) == (None, None, "SLACK_WEBHOOK_URL", None)


def test_init_stores_arguments_and_task_kwargs() -> None:
    t = SlackTask(message="hi", webhook_url="http://hook", webhook_secret="OTHER", max_retries=2, name="notify")
    assert (t.message, t.webhook_url, t.webhook_secret) == ("hi", "http://hook", "OTHER")
    assert (t.max_retries, t.name) == (2, "notify")


def test_missing_httpx_gives_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(ImportError, match=r"slack tasks need httpx: pip install aflow-engine\[http\]"):
        SlackTask(message="hi")


async def test_posts_the_message_as_text(httpserver: HTTPServer) -> None:
    expect_post(httpserver, {"text": "deploy done"})
    await SlackTask(message="deploy done", webhook_url=httpserver.url_for(HOOK_PATH)).run()
    httpserver.check_assertions()
    assert len(httpserver.log) == 1


async def test_call_message_overrides_init(httpserver: HTTPServer) -> None:
    expect_post(httpserver, {"text": "from the call"})
    t = SlackTask(message="from init", webhook_url=httpserver.url_for(HOOK_PATH))
    await t.run(message="from the call")
    httpserver.check_assertions()
    assert len(httpserver.log) == 1


async def test_a_dict_message_is_the_whole_payload(httpserver: HTTPServer) -> None:
    payload = {"text": "fallback", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]}
    expect_post(httpserver, payload)
    await SlackTask(webhook_url=httpserver.url_for(HOOK_PATH)).run(message=payload)
    httpserver.check_assertions()


async def test_missing_message_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"SlackTask needs a message.*message=\.\.\."):
        await SlackTask(webhook_url="http://127.0.0.1:1/x").run()


async def test_missing_webhook_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"SlackTask needs a webhook URL: pass webhook_url=.*'SLACK_WEBHOOK_URL'"):
        await SlackTask(message="hi").run()
    with pytest.raises(ValueError, match=r"pass webhook_url=.*\(a string or a lazy secret\)$"):
        await SlackTask(message="hi", webhook_secret=None).run()


async def test_webhook_from_the_named_secret_in_the_environment(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    expect_post(httpserver, {"text": "env"})
    monkeypatch.setenv(ENV_VAR, httpserver.url_for(HOOK_PATH))
    await SlackTask(message="env").run()
    httpserver.check_assertions()


async def test_webhook_from_a_lazy_secret(httpserver: HTTPServer) -> None:
    expect_post(httpserver, {"text": "lazy"})
    t = SlackTask(message="lazy", webhook_url=aflow.Secret("MY_HOOK"))
    with aflow.context.temporary(secrets={"MY_HOOK": httpserver.url_for(HOOK_PATH)}):
        await t.run()
    httpserver.check_assertions()


async def test_slack_errors_fail_without_showing_the_url(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("no_service", status=404)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HttpStatusFail) as info:
        await SlackTask(message="hi", webhook_url=httpserver.url_for(HOOK_PATH)).run()
    assert str(info.value) == "Slack webhook POST returned 404 NOT FOUND: no_service"
    assert info.value.status_code == 404
    ours = [r for r in caplog.records if r.name.startswith(("aflow", "httpx", "httpcore"))]
    assert any(r.name == "httpx" for r in ours)
    assert not [r for r in ours if "hookSecretPart123" in r.getMessage()]


async def test_unreachable_slack_fails_without_showing_the_url() -> None:
    port = free_port()
    with pytest.raises(signals.FAIL) as info:
        await SlackTask(message="hi", webhook_url=f"http://127.0.0.1:{port}{HOOK_PATH}").run()
    assert str(info.value).startswith("Slack webhook POST: could not connect")
    assert "hookSecretPart123" not in str(info.value)
    assert str(port) not in str(info.value)


async def test_in_a_flow_with_the_secret_in_the_run_context(httpserver: HTTPServer) -> None:
    expect_post(httpserver, {"text": "result: 42"})

    @aflow.task
    async def compute() -> str:
        return "result: 42"

    with Flow("notify") as flow:
        sent = SlackTask()(message=compute())
    state = await flow.run(context={"secrets": {"SLACK_WEBHOOK_URL": httpserver.url_for(HOOK_PATH)}})
    assert state.is_successful()
    assert state.result[sent].result is None
    httpserver.check_assertions()


async def test_rate_limits_are_retried_after_retry_after(httpserver: HTTPServer) -> None:
    answers = [Response("rate_limited", status=429, headers={"Retry-After": "30"}), Response("ok")]

    def handler(request: Request) -> Response:
        return answers.pop(0)

    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_handler(handler)
    clock = FakeClock()
    with Flow("notify") as flow:
        sent = SlackTask(message="hi", webhook_url=httpserver.url_for(HOOK_PATH), max_retries=1)()
    state = await flow.run(clock=clock)
    assert state.result[sent].is_successful()
    assert clock.sleeps == [30]
    assert len(httpserver.log) == 2


async def test_a_secret_given_to_the_call_is_resolved(httpserver: HTTPServer) -> None:
    expect_post(httpserver, {"text": "call"})
    with Flow("notify") as flow:
        sent = SlackTask(message="call")(webhook_url=aflow.Secret("HOOK"))
    state = await flow.run(context={"secrets": {"HOOK": httpserver.url_for(HOOK_PATH)}})
    assert state.result[sent].is_successful()
    httpserver.check_assertions()
