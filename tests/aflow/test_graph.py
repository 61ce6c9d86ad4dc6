"""TaskGraph: the flow's ordered, checked graph, read by the engine through its public methods."""

from __future__ import annotations

import pytest

from aflow import Flow, Parameter, Task, task
from aflow._model._graph import TaskGraph
from aflow.exceptions import FlowValidationError


@task
async def add(x: int, y: int = 0) -> int:
    return x + y


def _flow() -> tuple[Flow, list[Task]]:
    with Flow("g") as flow:
        p = Parameter("p")
        a = add(p)
        b = add(a, y=2)
        c = add(a, y=b)
    return flow, [p, a, b, c]


def test_flow_owns_one_graph_and_delegates_to_it() -> None:
    flow, (p, a, b, c) = _flow()
    graph = flow.graph
    assert isinstance(graph, TaskGraph)
    assert graph.name == "g"
    assert list(graph.tasks) == [a, p, b, c]  # insertion order: a call adds its task, then its upstreams
    assert flow.tasks == set(graph.tasks)
    assert flow.constants is graph.constants
    assert graph.constants[b] == {"y": 2}
    flow.name = "renamed"
    assert graph.name == "renamed"


def test_edges_into_and_out_of_keep_the_order_they_were_added() -> None:
    flow, (_p, a, b, c) = _flow()
    graph = flow.graph
    assert [(e.upstream_task, e.key) for e in graph.edges_into(c)] == [(a, "x"), (b, "y")]
    assert [e.downstream_task for e in graph.edges_out_of(a)] == [b, c]
    unknown = add.copy()
    assert graph.edges_into(unknown) == ()
    assert graph.edges_out_of(unknown) == ()
    assert flow.edges_to(c) == set(graph.edges_into(c))


def test_reads_are_views_that_cannot_change_the_graph() -> None:
    flow, (_p, _a, _b, _c) = _flow()
    tasks = flow.graph.tasks
    with pytest.raises(AttributeError):
        tasks.add(add.copy())  # type: ignore[attr-defined]
    flow.add_task(d := add.copy())
    assert d in tasks  # a live view
    assert flow.tasks is not flow.tasks  # the public Flow API still hands out copies


def test_version_changes_with_every_change() -> None:
    flow, (_p, _a, _b, c) = _flow()
    graph = flow.graph
    seen = {graph.version}
    flow.add_task(add.copy())
    seen.add(graph.version)
    flow.set_reference_tasks([c])
    seen.add(graph.version)
    d = add.copy()
    graph.add_constant(d, "y", 1)
    seen.add(graph.version)
    assert len(seen) == 4


def test_an_edge_closing_a_cycle_is_refused_and_the_graph_is_unchanged() -> None:
    flow, (p, a, b, c) = _flow()
    graph = flow.graph
    before = (list(graph.tasks), list(graph.edges), graph.version)
    with pytest.raises(FlowValidationError, match="would create a cycle"):
        graph.add_edge(c, a)
    assert (list(graph.tasks), list(graph.edges), graph.version) == before
    assert graph.reaches(a, c)
    assert not graph.reaches(c, a)
    assert graph.ancestors(c) == {p, a, b, c}


def test_sorted_tasks_is_layered_and_cached_by_version() -> None:
    flow, (p, a, b, c) = _flow()
    graph = flow.graph
    assert graph.sorted_tasks() == [p, a, b, c]
    assert graph.sorted_tasks(root_tasks=[b]) == [b, c]
    first = graph.sorted_tasks()
    first.clear()  # a copy: the cache is not touched
    assert graph.sorted_tasks() == [p, a, b, c]


def test_roll_back_drops_what_was_added_after_the_marks() -> None:
    flow, (_p, _a, _b, c) = _flow()
    graph = flow.graph
    marks = graph.marks(c)
    d = add.copy()
    graph.add_edge(c, d, key="x")
    graph.add_constant(d, "y", 5)
    graph.roll_back(c, marks)
    assert d not in graph
    assert list(graph.edges_out_of(c)) == []
    assert d not in graph.constants
    graph.add_edge(c, d, key="x")  # the key was released: binding it again works


def test_a_copy_is_independent() -> None:
    flow, (_p, _a, b, _c) = _flow()
    other = flow.copy()
    assert other.graph is not flow.graph
    other.add_task(d := add.copy())
    other.constants[b]["extra"] = 1
    assert d not in flow.graph
    assert "extra" not in flow.constants[b]
    assert list(other.graph.edges) == list(flow.graph.edges)


def test_remove_takes_the_task_out_of_the_chosen_reference_tasks() -> None:
    flow, (_p, _a, b, c) = _flow()
    graph = flow.graph
    graph.set_reference_tasks([b, c])
    graph.remove(c)
    assert graph.chosen_reference_tasks == frozenset({b})
    assert c not in graph.constants
    assert [e.downstream_task for e in graph.edges_out_of(b)] == []


def test_reference_tasks_default_to_the_terminal_ones() -> None:
    flow, (_p, a, _b, c) = _flow()
    assert flow.graph.reference_tasks() == {c}
    flow.set_reference_tasks([a])
    assert flow.graph.reference_tasks() == {a}
    with pytest.raises(ValueError, match="not in flow"):
        flow.set_reference_tasks([add.copy()])


def test_check_key_names_the_arguments_run_takes() -> None:
    flow, (_p, a, _b, _c) = _flow()
    with pytest.raises(FlowValidationError, match=r"run\(\) has no argument 'z' \(it takes x, y\)"):
        flow.graph.check_key(a, "z")
