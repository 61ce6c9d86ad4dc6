from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import aflow
from aflow import (
    Constant,
    Edge,
    Flow,
    FlowValidationError,
    Parameter,
    ParameterError,
    Task,
    context,
    signals,
    task,
    unmapped,
)
from aflow.states import Cancelled, Failed, Mapped, Pending, Running, Skipped, State, Success, TriggerFailed
from aflow.testing import FakeClock
from tests.flows import diamond, failing_leaf, map_reduce, retry_then_succeed


class Add(Task):
    async def run(self, x, y=0):
        return x + y


class Echo(Task):
    async def run(self, value=None):
        return value


def edge_tuples(flow: Flow) -> set[tuple[Task, Task, str | None, bool, bool]]:
    return {(e.upstream_task, e.downstream_task, e.key, e.mapped, e.flattened) for e in flow.edges}


# -- functional building ------------------------------------------------------------------------


def test_functional_building_records_tasks_edges_and_constants():
    with Flow("f") as flow:
        x = Parameter("x")
        total = Add()(x, y=5)
    assert flow.tasks == {x, total}
    assert edge_tuples(flow) == {(x, total, "x", False, False)}
    # a plain value is kept out of the graph: a constant of the task, not a task of its own
    assert flow.constants == {total: {"y": 5}}
    assert not any(isinstance(t, Constant) for t in flow.tasks)


def test_functional_calls_copy_the_task_so_each_call_is_a_node():
    add = Add(name="add")
    with Flow("f") as flow:
        first = add(1)
        second = add(first)
    assert add not in flow
    assert first is not second
    assert flow.tasks == {first, second}
    assert flow.upstream_tasks(second) == {first}


def test_nested_with_blocks_build_into_the_innermost_flow():
    with Flow("outer") as outer:
        a = Add()(1)
        with Flow("inner") as inner:
            b = Add()(2)
        c = Add()(3)
    assert outer.tasks == {a, c}
    assert inner.tasks == {b}


def test_flow_needs_a_non_empty_name():
    with pytest.raises(ValueError, match="non-empty name"):
        Flow("")


# -- imperative building ------------------------------------------------------------------------


def test_add_task_is_idempotent_and_adds_no_edges():
    flow = Flow("f")
    t = Add()
    assert flow.add_task(t) is t
    assert flow.add_task(t) is t
    assert flow.tasks == {t}
    assert len(flow) == 1
    assert t in flow
    assert flow.edges == set()


def test_add_task_rejects_non_tasks():
    with pytest.raises(TypeError, match="Flows hold Tasks"):
        Flow("f").add_task(42)  # type: ignore[arg-type]


def test_add_edge_with_key_mapped_and_flattened():
    flow = Flow("f")
    up, down = Echo(), Add()
    e1 = flow.add_edge(up, down, key="x", mapped=True)
    e2 = flow.add_edge(Echo(), down, key="y", flattened=True)
    assert (e1.key, e1.mapped, e1.flattened) == ("x", True, False)
    assert (e2.key, e2.mapped, e2.flattened) == ("y", False, True)
    assert flow.edges == {e1, e2}
    assert flow.tasks == {up, down, e2.upstream_task}


def test_add_edge_turns_a_value_into_a_constant_task():
    flow = Flow("f")
    down = Add()
    edge = flow.add_edge(7, down, key="x")
    assert isinstance(edge.upstream_task, Constant)
    assert edge.upstream_task.value == 7
    assert edge.upstream_task in flow


def test_adding_the_same_edge_twice_keeps_one_edge():
    flow = Flow("f")
    up, down = Echo(), Add()
    first = flow.add_edge(up, down)
    second = flow.add_edge(up, down)
    assert first == second
    assert len(flow.edges) == 1


def test_adding_the_same_keyed_edge_twice_is_refused():
    # Prefect 1 refuses a second assignment of a key (this was a silent no-op)
    flow = Flow("f")
    up, down = Echo(), Add()
    flow.add_edge(up, down, key="x")
    with pytest.raises(FlowValidationError, match=r"'x' of 'Add' is bound twice.*copy"):
        flow.add_edge(up, down, key="x")
    assert len(flow.edges) == 1


def test_flow_constructor_takes_tasks_edges_and_reference_tasks():
    a, b, lone = Echo(), Add(), Echo()
    flow = Flow("f", tasks=[lone], edges=[Edge(a, b, key="x")], reference_tasks=[a])
    assert flow.tasks == {a, b, lone}
    assert edge_tuples(flow) == {(a, b, "x", False, False)}
    assert flow.reference_tasks() == {a}


def test_set_dependencies_wires_upstream_downstream_keyword_tasks_and_constants():
    flow = Flow("f")
    t, before, after, data = Add(), Echo(), Echo(), Echo()
    flow.set_dependencies(t, upstream_tasks=[before], downstream_tasks=[after], keyword_tasks={"x": data, "y": 3})
    assert edge_tuples(flow) == {
        (before, t, None, False, False),
        (t, after, None, False, False),
        (data, t, "x", False, False),
    }
    assert flow.constants == {t: {"y": 3}}


def test_set_dependencies_mapped_maps_every_argument_not_unmapped():
    flow = Flow("f")
    t, xs, y = Add(), Echo(), Echo()
    flow.set_dependencies(t, keyword_tasks={"x": xs, "y": unmapped(y)}, mapped=True)
    assert edge_tuples(flow) == {(xs, t, "x", True, False), (y, t, "y", False, False)}


async def test_set_dependencies_mapped_constant_list_becomes_a_mapped_constant_task():
    flow = Flow("f")
    t = Add()
    flow.set_dependencies(t, keyword_tasks={"x": [1, 2, 3], "y": unmapped(10)}, mapped=True)
    # the mapped list must be a task (an edge), the unmapped value stays a constant
    (edge,) = flow.edges_to(t)
    assert edge.mapped
    assert isinstance(edge.upstream_task, Constant)
    assert flow.constants == {t: {"y": 10}}
    state = await flow.run()
    assert state.result[t].result == [11, 12, 13]


