from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest

from aflow import results
from aflow.results import (
    DEFAULT_LOCATION,
    JSONSerializer,
    LocalResult,
    MemoryResult,
    PickleSerializer,
    Result,
    Serializer,
    format_location,
)

REPO = Path(__file__).resolve().parents[2]


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


class Boom(Exception):
    pass


class FailingSerializer(Serializer):
    def dumps(self, value: Any) -> bytes:
        raise Boom("cannot serialize")

    def loads(self, data: bytes) -> Any:
        raise AssertionError("never read")


# -- the public module ----------------------------------------------------------------------------


def test_public_names_are_sorted_documented_and_owned_by_aflow_results() -> None:
    assert list(results.__all__) == sorted(results.__all__)
    for name in results.__all__:
        obj = getattr(results, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == "aflow.results", name
            assert obj.__doc__, name
    assert LocalResult.__final__  # type: ignore[attr-defined]
    assert MemoryResult.__final__  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="abstract"):
        Result()  # type: ignore[abstract]
    with pytest.raises(TypeError, match="abstract"):
        Serializer()  # type: ignore[abstract]


def test_importing_aflow_does_not_import_cloudpickle() -> None:
    code = (
        "import sys, aflow, aflow.results, aflow.cache_validators\n"
        "from aflow.results import LocalResult, MemoryResult\n"
        "LocalResult('.'); MemoryResult()\n"
        "assert 'cloudpickle' not in sys.modules, 'cloudpickle imported eagerly'\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# -- serializers ------------------------------------------------------------------------------------


def test_pickle_serializer_round_trips_closures() -> None:
    offset = 10
    serializer = PickleSerializer()
    data = serializer.dumps({"f": lambda x: x + offset, "when": datetime(2024, 1, 1, tzinfo=UTC)})
    assert isinstance(data, bytes)
    value = serializer.loads(data)
    assert value["f"](1) == 11
    assert value["when"] == datetime(2024, 1, 1, tzinfo=UTC)
    assert pickle.loads(PickleSerializer(protocol=2).dumps([1, 2])) == [1, 2]


@pytest.mark.parametrize("value", [0, -(10**40), 1.5, 2j, "é", b"\x00", True, None])
@pytest.mark.parametrize("protocol", [None, 2, 4])
def test_pickle_serializer_writes_scalars_as_cloudpickle_does(value: Any, protocol: int | None) -> None:
    import cloudpickle  # type: ignore[import-untyped]

    data = PickleSerializer(protocol).dumps(value)
    assert data == cloudpickle.dumps(value, protocol=protocol)
    assert PickleSerializer().loads(data) == value


def test_json_serializer_round_trips_and_passes_its_kwargs() -> None:
    serializer = JSONSerializer(dumps_kwargs={"sort_keys": True})
    data = serializer.dumps({"b": [1, 2.5, None], "a": "é"})
    assert data == b'{"a": "\\u00e9", "b": [1, 2.5, null]}'
    assert serializer.loads(data) == {"a": "é", "b": [1, 2.5, None]}
    hooked = JSONSerializer(loads_kwargs={"object_hook": lambda d: sorted(d)})
    assert hooked.loads(b'{"y": 1, "x": 2}') == ["x", "y"]
    with pytest.raises(TypeError):
        JSONSerializer().dumps({1, 2})


def test_serializers_compare_by_type_and_settings() -> None:
    assert PickleSerializer() == PickleSerializer()
    assert PickleSerializer() != PickleSerializer(protocol=2)
    assert JSONSerializer() != PickleSerializer()
    assert JSONSerializer({"indent": 2}) == JSONSerializer({"indent": 2})
    assert len({PickleSerializer(), PickleSerializer()}) == 1


# -- locations --------------------------------------------------------------------------------------


def test_format_fills_a_template_and_ignores_extra_values() -> None:
    result = MemoryResult(location="{flow_name}/{task_name}-{map_index}.pkl")
    location = result.format(flow_name="etl", task_name="load", map_index=3, unused=object())
    assert location == "etl/load-3.pkl"


def test_format_supports_format_specs_items_and_uuid() -> None:
    result = MemoryResult(location="{date:%Y/%m}/{parameters[x]}-{uuid}.bin")
    first = result.format(date=datetime(2024, 7, 1, tzinfo=UTC), parameters={"x": "a"})
    second = result.format(date=datetime(2024, 7, 1, tzinfo=UTC), parameters={"x": "a"})
    assert first.startswith("2024/07/a-")
    assert first != second  # a fresh uuid each time
    assert result.format(date=datetime(2024, 7, 1, tzinfo=UTC), parameters={"x": "a"}, uuid="u") == "2024/07/a-u.bin"


def test_a_missing_key_names_the_key_and_the_template() -> None:
    result = MemoryResult(location="{flow_name}/{task_name}.pkl")
    with pytest.raises(ValueError, match="'task_name'") as info:
        result.format(flow_name="etl")
    assert "{flow_name}/{task_name}.pkl" in str(info.value)
    assert "'flow_name'" in str(info.value)  # the values that were available


def test_bad_templates_raise_value_error() -> None:
    with pytest.raises(ValueError, match="positional"):
        format_location("{}.pkl", x=1)
    with pytest.raises(ValueError, match="positional"):
        format_location("{0}.pkl", x=1)
    with pytest.raises(ValueError, match="not a valid format string"):
        format_location("{x.pkl", x=1)
    with pytest.raises(ValueError, match="cannot format"):
        format_location("{parameters[missing]}", parameters={})


def test_a_callable_location_gets_every_value() -> None:
    seen: dict[str, Any] = {}

    def where(**kwargs: Any) -> str:
        seen.update(kwargs)
        return f"{kwargs['task_name']}/{kwargs['x'] * 2}.pkl"

    result = MemoryResult(location=where)
    assert result.format(task_name="t", x=21) == "t/42.pkl"
    assert seen.keys() == {"task_name", "x", "uuid"}
    assert format_location(lambda **kw: Path("a") / "b.pkl") == "a/b.pkl"  # type: ignore[arg-type]


def test_a_callable_location_missing_a_key_or_returning_a_non_string() -> None:
    def where(**kwargs: Any) -> str:
        return str(kwargs["flow_name"])

    with pytest.raises(ValueError, match=r"where needs the value 'flow_name'"):
        format_location(where, task_name="t")
    with pytest.raises(TypeError, match="int"):
        format_location(lambda **kw: 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        format_location(3)  # type: ignore[arg-type]


def test_default_location_is_unique_and_safe_for_paths() -> None:
    result = MemoryResult()
    assert result.location is None
    assert DEFAULT_LOCATION == "{flow_name}/{task_full_name}.{uuid}.result"
    first = result.format(flow_name="etl", task_full_name="load[3]")
    second = result.format(flow_name="etl", task_full_name="load[3]")
    assert first.startswith("etl/load[3].")
    assert first.endswith(".result")
    assert first != second
    assert result.format(flow_name="../x", task_full_name="a/b", uuid="u") == ".._x/a_b.u.result"
    assert result.format(flow_name="..", uuid="u") == "_/_no_task.u.result"
    assert result.format(uuid="u") == "_no_flow/_no_task.u.result"
    assert result.format(flow_name="f", task_name="t", uuid="u") == "f/t.u.result"


def test_results_default_to_the_pickle_serializer() -> None:
    assert MemoryResult().serializer == PickleSerializer()
    assert LocalResult(".").serializer == PickleSerializer()
    assert MemoryResult(serializer=JSONSerializer()).serializer == JSONSerializer()


# -- LocalResult ------------------------------------------------------------------------------------


async def test_local_result_round_trip_creates_directories(tmp_path: Path) -> None:
    result = LocalResult(tmp_path / "store")
    assert not await result.exists("flow/task/1.pkl")
    assert await result.write({"a": [1, 2]}, "flow/task/1.pkl") == "flow/task/1.pkl"
    assert await result.exists("flow/task/1.pkl")
    assert await result.read("flow/task/1.pkl") == {"a": [1, 2]}
    stored = (tmp_path / "store" / "flow" / "task" / "1.pkl").read_bytes()
    assert pickle.loads(stored) == {"a": [1, 2]}
    assert files_under(tmp_path) == ["store/flow/task/1.pkl"]


async def test_local_result_overwrites(tmp_path: Path) -> None:
    result = LocalResult(tmp_path)
    await result.write(1, "x.pkl")
    await result.write(2, "x.pkl")
    assert await result.read("x.pkl") == 2
    assert files_under(tmp_path) == ["x.pkl"]


async def test_local_result_with_json_writes_plain_json(tmp_path: Path) -> None:
    result = LocalResult(tmp_path, serializer=JSONSerializer())
    await result.write({"n": 1}, "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == {"n": 1}
    assert await result.read("out.json") == {"n": 1}


async def test_local_result_read_of_a_missing_location(tmp_path: Path) -> None:
    result = LocalResult(tmp_path)
    with pytest.raises(FileNotFoundError):
        await result.read("nope.pkl")
    (tmp_path / "adir").mkdir()
    assert not await result.exists("adir")  # a directory is not a result


async def test_local_result_formats_then_writes(tmp_path: Path) -> None:
    result = LocalResult(tmp_path, location="{flow_name}/{task_name}-{map_index}.pkl")
    location = result.format(flow_name="etl", task_name="load", map_index=0)
    await result.write("v", location)
    assert files_under(tmp_path) == ["etl/load-0.pkl"]


def test_local_result_dir_is_absolute_and_defaults_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert LocalResult("rel").dir == tmp_path / "rel"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert LocalResult().dir == tmp_path / "home" / ".aflow" / "results"


@pytest.mark.parametrize(
    "location",
    ["../x.pkl", "a/../../x.pkl", "a/..", "..", "/etc/passwd", "\\x.pkl", "a\\..\\..\\x.pkl", "", "a/", "a/."],
)
async def test_local_result_rejects_locations_outside_dir(tmp_path: Path, location: str) -> None:
    store = tmp_path / "store"
    result = LocalResult(store)
    with pytest.raises(ValueError, match="result location") as info:
        await result.write("secret", location)
    assert repr(location) in str(info.value)
    with pytest.raises(ValueError, match="result location"):
        await result.exists(location)
    with pytest.raises(ValueError, match="result location"):
        await result.read(location)
    assert files_under(tmp_path) == []


async def test_local_result_accepts_dots_inside_names(tmp_path: Path) -> None:
    result = LocalResult(tmp_path)
    await result.write(1, "./a/..b/c..pkl")
    assert files_under(tmp_path) == ["a/..b/c..pkl"]
    assert result.path("a//b.pkl") == tmp_path / "a" / "b.pkl"
    with pytest.raises(TypeError, match="str"):
        result.path(Path("x"))  # type: ignore[arg-type]


async def test_a_failing_serializer_leaves_no_file(tmp_path: Path) -> None:
    result = LocalResult(tmp_path, serializer=FailingSerializer())
    with pytest.raises(Boom):
        await result.write(1, "a/x.pkl")
    assert files_under(tmp_path) == []


async def test_a_failed_write_keeps_the_previous_value(tmp_path: Path) -> None:
    await LocalResult(tmp_path).write("old", "x.pkl")
    with pytest.raises(Boom):
        await LocalResult(tmp_path, serializer=FailingSerializer()).write("new", "x.pkl")
    assert await LocalResult(tmp_path).read("x.pkl") == "old"
    assert files_under(tmp_path) == ["x.pkl"]


@pytest.mark.parametrize("failing", ["fsync", "replace", "write"])
async def test_an_io_error_mid_write_removes_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    result = LocalResult(tmp_path, durable=True)  # durable: fsync is called too
    await result.write("old", "d/x.pkl")
    seen_temp: list[str] = []

    def broken(*args: Any) -> Any:
        seen_temp.extend(name for name in os.listdir(tmp_path / "d") if name.endswith(".tmp"))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(OSError, match="No space left"):
        await result.write("x" * 100_000, "d/x.pkl")
    monkeypatch.undo()
    assert len(seen_temp) == 1  # the failure really happened while a temporary file existed
    assert seen_temp[0].startswith(".x.pkl.")
    assert files_under(tmp_path) == ["d/x.pkl"]
    assert await result.read("d/x.pkl") == "old"


async def test_a_non_bytes_serializer_output_is_refused(tmp_path: Path) -> None:
    class TextSerializer(Serializer):
        def dumps(self, value: Any) -> bytes:
            return str(value)  # type: ignore[return-value]

        def loads(self, data: bytes) -> Any:
            return data.decode()

    with pytest.raises(TypeError, match=r"TextSerializer\.dumps returned str"):
        await LocalResult(tmp_path, serializer=TextSerializer()).write(1, "x")
    assert files_under(tmp_path) == []


async def test_a_write_cancelled_midway_finishes_whole_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A thread cannot be interrupted: the write in flight completes (atomically), then the
    # cancellation is delivered. What must never exist is a partial file or a temporary file.
    result = LocalResult(tmp_path, durable=True)
    in_fsync = anyio.Event()
    cancel_requested = anyio.Event()
    temp_files: list[str] = []
    real_fsync = os.fsync

    def fsync_after_cancel(fd: int) -> None:  # runs in the worker thread (file, then directory)
        if not temp_files:
            temp_files.extend(os.listdir(tmp_path / "a"))
        anyio.from_thread.run_sync(in_fsync.set)
        anyio.from_thread.run(cancel_requested.wait)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_after_cancel)
    outcome: list[str] = []

    async def writer() -> None:
        try:
            await result.write(list(range(1000)), "a/b.pkl")
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise
        outcome.append("written")

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await in_fsync.wait()
        tg.cancel_scope.cancel()
        cancel_requested.set()

    assert outcome == ["cancelled"]  # after the write in flight finished
    assert len(temp_files) == 1  # the temporary file existed when the cancel came
    assert temp_files[0].startswith(".b.pkl.")
    assert files_under(tmp_path) == ["a/b.pkl"]  # published whole; the temporary file is gone
    assert await result.read("a/b.pkl") == list(range(1000))


async def test_concurrent_writes_to_one_location_leave_one_whole_value(tmp_path: Path) -> None:
    result = LocalResult(tmp_path)
    values = [[i] * 10_000 for i in range(20)]
    async with anyio.create_task_group() as tg:
        for value in values:
            tg.start_soon(result.write, value, "shared.pkl")
    assert await result.read("shared.pkl") in values
    assert files_under(tmp_path) == ["shared.pkl"]


async def test_long_names_get_a_short_enough_temporary_file(tmp_path: Path) -> None:
    result = LocalResult(tmp_path)
    name = "n" * 200 + ".pkl"
    await result.write(1, name)
    assert await result.read(name) == 1


def test_local_result_repr(tmp_path: Path) -> None:
    text = repr(LocalResult(tmp_path, location="{x}.json", serializer=JSONSerializer()))
    assert text.startswith(f"LocalResult(dir={str(tmp_path)!r}, location='{{x}}.json', serializer=JSONSerializer(")


# -- MemoryResult -----------------------------------------------------------------------------------


async def test_memory_result_round_trip_and_missing_location() -> None:
    result = MemoryResult()
    assert not await result.exists("k")
    assert await result.write([1, 2], "k") == "k"
    assert await result.exists("k")
    assert await result.read("k") == [1, 2]
    with pytest.raises(FileNotFoundError, match="'other'"):
        await result.read("other")


async def test_memory_result_stores_copies() -> None:
    result = MemoryResult()
    value = {"items": [1]}
    await result.write(value, "k")
    value["items"].append(2)
    read = await result.read("k")
    assert read == {"items": [1]}
    read["items"].append(3)
    assert await result.read("k") == {"items": [1]}


async def test_memory_results_do_not_share_their_store() -> None:
    first, second = MemoryResult(), MemoryResult()
    await first.write(1, "k")
    assert await first.exists("k")
    assert not await second.exists("k")


async def test_memory_result_uses_its_serializer() -> None:
    result = MemoryResult(serializer=JSONSerializer())
    await result.write((1, 2), "k")
    assert await result.read("k") == [1, 2]  # JSON has no tuples
    with pytest.raises(TypeError):
        await result.write(threading.Lock(), "lock")
    assert not await result.exists("lock")


async def test_memory_result_rejects_empty_locations() -> None:
    with pytest.raises(ValueError, match="empty"):
        await MemoryResult().write(1, "")


# -- a user-defined store ---------------------------------------------------------------------------


async def test_a_user_defined_result_only_implements_storage() -> None:
    class DictResult(Result):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.data: dict[str, Any] = {}

        async def exists(self, location: str) -> bool:
            return location in self.data

        async def read(self, location: str) -> Any:
            return self.data[location]

        async def write(self, value: Any, location: str) -> str:
            self.data[location] = value
            return location

    result = DictResult(location="{task_name}.v")
    location = result.format(task_name="t")
    await result.write(5, location)
    assert result.data == {"t.v": 5}
    assert await result.read(location) == 5
    assert repr(result) == "DictResult(location='{task_name}.v', serializer=PickleSerializer())"


# -- formatting only the values a template uses (the engine's path) --------------------------------


def lazily(location: Any, values: dict[str, Any], result: Result | None = None) -> str:
    from aflow._persist._results._result import format_lazily

    asked: list[str] = []

    def get(key: str, default: Any) -> Any:
        asked.append(key)
        return values.get(key, default)

    out = format_lazily(location, get, lambda: dict(values), result)
    if isinstance(location, str) and result is None and "{" not in location:
        assert asked == []
    return out


@pytest.mark.parametrize(
    "template",
    [
        "{flow_name}/{task_name}-{map_index}.pkl",
        "{date:%Y/%m}/{parameters[x]}.bin",
        "{x!r}-{x:>5}.{uuid}",
        "plain.pkl",
        "{missing}.pkl",
        "{}.pkl",
        "{0}.pkl",
        "{x.pkl",
        "{parameters[missing]}",
        "{x:{width}}",
        lambda **kw: f"{kw['task_name']}/{kw['uuid']}",
        lambda **kw: kw["missing"],
    ],
)
def test_formatting_lazily_gives_the_same_location_or_error(template: Any) -> None:
    values = {
        "flow_name": "f",
        "task_name": "t",
        "map_index": 3,
        "date": datetime(2024, 7, 1, tzinfo=UTC),
        "parameters": {"x": "a"},
        "x": 7,
        "width": 4,
        "uuid": "u",
    }
    outcomes: list[str] = []
    ways: list[Callable[[], str]] = [lambda: format_location(template, **values), lambda: lazily(template, values)]
    for fmt in ways:
        try:
            outcomes.append(fmt())
        except Exception as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
    assert outcomes[0] == outcomes[1]


def test_formatting_lazily_makes_a_uuid_only_when_used_and_formats_result_locations() -> None:
    first, second = lazily("{uuid}", {}), lazily("{uuid}", {})
    assert len(first) == 32
    assert first != second
    default = MemoryResult()
    assert lazily(None, {"flow_name": "../f", "task_full_name": "a/b", "uuid": "u"}, default) == ".._f/a_b.u.result"
    assert lazily(None, {}, default).startswith("_no_flow/_no_task.")
    assert lazily(None, {"task_name": "t"}, MemoryResult(location="{task_name}.v")) == "t.v"

    class Custom(Result):  # with its own format
        def format(self, **kwargs: Any) -> str:
            return ",".join(sorted(kwargs))

        async def exists(self, location: str) -> bool:
            raise NotImplementedError

        async def read(self, location: str) -> Any:
            raise NotImplementedError

        async def write(self, value: Any, location: str) -> str:
            raise NotImplementedError

    assert lazily(None, {"a": 1, "b": 2}, Custom()) == "a,b"


def test_fresh_uuids_are_random_version_4_uuids() -> None:
    import uuid

    from aflow._persist._results._result import fresh_uuid

    made = [fresh_uuid() for _ in range(1000)]  # several refills of the pool
    assert len(set(made)) == 1000
    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, text)
