"""DbtCloudRunJob against the fake dbt Cloud: shapes, statuses, artifacts, redaction, cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from aflow import Flow, Secret
from aflow.signals import FAIL
from aflow.states import Cancelled, Failed, Success, TimedOut
from aflow_tasks import http
from aflow_tasks.dbt import DbtCloudRunFailed, DbtCloudRunJob

from .conftest import TOKEN, Records
from .fake_dbt_cloud import ARTIFACTS, FakeDbtCloud

FAST = 0.01


def job(cloud: FakeDbtCloud, **kwargs: Any) -> DbtCloudRunJob:
    args: dict[str, Any] = {"cause": "test", "account_id": 7, "token": TOKEN, "domain": cloud.url}
    args["poll_frequency_seconds"] = FAST
    return DbtCloudRunJob(**{**args, **kwargs})


async def test_trigger_only_returns_the_trigger_data(cloud: FakeDbtCloud) -> None:
    run = await job(cloud, job_id=1, additional_args={"git_branch": "main"}).run()
    assert run["status"] == 1
    assert run["finished_at"] is None
    assert run["job_definition_id"] == 1
    assert cloud.triggers[-1] == {"job": 1, "account": 7, "body": {"git_branch": "main", "cause": "test"}}
    assert cloud.runs[run["id"]]["trigger"] == {"cause": "test"}


async def test_waiting_returns_the_finished_run_with_artifact_urls(cloud: FakeDbtCloud, logs: Records) -> None:
    run = await job(cloud, job_id=1, wait_for_job_run_completion=True).run()
    assert run["status"] == 10
    assert run["finished_at"]
    base = f"{cloud.url}/api/v2/accounts/7/runs/{run['id']}/artifacts/"
    assert run["artifact_urls"] == [base + name for name in ARTIFACTS]
    # each status change reached the logger while the run went on
    statuses = [m for m in logs.messages if m.startswith(f"dbt Cloud run {run['id']}: ")]
    assert statuses == [f"dbt Cloud run {run['id']}: {s}" for s in ("Queued", "Running", "Success")]


async def test_artifacts_that_cannot_be_listed_give_a_warning_and_no_urls(cloud: FakeDbtCloud, logs: Records) -> None:
    run = await job(cloud, job_id=5, wait_for_job_run_completion=True).run()
    assert run["status"] == 10
    assert run["artifact_urls"] == []
    assert any("Unable to retrieve artifacts" in m for m in logs.messages)


@pytest.mark.parametrize(("job_id", "status", "name"), [(2, 20, "Error"), (3, 30, "Cancelled")])
async def test_error_and_cancelled_runs_fail(cloud: FakeDbtCloud, job_id: int, status: int, name: str) -> None:
    with pytest.raises(DbtCloudRunFailed) as info:
        await job(cloud, job_id=job_id, wait_for_job_run_completion=True).run()
    assert f"ended with status {status} ({name})" in str(info.value)
    assert info.value.run is not None
    assert info.value.run["status"] == status
    if status == 20:
        assert "Database Error in model broken" in str(info.value)


async def test_max_wait_time_cancels_the_run_and_fails(cloud: FakeDbtCloud) -> None:
    with pytest.raises(DbtCloudRunFailed, match=r"did not finish within max_wait_time=0\.2s") as info:
        await job(cloud, job_id=4, wait_for_job_run_completion=True, max_wait_time=0.2).run()
    run_id = max(cloud.runs)
    assert cloud.runs[run_id]["job_definition_id"] == 4
    assert run_id in cloud.cancels
    assert info.value.run is None


async def test_a_cancelled_flow_cancels_the_cloud_run(cloud: FakeDbtCloud, logs: Records) -> None:
    with Flow("dbt-cloud-cancel") as flow:
        t = job(cloud, job_id=4, wait_for_job_run_completion=True)()
    handle = flow.start()
    record = await logs.wait_for(": Running")
    run_id = int(record.getMessage().split()[3].rstrip(":"))
    assert run_id not in cloud.cancels
    handle.cancel()
    state = await asyncio.wait_for(handle, 30)
    assert isinstance(state, Cancelled)
    assert isinstance(state.result[t], Cancelled)
    assert run_id in cloud.cancels


@pytest.mark.parametrize("wait", [True, False])
async def test_a_cancellation_during_the_trigger_cancels_the_run_it_made(cloud: FakeDbtCloud, wait: bool) -> None:
    cloud.trigger_delay = 0.3
    try:
        before = cloud.triggers_received
        running = asyncio.ensure_future(job(cloud, job_id=4, wait_for_job_run_completion=wait).run())
        for _ in range(500):
            if cloud.triggers_received > before:
                break
            await asyncio.sleep(0.01)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    finally:
        cloud.trigger_delay = 0.0
    assert max(cloud.runs) in cloud.cancels  # the answer was awaited, then the run cancelled


async def test_a_task_timeout_cancels_the_cloud_run(cloud: FakeDbtCloud) -> None:
    with Flow("dbt-cloud-timeout") as flow:
        t = job(cloud, job_id=4, wait_for_job_run_completion=True, timeout=0.3)()
    state = await flow.run()
    assert isinstance(state.result[t], TimedOut)
    assert max(cloud.runs) in cloud.cancels


async def test_runs_concurrently_in_one_flow_run_on_one_client(cloud: FakeDbtCloud) -> None:
    opened: list[httpx.AsyncClient] = []

    def opener(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=transport)
        opened.append(client)
        return client

    with Flow("dbt-cloud-many") as flow:
        ok = [job(cloud, job_id=1, wait_for_job_run_completion=True)(task_args={"name": f"ok{i}"}) for i in range(5)]
        bad = job(cloud, job_id=2, wait_for_job_run_completion=True)(task_args={"name": "bad"})
    with http.clients.override(opener):
        state = await flow.run()
    assert isinstance(state, Failed)
    assert all(isinstance(state.result[t], Success) for t in ok)
    assert isinstance(state.result[bad], Failed)
    assert "status 20 (Error)" in (state.result[bad].message or "")
    assert len(opened) == 1


async def test_env_vars_fill_in_ids_and_token(cloud: FakeDbtCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_ACCOUNT", "9")
    monkeypatch.setenv("DBT_CLOUD_JOB_ID", "1")
    monkeypatch.setenv("DBT_CLOUD_TOKEN", TOKEN)
    task = DbtCloudRunJob(cause="env", account_id_env_var_name="MY_ACCOUNT", domain=cloud.url)
    run = await task.run()
    assert cloud.triggers[-1]["account"] == 9
    assert run["job_definition_id"] == 1


@pytest.mark.parametrize("missing", ["cause", "account_id", "job_id", "token"])
async def test_missing_values_raise_naming_them(cloud: FakeDbtCloud, missing: str) -> None:
    args: dict[str, Any] = {"cause": "c", "account_id": 1, "job_id": 1, "token": "t", missing: None}
    with pytest.raises(ValueError, match=missing):
        await DbtCloudRunJob(domain=cloud.url, **args).run()


async def test_call_values_win_over_init(cloud: FakeDbtCloud) -> None:
    task = job(cloud, job_id=2, cause="init")
    await task.run(job_id=1, cause="call")
    assert cloud.triggers[-1]["job"] == 1
    assert cloud.triggers[-1]["body"]["cause"] == "call"


async def test_a_wrong_token_fails_and_the_token_is_redacted(cloud: FakeDbtCloud, logs: Records) -> None:
    wrong = "wrong-token-0b9d4e"
    with Flow("dbt-cloud-401") as flow:
        t = DbtCloudRunJob(cause="c", account_id=1, job_id=1, token=Secret("DBT_TOKEN"), domain=cloud.url)()
    state = await flow.run(context={"secrets": {"DBT_TOKEN": wrong}})
    failed = state.result[t]
    assert isinstance(failed, Failed)
    assert "401" in (failed.message or "")
    assert all(wrong not in m for m in logs.messages)
    assert wrong not in (failed.message or "")
    with pytest.raises(FAIL, match="trigger dbt Cloud job 1 returned 401"):
        await DbtCloudRunJob(cause="c", account_id=1, job_id=1, token=wrong, domain=cloud.url).run()


def test_init_defaults_are_prefect_1s() -> None:
    task = DbtCloudRunJob()
    assert (task.domain, task.poll_frequency_seconds, task.max_wait_time) == ("cloud.getdbt.com", 10, None)
    assert task.wait_for_job_run_completion is False
    names = (task.account_id_env_var_name, task.job_id_env_var_name, task.token_env_var_name)
    assert names == ("DBT_CLOUD_ACCOUNT_ID", "DBT_CLOUD_JOB_ID", "DBT_CLOUD_TOKEN")


async def test_a_domain_without_scheme_is_https(cloud: FakeDbtCloud) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"data": {"id": 1, "status": 1}})

    with http.clients.override(lambda transport: httpx.AsyncClient(transport=httpx.MockTransport(handler))):
        await DbtCloudRunJob(cause="c", account_id=3, job_id=4, token="t", domain="emea.dbt.com").run()
    assert seen == ["https://emea.dbt.com/api/v2/accounts/3/jobs/4/run/"]
