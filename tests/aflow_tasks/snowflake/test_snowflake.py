"""aflow_tasks.snowflake against Snowflake emulated by fakesnow (see conftest.py)."""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
import snowflake.connector
from snowflake.connector import DictCursor

from aflow import Flow, Secret, signals
from aflow.states import Cancelled, Failed, State, Success, TimedOut
from aflow_tasks.snowflake import SnowflakeQueriesFromFile, SnowflakeQuery

GUARD = 20
# fakesnow reads DuckDB results through Arrow; DuckDB warns about the copy (not ours to fix)
pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")


async def run(flow: Flow, **kwargs: Any) -> State:
    with anyio.fail_after(GUARD):
        return await flow.run(**kwargs)


def one(task: Any, **call: Any) -> Flow:
    with Flow(f"sf-{uuid.uuid4().hex[:6]}") as flow:
        task(**call)
    return flow


def result(state: State, flow: Flow) -> Any:
    (task_state,) = state.result.values()
    return task_state


def sql(creds: dict[str, Any], statement: str, data: Any = None) -> list[Any]:
    """Run a statement on a connection of its own (autocommit), outside aflow."""
    conn = snowflake.connector.connect(**creds)
    try:
        cursor = conn.cursor().execute(statement, data)
        assert cursor is not None
        return list(cursor.fetchall())
    finally:
        conn.close()


