"""The Databricks tasks against the fake Jobs API: every class and argument, and the three promises."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from aflow import Flow, Secret
from aflow.states import Cancelled, Failed, Success, TimedOut
from aflow_tasks.databricks import (
    DatabricksFail,
    DatabricksGetJobID,
    DatabricksRunFail,
    DatabricksRunNow,
    DatabricksSubmitMultitaskRun,
    DatabricksSubmitRun,
)
from tests.logwait import LineWaiter

from .conftest import LOGIN, PASSWORD, TOKEN
from .fake_databricks import FAILED, PENDING, RUNNING, SUCCESS, FakeDatabricks

GUARD = 30
FAST: dict[str, Any] = {"polling_period_seconds": 0.02, "databricks_retry_delay": 0.01}
NOTEBOOK = {"notebook_path": "/Users/ada/etl"}


async def test_submit_run_merges_named_parameters_over_json(dbx: FakeDatabricks, conn: dict[str, str]) -> None:
    task = DatabricksSubmitRun(
        conn,
        json={"run_name": "from-json", "existing_cluster_id": "old", "timeout_seconds": 5},
        notebook_task=NOTEBOOK,
        new_cluster={"num_workers": 2, "spark_version": "13.3.x"},
        libraries=[{"jar": "dbfs:/a.jar"}],
        **FAST,
    )
    run_id = await task.run(existing_cluster_id="c-1", run_name="named", timeout_seconds=60)
    assert run_id == 101
    (body,) = dbx.bodies
    assert body["run_name"] == "named"
    assert body["existing_cluster_id"] == "c-1"
    assert body["timeout_seconds"] == "60"  # numbers go as strings, as in Prefect 1
    assert body["new_cluster"] == {"num_workers": "2", "spark_version": "13.3.x"}
    assert body["notebook_task"] == NOTEBOOK
    assert body["libraries"] == [{"jar": "dbfs:/a.jar"}]
    assert body["idempotency_token"]
    assert dbx.runs[101]["state"] == SUCCESS


async def test_submit_run_spark_jar_and_default_run_name(dbx: FakeDatabricks, conn: dict[str, str]) -> None:
    await DatabricksSubmitRun(spark_jar_task={"main_class_name": "Main"}, **FAST).run(databricks_conn_secret=conn)
    assert dbx.bodies[0]["run_name"] == "Run Submitted by aflow"
    assert dbx.bodies[0]["spark_jar_task"] == {"main_class_name": "Main"}


async def test_basic_auth_and_a_host_without_scheme(dbx: FakeDatabricks) -> None:
    conn = {"host": dbx.url, "login": LOGIN, "password": PASSWORD}
    assert await DatabricksSubmitRun(conn, notebook_task=NOTEBOOK, **FAST).run() == 101
    assert str(dbx.requests[0][2]).startswith("Basic ")
    # a bare host gets https:// (here nothing listens there: the attempt fails fast)
    task = DatabricksSubmitRun({"host": "127.0.0.1:9", "token": TOKEN}, notebook_task=NOTEBOOK, **FAST)
    with pytest.raises(DatabricksFail, match=r"https://127\.0\.0\.1:9|could not connect|gave up"):
        await task.run(databricks_retry_limit=1)


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        (None, "databricks_conn_secret is required"),
        ("host=x", "must be supplied as a valid dictionary"),
        ({"token": "t"}, "needs a 'host'"),
        ({"host": "h"}, "needs a 'token', or a 'login' and a 'password'"),
    ],
)
async def test_bad_connections_are_named(conn: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await DatabricksSubmitRun(conn, notebook_task=NOTEBOOK).run()


async def test_connection_from_a_secret_and_redaction(dbx: FakeDatabricks, lines: LineWaiter) -> None:
    dbx.failures["/api/2.1/jobs/runs/submit"] = 1
    with Flow("dbx-secret") as flow:
        t = DatabricksSubmitRun(Secret("DBX"), notebook_task=NOTEBOOK, **FAST)()
    state = await flow.run(context={"secrets": {"DBX": {"host": dbx.url, "token": TOKEN}}})
    assert isinstance(state, Success), state.result[t]
    assert any("503" in m for m in lines.messages)  # the retry was logged
    assert not any(TOKEN in m for m in lines.messages)


async def test_run_now_merges_parameters(dbx: FakeDatabricks, conn: dict[str, str]) -> None:
    dbx.jobs = [{"job_id": 7, "settings": {"name": "etl"}}]
    task = DatabricksRunNow(
        conn,
        json={"notebook_params": {"a": "1", "b": "2"}, "job_id": 1},
        notebook_params={"b": 3},
        python_params=["x"],
        **FAST,
    )
    run_id = await task.run(job_id=7, spark_submit_params=["--v"], jar_params=["j"])
    assert run_id == 101
    (body,) = dbx.bodies
    assert body["job_id"] == "7"
    assert body["notebook_params"] == {"a": "1", "b": "3"}
    assert body["python_params"] == ["x"]
    assert body["spark_submit_params"] == ["--v"]
    assert body["jar_params"] == ["j"]
    assert body["idempotency_token"]


async def test_run_now_needs_a_job_id_and_fails_on_4xx(dbx: FakeDatabricks, conn: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="job_id"):
        await DatabricksRunNow(conn).run()
    with pytest.raises(DatabricksFail, match=r"returned 400: Job 7 does not exist") as info:
        await DatabricksRunNow(conn, job_id=8, **FAST).run()
    assert info.value.status_code == 400
    assert len(dbx.bodies) == 0  # a 4xx is not retried (the fake saw one request)
    assert [r[1] for r in dbx.requests] == ["/api/2.1/jobs/run-now"]


class Model:
    """Stands for Prefect 1's pydantic models (anything with ``dict()``)."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def dict(self) -> dict[str, Any]:
        return dict(self.values)


