from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import pytest

import aflow
from aflow import Constant, Edge, Flow, FunctionTask, Task, TaskDefinitionError, flatten, mapped, tags, task, unmapped
from aflow import context as actx
from aflow.testing import FakeClock


class Add(Task):
    async def run(self, x, y=0):
        return x + y


@task
async def ident(x):
    return x


@task
async def noop():
    return None


def edge_set(flow: Flow, downstream: Task) -> set[tuple[Task, str | None, bool, bool]]:
    """The edges into ``downstream`` as comparable tuples (upstream, key, mapped, flattened)."""
    return {(e.upstream_task, e.key, e.mapped, e.flattened) for e in flow.edges_to(downstream)}


# -- attributes and their validation ------------------------------------------------------------


def test_defaults_and_keyword_attributes():
    t = Add()
    assert (t.name, t.slug, t.tags, t.max_retries, t.retry_delay, t.timeout, t.nout) == (
        "Add",
        None,
        frozenset(),
        0,
        timedelta(0),  # Prefect 1's type (was 0.0)
        None,
        None,
    )
    assert t.trigger is aflow.triggers.all_successful
    t = Add(
        name="adder",
        slug="a1",
        tags=["x", "y"],
        max_retries=2,
        retry_delay=timedelta(seconds=1.5),
        retry_on=KeyError,
        timeout=timedelta(minutes=1),
    )
    assert (t.name, t.slug, t.tags) == ("adder", "a1", frozenset({"x", "y"}))
    assert (t.max_retries, t.retry_delay, t.retry_on, t.timeout) == (2, timedelta(seconds=1.5), (KeyError,), 60.0)


def test_attributes_are_keyword_only():
    with pytest.raises(TypeError):
        Add("positional-name")  # type: ignore[call-arg]


def test_bare_string_tags_raise_type_error():
    with pytest.raises(TypeError, match=r"tags=\['etl'\]"):
        Add(tags="etl")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"retry_on": KeyError}, "retry_on was given but max_retries is 0"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0}, "timeout must be positive"),
        ({"timeout": "10"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"retry_delay": -2}, "retry_delay"),
        ({"retry_jitter": 1.5}, "retry_jitter"),
        ({"retry_jitter": -0.1}, "retry_jitter"),
        ({"retry_backoff": 0.5}, "retry_backoff"),
    ],
)
def test_invalid_attributes_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Add(**kwargs)


def test_retry_on_accepts_several_exception_types():
    t = Add(max_retries=1, retry_on=[KeyError, ValueError])
    assert t.retry_on == (KeyError, ValueError)


def test_tags_given_to_copy_or_a_call_are_added_to_the_template_tags():
    template = Add(tags=["db"])
    assert template.copy(tags=["extra"]).tags == {"db", "extra"}
    with Flow("f"):
        called = template(1, task_args={"tags": ["etl"]})
        with tags("block"):
            both = template(2, task_args={"tags": ["etl"]})
    assert called.tags == {"db", "etl"}
    assert both.tags == {"db", "etl", "block"}
    assert template.tags == {"db"}


