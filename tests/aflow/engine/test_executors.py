"""The executor interface: bodies go through it, everything else stays in the scheduler."""

from __future__ import annotations

from typing import Any

import pytest

from aflow import Flow, context, task
from aflow.executors import BodyCall, Executor, LocalExecutor
from aflow.states import Success
from aflow.testing import FakeClock


class Recording(Executor):
    """Runs bodies locally, recording each call and the start/shutdown of the executor."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], Any]] = []
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def shutdown(self) -> None:
        self.events.append("shutdown")

    async def run(self, call: BodyCall) -> Any:
        self.calls.append((call.task.name, dict(call.inputs), call.context.get("map_index")))
        with context.temporary(**call.context):
            return await call.run_locally()


@task
async def double(x: int) -> int:
    return 2 * x


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task(tags=["local"])
async def here(x: int) -> int:
    return x


async def test_bodies_go_through_the_executor_and_it_is_started_and_shut_down() -> None:
    executor = Recording()
    with Flow("ex") as flow:
        out = total(double.map([1, 2, 3]))
        kept = here(5)

    state = await flow.run(executor=executor)

    assert state.result[out].result == 12
    assert state.result[kept].result == 5
    assert executor.events == ["start", "shutdown"]
    assert sorted((c for c in executor.calls if c[0] == "double"), key=lambda c: c[2]) == [
        ("double", {"x": 1}, 0),
        ("double", {"x": 2}, 1),
        ("double", {"x": 3}, 2),
    ]
    assert ("total", {"xs": [2, 4, 6]}, None) in executor.calls
    assert all(name != "here" for name, _, _ in executor.calls)  # tagged "local": stays here


async def test_retries_stay_in_the_scheduler_and_each_attempt_is_one_body_call() -> None:
    executor = Recording()
    attempts: list[int] = []

    @task(max_retries=2, retry_delay=1)
    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError("not yet")
        return "done"

    with Flow("retry") as flow:
        f = flaky()
    clock = FakeClock()
    state = await flow.run(executor=executor, clock=clock)
    assert isinstance(state.result[f], Success)
    assert len(executor.calls) == 3
    assert clock.sleeps == [1.0, 1.0]


async def test_executor_is_shut_down_when_the_flow_fails() -> None:
    executor = Recording()

    @task
    async def boom() -> None:
        raise RuntimeError("boom")

    with Flow("fails") as flow:
        boom()
    state = await flow.run(executor=executor)
    assert state.is_failed()
    assert executor.events == ["start", "shutdown"]


async def test_local_executor_is_the_default_behaviour() -> None:
    with Flow("local") as flow:
        out = total(double.map([1, 2]))
    assert (await flow.run(executor=LocalExecutor())).result[out].result == 6


def test_executor_needs_run() -> None:
    class Incomplete(Executor):
        pass

    with pytest.raises(TypeError):
        Incomplete()  # type: ignore[abstract]
