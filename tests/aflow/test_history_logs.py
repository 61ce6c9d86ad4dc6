"""Task logs, flow graphs, run-id prefixes and run filters in the run store (real SQLite files)."""

from __future__ import annotations

import logging
import sqlite3
import sys
import textwrap
import threading
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from aflow import Flow, Parameter, context, task, unmapped
from aflow._persist._history import _batches, _logs, _queries
from aflow.history import AmbiguousRunId, RunNotFound, RunStore, TaskLogRecord
from aflow.states import Failed, Success

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- recording and reading log records --------------------------------------------------------


async def test_log_records_round_trip_in_order_with_cursor_and_filter(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:
        store.flow_run_started("r1", "f", {}, at(0))
        store.log("r1", "a-1", "a", None, 1, logging.INFO, "first", at(1))
        store.log("r1", "b-1", "b", 3, 2, logging.WARNING, "second", at(2).timestamp())
        store.log("r2", "a-1", "a", None, 1, logging.ERROR, "other run", at(3))
        store.log("r1", "a-1", "a", None, 1, 25, "custom level", at(4))
        logs = await store.task_logs("r1")
        assert [r.message for r in logs] == ["first", "second", "custom level"]
        first, second, third = logs
        assert isinstance(first, TaskLogRecord)
        assert (first.run_id, first.time, first.level, first.task_slug, first.task_name) == (
            "r1",
            at(1),
            "INFO",
            "a-1",
            "a",
        )
        assert (first.map_index, first.attempt) == (None, 1)
        assert (second.level, second.map_index, second.attempt) == ("WARNING", 3, 2)
        assert third.level == "Level 25"
        assert first.seq < second.seq < third.seq
        assert [r.message for r in await store.task_logs("r1", "b")] == ["second"]
        assert [r.message for r in await store.task_logs("r1", after_seq=first.seq)] == ["second", "custom level"]
        assert [r.message for r in await store.task_logs("r1", limit=1)] == ["first"]
        assert await store.task_logs("r1", after_seq=third.seq) == []
        assert await store.task_logs("nope") == []


async def test_a_big_runs_states_and_logs_are_decoded_off_the_event_loop(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:
        store.flow_run_started("r1", "f", {}, at(0))
        for i in range(20_000):  # well over the size decoded on the loop
            store.task_state("r1", "a-1", "a", i, Success(message=f"ok {i}"), at(i))
            store.log("r1", "a-1", "a", i, 1, logging.INFO, f"line {i} " + "x" * 20, at(i))
        on_loop = threading.get_ident()
        decoded_in: set[int] = set()
        original_states, original_logs = _batches.unpack_batches, _logs.unpack_logs

        def states(*args: Any) -> Any:
            decoded_in.add(threading.get_ident())
            return original_states(*args)

        def logs(*args: Any) -> Any:
            decoded_in.add(threading.get_ident())
            return original_logs(*args)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_queries, "unpack_batches", states)
            patch.setattr(_logs, "unpack_logs", logs)
            history = await store.task_history("r1")
            records = await store.task_logs("r1", "a")
        assert [r.map_index for r in history] == list(range(20_000))
        assert history[-1].message == "ok 19999"
        assert [r.message for r in records[:2]] == ["line 0 " + "x" * 20, "line 1 " + "x" * 20]
        assert len(records) == 20_000
        assert decoded_in
        assert on_loop not in decoded_in


async def test_logs_and_graphs_are_pruned_with_their_runs(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:

        @task(name="one")
        async def one() -> int:
            return 1

        with Flow("f") as flow:
            one()
        store.flow_run_started("old", "f", {}, at(0))
        store.record_graph("old", flow)
        store.log("old", "one-1", "one", None, 1, logging.INFO, "gone", at(1))
        store.flow_run_started("new", "f", {}, at(100))
        store.log("new", "one-1", "one", None, 1, logging.INFO, "kept", at(101))
        assert await store.prune_runs(at(50)) == 1
        assert await store.task_logs("old") == []
        assert await store.run_graph("old") is None
        assert [r.message for r in await store.task_logs("new")] == ["kept"]


async def test_log_needs_an_open_store(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "h.db")
    with pytest.raises(RuntimeError, match="not open"):
        store.log("r", "a", "a", None, 1, logging.INFO, "x", at(0))


# -- graphs -----------------------------------------------------------------------------------


async def test_run_graph_of_an_engine_run(tmp_path: Path) -> None:
    @task
    async def nums(n: int) -> list[int]:
        return list(range(n))

    @task
    async def inc(x: int, by: int) -> int:
        return x + by

    @task
    async def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("g") as flow:
        n = Parameter("n", default=2)
        t = total(inc.map(nums(n), by=unmapped(1)))
    state = await flow.run(history=tmp_path / "h.db")
    assert state.is_successful()
    async with RunStore(tmp_path / "h.db") as store:
        (run,) = await store.list_runs()
        graph = await store.run_graph(run.run_id)
    assert graph is not None
    nodes = {node["name"]: node for node in graph["nodes"]}
    assert set(nodes) == {task.name for task in flow.tasks}
    assert nodes["inc"]["mapped"] is True
    assert nodes["total"]["mapped"] is False
    assert nodes["total"]["reference"] is True
    assert nodes["inc"]["reference"] is False
    assert nodes["n"]["parameter"] is True
    assert nodes["inc"]["parameter"] is False
    assert nodes["total"]["slug"] == t.slug
    by_slug = {node["slug"]: node["name"] for node in graph["nodes"]}
    edges = {(by_slug[e["source"]], by_slug[e["target"]], e["key"], e["mapped"]) for e in graph["edges"]}
    assert ("nums", "inc", "x", True) in edges
    assert ("inc", "total", "xs", False) in edges
    assert ("n", "nums", "n", False) in edges


async def test_run_graph_of_an_unknown_run_is_none(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:
        assert await store.run_graph("nope") is None


# -- run ids and run lists --------------------------------------------------------------------


async def test_resolve_run_id_by_unique_prefix(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:
        for run_id in ("abc123", "abd456", "xyz"):
            store.flow_run_started(run_id, "f", {}, at(0))
        assert await store.resolve_run_id("abc") == "abc123"
        assert await store.resolve_run_id("abc123") == "abc123"
        assert await store.resolve_run_id("x") == "xyz"
        with pytest.raises(AmbiguousRunId) as ambiguous:
            await store.resolve_run_id("ab")
        assert ambiguous.value.candidates == ["abc123", "abd456"]
        assert "abc123, abd456" in str(ambiguous.value)
        assert isinstance(ambiguous.value, LookupError)
        with pytest.raises(RunNotFound, match="'q'"):
            await store.resolve_run_id("q")
        with pytest.raises(RunNotFound):
            await store.resolve_run_id("")
        with pytest.raises(RunNotFound):
            await store.resolve_run_id("%")  # no LIKE pattern


async def test_list_runs_by_state_with_offset(tmp_path: Path) -> None:
    async with RunStore(tmp_path / "h.db") as store:
        for i in range(5):
            store.flow_run_started(f"r{i}", "f" if i % 2 else "g", {}, at(i))
            store.flow_run_finished(f"r{i}", Failed() if i in (1, 2, 4) else Success(), at(i + 0.5))
        failed = await store.list_runs(state="Failed")
        assert [r.run_id for r in failed] == ["r4", "r2", "r1"]
        assert [r.run_id for r in await store.list_runs(state="Failed", offset=1, limit=1)] == ["r2"]
        assert [r.run_id for r in await store.list_runs("f", state="Failed")] == ["r1"]
        assert [r.run_id for r in await store.list_runs(offset=3)] == ["r1", "r0"]
        assert [r.run_id for r in await store.list_runs(limit=2)] == ["r4", "r3"]


async def test_a_file_of_an_older_aflow_gets_the_new_tables(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            "CREATE TABLE flow_runs (run_id TEXT PRIMARY KEY, flow_name TEXT NOT NULL, parameters TEXT NOT NULL,"
            " started_at TEXT NOT NULL, ended_at TEXT, state TEXT NOT NULL, message TEXT);"
            "INSERT INTO flow_runs VALUES ('old', 'f', '{}', '2024-05-01T12:00:00.000000+00:00', NULL, 'Success',"
            " NULL);"
            "PRAGMA user_version = 1;"
        )
    async with RunStore(path) as store:
        assert await store.run_graph("old") is None
        assert await store.task_logs("old") == []
        assert await store.resolve_run_id("o") == "old"


# -- a flow run in another process ------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from aflow import Flow, task

    @task(max_retries=1)
    async def shaky(n):
        from aflow import context
        log = context.get("logger")
        log.info("attempt %d of shaky[%d]", context.get("task_run_count"), n)
        log.debug("not kept at INFO")
        if context.get("task_run_count") == 1 and n == 1:
            raise ValueError("first try fails")
        return n

    @task(log_stdout=True)
    def printer():
        print("printed line")
        time.sleep(0.01)

    with Flow("child") as flow:
        shaky.map([0, 1])
        printer()

    asyncio.run(flow.run(history=sys.argv[1]))
    """
)


async def test_logs_written_by_a_flow_in_another_process(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    db = tmp_path / "h.db"
    proc = await anyio.run_process([sys.executable, str(script), str(db)], check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"attempt" not in proc.stderr  # INFO kept in the store, not printed by the root logger
    async with RunStore(db) as store:
        (run,) = await store.list_runs()
        logs = await store.task_logs(run.run_id)
        shaky = [(r.map_index, r.attempt, r.message) for r in await store.task_logs(run.run_id, "shaky")]
    assert sorted(shaky) == [
        (0, 1, "attempt 1 of shaky[0]"),
        (1, 1, "attempt 1 of shaky[1]"),
        (1, 2, "attempt 2 of shaky[1]"),
    ]
    printed = [r for r in logs if r.task_name == "printer"]
    assert [(r.message, r.level, r.map_index) for r in printed] == [("printed line", "INFO", None)]
    assert all(r.level == "INFO" for r in logs)


# -- what the engine keeps --------------------------------------------------------------------


async def run_and_read(flow: Flow, path: Path, **run_args: Any) -> list[TaskLogRecord]:
    state = await flow.run(history=path, **run_args)
    assert state.is_successful(), state
    async with RunStore(path) as store:
        (run,) = await store.list_runs()
        return await store.task_logs(run.run_id)


def logging_flow(**task_args: Any) -> Flow:
    @task(**task_args)
    async def chatty() -> None:
        log = context.get("logger")
        log.debug("debug line")
        log.info("info line %s", "arg")
        log.info("mapping %(n)d", {"n": 3})
        log.warning("warning line")

    with Flow("chatty") as flow:
        chatty()
    return flow


async def test_info_and_up_are_kept_whatever_the_logging_setup(tmp_path: Path) -> None:
    task_logger = logging.getLogger("aflow.task")
    assert not task_logger.isEnabledFor(logging.INFO)  # a plain program: the root logger at WARNING
    logs = await run_and_read(logging_flow(), tmp_path / "h.db")
    assert [(r.level, r.message) for r in logs] == [
        ("INFO", "info line arg"),
        ("INFO", "mapping 3"),
        ("WARNING", "warning line"),
    ]


async def test_the_level_is_set_per_run_and_per_task(tmp_path: Path) -> None:
    debug = await run_and_read(logging_flow(), tmp_path / "run.db", history_log_level="DEBUG")
    assert [r.level for r in debug] == ["DEBUG", "INFO", "INFO", "WARNING"]
    quiet = await run_and_read(logging_flow(history_log_level="WARNING"), tmp_path / "task.db")
    assert [r.message for r in quiet] == ["warning line"]
    task_wins = await run_and_read(
        logging_flow(history_log_level=logging.ERROR), tmp_path / "both.db", history_log_level="DEBUG"
    )
    assert task_wins == []
    with pytest.raises(ValueError, match="not a logging level"):
        logging_flow(history_log_level="LOUD")


async def test_log_records_are_redacted_and_keep_tracebacks(tmp_path: Path) -> None:
    from aflow import secrets

    secrets.register("hunter2-secret")
    try:

        @task
        async def leaky() -> None:
            log = context.get("logger")
            log.info("password is %s", "hunter2-secret")
            try:
                raise KeyError("boom")
            except KeyError:
                log.exception("it failed")

        with Flow("leaky") as flow:
            leaky()
        logs = await run_and_read(flow, tmp_path / "h.db")
    finally:
        secrets._clear()
    assert logs[0].message == f"password is {secrets.REDACTED}"
    assert logs[1].level == "ERROR"
    assert logs[1].message.startswith("it failed\nTraceback (most recent call last):")
    assert "KeyError: 'boom'" in logs[1].message


async def test_records_of_sync_tasks_in_threads_and_of_mapped_children(tmp_path: Path) -> None:
    @task
    def in_thread(x: int) -> int:
        for i in range(50):
            context.get("logger").info("child %d line %d", x, i)
        return x

    with Flow("threads") as flow:
        in_thread.map(list(range(8)))
    logs = await run_and_read(flow, tmp_path / "h.db")
    assert len(logs) == 400
    for x in range(8):
        mine = [r.message for r in logs if r.map_index == x]
        assert mine == [f"child {x} line {i}" for i in range(50)]
    assert {r.task_name for r in logs} == {"in_thread"}


async def test_without_a_store_nothing_is_kept_and_records_still_reach_handlers(tmp_path: Path) -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    task_logger = logging.getLogger("aflow.task")
    task_logger.addHandler(handler)
    task_logger.setLevel(logging.INFO)
    try:
        state = await logging_flow().run()
    finally:
        task_logger.removeHandler(handler)
        task_logger.setLevel(logging.NOTSET)
    assert state.is_successful()
    assert [r.getMessage() for r in seen] == ["info line arg", "mapping 3", "warning line"]
    assert seen[0].funcName == "chatty"  # the caller, not the adapter
    assert (seen[0].task_name, seen[0].map_index, seen[0].task_run_count) == ("chatty", None, 1)  # type: ignore[attr-defined]


async def test_a_changed_flow_records_its_new_graph(tmp_path: Path) -> None:
    @task
    async def one() -> int:
        return 1

    @task
    async def two(x: int) -> int:
        return x + 1

    with Flow("grows") as flow:
        first = one()
    path = tmp_path / "h.db"
    assert (await flow.run(history=path)).is_successful()
    assert (await flow.run(history=path)).is_successful()  # the unchanged flow: the same graph
    two.bind(x=first, flow=flow)
    assert (await flow.run(history=path)).is_successful()
    async with RunStore(path) as store:
        newest, middle, oldest = await store.list_runs()
        graphs = [await store.run_graph(run.run_id) for run in (oldest, middle, newest)]
    names = [sorted(node["name"] for node in graph["nodes"]) for graph in graphs if graph is not None]
    assert names == [["one"], ["one"], ["one", "two"]]
    assert graphs[2] is not None
    assert [(e["key"], e["mapped"]) for e in graphs[2]["edges"]] == [("x", False)]


async def test_a_handler_writing_to_stdout_does_not_route_its_own_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handlers: list[logging.Handler] = []

    @task(log_stdout=True)
    def printer() -> None:
        handler = logging.StreamHandler(sys.stdout)  # sys.stdout routes this task's prints here
        handler.setFormatter(logging.Formatter("handled: %(message)s"))
        handlers.append(handler)
        logging.getLogger("aflow.task.printer").addHandler(handler)
        logging.getLogger("aflow.task.printer").setLevel(logging.INFO)
        print("hello")

    with Flow("printing") as flow:
        printer()
    try:
        logs = await run_and_read(flow, tmp_path / "h.db")
    finally:
        for handler in handlers:
            logging.getLogger("aflow.task.printer").removeHandler(handler)
        logging.getLogger("aflow.task.printer").setLevel(logging.NOTSET)
    assert [r.message for r in logs] == ["hello"]
    assert "handled: hello\n" in capsys.readouterr().out  # once, on the real stdout