def test_retry_on_takes_exception_classes_only():
    for bad in ({"foo"}, [ValueError("x")], [int], "ValueError", ValueError("x"), KeyboardInterrupt):
        with pytest.raises(TypeError, match=r"Invalid retry_on value.*e\.g\. retry_on="):
            Add(max_retries=1, retry_on=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Invalid retry_on value"):
        Add(max_retries=1).copy(retry_on=[int])
    assert Add(max_retries=1, retry_on={KeyError}).retry_on == (KeyError,)


def test_retry_on_and_retry_delay_need_max_retries():
    with pytest.raises(ValueError, match="retry_on was given but max_retries is 0: set max_retries"):
        Add(retry_on=[KeyError])
    with pytest.raises(ValueError, match="retry_delay was given but max_retries is 0: set max_retries"):
        Add(retry_delay=timedelta(seconds=5))
    with pytest.raises(ValueError, match="retry_delay was given but max_retries is 0"):
        Add(retry_delay=0)
    with pytest.raises(ValueError, match="retry_on was given but max_retries is 0"):
        Add().copy(retry_on=KeyError)
    with pytest.raises(ValueError, match="retry_delay was given but max_retries is 0"):
        Add().copy(retry_delay=3)
    assert Add().copy(max_retries=1, retry_delay=3).retry_delay == timedelta(seconds=3)


def test_delays_and_cache_for_read_back_as_timedeltas():
    t = Add(max_retries=1, retry_delay=5, max_retry_delay=60.0, cache_for=30)
    assert (t.retry_delay, t.max_retry_delay, t.cache_for) == (
        timedelta(seconds=5),
        timedelta(minutes=1),
        timedelta(seconds=30),
    )
    t = Add(max_retries=1, retry_delay=timedelta(milliseconds=1500), cache_for=timedelta(hours=1))
    assert (t.retry_delay, t.cache_for) == (timedelta(seconds=1.5), timedelta(hours=1))
    assert (Add().retry_delay, Add().max_retry_delay, Add().cache_for) == (timedelta(0), None, None)
    t.retry_delay = 2  # set later, as seconds or a timedelta
    t.cache_for = timedelta(minutes=2)
    assert (t.retry_delay, t.cache_for) == (timedelta(seconds=2), timedelta(minutes=2))
    with pytest.raises(ValueError, match="cache_for must be a non-negative number"):
        Add(cache_for=-1)


def test_tags_block_merges_with_given_tags_and_nests():
    with tags("outer"):
        a = Add(tags=["own"])
        with tags("inner", "more"):
            b = Add()
        c = Add()
    d = Add()
    assert a.tags == {"outer", "own"}
    assert b.tags == {"outer", "inner", "more"}
    assert c.tags == {"outer"}
    assert d.tags == frozenset()


def test_tags_block_tags_the_copy_made_by_a_call():
    # Prefect's own example: a task made outside the block, called inside it
    with Flow("f") as flow, tags("math"):
        r = Add()(1, 5)
    assert r.tags == {"math"}
    assert flow.get_tasks(tags=["math"]) == [r]


# -- run signature rules ------------------------------------------------------------------------


def test_run_with_star_args_is_rejected_at_class_definition():
    with pytest.raises(TaskDefinitionError, match=r"\*args"):

        class Bad(Task):
            async def run(self, *values):
                return values


def test_run_with_positional_only_parameter_is_rejected():
    with pytest.raises(TaskDefinitionError, match="positional-only parameter 'x'"):

        class Bad(Task):
            async def run(self, x, /):
                return x


@pytest.mark.parametrize("reserved", ["upstream_tasks", "mapped", "task_args", "flow"])
def test_run_with_reserved_parameter_name_is_rejected(reserved):
    namespace: dict[str, object] = {}
    exec(f"async def run(self, {reserved}=None):\n    return None", namespace)
    with pytest.raises(TaskDefinitionError, match=f"parameter named '{reserved}'.*reserved"):
        type("Bad", (Task,), {"run": namespace["run"]})


def test_task_decorator_applies_the_same_signature_rules():
    with pytest.raises(TaskDefinitionError, match="reserved"):

        @task
        async def uses_flow(flow):
            return flow

    with pytest.raises(TaskDefinitionError, match=r"\*args"):

        @task
        def star(*xs):
            return xs


def test_run_with_var_keyword_is_allowed():
    class Kw(Task):
        async def run(self, **kwargs):
            return kwargs

    with Flow("f") as flow:
        k = Kw()(a=1, b=2)
    assert flow.constants[k] == {"a": 1, "b": 2}


def test_passing_a_task_to_subclass_init_is_a_definition_error():
    class Configured(Task):
        def __init__(self, value: Any = None, **kwargs: Any) -> None:
            self.value = value
            super().__init__(**kwargs)

        async def run(self, x):
            return x

    with pytest.raises(TaskDefinitionError, match="at initialization"):
        Configured(value=Add())
    with pytest.raises(TaskDefinitionError, match="at initialization"):
        Configured(Add())
    assert Configured(value=3).value == 3


# -- @task -------------------------------------------------------------------------------------


async def test_task_decorator_on_async_function():
    @task
    async def double(x):
        """Double it."""
        return 2 * x

    assert isinstance(double, aflow.FunctionTask)
    assert double.name == "double"
    assert double.__doc__ == "Double it."
    assert await double.run(4) == 8


async def test_task_decorator_with_attributes():
    @task(name="renamed", max_retries=3, tags=["io"], timeout=5)
    async def f(x):
        return x

    assert (f.name, f.max_retries, f.tags, f.timeout) == ("renamed", 3, frozenset({"io"}), 5.0)
    assert await f.run(1) == 1


def test_task_decorator_rejects_builtins_and_classes():
    with pytest.raises(TypeError, match="wrap it in a def"):
        task(len)
    with pytest.raises(TypeError, match="wrap it in a def"):
        task(dict)


async def test_sync_task_body_runs_in_a_worker_thread():
    @task(name="sync-body")
    def where(x):
        return (x, threading.get_ident())

    with Flow("f") as flow:
        r = where(7)

    assert where.name == "sync-body"
    state = await flow.run()
    value, thread = state.result[r].result
    assert value == 7
    assert thread != threading.get_ident()


async def test_async_task_body_runs_on_the_loop_thread():
    @task
    async def where():
        return threading.get_ident()

    with Flow("f") as flow:
        r = where()

    state = await flow.run()
    assert state.result[r].result == threading.get_ident()


# -- nout, item access, iteration ---------------------------------------------------------------


def test_nout_inferred_from_tuple_return_annotation():
    @task
    async def pair() -> tuple[int, str]:
        return 1, "a"

    @task
    async def many() -> tuple[int, ...]:
        return (1,)

    @task
    async def one() -> int:
        return 1

    class Three(Task):
        async def run(self) -> tuple[int, int, int]:
            return (1, 2, 3)

    assert pair.nout == 2
    assert many.nout is None
    assert one.nout is None
    assert Three().nout == 3
    assert Three(nout=1).nout == 1


async def test_tuple_unpacking_of_a_task_with_nout():
    @task
    async def pair() -> tuple[int, str]:
        return 1, "a"

    with Flow("f") as flow:
        a, b = pair()
        joined = ident([a, b])

    assert a.name == "pair[0]"
    assert b.name == "pair[1]"
    state = await flow.run()
    assert state.result[a].result == 1
    assert state.result[b].result == "a"
    assert state.result[joined].result == [1, "a"]


async def test_getitem_makes_a_getitem_task():
    @task
    async def data():
        return {"k": 41}

    with Flow("f") as flow:
        d = data()
        item = d["k"]
        plus = Add()(item, 1)

    assert item.name == "data['k']"
    assert item.auto_generated
    assert edge_set(flow, item) == {(d, "task_result", False, False)}
    assert flow.constants[item] == {"key": "k"}
    state = await flow.run()
    assert state.result[plus].result == 42


def test_iterating_a_task_without_nout_is_a_type_error():
    with Flow("f"):
        r = ident(1)
        with pytest.raises(TypeError, match="not iterable"):
            _a, _b = r


def test_map_resets_nout():
    @task
    async def pair(x) -> tuple[int, int]:
        return x, x

    with Flow("f"):
        m = pair.map([1, 2])
    assert pair.nout == 2
    assert m.nout is None


# -- copy, call, bind ---------------------------------------------------------------------------


def test_copy_overrides_attributes_and_leaves_original_alone():
    t = Add(name="orig", slug="orig-slug", max_retries=1)
    c = t.copy(name="copied", max_retries=4)
    assert c is not t
    assert type(c) is Add
    assert (c.name, c.max_retries) == ("copied", 4)
    assert (t.name, t.max_retries) == ("orig", 1)
    assert c.slug is None  # a fresh slug
    assert t.copy(slug="s2").slug == "s2"


def test_copy_normalizes_attributes_like_init():
    c = Add().copy(
        max_retries=2,
        retry_delay=timedelta(seconds=2),
        max_retry_delay=timedelta(minutes=1),
        timeout=timedelta(seconds=3),
        retry_on=KeyError,
    )
    assert (c.retry_delay, c.max_retry_delay, c.timeout, c.retry_on) == (
        timedelta(seconds=2),
        timedelta(minutes=1),
        3.0,
        (KeyError,),
    )
    assert Add().copy(max_retries=1, retry_on=[KeyError, OSError]).retry_on == (KeyError, OSError)
    assert Add().copy(tags=["a"]).tags == {"a"}
    with pytest.raises(TypeError, match="not the string"):
        Add().copy(tags="abc")
    with pytest.raises(ValueError, match="timeout"):
        Add().copy(timeout=-1)


async def test_task_args_with_timedeltas_run_retries_end_to_end():
    attempts = []

    @task
    async def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise KeyError("not yet")
        return len(attempts)

    with Flow("f") as flow:
        r = flaky(
            task_args={
                "max_retries": 2,
                "retry_delay": timedelta(seconds=5),
                "retry_on": KeyError,
                "timeout": timedelta(seconds=30),
            }
        )

    clock = FakeClock()
    state = await flow.run(clock=clock)
    assert state.result[r].is_successful(), state.result[r]
    assert state.result[r].result == 3
    assert clock.sleeps == [5.0, 5.0]


def test_copy_with_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_attr"):
        Add().copy(no_such_attr=1)


def test_copy_on_failure_adds_a_handler():
    t = Add()
    c = t.copy(on_failure=lambda task, state: None)
    assert len(c.state_handlers) == 1
    assert t.state_handlers == []


def test_copy_gets_its_own_logger():
    t = Add(name="one")
    assert t.logger.logger.name == "aflow.task.one"
    c = t.copy(name="two")
    assert c.logger.logger.name == "aflow.task.two"
    assert t.logger.logger.name == "aflow.task.one"


def test_call_copies_and_the_original_never_enters_the_graph():
    t = Add(slug="template")
    with Flow("f") as flow:
        r1 = t(1, 2)
        r2 = t(3, task_args={"name": "second"})
    assert t not in flow
    assert r1 in flow
    assert r2 in flow
    assert r1 is not t
    assert r2 is not r1
    assert r2.name == "second"
    assert t.slug == "template"
    assert r1.slug != r2.slug
    assert "template" not in flow.slugs.values()
    assert flow.constants[r1] == {"x": 1, "y": 2}
    assert flow.constants[r2] == {"x": 3}


def test_bind_binds_in_place():
    t = Add()
    with Flow("f") as flow:
        up = ident(1)
        same = t.bind(up, y=2)
    assert same is t
    assert t in flow
    assert edge_set(flow, t) == {(up, "x", False, False)}
    assert flow.constants[t] == {"y": 2}


def test_bind_with_explicit_flow_outside_a_block():
    flow = Flow("f")
    t = Add().bind(1, flow=flow)
    assert t in flow
    assert flow.constants[t] == {"x": 1}


def test_binding_outside_a_flow_points_at_run():
    with pytest.raises(ValueError, match=r"\.run"):
        Add()(1)
    with pytest.raises(ValueError, match=r"\.run"):
        Add().bind(1)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((), {"z": 1}, "unexpected keyword argument 'z'"),
        ((), {"y": 1}, r"missing required argument\(s\): 'x'"),
        ((1, 2, 3), {}, "takes 2 positional arguments but 3 were given"),
        ((1,), {"x": 2}, "multiple values for argument 'x'"),
    ],
)
def test_bad_call_arguments_raise_task_definition_error(args, kwargs, match):
    with Flow("f") as flow, pytest.raises(TaskDefinitionError, match=match):
        Add()(*args, **kwargs)
    assert len(flow) == 0  # nothing half-added


