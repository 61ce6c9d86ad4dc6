"""aflow_tasks.mysql against a real MariaDB server: every class and argument, and the issue's behaviours."""

from __future__ import annotations

import logging
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomysql  # type: ignore[import-untyped]
import pymysql  # type: ignore[import-untyped]
import pytest

import aflow_tasks.mysql as mysql
from aflow import Flow, Secret
from aflow.signals import FAIL
from aflow.states import Failed, Success, TimedOut
from aflow_tasks.mysql import MySQLExecute, MySQLFetch, MySQLSettings, clients
from tests.net import free_port

from .conftest import DB, PASSWORD, USER, MariaDB


@pytest.fixture
def table(mariadb: MariaDB) -> str:
    name = f"t_{uuid.uuid4().hex[:10]}"
    mariadb.query(f"CREATE TABLE {name} (id INT PRIMARY KEY, name VARCHAR(100)) ENGINE=InnoDB")
    mariadb.query(f"INSERT INTO {name} VALUES (1, 'ada'), (2, 'bob'), (3, 'cy')")
    return name


async def run_one(task: Any, **kwargs: Any) -> Any:
    """Run ``task`` in a flow of its own; return its state."""
    with Flow("mysql-test") as flow:
        ref = task(**kwargs)
    state = await flow.run()
    return state.result[ref]


# --- MySQLExecute ---------------------------------------------------------------------------


async def test_execute_returns_affected_rows_and_commits(mariadb: MariaDB, table: str) -> None:
    task = MySQLExecute(**mariadb.settings, commit=True)
    state = await run_one(task, query=f"UPDATE {table} SET name = UPPER(name) WHERE id < 3")
    assert isinstance(state, Success), state.message
    assert state.result == 2
    assert mariadb.query(f"SELECT name FROM {table} ORDER BY id") == [("ADA",), ("BOB",), ("cy",)]


async def test_execute_without_commit_rolls_back(mariadb: MariaDB, table: str) -> None:
    add = MySQLExecute(**mariadb.settings, query=f"INSERT INTO {table} VALUES (10, 'ghost')")
    look = MySQLFetch(**mariadb.settings, query=f"SELECT COUNT(*) FROM {table} WHERE id = 10")
    with Flow("rollback") as flow:
        added = add()
        seen = look(upstream_tasks=[added])
    state = await flow.run()
    assert state.result[added].result == 1
    assert state.result[seen].result == (0,)  # a later task of the run does not see it
    assert mariadb.query(f"SELECT COUNT(*) FROM {table} WHERE id = 10") == [(0,)]  # nor another connection


async def test_values_bound_never_formatted_injection(mariadb: MariaDB, table: str) -> None:
    evil = f"x'); DROP TABLE {table}; --"
    task = MySQLExecute(**mariadb.settings, commit=True)
    state = await run_one(task, query=f"INSERT INTO {table} (id, name) VALUES (%s, %s)", data=(4, evil))
    assert isinstance(state, Success), state.message
    fetch = MySQLFetch(**mariadb.settings)
    state = await run_one(fetch, query=f"SELECT name FROM {table} WHERE id = %(id)s", data={"id": 4})
    assert state.result == (evil,)
    state = await run_one(fetch, query=f"SELECT COUNT(*) FROM {table} WHERE name = %s", data=["' OR '1'='1"])
    assert state.result == (0,)
    assert mariadb.query(f"SELECT COUNT(*) FROM {table}") == [(4,)]  # the table is still there


async def test_percent_without_data_is_sent_as_is(mariadb: MariaDB, table: str) -> None:
    state = await run_one(MySQLFetch(**mariadb.settings, query=f"SELECT name FROM {table} WHERE name LIKE 'a%'"))
    assert state.result == ("ada",)


async def test_data_as_a_string_is_refused(mariadb: MariaDB, table: str) -> None:
    with pytest.raises(ValueError, match="data"):
        await MySQLExecute(**mariadb.settings).run(query=f"SELECT * FROM {table} WHERE name = %s", data="ada")


async def test_call_values_win_and_none_falls_back_to_init(mariadb: MariaDB) -> None:
    task = MySQLFetch(**mariadb.settings, query="SELECT 'init'")
    assert await task.run() == ("init",)
    assert await task.run(query="SELECT 'call'") == ("call",)
    assert await task.run(query=None, port=None, charset=None) == ("init",)
    # everything given at the call, nothing at init
    bare = MySQLFetch()
    found = await bare.run(**mariadb.settings, query="SELECT DATABASE(), CURRENT_USER()")
    assert found[0] == DB
    assert found[1].startswith(f"{USER}@")