def test_chain_adds_ordering_edges_between_neighbours():
    flow = Flow("f")
    a, b, c = Echo(), Echo(), Echo()
    flow.chain(a, b, c)
    assert edge_tuples(flow) == {(a, b, None, False, False), (b, c, None, False, False)}
    assert flow.sorted_tasks() == [a, b, c]


async def test_update_merges_tasks_edges_and_constants_of_another_flow():
    target = Flow("target")
    first = Echo(name="first")
    target.add_task(first)
    other = Flow("other")
    x = Parameter("x")
    added = Add(name="added")
    other.set_dependencies(added, keyword_tasks={"x": x, "y": 100})
    other.set_reference_tasks([added])

    target.update(other)
    assert target.tasks == {first, x, added}
    assert edge_tuples(target) == {(x, added, "x", False, False)}
    assert target.constants == {added: {"y": 100}}
    # reference tasks are not merged by default
    assert target.reference_tasks() == {first, added}  # the terminal tasks
    state = await target.run(x=1)
    assert state.result[added].result == 101


async def test_update_with_a_copy_merges_it_back():
    with Flow("f") as flow:
        base = Add(name="base")(1, y=2)
    clone = flow.copy()
    extra = Echo(name="extra")
    clone.add_edge(base, extra, key="value")
    flow.update(clone)  # shared tasks, edges and constants are already there: no conflict
    assert flow.tasks == {base, extra}
    assert flow.constants == {base: {"x": 1, "y": 2}}
    state = await flow.run()
    assert state.result[extra].result == 3


def test_update_with_a_conflicting_constant_raises():
    with Flow("f") as flow:
        base = Add(name="base")(1)
    other = Flow("g")
    other.set_dependencies(base, keyword_tasks={"x": 99})
    with pytest.raises(FlowValidationError, match="'x' of 'base' is bound twice"):
        flow.update(other)
    assert flow.constants == {base: {"x": 1}}


def test_graph_queries_about_a_task_not_in_the_flow_raise_naming_it():
    with Flow("f") as flow:
        bound = Add(name="adder")(1)
    template = Add(name="template")
    for query in (flow.upstream_tasks, flow.downstream_tasks, flow.edges_to, flow.edges_from):
        with pytest.raises(ValueError, match="Task <Task: template> was not found in flow 'f'"):
            query(template)
        assert query(bound) == set()


def test_set_dependencies_wraps_plain_downstream_values_in_constants():
    flow = Flow("f")
    t = Echo()
    flow.set_dependencies(t, upstream_tasks=[1], downstream_tasks=[3])
    (up,) = flow.upstream_tasks(t)
    (down,) = flow.downstream_tasks(t)
    assert isinstance(up, Constant)
    assert isinstance(down, Constant)
    assert (up.value, down.value) == (1, 3)


def test_a_refused_set_dependencies_leaves_the_flow_as_it_was():
    flow = Flow("f")
    a, b = Echo(name="a"), Add(name="b")
    flow.set_dependencies(b, keyword_tasks={"x": a})
    before = (flow.tasks, flow.edges, dict(flow.constants), {t: t.slug for t in flow.tasks})
    c = Echo(name="c")
    with pytest.raises(FlowValidationError, match="no argument 'nope'"):
        flow.set_dependencies(
            c, upstream_tasks=[a, Echo(name="d")], downstream_tasks=[5], keyword_tasks={"value": 1, "nope": 2}
        )
    with pytest.raises(FlowValidationError, match="cycle"):
        flow.set_dependencies(b, upstream_tasks=[Echo(name="e")], downstream_tasks=[a])
    with pytest.raises(FlowValidationError, match="bound twice"):
        flow.set_dependencies(b, upstream_tasks=[Echo(name="f")], keyword_tasks={"y": 2, "x": 3})
    assert (flow.tasks, flow.edges, dict(flow.constants), {t: t.slug for t in flow.tasks}) == before
    assert c.slug is None  # never joined
    flow.set_dependencies(c, upstream_tasks=[a])  # the flow still works as before
    assert flow.upstream_tasks(c) == {a}


def test_update_with_merge_parameters_replaces_parameters_of_the_same_name():
    with Flow("a") as a:
        x = Parameter("x", default=1)
        mine = Add(name="mine")(x)
    with Flow("b") as b:
        x2 = Parameter("x", default=10)
        theirs = Add(name="theirs")(x2, y=5)
    with pytest.raises(FlowValidationError, match="Parameter name 'x'"):
        a.update(b)
    assert a.tasks == {x, mine}  # left as it was
    a.update(b, merge_parameters=True)
    assert a.parameters() == {x2}
    assert a.upstream_tasks(mine) == {x2}
    assert a.upstream_tasks(theirs) == {x2}
    state = a.run_sync()
    assert (state.result[mine].result, state.result[theirs].result) == (10, 15)


def test_update_can_merge_reference_tasks():
    target = Flow("target")
    mine = Echo(name="mine")
    target.add_task(mine)
    target.set_reference_tasks([mine])
    other = Flow("other")
    theirs = Echo(name="theirs")
    other.add_task(theirs)
    other.set_reference_tasks([theirs])
    target.update(other, merge_reference_tasks=True)
    assert target.reference_tasks() == {mine, theirs}


def test_update_merges_flows_built_from_the_same_task_function():
    @task
    async def step():
        return 1

    with Flow("a") as a:
        step()
    with Flow("b") as b:
        step()
    a.update(b)
    assert len(a.tasks) == 2
    assert sorted(str(t.slug) for t in a.tasks) == ["step-1", "step-2"]  # automatic slugs are renamed


