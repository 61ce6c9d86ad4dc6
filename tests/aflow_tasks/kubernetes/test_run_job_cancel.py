"""Cancelling RunNamespacedJob at any moment leaves no Job, pod or container process behind.

Each trial starts a flow of a few RunNamespacedJob tasks (Jobs named by ``generateName``, so their
names are known only from the create's answer) and cancels it at a different moment: after 0, 1,
2... event-loop iterations, then after growing delays, some landing while the creates are on
their way (the fake answers them late). After each trial the fake must hold no Job and no pod,
and no container process may run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from aflow import Flow
from aflow.states import Cancelled
from aflow_tasks.kubernetes import RunNamespacedJob

from .conftest import kubeconfig
from .fake_api import FakeKube
from .test_run_job import GUARD, job, running

WIDTH = 3
POINTS = [("iterations", n) for n in (0, 1, 2, 3, 5, 8, 13, 20, 40)] + [
    ("seconds", d) for d in (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
]


async def leftovers(fake: FakeKube) -> dict[str, Any]:
    """What the fake still holds once the deletions had a moment to land (empty when clean)."""
    left: dict[str, Any] = {}
    for _ in range(200):
        left = {
            "jobs": sorted(fake.objects_of("jobs")),
            "pods": sorted(fake.objects_of("pods")),
            "processes": [p for p in list(fake.pids.values()) if running(p)],
        }
        if not any(left.values()):
            return {}
        await asyncio.sleep(0.02)
    return left


@pytest.fixture
def config(fake: FakeKube) -> dict[str, Any]:
    return kubeconfig(fake.url)


@pytest.mark.parametrize("how", ["handle", "caller"])
async def test_cancelling_at_every_point_leaves_nothing_behind(
    fake: FakeKube, config: dict[str, Any], how: str
) -> None:
    fake.answer_delay = 0.15
    task = RunNamespacedJob(body=job("sleeper", "sleep 300 & wait", generate=True), kube_config=config)
    with Flow("k8s-cancel-points") as flow:
        for i in range(WIDTH):
            task(task_args={"name": f"job-{i}"})
    found = {}
    for kind, amount in POINTS:
        if how == "handle":
            handle = flow.start()
        else:
            run = asyncio.ensure_future(flow.run())
        if kind == "iterations":
            for _ in range(int(amount)):
                await asyncio.sleep(0)
        else:
            await asyncio.sleep(amount)
        with anyio.fail_after(GUARD):
            if how == "handle":
                handle.cancel()
                state = await handle
                assert isinstance(state, Cancelled)
            else:
                run.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await run
        left = await leftovers(fake)
        if left:
            found[(kind, amount)] = left
    assert found == {}
    assert fake.deleted  # some trials did create Jobs (and deleted them)