def test_reserved_keywords_of_a_call_are_not_run_arguments():
    with Flow("f") as flow:
        up = noop()
        r = Add()(1, upstream_tasks=[up], task_args={"name": "n"})
    assert r.name == "n"
    assert flow.constants[r] == {"x": 1}
    assert edge_set(flow, r) == {(up, None, False, False)}


# -- map, mapped, unmapped, flatten --------------------------------------------------------------


def test_map_makes_mapped_edges_and_unmapped_keeps_whole():
    with Flow("f") as flow:
        xs = ident([1, 2])
        ys = ident([3, 4])
        m = Add().map(xs, y=unmapped(ys))
    assert edge_set(flow, m) == {(xs, "x", True, False), (ys, "y", False, False)}


def test_mapped_annotation_maps_one_argument_of_an_ordinary_call():
    with Flow("f") as flow:
        xs = ident([1, 2])
        ys = ident(3)
        m = Add()(mapped(xs), y=ys)
    assert edge_set(flow, m) == {(xs, "x", True, False), (ys, "y", False, False)}


def test_flatten_sets_the_flattened_flag():
    with Flow("f") as flow:
        xss = ident([[1], [2, 3]])
        m = Add().map(flatten(xss))
    assert edge_set(flow, m) == {(xss, "x", True, True)}


