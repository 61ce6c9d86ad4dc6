"""Property tests of the scheduler over random DAGs with random outcomes and triggers.

A small reference model, written independently of the engine, says from the upstream final
states what each task should end in (skip check first, then the trigger, then the body's own
outcome); the engine's run must agree with it, never start a body twice or before its upstreams
finished, and run independent tasks concurrently.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aflow import Flow, FunctionTask, signals, triggers
from aflow.states import Failed, Skipped, State, Success, TriggerFailed

GUARD = 10  # seconds: a lost wake-up fails the example instead of hanging it

TRIGGERS: dict[str, triggers.Trigger] = {
    "all_successful": triggers.all_successful,
    "all_finished": triggers.all_finished,
    "any_failed": triggers.any_failed,
    "any_successful": triggers.any_successful,
}
OUTCOMES = ("succeed", "raise", "skip")

# reference-model final states
SUCCESS, FAILED, SKIPPED, TRIGGER_FAILED = "success", "failed", "skipped", "trigger_failed"


@dataclass(frozen=True)
class TaskSpec:
    upstreams: tuple[int, ...]  # indices of earlier tasks
    data_edges: tuple[bool, ...]  # per upstream: a keyword (data) edge, else an ordering edge
    trigger: str
    outcome: str
    skip_on_upstream_skip: bool
    is_async: bool
    checkpoints: int  # extra yields inside an async body, to shuffle interleavings
    with_handler: bool  # record the final state through a state handler


@st.composite
def dags(draw: st.DrawFn) -> list[TaskSpec]:
    n = draw(st.integers(min_value=1, max_value=12))
    specs: list[TaskSpec] = []
    for i in range(n):
        ups: list[int] = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=4)) if i else []
        specs.append(
            TaskSpec(
                upstreams=tuple(ups),
                data_edges=tuple(draw(st.lists(st.booleans(), min_size=len(ups), max_size=len(ups)))),
                trigger=draw(st.sampled_from(sorted(TRIGGERS))),
                outcome=draw(st.sampled_from(OUTCOMES)),
                skip_on_upstream_skip=draw(st.booleans()),
                is_async=draw(st.booleans()),
                checkpoints=draw(st.integers(0, 3)),
                with_handler=draw(st.booleans()),
            )
        )
    return specs


def reference_model(specs: list[TaskSpec]) -> tuple[list[str], list[bool]]:
    """Each task's expected final state and whether its body runs, in Prefect 1's rules."""
    final: list[str] = []
    ran: list[bool] = []
    for spec in specs:
        ups = [final[j] for j in spec.upstreams]
        succeeded = [s in (SUCCESS, SKIPPED) for s in ups]  # Skipped counts as a success
        failed = [s in (FAILED, TRIGGER_FAILED) for s in ups]
        if ups and spec.skip_on_upstream_skip and SKIPPED in ups:
            final.append(SKIPPED)
            ran.append(False)
            continue
        trigger_ok = {
            "all_successful": all(succeeded),
            "all_finished": True,  # every upstream is finished when a task is considered
            "any_failed": not ups or any(failed),
            "any_successful": not ups or any(succeeded),
        }[spec.trigger]
        if not trigger_ok:
            final.append(TRIGGER_FAILED)
            ran.append(False)
            continue
        final.append({"succeed": SUCCESS, "raise": FAILED, "skip": SKIPPED}[spec.outcome])
        ran.append(True)
    return final, ran


def classify(state: State) -> str:
    if type(state) is Success:
        return SUCCESS
    if type(state) is Skipped:
        return SKIPPED
    if type(state) is TriggerFailed:
        return TRIGGER_FAILED
    if type(state) is Failed:
        return FAILED
    return f"unexpected {state!r}"


@dataclass
class Recorder:
    """A thread-safe log of body starts and ends and of final states."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    starts: dict[int, int] = field(default_factory=dict)
    # at each body start: (tasks whose handler saw a final state, bodies that had ended)
    seen_at_start: dict[int, tuple[frozenset[int], frozenset[int]]] = field(default_factory=dict)
    inputs: dict[int, dict[str, Any]] = field(default_factory=dict)
    ended: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)

    def start(self, i: int, kwargs: dict[str, Any]) -> None:
        with self.lock:
            self.starts[i] = self.starts.get(i, 0) + 1
            self.seen_at_start[i] = (frozenset(self.finished), frozenset(self.ended))
            self.inputs[i] = dict(kwargs)

    def end(self, i: int) -> None:
        with self.lock:
            self.ended.add(i)

    def handler(self, i: int) -> Callable[[Any, State, State], None]:
        def record_final(task: Any, old: State, new: State) -> None:
            if new.is_finished():
                with self.lock:
                    self.finished.add(i)

        return record_final


def outcome_of(i: int, spec: TaskSpec) -> Any:
    if spec.outcome == "raise":
        raise ValueError(f"task {i} fails")
    if spec.outcome == "skip":
        raise signals.SKIP(f"task {i} skips")
    return i


