"""Targets, checkpoints and caches, end to end through real flow runs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from aflow import Flow, Parameter, cache_validators, task
from aflow._engine._checkpoints import clear_process_cache
from aflow.history import RunStore
from aflow.results import JSONSerializer, LocalResult, MemoryResult, Result
from aflow.states import Cached, Failed, Mapped, State, Success, TriggerFailed
from aflow.testing import FakeClock

GUARD = 10


@pytest.fixture(autouse=True)
def _fresh_process_cache() -> Iterator[None]:
    clear_process_cache()  # the process cache is global: no test may see another's entries
    yield
    clear_process_cache()


async def run(flow: Flow, **kwargs: Any) -> State:
    with anyio.fail_after(GUARD):
        return await flow.run(**kwargs)


def files(root: Path) -> list[str]:
    """Every file under ``root``, as sorted relative ``/`` paths."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# -- targets ------------------------------------------------------------------------------------


async def test_target_runs_once_then_is_cached_with_the_stored_value(tmp_path: Path) -> None:
    calls: list[int] = []

    @task(target="{task_name}-{x}.pkl", result=LocalResult(tmp_path))
    def inc(x: int) -> int:
        calls.append(x)
        return x + 1

    with Flow("targets") as flow:
        x = Parameter("x", default=1)
        out = inc(x)

    first = await run(flow)
    assert first.is_successful()
    assert type(first.result[out]) is Success
    assert first.result[out].result == 2
    assert files(tmp_path) == ["inc-1.pkl"]
    assert await LocalResult(tmp_path).read("inc-1.pkl") == 2

    second = await run(flow)
    state = second.result[out]
    assert isinstance(state, Cached)
    assert "inc-1.pkl" in (state.message or "")
    assert state.result == 2
    assert calls == [1]  # not executed again

    # the value really comes from the target, not from memory
    await LocalResult(tmp_path).write(99, "inc-1.pkl")
    third = await run(flow)
    assert third.result[out].result == 99
    assert calls == [1]

    # another parameter value formats another location: the task runs for it
    fourth = await run(flow, x=5)
    assert type(fourth.result[out]) is Success
    assert fourth.result[out].result == 6
    assert calls == [1, 5]
    assert files(tmp_path) == ["inc-1.pkl", "inc-5.pkl"]


async def test_target_cached_value_flows_downstream(tmp_path: Path) -> None:
    calls: list[str] = []

    @task(target="load.pkl", result=LocalResult(tmp_path))
    def load() -> list[int]:
        calls.append("load")
        return [1, 2, 3]

    @task
    def total(xs: list[int]) -> int:
        calls.append("total")
        return sum(xs)

    with Flow("downstream") as flow:
        out = total(load())

    assert (await run(flow)).result[out].result == 6
    state = await run(flow)
    assert state.result[out].result == 6
    assert calls == ["load", "total", "total"]  # only the task without a target runs again


