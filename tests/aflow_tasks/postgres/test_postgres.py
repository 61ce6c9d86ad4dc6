"""aflow_tasks.postgres against a real PostgreSQL 15 server (started by conftest)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from aflow import Flow, Parameter, Secret
from aflow.states import Failed, Success
from aflow_tasks import postgres
from aflow_tasks.postgres import PostgresExecute, PostgresExecuteMany, PostgresFetch
from aflow_tasks.secrets import GetSecret

from ._server import PASSWORD, PASSWORD_USER
from .conftest import sql


async def run_one(task: Any, **call: Any) -> Any:
    """Run ``task(**call)`` in a flow; return the task's state."""
    with Flow("one") as flow:
        ref = task(**call)
    state = await flow.run()
    return state.result[ref]


# --- PostgresExecute -------------------------------------------------------------------------


async def test_execute_commit_is_seen_by_other_connections(pg, pg_server, table):
    task = PostgresExecute(**pg, query=f"INSERT INTO {table} VALUES (%s, %s)", commit=True)
    state = await run_one(task, data=(1, "ada"))
    assert isinstance(state, Success)
    assert state.result is None
    assert sql(pg_server, f"SELECT * FROM {table}") == [(1, "ada")]


async def test_execute_without_commit_rolls_back_for_everyone(pg, pg_server, table):
    insert = PostgresExecute(**pg, query=f"INSERT INTO {table} VALUES (%s, %s)")
    fetch = PostgresFetch(**pg, fetch="all", query=f"SELECT * FROM {table}")
    with Flow("rollback") as flow:
        added = insert(data=(1, "ada"))
        seen = fetch(upstream_tasks=[added])
    state = await flow.run()
    assert state.is_successful()
    assert state.result[added].result is None
    assert state.result[seen].result == []  # a later task of the run does not see it
    assert sql(pg_server, f"SELECT * FROM {table}") == []  # nor does another connection


async def test_execute_with_named_placeholders_and_call_values_win(pg, pg_server, table):
    task = PostgresExecute(**pg, query="SELECT 1", commit=False)
    await run_one(
        task,
        query=f"INSERT INTO {table} VALUES (%(id)s, %(name)s)",
        data={"id": 7, "name": "grace"},
        commit=True,
    )
    assert sql(pg_server, f"SELECT * FROM {table}") == [(7, "grace")]


async def test_injection_is_data(pg, pg_server, table):
    evil = f"x'); DROP TABLE {table}; --"
    await run_one(PostgresExecute(**pg, query=f"INSERT INTO {table} VALUES (1, %s)", data=(evil,), commit=True))
    rows = await run_one(
        PostgresFetch(**pg, fetch="all", query=f"SELECT name FROM {table} WHERE name = %s"), data=(evil,)
    )
    assert rows.result == [(evil,)]
    assert sql(pg_server, f"SELECT count(*) FROM {table}") == [(1,)]


async def test_missing_required_values_name_them(pg):
    for arg in ("db_name", "user", "host", "query"):
        args = {**pg, "query": "SELECT 1", arg: None}
        with pytest.raises(ValueError, match=arg):
            await PostgresExecute(**args).run()
    with pytest.raises(ValueError, match="data"):
        await PostgresExecute(**pg).run(query="SELECT %s", data="abc")


async def test_server_error_fails_with_its_message(pg):
    state = await run_one(PostgresExecute(**pg, query="SELEC 1"))
    assert isinstance(state, Failed)
    assert "syntax error" in str(state.message)


async def test_port_none_is_not_sent(pg_server):
    # port=None leaves libpq's default (5432): nothing listens there, so the task fails cleanly
    state = await run_one(PostgresExecute(db_name="aflow", user="aflow", host="127.0.0.1", port=None, query="SELECT 1"))
    assert isinstance(state, Failed)
    assert "5432" in str(state.message)


# --- PostgresExecuteMany ---------------------------------------------------------------------


