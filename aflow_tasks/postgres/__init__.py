"""PostgreSQL tasks on psycopg 3's async driver: execute statements and fetch rows.

Prefect 1's names (`PostgresExecute`, `PostgresExecuteMany`, `PostgresFetch`), arguments and return
shapes, without a thread per query: every task of a flow run shares one `PostgresPool` per
configuration (database, user, host, port, password), made by `clients` and closed when the run
ends, so fifty queries wait on the server at once from one event loop.

Values go in through ``data``, bound by the server to psycopg's ``%s`` / ``%(name)s``
placeholders, never formatted into the SQL text. Each task runs in a transaction of its own,
committed when ``commit=True`` and rolled back otherwise. A task cancelled while its query runs
(a flow cancelled, a task's ``timeout``) cancels the query on the server (``cancel_safe``,
shielded and bounded) and drops the connection. ``PostgresFetch(stream=True)`` reads rows through
a server-side cursor, so a ``fetch="many"`` of a huge result holds only ``fetch_count`` rows.

Needs the ``postgres`` extra: ``pip install aflow-engine[postgres]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from aflow import Task, defaults_from_attrs
from aflow.integration import Failure, cleanup, is_lazy, map_errors, resolve_lazy
from aflow.secrets import REDACTED, register

from ._pool import POOL_SIZE as POOL_SIZE
from ._pool import PostgresPool as PostgresPool
from ._pool import _psycopg
from ._pool import clients as clients

if TYPE_CHECKING:
    import psycopg

__all__ = (
    "CANCEL_LIMIT",
    "FETCH_MODES",
    "POOL_SIZE",
    "PostgresExecute",
    "PostgresExecuteMany",
    "PostgresFetch",
    "PostgresPool",
    "clients",
)

Data: TypeAlias = "Sequence[Any] | Mapping[str, Any]"
T = TypeVar("T")

FETCH_MODES = ("one", "many", "all")
"""The values of `PostgresFetch`'s ``fetch``."""

CANCEL_LIMIT = 10.0
"""Seconds a server-side cancel (after a task is cancelled) may take."""

_TRANSIENT_STATES = frozenset({"40001", "40P01", "53300", "57P01", "57P03"})
_cursor_ids = itertools.count(1)


def _need(value: Any, arg: str, cls: str) -> Any:
    if value is None or value == "":
        raise ValueError(f"{cls} needs {arg}: give {cls}({arg}=...) or pass {arg}= to the call")
    return value


def _check_data(data: Any, cls: str) -> None:
    if isinstance(data, (str, bytes)):
        raise ValueError(
            f"{cls} data must be a sequence or a mapping, not the string {data!r}: "
            "wrap a single value in a tuple, e.g. data=(value,)"
        )


def _redact(text: str, password: str | None) -> str:
    if password:
        text = text.replace(password, REDACTED).replace(repr(password)[1:-1], REDACTED)
    return text


def _failure(password: str | None) -> Callable[[Exception], Failure]:
    def classify(exc: Exception) -> Failure:
        state = getattr(exc, "sqlstate", None) or ""
        transient = state.startswith("08") or state in _TRANSIENT_STATES
        message = " ".join(str(exc).split()) or type(exc).__name__
        return Failure(f"Postgres error: {_redact(message, password)}", transient=transient)

    return classify