def test_upstream_tasks_of_a_map_are_mapped_unless_unmapped():
    with Flow("f") as flow:
        a = ident([1, 2])
        b = noop()
        m = Add().map([1, 2], upstream_tasks=[a, unmapped(b)])
    edges = edge_set(flow, m)
    assert (a, None, True, False) in edges
    assert (b, None, False, False) in edges


async def test_mapped_run_end_to_end():
    with Flow("f") as flow:
        xs = ident([1, 2, 3])
        m = Add().map(xs, y=unmapped(10))
        f = Add().map(flatten(ident([[1], [2, 3]])))

    state = await flow.run()
    assert state.result[m].result == [11, 12, 13]
    assert state.result[f].result == [1, 2, 3]


# -- dependencies --------------------------------------------------------------------------------


def test_upstream_tasks_make_ordering_edges():
    with Flow("f") as flow:
        a = noop()
        b = noop()
        r = Add()(1, upstream_tasks=[a, b])
    assert edge_set(flow, r) == {(a, None, False, False), (b, None, False, False)}


async def test_upstream_tasks_order_the_run():
    seen = []

    @task
    async def mark(label):
        seen.append(label)

    with Flow("f") as flow:
        first = mark("first")
        mark("second", upstream_tasks=[first])

    assert (await flow.run()).is_successful()
    assert seen == ["first", "second"]