async def test_db_name_is_optional_and_none_is_never_sent(mariadb: MariaDB) -> None:
    settings = {**mariadb.settings, "db_name": None}
    assert await MySQLFetch(**settings).run(query="SELECT DATABASE()") == (None,)
    # None at both init and call: the driver's default port (3306) would be wrong here, so only
    # options that are set reach the driver; a None charset leaves the driver's default
    assert MySQLSettings(host="h", user="u").connect_kwargs() == {"host": "h", "user": "u"}
    task = MySQLFetch(**mariadb.settings, charset=None)  # type: ignore[arg-type]
    assert await task.run(query="SELECT 1") == (1,)


@pytest.mark.parametrize("missing", ["host", "user", "query"])
async def test_a_required_value_missing_at_both_is_a_value_error(mariadb: MariaDB, missing: str) -> None:
    values: dict[str, Any] = {**mariadb.settings, "query": "SELECT 1"}
    del values[missing]
    for cls in (MySQLExecute, MySQLFetch):
        with pytest.raises(ValueError, match=missing):
            await cls(**values).run()
        state = await run_one(cls(**values))
        assert isinstance(state, Failed)
        assert missing in str(state.message)


async def test_server_error_fails_the_task_with_the_servers_message(mariadb: MariaDB) -> None:
    state = await run_one(MySQLExecute(**mariadb.settings, query="SELECT * FROM no_such_table"))
    assert isinstance(state, Failed)
    assert "1146" in str(state.message)
    assert "no_such_table' doesn't exist" in str(state.message)
    state = await run_one(MySQLFetch(**mariadb.settings, query="SELEKT 1"))
    assert isinstance(state, Failed)
    assert "You have an error in your SQL syntax" in str(state.message)


async def test_charset(mariadb: MariaDB) -> None:
    query = "SELECT @@character_set_client, @@character_set_connection"
    assert await MySQLFetch(**mariadb.settings, query=query).run() == ("utf8mb4", "utf8mb4")
    assert await MySQLFetch(**mariadb.settings, query=query).run(charset="latin1") == ("latin1", "latin1")
    assert await MySQLExecute(**mariadb.settings, charset="latin1").run(query="SELECT 'é'") == 1


async def test_port_a_closed_port_fails(mariadb: MariaDB) -> None:
    closed = free_port()
    state = await run_one(MySQLFetch(**mariadb.settings, query="SELECT 1"), port=closed)
    assert isinstance(state, Failed)
    assert "Can't connect" in str(state.message)
    assert "2003" in str(state.message)


async def test_ssl_dict_and_context(mariadb: MariaDB) -> None:
    query = "SHOW SESSION STATUS LIKE 'Ssl_version'"
    plain = await MySQLFetch(**mariadb.settings, query=query).run()
    assert plain == ("Ssl_version", "")
    tls = await MySQLFetch(**mariadb.settings, query=query, ssl={"ca": mariadb.cert}).run()
    assert tls[1].startswith("TLS")
    context = ssl.create_default_context(cafile=mariadb.cert)
    assert (await MySQLExecute(**mariadb.settings, ssl=context).run(query="SELECT 1")) == 1
    # Prefect 1's docs spell the keys ssl_ca...; unknown keys are refused
    assert (await MySQLFetch(**mariadb.settings, query=query).run(ssl={"ssl_ca": mariadb.cert}))[1].startswith("TLS")
    with pytest.raises(ValueError, match="unknown keys"):
        await MySQLFetch(**mariadb.settings, query=query).run(ssl={"bogus": 1})


# --- MySQLFetch -----------------------------------------------------------------------------


async def test_fetch_one_many_all(mariadb: MariaDB, table: str) -> None:
    task = MySQLFetch(**mariadb.settings, query=f"SELECT id, name FROM {table} ORDER BY id")
    assert await task.run() == (1, "ada")
    assert await task.run(fetch="many") == [(1, "ada"), (2, "bob"), (3, "cy")]
    assert await task.run(fetch="many", fetch_count=2) == [(1, "ada"), (2, "bob")]
    assert await task.run(fetch="all") == [(1, "ada"), (2, "bob"), (3, "cy")]
    assert await task.run(query=f"SELECT * FROM {table} WHERE id > 99") is None
    assert await task.run(query=f"SELECT * FROM {table} WHERE id > 99", fetch="all") == []
    assert await MySQLFetch(**mariadb.settings, fetch="many", fetch_count=1).run(query=f"SELECT id FROM {table}") == [
        (1,)
    ]