def make_task(i: int, spec: TaskSpec, rec: Recorder) -> FunctionTask:
    if spec.is_async:

        async def body(**kwargs: Any) -> Any:
            rec.start(i, kwargs)
            for _ in range(spec.checkpoints):
                await asyncio.sleep(0)
            rec.end(i)
            return outcome_of(i, spec)

        fn: Callable[..., Any] = body
    else:

        def sync_body(**kwargs: Any) -> Any:
            rec.start(i, kwargs)
            rec.end(i)
            return outcome_of(i, spec)

        fn = sync_body
    return FunctionTask(
        fn,
        name=f"t{i}",
        trigger=TRIGGERS[spec.trigger],
        skip_on_upstream_skip=spec.skip_on_upstream_skip,
        state_handlers=[rec.handler(i)] if spec.with_handler else None,
    )


def build(specs: list[TaskSpec], rec: Recorder) -> tuple[Flow, list[FunctionTask]]:
    flow = Flow("random-dag")
    tasks = [make_task(i, spec, rec) for i, spec in enumerate(specs)]
    for t, spec in zip(tasks, specs, strict=True):
        ordering = [tasks[j] for j, data in zip(spec.upstreams, spec.data_edges, strict=True) if not data]
        keywords = {f"u{j}": tasks[j] for j, data in zip(spec.upstreams, spec.data_edges, strict=True) if data}
        flow.set_dependencies(t, upstream_tasks=ordering, keyword_tasks=keywords)
    return flow, tasks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_random_dag_follows_the_reference_model(specs: list[TaskSpec]) -> None:
    rec = Recorder()
    flow, tasks = build(specs, rec)
    assert len(flow) == len(specs)

    async def main() -> State:
        with anyio.fail_after(GUARD):
            return await flow.run()

    flow_state = anyio.run(main)
    expected, expected_ran = reference_model(specs)
    states: dict[Any, State] = flow_state.result
    assert set(states) == set(tasks)
    got = [classify(states[t]) for t in tasks]
    assert got == expected

    # each body runs at most once (no retries), and exactly the ones the model says
    assert all(n == 1 for n in rec.starts.values()), rec.starts
    assert sorted(rec.starts) == [i for i, r in enumerate(expected_ran) if r]
    assert rec.ended == set(rec.starts)
    # a handler saw the final state of every task that has one
    assert rec.finished == {i for i, spec in enumerate(specs) if spec.with_handler}

    for i, spec in enumerate(specs):
        if i not in rec.starts:
            continue
        finished_before, ended_before = rec.seen_at_start[i]
        for j in spec.upstreams:
            # an upstream is finished before its downstream body starts
            if specs[j].with_handler:
                assert j in finished_before, f"t{i} started before upstream t{j} finished"
            if expected_ran[j]:
                assert j in ended_before, f"t{i} started before upstream t{j}'s body ended"
        # data edges deliver the upstream's result (its value, or the exception of a failure)
        keys = {f"u{j}" for j, data in zip(spec.upstreams, spec.data_edges, strict=True) if data}
        assert set(rec.inputs[i]) == keys
        for key in keys:
            j = int(key[1:])
            up_state = states[tasks[j]]
            assert rec.inputs[i][key] is up_state.result
            if expected[j] == SUCCESS:
                assert rec.inputs[i][key] == j
            elif expected[j] == FAILED:
                assert isinstance(rec.inputs[i][key], ValueError)

    for t, exp in zip(tasks, expected, strict=True):
        if exp == FAILED:
            assert isinstance(states[t].result, ValueError)

    terminal = {i for i in range(len(specs)) if not any(i in s.upstreams for s in specs)}
    assert flow.terminal_tasks() == {tasks[i] for i in terminal}
    any_terminal_failed = any(expected[i] in (FAILED, TRIGGER_FAILED) for i in terminal)
    assert flow_state.is_failed() == any_terminal_failed
    assert type(flow_state) is (Failed if any_terminal_failed else Success)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.booleans(), min_size=2, max_size=8))
def test_independent_tasks_overlap(kinds: list[bool]) -> None:
    """Bodies (async ones on the loop, sync ones in threads) that each wait for all the others.

    The last to arrive releases everyone, so the flow can only succeed if all of them run at
    the same time; the guard turns a serial schedule into a failure instead of a hang.
    """
    k = len(kinds)
    lock = threading.Lock()
    arrived: list[int] = []
    released = threading.Event()
    loop_released = asyncio.Event()  # made per example; bound to the run's loop on first use

    async def main() -> State:
        loop = asyncio.get_running_loop()

        def arrive(i: int) -> None:
            with lock:
                arrived.append(i)
                last = len(arrived) == k
            if last:
                released.set()
                loop.call_soon_threadsafe(loop_released.set)

        async def meet_async(i: int) -> int:
            arrive(i)
            with anyio.fail_after(GUARD):
                await loop_released.wait()
            return i

        def meet_sync(i: int) -> int:
            arrive(i)
            if not released.wait(GUARD):
                raise TimeoutError(f"task {i} waited alone")
            return i

        flow = Flow("independent")
        for i, is_async in enumerate(kinds):
            fn: Callable[..., Any] = meet_async if is_async else meet_sync
            flow.set_dependencies(FunctionTask(fn, name=f"meet{i}"), keyword_tasks={"i": i})
        assert len(flow.root_tasks()) == k
        assert flow.edges == set()
        with anyio.fail_after(2 * GUARD):
            return await flow.run()

    state = anyio.run(main)
    assert state.is_successful(), state.result
    assert sorted(s.result for s in state.result.values()) == list(range(k))
    assert sorted(arrived) == list(range(k))
