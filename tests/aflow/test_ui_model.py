"""aflow ui's view of a run: task runs with attempts and timeline segments, per-task counts (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aflow._surface._ui._model import RunView
from aflow.history import TaskStateRecord

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def history(*rows: tuple[str, int | None, str, float]) -> list[TaskStateRecord]:
    return [
        TaskStateRecord(seq, "run", f"{name}-1", name, index, state, f"{state} message", T0 + timedelta(seconds=at))
        for seq, (name, index, state, at) in enumerate(rows)
    ]


GRAPH = {
    "nodes": [
        {"slug": "a-1", "name": "a", "mapped": False, "reference": False},
        {"slug": "m-1", "name": "m", "mapped": True, "reference": False},
        {"slug": "z-1", "name": "z", "mapped": False, "reference": True},
    ],
    "edges": [{"source": "a-1", "target": "m-1", "key": "x", "mapped": True}],
}


def test_a_retried_task_run_has_its_attempts_and_the_waits_between_them() -> None:
    view = RunView.build(
        history(
            ("a", None, "Running", 0), ("a", None, "Retrying", 1), ("a", None, "Running", 3), ("a", None, "Success", 4)
        ),
        None,
    )
    [run] = view.task_runs
    assert (run.name, run.state, run.attempts, run.message) == ("a", "Success", 2, "Success message")
    assert run.started_at == T0
    assert run.ended_at == T0 + timedelta(seconds=4)
    assert [(s[2], s[3], (s[1] - s[0]).total_seconds()) for s in run.segments if s[1]] == [
        ("Retrying", "attempt", 1.0),  # the failed first attempt, ended by Retrying
        ("Retrying", "wait", 2.0),
        ("Success", "attempt", 1.0),
    ]
    assert run.to_json()["segments"][0][3] == "attempt"


def test_a_task_run_in_progress_has_an_open_segment_and_no_end() -> None:
    view = RunView.build(history(("a", None, "Running", 0)), None)
    [run] = view.task_runs
    assert run.state == "Running"
    assert run.ended_at is None
    assert run.segments == [(T0, None, "Running", "attempt")]
    assert run.to_json()["ended_at"] is None


def test_mapped_children_are_counted_per_state_and_the_parent_is_no_task_run() -> None:
    view = RunView.build(
        history(
            ("a", None, "Running", 0),
            ("a", None, "Success", 1),
            ("m", 0, "Running", 1),
            ("m", 1, "Running", 1),
            ("m", 2, "Running", 1),
            ("m", 0, "Success", 2),
            ("m", 1, "Failed", 2),
            ("m", 2, "Success", 3),
            ("m", None, "Mapped", 3),
        ),
        GRAPH,
    )
    assert [(r.name, r.map_index) for r in view.task_runs] == [("a", None), ("m", 0), ("m", 1), ("m", 2)]
    m = view.summaries["m-1"]
    assert (m.state, m.mapped, m.counts) == ("Mapped", True, {"Success": 2, "Failed": 1})
    assert m.ended_at == T0 + timedelta(seconds=3)
    assert view.summaries["a-1"].counts == {"Success": 1}
    assert view.summaries["z-1"].state == "Pending"  # in the graph, never ran
    assert view.counts == {"Success": 3, "Failed": 1}
    assert [r.map_index for r in view.select(task="m", state="Success")] == [0, 2]
    assert [r.name for r in view.select(task="a-1")] == ["a"]


def test_mapped_children_running_before_the_parent_ends_make_it_running() -> None:
    view = RunView.build(history(("m", 0, "Running", 0), ("m", 1, "Success", 1)), None)
    m = view.summaries["m-1"]
    assert (m.state, m.mapped, m.counts) == ("Running", True, {"Running": 1, "Success": 1})


def test_tasks_of_a_finished_run_without_states_are_not_recorded_rather_than_pending() -> None:
    rows = history(("a", None, "Running", 0), ("a", None, "Success", 1))
    assert RunView.build(rows, GRAPH).summaries["z-1"].state == "Pending"
    assert RunView.build(rows, GRAPH, finished=True).summaries["z-1"].state == "NotRecorded"
    assert RunView.build(rows, GRAPH, finished=True).summaries["a-1"].state == "Success"
