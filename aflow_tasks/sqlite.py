"""SQLite tasks on aiosqlite: run a query (with bound parameters) or a script on a database file.

Each run opens its own connection and closes it afterwards, to the end even when the task is
cancelled (`aflow.integration.to_the_end`); aiosqlite runs SQLite in a thread of its own, so the
event loop never blocks. SQLite's own errors (``sqlite3.OperationalError``...) fail the task as
they are. Values go in through ``parameters``, bound by SQLite
(``?`` or ``:name`` placeholders), never formatted into the SQL text.

Needs the ``sqlite`` extra: ``pip install aflow-engine[sqlite]``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any, TypeAlias

import anyio
import anyio.to_thread

from aflow import Task, defaults_from_attrs
from aflow.integration import to_the_end

__all__ = ("SQLiteQuery", "SQLiteScript")

Database: TypeAlias = "str | os.PathLike[str]"
Parameters: TypeAlias = "Sequence[Any] | Mapping[str, Any]"


def _aiosqlite() -> ModuleType:
    try:
        import aiosqlite
    except ImportError as exc:
        raise ImportError("sqlite tasks need aiosqlite: pip install aflow-engine[sqlite]") from exc
    return aiosqlite


@asynccontextmanager
async def _connect(db: Database) -> AsyncIterator[Any]:
    """An open aiosqlite connection, closed (and its worker thread ended) on exit."""
    conn = _aiosqlite().connect(db)
    try:
        await conn
    except BaseException:
        # on a failed connect, aiosqlite stops its worker thread without waiting for it: wait
        # here, or the thread may report to an event loop that has closed in the meantime
        thread = getattr(conn, "_thread", conn)
        await to_the_end(anyio.to_thread.run_sync(thread.join))
        raise
    try:
        yield conn
    finally:
        await to_the_end(conn.close())  # not cut off by a cancellation: the worker thread ends


def _need(value: Any, arg: str, cls: str) -> Any:
    if value is None or value == "":
        raise ValueError(f"{cls} needs {arg}: give {cls}({arg}=...) or pass {arg}= to the call")
    return value


class SQLiteQuery(Task):
    """Run one SQL statement on a SQLite database and return the rows it produced.

    The statement is committed, so ``INSERT``/``UPDATE``/``DELETE`` (with ``RETURNING`` if you
    want rows back) work too. Only one statement is allowed (use `SQLiteScript` for several).

    Args:
        db: The database file's path (default None: give it to the call); ``":memory:"`` works.
        query: The SQL statement (default None: give it to the call).
        parameters: Values bound to the statement's placeholders (default None): a sequence for
            ``?`` placeholders, a mapping for ``:name`` ones.
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        db: Database | None = None,
        query: str | None = None,
        parameters: Parameters | None = None,
        **kwargs: Any,
    ) -> None:
        self.db = db
        self.query = query
        self.parameters = parameters
        super().__init__(**kwargs)

    @defaults_from_attrs("db", "query", "parameters")
    async def run(
        self, db: Database | None = None, query: str | None = None, parameters: Parameters | None = None
    ) -> list[tuple[Any, ...]]:
        """Execute the statement, commit, and return every row it produced.

        Args:
            db: The database file (default None: the one given at initialization).
            query: The SQL statement (default None: the one given at initialization).
            parameters: Values for the placeholders (default None: the initialization's, or none).

        Returns:
            The rows, as a list of tuples (empty for a statement that returns none).

        Raises:
            ValueError: If ``db`` or ``query`` is missing, or ``parameters`` is a string.
            sqlite3.Error: What SQLite raises (a syntax error, a missing table...).
        """
        path: Database = _need(db, "db", "SQLiteQuery")
        sql: str = _need(query, "query", "SQLiteQuery")
        if isinstance(parameters, (str, bytes)):
            raise ValueError(
                f"SQLiteQuery parameters must be a sequence or a mapping, not the string {parameters!r}: "
                "wrap a single value in a tuple, e.g. parameters=(value,)"
            )
        async with _connect(path) as conn:
            async with conn.execute(sql, parameters if parameters is not None else ()) as cursor:
                rows = [tuple(row) for row in await cursor.fetchall()]
            await conn.commit()
        return rows


class SQLiteScript(Task):
    """Run a SQL script (several statements separated by ``;``) on a SQLite database.

    The script runs with ``executescript``, which commits first and then runs every statement;
    a script cannot take bound parameters, so use `SQLiteQuery` for statements with values.

    Args:
        db: The database file's path (default None: give it to the call).
        script: The SQL script (default None: give it to the call).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(self, db: Database | None = None, script: str | None = None, **kwargs: Any) -> None:
        self.db = db
        self.script = script
        super().__init__(**kwargs)

    @defaults_from_attrs("db", "script")
    async def run(self, db: Database | None = None, script: str | None = None) -> None:
        """Execute the script and commit.

        Args:
            db: The database file (default None: the one given at initialization).
            script: The SQL script (default None: the one given at initialization).

        Raises:
            ValueError: If ``db`` or ``script`` is missing.
            sqlite3.Error: What SQLite raises; statements before the failing one stay applied.
        """
        path: Database = _need(db, "db", "SQLiteScript")
        sql: str = _need(script, "script", "SQLiteScript")
        async with _connect(path) as conn:
            await conn.executescript(sql)
            await conn.commit()
