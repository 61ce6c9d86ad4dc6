"""A task body that ignores its cancellation is given up on after ``cancel_grace`` seconds.

The body is cancelled once (no re-delivery at every await); when it is still running once the
grace period is over, the run marks the task (TimedOut for a timeout, Cancelled for a cancelled
run) with a message naming it and saying it ignored cancellation, and the run ends. Timeouts and
the grace are waits on the run's clock: these tests run on a `FakeClock` and move its time
(``clock.jump()``), and bound each real wait only as a guard against a hang.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from aflow import Flow, task
from aflow.states import Cancelled, Success, TimedOut
from aflow.testing import FakeClock

HANG_GUARD = 30.0
GRACE = 0.1


class Stubborn:
    """A body that swallows every CancelledError; counts the cancellations it saw."""

    def __init__(self) -> None:
        self.swallowed = 0
        self.started = asyncio.Event()
        self.closed = False

    async def run(self) -> None:
        self.started.set()
        try:
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    self.swallowed += 1
        finally:
            self.closed = True


async def test_a_body_ignoring_its_timeout_is_timed_out_and_the_run_ends() -> None:
    body = Stubborn()
    with Flow("stubborn-timeout") as flow:
        t = task(name="stubborn", timeout=0.05)(body.run)()
        ok = task(name="ok")(lambda: 1)()
    clock = FakeClock()
    handle = flow.start(clock=clock, cancel_grace=GRACE)
    await clock.jump()  # the timeout: the body is cancelled, and swallows it
    await clock.jump()  # the grace is over: the run gives up on it
    state = await asyncio.wait_for(handle.wait(), HANG_GUARD)
    assert state.is_failed()
    result = state.result[t]
    assert type(result) is TimedOut
    assert result.message == (
        "Task 'stubborn' was still running 0.1s after its timeout of 0.05s: it ignored cancellation "
        "(it caught CancelledError without re-raising it); the run gave up on it"
    )
    assert isinstance(state.result[ok], Success)
    assert body.swallowed == 1  # cancelled once, then closed: no re-delivery loop
    assert body.closed  # its finally block ran


async def test_a_body_ignoring_a_cancelled_run_is_cancelled_and_the_run_ends() -> None:
    body = Stubborn()
    with Flow("stubborn-cancel") as flow:
        t = task(name="stubborn")(body.run)()
        quick = task(name="polite")(asyncio.sleep)(3600)
    clock = FakeClock()
    handle = flow.start(clock=clock, cancel_grace=GRACE)
    await asyncio.wait_for(body.started.wait(), HANG_GUARD)
    handle.cancel()
    await clock.jump()  # the grace is over
    state = await asyncio.wait_for(handle.wait(), HANG_GUARD)
    assert isinstance(state, Cancelled)
    assert state.result[t].message == (
        "Task 'stubborn' was still running 0.1s after the flow run was cancelled: it ignored cancellation "
        "(it caught CancelledError without re-raising it); the run gave up on it"
    )
    assert state.result[quick].message == "Flow run was cancelled before the task finished."
    assert body.swallowed == 1
    assert body.closed


async def test_cancelling_the_awaiting_task_gives_up_on_an_ignoring_body() -> None:
    body = Stubborn()
    with Flow("stubborn-caller") as flow:
        task(name="stubborn")(body.run)()
    clock = FakeClock()
    run = asyncio.ensure_future(flow.run(clock=clock, cancel_grace=GRACE))
    await asyncio.wait_for(body.started.wait(), HANG_GUARD)
    run.cancel()
    await clock.jump()  # the grace is over
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, HANG_GUARD)
    assert body.swallowed == 1
    assert body.closed


async def test_a_mapped_child_ignoring_cancellation_is_named_with_its_index() -> None:
    bodies = [Stubborn(), Stubborn()]

    async def child(i: int) -> None:
        if i == 1:
            await bodies[0].run()
        else:
            await asyncio.sleep(3600)

    with Flow("stubborn-mapped") as flow:
        t = task(name="child")(child).map([0, 1, 2])
    clock = FakeClock()
    handle = flow.start(clock=clock, cancel_grace=GRACE)
    await asyncio.wait_for(bodies[0].started.wait(), HANG_GUARD)
    handle.cancel()
    await clock.jump()  # the grace is over
    state = await asyncio.wait_for(handle.wait(), HANG_GUARD)
    assert isinstance(state, Cancelled)
    message = state.result[t].message
    assert message.startswith("Flow run was cancelled before the task finished; Task 'child[1]' was still running")
    assert "it ignored cancellation" in message


async def test_a_sync_body_running_past_the_grace_is_given_up_on() -> None:
    release = threading.Event()
    with Flow("sync-past-grace") as flow:
        t = task(name="sleeper", timeout=0.01)(lambda: release.wait(HANG_GUARD))()
    clock = FakeClock()
    handle = flow.start(clock=clock, cancel_grace=0.01)
    try:
        await clock.jump()  # the timeout
        await clock.jump()  # the grace: the thread still runs
        state = await asyncio.wait_for(handle.wait(), HANG_GUARD)
    finally:
        release.set()
    assert type(state.result[t]) is TimedOut
    assert "its body runs in a worker thread, which cannot be interrupted" in state.result[t].message


async def test_a_polite_body_still_times_out_with_the_usual_message() -> None:
    with Flow("polite-timeout") as flow:
        t = task(name="polite", timeout=0.01)(asyncio.sleep)(3600)
    clock = FakeClock()
    handle = flow.start(clock=clock)
    await clock.jump()  # the timeout
    state = await asyncio.wait_for(handle.wait(), HANG_GUARD)
    assert state.result[t].message == "Task 'polite' timed out after 0.01 seconds"


@pytest.mark.parametrize("bad", [-1, "5", True, None])
def test_cancel_grace_must_be_a_non_negative_number(bad: object) -> None:
    with Flow("f") as flow:
        task(lambda: 1)()
    if bad is None:  # None means the default
        flow._runner(None, {}, max_concurrency=None, concurrency=None, cancel_grace=None)
        return
    with pytest.raises(ValueError, match="cancel_grace must be a non-negative number of seconds"):
        flow._runner(None, {}, max_concurrency=None, concurrency=None, cancel_grace=bad)