async def test_bad_fetch_is_a_value_error(mariadb: MariaDB) -> None:
    with pytest.raises(ValueError, match=r"'fetch' parameter must be one of the following - \('one', 'many', 'all'\)"):
        await MySQLFetch(**mariadb.settings, query="SELECT 1", fetch="some").run()
    with pytest.raises(ValueError, match="fetch_count"):
        await MySQLFetch(**mariadb.settings, query="SELECT 1", fetch="many", fetch_count=-1).run()


@pytest.mark.parametrize("name", ["dictcursor", "DictCursor", "ssdictcursor", "SSDICTCURSOR"])
async def test_dict_cursors(mariadb: MariaDB, table: str, name: str) -> None:
    task = MySQLFetch(**mariadb.settings, query=f"SELECT id, name FROM {table} ORDER BY id", cursor_type=name)
    assert await task.run() == {"id": 1, "name": "ada"}
    assert await task.run(fetch="all") == [{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}, {"id": 3, "name": "cy"}]


@pytest.mark.parametrize(
    "cursor_type",
    [
        "cursor",
        "Cursor",
        "sscursor",
        "SSCursor",
        aiomysql.cursors.Cursor,
        aiomysql.cursors.SSCursor,
        pymysql.cursors.Cursor,
    ],
)
async def test_tuple_cursors_and_classes(mariadb: MariaDB, table: str, cursor_type: Any) -> None:
    task = MySQLFetch(**mariadb.settings, query=f"SELECT id FROM {table} ORDER BY id", fetch="many", fetch_count=2)
    assert await task.run(cursor_type=cursor_type) == [(1,), (2,)]


async def test_a_cursor_class_is_used_as_is(mariadb: MariaDB) -> None:
    assert await MySQLFetch(**mariadb.settings, query="SELECT 7 AS n").run(cursor_type=aiomysql.cursors.DictCursor) == {
        "n": 7
    }
    assert await MySQLFetch(**mariadb.settings, query="SELECT 7 AS n").run(cursor_type=pymysql.cursors.DictCursor) == {
        "n": 7
    }


@pytest.mark.parametrize("bad", ["namedtuple", 3])
async def test_another_cursor_type_is_a_type_error_naming_the_four(mariadb: MariaDB, bad: Any) -> None:
    with pytest.raises(TypeError) as info:
        await MySQLFetch(**mariadb.settings, query="SELECT 1", cursor_type=bad).run()
    assert "['cursor', 'dictcursor', 'sscursor', 'ssdictcursor'] or a full cursor class" in str(info.value)


async def test_fetch_commit(mariadb: MariaDB, table: str) -> None:
    query = f"INSERT INTO {table} VALUES (20, 'z') RETURNING id"
    assert await MySQLFetch(**mariadb.settings, query=query).run() == (20,)
    assert mariadb.query(f"SELECT COUNT(*) FROM {table} WHERE id = 20") == [(0,)]
    assert await MySQLFetch(**mariadb.settings, query=query, commit=True).run() == (20,)
    assert mariadb.query(f"SELECT COUNT(*) FROM {table} WHERE id = 20") == [(1,)]


async def test_unbuffered_cursor_partial_fetch_leaves_the_connection_usable(mariadb: MariaDB) -> None:
    big = "SELECT seq FROM seq_1_to_100000"
    one = MySQLFetch(**mariadb.settings, query=big, cursor_type="sscursor", fetch="many", fetch_count=3)
    after = MySQLFetch(**mariadb.settings, query="SELECT 'next'")
    with Flow("ss") as flow:
        first = one()
        second = after(upstream_tasks=[first])
    state = await flow.run()
    assert state.result[first].result == [(1,), (2,), (3,)]
    assert state.result[second].result == ("next",)


# --- passwords and secrets ------------------------------------------------------------------