def test_set_upstream_and_downstream_without_key_are_ordering_edges():
    flow = Flow("f")
    a, b, c = Add(), Add(), Add()
    assert b.set_upstream(a, flow=flow) is b
    assert b.set_downstream(c, flow=flow) is b
    assert flow.edges == {Edge(a, b), Edge(b, c)}


async def test_set_upstream_and_downstream_with_key_are_data_edges():
    with Flow("f") as flow:
        one = ident(1)
        two = ident(2)
        r = Add()
        r.set_upstream(one, key="x")
        two.set_downstream(r, key="y")
    assert edge_set(flow, r) == {(one, "x", False, False), (two, "y", False, False)}
    state = await flow.run()
    assert state.result[r].result == 3


def test_set_upstream_outside_a_flow_raises():
    with pytest.raises(ValueError, match="No flow"):
        Add().set_upstream(Add())


# -- auto-wrapping -------------------------------------------------------------------------------


def test_plain_constants_stay_out_of_the_graph():
    with Flow("f") as flow:
        r = Add()(1, y=[2, 3])
    assert flow.tasks == {r}
    assert flow.edges == set()
    assert flow.constants[r] == {"x": 1, "y": [2, 3]}


async def test_constants_are_passed_at_run_time():
    with Flow("f") as flow:
        r = Add()([1], y=[2, 3])
    state = await flow.run()
    assert state.result[r].result == [1, 2, 3]