def test_update_still_rejects_two_tasks_with_the_same_explicit_slug():
    @task
    async def step():
        return 1

    with Flow("a") as a:
        step(task_args={"slug": "mine"})
    with Flow("b") as b:
        step(task_args={"slug": "mine"})
    with pytest.raises(FlowValidationError, match="slug 'mine'"):
        a.update(b)


async def test_replace_rewires_edges_constants_and_reference_tasks():
    flow = Flow("f")
    x = Parameter("x")
    old = Add(name="old")
    down = Echo(name="down")
    flow.set_dependencies(old, keyword_tasks={"x": x, "y": 10})
    flow.add_edge(old, down, key="value")
    flow.set_reference_tasks([old, down])

    class Sub(Task):
        async def run(self, x, y=0):
            return x - y

    new = Sub(name="new")
    flow.replace(old, new)

    assert old not in flow
    assert new in flow
    assert edge_tuples(flow) == {(x, new, "x", False, False), (new, down, "value", False, False)}
    assert flow.constants == {new: {"y": 10}}
    assert flow.reference_tasks() == {new, down}
    state = await flow.run(x=15)
    assert state.result[new].result == 5
    assert state.result[down].result == 5
    assert old not in state.result


def test_replace_frees_the_old_slug_and_moves_bound_keys_to_the_new_task():
    flow = Flow("f")
    old = Add(slug="the-slug")
    data = Echo()
    down = Echo(name="down")
    flow.add_edge(data, old, key="x")
    flow.add_edge(old, down, key="value")
    new = Add(slug="other")
    flow.replace(old, new)
    # the old slug is free again
    flow.add_task(Echo(slug="the-slug"))
    assert {t.slug for t in flow.tasks} == {"the-slug", "other", data.slug, down.slug}
    # the keys are bound on the new task, and still bound (once) on the downstream
    with pytest.raises(FlowValidationError, match="bound twice"):
        flow.add_edge(Echo(), new, key="x")
    with pytest.raises(FlowValidationError, match="bound twice"):
        flow.add_edge(Echo(), down, key="value")
    # the old task's keys are gone: it can be wired again elsewhere
    other = Flow("g")
    other.add_edge(Echo(), old, key="x")


def test_replace_a_task_not_in_the_flow_raises():
    flow = Flow("f")
    with pytest.raises(ValueError, match="not in flow"):
        flow.replace(Echo(name="ghost"), Echo())


def test_copy_has_independent_structure_but_shares_tasks():
    d = diamond()
    original_edges = d.flow.edges
    clone = d.flow.copy()
    assert clone is not d.flow
    assert clone.tasks == d.flow.tasks  # the very same task objects
    assert clone.edges == original_edges
    assert clone.constants == d.flow.constants

    extra = Echo(name="extra")
    clone.add_edge(d.d, extra)
    clone.set_reference_tasks([d.a])
    assert extra in clone
    assert extra not in d.flow
    assert d.flow.edges == original_edges
    assert d.flow.terminal_tasks() == {d.d}
    assert d.flow.reference_tasks() == {d.d}
    assert clone.reference_tasks() == {d.a}


async def test_copy_runs_like_the_original():
    d = diamond()
    clone = d.flow.copy()
    state = await clone.run(x=10)
    assert state.result[d.d].result == (11 * 2) + 12


# -- introspection --------------------------------------------------------------------------------


def test_root_and_terminal_tasks():
    d = diamond()
    assert d.flow.root_tasks() == {d.x}
    assert d.flow.terminal_tasks() == {d.d}


def test_reference_tasks_default_to_terminal_tasks_and_can_be_set():
    f = failing_leaf()
    assert f.flow.reference_tasks() == {f.good, f.bad}
    f.flow.set_reference_tasks([f.root])
    assert f.flow.reference_tasks() == {f.root}
    # setting none goes back to the default
    f.flow.set_reference_tasks([])
    assert f.flow.reference_tasks() == {f.good, f.bad}


def test_set_reference_tasks_rejects_a_task_not_in_the_flow():
    f = failing_leaf()
    with pytest.raises(ValueError, match="ghost"):
        f.flow.set_reference_tasks([f.good, Echo(name="ghost")])
    assert f.flow.reference_tasks() == {f.good, f.bad}  # unchanged


def test_parameters_lists_only_parameters():
    with Flow("f") as flow:
        a = Parameter("a")
        b = Parameter("b", default=2)
        Add()(a, b)
    assert flow.parameters() == {a, b}


def test_get_tasks_filters_by_name_slug_tags_and_type():
    with Flow("f") as flow:
        p = Parameter("p", tags=["io"])
        first = Add(name="adder", tags=["io", "math"])(p)
        second = Add(name="adder", tags=["math"])(first)
        other = Echo(name="echo")(second)
    assert set(flow.get_tasks(name="adder")) == {first, second}
    assert flow.get_tasks(slug="p") == [p]
    assert flow.get_tasks(slug=second.slug) == [second]
    assert set(flow.get_tasks(tags=["io"])) == {p, first}
    assert flow.get_tasks(tags=["io", "math"]) == [first]
    assert flow.get_tasks(task_type=Parameter) == [p]
    assert flow.get_tasks(task_type=Echo) == [other]
    assert flow.get_tasks(name="adder", tags=["io"]) == [first]
    assert flow.get_tasks(name="nope") == []
    assert set(flow.get_tasks()) == flow.tasks


def test_upstream_downstream_and_edges_to_from():
    d = diamond()
    flow = d.flow
    assert flow.upstream_tasks(d.d) == {d.b, d.c}
    assert flow.downstream_tasks(d.a) == {d.b, d.c}
    assert flow.upstream_tasks(d.x) == set()
    assert flow.downstream_tasks(d.d) == set()
    assert {(e.upstream_task, e.key) for e in flow.edges_to(d.d)} == {(d.b, "left"), (d.c, "right")}
    assert {(e.downstream_task, e.key) for e in flow.edges_from(d.a)} == {(d.b, "n"), (d.c, "n")}
    assert flow.edges_to(d.x) == set()