@pytest.fixture
def table(creds: dict[str, Any]) -> str:
    name = f"t_{uuid.uuid4().hex[:8]}"
    sql(creds, f"CREATE TABLE {name} (id INT, name VARCHAR)")
    sql(creds, f"INSERT INTO {name} VALUES (1, 'ada'), (2, 'grace')")
    return name


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record the keyword arguments and the thread of every connect (fakesnow's still answers)."""
    seen: list[dict[str, Any]] = []
    inner = snowflake.connector.connect

    def connect(**kwargs: Any) -> Any:
        seen.append({**kwargs, "_thread": threading.get_ident()})
        return inner(**kwargs)

    monkeypatch.setattr(snowflake.connector, "connect", connect)
    return seen


# --- arguments -----------------------------------------------------------------------------


def test_init_stores_every_argument() -> None:
    q = SnowflakeQuery(
        account="a", user="u", password="p", private_key=b"k", database="d", schema="s", role="r",
        warehouse="w", query="SELECT 1", data=(1,), autocommit=True, cursor_type=DictCursor,
        authenticator="oauth", token="t", name="q",
    )  # fmt: skip
    assert (q.account, q.user, q.password, q.private_key, q.database, q.schema, q.role, q.warehouse) == (
        "a", "u", "p", b"k", "d", "s", "r", "w",
    )  # fmt: skip
    assert (q.query, q.data, q.autocommit, q.cursor_type, q.authenticator, q.token, q.name) == (
        "SELECT 1", (1,), True, DictCursor, "oauth", "t", "q",
    )  # fmt: skip
    f = SnowflakeQueriesFromFile(file_path="x.sql", autocommit=False)
    assert (f.file_path, f.autocommit, f.account, f.cursor_type) == ("x.sql", False, None, None)
    d = SnowflakeQuery()
    assert all(getattr(d, n) is None for n in ("account", "user", "password", "query", "data", "cursor_type"))


async def test_query_returns_the_rows_as_tuples(creds: dict[str, Any], table: str) -> None:
    rows = await SnowflakeQuery(**creds, query=f"SELECT id, name FROM {table} ORDER BY id").run()
    assert rows == [(1, "ada"), (2, "grace")]
    assert isinstance(rows, list)


async def test_dict_cursor_gives_dicts(creds: dict[str, Any], table: str) -> None:
    task = SnowflakeQuery(**creds, cursor_type=DictCursor)
    flow = one(task, query=f"SELECT id, name FROM {table} ORDER BY id")
    state = await run(flow)
    assert isinstance(state, Success)
    assert result(state, flow).result == [{"ID": 1, "NAME": "ada"}, {"ID": 2, "NAME": "grace"}]


async def test_data_is_bound_never_formatted(creds: dict[str, Any], table: str) -> None:
    evil = f"x'); DROP TABLE {table}; --"
    insert = SnowflakeQuery(**creds, query=f"INSERT INTO {table} VALUES (%s, %s)")
    assert isinstance(await run(one(insert, data=(3, evil))), Success)
    got = await SnowflakeQuery(**creds, query=f"SELECT name FROM {table} WHERE name = %s", data=(evil,)).run()
    assert got == [(evil,)]  # the table is still there and the value stayed data
    assert sql(creds, f"SELECT count(*) FROM {table}") == [(3,)]
    named = SnowflakeQuery(**creds, query=f"SELECT id FROM {table} WHERE name = %(who)s", data={"who": "grace"})
    assert await named.run() == [(2,)]
    with pytest.raises(ValueError, match="data"):
        await SnowflakeQuery(**creds, query="SELECT %s", data="abc").run()


async def test_call_values_win_and_left_out_ones_come_from_init(
    creds: dict[str, Any], table: str, calls: list[dict[str, Any]]
) -> None:
    task = SnowflakeQuery(**creds, query="SELECT 'from init'", role="init_role")
    assert await task.run() == [("from init",)]
    assert await task.run(query=f"SELECT count(*) FROM {table}", role="call_role") == [(2,)]
    assert [c["role"] for c in calls] == ["init_role", "call_role"]


async def test_only_the_arguments_that_are_set_are_sent(creds: dict[str, Any], calls: list[dict[str, Any]]) -> None:
    await SnowflakeQuery(account="acme", user="ada", password="pw-xyz-1", query="SELECT 1", role=None).run()
    sent = {k for k in calls[0] if k != "_thread"}
    assert sent == {"account", "user", "password", "application"}
    assert calls[0]["application"] == "aflow_SnowflakeQuery"
    every = SnowflakeQuery(
        account="acme", user="ada", password="pw-xyz-1", private_key=b"pk-bytes-test", database="db1", schema="s1",
        role="r", warehouse="wh", autocommit=True, authenticator="snowflake", token="tok-123", query="SELECT 1",
    )  # fmt: skip
    assert await every.run() == [(1,)]
    assert {k: v for k, v in calls[1].items() if k != "_thread"} == {
        "account": "acme", "user": "ada", "password": "pw-xyz-1", "private_key": b"pk-bytes-test", "database": "db1",
        "schema": "s1", "role": "r", "warehouse": "wh", "autocommit": True, "authenticator": "snowflake",
        "token": "tok-123", "application": "aflow_SnowflakeQuery",
    }  # fmt: skip
    assert threading.get_ident() not in {c["_thread"] for c in calls}  # connect never ran on the loop


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"user": "u", "password": "pw1", "query": "SELECT 1"}, "account"),
        ({"account": "a", "password": "pw1", "query": "SELECT 1"}, "user"),
        ({"account": "a", "user": "u", "password": "pw1"}, "query"),
        ({"account": "a", "user": "u", "password": "pw1", "query": ""}, "query"),
        ({"account": "a", "user": "u", "query": "SELECT 1"}, "password, private_key, authenticator or token"),
    ],
)
async def test_a_missing_required_value_is_a_value_error_naming_it(
    given: dict[str, Any], named: str, calls: list[dict[str, Any]]
) -> None:
    with pytest.raises(ValueError, match=named):
        await SnowflakeQuery(**given).run()
    state = await run(one(SnowflakeQuery(**given)))
    assert isinstance(state, Failed)
    assert named in str(result(state, Flow("x")).message)
    assert calls == []  # nothing reached the connector


@pytest.mark.parametrize("missing", ["account", "user", "file_path"])
async def test_queries_from_file_needs_account_user_and_file_path(missing: str, tmp_path: Path) -> None:
    given: dict[str, Any] = {"account": "a", "user": "u", "password": "pw1", "file_path": tmp_path / "q.sql"}
    del given[missing]
    with pytest.raises(ValueError, match=missing):
        await SnowflakeQueriesFromFile(**given).run()


# --- the server's answers ------------------------------------------------------------------


async def test_a_server_error_fails_the_task_with_the_servers_message(creds: dict[str, Any]) -> None:
    flow = one(SnowflakeQuery(**creds, query="SELECT * FROM no_such_table_here"))
    state = await run(flow)
    assert isinstance(state, Failed)
    message = result(state, flow).message
    assert "NO_SUCH_TABLE_HERE does not exist" in message
    assert "002003" in message  # the server's error code