async def test_execute_many_commits_every_row(pg, pg_server, table):
    task = PostgresExecuteMany(**pg, query=f"INSERT INTO {table} VALUES (%s, %s)", commit=True)
    state = await run_one(task, data=[(1, "a"), (2, "b"), (3, "c")])
    assert isinstance(state, Success)
    assert state.result is None
    assert sql(pg_server, f"SELECT * FROM {table} ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")]


async def test_execute_many_is_all_or_nothing(pg, pg_server, table):
    task = PostgresExecuteMany(**pg, query=f"INSERT INTO {table} VALUES (%s, %s)", commit=True)
    state = await run_one(task, data=[(1, "a"), (2, "b"), (1, "dup")])
    assert isinstance(state, Failed)
    assert "duplicate key" in str(state.message)
    assert sql(pg_server, f"SELECT * FROM {table}") == []


async def test_execute_many_without_commit_rolls_back(pg, pg_server, table):
    task = PostgresExecuteMany(**pg, query=f"INSERT INTO {table} VALUES (%(id)s, %(name)s)")
    state = await run_one(task, data=[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    assert isinstance(state, Success)
    assert sql(pg_server, f"SELECT * FROM {table}") == []


async def test_execute_many_needs_data(pg, table):
    task = PostgresExecuteMany(**pg, query=f"INSERT INTO {table} VALUES (%s, %s)")
    missing: tuple[Any, ...] = (None, [])
    for data in missing:
        with pytest.raises(ValueError, match="data"):
            await task.run(data=data)


# --- PostgresFetch ---------------------------------------------------------------------------


@pytest.fixture
def filled(pg_server, table) -> str:
    sql(pg_server, f"INSERT INTO {table} SELECT i, 'n' || i FROM generate_series(1, 25) i")
    name: str = table
    return name


async def test_fetch_one_many_all(pg, filled):
    query = f"SELECT id, name FROM {filled} WHERE id <= %s ORDER BY id"
    one = PostgresFetch(**pg, query=query, data=(25,))
    assert (await one.run()) == (1, "n1")
    assert (await one.run(data=(0,))) is None
    many = await PostgresFetch(**pg, fetch="many", query=query, data=(25,)).run()
    assert many == [(i, f"n{i}") for i in range(1, 11)]
    assert (await PostgresFetch(**pg, fetch="many", fetch_count=3, query=query).run(data=(25,))) == [
        (1, "n1"),
        (2, "n2"),
        (3, "n3"),
    ]
    every = await PostgresFetch(**pg, fetch="all", query=query).run(data=(25,))
    assert every == [(i, f"n{i}") for i in range(1, 26)]


async def test_fetch_col_names(pg, filled):
    query = f"SELECT id, name AS who FROM {filled} WHERE id <= %(top)s ORDER BY id"
    task = PostgresFetch(**pg, query=query, data={"top": 2})
    assert (await task.run(col_names=True)) == [("id", "who"), (1, "n1")]
    assert (await task.run(fetch="all", col_names=True)) == [("id", "who"), (1, "n1"), (2, "n2")]
    assert (await task.run(fetch="many", fetch_count=1, col_names=True)) == [("id", "who"), (1, "n1")]
    assert (await task.run(data={"top": 0}, col_names=True)) == [("id", "who")]


async def test_fetch_bad_fetch_names_it(pg):
    with pytest.raises(ValueError, match="fetch"):
        await PostgresFetch(**pg, query="SELECT 1", fetch="some").run()
    state = await run_one(PostgresFetch(**pg, query="SELECT 1"), fetch="every")
    assert isinstance(state, Failed)
    assert "fetch" in str(state.message)


async def test_fetch_commit_and_rollback(pg, pg_server, table):
    query = f"INSERT INTO {table} VALUES (%s, 'x') RETURNING id"
    assert (await PostgresFetch(**pg, query=query).run(data=(1,))) == (1,)
    assert sql(pg_server, f"SELECT id FROM {table}") == []
    assert (await PostgresFetch(**pg, query=query, commit=True).run(data=(2,))) == (2,)
    assert sql(pg_server, f"SELECT id FROM {table}") == [(2,)]


async def test_flow_parameters_reach_the_query(pg, filled):
    fetch = PostgresFetch(**pg, fetch="all", query=f"SELECT id FROM {filled} WHERE id = ANY(%s) ORDER BY id")
    with Flow("params") as flow:
        ids = Parameter("ids")
        rows = fetch(data=[ids])
    state = await flow.run(ids=[3, 5])
    assert state.result[rows].result == [(3,), (5,)]


# --- passwords -------------------------------------------------------------------------------


def pw_settings(pg: dict[str, Any]) -> dict[str, Any]:
    return {**pg, "user": PASSWORD_USER}


async def test_password_as_string_getsecret_and_secret(pg, pg_server, table):
    fetch = PostgresFetch(**pw_settings(pg), query="SELECT current_user")
    get = GetSecret("PG_PASSWORD")
    with Flow("passwords") as flow:
        plain = fetch(password=PASSWORD, task_args={"name": "plain"})
        via_task = fetch(password=get(), task_args={"name": "via_task"})
        lazy = fetch(password=Secret("PG_PASSWORD"), task_args={"name": "lazy"})
    state = await flow.run(context={"secrets": {"PG_PASSWORD": PASSWORD}})
    assert state.is_successful(), state.result
    for ref in (plain, via_task, lazy):
        assert state.result[ref].result == (PASSWORD_USER,)


async def test_wrong_password_fails_with_the_server_message_and_no_password(pg, caplog):
    wrong = "Wr0ng-pa55word-zz"
    caplog.set_level(logging.DEBUG)
    state = await run_one(PostgresFetch(**pw_settings(pg), query="SELECT 1"), password=wrong)
    assert isinstance(state, Failed)
    message = str(state.message)
    assert "password authentication failed" in message
    assert wrong not in message
    assert state.result is None or wrong not in repr(state.result)
    assert all(wrong not in record.getMessage() for record in caplog.records)
    assert wrong not in caplog.text


async def test_missing_password_fails(pg):
    state = await run_one(PostgresFetch(**pw_settings(pg), query="SELECT 1"))
    assert isinstance(state, Failed)
    assert "password" in str(state.message)


# --- pools and transient errors --------------------------------------------------------------


async def test_one_pool_per_run_and_configuration(pg):
    opened: list[dict[str, Any]] = []

    def counting(connect_args):
        opened.append(dict(connect_args))
        return postgres.clients.opener(connect_args)

    fetch = PostgresFetch(**pg, query="SELECT %s::int")
    as_other = PostgresFetch(**pw_settings(pg), query="SELECT %s::int")
    with Flow("pools") as flow:
        refs = [fetch(data=(i,), task_args={"name": f"q{i}"}) for i in range(5)]
        other = as_other(data=(9,), password=PASSWORD)
    with postgres.clients.override(counting):
        state = await flow.run()
        again = await flow.run()
    assert state.is_successful()
    assert again.is_successful()
    assert [state.result[r].result for r in refs] == [(i,) for i in range(5)]
    assert state.result[other].result == (9,)
    assert sorted(args["user"] for args in opened) == ["aflow", "aflow", PASSWORD_USER, PASSWORD_USER]


async def test_a_serialization_failure_is_retried(pg):
    raising = "DO $$ BEGIN RAISE EXCEPTION 'try again later' USING ERRCODE = '40001'; END $$"
    task = PostgresExecute(**pg, query=raising, max_retries=2, retry_delay=timedelta(0))
    state = await run_one(task)
    assert isinstance(state, Failed)
    assert "try again later" in str(state.message)
    assert "no retries left after 3 attempts" in str(state.message)


async def test_fetch_of_a_statement_without_rows_fails(pg):
    state = await run_one(PostgresFetch(**pg, query="SET search_path TO public"))
    assert isinstance(state, Failed)
    assert "didn't produce records" in str(state.message)