async def test_submit_multitask_run(dbx: FakeDatabricks, conn: dict[str, str]) -> None:
    kwargs = DatabricksSubmitMultitaskRun.convert_dict_to_kwargs(
        {"tasks": [{"task_key": "a", "notebook_task": NOTEBOOK}], "timeout_seconds": 100}
    )
    task = DatabricksSubmitMultitaskRun(
        conn,
        access_control_list=[Model(user_name="ada@example.com", permission_level="CAN_MANAGE")],
        git_source=Model(git_url="https://example.com/r.git", git_branch="main", git_tag=None),
        idempotency_token="my-token",
        **FAST,
    )
    with Flow("dbx-multi") as flow:
        extra = Model(task_key="b", depends_on=[{"task_key": "a"}])
        t = task(**{**kwargs, "tasks": [extra, *kwargs["tasks"]]})
    state = await flow.run()
    assert isinstance(state, Success), state.result[t]
    assert state.result[t].result == 101
    (body,) = dbx.bodies
    assert [t["task_key"] for t in body["tasks"]] == ["b", "a"]
    assert body["timeout_seconds"] == "100"
    assert body["idempotency_token"] == "my-token"
    assert body["run_name"].startswith("Job run created by aflow flow run ")
    assert body["access_control_list"] == [{"user_name": "ada@example.com", "permission_level": "CAN_MANAGE"}]
    assert body["git_source"] == {"git_url": "https://example.com/r.git", "git_branch": "main"}
    with pytest.raises(ValueError, match="needs tasks"):
        await DatabricksSubmitMultitaskRun(conn).run()


async def test_get_job_id_reads_every_page(dbx: FakeDatabricks, conn: dict[str, str]) -> None:
    dbx.jobs = [{"job_id": i, "settings": {"name": f"job-{i}"}} for i in range(1, 8)]
    dbx.jobs.append({"job_id": 99, "settings": {"name": "job-3"}})
    task = DatabricksGetJobID(conn, search_limit=3, databricks_retry_delay=0.01)
    assert await task.run("job-7") == 7
    assert sum(1 for r in dbx.requests if r[1] == "/api/2.1/jobs/list") == 3
    with pytest.raises(ValueError, match="Job with name 'job-3' is duplicated"):
        await task.run("job-3")
    with pytest.raises(ValueError, match="Job with name 'nope' not found"):
        await task.run("nope", search_limit=25)
    with pytest.raises(ValueError, match="search_limit"):
        await task.run("job-1", search_limit=26)
    with pytest.raises(ValueError, match="job_name"):
        await task.run()


