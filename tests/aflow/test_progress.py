"""The live progress display (``flow.run(progress=...)``) and the engine's observer hook."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console

from aflow import Flow, Task, task
from aflow._engine._scheduler import FlowRunner
from aflow._surface._progress import ProgressDisplay
from aflow._surface._run_tracker import RunTracker
from aflow.states import State

X = "\N{MULTIPLICATION SIGN}"


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables that make rich treat any output as a terminal are not set here."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def terminal() -> tuple[Console, io.StringIO]:
    """A console that believes it draws on an interactive terminal."""
    out = io.StringIO()
    return Console(file=out, force_terminal=True, force_interactive=True, width=120, color_system=None), out


def plain(text: str) -> str:
    """The drawn text without cursor-control sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def map_flow(fail: int | None = None) -> Flow:
    @task
    async def nums():
        return [0, 1, 2, 3]

    @task
    async def inc(x):
        if x == fail:
            raise ValueError("no")
        return x + 1

    @task
    async def total(xs):
        return sum(xs)

    with Flow("mapping") as flow:
        total(inc.map(nums()))
    return flow


# -- silent when not interactive --------------------------------------------------------------


async def test_progress_writes_nothing_when_not_on_a_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    flow = map_flow(fail=2)
    state = await flow.run(progress=True)  # rich's console on the captured (not a terminal) stdout
    assert state.is_failed()
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


async def test_a_console_that_is_not_a_terminal_gets_nothing() -> None:
    out = io.StringIO()
    state = await map_flow().run(progress=Console(file=out))
    assert state.is_successful()
    assert out.getvalue() == ""


async def test_no_observer_is_set_when_the_display_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    original = FlowRunner.run

    async def spy(self: FlowRunner) -> State:
        seen.append(self.observer)
        return await original(self)

    monkeypatch.setattr(FlowRunner, "run", spy)
    await map_flow().run(progress=Console(file=io.StringIO()))
    await map_flow().run()
    assert seen == [None, None]


async def test_bad_progress_values() -> None:
    with pytest.raises(TypeError, match="progress must be"):
        await map_flow().run(progress="yes")  # type: ignore[arg-type]


# -- the display on a terminal ----------------------------------------------------------------


async def test_counts_update_as_tasks_finish() -> None:
    console, out = terminal()
    display = ProgressDisplay(console, auto_refresh=False)
    frames: list[str] = []

    def frame() -> None:
        """Draw now and keep what this draw wrote."""
        before = len(out.getvalue())
        display.refresh()
        frames.append(plain(out.getvalue()[before:]))

    @task
    async def first():
        frame()
        return 1

    @task
    async def second(x):
        frame()
        return x + 1

    @task
    async def third(x):
        frame()
        return x + 1

    with Flow("chain") as flow:
        third(second(first()))

    state = await flow.run(progress=display)
    assert state.is_successful()
    assert len(frames) == 3
    assert re.search(r"chain .* 0/3 +1 running", frames[0])
    assert re.search(r"chain .* 1/3 +1 running", frames[1])
    assert re.search(r"chain .* 2/3 +1 running", frames[2])
    final = plain(out.getvalue()).splitlines()[-1]
    assert re.search(r"chain .* 3/3 ", final)
    assert "running" not in final
    assert "failed" not in final


async def test_maps_get_their_own_line_with_failures() -> None:
    console, out = terminal()
    display = ProgressDisplay(console, auto_refresh=False)
    seen: list[str] = []

    @task
    async def nums():
        return list(range(5))

    @task
    async def inc(x):
        if x == 1:
            raise ValueError("one")
        return x

    @task(trigger=lambda upstream: True)
    async def report(xs):
        before = len(out.getvalue())
        display.refresh()
        seen.append(plain(out.getvalue()[before:]))

    with Flow("fan") as flow:
        report(inc.map(nums()))

    await flow.run(progress=display)
    (frame,) = seen
    assert re.search(r"fan .* 6/7 +1 running +1 failed", frame)  # nums, 5 children, report (running)
    assert re.search(rf"inc {X}5 .* 5/5 +1 failed", frame)
    final = plain(out.getvalue())
    assert re.search(r"fan .* 7/7 +1 failed", final)


async def test_progress_true_draws_on_an_interactive_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich: the captured stdout counts as a terminal
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    state = await map_flow().run(progress=True)
    assert state.is_successful()
    text = plain(capsys.readouterr().out)
    assert re.search(r"mapping .* 6/6", text)
    assert re.search(rf"inc {X}4 .* 4/4", text)


async def test_a_display_on_a_console_is_drawn() -> None:
    console, out = terminal()
    state = await map_flow(fail=0).run(progress=console)
    assert state.is_failed()
    assert re.search(r"mapping .* 6/6 +2 failed", plain(out.getvalue()))  # a child and total (TriggerFailed)
    assert re.search(rf"inc {X}4 .* 4/4 +1 failed", plain(out.getvalue()))


# -- the tracker, and the engine hook it rides on ---------------------------------------------