async def test_password_from_a_lazy_secret_and_never_shown(mariadb: MariaDB, caplog: pytest.LogCaptureFixture) -> None:
    settings = {**mariadb.settings, "password": Secret("MYSQL_PW")}
    caplog.set_level(logging.DEBUG)
    with Flow("secret") as flow:
        ok = MySQLFetch(**settings, query="SELECT CURRENT_USER()")()
        given = MySQLFetch(**{**mariadb.settings, "password": None}, query="SELECT 2")(password=Secret("MYSQL_PW"))
        bad = MySQLFetch(**settings, query="SELECT 1")(password=PASSWORD + "-wrong", user="nobody")
        err = MySQLExecute(**settings, query="SELECT * FROM %s", data=[PASSWORD])()
    state = await flow.run(context={"secrets": {"MYSQL_PW": PASSWORD}})
    assert state.result[ok].result[0].startswith(f"{USER}@")
    assert state.result[given].result == (2,)
    failed = state.result[bad]
    assert isinstance(failed, Failed)
    assert "Access denied" in str(failed.message)
    assert isinstance(state.result[err], Failed)
    assert "1064" in state.result[err].message
    for task_state in state.result.values():
        assert PASSWORD not in str(task_state.message)
        assert PASSWORD not in repr(task_state.result)
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()
        assert PASSWORD not in str(record.exc_info)


async def test_wrong_password_error_text_has_no_password(mariadb: MariaDB) -> None:
    wrong = "Wrong-Pass-4242"
    with pytest.raises(FAIL) as info:
        await MySQLFetch(**mariadb.settings, query="SELECT 1").run(password=wrong)
    assert "Access denied" in str(info.value)
    assert wrong not in str(info.value)
    assert wrong not in str(info.value.__cause__)
    assert wrong not in repr(MySQLSettings(host="h", user="u", password=wrong))
    assert wrong not in repr(MySQLSettings(host="h", user="u", password=wrong).key)


# --- one pool per flow run and configuration ------------------------------------------------


async def test_one_pool_per_run_and_configuration_closed_at_the_end(mariadb: MariaDB) -> None:
    opened: list[Any] = []

    @asynccontextmanager
    async def counting(settings: MySQLSettings) -> AsyncIterator[Any]:
        async with mysql.open_pool(settings) as pool:
            opened.append(pool)
            yield pool

    with Flow("pools") as flow:
        for i in range(5):
            MySQLFetch(**mariadb.settings, query=f"SELECT {i}")()
        MySQLFetch(**mariadb.settings, query="SELECT 9")(charset="latin1")  # another configuration
    with clients.override(counting):
        state = await flow.run()
    assert isinstance(state, Success)
    assert len(opened) == 2
    assert all(pool.closed for pool in opened)


# --- cancellation and concurrency, observed in the server's processlist ---------------------


async def running_queries(marker: str) -> list[tuple[Any, ...]]:
    """Threads of the server running a statement whose text holds ``marker`` (this check's excluded)."""
    conn = await aiomysql.connect(**_check_args())
    try:
        cur = await conn.cursor()
        await cur.execute(
            "SELECT id, command, info FROM information_schema.processlist "
            "WHERE command = 'Query' AND info LIKE %s AND id <> CONNECTION_ID()",
            (f"%{marker}%",),
        )
        return list(await cur.fetchall())
    finally:
        conn.close()


_CHECK: dict[str, Any] = {}


def _check_args() -> dict[str, Any]:
    return dict(_CHECK)


@pytest.fixture(autouse=True)
def _check_connection(mariadb: MariaDB) -> None:
    _CHECK.update(host=mariadb.host, port=mariadb.port, user=USER, password=PASSWORD, db=DB)


async def wait_for(predicate: Any, what: str, guard: int = 3000) -> None:
    """Poll ``predicate`` (async) until true; the bound is only a guard against a hang."""
    import asyncio

    for _ in range(guard):
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never saw: {what}")


async def test_cancelling_a_flow_kills_the_query_on_the_server(mariadb: MariaDB) -> None:
    marker = f"cancel_{uuid.uuid4().hex[:8]}"
    with Flow("cancel") as flow:
        for i in range(3):
            MySQLFetch(**mariadb.settings, query=f"SELECT SLEEP(30), '{marker}', {i}")()
    handle = flow.start()

    async def all_running() -> bool:
        return len(await running_queries(marker)) == 3

    await wait_for(all_running, "3 running queries")
    handle.cancel()
    state = await handle.wait()
    assert state.is_cancelled()

    async def none_running() -> bool:
        return await running_queries(marker) == []

    await wait_for(none_running, "no running query after the cancel")


async def test_a_task_timeout_kills_the_query_on_the_server(mariadb: MariaDB) -> None:
    marker = f"timeout_{uuid.uuid4().hex[:8]}"
    task = MySQLFetch(**mariadb.settings, query=f"SELECT SLEEP(30), '{marker}'", timeout=0.5)
    state = await run_one(task)
    assert isinstance(state, TimedOut)

    async def none_running() -> bool:
        return await running_queries(marker) == []

    await wait_for(none_running, "no running query after the timeout")