class _PostgresTask(Task):
    """What the three Postgres tasks share: the connection settings and one run of a statement."""

    def __init__(
        self,
        db_name: str | None = None,
        user: str | None = None,
        host: str | None = None,
        port: int | None = 5432,
        query: str | None = None,
        data: Any = None,
        commit: bool = False,
        **kwargs: Any,
    ) -> None:
        self.db_name = db_name
        self.user = user
        self.host = host
        self.port = port
        self.query = query
        self.data = data
        self.commit = commit
        super().__init__(**kwargs)

    async def _transaction(
        self,
        *,
        db_name: str | None,
        user: str | None,
        host: str | None,
        port: int | None,
        password: Any,
        commit: bool,
        work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]],
    ) -> T:
        """Run ``work`` on a pooled connection in a transaction; commit or roll back; map errors."""
        cls = type(self).__name__
        args: dict[str, Any] = {
            "dbname": _need(db_name, "db_name", cls),
            "user": _need(user, "user", cls),
            "host": _need(host, "host", cls),
        }
        if port is not None:
            args["port"] = int(port)
        if password is not None and is_lazy(password):
            password = await resolve_lazy(password)
        if password is not None:
            password = str(password)
            register(password)
            args["password"] = password
        digest = hashlib.sha256(password.encode()).hexdigest() if password else None
        key = (args["host"], args.get("port"), args["dbname"], args["user"], digest)
        psycopg = _psycopg()
        async with clients.client(key, args) as pool:
            with map_errors(psycopg.Error, _failure(password), chain=False):
                async with pool.connection() as conn:
                    return await self._guarded(conn, commit, work)

    async def _guarded(
        self,
        conn: psycopg.AsyncConnection[Any],
        commit: bool,
        work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]],
    ) -> T:
        """Run the transaction in a task of its own, so that a cancellation reaches the server.

        The driver never sees the cancellation (it would give up on the connection half-way):
        the query is cancelled on the server (``cancel_safe``), then the transaction's task is
        awaited until it has rolled back; all of it shielded and bounded by `CANCEL_LIMIT`.
        """

        async def body() -> T:
            try:
                result = await work(conn)
                if commit:
                    await conn.commit()
                else:
                    await conn.rollback()
                return result
            except BaseException:
                if not conn.closed and not conn.broken:
                    await cleanup(conn.rollback, "roll back", self.logger, limit=5.0)
                raise

        inner = asyncio.ensure_future(body())
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            if not inner.done():
                await cleanup(lambda: _cancel_on_server(conn, inner), "cancel the query on the server", self.logger)
            if inner.done() and not inner.cancelled():
                inner.exception()  # retrieved: QueryCanceled is the expected outcome
            raise


async def _cancel_on_server(conn: psycopg.AsyncConnection[Any], inner: asyncio.Future[Any]) -> None:
    try:
        await conn.cancel_safe(timeout=CANCEL_LIMIT)
    finally:
        await asyncio.wait([inner], timeout=CANCEL_LIMIT)
        if not inner.done():  # the server did not answer: give up on the connection
            inner.cancel()
            await asyncio.wait([inner], timeout=1.0)