async def test_the_tracker_counts_and_times_a_run() -> None:
    flow = map_flow(fail=3)
    tracker = RunTracker(flow)
    runner = flow._runner(None, {}, max_concurrency=None, concurrency=None)
    runner.observer = tracker
    state = await runner.run()
    tracker.finish()
    assert state.is_failed()
    assert (tracker.total, tracker.done, tracker.running, tracker.failed) == (6, 6, 0, 2)
    assert tracker.mapped_by_name() == {"inc": (4, 4, 0, 1)}
    assert tracker.mapped_names == ["inc"]
    by_name = {s.name: s for s in tracker.stats.values()}
    assert by_name["inc"].width == 4
    assert by_name["inc"].state is not None
    assert by_name["inc"].state.is_mapped()
    assert by_name["total"].state is not None
    assert by_name["total"].state.is_failed()
    assert all(s.duration is not None and s.duration >= 0 for s in tracker.stats.values())
    assert tracker.elapsed >= 0


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    def task_started(self, task: Task, map_index: int | None) -> None:
        self.events.append(("start", task.name, map_index))

    def task_mapped(self, task: Task, width: int) -> None:
        self.events.append(("map", task.name, width))

    def task_finished(self, task: Task, map_index: int | None, state: State) -> None:
        self.events.append(("end", task.name, (map_index, type(state).__name__)))


async def test_the_engine_reports_starts_maps_and_final_states() -> None:
    flow = map_flow(fail=1)
    runner = flow._runner(None, {}, max_concurrency=None, concurrency=None)
    assert runner.observer is None  # the default: the scheduler skips every report
    recorder = runner.observer = Recorder()
    await runner.run()
    events = recorder.events
    assert events[:3] == [("start", "nums", None), ("end", "nums", (None, "Success")), ("map", "inc", 4)]
    children = [e for e in events if e[1] == "inc" and e[0] != "map"]
    assert sorted(e for e in children if e[0] == "start") == [("start", "inc", i) for i in range(4)]
    child_ends = sorted(e[2] for e in children if e[0] == "end" and e[2][0] is not None)
    assert child_ends == [(0, "Success"), (1, "Failed"), (2, "Success"), (3, "Success")]
    parent_end = events.index(("end", "inc", (None, "Mapped")))  # after every child
    assert parent_end > max(events.index(("end", "inc", end)) for end in child_ends)
    assert events[-1] == ("end", "total", (None, "TriggerFailed"))
    assert ("start", "total", None) in events


async def test_a_started_run_draws_its_display_too() -> None:
    console, out = terminal()
    handle = map_flow().start(progress=console)
    state = await handle
    assert state.is_successful()
    assert re.search(r"mapping .* 6/6", plain(out.getvalue()))


async def test_start_refuses_a_bad_progress_value_at_once() -> None:
    with pytest.raises(TypeError, match="progress must be"):
        map_flow().start(progress="yes")  # type: ignore[arg-type]


# -- running means bodies running; a failed run ends red --------------------------------------


async def test_running_counts_bodies_not_task_runs_waiting_for_a_slot() -> None:
    import asyncio

    release = asyncio.Event()
    two_started = asyncio.Event()
    started: list[int] = []

    @task
    async def nums():
        return list(range(6))

    @task
    async def slow(x):
        started.append(x)
        if len(started) == 2:
            two_started.set()
        await release.wait()
        return x

    with Flow("limited") as flow:
        slow.map(nums())

    tracker = RunTracker(flow)
    runner = flow._runner(None, {}, max_concurrency=2, concurrency=None)
    runner.observer = tracker
    run = asyncio.ensure_future(runner.run())
    await two_started.wait()
    for _ in range(10):  # the other four reach the semaphore
        await asyncio.sleep(0)
    assert (tracker.running, tracker.waiting) == (2, 4)
    assert tracker.mapped_by_name()["slow"] == (0, 6, 2, 0)
    assert tracker.waiting_by_name() == {"slow": 4}
    release.set()
    state = await run
    assert state.is_successful()
    assert (tracker.running, tracker.waiting, tracker.done) == (0, 0, 7)


async def test_the_tracker_counts_attempts_and_retry_delays_as_waiting() -> None:
    from datetime import datetime

    from aflow._runtime._clock import Clock
    from aflow.testing import FakeClock

    tries: list[int] = []

    @task(max_retries=2, retry_delay=5)
    async def shaky():
        tries.append(1)
        if len(tries) < 3:
            raise ValueError("again")
        return 1

    with Flow("retry") as flow:
        shaky()

    tracker = RunTracker(flow)
    during_delays: list[tuple[int, int]] = []

    fake = FakeClock()

    class Watching(Clock):
        def now(self) -> datetime:
            return fake.now()

        async def sleep(self, seconds: float) -> None:
            during_delays.append((tracker.running, tracker.waiting))
            await fake.sleep(seconds)

    runner = flow._runner(None, {}, max_concurrency=None, concurrency=None, clock=Watching())
    runner.observer = tracker
    assert (await runner.run()).is_successful()
    (stats,) = tracker.stats.values()
    assert stats.attempts == 3
    assert during_delays == [(0, 1), (0, 1)]  # no body runs while a retry waits
    assert (tracker.running, tracker.waiting) == (0, 0)


async def test_a_failed_run_ends_red_with_the_number_failed() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, force_interactive=True, width=120, color_system="standard")
    state = await map_flow(fail=0).run(progress=console)
    assert state.is_failed()
    last = out.getvalue().rsplit("\r\x1b[2K", 1)[-1]  # the final frame
    flow_line, inc_line = last.splitlines()[:2]
    assert flow_line.startswith("\x1b[1;31m✗")  # a red cross, not the green tick
    assert "\x1b[1;31mmapping" in flow_line  # the flow's name in red
    assert re.search(r"mapping .* 6/6 +2 failed", plain(flow_line))
    assert "\x1b[1;31m2 failed" in flow_line
    assert inc_line.startswith("\x1b[1;31m✗")  # the mapped task with a failed child too


async def test_a_successful_run_ends_with_a_tick() -> None:
    console, out = terminal()
    assert (await map_flow().run(progress=console)).is_successful()
    final = plain(out.getvalue())
    assert "✓" in final
    assert "✗" not in final
