"""apply_map: a whole subgraph (with case blocks) mapped item by item."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from aflow import Flow, Parameter, Task, apply_map, case, merge, task, unmapped
from aflow.states import Mapped, Skipped, Success

events: list[tuple[str, int]] = []


@task
async def inc(x: int) -> int:
    events.append(("inc", x))
    return x + 1


@task
async def is_even(x: int) -> bool:
    return x % 2 == 0


@task
async def negate(x: int) -> int:
    return -x


@task
async def add(x: int, y: int) -> int:
    return x + y


def inc_if_even(x: Task) -> Task:
    with case(is_even(x), True):
        x2 = inc(x)
    with case(is_even(x), False):
        x3 = negate(x)
    return merge(x2, x3)


async def test_case_inside_apply_map_gives_per_item_branches() -> None:
    events.clear()
    with Flow("apply-map") as flow:
        res = apply_map(inc_if_even, Parameter("xs"))

    state = await flow.run(xs=[1, 2, 3, 4, 10])
    assert type(state) is Success
    merged = state.result[res]
    assert isinstance(merged, Mapped)
    assert merged.result == [-1, 3, -3, 5, 11]
    (inc_task,) = flow.get_tasks(name="inc")
    assert [type(s) for s in state.result[inc_task].map_states] == [Skipped, Success, Skipped, Success, Success]
    assert sorted(events) == [("inc", 2), ("inc", 4), ("inc", 10)]
    # every edge among the subgraph's tasks is mapped
    inner = set(flow.tasks) - set(flow.parameters())
    assert all(e.mapped for e in flow.edges if e.upstream_task in inner)


async def test_apply_map_with_constant_list_unmapped_arg_and_root_without_inputs() -> None:
    @task
    async def seed() -> int:
        return 100

    def body(x: Task, y: Task) -> Task:
        s = seed()  # no input: apply_map maps it over the arguments so it has one child per item
        return add(add(x, y), s)

    with Flow("consts") as flow:
        out = apply_map(body, [1, 2, 3], y=unmapped(Parameter("y")))

    state = await flow.run(y=10)
    assert type(state) is Success
    assert state.result[out].result == [111, 112, 113]
    (seed_task,) = flow.get_tasks(name="seed")
    assert isinstance(state.result[seed_task], Mapped)
    assert len(state.result[seed_task].map_states) == 3
    y = flow.get_tasks(name="y")[0]
    assert all(not e.mapped for e in flow.edges_from(y))


async def test_apply_map_children_pair_by_index_and_run_depth_first() -> None:
    second_of_1_done = asyncio.Event()

    @task
    async def first(x: int) -> int:
        if x == 3:  # held until child 1 went all the way through: no barrier between the stages
            await second_of_1_done.wait()
        return x

    @task
    async def second(x: int) -> int:
        if x == 1:
            second_of_1_done.set()
        return x * 2

    def chain(x: Task) -> Task:
        return second(first(x))

    with Flow("pairs") as flow:
        out = apply_map(chain, Parameter("xs"))
    with anyio.fail_after(5):
        state = await flow.run(xs=[3, 1, 2])
    assert state.result[out].result == [6, 2, 4]


async def test_apply_map_inside_a_case_and_using_outer_tasks() -> None:
    with Flow("outer") as flow:
        offset = inc(Parameter("base"))  # an outer task used through the closure: passed whole
        with case(Parameter("go"), True):
            out = apply_map(lambda x: add(x, offset), Parameter("xs"))

    state = await flow.run(go=True, base=9, xs=[1, 2])
    assert state.result[out].result == [11, 12]
    assert state.result[offset].result == 10  # not mapped
    state = await flow.run(go=False, base=9, xs=[1, 2])
    assert type(state.result[out]) is Skipped
    assert type(state) is Success


async def test_apply_map_with_explicit_flow_passes_the_subflow() -> None:
    seen: list[Flow] = []

    def body(x: Task, flow: Flow) -> Task:
        seen.append(flow)
        return inc(x, flow=flow)

    flow = Flow("explicit")
    out = apply_map(body, [5, 6], flow=flow)
    assert seen[0] is not flow
    state = await flow.run()
    assert state.result[out].result == [6, 7]


async def test_apply_map_errors() -> None:
    with pytest.raises(ValueError, match="could not infer a flow"):
        apply_map(inc_if_even, [1])
    with Flow("errors"):
        with pytest.raises(ValueError, match=r"inside a function given to apply_map\(\)"):
            apply_map(lambda x: inc.map(x), [1, 2])
        with pytest.raises(ValueError, match=r"inside a function given to apply_map\(\)"):
            apply_map(lambda x: apply_map(inc_if_even, x), [1, 2])  # nested apply_map
        with pytest.raises(TypeError, match="cannot map over a int"):
            apply_map(inc_if_even, 5)
        with pytest.raises(TypeError, match="cannot map over a str"):
            apply_map(inc_if_even, "abc")
        with pytest.raises(ValueError, match="at least one mapped argument"):
            apply_map(inc_if_even, unmapped([1, 2]))