def test_sorted_tasks_puts_every_upstream_first():
    d = diamond()
    order = d.flow.sorted_tasks()
    assert set(order) == d.flow.tasks
    assert len(order) == len(d.flow.tasks)
    for e in d.flow.edges:
        assert order.index(e.upstream_task) < order.index(e.downstream_task)
    assert list(d.flow) == order


def test_sorted_tasks_sees_edges_added_after_a_first_sort():
    flow = Flow("f")
    a, b = Echo(name="a"), Echo(name="b")
    flow.add_task(b)
    flow.add_task(a)
    assert flow.sorted_tasks() == [b, a]
    flow.add_edge(a, b)
    assert flow.sorted_tasks() == [a, b]


def test_sorted_tasks_with_root_tasks_keeps_only_them_and_their_downstreams():
    d = diamond()
    assert d.flow.sorted_tasks(root_tasks=[d.b]) == [d.b, d.d]
    assert d.flow.sorted_tasks(root_tasks=[d.c]) == [d.c, d.d]
    restricted = d.flow.sorted_tasks(root_tasks=[d.a])
    assert set(restricted) == {d.a, d.b, d.c, d.d}
    assert restricted[0] is d.a
    assert restricted[-1] is d.d


def test_validate_accepts_a_valid_flow():
    d = diamond()
    d.flow.validate()
    m = map_reduce()
    m.flow.validate()


# -- slugs ----------------------------------------------------------------------------------------


def test_slugs_are_assigned_and_unique():
    with Flow("f") as flow:
        a = Add(name="add")(1)
        b = Add(name="add")(a)
        c = Add(name="add")(b)
        p = Parameter("p")()
    slugs = flow.slugs
    assert slugs[p] == "p"
    assert sorted(slugs[t] for t in (a, b, c)) == ["add-1", "add-2", "add-3"]
    assert len(set(slugs.values())) == len(flow.tasks)


def test_auto_slug_skips_a_slug_already_taken_explicitly():
    flow = Flow("f")
    explicit = Echo(slug="echo-1")
    flow.add_task(explicit)
    auto = Echo(name="echo")
    flow.add_task(auto)
    assert auto.slug == "echo-2"
    assert explicit.slug == "echo-1"


def test_duplicate_explicit_slug_raises():
    flow = Flow("f")
    flow.add_task(Echo(slug="same"))
    intruder = Echo(slug="same")
    with pytest.raises(FlowValidationError, match="'same'"):
        flow.add_task(intruder)
    assert intruder not in flow


def test_duplicate_parameter_name_raises():
    with pytest.raises(FlowValidationError, match="Parameter name 'x'"), Flow("f"):
        Add()(Parameter("x"), Parameter("x"))


# -- build-time errors ----------------------------------------------------------------------------


def test_edge_key_not_accepted_by_run_names_the_task_and_its_arguments():
    flow = Flow("f")
    with pytest.raises(FlowValidationError, match=r"adder\.run\(\) has no argument 'z' \(it takes x, y\)"):
        flow.add_edge(Echo(), Add(name="adder"), key="z")
    assert flow.edges == set()


def test_edge_key_into_a_run_with_var_keywords_is_accepted():
    class Kw(Task):
        async def run(self, **kwargs):
            return kwargs

    flow = Flow("f")
    edge = flow.add_edge(Echo(), Kw(), key="anything")
    assert edge in flow.edges


def test_a_key_bound_twice_raises():
    flow = Flow("f")
    down = Add(name="adder")
    flow.add_edge(Echo(), down, key="x")
    with pytest.raises(FlowValidationError, match="'x' of 'adder' is bound twice"):
        flow.add_edge(Echo(), down, key="x")
    assert len(flow.edges_to(down)) == 1


def test_a_key_bound_by_a_constant_and_then_an_edge_raises():
    flow = Flow("f")
    down = Add(name="adder")
    flow.set_dependencies(down, keyword_tasks={"y": 1})
    with pytest.raises(FlowValidationError, match="bound twice"):
        flow.add_edge(Echo(), down, key="y")
    with pytest.raises(FlowValidationError, match="bound twice"):
        flow.set_dependencies(down, keyword_tasks={"y": 2})
    assert flow.constants == {down: {"y": 1}}


def test_an_edge_closing_a_cycle_raises_and_is_not_added():
    flow = Flow("f")
    a, b, c = Echo(name="a"), Echo(name="b"), Echo(name="c")
    flow.chain(a, b, c)
    edges_before = flow.edges
    with pytest.raises(FlowValidationError, match="'c' -> 'a' would create a cycle"):
        flow.add_edge(c, a)
    assert flow.edges == edges_before
    assert flow.sorted_tasks() == [a, b, c]


def test_a_task_depending_on_itself_raises():
    flow = Flow("f")
    a = Echo(name="a")
    with pytest.raises(FlowValidationError, match="cannot depend on itself"):
        flow.add_edge(a, a)
    with pytest.raises(FlowValidationError, match="cannot depend on itself"):
        flow.set_dependencies(a, upstream_tasks=[a])
    assert flow.edges == set()


def test_an_upstream_into_a_parameter_raises():
    flow = Flow("f")
    p = Parameter("p")
    with pytest.raises(FlowValidationError, match="Parameter 'p' cannot have upstream tasks"):
        flow.add_edge(Echo(), p)
    with Flow("g"), pytest.raises(FlowValidationError, match="cannot have upstream"):
        Parameter("q")(upstream_tasks=[Echo()])


# -- parameters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "required", "default"),
    [
        ({}, True, None),
        ({"default": 3}, False, 3),
        ({"default": None}, False, None),
        ({"default": 3, "required": True}, True, 3),
        ({"required": False}, False, None),
    ],
)
def test_parameter_required_and_default(kwargs: dict[str, Any], required: bool, default: Any):
    p = Parameter("p", **kwargs)
    assert p.required is required
    assert p.default == default
    assert p.slug == "p"
    assert p.name == "p"


