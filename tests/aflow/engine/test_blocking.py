"""An ``async def`` task that blocks the event loop is reported, by name and with how long it blocked."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import pytest

from aflow import Flow, task
from aflow._engine._blocking import _watches

THRESHOLD = 0.1


def blocking_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "aflow.blocking" and r.levelno == logging.WARNING]


@task(name="sleeps-in-the-loop")
async def blocker() -> int:
    time.sleep(THRESHOLD * 4)  # noqa: ASYNC251 (the mistake being reported)
    return 1


@task(name="polite")
async def polite() -> int:
    await asyncio.sleep(THRESHOLD * 2)
    return 2


@task(name="polite-child")
async def polite_child(i: int) -> int:
    await asyncio.sleep(THRESHOLD * 2)
    return i


async def test_a_blocking_async_task_is_named_with_how_long_it_blocked(caplog: pytest.LogCaptureFixture) -> None:
    with Flow("blocks") as flow:
        blocker()
        polite()
    with caplog.at_level(logging.WARNING, logger="aflow.blocking"):
        state = await flow.run(warn_blocking=THRESHOLD)
    assert state.is_successful()
    warnings = blocking_warnings(caplog)
    assert len(warnings) == 1
    match = re.fullmatch(r"Task 'sleeps-in-the-loop' blocked the event loop for (\d+\.\d\d)s: (.*)", warnings[0])
    assert match is not None, warnings
    assert float(match.group(1)) > 0
    assert "time.sleep" in match.group(2)


@pytest.mark.parametrize("options", [{}, {"max_concurrency": 2}], ids=["fast-path", "under-a-slot"])
async def test_each_blocking_task_of_a_mapped_task_is_named_with_its_index(
    caplog: pytest.LogCaptureFixture, options: dict[str, Any]
) -> None:
    @task(name="m")
    async def m(i: int) -> int:
        if i == 1:
            time.sleep(THRESHOLD * 4)  # noqa: ASYNC251
        return i

    with Flow("blocks-mapped") as flow:
        m.map([0, 1, 2])
    with caplog.at_level(logging.WARNING, logger="aflow.blocking"):
        await flow.run(warn_blocking=THRESHOLD, **options)
    warnings = blocking_warnings(caplog)
    assert [w.split(" blocked")[0] for w in warnings] == ["Task 'm[1]'"]


async def test_a_blocking_task_with_a_timeout_is_named_too(caplog: pytest.LogCaptureFixture) -> None:
    @task(name="timed-blocker", timeout=60)
    async def timed() -> None:
        time.sleep(THRESHOLD * 4)  # noqa: ASYNC251

    with Flow("blocks-timed") as flow:
        timed()
    with caplog.at_level(logging.WARNING, logger="aflow.blocking"):
        await flow.run(warn_blocking=THRESHOLD)
    assert [w.split(" blocked")[0] for w in blocking_warnings(caplog)] == ["Task 'timed-blocker'"]


async def test_a_well_behaved_flow_gets_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    @task
    def sync_sleeper() -> None:
        time.sleep(THRESHOLD * 4)  # a plain def runs in a worker thread: this is fine

    with Flow("polite") as flow:
        polite()
        sync_sleeper()
        polite_child.map([1, 2, 3])
    with caplog.at_level(logging.WARNING, logger="aflow.blocking"):
        state = await flow.run(warn_blocking=THRESHOLD)
    assert state.is_successful()
    assert blocking_warnings(caplog) == []


async def test_turned_off_there_is_no_warning_and_no_watcher(caplog: pytest.LogCaptureFixture) -> None:
    seen = []

    @task
    async def look() -> None:
        seen.append(asyncio.get_running_loop() in _watches)
        time.sleep(THRESHOLD * 4)  # noqa: ASYNC251

    with Flow("off") as flow:
        look()
    with caplog.at_level(logging.WARNING, logger="aflow.blocking"):
        state = await flow.run(warn_blocking=None)
    assert state.is_successful()
    assert blocking_warnings(caplog) == []
    assert seen == [False]  # no watcher on this loop


@pytest.mark.parametrize("bad", [-0.1, "1", True])
def test_warn_blocking_must_be_seconds_or_none(bad: object) -> None:
    with Flow("f") as flow:
        polite()
    with pytest.raises(ValueError, match="warn_blocking must be a number of seconds"):
        flow._runner(None, {}, max_concurrency=None, concurrency=None, warn_blocking=bad)
