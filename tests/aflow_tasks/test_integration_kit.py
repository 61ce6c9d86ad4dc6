"""The task library builds on aflow's public surface only (`aflow.integration` and the other public modules)."""

from __future__ import annotations

import ast
from pathlib import Path

import aflow_tasks
from aflow import Flow, Secret, context, task
from aflow.secrets import REDACTED, redact
from aflow.testing import FakeClock
from tests.net import free_port


def is_private_aflow_name(dotted: str) -> bool:
    package, *rest = dotted.split(".")
    return package == "aflow" and any(part.startswith("_") for part in rest)


def private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found += [f"{path.name}:{node.lineno} {m}" for m in modules if is_private_aflow_name(m)]
    return found


def test_no_family_imports_a_private_aflow_name() -> None:
    root = Path(aflow_tasks.__file__).parent
    assert [hit for path in sorted(root.rglob("*.py")) for hit in private_imports(path)] == []


def test_the_check_sees_a_private_import(tmp_path: Path) -> None:
    source = tmp_path / "family.py"
    source.write_text("from aflow._defaults import is_lazy\nimport aflow._shielded\nfrom aflow import _task\n")
    assert private_imports(source) == [
        "family.py:1 aflow._defaults",
        "family.py:1 aflow._defaults.is_lazy",
        "family.py:2 aflow._shielded",
        "family.py:3 aflow._task",
    ]


# -- the families on the kit: their public client seams and the transient-error policy -------------


async def test_http_clients_override_injects_a_transport_for_the_block_only() -> None:
    import httpx

    from aflow_tasks.http import HttpRequest, clients

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"from": "mock"})

    def mock_client(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(answer))

    url = f"http://127.0.0.1:{free_port()}/item"  # nothing listens there
    with Flow("seam") as flow:
        r = HttpRequest(url=url)()
    with clients.override(mock_client):
        state = await flow.run()
    assert state.result[r].result == {"from": "mock"}
    assert seen == [url]
    state = await flow.run()  # the override ended: the real client finds nothing listening
    assert state.result[r].is_failed()
    assert "could not connect" in str(state.result[r].message)


async def test_slack_goes_through_the_http_clients_seam() -> None:
    import httpx

    from aflow_tasks.http import clients
    from aflow_tasks.slack import SlackTask

    bodies: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return (
            httpx.Response(503, text="try later", headers={"Retry-After": "4"})
            if len(bodies) == 1
            else (httpx.Response(200, text="ok"))
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        with Flow("slack") as flow:
            SlackTask(message="hi", webhook_url="https://hooks.slack.invalid/T/B/x", max_retries=1)()
        clock = FakeClock()
        with clients.use(client):
            state = await flow.run(clock=clock)
    assert state.is_successful()
    assert clock.sleeps == [4]
    assert bodies == [b'{"text":"hi"}'] * 2


async def test_kubernetes_api_errors_retry_a_5xx_and_keep_kubernetes_fail() -> None:
    from kubernetes_asyncio.client.exceptions import ApiException

    from aflow_tasks.kubernetes import KubernetesFail
    from aflow_tasks.kubernetes._client import api_errors

    calls: list[int] = []

    @task(max_retries=1)
    def read_pod() -> None:
        calls.append(1)
        with api_errors("reading Pod 'p' in namespace 'ns'"):
            exc = ApiException(status=503, reason="Service Unavailable")
            exc.headers = {"Retry-After": "9"}  # type: ignore[assignment]
            exc.body = b'{"kind": "Status", "reason": "ServiceUnavailable", "message": "etcd is busy"}'
            raise exc

    with Flow("k8s") as flow:
        t = read_pod()
    clock = FakeClock()
    state = await flow.run(clock=clock)
    final = state.result[t]
    assert clock.sleeps == [9]
    assert len(calls) == 2
    assert isinstance(final.result, KubernetesFail)
    assert (final.result.status, final.result.reason) == (503, "ServiceUnavailable")
    assert final.message == (
        "Kubernetes API error while reading Pod 'p' in namespace 'ns': HTTP 503 Service Unavailable, "
        "reason ServiceUnavailable: etcd is busy (no retries left after 2 attempts)"
    )


async def test_aws_throttling_retries_through_the_kit() -> None:
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    from aflow_tasks.aws._client import aws_errors

    @task(max_retries=2, retry_delay=3)
    async def put() -> str:
        async with aws_errors(put, "S3 upload of s3://b/k"):
            if context.get("task_run_count", 0) < 3:
                error = {"Error": {"Code": "SlowDown", "Message": "reduce your rate"}}
                raise ClientError({**error, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject")
        return "put"

    with Flow("aws") as flow:
        t = put()
    clock = FakeClock()
    state = await flow.run(clock=clock)
    assert state.result[t].result == "put"
    assert clock.sleeps == [3, 3]


async def test_shell_env_takes_lazy_secrets() -> None:
    from aflow_tasks.shell import ShellTask

    with Flow("shell") as flow:
        t = ShellTask(command='echo "token: $TOKEN"', env={"TOKEN": Secret("SHELL_TOKEN")})()
    state = await flow.run(context={"secrets": {"SHELL_TOKEN": "sh3ll-t0ken-value"}})
    assert state.result[t].result == "token: sh3ll-t0ken-value"
    assert redact("sh3ll-t0ken-value") == REDACTED