async def test_parameter_defaults_and_given_values_reach_tasks():
    seen: list[tuple[Any, Any, Any]] = []

    @task
    async def record(a, b, c):
        seen.append((a, b, c))

    with Flow("f") as flow:
        record(Parameter("a"), Parameter("b", default="B"), Parameter("c", required=False))
    await flow.run(a=1)
    await flow.run({"a": 2, "b": "given"})
    await flow.run({"a": 3, "b": "dict"}, b="keyword")  # keywords win over the dict
    assert seen == [(1, "B", None), (2, "given", None), (3, "keyword", None)]


async def test_a_required_parameter_with_a_default_must_still_be_given():
    flow = Flow("f")
    flow.add_task(Parameter("p", default=1, required=True))
    with pytest.raises(ParameterError, match="needs parameter p"):
        await flow.run()
    state = await flow.run(p=2)
    assert state.is_successful()


async def test_parameters_are_visible_in_context():
    @task
    async def read():
        return context.get("parameters")

    with Flow("f") as flow:
        Parameter("a")()  # calling a Parameter adds it on its own
        Parameter("b", default=2)()
        r = read()
    state = await flow.run(a=1)
    assert state.result[r].result == {"a": 1, "b": 2}


async def test_unknown_parameter_raises_before_any_task_runs():
    d = diamond()
    with pytest.raises(ParameterError, match="no parameter bogus") as info:
        await d.flow.run(x=1, bogus=2)
    assert "its parameters: x" in str(info.value)
    assert d.calls == []


async def test_missing_required_parameter_raises_before_any_task_runs():
    ran: list[str] = []

    @task
    async def body(n):
        ran.append("body")

    @task
    async def independent():
        ran.append("independent")

    with Flow("f") as flow:
        body(Parameter("n"))
        independent()
    with pytest.raises(ParameterError, match="needs parameter n"):
        await flow.run()
    assert ran == []
    with pytest.raises(ParameterError):
        await flow.run(parameters={"m": 1})
    assert ran == []


def test_parameter_error_is_a_flow_validation_and_value_error():
    assert issubclass(ParameterError, FlowValidationError)
    assert issubclass(ParameterError, ValueError)
    assert aflow.ParameterError is ParameterError


# -- running --------------------------------------------------------------------------------------


async def test_run_inside_its_own_with_block_raises():
    ran: list[int] = []

    @task
    async def t():
        ran.append(1)

    with Flow("f") as flow:
        t()
        with pytest.raises(RuntimeError, match="inside its own `with` block"):
            await flow.run()
    assert ran == []
    state = await flow.run()  # fine once the block is closed
    assert state.is_successful()
    assert ran == [1]


def test_run_sync_from_sync_code():
    d = diamond()
    state = d.flow.run_sync(x=2)
    assert state.is_successful()
    assert state.result[d.d].result == 3 * 2 + 4
    state = d.flow.run_sync({"x": 3})
    assert state.result[d.d].result == 4 * 2 + 5


async def test_run_sync_inside_a_running_loop_says_to_await_run():
    d = diamond()
    with pytest.raises(RuntimeError, match=r"await flow\.run\("):
        d.flow.run_sync()
    assert d.calls == []


async def test_diamond_runs_each_task_once_after_its_upstreams():
    d = diamond()
    state = await d.flow.run()
    assert state.is_successful()
    assert state.result[d.d].result == 7
    assert sorted(d.calls) == sorted(["inc(1)", "double(2)", "inc(2)", "add(4, 3)"])
    assert d.calls[0] == "inc(1)"
    assert d.calls[-1] == "add(4, 3)"


async def test_result_maps_every_task_to_its_final_state():
    d = diamond()
    state = await d.flow.run(x=5)
    assert set(state.result) == d.flow.tasks
    assert all(isinstance(s, Success) for s in state.result.values())
    values = {t: s.result for t, s in state.result.items()}
    assert values == {d.x: 5, d.a: 6, d.b: 12, d.c: 7, d.d: 19}


async def test_map_reduce_sample():
    m = map_reduce()
    state = await m.flow.run()
    assert state.is_successful()
    squares = state.result[m.squares]
    assert isinstance(squares, Mapped)
    assert squares.result == [1, 4, 9]
    assert [s.result for s in squares.map_states] == [1, 4, 9]
    assert state.result[m.total].result == 14
    state = await m.flow.run(numbers=[])
    assert state.result[m.total].result == 0


async def test_retry_then_succeed_sample():
    r = retry_then_succeed(failures=2, max_retries=2, retry_delay=10)
    clock = FakeClock()
    state = await r.flow.run(clock=clock)
    assert state.is_successful()
    assert r.attempts == [1, 2, 3]
    assert clock.sleeps == [10.0, 10.0]
    assert state.result[r.after].result == "OK"


async def test_retries_exhausted_fail_the_flow():
    r = retry_then_succeed(failures=5, max_retries=1)
    state = await r.flow.run(clock=FakeClock())
    assert state.is_failed()
    assert r.attempts == [1, 2]
    assert isinstance(state.result[r.flaky], Failed)
    assert isinstance(state.result[r.after], TriggerFailed)


# -- final flow state -----------------------------------------------------------------------------


async def test_all_reference_tasks_succeeded():
    d = diamond()
    state = await d.flow.run()
    assert isinstance(state, Success)
    assert state.message == "All reference tasks succeeded."


async def test_a_failed_reference_task_fails_the_flow():
    f = failing_leaf()
    state = await f.flow.run()
    assert isinstance(state, Failed)
    assert state.message == "Some reference tasks failed."
    bad = state.result[f.bad]
    assert isinstance(bad, Failed)
    assert isinstance(bad.result, ValueError)
    assert str(bad.result) == "boom"
    assert state.result[f.good].result == "fine"
    assert sorted(f.calls) == ["bad", "good", "root"]


