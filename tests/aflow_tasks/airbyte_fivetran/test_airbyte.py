"""AirbyteConnectionTask against the fake Airbyte server: arguments, return shape, the three promises."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest

from aflow import Flow
from aflow.states import Cancelled, Failed, Success, TimedOut
from aflow_tasks.airbyte import (
    AirbyteConnectionTask,
    AirbyteFail,
    AirbyteServerNotHealthyException,
    AirbyteSyncJobFailed,
    ConnectionNotFoundException,
)
from tests.logwait import LineWaiter

from .fake_airbyte import FakeAirbyte

CONN = "6e1d4a0f-9d1b-4c3e-8f6a-0c2b9f3e7a11"
GUARD = 30


def where(fake: FakeAirbyte) -> dict[str, Any]:
    parts = urlsplit(fake.url)
    return {"airbyte_server_host": parts.hostname, "airbyte_server_port": parts.port}


async def test_sync_returns_prefects_shape_and_logs_each_status(airbyte: FakeAirbyte, lines: LineWaiter) -> None:
    airbyte.connections[CONN] = {"status": "active", "schedule": None}
    task = AirbyteConnectionTask(**where(airbyte), airbyte_api_version="v1", connection_id=CONN)
    result = await task.run(poll_interval_s=0.02)
    assert result == {
        "connection_id": CONN,
        "status": "active",
        "job_status": "succeeded",
        "job_created_at": 1000,
        "job_updated_at": 1003,
    }
    assert [m for m in lines.messages if m.startswith("Airbyte job 1:")] == [
        "Airbyte job 1: pending",
        "Airbyte job 1: running",
        "Airbyte job 1: succeeded",
    ]
    assert airbyte.updates == []


async def test_run_arguments_win_and_the_schedule_is_removed(airbyte: FakeAirbyte, lines: LineWaiter) -> None:
    airbyte.connections[CONN] = {"status": "active", "schedule": {"units": 1, "timeUnit": "hours"}}
    task = AirbyteConnectionTask(airbyte_server_host="nowhere.invalid", airbyte_server_port=1, stream_output="debug")
    result = await task.run(**where(airbyte), connection_id=CONN, poll_interval_s=0.02)
    assert result["job_status"] == "succeeded"
    assert airbyte.updates[0]["schedule"] is None
    assert "Schedule removed ok." in lines.messages
    # stream_output logs the API's answers at its level
    assert any(r.levelno == logging.DEBUG and "jobs/get/" in r.getMessage() for r in lines.records)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ValueError, "connection_id"),
        ({"connection_id": "not-a-uuid"}, ValueError, "valid UUID"),
        ({"connection_id": CONN, "poll_interval_s": 0}, ValueError, "poll_interval_s"),
    ],
)
async def test_missing_or_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        await AirbyteConnectionTask().run(**kwargs)


def test_bad_stream_output_level() -> None:
    with pytest.raises(TypeError, match="not a valid log level"):
        AirbyteConnectionTask(stream_output="loud")
    assert AirbyteConnectionTask(stream_output=True).stream_output == logging.INFO


@pytest.mark.parametrize(
    ("status", "message"),
    [("inactive", "Please enable the Connection"), ("deprecated", "is deprecated")],
)
async def test_inactive_and_deprecated_connections_fail(airbyte: FakeAirbyte, status: str, message: str) -> None:
    airbyte.connections[CONN] = {"status": status}
    with pytest.raises(AirbyteFail, match=message):
        await AirbyteConnectionTask(**where(airbyte), connection_id=CONN).run()
    assert airbyte.jobs == {}


async def test_unknown_connection_and_unhealthy_server(airbyte: FakeAirbyte) -> None:
    with pytest.raises(ConnectionNotFoundException, match=f"Connection {CONN} not found"):
        await AirbyteConnectionTask(**where(airbyte), connection_id=CONN).run()
    airbyte.healthy = False
    with pytest.raises(AirbyteServerNotHealthyException, match="health status: False"):
        await AirbyteConnectionTask(**where(airbyte), connection_id=CONN).run()
    with pytest.raises(AirbyteServerNotHealthyException, match="not reachable"):
        await AirbyteConnectionTask(airbyte_server_host="127.0.0.1", airbyte_server_port=9, connection_id=CONN).run()


async def test_a_failed_job_fails_the_task(airbyte: FakeAirbyte) -> None:
    airbyte.connections[CONN] = {"status": "active"}
    airbyte.plans[CONN] = ["pending", "running", "failed"]
    with Flow("airbyte-fail") as flow:
        t = AirbyteConnectionTask(**where(airbyte), connection_id=CONN)(poll_interval_s=0.02)
    state = await flow.run()
    assert isinstance(state.result[t], Failed)
    assert "Job 1 failed." in str(state.result[t].message)
    assert airbyte.cancelled == []
    with pytest.raises(AirbyteSyncJobFailed):
        await AirbyteConnectionTask(**where(airbyte), connection_id=CONN).run(poll_interval_s=0.02)


async def test_a_5xx_is_retried_by_the_task(airbyte: FakeAirbyte) -> None:
    airbyte.connections[CONN] = {"status": "active"}
    airbyte.failures = 1
    with Flow("airbyte-retry") as flow:
        t = AirbyteConnectionTask(**where(airbyte), connection_id=CONN, max_retries=1, retry_delay=timedelta(0))(
            poll_interval_s=0.02
        )
    state = await flow.run()
    assert isinstance(state, Success), state.result[t]
    assert len(airbyte.jobs) == 1


async def test_cancelling_the_flow_cancels_the_job(airbyte: FakeAirbyte, lines: LineWaiter) -> None:
    airbyte.connections[CONN] = {"status": "active"}
    airbyte.plans[CONN] = ["pending", "running"]
    with Flow("airbyte-cancel") as flow:
        t = AirbyteConnectionTask(**where(airbyte), connection_id=CONN)(poll_interval_s=0.02)
    handle = flow.start()
    with anyio.fail_after(GUARD):
        await lines.wait_for_text("Airbyte job 1: running")
        handle.cancel()
        state = await handle
    assert isinstance(state, Cancelled)
    assert isinstance(state.result[t], Cancelled)
    assert airbyte.cancelled == [1]
    assert "Airbyte job 1 cancelled" in lines.messages


async def test_a_task_timeout_cancels_the_job(airbyte: FakeAirbyte) -> None:
    airbyte.connections[CONN] = {"status": "active"}
    airbyte.plans[CONN] = ["pending", "running"]
    with Flow("airbyte-timeout") as flow:
        t = AirbyteConnectionTask(**where(airbyte), connection_id=CONN, timeout=0.5)(poll_interval_s=0.02)
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state.result[t], TimedOut)
    assert airbyte.cancelled == [1]
