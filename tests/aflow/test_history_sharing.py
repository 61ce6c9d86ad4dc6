"""The run store under concurrent writers and bad files: nothing recorded is lost, bad paths fail early.

Real SQLite files, real subprocesses; another writer is a plain sqlite3 connection holding the
file's write lock, or other processes running flows on the same file.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import aflow
from aflow import Flow, task
from aflow._persist._history import _file
from aflow.exceptions import AflowError, RunStoreError
from aflow.history import RunStore
from aflow.states import Running, Success

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def sql(path: Path, query: str) -> list[Any]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(query).fetchall()


async def read(path: Path, query: str) -> list[Any]:
    return await anyio.to_thread.run_sync(sql, path, query)


def sqlite_threads() -> list[threading.Thread]:
    """aiosqlite's connection threads now running."""
    return [t for t in threading.enumerate() if "connection_worker" in t.name and t.is_alive()]


def child_env() -> dict[str, str]:
    """The environment for a child process that imports this aflow."""
    root = str(Path(aflow.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


# -- a write that waits for another writer's lock ------------------------------------------


async def test_records_made_while_a_write_waits_for_the_lock_are_written_on_close(tmp_path: Path) -> None:
    """The lost final state: a run's end recorded while the writer waited, then the store closed."""
    path = tmp_path / "h.db"
    store = RunStore(path)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process is writing the file
        store.flow_run_started("r", "f", {}, T0)
        store.task_state("r", "t-1", "t", None, Running(), T0)
        flushing = asyncio.ensure_future(store.flush())
        with anyio.fail_after(10):
            while store.pending:  # the writer took the batch and waits for the lock
                await anyio.lowlevel.checkpoint()
        assert not flushing.done()
        store.task_state("r", "t-1", "t", None, Success(), T0 + timedelta(seconds=1))
        store.flow_run_finished("r", Success("done"), T0 + timedelta(seconds=2))
        closing_ = asyncio.ensure_future(store.aclose())
        await anyio.lowlevel.checkpoint()
        assert "closed" in repr(store)  # closed to new records while the write still waits
        other.execute("COMMIT")  # the other writer is done
        with anyio.fail_after(10):
            await flushing
            await closing_
    finally:
        other.close()
    assert await read(path, "SELECT state, message, ended_at IS NOT NULL FROM flow_runs") == [("Success", "done", 1)]
    async with RunStore(path) as again:
        assert [(h.task_slug, h.state) for h in await again.task_history("r")] == [
            ("t-1", "Running"),
            ("t-1", "Success"),
        ]


async def test_a_final_write_that_cannot_get_the_lock_is_reported_on_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_file, "BUSY_TIMEOUT", 0.05)  # instead of waiting 30 s for the lock
    path = tmp_path / "h.db"
    store = RunStore(path)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # held past the busy timeout
        store.flow_run_started("r", "f", {}, T0)
        with pytest.raises(RunStoreError, match=r"Could not write the run history to .*database is locked") as info:
            await store.aclose()
        assert str(path) in str(info.value)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    finally:
        other.close()


async def test_opening_an_existing_store_takes_no_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with RunStore(path):
        pass  # creates the schema
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # held for the whole open: an open that wrote would wait 30 s
        with anyio.fail_after(10):
            store = RunStore(path)
            await store.open()
        store.flow_run_started("r", "f", {}, T0)
        other.execute("COMMIT")
        await store.aclose()
    finally:
        other.close()
    assert await read(path, "SELECT run_id, state FROM flow_runs") == [("r", "Running")]


# -- several processes on one file ---------------------------------------------------------

CHILD = """
import asyncio, json, sys
from aflow import Flow, task

@task
async def numbers(n):
    await asyncio.sleep(0.2)
    return list(range(n))

@task
async def each(x):
    await asyncio.sleep(0.2)  # ends as the store's writer drains the run (every 0.2 s): the lost end's race
    return x

@task
def total(xs):
    return sum(xs)

with Flow("shared") as flow:
    total(each.map(numbers(4)))

async def one(path):
    handle = flow.start(history=path)
    state = await handle
    return handle.flow_run_id, type(state).__name__

async def main(path, runs, at_once):
    out = {}
    for start in range(0, runs, at_once):
        batch = await asyncio.gather(*(one(path) for _ in range(min(at_once, runs - start))))
        out.update(batch)
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


def hold_the_lock_often(path: Path, stop: threading.Event) -> None:
    """Another writer (in a thread): holds the file's write lock for 20 ms of every 40 until ``stop``.

    The stores' writes wait for it, so a run often ends while a write of its states waits.
    """
    with closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as conn:
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            stop.wait(0.02)
            conn.execute("COMMIT")
            stop.wait(0.02)


# every task run of a run of CHILD's flow, with its recorded states
EXPECTED: dict[tuple[str, int | None], list[str]] = {
    ("numbers-1", None): ["Running", "Success"],
    ("each-1", None): ["Mapped"],
    **{("each-1", i): ["Running", "Success"] for i in range(4)},
    ("total-1", None): ["Running", "Success"],
}


async def test_processes_running_flows_on_one_file_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    processes, runs, at_once = 3, 30, 10
    env = child_env()

    async def child() -> dict[str, str]:
        done = await anyio.run_process([sys.executable, str(script), str(path), str(runs), str(at_once)], env=env)
        return dict(json.loads(done.stdout.decode().splitlines()[-1]))

    async with RunStore(path):
        pass  # the file exists in WAL mode before the other writer below uses it
    stop = threading.Event()
    other_writer = threading.Thread(target=hold_the_lock_often, args=(path, stop))
    other_writer.start()
    try:
        with anyio.fail_after(120):
            results = await asyncio.gather(*(child() for _ in range(processes)))
    finally:
        stop.set()
        await anyio.to_thread.run_sync(other_writer.join)
    returned = {run_id: state for result in results for run_id, state in result.items()}
    assert len(returned) == processes * runs
    assert set(returned.values()) == {"Success"}

    async with RunStore(path) as store:
        stored = {r.run_id: r for r in await store.list_runs(limit=1000)}
        assert set(stored) == set(returned)
        unfinished = [r.run_id for r in stored.values() if r.state != "Success" or r.ended_at is None]
        assert unfinished == []
        for run_id in returned:
            states: dict[tuple[str, int | None], list[str]] = {}
            for record in await store.task_history(run_id):
                states.setdefault((record.task_slug, record.map_index), []).append(record.state)
            assert states == EXPECTED, run_id


# -- paths that are not run stores ---------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a database, just text\n" * 100)


def _directory(path: Path) -> None:
    path.mkdir()


def _truncated(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE flow_runs (run_id TEXT, padding TEXT)")
        conn.executemany("INSERT INTO flow_runs VALUES (?, ?)", [(str(i), "x" * 1000) for i in range(200)])
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)


def _short(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00\x10\x00")  # the header, cut short


def _another_programs(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.commit()


def _newer(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")


def _in_a_missing_directory(path: Path) -> None:
    pass  # see BAD_FILES: the path is under a directory that does not exist


BAD_FILES = {
    "garbage": (_garbage, "is not a SQLite database"),
    "directory": (_directory, "is a directory"),
    "truncated": (_truncated, "is damaged .*truncated"),
    "short header": (_short, "is damaged .*truncated"),
    "another program's database": (_another_programs, "not a run store .*users"),
    "newer schema": (_newer, "schema version 99"),
    "missing directory": (_in_a_missing_directory, "directory .* does not exist"),
}


def _bad_path(tmp_path: Path, case: str) -> Path:
    path = tmp_path / "missing" / "runs.db" if case == "missing directory" else tmp_path / "runs.db"
    BAD_FILES[case][0](path)
    return path


@pytest.mark.parametrize("case", list(BAD_FILES))
async def test_opening_a_bad_file_raises_one_clear_error(tmp_path: Path, case: str) -> None:
    path = _bad_path(tmp_path, case)
    before = sqlite_threads()
    with pytest.raises(RunStoreError, match=BAD_FILES[case][1]) as info:
        await RunStore(path).open()
    assert str(path) in str(info.value)
    assert info.value.__cause__ is None  # no sqlite3 traceback chained under it
    assert info.value.__context__ is None or info.value.__suppress_context__
    assert isinstance(info.value, AflowError)
    assert isinstance(info.value, RuntimeError)
    for thread in set(sqlite_threads()) - set(before):  # no SQLite thread left behind: each is ending
        await anyio.to_thread.run_sync(thread.join, 10)
        assert not thread.is_alive()


@pytest.mark.parametrize("case", list(BAD_FILES))
async def test_a_flow_with_a_bad_history_file_fails_before_any_task_runs(tmp_path: Path, case: str) -> None:
    path = _bad_path(tmp_path, case)
    ran: list[int] = []

    @task
    def body() -> int:
        ran.append(1)
        return 1

    with Flow("f") as flow:
        body()

    with pytest.raises(RunStoreError, match=BAD_FILES[case][1]) as info:
        await flow.run(history=path)
    assert str(path) in str(info.value)
    assert ran == []


@pytest.mark.parametrize("case", ["garbage", "directory", "truncated"])
def test_a_bad_history_file_in_a_script_leaves_no_thread_behind(tmp_path: Path, case: str) -> None:
    """The script's ``asyncio.run`` ends its loop: a leftover thread would then report ``Event loop is closed``."""
    path = _bad_path(tmp_path, case)
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, sys
            from aflow import Flow, task
            from aflow.exceptions import RunStoreError

            @task
            def body():
                return 1

            with Flow("f") as flow:
                body()
            try:
                asyncio.run(flow.run(history=sys.argv[1]))
            except RunStoreError as exc:
                print("refused:", exc)
            """
        )
    )
    env = child_env()
    done = subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: Run history")
    assert done.stderr == ""


async def test_an_empty_file_becomes_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.touch()
    async with RunStore(path) as store:
        store.flow_run_started("r", "f", {}, T0)
    assert await read(path, "SELECT run_id FROM flow_runs") == [("r",)]