async def test_set_reference_tasks_changes_the_outcome():
    f = failing_leaf()
    f.flow.set_reference_tasks([f.good])
    state = await f.flow.run()
    assert isinstance(state, Success)
    assert state.result[f.bad].is_failed()  # still recorded, it just does not decide

    f.flow.set_reference_tasks([f.root, f.bad])
    state = await f.flow.run()
    assert isinstance(state, Failed)


async def test_a_failed_upstream_of_a_successful_reference_task_does_not_fail_the_flow():
    @task
    async def explode():
        raise RuntimeError("nope")

    @task(trigger=aflow.triggers.always_run)
    async def cleanup():
        return "cleaned"

    with Flow("f") as flow:
        e = explode()
        c = cleanup(upstream_tasks=[e])
    state = await flow.run()
    assert flow.reference_tasks() == {c}
    assert isinstance(state, Success)
    assert state.result[e].is_failed()


async def test_a_failed_mapped_child_of_a_reference_task_fails_the_flow():
    @task
    async def invert(n):
        return 1 / n

    with Flow("f") as flow:
        inverted = invert.map([1, 0, 4])
    state = await flow.run()
    assert flow.reference_tasks() == {inverted}
    assert isinstance(state, Failed)
    parent = state.result[inverted]
    assert isinstance(parent, Mapped)
    assert [type(s) for s in parent.map_states] == [Success, Failed, Success]
    assert isinstance(parent.map_states[1].result, ZeroDivisionError)


async def test_reference_tasks_neither_all_successful_nor_failed():
    @task
    async def gives_up():
        raise signals.ENDRUN(Cancelled("stopped by hand"))

    with Flow("f") as flow:
        g = gives_up()
    state = await flow.run()
    assert isinstance(state, Success)
    assert state.message == "No reference tasks failed."
    assert isinstance(state.result[g], Cancelled)


async def test_skipped_reference_task_counts_as_success():
    @task
    async def skip():
        raise signals.SKIP("not today")

    with Flow("f") as flow:
        s = skip()
    state = await flow.run()
    assert isinstance(state.result[s], Skipped)
    assert state.message == "All reference tasks succeeded."


async def test_a_reference_task_left_pending_is_recorded_and_does_not_fail_the_flow():
    # a task handler replacing Running with Pending leaves the task unfinished
    def hold(t, old, new):
        return Pending("held") if isinstance(new, Running) else None

    never = Echo(name="never", state_handlers=[hold])
    flow = Flow("f", tasks=[never])
    state = await flow.run()
    assert isinstance(state.result[never], Pending)
    assert state.message == "No reference tasks failed."


# -- flow handlers --------------------------------------------------------------------------------


async def test_state_handlers_see_pending_running_and_running_final():
    seen: list[tuple[type[State], type[State]]] = []

    def handler(flow, old, new):
        seen.append((type(old), type(new)))

    d = diamond()
    d.flow.state_handlers.append(handler)
    state = await d.flow.run()
    assert state.is_successful()
    assert seen == [(Pending, Running), (Running, Success)]

    f = failing_leaf()
    f.flow.state_handlers.append(handler)
    seen.clear()
    await f.flow.run()
    assert seen == [(Pending, Running), (Running, Failed)]


async def test_state_handler_receives_the_flow():
    flows: list[Flow] = []
    flow = Flow("f", tasks=[Echo()], state_handlers=[lambda fl, old, new: flows.append(fl)])
    await flow.run()
    assert flows == [flow, flow]


async def test_state_handlers_chain_and_may_replace_the_final_state():
    seen_by_second: list[State] = []

    def fail_it(flow, old, new):
        if new.is_successful():
            return Failed("vetoed", result="why")
        return None

    def second(flow, old, new):
        seen_by_second.append(new)

    d = diamond()
    d.flow.state_handlers.extend([fail_it, second])
    state = await d.flow.run()
    assert isinstance(state, Failed)
    assert state.message == "vetoed"
    assert state.result == "why"
    assert isinstance(seen_by_second[-1], Failed)  # later handlers see the replacement


async def test_async_state_handlers_are_awaited():
    seen: list[type[State]] = []

    async def handler(flow, old, new):
        await asyncio.sleep(0)
        seen.append(type(new))
        if isinstance(new, Success):
            return Success("replaced asynchronously")
        return None

    flow = Flow("f", tasks=[Echo()], state_handlers=[handler])
    state = await flow.run()
    assert seen == [Running, Success]
    assert state.message == "replaced asynchronously"
    assert set(state.result) == flow.tasks  # the task states are attached to a replacement without a result


async def test_a_handler_refusing_running_prevents_every_task():
    d = diamond()
    d.flow.state_handlers.append(lambda flow, old, new: Cancelled("not now") if isinstance(new, Running) else None)
    state = await d.flow.run()
    assert isinstance(state, Cancelled)
    assert state.message == "not now"
    assert d.calls == []


async def test_a_raising_state_handler_fails_the_flow_at_start_without_running_tasks():
    def broken(flow, old, new):
        raise KeyError("oops")

    d = diamond()
    d.flow.state_handlers.append(broken)
    state = await d.flow.run()
    assert isinstance(state, Failed)
    assert "broken" in (state.message or "")
    assert "KeyError('oops')" in (state.message or "")
    assert isinstance(state.result, KeyError)
    assert d.calls == []


async def test_a_raising_state_handler_at_the_end_fails_the_flow():
    def broken_at_end(flow, old, new):
        if new.is_finished():
            raise ValueError("late")

    d = diamond()
    d.flow.state_handlers.append(broken_at_end)
    state = await d.flow.run()
    assert isinstance(state, Failed)
    assert "broken_at_end" in (state.message or "")
    assert "ValueError('late')" in (state.message or "")
    assert len(d.calls) == 4  # the tasks did run


