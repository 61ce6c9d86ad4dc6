"""SegmentResult: small values appended to segment files in batches, on real files."""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest

from aflow import Flow, task
from aflow.results import JSONSerializer, LocalResult, SegmentResult, Serializer

REPO = Path(__file__).resolve().parents[2]
HEAD = struct.Struct("<4sIQBII")


def segments(root: Path) -> list[Path]:
    return sorted((root / ".segments").glob("*.seg"))


def records(path: Path) -> list[tuple[int, int, str, bytes]]:
    """(sequence, kind, location, value) of each whole record, read with the documented format."""
    data, pos, out = path.read_bytes(), 0, []
    while pos + HEAD.size <= len(data):
        magic, crc, seq, kind, key_len, value_len = HEAD.unpack_from(data, pos)
        stop = pos + HEAD.size + key_len + value_len
        assert magic == b"AFR1"
        assert stop <= len(data)
        assert zlib.crc32(data[pos + 8 : stop]) == crc
        key = data[pos + HEAD.size : pos + HEAD.size + key_len].decode()
        out.append((seq, kind, key, data[pos + HEAD.size + key_len : stop]))
        pos = stop
    assert pos == len(data)
    return out


def names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


class Boom(Exception):
    pass


class FailOn(Serializer):
    """JSON, except that one value cannot be serialized."""

    def __init__(self, bad: Any) -> None:
        self.bad = bad

    def dumps(self, value: Any) -> bytes:
        if value == self.bad:
            raise Boom(f"cannot serialize {value!r}")
        return JSONSerializer().dumps(value)

    def loads(self, data: bytes) -> Any:
        return JSONSerializer().loads(data)


def only_this_task_left() -> None:
    assert asyncio.all_tasks() == {asyncio.current_task()}  # no flusher or scan left behind


# -- reading and writing -----------------------------------------------------------------------------


async def test_round_trip_and_misses(tmp_path: Path) -> None:
    result = SegmentResult(tmp_path)
    assert await result.write({"a": [1, 2]}, "f/t.pkl") == "f/t.pkl"
    assert await result.read("f/t.pkl") == {"a": [1, 2]}
    assert await result.exists("f/t.pkl")
    assert not await result.exists("f/other.pkl")
    with pytest.raises(FileNotFoundError, match="other"):
        await result.read("f/other.pkl")
    assert await result.read("f//./t.pkl") == {"a": [1, 2]}  # the same key, as the same path for LocalResult
    assert [p.parent.name for p in segments(tmp_path)] == [".segments"]
    assert names(tmp_path) == [".segments"]  # no file per value
    only_this_task_left()


async def test_the_newest_write_wins_in_one_instance_and_across_instances(tmp_path: Path) -> None:
    first = SegmentResult(tmp_path)
    await first.write("one", "x")
    await first.write("two", "x")
    assert await first.read("x") == "two"
    second = SegmentResult(tmp_path)
    assert await second.read("x") == "two"  # loaded from the first's segment
    await second.write("three", "x")  # a later sequence than anything it read
    assert await SegmentResult(tmp_path).read("x") == "three"
    assert len(segments(tmp_path)) == 2
    assert await first.read("x") == "two"  # an instance does not watch others...
    await first.refresh()
    assert await first.read("x") == "three"  # ...until it refreshes


async def test_a_torn_tail_record_is_ignored(tmp_path: Path) -> None:
    result = SegmentResult(tmp_path)
    for i in range(3):
        await result.write(i, f"k{i}")
    (seg,) = segments(tmp_path)
    size = seg.stat().st_size
    truncate(seg, size - 3)  # the last record lost its tail, as when its writer is killed mid-write
    fresh = SegmentResult(tmp_path)
    assert [await fresh.exists(f"k{i}") for i in range(3)] == [True, True, False]
    assert await fresh.read("k1") == 1
    truncate(seg, size - 60)  # into the second record's head
    fresh = SegmentResult(tmp_path)
    assert [await fresh.exists(f"k{i}") for i in range(3)] == [True, False, False]