async def test_target_formatted_from_parameters_context_and_inputs(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []

    @task(
        target="{flow_name}/{today}/{prefix}-{task_name}-{map_index}-{v}.pkl",
        result=LocalResult(tmp_path),
    )
    def double(v: int) -> int:
        calls.append(("double", v))
        return v * 2

    @task
    def echo(prefix: str) -> str:
        return prefix

    with Flow("ctx-flow") as flow:
        prefix = Parameter("prefix", default="run")
        echo(prefix)
        doubled = double.map([10, 20, 30])

    clock = FakeClock(datetime(2024, 3, 5, 12, tzinfo=UTC))
    first = await run(flow, clock=clock)
    assert first.is_successful()
    assert first.result[doubled].result == [20, 40, 60]
    assert files(tmp_path) == [
        "ctx-flow/2024-03-05/run-double-0-10.pkl",
        "ctx-flow/2024-03-05/run-double-1-20.pkl",
        "ctx-flow/2024-03-05/run-double-2-30.pkl",
    ]

    second = await run(flow, clock=clock)
    mapped_state = second.result[doubled]
    assert isinstance(mapped_state, Mapped)
    assert all(isinstance(child, Cached) for child in mapped_state.map_states)
    assert mapped_state.result == [20, 40, 60]
    assert len(calls) == 3

    # another day, another location: every child runs again
    await clock.sleep(24 * 3600)
    third = await run(flow, clock=clock)
    assert all(type(child) is Success for child in third.result[doubled].map_states)
    assert len(calls) == 6
    assert "ctx-flow/2024-03-06/run-double-2-30.pkl" in files(tmp_path)


async def test_target_can_be_a_callable(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def where(**values: Any) -> str:
        seen.update(values)
        return f"{values['flow_name']}-{values['n']}.pkl"

    @task(target=where, result=LocalResult(tmp_path))
    def square(n: int) -> int:
        return n * n

    with Flow("callable") as flow:
        out = square(7)

    state = await run(flow)
    assert state.result[out].result == 49
    assert files(tmp_path) == ["callable-7.pkl"]
    assert seen["task_name"] == "square"
    assert seen["n"] == 7
    assert isinstance((await run(flow)).result[out], Cached)


async def test_missing_template_key_fails_the_task_with_a_clear_message(tmp_path: Path) -> None:
    calls: list[str] = []

    @task(target="{task_name}-{nope}.pkl", result=LocalResult(tmp_path))
    def body() -> int:
        calls.append("body")
        return 1

    @task
    def after(x: int) -> int:
        calls.append("after")
        return x

    with Flow("missing") as flow:
        first = body()
        second = after(first)

    state = await run(flow)
    assert state.is_failed()
    failed = state.result[first]
    assert type(failed) is Failed
    assert "'nope'" in (failed.message or "")
    assert "{task_name}-{nope}.pkl" in (failed.message or "")
    assert isinstance(failed.result, ValueError)
    assert isinstance(state.result[second], TriggerFailed)
    assert calls == []
    assert files(tmp_path) == []


async def test_target_escaping_the_result_directory_fails(tmp_path: Path) -> None:
    @task(target="../{task_name}.pkl", result=LocalResult(tmp_path / "results"))
    def escape() -> int:
        return 1

    with Flow("escape") as flow:
        out = escape()

    state = await run(flow)
    assert type(state.result[out]) is Failed
    assert "'..'" in (state.result[out].message or "")
    assert files(tmp_path) == []


# -- checkpoints --------------------------------------------------------------------------------


async def test_checkpoint_true_writes_every_success(tmp_path: Path) -> None:
    @task(checkpoint=True, result=LocalResult(tmp_path))
    def produce() -> dict[str, int]:
        return {"a": 1}

    @task
    def consume(d: dict[str, int]) -> int:
        return d["a"]

    with Flow("ckpt") as flow:
        out = consume(produce())

    assert (await run(flow)).result[out].result == 1
    written = files(tmp_path)
    assert len(written) == 1
    assert written[0].startswith("ckpt/produce.")
    assert written[0].endswith(".result")
    assert await LocalResult(tmp_path).read(written[0]) == {"a": 1}

    await run(flow)  # a checkpoint is not a cache: the task runs and writes again
    assert len(files(tmp_path)) == 2


async def test_checkpoint_of_mapped_children(tmp_path: Path) -> None:
    result = LocalResult(tmp_path, location="{task_full_name}.pkl")

    @task(checkpoint=True, result=result)
    def inc(x: int) -> int:
        return x + 1

    with Flow("map-ckpt") as flow:
        out = inc.map([1, 2, 3])

    assert (await run(flow)).result[out].result == [2, 3, 4]
    assert files(tmp_path) == ["inc[0].pkl", "inc[1].pkl", "inc[2].pkl"]
    assert [await result.read(f"inc[{i}].pkl") for i in range(3)] == [2, 3, 4]


async def test_a_result_without_checkpointing_writes_nothing(tmp_path: Path) -> None:
    @task(result=LocalResult(tmp_path / "task"))
    def one() -> int:
        return 1

    @task
    def two(x: int) -> int:
        return x + 1

    with Flow("no-ckpt", result=LocalResult(tmp_path / "flow")) as flow:
        out = two(one())

    assert (await run(flow)).result[out].result == 2
    assert files(tmp_path) == []  # checkpointing is off unless asked for (Prefect 1's local default)


async def test_flow_level_checkpoint_default_and_opt_outs(tmp_path: Path) -> None:
    own = LocalResult(tmp_path / "own", location="{task_name}.json", serializer=JSONSerializer())

    @task
    def a() -> int:
        return 1

    @task(checkpoint=False)
    def b(x: int) -> int:
        return x + 1

    @task(result=own)
    def c(x: int) -> dict[str, int]:
        return {"v": x}

    with Flow("flow-default", result=LocalResult(tmp_path / "flow"), checkpoint=True) as flow:
        out = c(b(a()))

    assert (await run(flow)).result[out].result == {"v": 2}
    written = files(tmp_path)
    assert len(written) == 2
    assert written[0].startswith("flow/flow-default/a.")  # a: the flow's result
    assert written[1] == "own/c.json"  # c: its own result wins; b opted out
    assert json.loads((tmp_path / "own" / "c.json").read_text()) == {"v": 2}


async def test_task_checkpoint_false_wins_over_a_target(tmp_path: Path) -> None:
    calls: list[int] = []

    @task(target="t.pkl", result=LocalResult(tmp_path), checkpoint=False)
    def body() -> int:
        calls.append(1)
        return 1

    with Flow("opt-out", checkpoint=True) as flow:
        body()

    await run(flow)
    await run(flow)
    assert files(tmp_path) == []  # nothing written, so nothing found: it runs each time
    assert calls == [1, 1]


async def test_json_serializer_target(tmp_path: Path) -> None:
    calls: list[int] = []
    result = LocalResult(tmp_path, serializer=JSONSerializer())

    @task(target="{task_name}.json", result=result)
    def config() -> dict[str, Any]:
        calls.append(1)
        return {"name": "x", "values": [1, 2]}

    with Flow("json") as flow:
        out = config()

    await run(flow)
    assert json.loads((tmp_path / "config.json").read_text()) == {"name": "x", "values": [1, 2]}
    state = await run(flow)
    assert isinstance(state.result[out], Cached)
    assert state.result[out].result == {"name": "x", "values": [1, 2]}
    assert calls == [1]


async def test_a_value_the_serializer_cannot_write_fails_the_task(tmp_path: Path) -> None:
    @task(target="{task_name}.json", result=LocalResult(tmp_path, serializer=JSONSerializer()))
    def unserializable() -> object:
        return object()

    with Flow("bad-json") as flow:
        out = unserializable()

    state = await run(flow)
    assert type(state.result[out]) is Failed
    assert "Could not write the task's result" in (state.result[out].message or "")
    assert files(tmp_path) == []  # no partial file, no temporary left behind


async def test_memory_result_target_within_one_result_object() -> None:
    calls: list[int] = []
    result = MemoryResult()

    @task(target="{task_name}", result=result)
    def body() -> int:
        calls.append(1)
        return 3

    with Flow("memory") as flow:
        out = body()

    await run(flow)
    state = await run(flow)
    assert isinstance(state.result[out], Cached)
    assert state.result[out].result == 3
    assert calls == [1]


class _Preparing(Result):
    """A dict store that counts `prepare` calls and can fail them (a real Result subclass)."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.prepared = 0
        self.reads_before_prepare = 0
        self.values: dict[str, Any] = {}

    async def prepare(self) -> None:
        self.prepared += 1
        if self.fail:
            raise OSError("store offline")

    async def exists(self, location: str) -> bool:
        return location in self.values

    async def read(self, location: str) -> Any:
        if not self.prepared:
            self.reads_before_prepare += 1
        try:
            return self.values[location]
        except KeyError:
            raise FileNotFoundError(location) from None

    async def write(self, value: Any, location: str) -> str:
        self.values[location] = value
        return location


async def test_a_targets_store_is_prepared_once_per_run_before_any_read() -> None:
    store, other = _Preparing(), _Preparing()

    @task(target="{task_name}-{x}", result=store)
    def double(x: int) -> int:
        return 2 * x

    @task(checkpoint=True, result=other)  # written, never read: not prepared
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("prepared") as flow:
        out = total([double(i) for i in range(5)])

    first = await run(flow)
    second = await run(flow)
    assert first.result[out].result == second.result[out].result == 20
    assert all(isinstance(second.result[t], Cached) for t in flow.get_tasks(name="double"))
    assert store.prepared == 2  # one per run, for five tasks sharing the store
    assert store.reads_before_prepare == 0
    assert other.prepared == 0


async def test_a_store_that_fails_to_prepare_is_logged_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    store = _Preparing(fail=True)

    @task(target="{task_name}", result=store)
    def body() -> int:
        return 3

    with Flow("unprepared") as flow:
        out = body()

    state = await run(flow)
    assert state.is_successful()
    assert state.result[out].result == 3
    assert store.values == {"body": 3}
    assert "Could not prepare" in caplog.text
    assert "store offline" in caplog.text


# -- caches -------------------------------------------------------------------------------------


async def test_cache_for_is_used_within_the_duration_and_expires() -> None:
    calls: list[int] = []
    clock = FakeClock()

    @task(cache_for=timedelta(minutes=10))
    def body() -> int:
        calls.append(1)
        return len(calls)

    with Flow("cache") as flow:
        out = body()

    first = await run(flow, clock=clock)
    assert isinstance(first.result[out], Cached)  # a success with cache_for ends Cached, as in Prefect 1
    assert first.result[out].result == 1
    assert first.result[out].cached_result_expiration == clock.now() + timedelta(minutes=10)
    assert calls == [1]

    await clock.sleep(9 * 60)
    second = await run(flow, clock=clock)
    assert second.result[out].result == 1
    assert "valid cached result" in (second.result[out].message or "")
    assert calls == [1]

    await clock.sleep(61)  # past the expiry
    third = await run(flow, clock=clock)
    assert third.result[out].result == 2
    assert calls == [1, 1]


async def test_all_inputs_validator() -> None:
    calls: list[int] = []
    clock = FakeClock()

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    with Flow("inputs") as flow:
        x = Parameter("x")
        out = square(x)

    assert (await run(flow, clock=clock, x=2)).result[out].result == 4
    assert (await run(flow, clock=clock, x=2)).result[out].result == 4
    assert calls == [2]
    assert (await run(flow, clock=clock, x=3)).result[out].result == 9  # a different input: re-run
    assert calls == [2, 3]
    assert (await run(flow, clock=clock, x=2)).result[out].result == 4  # both entries are kept
    assert (await run(flow, clock=clock, x=3)).result[out].result == 9
    assert calls == [2, 3]


async def test_all_parameters_validator() -> None:
    calls: list[int] = []
    clock = FakeClock()

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_parameters)
    def body(x: int) -> int:
        calls.append(x)
        return x

    @task
    def other(y: int) -> int:
        return y

    with Flow("params") as flow:
        body(Parameter("x"))
        other(Parameter("y", default=0))

    await run(flow, clock=clock, x=1)
    await run(flow, clock=clock, x=1)
    assert calls == [1]
    await run(flow, clock=clock, x=1, y=5)  # a parameter the task does not use still counts
    assert calls == [1, 1]
    await run(flow, clock=clock, x=1, y=5)
    assert calls == [1, 1]


async def test_partial_inputs_only_validator() -> None:
    calls: list[tuple[int, int]] = []
    clock = FakeClock()

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.partial_inputs_only(["a"]))
    def body(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    with Flow("partial") as flow:
        out = body(Parameter("a"), Parameter("b"))

    assert (await run(flow, clock=clock, a=1, b=1)).result[out].result == 2
    # b is not validated: the cached value (from b=1) is used
    assert (await run(flow, clock=clock, a=1, b=2)).result[out].result == 2
    assert calls == [(1, 1)]
    assert (await run(flow, clock=clock, a=2, b=2)).result[out].result == 4
    assert calls == [(1, 1), (2, 2)]


async def test_never_use_validator_always_runs() -> None:
    calls: list[int] = []

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.never_use)
    def body() -> int:
        calls.append(1)
        return 1

    with Flow("never") as flow:
        body()

    await run(flow)
    await run(flow)
    assert calls == [1, 1]


async def test_cache_key_is_shared_between_tasks_of_two_flows() -> None:
    calls: list[str] = []
    clock = FakeClock()

    @task(cache_for=timedelta(hours=1), cache_key="shared")
    def one() -> str:
        calls.append("one")
        return "from one"

    @task(cache_for=timedelta(hours=1), cache_key="shared")
    def two() -> str:
        calls.append("two")
        return "from two"

    @task(cache_for=timedelta(hours=1))
    def three() -> str:  # same body as two, but no shared key: its name is its key
        calls.append("three")
        return "from three"

    with Flow("first") as first:
        out_one = one()
    with Flow("second") as second:
        out_two = two()
        out_three = three()

    assert (await run(first, clock=clock)).result[out_one].result == "from one"
    state = await run(second, clock=clock)
    assert isinstance(state.result[out_two], Cached)
    assert state.result[out_two].result == "from one"
    assert state.result[out_three].result == "from three"
    assert calls == ["one", "three"]


async def test_cache_is_kept_in_the_process_until_cleared() -> None:
    calls: list[int] = []

    @task(cache_for=timedelta(hours=1))
    def body() -> int:
        calls.append(1)
        return 1

    with Flow("process") as flow:
        body()

    await run(flow)
    await run(flow)
    assert calls == [1]
    clear_process_cache()
    await run(flow)  # no run store: nothing survives the wipe
    assert calls == [1, 1]


async def test_cache_survives_a_process_cache_wipe_through_the_run_store(tmp_path: Path) -> None:
    calls: list[int] = []
    db = tmp_path / "runs.db"
    clock = FakeClock()

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def body(x: int) -> dict[str, int]:
        calls.append(x)
        return {"x": x}

    with Flow("stored") as flow:
        out = body(Parameter("x"))

    first = await run(flow, clock=clock, history=db, x=1)
    assert first.result[out].result == {"x": 1}
    clear_process_cache()  # as if the process had restarted

    second = await run(flow, clock=clock, history=db, x=1)
    assert isinstance(second.result[out], Cached)
    assert "valid cached result" in (second.result[out].message or "")
    assert second.result[out].result == {"x": 1}
    assert calls == [1]

    clear_process_cache()
    await run(flow, clock=clock, history=db, x=2)  # the stored inputs are validated too
    assert calls == [1, 2]

    clear_process_cache()
    await clock.sleep(3601)  # stored entries expire too
    await run(flow, clock=clock, history=db, x=1)
    assert calls == [1, 2, 1]

    async with RunStore(db) as store:
        entries = await store.cache_get("body")
    assert len(entries) == 1  # storing the new entry deleted the two that had expired by then
    assert entries[0].value is not None


async def test_cache_key_is_shared_through_the_run_store_with_an_open_store(tmp_path: Path) -> None:
    calls: list[str] = []

    @task(cache_for=timedelta(hours=1), cache_key="k")
    def one() -> str:
        calls.append("one")
        return "v"

    @task(cache_for=timedelta(hours=1), cache_key="k")
    def two() -> str:
        calls.append("two")
        return "w"

    with Flow("a") as flow_a:
        one()
    with Flow("b") as flow_b:
        out = two()

    async with RunStore(tmp_path / "runs.db") as store:
        await run(flow_a, history=store)
        clear_process_cache()
        state = await run(flow_b, history=store)
    assert state.result[out].result == "v"
    assert calls == ["one"]


async def test_stored_cache_validates_parameters_json_cannot_keep_exactly(tmp_path: Path) -> None:
    # the store keeps parameters as JSON (a date as text, a tuple as a list): validation must
    # still match the run's own parameters after a restart
    calls: list[Any] = []
    db = tmp_path / "runs.db"

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_parameters)
    def body(day: date, pair: tuple[int, int]) -> str:
        calls.append((day, pair))
        return f"{day}:{pair}"

    with Flow("typed-params") as flow:
        out = body(Parameter("day"), Parameter("pair"))

    await run(flow, history=db, day=date(2024, 1, 1), pair=(1, 2))
    clear_process_cache()
    state = await run(flow, history=db, day=date(2024, 1, 1), pair=(1, 2))
    assert isinstance(state.result[out], Cached)
    assert state.result[out].result == "2024-01-01:(1, 2)"
    assert len(calls) == 1
    clear_process_cache()
    await run(flow, history=db, day=date(2024, 1, 2), pair=(1, 2))  # another day: re-run
    assert len(calls) == 2


async def test_an_unreadable_stored_cache_entry_is_skipped_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    db = tmp_path / "runs.db"

    @task(cache_for=timedelta(hours=1), cache_key="shared-key")
    def body(x: int) -> int:
        calls.append(x)
        return x * 10

    with Flow("stored") as flow:
        out = body(Parameter("x"))

    clock = FakeClock()
    async with RunStore(db) as store:  # an entry whose bytes no longer unpickle
        await store.cache_put("shared-key", None, None, b"not a pickle", None, now=clock.now())
    state = await run(flow, clock=clock, history=db, x=1)
    assert state.result[out].result == 10
    assert calls == [1]  # the bad entry was skipped, the task ran
    assert any("unreadable cached result" in r.getMessage() for r in caplog.records)


class Recording(Result):
    """Remembers the locations it was asked to write."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []

    async def exists(self, location: str) -> bool:
        return False

    async def read(self, location: str) -> Any:
        raise FileNotFoundError(location)

    async def write(self, value: Any, location: str) -> str:
        self.written.append(location)
        return location


async def test_default_checkpoint_locations_honour_every_value_that_hides_their_names() -> None:
    from aflow import context

    @task
    def plain(x: int) -> int:
        return x

    @task
    def named(task_full_name: str) -> str:  # an input named like a context value wins over it
        return task_full_name

    async def locations(with_uuid: bool = False, **run_args: Any) -> list[str]:
        store = Recording()
        with Flow("f/low", result=store, checkpoint=True) as flow:
            plain(1)
            named("in/put")
            plain.map([5, 6])
            if with_uuid:
                plain(Parameter("uuid"))
        assert (await flow.run(**run_args)).is_successful()
        return sorted(store.written)

    def shapes(found: list[str]) -> list[str]:
        return [re.sub(r"\.[0-9a-f]{32}\.result$", ".<uuid>.result", loc) for loc in found]

    fresh = await locations()
    assert shapes(fresh) == [
        "f_low/in_put.<uuid>.result",
        "f_low/plain.<uuid>.result",
        "f_low/plain[0].<uuid>.result",
        "f_low/plain[1].<uuid>.result",
    ]
    assert len(set(fresh)) == 4
    assert shapes(await locations(context={"flow_name": "ctx"}))[1] == "ctx/plain.<uuid>.result"
    assert set(await locations(with_uuid=True, parameters={"uuid": "p/q"})) == {
        "f_low/in_put.p_q.result",
        "f_low/plain.p_q.result",
        "f_low/plain[0].p_q.result",
        "f_low/plain[1].p_q.result",
    }
    with context.temporary(flow_name="over"):
        assert shapes(await locations())[1] == "over/plain.<uuid>.result"
