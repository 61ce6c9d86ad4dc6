"""case, switch, ifelse, merge and FilterTask, run end to end."""

from __future__ import annotations

from typing import Any

import pytest

from aflow import FilterTask, Flow, Parameter, Task, case, ifelse, merge, switch, task
from aflow.signals import FAIL, SKIP
from aflow.states import Failed, Mapped, Skipped, State, Success


@task
async def identity(x: Any) -> Any:
    return x


@task
async def inc(x: int) -> int:
    return x + 1


@task
async def const(value: Any = "ran") -> Any:
    return value


def ok(state: State, result: Any) -> None:
    assert type(state) is Success, state
    assert state.result == result


def skipped(state: State) -> None:
    assert type(state) is Skipped, state


# -- case ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("flag", "ran", "was_skipped"), [(True, "yes", "no"), (False, "no", "yes")])
async def test_case_runs_the_matching_block_and_skips_the_other_with_its_downstream(
    flag: bool, ran: str, was_skipped: str
) -> None:
    with Flow("case") as flow:
        p = Parameter("flag")
        cond = identity(p)
        with case(cond, True):
            yes = const("yes")
            yes_after = inc.copy(name="yes_after")(Parameter("n", default=1))
            yes_down = identity.copy(name="yes_down")(yes)
        with case(cond, False):
            no = const("no")
            no_down = identity.copy(name="no_down")(no)
        after_yes = identity.copy(name="after_yes")(yes_down)  # outside the block: skip propagates

    state = await flow.run(flag=flag)
    assert type(state) is Success
    res = state.result
    branches = {"yes": (yes, yes_down), "no": (no, no_down)}
    for t in branches[ran]:
        ok(res[t], ran)
    for t in branches[was_skipped]:
        skipped(res[t])
    if flag:
        ok(res[after_yes], "yes")
        ok(res[yes_after], 2)
    else:
        skipped(res[after_yes])
        skipped(res[yes_after])
    # one CompareValue per case, gating only the block's roots; the parameter stays ungated
    compares = [t for t in flow.tasks if t.name.startswith("CompareValue")]
    assert len(compares) == 2
    gate_yes = next(t for t in compares if flow.downstream_tasks(t) & {yes})
    assert flow.downstream_tasks(gate_yes) == {yes, yes_after}
    assert flow.upstream_tasks(yes_down) == {yes}
    assert flow.upstream_tasks(flow.get_tasks(name="n")[0]) == set()


async def test_nested_cases_gate_on_both_conditions() -> None:
    with Flow("nested") as flow:
        a = identity.copy(name="a")(Parameter("a"))
        b = identity.copy(name="b")(Parameter("b"))
        with case(a, 1):
            outer = const("outer")
            with case(b, 2):
                inner = const("inner")
                inner_down = inc(Parameter("k", default=10))

    async def run(av: int, bv: int) -> dict[Task, State]:
        state = await flow.run(a=av, b=bv)
        assert type(state) is Success
        return state.result  # type: ignore[no-any-return]

    res = await run(1, 2)
    ok(res[outer], "outer")
    ok(res[inner], "inner")
    ok(res[inner_down], 11)

    res = await run(1, 3)
    ok(res[outer], "outer")
    skipped(res[inner])
    skipped(res[inner_down])

    res = await run(0, 2)  # the outer case skips the inner one's CompareValue, hence the whole block
    skipped(res[outer])
    skipped(res[inner])
    skipped(res[inner_down])
    assert len([t for t in flow.tasks if t.name.startswith("CompareValue")]) == 2


async def test_case_condition_created_inside_the_block_is_not_gated() -> None:
    with Flow("inside") as flow:
        p = Parameter("x")
        with case(inc(p), 6):  # the condition task is made inside the block: gating it would loop
            hit = const("hit")

    cond = flow.get_tasks(name="inc")[0]
    assert flow.upstream_tasks(cond) == {p}
    state = await flow.run(x=5)
    ok(state.result[cond], 6)
    ok(state.result[hit], "hit")
    state = await flow.run(x=4)
    ok(state.result[cond], 5)
    skipped(state.result[hit])


async def test_case_value_may_not_be_a_task_and_needs_a_flow() -> None:
    with Flow("bad"):
        t = const()
        with pytest.raises(TypeError, match="value may not be a Task"):
            case(t, t)
    with pytest.raises(ValueError, match="inside `with Flow"), case(1, 1):
        pass


async def test_empty_case_adds_nothing() -> None:
    with Flow("empty") as flow:
        cond = const()
        with case(cond, 1):
            pass
    assert flow.tasks == {cond}


# -- switch / ifelse / merge -----------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(True, "T"), (False, "F"), (0, "F"), ("yes", "T")])
async def test_ifelse_then_merge(value: Any, expected: str) -> None:
    with Flow("ifelse") as flow:
        t = const.copy(name="t")("T")
        f = const.copy(name="f")("F")
        ifelse(identity(Parameter("v")), t, f)
        m = merge(t, f)
        final = identity.copy(name="final")(m)

    state = await flow.run(v=value)
    assert type(state) is Success
    ok(state.result[m], expected)
    ok(state.result[final], expected)
    skipped(state.result[f if expected == "T" else t])


