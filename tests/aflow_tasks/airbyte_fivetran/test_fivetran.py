"""FivetranSyncTask against the fake Fivetran API: arguments, return shape, failures, redaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import anyio
import pytest

from aflow import Flow, Secret
from aflow.states import Cancelled, Failed, Success, TimedOut
from aflow_tasks.fivetran import FivetranFail, FivetranSyncTask
from tests.logwait import LineWaiter

from .conftest import API_KEY, API_SECRET
from .fake_fivetran import FakeFivetran

GUARD = 30
FAST: dict[str, Any] = {"poll_status_every_n_seconds": 0.02}


async def test_sync_returns_prefects_shape_and_logs_each_state(fivetran: FakeFivetran, lines: LineWaiter) -> None:
    fivetran.add("c1")
    task = FivetranSyncTask(connector_id="c1", base_url=fivetran.url)
    result = await task.run(API_KEY, API_SECRET, **FAST)
    assert set(result) == {"succeeded_at", "connector_id"}
    assert result["connector_id"] == "c1"
    stored = fivetran.connectors["c1"]["succeeded_at"]
    assert datetime.fromisoformat(result["succeeded_at"]) == datetime.fromisoformat(stored)
    assert result["succeeded_at"].endswith("Z")
    assert result["succeeded_at"] > "2024-01-02"
    assert fivetran.patches == [{"schedule_type": "manual"}]
    assert fivetran.forced == ["c1"]
    states = [m for m in lines.messages if "current sync_state" in m]
    assert states == [f'Connector "c1" current sync_state = {s}' for s in ("scheduled", "syncing", "scheduled")]
    assert "Connectors logs at https://fivetran.com/dashboard/connectors/postgres/sales/logs" in lines.messages


async def test_run_connector_wins_and_manual_false_keeps_the_schedule(fivetran: FakeFivetran) -> None:
    fivetran.add("c2")
    task = FivetranSyncTask(connector_id="c1", base_url=fivetran.url + "/")
    result = await task.run(api_key=API_KEY, api_secret=API_SECRET, connector_id="c2", manual=False, **FAST)
    assert result["connector_id"] == "c2"
    assert fivetran.patches == []
    assert fivetran.forced == ["c2"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"api_key": "k", "api_secret": "s"}, "connector_id"),
        ({"connector_id": "c", "api_secret": "s"}, "api_key"),
        ({"connector_id": "c", "api_key": "k"}, "api_secret"),
        ({"connector_id": "c", "api_key": "k", "api_secret": "s", "poll_status_every_n_seconds": 0}, "poll_status"),
    ],
)
async def test_missing_values_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await FivetranSyncTask().run(**kwargs)


async def test_a_connector_not_set_up_fails(fivetran: FakeFivetran) -> None:
    fivetran.add("c3", setup_state="incomplete")
    with pytest.raises(FivetranFail, match=r'"c3" not correctly configured, status: incomplete; please complete'):
        await FivetranSyncTask("c3", base_url=fivetran.url).run(API_KEY, API_SECRET)


async def test_a_failed_sync_fails_with_the_logs_url(fivetran: FakeFivetran) -> None:
    fivetran.add("c4")
    fivetran.plans["c4"] = ["scheduled", "syncing", "failed"]
    with Flow("fivetran-fail") as flow:
        t = FivetranSyncTask("c4", base_url=fivetran.url)(API_KEY, API_SECRET, **FAST)
    state = await flow.run()
    assert isinstance(state.result[t], Failed)
    assert 'Fivetran sync for connector "c4" failed; please see logs at https://fivetran.com/dashboard' in str(
        state.result[t].message
    )


async def test_secrets_come_from_the_context_and_never_show(fivetran: FakeFivetran, lines: LineWaiter) -> None:
    fivetran.add("c5")
    fivetran.failures = 1  # a 503: retried by the task
    with Flow("fivetran-secret") as flow:
        t = FivetranSyncTask("c5", base_url=fivetran.url, max_retries=1, retry_delay=timedelta(0))(
            Secret("FT_KEY"), Secret("FT_SECRET"), **FAST
        )
    state = await flow.run(context={"secrets": {"FT_KEY": API_KEY, "FT_SECRET": API_SECRET}})
    assert isinstance(state, Success), state.result[t]
    assert not any(API_KEY in m or API_SECRET in m for m in lines.messages)


async def test_wrong_credentials_fail_without_showing_them(fivetran: FakeFivetran) -> None:
    fivetran.add("c6")
    with Flow("fivetran-401") as flow:
        t = FivetranSyncTask("c6", base_url=fivetran.url)(API_KEY, "wrong-secret-9", **FAST)
    state = await flow.run()
    message = str(state.result[t].message)
    assert isinstance(state.result[t], Failed)
    assert "returned 401: " in message
    assert "Invalid API key" in message
    assert "wrong-secret-9" not in message
    assert API_KEY not in message


async def test_cancelling_or_timing_out_ends_the_task_and_says_the_sync_goes_on(
    fivetran: FakeFivetran, lines: LineWaiter
) -> None:
    fivetran.add("c7")
    fivetran.plans["c7"] = ["scheduled", "syncing"]
    with Flow("fivetran-cancel") as flow:
        t = FivetranSyncTask("c7", base_url=fivetran.url)(API_KEY, API_SECRET, **FAST)
    handle = flow.start()
    with anyio.fail_after(GUARD):
        await lines.wait_for_text("current sync_state = syncing")
        handle.cancel()
        state = await handle
    assert isinstance(state, Cancelled)
    assert isinstance(state.result[t], Cancelled)
    assert any("cannot stop a running sync: connector c7" in m for m in lines.messages)
    with Flow("fivetran-timeout") as flow:
        t = FivetranSyncTask("c7", base_url=fivetran.url, timeout=0.3)(API_KEY, API_SECRET, **FAST)
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state.result[t], TimedOut)