def test_mapped_constants_become_constant_nodes():
    with Flow("f") as flow:
        m = Add().map([1, 2], y=unmapped(5))
    (edge,) = flow.edges_to(m)
    const = edge.upstream_task
    assert isinstance(const, Constant)
    assert const.value == [1, 2]
    assert const.auto_generated
    assert (edge.key, edge.mapped) == ("x", True)
    assert flow.constants[m] == {"y": 5}


def test_constant_names():
    assert Constant(1).name == "1"
    assert Constant("a" * 20).name == "Constant[str]"


async def test_list_tuple_set_dict_holding_tasks_become_collection_tasks():
    with Flow("f") as flow:
        a = ident(1)
        b = ident("b")
        as_list = ident([a, 2, b])
        as_tuple = ident((a, b))
        as_set = ident({a, 3})
        as_dict = ident({"a": a, "k": 4, b: "key-is-a-task"})
        nested = ident([[a], {"n": (b,)}])

    def collector(t: Task) -> Task:
        (edge,) = flow.edges_to(t)
        return edge.upstream_task

    assert {type(collector(t)).__name__ for t in (as_list, as_tuple, as_set, as_dict)} == {
        "List",
        "Tuple",
        "Set",
        "Dict",
    }
    assert all(collector(t).auto_generated for t in (as_list, as_tuple, as_set, as_dict))
    lst = collector(as_list)
    assert edge_set(flow, lst) == {(a, "arg_0", False, False), (b, "arg_2", False, False)}
    assert flow.constants[lst] == {"arg_1": 2}

    state = await flow.run()
    assert state.is_successful()
    assert state.result[as_list].result == [1, 2, "b"]
    assert state.result[as_tuple].result == (1, "b")
    assert state.result[as_set].result == {1, 3}
    assert state.result[as_dict].result == {"a": 1, "k": 4, "b": "key-is-a-task"}
    assert state.result[nested].result == [[1], {"n": ("b",)}]


# -- logging -------------------------------------------------------------------------------------


class Loud(Task):
    async def run(self, x):
        self.logger.info("processing %s", x)
        return actx.flow_run_id


async def test_task_logger_records_carry_run_context(caplog):
    caplog.set_level(logging.INFO, logger="aflow.task")
    with Flow("logflow") as flow:
        single = Loud(name="loud")(0)
        mapped_ = Loud(name="loud-mapped").map([10, 11, 12])

    state = await flow.run()
    assert state.is_successful()
    run_id = state.result[single].result
    assert isinstance(run_id, str)
    assert state.result[mapped_].result == [run_id] * 3

    records = [r for r in caplog.records if r.name.startswith("aflow.task.")]
    by_msg = {r.getMessage(): r for r in records}
    assert set(by_msg) == {"processing 0", "processing 10", "processing 11", "processing 12"}

    one = by_msg["processing 0"]
    assert one.name == "aflow.task.loud"
    assert (one.flow_run_id, one.flow_name, one.task_name, one.map_index) == (run_id, "logflow", "loud", None)
    assert one.task_slug == single.slug

    for i, x in enumerate([10, 11, 12]):
        rec = by_msg[f"processing {x}"]
        assert rec.name == "aflow.task.loud-mapped"
        assert (rec.flow_run_id, rec.task_name, rec.map_index) == (run_id, "loud-mapped", i)
        assert rec.task_run_id == f"{run_id}/{mapped_.slug}[{i}]"


async def test_sync_task_logger_records_carry_map_index(caplog):
    caplog.set_level(logging.INFO, logger="aflow.task")

    class SyncLoud(Task):
        def run(self, x):
            self.logger.info("sync %s", x)

    with Flow("f") as flow:
        SyncLoud().map([5, 6])

    assert (await flow.run()).is_successful()
    got = {r.getMessage(): (r.map_index, r.task_name) for r in caplog.records if r.name == "aflow.task.SyncLoud"}
    assert got == {"sync 5": (0, "SyncLoud"), "sync 6": (1, "SyncLoud")}


