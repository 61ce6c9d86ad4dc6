"""Cancelling ShellTasks at every moment of their spawn leaves no process behind and ends the run.

Each trial starts a flow of 20 ShellTasks running ``sleep 300 & sleep 300`` and cancels it at a
different moment: after 0, 1, 2... event-loop iterations (before, during and after the forks),
then after growing real delays. After each trial ``/proc`` must hold no live process carrying the
trial's marker (every command gets it in its environment), in particular none reparented to
pid 1. The run has to end: each wait is bounded only as a guard against a hang (300 s sleeps).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from pathlib import Path

import pytest

from aflow import Flow
from aflow.states import Cancelled
from aflow_tasks.shell import ShellTask

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")

WIDTH = 20
HANG_GUARD = 30.0  # seconds; a run that ends at all ends in well under a second here
ITERATIONS = [0, 1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 40, 60]
DELAYS = [0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3]


def survivors(marker: str) -> list[tuple[int, int, str]]:
    """Live processes whose environment holds ``marker``: (pid, ppid, state). Zombies are dead."""
    needle = f"AFLOW_TRIAL={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:  # gone meanwhile, or not ours
            continue
        if needle not in environ.split(b"\0"):
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[0] not in (b"Z", b"X"):
            found.append((int(entry), int(fields[1]), fields[0].decode()))
    return found


async def no_survivors(marker: str) -> list[tuple[int, int, str]]:
    """Poll briefly (SIGTERM'd processes take a moment to die), then return what still ran.

    Survivors are killed before returning, so a failing trial does not leave them behind.
    """
    for _ in range(100):
        left = survivors(marker)
        if not left:
            return left
        await asyncio.sleep(0.02)
    for pid, _, _ in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return left


def sleepers(marker: str) -> Flow:
    sh = ShellTask(command="sleep 300 & sleep 300", env={"AFLOW_TRIAL": marker})
    with Flow("cancel-trial") as flow:
        for i in range(WIDTH):
            sh(task_args={"name": f"sleepers-{i}"})
    return flow


async def wait_point(point: tuple[str, float]) -> None:
    kind, amount = point
    if kind == "iterations":
        for _ in range(int(amount)):
            await asyncio.sleep(0)
    else:
        await asyncio.sleep(amount)


POINTS = [("iterations", n) for n in ITERATIONS] + [("seconds", d) for d in DELAYS]


async def test_flow_start_cancel_at_every_point_of_the_spawn():
    leftovers = {}
    for point in POINTS:
        marker = uuid.uuid4().hex
        handle = sleepers(marker).start()
        await wait_point(point)
        handle.cancel()
        state = await asyncio.wait_for(handle.wait(), HANG_GUARD)
        assert isinstance(state, Cancelled), point
        assert all(isinstance(s, Cancelled) for s in state.result.values()), point
        left = await no_survivors(marker)
        if left:
            leftovers[point] = left
    assert leftovers == {}


async def test_cancelling_the_awaiting_task_at_every_point_of_the_spawn():
    leftovers = {}
    for point in POINTS:
        marker = uuid.uuid4().hex
        run = asyncio.ensure_future(sleepers(marker).run())
        await wait_point(point)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, HANG_GUARD)
        left = await no_survivors(marker)
        if left:
            leftovers[point] = left
    assert leftovers == {}