async def test_a_record_with_a_bad_crc_is_skipped(tmp_path: Path) -> None:
    result = SegmentResult(tmp_path, serializer=JSONSerializer())
    await result.write("old", "k1")
    await result.write("value-two", "k2")
    await result.write("value-3", "k3")
    await result.write("new", "k1")
    (seg,) = segments(tmp_path)
    data = bytearray(seg.read_bytes())
    at = data.index(b"value-two")
    data[at] ^= 0xFF  # a flipped bit in the value: the CRC does not match
    seg.write_bytes(bytes(data))
    fresh = SegmentResult(tmp_path, serializer=JSONSerializer())
    assert not await fresh.exists("k2")
    assert await fresh.read("k3") == "value-3"  # the records after it are still read
    assert await fresh.read("k1") == "new"
    data = bytearray(seg.read_bytes())
    data[at + 20 :] = b"garbage!" * 20  # not a record at all: the rest of the segment is not trusted
    seg.write_bytes(bytes(data))
    fresh = SegmentResult(tmp_path, serializer=JSONSerializer())
    assert await fresh.read("k1") == "old"
    assert not await fresh.exists("k3")


async def test_big_segments_are_read_in_a_thread_that_first_readers_share(tmp_path: Path) -> None:
    result = SegmentResult(tmp_path, inline_limit=1 << 20)
    await asyncio.gather(*(result.write(bytes([i]) * 100_000, f"k{i}") for i in range(15)))  # 1.5 MB
    fresh = SegmentResult(tmp_path)
    reads = [asyncio.create_task(fresh.read(f"k{i}")) for i in range(15)]
    await asyncio.sleep(0)
    assert len(fresh._loading) == 1  # one scan in flight, in a worker thread
    reads[3].cancel()  # a reader cancelled while waiting cancels no other
    done = await asyncio.gather(*reads, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    assert [d for i, d in enumerate(done) if i != 3] == [bytes([i]) * 100_000 for i in range(15) if i != 3]
    assert not await fresh.exists("nothing")
    only_this_task_left()


async def test_a_big_value_gets_its_own_file(tmp_path: Path) -> None:
    result = SegmentResult(tmp_path, inline_limit=100)
    await result.write("s", "small.pkl")
    await result.write("b" * 1000, "big/one.pkl")
    assert (tmp_path / "big" / "one.pkl").is_file()
    assert not (tmp_path / "small.pkl").exists()
    assert await LocalResult(tmp_path).read("big/one.pkl") == "b" * 1000  # a LocalResult file
    ((_, kind_small, _, _), (_, kind_big, key, value)) = records(segments(tmp_path)[0])
    assert (kind_small, kind_big, key, value) == (0, 1, "big/one.pkl", b"")  # the record points at the file
    fresh = SegmentResult(tmp_path, inline_limit=100)
    assert await fresh.read("big/one.pkl") == "b" * 1000
    await fresh.write("now small", "big/one.pkl")  # the newest record wins over the file
    assert await SegmentResult(tmp_path).read("big/one.pkl") == "now small"
    await result.write("c" * 1000, "big/two.pkl")
    (tmp_path / "big" / "two.pkl").unlink()
    assert not await result.exists("big/two.pkl")
    with pytest.raises(FileNotFoundError):
        await result.read("big/two.pkl")


async def test_concurrent_writes_from_many_tasks_all_land_in_few_batches(tmp_path: Path) -> None:
    result = SegmentResult(tmp_path)
    async with anyio.create_task_group() as tg:
        for i in range(500):
            tg.start_soon(result.write, i, f"t/{i}")
    found = records(segments(tmp_path)[0])
    assert sorted(key for _, _, key, _ in found) == sorted(f"t/{i}" for i in range(500))  # each once
    sequences = [seq for seq, _, _, _ in found]
    assert sequences == sorted(set(sequences))  # increasing in file order
    fresh = SegmentResult(tmp_path)
    assert [await fresh.read(f"t/{i}") for i in range(500)] == list(range(500))
    only_this_task_left()


async def test_a_failing_value_fails_only_its_own_write(tmp_path: Path) -> None:
    result = SegmentResult(tmp_path, serializer=FailOn(3))
    outcomes = await asyncio.gather(*(result.write(i, f"k{i}") for i in range(6)), return_exceptions=True)
    assert [type(o).__name__ for o in outcomes] == ["str", "str", "str", "Boom", "str", "str"]
    fresh = SegmentResult(tmp_path, serializer=FailOn(3))
    assert [await fresh.exists(f"k{i}") for i in range(6)] == [True, True, True, False, True, True]

    class Text(Serializer):
        def dumps(self, value: Any) -> bytes:
            return str(value)  # type: ignore[return-value]

        def loads(self, data: bytes) -> Any:
            raise AssertionError

    with pytest.raises(TypeError, match=r"Text\.dumps returned str"):
        await SegmentResult(tmp_path, serializer=Text()).write(1, "x")


@pytest.mark.parametrize("location", ["/abs.pkl", "../up.pkl", "a/../../up.pkl", "", "dir/", ".", "a\0b"])
async def test_invalid_locations_are_refused_as_by_local_result(tmp_path: Path, location: str) -> None:
    with pytest.raises(ValueError, match="result location") as local:
        await LocalResult(tmp_path).write(1, location)
    for call in (
        SegmentResult(tmp_path).write(1, location),
        SegmentResult(tmp_path).read(location),
        SegmentResult(tmp_path).exists(location),
    ):
        with pytest.raises(ValueError, match="result location") as segment:
            await call
        assert str(segment.value) == str(local.value)
    with pytest.raises(TypeError, match="must be a str"):
        await SegmentResult(tmp_path).write(1, Path("x"))  # type: ignore[arg-type]
    assert not (tmp_path / ".segments").exists()


# -- cancellation, durability, lifecycle -------------------------------------------------------------


async def test_a_writer_cancelled_before_its_batch_writes_nothing_and_others_land(tmp_path: Path) -> None:
    result = SegmentResult(tmp_path)
    tasks = [asyncio.create_task(result.write(i, f"k{i}")) for i in range(10)]
    await asyncio.sleep(0)  # each has queued its write; the flusher has not taken them yet
    tasks[4].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[4], asyncio.CancelledError)
    keys = [key for _, _, key, _ in records(segments(tmp_path)[0])]
    assert keys == [f"k{i}" for i in range(10) if i != 4]
    only_this_task_left()