async def test_autocommit_false_commits_on_success(creds: dict[str, Any], table: str) -> None:
    task = SnowflakeQuery(**creds, autocommit=False, query=f"INSERT INTO {table} VALUES (%s, %s)")
    assert isinstance(await run(one(task, data=(7, "kept"))), Success)
    assert sql(creds, f"SELECT name FROM {table} WHERE id = 7") == [("kept",)]


async def test_autocommit_false_rolls_back_a_failing_file(creds: dict[str, Any], table: str, tmp_path: Path) -> None:
    script = tmp_path / "load.sql"
    script.write_text(f"INSERT INTO {table} VALUES (8, 'lost');\nSELECT * FROM no_such_table_either;\n")
    state = await run(one(SnowflakeQueriesFromFile(**creds, autocommit=False, file_path=script)))
    assert isinstance(state, Failed)
    assert sql(creds, f"SELECT count(*) FROM {table} WHERE id = 8") == [(0,)]
    # with autocommit each statement stands on its own: the insert stays
    state = await run(one(SnowflakeQueriesFromFile(**creds, autocommit=True, file_path=str(script))))
    assert isinstance(state, Failed)
    assert sql(creds, f"SELECT count(*) FROM {table} WHERE id = 8") == [(1,)]


async def test_queries_from_file_returns_one_list_per_statement(
    creds: dict[str, Any], table: str, tmp_path: Path
) -> None:
    script = tmp_path / "several.sql"
    script.write_text(
        f"-- a comment\nINSERT INTO {table} VALUES (3, 'linus');\n"
        f"SELECT name FROM {table} ORDER BY id;\nSELECT count(*) AS n FROM {table};\n"
    )
    flow = one(SnowflakeQueriesFromFile(**creds), file_path=script)
    state = await run(flow)
    assert isinstance(state, Success)
    inserted, names, count = result(state, flow).result
    assert names == [("ada",), ("grace",), ("linus",)]
    assert count == [(3,)]
    assert len(inserted) == 1
    as_dicts = await SnowflakeQueriesFromFile(**creds, cursor_type=DictCursor).run(file_path=str(script))
    assert as_dicts[2] == [{"N": 4}]


