"""aflow_tasks.sqlite against real SQLite files in tmp_path."""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from aflow import Flow, task
from aflow.states import Failed, State, Success
from aflow_tasks.sqlite import SQLiteQuery, SQLiteScript

GUARD = 10
SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO users (name) VALUES ('ada'), ('grace');
"""


async def run(flow: Flow, **kwargs: Any) -> State:
    with anyio.fail_after(GUARD):
        return await flow.run(**kwargs)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "test.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
    conn.close()
    return path


def rows(path: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_init_stores_its_arguments(tmp_path: Path) -> None:
    q = SQLiteQuery(db="x.db", query="SELECT 1", parameters=(1,), name="q")
    assert (q.db, q.query, q.parameters, q.name) == ("x.db", "SELECT 1", (1,), "q")
    d = SQLiteQuery()
    assert (d.db, d.query, d.parameters) == (None, None, None)
    s = SQLiteScript(db=tmp_path, script="SELECT 1;")
    assert (s.db, s.script) == (tmp_path, "SELECT 1;")
    assert (SQLiteScript().db, SQLiteScript().script) == (None, None)


async def test_query_returns_rows(db: Path) -> None:
    assert await SQLiteQuery(db=db, query="SELECT id, name FROM users ORDER BY id").run() == [(1, "ada"), (2, "grace")]
    assert await SQLiteQuery(db=str(db), query="SELECT name FROM users WHERE id = 99").run() == []


async def test_call_overrides_init(db: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    q = SQLiteQuery(db=other, query="SELECT 'init'")
    assert await q.run(db=db, query="SELECT count(*) FROM users") == [(2,)]
    assert await q.run(query="SELECT name FROM users WHERE id = ?", db=db, parameters=(2,)) == [("grace",)]


@pytest.mark.parametrize(
    ("parameters", "query"),
    [
        (("grace",), "SELECT id FROM users WHERE name = ?"),
        ({"who": "grace"}, "SELECT id FROM users WHERE name = :who"),
    ],
)
async def test_parameters_are_bound(db: Path, parameters: Any, query: str) -> None:
    assert await SQLiteQuery(db=db, query=query, parameters=parameters).run() == [(2,)]


async def test_an_injection_string_stays_data(db: Path) -> None:
    evil = "x'); DROP TABLE users; --"
    insert = SQLiteQuery(db=db, query="INSERT INTO users (name) VALUES (?) RETURNING id, name")
    assert await insert.run(parameters=(evil,)) == [(3, evil)]
    assert rows(db, "SELECT name FROM users ORDER BY id") == [("ada",), ("grace",), (evil,)]
    found = await SQLiteQuery(db=db, query="SELECT id FROM users WHERE name = :n", parameters={"n": evil}).run()
    assert found == [(3,)]


async def test_statements_are_committed(db: Path) -> None:
    await SQLiteQuery(db=db, query="UPDATE users SET name = ? WHERE id = 1", parameters=["ada l."]).run()
    assert rows(db, "SELECT name FROM users WHERE id = 1") == [("ada l.",)]


@pytest.mark.parametrize("missing", ["db", "query"])
async def test_query_missing_required_value(db: Path, missing: str) -> None:
    kwargs: dict[str, Any] = {"db": db, "query": "SELECT 1", missing: None}
    with pytest.raises(ValueError, match=f"SQLiteQuery needs {missing}: give SQLiteQuery\\({missing}=...\\)"):
        await SQLiteQuery(**kwargs).run()


async def test_string_parameters_are_refused(db: Path) -> None:
    with pytest.raises(ValueError, match=r"parameters=\(value,\)"):
        await SQLiteQuery(db=db, query="SELECT ?", parameters="abc").run()


async def test_query_errors_propagate(db: Path) -> None:
    with pytest.raises(sqlite3.OperationalError, match="no such table: nope"):
        await SQLiteQuery(db=db, query="SELECT * FROM nope").run()
    with pytest.raises(sqlite3.ProgrammingError):  # one statement only
        await SQLiteQuery(db=db, query="SELECT 1; DROP TABLE users").run()
    assert rows(db, "SELECT count(*) FROM users") == [(2,)]


async def test_script_runs_every_statement(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    await SQLiteScript(db=path, script=SCHEMA).run()
    assert rows(path, "SELECT name FROM users ORDER BY id") == [("ada",), ("grace",)]


async def test_script_call_overrides_init(db: Path, tmp_path: Path) -> None:
    script = SQLiteScript(db=tmp_path / "unused.db", script="CREATE TABLE never (x);")
    await script.run(db=db, script="DELETE FROM users WHERE id = 1; INSERT INTO users (name) VALUES ('linus');")
    assert rows(db, "SELECT name FROM users ORDER BY id") == [("grace",), ("linus",)]
    assert not (tmp_path / "unused.db").exists()


@pytest.mark.parametrize("missing", ["db", "script"])
async def test_script_missing_required_value(db: Path, missing: str) -> None:
    kwargs: dict[str, Any] = {"db": db, "script": "SELECT 1;", missing: None}
    with pytest.raises(ValueError, match=f"SQLiteScript needs {missing}"):
        await SQLiteScript(**kwargs).run()


async def test_script_error_propagates(db: Path) -> None:
    with pytest.raises(sqlite3.OperationalError, match="syntax error"):
        await SQLiteScript(db=db, script="INSERT INTO users (name) VALUES ('kept'); THIS IS NOT SQL;").run()
    assert rows(db, "SELECT name FROM users WHERE name = 'kept'") == [("kept",)]  # documented: earlier ones stay


async def test_a_missing_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError, match="unable to open database"):
        await SQLiteQuery(db=tmp_path / "no" / "such" / "dir.db", query="SELECT 1").run()
    # aiosqlite's worker thread has ended: it cannot report to this loop once the loop closes
    workers = [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]
    assert workers == []


async def test_sqlite_tasks_in_a_flow(tmp_path: Path) -> None:
    path = tmp_path / "flow.db"

    @task
    async def names(rows: list[tuple[Any, ...]]) -> list[str]:
        return [r[0] for r in rows]

    with Flow("sqlite") as flow:
        setup = SQLiteScript(db=path, script=SCHEMA)()
        query = SQLiteQuery(db=path)(query="SELECT name FROM users ORDER BY name DESC", upstream_tasks=[setup])
        out = names(query)
        broken = SQLiteQuery(db=path, query="SELECT * FROM missing_table")(upstream_tasks=[setup])
    state = await run(flow)
    assert isinstance(state.result[out], Success)
    assert state.result[out].result == ["grace", "ada"]
    failed = state.result[broken]
    assert isinstance(failed, Failed)
    assert isinstance(failed.result, sqlite3.OperationalError)
    assert "no such table: missing_table" in (failed.message or "")


async def test_missing_aiosqlite_gives_a_helpful_import_error(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiosqlite", None)
    with pytest.raises(ImportError, match=r"sqlite tasks need aiosqlite: pip install aflow-engine\[sqlite\]"):
        await SQLiteQuery(db=db, query="SELECT 1").run()
    with pytest.raises(ImportError, match=r"pip install aflow-engine\[sqlite\]"):
        await SQLiteScript(db=db, script="SELECT 1;").run()