async def test_cancelling_a_writer_whose_batch_is_in_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = SegmentResult(tmp_path, durable=True)
    await result.write("first", "warm")
    in_fsync = anyio.Event()
    go_on = anyio.Event()
    real_fsync = os.fsync

    def fsync_held(fd: int) -> None:
        anyio.from_thread.run_sync(in_fsync.set)
        anyio.from_thread.run(go_on.wait)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_held)
    victim = asyncio.create_task(result.write("v", "victim"))
    other = asyncio.create_task(result.write("o", "other"))
    await in_fsync.wait()
    later = asyncio.create_task(result.write("l", "later"))  # queued for the next batch
    victim.cancel()
    await asyncio.sleep(0.05)
    assert not victim.done()  # it waits for the batch in flight to end
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await victim
    assert await other == "other"
    assert await later == "later"
    monkeypatch.undo()
    keys = [key for _, _, key, _ in records(segments(tmp_path)[0])]
    assert keys == ["warm", "victim", "other", "later"]  # the victim's write finished, once
    fresh = SegmentResult(tmp_path)
    assert [await fresh.read(k) for k in ("victim", "other", "later")] == ["v", "o", "l"]
    only_this_task_left()


async def test_durable_mode_flushes_once_per_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting)
    result = SegmentResult(tmp_path, durable=True, inline_limit=1000)
    await asyncio.gather(*(result.write(i, f"k{i}") for i in range(200)))
    assert 2 <= len(synced) <= 4  # the new segment's directory, then a few batches: not 200
    synced.clear()
    await result.write("x" * 2000, "big")  # its own file: file and directory, then the batch
    assert len(synced) == 3
    monkeypatch.undo()
    assert await SegmentResult(tmp_path).read("k199") == 199
    assert await SegmentResult(tmp_path).read("big") == "x" * 2000