async def test_transitions_are_logged_while_the_run_runs(
    dbx: FakeDatabricks, conn: dict[str, str], lines: LineWaiter
) -> None:
    dbx.plans["slow"] = [PENDING, RUNNING, RUNNING]  # never ends until the test lets it
    with Flow("dbx-logs") as flow:
        t = DatabricksSubmitRun(conn, notebook_task=NOTEBOOK, run_name="slow", **FAST)()
    handle = flow.start()
    with anyio.fail_after(GUARD):
        await lines.wait_for_text("in run state: RUNNING")
        await lines.wait_for_text("View run status, Spark UI, and logs at")
        assert not handle.done()
        dbx.call(lambda: dbx.runs[101].update(state=SUCCESS))
        state = await handle
    assert isinstance(state, Success), state.result[t]
    states = [m for m in lines.messages if "in run state" in m]
    assert states == [
        "DatabricksSubmitRun (run 101) in run state: PENDING: Waiting for cluster",
        "DatabricksSubmitRun (run 101) in run state: RUNNING: In run",
        "DatabricksSubmitRun (run 101) in run state: TERMINATED/SUCCESS",
    ]  # each change once, however many polls saw it
    assert dbx.runs[101]["polls"] >= 3
    assert any(m.endswith("/#job/1/run/101") for m in lines.messages)


async def test_a_failed_run_fails_with_its_state_message(dbx: FakeDatabricks, conn: dict[str, str]) -> None:
    dbx.plans["bad"] = [PENDING, RUNNING, FAILED]
    with Flow("dbx-fail") as flow:
        t = DatabricksSubmitRun(conn, notebook_task=NOTEBOOK, run_name="bad", **FAST)()
    state = await flow.run()
    result = state.result[t]
    assert isinstance(result, Failed)
    assert "failed with terminal state: TERMINATED/FAILED: Task notebook failed: ZeroDivisionError" in str(
        result.message
    )
    with pytest.raises(DatabricksRunFail) as info:
        await DatabricksSubmitRun(conn, notebook_task=NOTEBOOK, run_name="bad", **FAST).run()
    assert info.value.run_state.result_state == "FAILED"
    assert dbx.cancelled == []  # a run that ended is not cancelled


async def test_5xx_is_retried_up_to_the_limit(dbx: FakeDatabricks, conn: dict[str, str], lines: LineWaiter) -> None:
    dbx.failures = {"/api/2.1/jobs/runs/submit": 2, "/api/2.1/jobs/runs/get": 2}
    task = DatabricksSubmitRun(conn, notebook_task=NOTEBOOK, databricks_retry_limit=3, **FAST)
    assert await task.run() == 101
    assert len(dbx.runs) == 1  # the same idempotency token each time
    assert len(dbx.attempts) == 3
    assert len(set(dbx.attempts)) == 1
    assert sum(1 for m in lines.messages if "returned 503" in m) == 4
    dbx.failures = {"/api/2.1/jobs/runs/submit": 3}
    dbx.failure_status = 500
    with pytest.raises(DatabricksFail, match=r"returned 500.*gave up after 3 attempt"):
        await task.run()
    with pytest.raises(ValueError, match="databricks_retry_limit"):
        await task.run(databricks_retry_limit=0)