async def test_a_missing_file_fails_naming_the_path(creds: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "queries.sql"
    flow = one(SnowflakeQueriesFromFile(**creds, file_path=path))
    state = await run(flow)
    assert isinstance(state, Failed)
    assert str(path) in result(state, flow).message
    with pytest.raises(FileNotFoundError, match="nowhere"):
        await SnowflakeQueriesFromFile(**creds).run(file_path=str(path))


# --- secrets -------------------------------------------------------------------------------


async def test_the_password_never_shows(creds: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    password = f"sfpw_{uuid.uuid4().hex[:10]}Q"
    creds = {**creds, "password": password}
    # the server's message repeats the (quoted) name, which is the password
    flow = one(SnowflakeQuery(**creds, query=f'SELECT * FROM "{password}"'))
    with caplog.at_level(logging.DEBUG):
        state = await run(flow)
    assert isinstance(state, Failed)
    task_state = result(state, flow)
    assert "does not exist" in task_state.message
    assert password not in task_state.message
    assert password not in str(task_state.result)
    assert password not in repr(task_state.result)
    assert password not in caplog.text
    for record in caplog.records:
        assert password not in record.getMessage()
    assert any(r.name.startswith("snowflake.connector") for r in caplog.records)  # the driver's DEBUG too
    with pytest.raises(signals.FAIL) as info:  # a direct run: the exception's text
        await SnowflakeQuery(**creds, query=f'SELECT * FROM "{password}"').run()
    assert "does not exist" in str(info.value)
    assert password not in str(info.value)
    assert info.value.__cause__ is None  # the connector's own (unmasked) exception is not chained


async def test_a_lazy_secret_password_is_read_at_run_time(creds: dict[str, Any], calls: list[dict[str, Any]]) -> None:
    password = f"lazy-{uuid.uuid4().hex[:10]}"
    creds = {**creds, "password": Secret("SF_TEST_PASSWORD")}
    flow = one(SnowflakeQuery(**creds, query='SELECT * FROM "no such table"'))
    state = await run(flow, context={"secrets": {"SF_TEST_PASSWORD": password}})
    assert isinstance(state, Failed)
    assert calls[0]["password"] == password
    given = one(SnowflakeQuery(**{**creds, "password": None}, query="SELECT 1"), password=Secret("SF_TEST_PASSWORD"))
    state = await run(given, context={"secrets": {"SF_TEST_PASSWORD": password}})
    assert isinstance(state, Success)
    assert calls[1]["password"] == password


# --- concurrency and cancellation ----------------------------------------------------------


async def test_queries_of_one_flow_run_wait_at_once_in_worker_threads(
    creds: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    width = 6
    everyone_in = threading.Barrier(width, timeout=GUARD / 2)  # breaks unless all connect at once
    threads: set[int] = set()
    inner = snowflake.connector.connect

    def connect(**kwargs: Any) -> Any:
        threads.add(threading.get_ident())
        everyone_in.wait()
        return inner(**kwargs)

    monkeypatch.setattr(snowflake.connector, "connect", connect)
    with Flow("wide") as flow:
        for i in range(width):
            SnowflakeQuery(**creds, name=f"q{i}")(query="SELECT %s", data=(i,))
    state = await run(flow)
    assert isinstance(state, Success)
    assert sorted(s.result[0][0] for s in state.result.values()) == list(range(width))
    assert len(threads) == width
    assert threading.get_ident() not in threads


class _Stuck:
    """A connection (around fakesnow's) whose query blocks until cancelled or closed."""

    def __init__(self, conn: Any, started: threading.Event) -> None:
        self.conn = conn
        self.started = started
        self.released = threading.Event()
        self.cancelled = threading.Event()
        self.closes = 0
        self.finished = threading.Event()

    def __enter__(self) -> _Stuck:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.closes += 1
        self.released.set()
        self.conn.close()

    def cursor(self, cursor_class: Any = None) -> Any:
        stuck = self

        class Cursor:
            def execute(self, query: str, params: Any = None) -> Any:
                stuck.started.set()
                stuck.released.wait(GUARD)
                stuck.finished.set()
                raise snowflake.connector.errors.ProgrammingError("SQL execution canceled")

            def cancel(self) -> None:
                stuck.cancelled.set()

            def close(self) -> None:
                pass

        return Cursor()


class Stuck:
    """Every connection made is a `_Stuck`; ``started`` is set once a query blocks."""

    def __init__(self) -> None:
        self.made: list[_Stuck] = []
        self.started = threading.Event()

    def __call__(self) -> _Stuck:
        return self.made[-1]

    async def wait_started(self) -> None:
        assert await anyio.to_thread.run_sync(self.started.wait, GUARD)


@pytest.fixture
def stuck(monkeypatch: pytest.MonkeyPatch) -> Stuck:
    registry = Stuck()
    inner = snowflake.connector.connect

    def connect(**kwargs: Any) -> Any:
        registry.made.append(_Stuck(inner(**kwargs), registry.started))
        return registry.made[-1]

    monkeypatch.setattr(snowflake.connector, "connect", connect)
    return registry


async def test_cancelling_the_flow_cancels_the_query_and_closes_the_connection(
    creds: dict[str, Any], stuck: Stuck
) -> None:
    handle = one(SnowflakeQuery(**creds, query="SELECT long_running()")).start()
    await stuck.wait_started()
    handle.cancel()
    with anyio.fail_after(GUARD):
        state = await handle.wait()
    assert isinstance(state, Cancelled)
    conn = stuck()
    assert conn.cancelled.is_set()  # cursor.cancel was called
    assert conn.closes >= 1
    assert conn.conn.is_closed()
    assert conn.finished.is_set()  # the worker thread let go before the task reported


async def test_a_task_timeout_cleans_up_the_same_way(creds: dict[str, Any], stuck: Stuck) -> None:
    flow = one(SnowflakeQuery(**creds, query="SELECT long_running()", timeout=0.5))
    state = await run(flow)
    assert isinstance(result(state, flow), TimedOut)
    conn = stuck()
    assert conn.cancelled.is_set()
    assert conn.closes >= 1
    assert conn.finished.is_set()


async def test_cancelling_a_direct_run_reraises_and_closes(creds: dict[str, Any], stuck: Stuck) -> None:
    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                with pytest.raises(anyio.get_cancelled_exc_class()):
                    await SnowflakeQuery(**creds, query="SELECT long_running()").run()
                raise_after.set()

            raise_after = anyio.Event()
            tg.start_soon(call)
            await stuck.wait_started()
            tg.cancel_scope.cancel()
    assert stuck().closes >= 1
    assert stuck().finished.is_set()
