"""The run-history store, against real SQLite files in tmp_path."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest

import aflow.history
from aflow.history import CacheEntry, FlowRunRecord, RunStore, TaskStateRecord
from aflow.states import Failed, Mapped, Pending, Retrying, Running, Success

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sql(path: Path, query: str) -> list[Any]:
    """Run ``query`` on ``path`` with a plain sqlite3 connection (call through a thread)."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(query).fetchall()


async def read(path: Path, query: str) -> list[Any]:
    return await anyio.to_thread.run_sync(sql, path, query)


async def wait_until(predicate: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``predicate`` until it holds (the test's only bound is the deadline, not timing)."""
    with anyio.fail_after(10):
        while not await predicate():  # noqa: ASYNC110  (the file, read by another connection, has no event)
            await anyio.sleep(0.001)


async def count_task_states(path: Path) -> int:
    rows = await read(path, "SELECT coalesce(sum(count), 0) FROM task_state_batches")
    return int(rows[0][0])


# -- module surface ------------------------------------------------------------------------


def test_public_names() -> None:
    assert aflow.history.__all__ == tuple(sorted(aflow.history.__all__))
    for name in aflow.history.__all__:
        assert getattr(aflow.history, name).__module__ == "aflow.history"


def test_missing_aiosqlite_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiosqlite", None)  # makes `import aiosqlite` fail
    with pytest.raises(ImportError, match=r"pip install aflow-engine\[history\]") as info:
        RunStore(tmp_path / "h.db")
    assert info.value.name == "aiosqlite"


@pytest.mark.parametrize(("kwargs", "match"), [({"batch_size": 0}, "batch_size"), ({"flush_interval": -1}, "flush")])
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RunStore(tmp_path / "h.db", **kwargs)


# -- opening and closing -------------------------------------------------------------------


async def test_open_creates_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with RunStore(path) as store:
        assert store.path == str(path)
        assert "open" in repr(store)
        assert await read(path, "PRAGMA journal_mode") == [("wal",)]
        assert await read(path, "PRAGMA user_version") == [(1,)]
        names = {name for (name,) in await read(path, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    assert {"flow_runs", "task_state_batches", "cache"} <= names
    assert "closed" in repr(store)


async def test_open_and_aclose_without_context_manager(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "h.db")
    await store.open()
    with pytest.raises(RuntimeError, match="already open"):
        await store.open()
    store.task_state("r", "a", "a", None, Running(), at(0))
    await store.aclose()
    await store.aclose()  # a second close does nothing
    assert await count_task_states(tmp_path / "h.db") == 1


async def test_recording_needs_an_open_store(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "h.db")
    with pytest.raises(RuntimeError, match="not open"):
        store.task_state("r", "a", "a", None, Running(), at(0))
    async with store:
        pass
    with pytest.raises(RuntimeError, match="not open"):
        store.flow_run_started("r", "f", {}, at(0))
    with pytest.raises(RuntimeError, match="not open"):
        store.flow_run_finished("r", Success(), at(1))
    with pytest.raises(RuntimeError, match="not open"):
        await store.flush()
    with pytest.raises(RuntimeError, match="not open"):
        await store.list_runs()


async def test_a_store_can_be_reopened(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "h.db")
    async with store:
        store.flow_run_started("r1", "f", {}, at(0))
    async with store:
        store.flow_run_started("r2", "f", {}, at(1))
        assert [r.run_id for r in await store.list_runs()] == ["r2", "r1"]


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    await read(path, "PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="schema version 99"):
        await RunStore(path).open()


# -- recording and querying ----------------------------------------------------------------


async def test_flow_run_record(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:
        store.flow_run_started("r1", "etl", {"day": "mon", "n": 3, "when": T0}, at(0))
        running = await store.get_run("r1")
        store.flow_run_finished("r1", Failed("boom"), at(5))
        finished = await store.get_run("r1")
        assert await store.get_run("nope") is None

    assert running == FlowRunRecord(
        run_id="r1",
        flow_name="etl",
        parameters={"day": "mon", "n": 3, "when": T0.isoformat()},
        started_at=at(0),
        ended_at=None,
        state="Running",
        message=None,
    )
    assert finished is not None
    assert (finished.state, finished.message, finished.ended_at) == ("Failed", "boom", at(5))
    assert finished.started_at.tzinfo is not None
    assert finished.started_at.utcoffset() == timedelta(0)


async def test_timestamps_are_stored_in_utc(tmp_path: Path) -> None:
    plus2 = timezone(timedelta(hours=2))
    async with RunStore(tmp_path / "h.db") as store:
        store.flow_run_started("r", "f", {}, datetime(2024, 5, 1, 14, 0, tzinfo=plus2))
        store.task_state("r", "a", "a", None, Running(), datetime(2024, 5, 1, 12, 0, 1))  # naive: UTC
        run = await store.get_run("r")
        (state,) = await store.task_history("r")
    assert run is not None
    assert run.started_at == T0
    assert run.started_at.tzinfo == UTC
    assert state.timestamp == at(1)
    assert state.timestamp.tzinfo == UTC
    assert await read(tmp_path / "h.db", "SELECT started_at FROM flow_runs") == [("2024-05-01T12:00:00.000000+00:00",)]


async def test_restarting_a_run_resets_its_record(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:
        store.flow_run_started("r", "f", {"a": 1}, at(0))
        store.flow_run_finished("r", Failed("x"), at(1))
        store.flow_run_started("r", "f", {"a": 2}, at(2))
        run = await store.get_run("r")
    assert run is not None
    assert (run.parameters, run.state, run.message, run.started_at, run.ended_at) == (
        {"a": 2},
        "Running",
        None,
        at(2),
        None,
    )


async def test_task_history_is_in_recorded_order(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db", batch_size=2) as store:
        store.flow_run_started("r", "f", {}, at(0))
        store.task_state("r", "a-1", "a", None, Pending(), at(1))
        store.task_state("r", "b-1", "b", 0, Running(), at(2))
        store.task_state("r", "a-1", "a", None, Running(), at(3))
        store.task_state("other", "a-1", "a", None, Running(), at(3))
        store.task_state("r", "b-1", "b", 0, Success("fine"), at(4))
        store.task_state("r", "a-1", "a", None, Retrying("again", run_count=1), at(5))
        history = await store.task_history("r")
        assert await store.task_history("missing") == []

    assert [(h.task_slug, h.map_index, h.state, h.message) for h in history] == [
        ("a-1", None, "Pending", None),
        ("b-1", 0, "Running", None),
        ("a-1", None, "Running", None),
        ("b-1", 0, "Success", "fine"),
        ("a-1", None, "Retrying", "again"),
    ]
    assert [h.timestamp for h in history] == [at(1), at(2), at(3), at(4), at(5)]
    assert [h.seq for h in history] == sorted(h.seq for h in history)
    assert all(isinstance(h, TaskStateRecord) and h.run_id == "r" and h.task_name in "ab" for h in history)


async def test_latest_task_states_per_slug_and_map_index(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:
        store.task_state("r", "m-1", "m", None, Running(), at(0))
        for i in range(3):
            store.task_state("r", "m-1", "m", i, Running(), at(1 + i))
        store.task_state("r", "m-1", "m", 1, Failed("bad"), at(5))
        store.task_state("r", "m-1", "m", 0, Success(), at(6))
        store.task_state("r", "m-1", "m", None, Mapped(), at(7))
        store.task_state("r2", "m-1", "m", None, Failed(), at(8))
        latest = await store.latest_task_states("r")
        assert await store.latest_task_states("none") == {}

    assert {key: (rec.state, rec.message) for key, rec in latest.items()} == {
        ("m-1", None): ("Mapped", None),
        ("m-1", 0): ("Success", None),
        ("m-1", 1): ("Failed", "bad"),
        ("m-1", 2): ("Running", None),
    }
    assert latest["m-1", 2].timestamp == at(3)
    # the dict keeps the order in which each last state was recorded
    assert [(k[1], v.state) for k, v in latest.items()] == [
        (2, "Running"),
        (1, "Failed"),
        (0, "Success"),
        (None, "Mapped"),
    ]


async def test_list_runs_newest_first_filtered_and_limited(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:
        store.flow_run_started("old", "etl", {}, at(0))
        store.flow_run_started("mid", "report", {}, at(10))
        store.flow_run_started("new", "etl", {}, at(20))
        assert [r.run_id for r in await store.list_runs()] == ["new", "mid", "old"]
        assert [r.run_id for r in await store.list_runs("etl")] == ["new", "old"]
        assert [r.run_id for r in await store.list_runs(limit=2)] == ["new", "mid"]
        assert await store.list_runs("nothing") == []


# -- flushing ------------------------------------------------------------------------------


async def test_flush_writes_everything_recorded(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with RunStore(path, batch_size=10_000, flush_interval=3600) as store:
        for i in range(5):
            store.task_state("r", f"t-{i}", "t", None, Running(), at(i))
        assert store.pending == 5
        assert await count_task_states(path) == 0
        await store.flush()
        assert store.pending == 0
        assert await count_task_states(path) == 5
        await store.flush()  # nothing pending: returns at once
        assert await count_task_states(path) == 5


async def test_flush_on_close(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with RunStore(path, batch_size=10_000, flush_interval=3600) as store:
        store.flow_run_started("r", "f", {}, at(0))
        for i in range(100):
            store.task_state("r", "t", "t", i, Success(), at(i))
        store.flow_run_finished("r", Success(), at(100))
        assert await count_task_states(path) == 0
    assert store.pending == 0
    assert await count_task_states(path) == 100
    assert await read(path, "SELECT state FROM flow_runs") == [("Success",)]


async def test_batch_is_written_when_full(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with RunStore(path, batch_size=3, flush_interval=3600) as store:
        for i in range(3):
            store.task_state("r", "t", "t", i, Running(), at(i))

        async def written() -> bool:
            return await count_task_states(path) == 3

        await wait_until(written)  # no flush() call: the full batch alone woke the writer
        store.task_state("r", "t", "t", 3, Running(), at(3))
        for _ in range(10):
            await anyio.lowlevel.checkpoint()
        assert store.pending == 1  # below batch_size, within the interval: still waiting
        assert await count_task_states(path) == 3
    assert await count_task_states(path) == 4


async def test_batch_is_written_after_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with RunStore(path, batch_size=10_000, flush_interval=0.001) as store:
        store.flow_run_started("r", "f", {}, at(0))
        store.task_state("r", "t", "t", None, Running(), at(1))

        async def written() -> bool:
            return await count_task_states(path) == 1

        await wait_until(written)  # no flush() call, batch far from full: the interval did it
        assert store.pending == 0
        store.task_state("r", "t", "t", None, Success(), at(2))  # the next batch, too
        await wait_until(lambda: _is(count_task_states(path), 2))


async def _is(count: Awaitable[int], expected: int) -> bool:
    return await count == expected


async def test_flush_on_cancellation_of_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    recorded = anyio.Event()

    async def caller() -> None:
        async with RunStore(path, batch_size=10_000, flush_interval=3600) as store:
            store.flow_run_started("r", "f", {}, at(0))
            for i in range(50):
                store.task_state("r", "t", "t", i, Running(), at(i))
            recorded.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await recorded.wait()
        tg.cancel_scope.cancel()  # anyio keeps cancelling: aclose must shield its final write
    assert await count_task_states(path) == 50
    assert await read(path, "SELECT run_id, state FROM flow_runs") == [("r", "Running")]


async def test_flush_on_asyncio_task_cancel(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    recorded = asyncio.Event()

    async def caller() -> None:
        async with RunStore(path, batch_size=10_000, flush_interval=3600) as store:
            for i in range(20):
                store.task_state("r", "t", "t", i, Running(), at(i))
            recorded.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(caller())
    await recorded.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await count_task_states(path) == 20


async def test_cancelled_flush_does_not_lose_or_repeat_records(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with RunStore(path, batch_size=10_000, flush_interval=3600) as store:
        for i in range(10):
            store.task_state("r", "t", "t", i, Running(), at(i))
        with anyio.CancelScope() as scope:
            scope.cancel()
            await store.flush()
        assert scope.cancelled_caught
        await store.flush()
        history = await store.task_history("r")
    assert [h.map_index for h in history] == list(range(10))


def test_a_bad_timestamp_is_refused_when_recorded(tmp_path: Path) -> None:
    async def main() -> None:
        async with RunStore(tmp_path / "h.db") as store:
            with pytest.raises(TypeError, match="datetime or seconds since the epoch"):
                store.task_state("r", "t", "t", None, Running(), cast(Any, "not a datetime"))
            assert store.pending == 0

    anyio.run(main)


async def test_a_failed_batch_is_reported_and_the_store_goes_on(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db", batch_size=10_000, flush_interval=3600) as store:
        store.task_state("r", "t", "t", None, Running(cast(Any, lambda: None)), at(0))  # cannot be stored
        with pytest.raises(Exception, match="pickle"):
            await store.flush()
        assert store.pending == 0  # not retried: the batch cannot succeed
        store.task_state("r", "t", "t", None, Success(), at(1))
        assert [h.state for h in await store.task_history("r")] == ["Success"]


# -- several stores on one file --------------------------------------------------------------


async def test_two_stores_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first, second = RunStore(path, batch_size=7), RunStore(path, batch_size=5)
    async with anyio.create_task_group() as tg:  # both create the schema at once on a new file
        tg.start_soon(first.open)
        tg.start_soon(second.open)
    try:

        async def record(store: RunStore, run_id: str) -> None:
            store.flow_run_started(run_id, "f", {}, at(0))
            for i in range(200):
                store.task_state(run_id, "t", "t", i, Running(), at(i))
                if i % 20 == 0:
                    await anyio.lowlevel.checkpoint()  # let both writers commit while the other records
            store.flow_run_finished(run_id, Success(), at(300))
            await store.flush()

        async with anyio.create_task_group() as tg:
            tg.start_soon(record, first, "one")
            tg.start_soon(record, second, "two")

        for store in (first, second):  # each sees what the other wrote
            assert sorted(r.run_id for r in await store.list_runs()) == ["one", "two"]
            for run_id in ("one", "two"):
                history = await store.task_history(run_id)
                assert [h.map_index for h in history] == list(range(200))
        await first.cache_put("k", None, None, b"from first", None)
        assert [e.value for e in await second.cache_get("k")] == [b"from first"]
    finally:
        await first.aclose()
        await second.aclose()
    assert await read(path, "PRAGMA journal_mode") == [("wal",)]


# -- cache ---------------------------------------------------------------------------------


async def test_cache_put_get_newest_first(tmp_path: Path) -> None:
    expiry = T0 + timedelta(days=1)
    async with RunStore(tmp_path / "h.db") as store:
        assert await store.cache_get("k") == []
        await store.cache_put("k", "hash-1", {"x": 1}, b"first", expiry, now=T0)
        await store.cache_put("k", None, None, b"second", None, now=T0)
        await store.cache_put("other", "h", {}, b"\x00\xff", None, now=T0)
        entries = await store.cache_get("k")

    assert [e.value for e in entries] == [b"second", b"first"]
    newest, oldest = entries
    assert oldest == CacheEntry(
        cache_key="k",
        inputs_hash="hash-1",
        parameters={"x": 1},
        value=b"first",
        expires_at=expiry,
        created_at=oldest.created_at,
    )
    assert (newest.inputs_hash, newest.parameters, newest.expires_at) == (None, None, None)
    assert oldest.created_at.tzinfo == UTC
    assert newest.created_at >= oldest.created_at


async def test_cache_put_deletes_entries_of_its_key_expired_by_now(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:
        await store.cache_put("k", None, None, b"old", T0 + timedelta(hours=1), now=T0)
        await store.cache_put("k", None, None, b"forever", None, now=T0)
        await store.cache_put("j", None, None, b"other key", T0 + timedelta(hours=1), now=T0)
        await store.cache_put("k", None, None, b"new", None, now=T0 + timedelta(hours=2))
        assert [e.value for e in await store.cache_get("k")] == [b"new", b"forever"]
        assert [e.value for e in await store.cache_get("j")] == [b"other key"]  # pruned per key only


async def test_cache_expiry_is_stored(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:
        await store.cache_put("k", None, None, b"v", T0)
        (entry,) = await store.cache_get("k")
    assert entry.expires_at == T0
    assert entry.is_expired(T0 + timedelta(seconds=1))
    assert not entry.is_expired(T0 - timedelta(seconds=1))
    assert not entry.is_expired(datetime(2024, 5, 1, 11, 0))  # naive means UTC
    assert entry.is_expired()  # T0 is in the past
    assert await read(tmp_path / "h.db", "SELECT expires_at FROM cache") == [("2024-05-01T12:00:00.000000+00:00",)]


async def test_cache_without_expiry_never_expires(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:
        await store.cache_put("k", None, None, b"v", None)
        (entry,) = await store.cache_get("k")
    assert not entry.is_expired(datetime.max.replace(tzinfo=UTC))


async def test_cache_clear_one_key_or_all(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:
        for key in ("a", "a", "b", "c"):
            await store.cache_put(key, None, None, key.encode(), None)
        await store.cache_clear("a")
        assert await store.cache_get("a") == []
        assert [e.value for e in await store.cache_get("b")] == [b"b"]
        await store.cache_clear()
        assert await store.cache_get("b") == []
        assert await store.cache_get("c") == []


# -- reopening -----------------------------------------------------------------------------


async def test_reopen_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with RunStore(path) as store:
        store.flow_run_started("r", "etl", {"day": "mon"}, at(0))
        store.task_state("r", "a", "a", None, Running(), at(1))
        store.task_state("r", "a", "a", None, Success("ok"), at(2))
        store.flow_run_finished("r", Success("all good"), at(3))
        await store.cache_put("k", "h", {"day": "mon"}, b"value", at(60))

    async with RunStore(path) as again:
        run = await again.get_run("r")
        history = await again.task_history("r")
        latest = await again.latest_task_states("r")
        cached = await again.cache_get("k")
        again.flow_run_started("r2", "etl", {}, at(10))  # the reopened file takes new records
        assert [r.run_id for r in await again.list_runs("etl")] == ["r2", "r"]

    assert run == FlowRunRecord("r", "etl", {"day": "mon"}, at(0), at(3), "Success", "all good")
    assert [(h.state, h.message, h.timestamp) for h in history] == [("Running", None, at(1)), ("Success", "ok", at(2))]
    assert latest["a", None].state == "Success"
    assert [(c.value, c.expires_at, c.parameters) for c in cached] == [(b"value", at(60), {"day": "mon"})]
    assert await read(path, "PRAGMA user_version") == [(1,)]


async def test_prune_runs_deletes_old_runs_and_their_states(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "runs.db") as store:
        for i, flow in enumerate(["etl", "etl", "report", "etl"]):
            store.flow_run_started(f"r{i}", flow, {}, at(i * 100))
            store.task_state(f"r{i}", "t-1", "t", None, Success(), at(i * 100 + 1))
            store.flow_run_finished(f"r{i}", Success(), at(i * 100 + 2))
        live = store.recorder("r9")  # a run in progress here: kept whatever its age
        store.flow_run_started("r9", "etl", {}, at(0))

        assert await store.prune_runs(at(150), flow_name="report") == 0  # r2 started at 200
        assert await store.prune_runs(at(250)) == 3  # r0, r1 and r2; r9 is being recorded
        assert sorted(r.run_id for r in await store.list_runs()) == ["r3", "r9"]
        assert await store.task_history("r0") == []
        assert [r.state for r in await store.task_history("r3")] == ["Success"]

        store.release(live)
        assert await store.prune_runs(at(1000), flow_name="report") == 0
        assert await store.prune_runs(at(1000), flow_name="etl") == 2
        assert await store.list_runs() == []
        assert await store.prune_runs(at(1000)) == 0  # and again: the temporary table is gone