async def test_the_task_retries_reuse_the_idempotency_token(dbx: FakeDatabricks, conn: dict[str, str]) -> None:
    from datetime import timedelta

    dbx.failures = {"/api/2.1/jobs/runs/submit": 2}
    with Flow("dbx-task-retry") as flow:
        t = DatabricksSubmitRun(
            conn, notebook_task=NOTEBOOK, databricks_retry_limit=1, max_retries=2, retry_delay=timedelta(0), **FAST
        )()
    state = await flow.run()
    assert isinstance(state, Success), state.result[t]
    assert len(dbx.attempts) == 3
    assert len(set(dbx.attempts)) == 1
    assert len(dbx.runs) == 1


async def test_cancelling_the_flow_cancels_the_run(
    dbx: FakeDatabricks, conn: dict[str, str], lines: LineWaiter
) -> None:
    dbx.plans["forever"] = [PENDING, RUNNING]
    with Flow("dbx-cancel") as flow:
        t = DatabricksSubmitRun(conn, notebook_task=NOTEBOOK, run_name="forever", **FAST)()
    handle = flow.start()
    with anyio.fail_after(GUARD):
        await lines.wait_for_text("in run state: RUNNING")
        handle.cancel()
        state = await handle
    assert isinstance(state, Cancelled)
    assert isinstance(state.result[t], Cancelled)
    assert dbx.cancelled == [101]
    assert dbx.runs[101]["state"][1] == "CANCELED"
    assert any("Databricks run 101 cancelled" in m for m in lines.messages)


async def test_a_task_timeout_cancels_the_run(dbx: FakeDatabricks, conn: dict[str, str]) -> None:
    dbx.plans["forever"] = [PENDING, RUNNING]
    dbx.jobs = [{"job_id": 5, "settings": {"name": "j"}}]
    dbx.plans["5"] = [PENDING, RUNNING]
    with Flow("dbx-timeout") as flow:
        a = DatabricksSubmitRun(conn, notebook_task=NOTEBOOK, run_name="forever", timeout=0.5, **FAST)()
        b = DatabricksRunNow(conn, job_id=5, timeout=0.5, **FAST)()
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state.result[a], TimedOut)
    assert isinstance(state.result[b], TimedOut)
    assert sorted(dbx.cancelled) == [101, 102]


async def test_ten_runs_are_polled_concurrently(dbx: FakeDatabricks, conn: dict[str, str]) -> None:
    dbx.default_plan = [PENDING] + [RUNNING] * 10 + [SUCCESS]
    task = DatabricksSubmitRun(conn, notebook_task=NOTEBOOK, **FAST)
    with Flow("dbx-ten") as flow:
        ts = [task(run_name=f"run-{i}", task_args={"name": f"run-{i}"}) for i in range(10)]
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state, Success), [state.result[t] for t in ts]
    assert sorted(state.result[t].result for t in ts) == list(range(101, 111))
    assert dbx.max_active == 10  # all ten were running at once


async def test_a_cancellation_during_the_submit_cancels_the_run_it_started(
    dbx: FakeDatabricks, conn: dict[str, str]
) -> None:
    dbx.answer_delay = 0.3
    with Flow("dbx-cancel-submit") as flow:
        t = DatabricksSubmitRun(conn, notebook_task=NOTEBOOK, **FAST)()
    handle = flow.start()
    with anyio.fail_after(GUARD):
        while not dbx.call(lambda: len(dbx.runs)):  # noqa: ASYNC110 - the fake has no event to wait on
            await anyio.sleep(0.01)
        handle.cancel()  # the submit's answer is still on its way
        state = await handle
    assert isinstance(state.result[t], Cancelled)
    assert dbx.cancelled == [101]


async def test_a_wrong_token_fails_without_showing_it(dbx: FakeDatabricks) -> None:
    wrong = "dapi-wrong-token-0000"
    with Flow("dbx-401") as flow:
        t = DatabricksSubmitRun({"host": dbx.url, "token": wrong}, notebook_task=NOTEBOOK, **FAST)()
    state = await flow.run()
    message = str(state.result[t].message)
    assert isinstance(state.result[t], Failed)
    assert "returned 401: Invalid access token." in message
    assert wrong not in message
    assert dbx.attempts == [dbx.attempts[0]]  # a 4xx is not retried