class PostgresExecute(_PostgresTask):
    """Execute one statement on a PostgreSQL database, committed only when ``commit=True``.

    Args:
        db_name: The database's name (default None: give it to the call).
        user: The user to connect as (default None: give it to the call).
        host: The server's address (default None: give it to the call).
        port: The server's port (default 5432).
        query: The statement, with ``%s`` or ``%(name)s`` placeholders (default None).
        data: Values for the placeholders: a sequence, or a mapping for named ones (default None).
        commit: Commit the transaction (default False: it is rolled back).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        db_name: str | None = None,
        user: str | None = None,
        host: str | None = None,
        port: int | None = 5432,
        query: str | None = None,
        data: Data | None = None,
        commit: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(db_name, user, host, port, query, data, commit, **kwargs)

    @defaults_from_attrs("db_name", "user", "host", "port", "query", "data", "commit")
    async def run(
        self,
        db_name: str | None = None,
        user: str | None = None,
        host: str | None = None,
        port: int | None = 5432,
        query: str | None = None,
        data: Data | None = None,
        commit: bool = False,
        password: Any = None,
    ) -> None:
        """Execute the statement, then commit (``commit=True``) or roll back.

        Args:
            db_name: The database (default None: the initialization's).
            user: The user (default None: the initialization's).
            host: The server's address (default None: the initialization's).
            port: The server's port (default 5432, or the initialization's).
            query: The statement (default None: the initialization's).
            data: Values for the placeholders (default None: the initialization's, or none).
            commit: Commit the transaction (default False: roll it back).
            password: The user's password: a string, a `aflow_tasks.secrets.GetSecret` result or an
                `aflow.Secret` read now (default None: no password).

        Returns:
            None.

        Raises:
            ValueError: If ``db_name``, ``user``, ``host`` or ``query`` is missing, or ``data`` is
                a string.
            aflow.signals.FAIL: With the server's message, when the statement fails.
        """
        sql: str = _need(query, "query", "PostgresExecute")
        _check_data(data, "PostgresExecute")

        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.cursor() as cursor:
                await cursor.execute(sql, data)

        await self._transaction(
            db_name=db_name, user=user, host=host, port=port, password=password, commit=commit, work=work
        )


class PostgresExecuteMany(_PostgresTask):
    """Execute one statement once per item of ``data``, all or nothing, in one transaction.

    Args:
        db_name: The database's name (default None: give it to the call).
        user: The user to connect as (default None: give it to the call).
        host: The server's address (default None: give it to the call).
        port: The server's port (default 5432).
        query: The statement, with ``%s`` or ``%(name)s`` placeholders (default None).
        data: A list of parameter tuples (or mappings), one per execution (default None).
        commit: Commit the transaction (default False: it is rolled back).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        db_name: str | None = None,
        user: str | None = None,
        host: str | None = None,
        port: int | None = 5432,
        query: str | None = None,
        data: Sequence[Data] | None = None,
        commit: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(db_name, user, host, port, query, data, commit, **kwargs)

    @defaults_from_attrs("db_name", "user", "host", "port", "query", "data", "commit")
    async def run(
        self,
        db_name: str | None = None,
        user: str | None = None,
        host: str | None = None,
        port: int | None = 5432,
        query: str | None = None,
        data: Sequence[Data] | None = None,
        commit: bool = False,
        password: Any = None,
    ) -> None:
        """Execute the statement for every item of ``data``, then commit or roll back all of it.

        Args:
            db_name: The database (default None: the initialization's).
            user: The user (default None: the initialization's).
            host: The server's address (default None: the initialization's).
            port: The server's port (default 5432, or the initialization's).
            query: The statement (default None: the initialization's).
            data: The list of parameter tuples (default None: the initialization's).
            commit: Commit the transaction (default False: roll it back).
            password: The user's password: a string, a `aflow_tasks.secrets.GetSecret` result or an
                `aflow.Secret` read now (default None: no password).

        Returns:
            None.

        Raises:
            ValueError: If ``db_name``, ``user``, ``host`` or ``query`` is missing, or ``data`` is
                missing or empty.
            aflow.signals.FAIL: With the server's message; nothing of the batch stays applied.
        """
        sql: str = _need(query, "query", "PostgresExecuteMany")
        if not data:
            raise ValueError(
                "PostgresExecuteMany needs data, a non-empty list of parameter tuples: "
                "give PostgresExecuteMany(data=...) or pass data= to the call"
            )
        _check_data(data, "PostgresExecuteMany")
        rows = list(data)

        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.cursor() as cursor:
                await cursor.executemany(sql, rows)

        await self._transaction(
            db_name=db_name, user=user, host=host, port=port, password=password, commit=commit, work=work
        )


class PostgresFetch(_PostgresTask):
    """Run a query on a PostgreSQL database and return one row, ``fetch_count`` rows, or all.

    Args:
        db_name: The database's name (default None: give it to the call).
        user: The user to connect as (default None: give it to the call).
        host: The server's address (default None: give it to the call).
        port: The server's port (default 5432).
        fetch: ``"one"``, ``"many"`` or ``"all"`` (default ``"one"``).
        fetch_count: How many rows ``fetch="many"`` returns at most (default 10).
        query: The query, with ``%s`` or ``%(name)s`` placeholders (default None).
        data: Values for the placeholders: a sequence, or a mapping for named ones (default None).
        commit: Commit the transaction (default False: it is rolled back).
        stream: Read rows through a server-side cursor (``DECLARE ... CURSOR``) in batches, so
            only the rows returned are ever held in memory (default False). The query must be a
            ``SELECT`` (or ``VALUES``); an aflow extension.
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        db_name: str | None = None,
        user: str | None = None,
        host: str | None = None,
        port: int | None = 5432,
        fetch: str = "one",
        fetch_count: int = 10,
        query: str | None = None,
        data: Data | None = None,
        commit: bool = False,
        stream: bool = False,
        **kwargs: Any,
    ) -> None:
        self.fetch = fetch
        self.fetch_count = fetch_count
        self.stream = stream
        super().__init__(db_name, user, host, port, query, data, commit, **kwargs)

    @defaults_from_attrs("db_name", "user", "host", "port", "fetch", "fetch_count", "query", "data", "commit", "stream")
    async def run(
        self,
        db_name: str | None = None,
        user: str | None = None,
        host: str | None = None,
        port: int | None = 5432,
        fetch: str = "one",
        fetch_count: int = 10,
        query: str | None = None,
        data: Data | None = None,
        commit: bool = False,
        password: Any = None,
        col_names: bool = False,
        stream: bool = False,
    ) -> Any:
        """Run the query and fetch its rows, then commit (``commit=True``) or roll back.

        Args:
            db_name: The database (default None: the initialization's).
            user: The user (default None: the initialization's).
            host: The server's address (default None: the initialization's).
            port: The server's port (default 5432, or the initialization's).
            fetch: ``"one"``, ``"many"`` or ``"all"`` (default: the initialization's).
            fetch_count: The most rows ``fetch="many"`` returns (default: the initialization's).
            query: The query (default None: the initialization's).
            data: Values for the placeholders (default None: the initialization's, or none).
            commit: Commit the transaction (default False: roll it back).
            password: The user's password: a string, a `aflow_tasks.secrets.GetSecret` result or an
                `aflow.Secret` read now (default None: no password).
            col_names: Put a tuple of the column names before the rows (default False).
            stream: Read through a server-side cursor (default: the initialization's).

        Returns:
            ``"one"``: a tuple, or None when there is no row; ``"many"``: a list of at most
            ``fetch_count`` tuples; ``"all"``: a list of tuples. With ``col_names``, a list
            ``[names, *rows]``.

        Raises:
            ValueError: If ``db_name``, ``user``, ``host`` or ``query`` is missing, ``fetch`` is not
                one of `FETCH_MODES`, or ``data`` is a string.
            aflow.signals.FAIL: With the server's message, when the query fails.
        """
        sql: str = _need(query, "query", "PostgresFetch")
        if fetch not in FETCH_MODES:
            raise ValueError(f"PostgresFetch fetch must be one of 'one', 'many' or 'all', not {fetch!r}")
        _check_data(data, "PostgresFetch")
        count = int(fetch_count)

        async def work(conn: psycopg.AsyncConnection[Any]) -> Any:
            cursor: Any
            if stream:
                cursor = conn.cursor(name=f"aflow_fetch_{next(_cursor_ids)}")
                cursor.itersize = max(count, 1) if fetch != "all" else 2000
            else:
                cursor = conn.cursor()
            async with cursor:
                await cursor.execute(sql, data)
                records: Any
                if fetch == "all":
                    records = await cursor.fetchall()
                elif fetch == "many":
                    records = await cursor.fetchmany(count)
                else:
                    records = await cursor.fetchone()
                if not col_names:
                    return records
                names = tuple(column.name for column in cursor.description or ())
                rows = [] if records is None else [records] if isinstance(records, tuple) else records
                return [names, *rows]

        return await self._transaction(
            db_name=db_name, user=user, host=host, port=port, password=password, commit=commit, work=work
        )
