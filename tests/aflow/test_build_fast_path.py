"""The one-step way a common call joins the graph (`TaskGraph.add_call`) agrees with the general one."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from aflow import Flow, Task, task
from aflow._model._builtin_tasks import List, as_task
from aflow._model._graph import TaskGraph
from aflow._runtime import _gc
from aflow.exceptions import FlowValidationError


@task
async def add(x: int, y: int = 0) -> int:
    return x + y


def _shape(flow: Flow) -> tuple[Any, ...]:
    graph = flow.graph
    return (
        [t.slug for t in graph.tasks],
        [(e.upstream_task.slug, e.downstream_task.slug, e.key, e.mapped, e.flattened) for e in graph.edges],
        {t.slug: c for t, c in graph.constants.items()},
        {t.slug: [e.key for e in graph.edges_into(t)] for t in graph.tasks},
        {t.slug: [e.key for e in graph.edges_out_of(t)] for t in graph.tasks},
    )


def test_a_call_builds_what_set_dependencies_builds() -> None:
    with Flow("fast") as fast:
        a = add(1)
        b = add(a, y=2)
        add(a, y=b)
    slow = Flow("slow")
    a2, b2, c2 = add.copy(), add.copy(), add.copy()
    slow.set_dependencies(a2, keyword_tasks={"x": 1})
    slow.set_dependencies(b2, keyword_tasks={"x": a2, "y": 2})
    slow.set_dependencies(c2, keyword_tasks={"x": a2, "y": b2})
    assert _shape(fast) == _shape(slow)


def test_add_call_changes_nothing_when_the_call_is_not_simple() -> None:
    graph = TaskGraph("g")
    outside = add.copy()  # a task of no graph
    for arguments in ({"x": outside}, {"x": [1, 2]}, {"nope": 1}):
        new = add.copy()
        assert graph.add_call(new, arguments) is False
        assert len(graph) == 0
        assert not list(graph.edges)
        assert not graph.constants
        assert new.slug is None
    first = add.copy()
    assert graph.add_call(first, {"x": 1}) is True
    assert graph.add_call(first, {"x": 2}) is False  # already in the graph


def test_a_key_bound_by_a_call_cannot_be_bound_again() -> None:
    with Flow("f") as flow:
        a = add(1)
        b = add(a)
    with pytest.raises(FlowValidationError, match="bound twice"):
        flow.add_edge(a, b, key="x")
    with pytest.raises(FlowValidationError, match="bound twice"):
        flow.set_dependencies(a, keyword_tasks={"x": 3})
    flow.set_dependencies(b, keyword_tasks={"y": 5})  # another key is fine
    assert flow.constants[b] == {"y": 5}


def test_a_subclass_overriding_bind_is_still_called() -> None:
    seen: list[tuple[Any, ...]] = []

    class Logged(Task):
        async def run(self, x: int) -> int:
            return x

        def bind(self, *args: Any, **kwargs: Any) -> Task:
            seen.append(args)
            return super().bind(*args, **kwargs)

    with Flow("f") as flow:
        t = Logged()(1)
    assert seen == [(1,)]
    assert flow.constants[t] == {"x": 1}


def test_edges_kept_as_tuples_grow_shrink_and_copy() -> None:
    with Flow("f") as flow:
        a = add(1)
        b = add(a)
    graph = flow.graph
    c = add.copy()
    flow.add_edge(a, c, key="x")  # a second edge out of a
    assert [e.downstream_task for e in graph.edges_out_of(a)] == [b, c]
    copy = graph.copy()
    graph.remove(b)
    assert [e.downstream_task for e in graph.edges_out_of(a)] == [c]
    assert [e.downstream_task for e in copy.edges_out_of(a)] == [b, c]
    flow.replace(c, add.copy())
    assert len(graph.edges_out_of(a)) == 1


@task
async def ident(xs: list[int]) -> list[int]:
    return xs


async def test_a_long_list_keeps_its_order() -> None:
    n = 17_000  # past the shared arg_i names
    with Flow("f") as flow:
        collected = ident([add(i) for i in range(n)])
    (edge,) = flow.graph.edges_into(collected)
    assert isinstance(edge.upstream_task, List)
    keys = [e.key for e in flow.graph.edges_into(edge.upstream_task)]
    assert keys == [f"arg_{i}" for i in range(n)]
    state = await flow.run()
    assert state.result[collected].result == list(range(n))


def test_slugs_given_by_calls_still_collide_with_given_ones() -> None:
    with Flow("f") as flow:
        a = add(1)
        add(2)
    assert a.slug == "add-1"
    clash = add.copy()
    clash.slug = "add-1"
    with pytest.raises(FlowValidationError, match="already has a task with slug 'add-1'"):
        flow.add_task(clash)
    flow.graph.remove(a)  # its slug is free again
    flow.add_task(clash)
    with Flow("other") as other:
        foreign = add(3)  # "add-1" there too: renamed when merged
    flow.update(other)
    assert foreign.slug == "add-3"
    with flow:
        c = add(4)
    assert c.slug == "add-4"
    assert len({t.slug for t in flow.graph.tasks}) == len(flow.graph)


def test_edges_out_of_a_task_read_the_same_as_they_grow_and_shrink() -> None:
    with Flow("f") as flow:
        a = add(1)
    graph = flow.graph
    assert graph.edges_out_of(a) == ()
    b, c = add.copy(), add.copy()
    first = graph.add_edge(a, b, key="x")
    assert list(graph.edges_out_of(a)) == [first]
    second = graph.add_edge(a, c, key="x")
    assert list(graph.edges_out_of(a)) == [first, second]
    graph.remove(b)
    assert list(graph.edges_out_of(a)) == [second]
    assert graph.reference_tasks() == {c}
    graph.remove(c)
    assert list(graph.edges_out_of(a)) == []
    assert graph.reference_tasks() == {a}


def test_building_keeps_young_collections_small_and_puts_the_thresholds_back() -> None:
    before = gc.get_threshold()
    with Flow("f"):
        inside = gc.get_threshold()
        _gc.relax()  # a large run starting meanwhile gets the run thresholds
        running = gc.get_threshold()
        _gc.restore()
        assert gc.get_threshold() == inside
    assert gc.get_threshold() == before
    assert inside == (max(before[0], 10_000), max(before[1], 1_000), before[2])
    assert running == (max(before[0], 500_000), before[1], before[2])


def test_a_list_past_the_shared_names_binds_its_items_in_order() -> None:
    with Flow("f") as flow:
        items = [add(i) for i in range(20_000)]
        listed = as_task(items)
    edges = flow.graph.edges_into(listed)
    assert [e.key for e in edges] == [f"arg_{i}" for i in range(20_000)]
    assert [e.upstream_task for e in edges] == items