async def test_on_failure_is_called_once_with_the_failed_state():
    calls: list[tuple[Flow, State]] = []
    f = failing_leaf()
    f.flow.on_failure = lambda flow, state: calls.append((flow, state))
    state = await f.flow.run()
    assert calls == [(f.flow, state)]
    assert calls[0][1].is_failed()


async def test_on_failure_is_not_called_on_success():
    calls: list[State] = []
    d = diamond()
    d.flow.on_failure = lambda flow, state: calls.append(state)
    await d.flow.run()
    assert calls == []


async def test_on_failure_is_called_for_a_failure_made_by_a_state_handler():
    calls: list[State] = []
    d = diamond()
    d.flow.state_handlers.append(lambda flow, old, new: Failed("forced") if new.is_successful() else None)
    d.flow.on_failure = lambda flow, state: calls.append(state)
    await d.flow.run()
    assert [s.message for s in calls] == ["forced"]


async def test_async_on_failure_is_awaited():
    calls: list[str] = []

    async def notify(flow, state):
        await asyncio.sleep(0)
        calls.append(flow.name)

    f = failing_leaf()
    f.flow.on_failure = notify
    await f.flow.run()
    assert calls == ["failing-leaf"]


async def test_a_raising_on_failure_does_not_crash_the_run():
    def broken(flow, state):
        raise RuntimeError("alerting is down")

    f = failing_leaf()
    f.flow.on_failure = broken
    state = await f.flow.run()
    assert isinstance(state, Failed)
    assert set(state.result) == f.flow.tasks


async def test_terminal_state_handler_sees_reference_states_and_may_replace_the_state():
    received: list[tuple[State, aflow.states.ReferenceStates]] = []

    def forgive(flow, state, reference_states):
        received.append((state, reference_states))
        return Success("forgiven")

    f = failing_leaf()
    f.flow.terminal_state_handler = forgive
    state = await f.flow.run()
    assert isinstance(state, Success)
    assert state.message == "forgiven"
    # a replacement without a result still maps every task to its state
    assert set(state.result) == f.flow.tasks
    ((original, reference_states),) = received
    assert isinstance(original, Failed)
    # a set of states as in Prefect 1 (was a dict of task to state); the mapping is by_task
    assert {type(s) for s in reference_states} == {Success, Failed}
    assert set(reference_states.by_task) == {f.good, f.bad}
    assert reference_states.by_task[f.bad].is_failed()


async def test_flow_state_handlers_get_flow_old_and_new_as_in_prefect1():
    calls: list[tuple[Flow, State, State]] = []
    d = diamond()
    d.flow.state_handlers.append(lambda flow, old, new: calls.append((flow, old, new)))
    await d.flow.run()
    (f1, pending, running), (f2, old, final) = calls
    assert f1 is f2 is d.flow
    assert (type(pending), type(running), type(final)) == (Pending, Running, Success)
    assert old is running  # the state the flow leaves, as Prefect 1 passes it


async def test_a_prefect1_terminal_state_handler_works_unchanged():
    def prefect1_handler(flow, state, reference_task_states):
        # as written for Prefect 1: a set of States
        assert isinstance(reference_task_states, set)
        if any(isinstance(s, Failed) for s in reference_task_states):
            return Failed("a reference task failed")
        if all(s.is_successful() for s in reference_task_states):
            return Success("all good")
        return None

    d = diamond()
    d.flow.terminal_state_handler = prefect1_handler
    assert (await d.flow.run()).message == "all good"
    f = failing_leaf()
    f.flow.terminal_state_handler = prefect1_handler
    assert (await f.flow.run()).message == "a reference task failed"


async def test_a_mapped_reference_task_gives_its_childrens_states_to_the_terminal_handler():
    seen: list[Any] = []

    @task
    async def check(n):
        if n == 2:
            raise ValueError("two")
        return n

    with Flow("mapped-ref") as flow:
        out = check.map([1, 2, 3])

    flow.terminal_state_handler = lambda flow, state, refs: seen.append(refs)
    await flow.run()
    (refs,) = seen
    assert sorted(type(s).__name__ for s in refs) == ["Failed", "Success", "Success"]
    assert isinstance(refs.by_task[out], Mapped)


@pytest.mark.parametrize(
    ("signal", "expected"),
    [(signals.FAIL, Failed), (signals.SUCCESS, Success), (signals.SKIP, Skipped)],
)
async def test_a_signal_raised_in_a_flow_hook_becomes_the_flows_state(signal, expected):
    def raising(*args: Any) -> None:
        raise signal("from the hook")

    for hook in ("terminal_state_handler", "state_handler", "on_failure"):
        f = failing_leaf()
        if hook == "state_handler":
            f.flow.state_handlers.append(lambda flow, old, new: raising() if new.is_finished() else None)
        else:
            setattr(f.flow, hook, raising)
        state = await f.flow.run()  # never raises: the signal is trapped
        assert type(state) is expected, hook
        assert state.message == "from the hook"
        assert state.result[f.bad].is_failed()  # the task states stay the result


async def test_a_signal_raised_by_a_state_handler_as_the_flow_starts_ends_the_run():
    f = failing_leaf()
    f.flow.state_handlers.append(lambda flow, old, new: (_ for _ in ()).throw(signals.SKIP("not today")))
    state = await f.flow.run()
    assert isinstance(state, Skipped)
    assert state.message == "not today"
    assert f.calls == []


async def test_terminal_state_handler_returning_none_keeps_the_state():
    f = failing_leaf()
    f.flow.terminal_state_handler = lambda flow, state, refs: None
    state = await f.flow.run()
    assert isinstance(state, Failed)
    assert state.message == "Some reference tasks failed."


