"""The examples run as documented, and the multi-family pipeline works against a local server."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import anyio
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aflow.testing import FakeClock

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / name)], capture_output=True, text=True, timeout=60, check=False
    )


def test_demo_prints_its_result_and_final_state() -> None:
    done = run_example("demo.py")
    assert done.returncode == 0, done.stderr
    assert "result: {'total_words': 18" in done.stdout
    assert "final state: <Success" in done.stdout


def test_pipeline_runs_against_its_stand_in_api() -> None:
    done = run_example("pipeline.py")
    assert done.returncode == 0, done.stderr
    assert "webhook received: [{'text': '5 orders, 5 files written, total 150'}]" in done.stdout


def load_pipeline() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pipeline_example", EXAMPLES / "pipeline.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_pipeline_retries_the_api_writes_files_and_notifies(httpserver: HTTPServer, tmp_path: Path) -> None:
    pipeline = load_pipeline()
    orders = [{"id": 7, "amount": 3}, {"id": 8, "amount": 4}]
    calls = {"orders": 0}
    hooks: list[object] = []

    def orders_handler(request: Request) -> Response:
        calls["orders"] += 1
        if calls["orders"] == 1:  # a flaky API: the first answer is a 503
            return Response("busy", status=503, headers={"Retry-After": "2"})
        return Response(json.dumps(orders), content_type="application/json")

    def hook_handler(request: Request) -> Response:
        hooks.append(request.get_json())
        return Response("ok")

    httpserver.expect_request("/orders").respond_with_handler(orders_handler)
    httpserver.expect_request("/hook", method="POST").respond_with_handler(hook_handler)

    clock = FakeClock()
    state = await pipeline.flow.run(
        api_url=httpserver.url_for("/orders"),
        folder=str(tmp_path),
        context={"secrets": {"SLACK_WEBHOOK_URL": httpserver.url_for("/hook")}},
        clock=clock,
    )

    assert state.is_successful(), state.result
    assert calls["orders"] == 2
    assert clock.sleeps == [2.0]  # the Retry-After delay, on the fake clock
    written = anyio.Path(tmp_path)
    assert sorted([p.name async for p in written.iterdir()]) == ["order-7.json", "order-8.json"]
    assert json.loads(await (written / "order-8.json").read_text()) == {"amount": 4, "id": 8}
    assert hooks == [{"text": "2 orders, 2 files written, total 7"}]


def test_s3_reports_runs_against_a_local_s3_stand_in(tmp_path: Path) -> None:
    empty = tmp_path / "no-aws-config"  # never the real ~/.aws
    env = {**os.environ, "AWS_CONFIG_FILE": str(empty), "AWS_SHARED_CREDENTIALS_FILE": str(empty)}
    done = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / "s3_reports.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "listed: ['reports/day-01.txt', 'reports/day-02.txt', 'reports/day-03.txt']" in done.stdout
    assert "read back: ['day 1: 7 orders', 'day 2: 14 orders', 'day 3: 21 orders']" in done.stdout


def test_kubernetes_jobs_runs_against_the_fake_api_server(tmp_path: Path) -> None:
    from tests.aflow_tasks.kubernetes.conftest import kubeconfig
    from tests.aflow_tasks.kubernetes.fake_api import FakeKube

    fake = FakeKube(token="example-token")
    fake.start()
    try:
        config = tmp_path / "kubeconfig.json"
        config.write_text(json.dumps(kubeconfig(fake.url, token="example-token")))
        done = subprocess.run(
            [sys.executable, "-W", "error", str(EXAMPLES / "kubernetes_jobs.py"), str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        fake.stop()
    assert done.returncode == 0, done.stderr
    assert "greetings: ['hello ada', 'hello grace', 'hello linus']" in done.stdout