async def test_a_result_used_from_several_event_loops_and_pickled(tmp_path: Path) -> None:
    result = SegmentResult(tmp_path, location="{task_name}.v", durable=True, inline_limit=10)

    def in_new_loop(i: int) -> Any:
        async def go() -> Any:
            await result.write(i, f"k{i}")
            return await result.read(f"k{i}")

        return asyncio.run(go())

    assert await asyncio.to_thread(in_new_loop, 1) == 1
    assert await asyncio.to_thread(in_new_loop, 2) == 2
    copy = pickle.loads(pickle.dumps(result))
    assert repr(copy) == repr(result)
    assert repr(result) == (
        f"SegmentResult(dir={str(tmp_path)!r}, location='{{task_name}}.v', serializer=PickleSerializer(), "
        "durable=True, inline_limit=10)"
    )
    assert await copy.read("k2") == 2
    with pytest.raises(ValueError, match="inline_limit"):
        SegmentResult(tmp_path, inline_limit=-1)


def test_another_process_reads_what_this_one_wrote_and_the_other_way(tmp_path: Path) -> None:
    asyncio.run(SegmentResult(tmp_path).write({"from": "parent"}, "p.pkl"))
    script = textwrap.dedent(
        """
        import asyncio, sys
        from aflow.results import SegmentResult

        async def main():
            result = SegmentResult(sys.argv[1])
            print(await result.read("p.pkl"))
            await result.write({"from": "child"}, "c.pkl")

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "{'from': 'parent'}\n"
    assert asyncio.run(SegmentResult(tmp_path).read("c.pkl")) == {"from": "child"}
    assert len(segments(tmp_path)) == 2


async def test_a_checkpointing_flow_on_a_segment_result(tmp_path: Path) -> None:
    calls: list[int] = []

    @task(target="{task_name}-{x}.v")
    def inc(x: int) -> int:
        calls.append(x)
        return x + 1

    with Flow("seg", result=SegmentResult(tmp_path), checkpoint=True) as flow:
        outs = [inc(i) for i in range(50)]
    first = await flow.run()
    assert first.is_successful()
    assert sorted(calls) == list(range(50))
    with Flow("seg", result=SegmentResult(tmp_path), checkpoint=True) as again:
        outs = [inc(i) for i in range(50)]
    second = await again.run()
    assert [second.result[o].result for o in outs] == [i + 1 for i in range(50)]
    assert all(second.result[o].is_cached() for o in outs)
    assert len(calls) == 50  # nothing ran twice
    only_this_task_left()


def test_writes_abandoned_when_the_loop_ends_leave_no_pending_task_and_whole_records(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from aflow.results import SegmentResult

        async def main():
            result = SegmentResult(sys.argv[1])
            for i in range(300):
                asyncio.ensure_future(result.write(i, f"k{i}"))
            await asyncio.sleep(0)  # the flusher has started; asyncio.run cancels everything next

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no "Task was destroyed but it is pending", no unretrieved exception

    async def read() -> list[int]:
        fresh = SegmentResult(tmp_path)
        return [await fresh.read(f"k{i}") for i in range(300) if await fresh.exists(f"k{i}")]

    found = asyncio.run(read())
    assert found == sorted(found)
    assert all(isinstance(v, int) for v in found)
    for seg in segments(tmp_path):
        records(seg)  # every record whole