async def test_task_logger_outside_a_run_has_no_context(caplog):
    caplog.set_level(logging.INFO, logger="aflow.task")
    Loud(name="direct").logger.info("hi")
    (rec,) = [r for r in caplog.records if r.name == "aflow.task.direct"]
    assert (rec.flow_run_id, rec.task_name, rec.map_index) == (None, None, None)


# -- errors a user can act on, at build time ------------------------------------------------------


class NoRun(Task):
    pass


def test_a_task_class_without_run_is_refused_when_bound_or_added():
    message = r"NoRun has no run\(\) method, so it has nothing to do: define `async def run\(self, \.\.\.\)`"
    with Flow("f") as flow, pytest.raises(TaskDefinitionError, match=message):
        NoRun()()
    with pytest.raises(TaskDefinitionError, match=message):
        Flow("g").add_task(NoRun())
    with Flow("h"), pytest.raises(TaskDefinitionError, match="NoRun has no run"):
        NoRun().map([1, 2])
    assert len(flow) == 0

    # a base class without run stays usable as a base, and an edge placeholder needs no flow
    class Child(NoRun):
        async def run(self, x):
            return x

    with Flow("ok") as ok:
        Child()(1)
    assert len(ok) == 1


async def fetch_page() -> int:
    return 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Add(max_retry=3),  # type: ignore[call-arg]  # mypy sees the typo too
            "Add() got an unexpected keyword argument 'max_retry': did you mean 'max_retries'?",
        ),
        (
            lambda: Task(tag=["a"]),  # type: ignore[call-arg]
            "Task() got an unexpected keyword argument 'tag': did you mean 'tags'?",
        ),
        (
            lambda: task(max_retry=3)(fetch_page),
            "@task (for 'fetch_page') got an unexpected keyword argument 'max_retry': did you mean 'max_retries'?",
        ),
        (
            lambda: FunctionTask(fetch_page, timeuot=3),
            "@task (for 'fetch_page') got an unexpected keyword argument 'timeuot': ",
        ),
        (
            lambda: Add(zzz=1),  # type: ignore[call-arg]
            "Add() got an unexpected keyword argument 'zzz': it takes cache_for, cache_key, ",
        ),
    ],
)
def test_a_misspelled_init_keyword_names_the_class_and_the_nearest_valid_name(make, message):
    with pytest.raises(TaskDefinitionError) as info:
        make()
    assert str(info.value).startswith(message)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_a_subclass_init_keyword_typo_is_explained_but_errors_inside_init_are_left_alone():
    class Configured(Task):
        def __init__(self, path: str = "", **kwargs: Any) -> None:
            if path == "bad":
                sorted([], bogus=1)  # type: ignore[call-overload]  # a TypeError of the body's own
            self.path = path
            super().__init__(**kwargs)

        async def run(self):
            return self.path

    with pytest.raises(
        TaskDefinitionError, match=r"Configured\(\) got an unexpected keyword argument 'pth': did you mean 'path'"
    ):
        Configured(pth="x")
    with pytest.raises(TypeError, match="'bogus'") as info:
        Configured(path="bad")
    assert not isinstance(info.value, TaskDefinitionError)


async def test_awaiting_a_task_call_while_building_says_what_to_do():
    with Flow("f"), pytest.raises(TaskDefinitionError) as info:
        await ident(1)  # type: ignore[misc]  # mypy reports it too
    assert isinstance(info.value, TypeError)
    assert "Task 'ident' cannot be awaited: calling a task inside `with Flow(...)` adds it to the flow" in str(
        info.value
    )
    assert "drop the `await`" in str(info.value)
    assert "`await flow.run()`, or `flow.run_sync()` in a script" in str(info.value)
    assert "`await ident.run(...)`" in str(info.value)