async def test_terminal_state_handler_runs_before_state_handlers_and_on_failure():
    order: list[str] = []

    def terminal(flow, state, refs):
        order.append(f"terminal:{type(state).__name__}")
        return Failed("made to fail")

    def handler(flow, old, new):
        order.append(f"handler:{type(new).__name__}")

    def on_failure(flow, state):
        order.append(f"on_failure:{state.message}")

    d = diamond()
    d.flow.terminal_state_handler = terminal
    d.flow.state_handlers.append(handler)
    d.flow.on_failure = on_failure
    state = await d.flow.run()
    assert state.message == "made to fail"
    assert order == ["handler:Running", "terminal:Success", "handler:Failed", "on_failure:made to fail"]


async def test_async_terminal_state_handler_is_awaited():
    async def terminal(flow, state, refs):
        await asyncio.sleep(0)
        return Failed("async verdict")

    d = diamond()
    d.flow.terminal_state_handler = terminal
    state = await d.flow.run()
    assert isinstance(state, Failed)
    assert state.message == "async verdict"


async def test_a_raising_terminal_state_handler_fails_the_flow():
    def broken(flow, state, refs):
        raise ZeroDivisionError("bad math")

    d = diamond()
    d.flow.terminal_state_handler = broken
    state = await d.flow.run()
    assert isinstance(state, Failed)
    assert "ZeroDivisionError('bad math')" in (state.message or "")
    assert isinstance(state.result, ZeroDivisionError)


# -- context and run names ------------------------------------------------------------------------


async def test_run_context_values_are_visible_in_tasks():
    @task
    async def read_async():
        return context.get("greeting"), context.get("missing", "fallback")

    @task
    def read_sync():
        return context.get("greeting")

    with Flow("ctx") as flow:
        a = read_async()
        s = read_sync()
    state = await flow.run(context={"greeting": "hello"})
    assert state.result[a].result == ("hello", "fallback")
    assert state.result[s].result == "hello"
    # nothing leaks into the next run
    state = await flow.run()
    assert state.result[a].result == (None, "fallback")


async def test_flow_name_and_run_name_in_context():
    @task
    async def names():
        return context.get("flow_name"), context.get("flow_run_name"), context.get("flow_run_id")

    with Flow("named") as flow:
        n = names()
    state = await flow.run(flow_run_name="nightly-42")
    flow_name, run_name, run_id = state.result[n].result
    assert (flow_name, run_name) == ("named", "nightly-42")
    assert run_id != "nightly-42"

    state = await flow.run()
    _, run_name, run_id = state.result[n].result
    assert run_name == run_id  # defaults to the run id
    assert run_id


async def test_each_run_gets_a_new_run_id():
    @task
    async def run_id():
        return context.get("flow_run_id")

    with Flow("f") as flow:
        r = run_id()
    first = await flow.run()
    second = await flow.run()
    assert first.result[r].result != second.result[r].result


# -- errors a user can act on ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [(5, "the int 5"), (None, "the NoneType None"), ("abc", "the str 'abc'"), ({"a": 1}, "the dict {'a': 1}")],
)
def test_mapping_over_a_literal_that_is_not_a_sequence_is_refused_at_build_time(value, shown):
    with Flow("f"):
        with pytest.raises(FlowValidationError) as info:
            Add().map(value)
        with pytest.raises(FlowValidationError, match="Cannot map 'Add' over an upstream task: it is the int 3"):
            Add().map([1], upstream_tasks=[3])
    assert str(info.value) == (
        f"Cannot map 'Add' over argument 'x': it is {shown}, not a sequence; map over a list "
        f"(e.g. [{value!r}]), or wrap the argument in unmapped() to pass it whole to every child"
    )


async def test_mapping_over_sequences_tasks_and_unmapped_literals_still_builds_and_runs():
    with Flow("f") as flow:
        xs = Add()(1)  # a task: its result is only known at run time
        over_list = Add().map([1, 2], y=unmapped(10))
        over_tuple = Add().map((1, 2), y=unmapped(0))
        over_task = Add().map(Echo()([5, 6]))
    state = await flow.run()
    assert state.is_successful()
    assert [s.result for s in state.result[over_list].map_states] == [11, 12]
    assert [s.result for s in state.result[over_tuple].map_states] == [1, 2]
    assert [s.result for s in state.result[over_task].map_states] == [5, 6]
    assert state.result[xs].result == 1


def test_flow_run_used_as_a_state_without_await_says_to_await_or_run_sync(recwarn):
    flow = diamond().flow
    call = flow.run()
    message = (
        "flow.run() of flow 'diamond' was not awaited, so there is no state to read 'is_successful' from: "
        "write `state = await flow.run(...)` in async code, or `state = flow.run_sync(...)` in a script"
    )
    with pytest.raises(aflow.exceptions.NotAwaitedError) as info:
        call.is_successful()  # type: ignore[attr-defined]
    assert str(info.value) == message
    assert isinstance(info.value, AttributeError)  # where Python's own error was one
    assert "not a state until awaited" in repr(call)
    del call
    gc.collect()
    assert not recwarn.list  # reported once, as the error: no never-awaited warning on top


def test_flow_run_dropped_without_await_warns_that_the_flow_did_not_run():
    flow = diamond().flow
    with pytest.warns(
        RuntimeWarning, match=r"flow.run\(\) of flow 'diamond' was never awaited, so the flow did not run"
    ):
        flow.run()  # type: ignore[unused-coroutine]
    gc.collect()


async def test_flow_run_is_still_an_ordinary_coroutine_when_awaited():
    flow = diamond().flow
    assert (await flow.run()).is_successful()
    assert (await asyncio.create_task(flow.run())).is_successful()  # create_task takes it as a coroutine
    states = await asyncio.gather(flow.run(), flow.run())
    assert all(s.is_successful() for s in states)


def test_run_and_start_take_exactly_the_run_settings_arguments() -> None:
    import inspect

    from aflow._runtime._settings import RunSettings

    settings = set(inspect.signature(RunSettings.build).parameters) - {"flow"}
    own = {"self", "parameters", "progress", "parameter_values"}
    for method in (Flow.run, Flow.start):
        assert set(inspect.signature(method).parameters) - own == settings, method.__name__