async def test_many_fetches_of_one_run_wait_at_once(mariadb: MariaDB) -> None:
    width = 20
    marker = f"width_{uuid.uuid4().hex[:8]}"
    release = f"rel_{marker}"
    # every query waits on a lock the test holds: they are all in the processlist at once, then
    # the test lets them go (no timing involved)
    holder = await aiomysql.connect(**_check_args())
    cur = await holder.cursor()
    await cur.execute("SELECT GET_LOCK(%s, 0)", (release,))
    with Flow("width") as flow:
        refs = [
            MySQLFetch(
                **mariadb.settings, query=f"SELECT GET_LOCK('{release}', 60) + RELEASE_LOCK('{release}'), '{marker}'"
            )()
            for _ in range(width)
        ]
    handle = flow.start()
    try:

        async def all_waiting() -> bool:
            return len(await running_queries(marker)) == width

        await wait_for(all_waiting, f"{width} queries running at once")
    finally:
        await cur.execute("SELECT RELEASE_LOCK(%s)", (release,))
        holder.close()
    state = await handle.wait()
    assert isinstance(state, Success)
    assert [state.result[r].result for r in refs] == [(2, marker)] * width


async def test_streaming_a_million_rows_stays_in_bounded_memory(mariadb: MariaDB) -> None:
    import tracemalloc

    marker = f"stream_{uuid.uuid4().hex[:8]}"
    task = MySQLFetch(
        **mariadb.settings,
        query=f"SELECT seq, REPEAT('x', 100), '{marker}' FROM seq_1_to_1000000",
        cursor_type="ssdictcursor",
        fetch="many",
        fetch_count=1000,
    )
    tracemalloc.start()
    try:
        rows = await run_one(task)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(rows.result) == 1000
    assert rows.result[-1]["seq"] == 1000
    assert peak < 20_000_000  # the whole result would be ~150 MB of Python objects

    async def none_running() -> bool:
        return await running_queries(marker) == []

    await wait_for(none_running, "the streamed query ended on the server")


CANCEL_POINTS = [("iterations", n) for n in (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)] + [
    ("seconds", d) for d in (0.001, 0.003, 0.01, 0.03, 0.1)
]


async def test_a_cancel_at_any_moment_leaves_no_running_query(mariadb: MariaDB) -> None:
    import asyncio

    left: dict[Any, Any] = {}
    for kind, amount in CANCEL_POINTS:
        marker = f"point_{uuid.uuid4().hex[:8]}"
        with Flow("points") as flow:
            for i in range(5):
                MySQLFetch(**mariadb.settings, query=f"SELECT SLEEP(30), '{marker}', {i}")()
        handle = flow.start()
        if kind == "iterations":
            for _ in range(int(amount)):
                await asyncio.sleep(0)
        else:
            await asyncio.sleep(amount)
        handle.cancel()
        state = await handle.wait()
        assert state.is_cancelled(), (kind, amount)

        async def none_running(marker: str = marker) -> bool:
            return await running_queries(marker) == []

        try:
            await wait_for(none_running, "no running query", guard=500)
        except AssertionError:
            left[(kind, amount)] = await running_queries(marker)
            for thread, *_ in left[(kind, amount)]:
                mariadb.query(f"KILL {int(thread)}")
    assert left == {}


async def test_a_transient_error_is_retried_then_fails(mariadb: MariaDB) -> None:
    from datetime import timedelta

    closed = free_port()
    settings = {**mariadb.settings, "port": closed}
    task = MySQLFetch(**settings, query="SELECT 1", max_retries=1, retry_delay=timedelta(0))
    state = await run_one(task)
    assert isinstance(state, Failed)
    assert "no retries left after 2 attempts" in str(state.message)


async def test_unbuffered_partial_fetch_with_commit_reads_the_rest(mariadb: MariaDB, table: str) -> None:
    query = f"SELECT seq FROM seq_1_to_5000 WHERE seq > (SELECT COUNT(*) FROM {table})"
    task = MySQLFetch(**mariadb.settings, query=query, cursor_type="SSCursor", commit=True)
    after = MySQLFetch(**mariadb.settings, query="SELECT 'next'")
    with Flow("ss-commit") as flow:
        first = task()
        second = after(upstream_tasks=[first])
    state = await flow.run()
    assert state.result[first].result == (4,)
    assert state.result[second].result == ("next",)