async def test_switch_runs_one_branch_and_merge_joins() -> None:
    with Flow("switch") as flow:
        cond = identity(Parameter("which"))
        branches = {name: const.copy(name=name)(name) for name in ("a", "b", "c")}
        switch(cond, branches)
        m = merge(*branches.values())

    for which in ("a", "b", "c"):
        state = await flow.run(which=which)
        ok(state.result[m], which)
        for name, b in branches.items():
            if name == which:
                ok(state.result[b], name)
            else:
                skipped(state.result[b])
    compares = [t for t in flow.tasks if t.name.startswith("CompareValue")]
    assert len(compares) == 3
    assert all("switch" in t.tags for t in compares)

    # no branch matches: every branch skips, so merge skips too
    state = await flow.run(which="zzz")
    skipped(state.result[m])


async def test_merge_orders_twelve_branches_by_position_not_string_key() -> None:
    # Prefect 1 sorted "task_10" before "task_2"; aflow keeps argument order
    with Flow("twelve") as flow:
        branches = [const.copy(name=f"b{i}")(None if i < 2 else f"r{i}") for i in range(1, 13)]
        m = merge(*branches)
    state = await flow.run()
    ok(state.result[m], "r2")

    # the keyword order does not matter either: position comes from the key's number
    results = {f"task_{i}": (None if i < 2 else i) for i in range(12, 0, -1)}
    assert await m.run(**results) == 2


async def test_merge_returns_first_non_none_and_none_if_all_none() -> None:
    with Flow("nones") as flow:
        a = const.copy(name="a")(None)
        b = const.copy(name="b")(0)
        m1 = merge(a, b)
        m2 = merge(a, const.copy(name="c")(None))
    state = await flow.run()
    ok(state.result[m1], 0)  # 0 is not None: kept
    ok(state.result[m2], None)


async def test_mapped_ifelse_and_merge_work_per_child() -> None:
    @task
    async def is_even(x: int) -> bool:
        return x % 2 == 0

    @task
    async def half(x: int) -> float:
        return x / 2

    @task
    async def triple(x: int) -> int:
        return 3 * x

    with Flow("mapped-ifelse") as flow:
        xs = Parameter("xs")
        h = half.map(xs)
        t3 = triple.map(xs)
        ifelse(is_even.map(xs), h, t3, mapped=True)
        m = merge(h, t3, mapped=True)

    state = await flow.run(xs=[1, 2, 3, 4])
    assert type(state) is Success
    assert isinstance(state.result[m], Mapped)
    assert state.result[m].result == [3, 1.0, 9, 2.0]
    assert [type(s) for s in state.result[h].map_states] == [Skipped, Success, Skipped, Success]


async def test_skipped_branch_failure_does_not_fail_the_flow_but_taken_branch_failure_does() -> None:
    @task
    async def boom() -> None:
        raise RuntimeError("boom")

    with Flow("fail-branch") as flow:
        cond = identity(Parameter("go"))
        with case(cond, True):
            b = boom()
        with case(cond, False):
            fine = const("fine")
        m = merge(b, fine)

    state = await flow.run(go=False)
    assert type(state) is Success
    skipped(state.result[b])
    ok(state.result[m], "fine")

    state = await flow.run(go=True)
    assert isinstance(state, Failed)
    assert isinstance(state.result[b], Failed)
    assert state.result[m].is_failed()  # merge's not_all_skipped trigger sees the failure


# -- FilterTask ----------------------------------------------------------------------------------


async def test_filter_task_drops_failed_and_skipped_children() -> None:
    @task
    async def picky(x: int) -> int | None:
        if x == 2:
            raise ValueError("two")
        if x == 3:
            raise FAIL("three")
        if x == 5:
            raise SKIP("five")
        return None if x == 6 else x * 10

    with Flow("filter") as flow:
        values = picky.map(Parameter("xs"))
        kept = FilterTask(name="kept")(values)
        summed = identity.copy(name="summed")(kept)

    state = await flow.run(xs=[1, 2, 3, 4, 5, 6])
    assert type(state) is Success  # the terminal task succeeded: the filter absorbed the failures
    children = state.result[values].map_states
    assert [type(s).__name__ for s in children] == ["Success", "Failed", "Failed", "Success", "Skipped", "Success"]
    ok(state.result[kept], [10, 40])  # failed (exceptions), skipped and None results dropped
    ok(state.result[summed], [10, 40])


async def test_filter_task_custom_filter_and_log(caplog: pytest.LogCaptureFixture) -> None:
    with Flow("custom") as flow:
        kept = FilterTask(filter_func=lambda x: x % 2 == 0, log_func=lambda xs: f"kept {len(xs)}")(
            identity([1, 2, 3, 4, 6])
        )
    with caplog.at_level("INFO"):
        state = await flow.run()
    ok(state.result[kept], [2, 4, 6])
    assert "kept 3" in caplog.text
    direct = FilterTask()
    assert await direct.run([None, 1, ValueError("x"), 0, FAIL("f")]) == [1, 0]
    assert await direct.run(None) == []  # an upstream skipped as a whole
    assert direct.skip_on_upstream_skip is False


async def test_filter_after_a_wholly_skipped_mapped_task_gives_an_empty_list() -> None:
    with Flow("skipped-map") as flow:
        with case(Parameter("go"), True):
            values = inc.map(Parameter("xs"))
        kept = FilterTask()(values)
    state = await flow.run(go=False, xs=[1, 2])
    skipped(state.result[values])
    ok(state.result[kept], [])
    state = await flow.run(go=True, xs=[1, 2])
    ok(state.result[kept], [2, 3])
